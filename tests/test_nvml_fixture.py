"""The simulator's H100 output has the shape of the committed fixture (names, attribute keys, units).

``tests/fixtures/nvml/h100-sxm-once.jsonl`` is, for now, generated from the simulator itself
(docs/SIMULATOR.md says how). When a capture from a real H100 node replaces it, this test checks
the simulator against real hardware output.
"""

from __future__ import annotations

import json
from pathlib import Path

from agent.config import AgentConfig
from agent.exporters.jsonl import point_records
from agent.runtime.once import collect_once

FIXTURE = Path(__file__).parent / "fixtures" / "nvml" / "h100-sxm-once.jsonl"
GPU_KEYS = {"hw.id", "gpu.index", "hw.model"}


def shape(records: list[dict]) -> set[tuple[str, str, str, tuple[str, ...]]]:
    return {(r["name"], r["type"], r["unit"], tuple(sorted(r["attributes"]))) for r in records if "name" in r}


def series_per_gpu(records: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    gpus = {r["attributes"].get("gpu.index") for r in records if "name" in r} - {None}
    for r in records:
        if "name" in r and "gpu.index" in r["attributes"]:
            counts[r["name"]] = counts.get(r["name"], 0) + 1
    return {name: n // max(1, len(gpus)) for name, n in counts.items()}


def test_simulated_h100_matches_the_fixture_shape() -> None:
    fixture = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]
    assert "resource" in fixture[0]
    config = AgentConfig(sources=["nvml"])
    config.simulate.gpus = 2
    config.simulate.profile = "h100-sxm"
    config.simulate.seed = 99
    produced = point_records(collect_once(config))
    assert shape(produced) == shape(fixture)
    assert series_per_gpu(produced) == series_per_gpu(fixture)
    for r in produced:
        if r["name"].startswith("hw.gpu."):
            assert set(r["attributes"]) >= GPU_KEYS, r
