"""Fault scenario files: shipped examples load; bad files name file, line, field and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

import agent.sim
from agent.sim.faults import KINDS, SCENARIOS_DIR, ScenarioError, load_scenario, parse_duration, parse_scenario


@pytest.mark.parametrize("path", sorted(SCENARIOS_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_scenarios_install(path: Path) -> None:
    with agent.sim.install(8, "h100-sxm", path, seed=1, clock="manual") as sim:
        sim.advance(4000)
        sim.simulator.sync_all()
    assert load_scenario(path).faults


def test_default_is_found_by_name_and_covers_many_kinds() -> None:
    scenario = load_scenario("default")
    assert scenario.name == "default"
    assert len({f.kind for f in scenario.faults}) >= 6


def test_every_kind_has_a_simulator_action() -> None:
    lines = []
    for i, kind in enumerate(KINDS):
        params = {
            "xid": "code: 31",
            "thermal_throttle": "duration: 10",
            "power_brake": "duration: 10",
            "sbe_rate": "per_minute: 1, duration: 10",
            "nvlink_crc_burst": "link: 1",
            "nvlink_down": "link: 2",
            "hang": "function: nvmlDeviceGetPowerUsage, seconds: 0",
            "process": "pid: 4242, used_memory_mib: 100, duration: 10",
        }.get(kind, "")
        lines.append(f"  - {{at: {i}, gpu: {i % 8}, kind: {kind}{', ' + params if params else ''}}}")
    scenario = parse_scenario("faults:\n" + "\n".join(lines) + "\n")
    with agent.sim.install(8, "h100-sxm", scenario, clock="manual") as sim:
        sim.advance(100)
        sim.simulator.sync_all()
        assert sim.state(list(KINDS).index("fall_off_bus") % 8).lost


def test_durations() -> None:
    assert parse_duration(90) == 90.0
    assert parse_duration("90s") == 90.0
    assert parse_duration("5m") == 300.0
    assert parse_duration("1.5h") == 5400.0
    assert parse_duration("250ms") == 0.25
    assert parse_duration("soon") is None
    assert parse_duration(-1) is None
    assert parse_duration(True) is None


BAD = [
    ("faults: [\n", 2, "not valid YAML"),
    ("- just a list\n", 1, "scenario: expected a mapping"),
    ("name: x\n", 1, "faults: expected a list of faults"),
    ("faults: {at: 1}\n", 1, "faults: expected a list of faults"),
    ("faults:\n  - {at: 1, gpu: 0, kind: meltdown}\n", 2, "faults[0].kind: expected one of xid, thermal_throttle"),
    ("faults:\n  - {at: 1, gpu: 0}\n", 2, "faults[0].kind: expected one of"),
    ("faults:\n  - {at: 1, gpu: 0, kind: xid}\n", 2, "faults[0].code: expected this field (required for a xid fault)"),
    ("faults:\n  - {at: 1, kind: xid, code: 4}\n", 2, "faults[0].gpu: expected this field"),
    (
        "faults:\n  - {at: 1, gpu: 0, kind: xid, code: 4}\n  - at: soon\n    gpu: 1\n    kind: dbe\n",
        3,
        "faults[1].at: expected a duration",
    ),
    ("faults:\n  - {at: 1, gpu: -2, kind: dbe}\n", 2, "faults[0].gpu: expected an integer >= 0, got -2"),
    (
        "faults:\n  - {at: 1, gpu: 0, kind: dbe, count: many}\n",
        2,
        "faults[0].count: expected an integer >= 1, got 'many'",
    ),
    (
        "faults:\n  - at: 1\n    gpu: 0\n    kind: power_brake\n    duration: 10\n    colour: red\n",
        6,
        "faults[0].colour: expected a field of a power_brake fault",
    ),
    (
        "faults:\n  - {at: 1, gpu: 0, kind: thermal_throttle, duration: 5, reason: lava}\n",
        2,
        "faults[0].reason: expected one of sw, hw",
    ),
    (
        "faults:\n  - {at: 1, gpu: 0, kind: sbe_rate, per_minute: fast, duration: 1m}\n",
        2,
        "faults[0].per_minute: expected a number",
    ),
    ("faults:\n  - {at: 1, gpu: 0, kind: xid, code: 4, code: 5}\n", 2, "faults[0].code: expected each key once"),
    ("bogus: 1\nfaults: []\n", 1, "bogus: expected one of name, description, faults"),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD, ids=[b[2][:40] for b in BAD])
def test_bad_scenarios_name_file_line_field(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    text_of = str(err.value)
    assert text_of.startswith(f"{path}:{line}: "), text_of
    assert message in text_of


def test_scenario_checked_against_the_simulation(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("faults:\n  - {at: 1, gpu: 0, kind: dbe}\n  - {at: 2, gpu: 5, kind: dbe}\n")
    with pytest.raises(ScenarioError, match=rf"^{path}:3: gpu: expected a GPU index below 2 .*got 5"):
        agent.sim.install(2, "h100-sxm", path)
    path.write_text("faults:\n  - {at: 1, gpu: 0, kind: nvlink_down, link: 0}\n")
    with pytest.raises(ScenarioError, match=rf"^{path}:2: link: expected an NVLink index below 0 \(profile a100-pcie"):
        agent.sim.install(2, "a100-pcie", path)
    path.write_text("faults:\n  - {at: 1, gpu: 0, kind: hang, function: nvmlMakeCoffee, seconds: 1}\n")
    with pytest.raises(ScenarioError, match=rf"^{path}:2: function: expected an NVML function"):
        agent.sim.install(1, "h100-sxm", path)
    assert agent.sim.installed() is None


def test_missing_file_and_unknown_profile(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read fault scenario"):
        load_scenario(tmp_path / "nope.yaml")
    with pytest.raises(ValueError, match="unknown simulator profile 'v100': expected one of h100-sxm, a100-pcie, t4"):
        agent.sim.install(1, "v100")
