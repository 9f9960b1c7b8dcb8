"""docs/CAPACITY.md is derived from the latest recorded benchmark sections, with its arithmetic right."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import pytest

from bench import capacity

DOC = capacity.OUTPUT


def test_capacity_doc_is_regenerated_from_recorded_sections() -> None:
    expected = capacity.render(capacity.read_inputs())
    assert DOC.read_text() == expected, "docs/CAPACITY.md is stale: run `python -m bench.capacity`"


def test_inputs_shown_are_the_recorded_figures() -> None:
    inputs = capacity.read_inputs()
    doc = DOC.read_text()
    for key, (section, prefix) in capacity.INPUTS.items():
        recorded = (capacity.SECTIONS / f"{section}.md").read_text()
        row = next(line for line in recorded.splitlines() if line.startswith(f"| {prefix}"))
        assert f"| {inputs[key].text} " in row, f"{key}: {inputs[key].text!r} is not what {section}.md records"
        assert f"| {inputs[key].text} | {inputs[key].source} |" in doc


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def test_arithmetic_shown_matches_inputs() -> None:
    i = {k: v.value for k, v in capacity.read_inputs().items()}
    doc = DOC.read_text()
    per_gpu = i["gpu_fast"] + i["gpu_slow"] / 6
    per_node = i["node_fast"] + i["node_slow"] / 6
    for gpus in (1_000, 10_000, 100_000):
        nodes = gpus // 8
        points_s = (gpus * per_gpu + nodes * per_node) / 10
        row = re.search(rf"^\| {gpus:,} \| {nodes:,} \| .* = \*\*([0-9,]+)\*\* \|$", doc, re.M)
        assert row, f"no points/s row for {gpus} GPUs"
        assert _number(row[1]) == pytest.approx(points_s, abs=0.5)
        replicas = max(2, math.ceil(points_s / i["ingest_core"] / 0.5 / 2))
        assert re.search(rf"^\| {gpus:,} \| {points_s:,.0f} / .* = \*\*{replicas}\*\* \|", doc, re.M), gpus
        # Storage per day: the bold total is raw + rollups + events, from the measured byte figures.
        day = points_s * 86_400 * (i["raw_b"] + i["rollup_b"]) + gpus * 20 * i["event_b"]
        storage = re.search(
            rf"^\| {gpus:,} \| {points_s:,.0f} x 86,400 .*\| \*\*([0-9.,]+) (TB|GB|MB)\*\* \| \*\*([0-9.,]+) (TB|GB|MB)\*\*",
            doc,
            re.M,
        )
        assert storage, f"no storage row for {gpus} GPUs"
        scale = {"TB": 1e12, "GB": 1e9, "MB": 1e6}
        assert _number(storage[1]) * scale[storage[2]] == pytest.approx(day, rel=0.01)
        assert _number(storage[3]) * scale[storage[4]] == pytest.approx(day * 30, rel=0.01)


def test_capacity_grows_with_the_fleet() -> None:
    _, _, fleets = capacity.model(capacity.read_inputs())
    assert [f.gpus for f in fleets] == [1_000, 10_000, 100_000]
    for small, big in itertools.pairwise(fleets):
        assert big.points_s == pytest.approx(small.points_s * 10)
        assert big.replicas >= small.replicas
        assert big.shards >= small.shards


def test_missing_section_names_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(capacity.CapacityInputError, match=r"scaling\.md: missing; record it with .*--only scaling"):
        capacity.read_inputs(tmp_path)


def test_renamed_figure_names_the_figure(tmp_path: Path) -> None:
    for section in {s for s, _ in capacity.INPUTS.values()}:
        text = (capacity.SECTIONS / f"{section}.md").read_text()
        (tmp_path / f"{section}.md").write_text(text.replace("events bytes/event on disk", "bytes per event"))
    with pytest.raises(capacity.CapacityInputError, match="no figure starting with 'events bytes/event on disk'"):
        capacity.read_inputs(tmp_path)


def test_check_mode_flags_a_stale_doc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    stale = tmp_path / "CAPACITY.md"
    stale.write_text(DOC.read_text().replace("Capacity model", "Capacity guess"))
    monkeypatch.setattr(capacity, "OUTPUT", stale)
    assert capacity.main(["--check"]) == 1
    monkeypatch.setattr(capacity, "OUTPUT", DOC)
    assert capacity.main(["--check"]) == 0
