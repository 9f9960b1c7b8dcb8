"""Reports over the standard simulated fleet: each finds exactly the injected GPUs, codes and windows."""

from __future__ import annotations

import pytest

from agent.catalog import THROTTLE_REASONS
from collector.fleet_sim.host import SENSORS
from collector.fleet_sim.model import GPU_TASKS, THROTTLE_TIME_REASONS
from collector.reports import run_report
from tests import fleet_fixture

fleet_dataset = fleet_fixture.fleet_dataset  # pytest fixtures used by this module
fleet = fleet_fixture.fleet


def faults(manifest: dict, kind: str) -> list[dict]:
    return [f for f in manifest["faults"] if f["kind"] == kind]


def window(manifest: dict, **extra: str) -> dict[str, str]:
    return {"since": manifest["fleet"]["start"], "until": manifest["fleet"]["end"], **extra}


def silent_gpus(manifest: dict) -> set[str]:
    return {g for f in faults(manifest, "node_silent") for g in f["gpus"]}


def test_manifest_has_every_default_fault_kind(fleet):
    _, manifest, _ = fleet
    kinds = {f["kind"] for f in manifest["faults"]}
    assert kinds >= {
        "sbe_rising",
        "row_remap_pending",
        "xid",
        "gpu_lost",
        "thermal_throttle",
        "ib_symbol_errors",
        "nvlink_crc",
        "node_silent",
    }
    assert len(manifest["moves"]) == 2
    assert {f["code"] for f in faults(manifest, "xid")} == {63, 79}


@pytest.mark.parametrize("resolution", ["raw", "1m"])
def test_throttle_finds_exactly_the_throttled_rack(fleet, resolution):
    store, manifest, _ = fleet
    result = run_report("throttle", store, "default", window(manifest, resolution=resolution))
    got = {(r["gpu"], r["reason"]): r for r in result.records()}
    expected = {(f["gpu"], f["reason"]): f for f in faults(manifest, "thermal_throttle")}
    assert len(expected) == 16  # 2 nodes x 8 GPUs in rack 1
    assert set(got) == set(expected)
    for key, f in expected.items():
        r = got[key]
        assert r["first_active"] == f["start"]
        assert r["last_active"] == f["end"]
        assert r["throttled"] == pytest.approx(f["seconds"])
        window_s = (manifest["fleet"]["end_ns"] - manifest["fleet"]["start_ns"]) / 1e9
        assert r["share"] == pytest.approx(100 * f["seconds"] / window_s, abs=0.01)
        assert r["onsets"] == 1
    assert result.units[result.columns.index("throttled")] == "s"


@pytest.mark.parametrize("resolution", ["raw", "1m"])
def test_ecc_finds_exactly_the_rising_sbe_gpus_and_their_increase_times(fleet, resolution):
    store, manifest, _ = fleet
    result = run_report("ecc", store, "default", window(manifest, resolution=resolution))
    rows = {r["gpu"]: r for r in result.records()}
    sbe = {f["gpu"]: f for f in faults(manifest, "sbe_rising")}
    pending = {f["gpu"] for f in faults(manifest, "row_remap_pending")}
    assert set(rows) == set(sbe) | pending
    for gpu, f in sbe.items():
        assert rows[gpu]["sbe_volatile"] == f["total"]
        assert rows[gpu]["sbe_aggregate"] == f["total"]
        assert rows[gpu]["dbe_volatile"] == 0
        assert rows[gpu]["first_increase"] == f["start"]
        assert rows[gpu]["last_increase"] == f["end"]
        assert rows[gpu]["remap_pending"] == ("yes" if gpu in pending else "no")
        times = [
            i["time"] for i in result.section("increases").records() if i["gpu"] == gpu and i["scope"] == "volatile"
        ]
        assert times == [i["time"] for i in f["increases"]]
    for gpu in pending:
        assert rows[gpu]["remapped_rows_corr"] == 1


def test_xid_finds_exactly_the_injected_codes(fleet):
    store, manifest, _ = fleet
    result = run_report("xid", store, "default", window(manifest))
    got = {(r["gpu"], r["code"], r["first"], r["count"]) for r in result.records()}
    expected = {(f["gpu"], f["code"], f["start"], 1) for f in faults(manifest, "xid")}
    assert got == expected
    by_code = {r["code"]: r for r in result.records()}
    assert by_code[79]["severity"] == "fatal" and "reboot" in by_code[79]["action"]
    assert by_code[63]["severity"] == "warning"
    assert result.rows[0][0] == 79  # most severe first


@pytest.mark.parametrize("resolution", ["raw", "1m", "1h"])
def test_health_verdicts_missing_gpus_and_node_findings(fleet, resolution):
    store, manifest, _ = fleet
    result = run_report("health", store, "default", window(manifest, resolution=resolution))
    verdicts = {r["gpu"]: r for r in result.records()}
    missing = silent_gpus(manifest)
    lost = {f["gpu"] for f in faults(manifest, "gpu_lost")}
    degraded = (
        (
            {f["gpu"] for f in faults(manifest, "sbe_rising")}
            | {f["gpu"] for f in faults(manifest, "row_remap_pending")}
            | {f["gpu"] for f in faults(manifest, "nvlink_crc")}
            | {f["gpu"] for f in faults(manifest, "thermal_throttle")}
        )
        - missing
        - lost
    )
    assert {g for g, r in verdicts.items() if r["verdict"] == "unhealthy"} == lost
    assert {g for g, r in verdicts.items() if r["verdict"] == "degraded"} == degraded
    assert len(verdicts) + len(missing) == manifest["fleet"]["gpus"]
    assert {r["gpu"] for r in result.section("missing").records()} == missing
    (silent,) = faults(manifest, "node_silent")
    assert {r["last_seen"] for r in result.section("missing").records()} == {silent["last_report"]}
    for gpu in lost:
        assert "Xid 79" in verdicts[gpu]["reason"] and "reboot" in verdicts[gpu]["action"]
    for f in faults(manifest, "row_remap_pending"):
        assert "row remap pending" in verdicts[f["gpu"]]["reason"]
    for f in faults(manifest, "nvlink_crc"):
        assert f"link {f['link']}" in verdicts[f["gpu"]]["reason"]
    nodes = result.section("nodes").records()
    # At 1 h resolution an increase is dated by its hour bucket.
    when = (lambda t: t[:14] + "00:00Z") if resolution == "1h" else (lambda t: t)
    expected = {
        (f["node"], f"ib {f['device']} port {f['port']}", f["counter"], when(f["start"]), when(f["end"]))
        for f in faults(manifest, "ib_symbol_errors")
    }
    assert {(r["node"], r["component"], r["counter"], r["first"], r["last"]) for r in nodes} == expected
    assert result.rows[0][2] == "unhealthy"  # worst first


def test_freshness_finds_exactly_the_silent_node(fleet):
    store, manifest, _ = fleet
    result = run_report("freshness", store, "default", window(manifest))
    (silent,) = faults(manifest, "node_silent")
    assert [(r["node"], r["last_sample"]) for r in result.records()] == [(silent["node"], silent["last_report"])]
    assert run_report("freshness", store, "default", window(manifest, late="2h")).rows == []


def test_gpu_report_follows_a_moved_gpu_across_nodes(fleet):
    store, manifest, _ = fleet
    move = manifest["moves"][0]
    result = run_report("gpu", store, "default", window(manifest, arg=move["gpu"]))
    nodes = [r["node"] for r in result.section("inventory").records()]
    assert nodes == [move["from_node"], move["to_node"]]
    (hop,) = result.section("moves").records()
    assert (hop["from_node"], hop["to_node"], hop["arrived"]) == (move["from_node"], move["to_node"], move["time"])
    assert dict(result.rows)["verdict"] == "healthy"
    assert len(result.plots) == 5 and all(p.points for p in result.plots[:4])


def test_gpu_report_carries_the_ecc_evidence(fleet):
    store, manifest, _ = fleet
    f = faults(manifest, "sbe_rising")[0]
    result = run_report("gpu", store, "default", window(manifest, arg=f["gpu"]))
    times = [r["time"] for r in result.section("ecc_increases").records() if r["scope"] == "volatile"]
    assert times == [i["time"] for i in f["increases"]]
    events = {r["event"] for r in result.section("events").records()}
    assert "gpu.ecc.increase" in events
    assert dict(result.rows)["verdict"] == "degraded"


def test_cardinality_counts_series_per_metric_and_attribute_keys(fleet):
    store, manifest, _ = fleet
    result = run_report("cardinality", store, "default", window(manifest))
    per_metric = {r["metric"]: r for r in result.records()}
    # one energy series per (GPU, node it lived on): 48 GPUs + 2 that moved
    assert per_metric["hw.gpu.energy"]["series"] == manifest["fleet"]["gpus"] + len(manifest["moves"])
    # utilization per task (general, memory, encoder, decoder), as the agent's NVML source reports it
    assert per_metric["hw.gpu.utilization"]["series"] == len(GPU_TASKS) * per_metric["hw.gpu.energy"]["series"]
    keys = {r["key"]: r for r in result.section("attribute_keys").records()}
    # only GPU UUIDs: the host temperature sensors' hw.id (hwmon1/temp1 ...) stays an attribute of hw.temperature
    assert keys["(gpu)"]["distinct_values"] == manifest["fleet"]["gpus"]
    assert keys["hw.id"]["distinct_values"] == len(SENSORS)
    assert per_metric["hw.temperature"]["gpus"] == 0
    assert keys["(node)"]["distinct_values"] == manifest["fleet"]["nodes"]
    # every clock-event reason (throttle.active) and every throttle-time field (throttle.time)
    assert keys["hw.gpu.throttle.reason"]["distinct_values"] == len({*THROTTLE_REASONS, *THROTTLE_TIME_REASONS})


def test_filters_narrow_every_report(fleet):
    store, manifest, _ = fleet
    f = faults(manifest, "thermal_throttle")[0]
    result = run_report("throttle", store, "default", window(manifest, node=f["node"]))
    assert {r["node"] for r in result.records()} == {f["node"]}
    assert len(result.rows) == 8
    assert run_report("throttle", store, "default", window(manifest, gpu=f["gpu"])).records()[0]["gpu"] == f["gpu"]
    assert run_report("health", store, "default", window(manifest, cluster="no-such-cluster")).rows == []


def test_reports_are_tenant_scoped(fleet):
    store, manifest, _ = fleet
    for name in ("throttle", "ecc", "xid", "health", "freshness"):
        assert run_report(name, store, "someone-else", window(manifest)).rows == [], name
