"""`fleetpulse agent --once` end to end through the real CLI, with and without the simulator."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import run_agent_once

REPO = Path(__file__).resolve().parent.parent
RECORD_KEYS = {"name", "type", "unit", "attributes", "value", "time_unix_nano"}


def run_agent(*flags: str) -> tuple[int, list[dict], str]:
    return run_agent_once(*flags, timeout=120)


def test_simulated_h100_node_with_default_faults() -> None:
    code, records, stderr = run_agent(
        "--simulate", "8:h100-sxm", "--faults", "default", "--seed", "3", "--sources", "nvml"
    )
    assert code == 0, stderr
    assert set(records[0]) == {"resource"} and records[0]["resource"]["service.name"] == "fleetpulse-agent"
    points = [r for r in records[1:] if "name" in r]
    assert len(points) > 8 * 150
    for r in points:
        assert set(r) >= RECORD_KEYS, r
        assert isinstance(r["value"], float) and r["time_unix_nano"] == points[0]["time_unix_nano"]
    assert len({r["attributes"]["hw.id"] for r in points if r["name"] == "hw.gpu.power.usage"}) == 8
    assert "NVML not available" not in stderr


def test_same_seed_same_identity() -> None:
    def uuids(seed: str) -> list[str]:
        code, records, stderr = run_agent("--simulate", "2:t4", "--seed", seed, "--sources", "nvml")
        assert code == 0, stderr
        return sorted({r["attributes"]["hw.id"] for r in records if r.get("name") == "hw.gpu.info"})

    assert uuids("4") == uuids("4") != uuids("5")


def test_without_nvml_one_line_and_the_other_sources_still_report() -> None:
    code, records, stderr = run_agent("--sources", "nvml")
    assert code == 0, stderr
    lines = [line for line in stderr.splitlines() if "NVML not available" in line]
    assert len(lines) == 1 and lines[0].endswith("; GPU metrics disabled")
    assert [set(r) for r in records] == [{"resource"}]
    code, records, stderr = run_agent()  # every default source
    assert code == 0, stderr
    assert sum("NVML not available" in line for line in stderr.splitlines()) == 1
    names = {r["name"] for r in records if "name" in r}
    assert names and not any(n.startswith("hw.gpu.") for n in names)


def test_bad_scenario_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("faults:\n  - {at: 1, gpu: 0, kind: thermal_throttle}\n")
    code, records, stderr = run_agent("--simulate", "2", "--faults", str(bad), "--sources", "nvml")
    assert code == 2 and records == []
    assert f"{bad}:2: faults[0].duration: expected this field (required for a thermal_throttle fault)" in stderr
    assert "Traceback" not in stderr
