"""Every dashboard query runs on real ClickHouse (chDB) over a simulated fleet with known faults.

The store is filled by the fleet simulator through the collector's real write path (OTLP/HTTP →
WAL → writer → chDB). The simulator sends what a real agent on an 8-GPU node sends (NVML, host PSI,
disk, network, fabric, EDAC, AER and the agent's own fleetpulse.agent.* metrics, with an injected
NVML call timeout for the agent-errors panel), so no live agent is needed. Each panel's rawSql is
expanded as the plugin does (collector/grafana/macros.py) for "All" and for one specific
cluster/node/GPU, over ranges that select each storage tier, and must return rows. Fault panels must
list exactly the manifest's faults.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from collector.grafana import generate
from collector.grafana.macros import ALL, Context, TimeRange, expand

WHOLE_NODE = "sim-node-0000"  # selected with every GPU ("All"), as an SRE opens one node
HOUR = 3600

pytestmark = pytest.mark.timeout(600)


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from collector.fleet_sim import FleetSpec, OtlpHttpSender, build_plan, load_scenario, simulate
    from collector.fleet_sim.inprocess import local_collector
    from collector.store.client import release
    from collector.store.settings import StorageSettings
    from collector.store.writer import Store

    work = tmp_path_factory.mktemp("dash-fleet")
    settings = StorageSettings(dsn=f"chdb://{work / 'clickhouse'}")
    # Small but complete: the default fault scenario needs 6 nodes (racks of 4) and 8 GPU slots; 8 NVLinks
    # and 2 IB devices still hold the injected link 7 and mlx5_1.
    spec = FleetSpec(nodes=6, gpus_per_node=8, duration_s=12 * HOUR, interval_s=600, nvlinks=8, ib_devices=2, seed=3)
    plan = build_plan(spec, load_scenario())
    # The collector that ingests the fleet stores its own fleetpulse.collector.* series too (Pipeline board).
    with local_collector(
        settings.dsn, max_past_s=int(spec.duration_s) + 2 * HOUR, fsync=False, self_telemetry=True
    ) as (collector, url):
        summary = simulate(plan, OtlpHttpSender(url), progress=None)
        # A snapshot now, after the fleet's requests, and the last one at stop: two points per collector
        # counter since the requests (rates need two), as a collector running for a while would have.
        assert collector.selfmon.snapshot(aligned=False)
    assert summary.rejected_points == 0 and summary.rejected_logs == 0
    store = Store(settings)
    manifest = summary.manifest
    # Ranges end at the last stored sample: the collector's own, written in real time after the fleet's last tick.
    last_ms = store.query("SELECT toUnixTimestamp64Milli(max(ts)) FROM fleetpulse.samples").result_rows[0][0]
    yield {"store": store, "manifest": manifest, "to_ms": max(int(last_ms), manifest["fleet"]["end_ns"] // 10**6)}
    store.close()
    release(settings)


# ---------------------------------------------------------------- panel inventory


def _panels() -> list[tuple[str, str, str, int]]:
    """(dashboard uid, panel title, rawSql, format) of every ClickHouse query in the generated JSON."""
    out = []
    for uid, board in generate.all_dashboards().items():
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                if "rawSql" in target:
                    out.append((uid, panel["title"], target["rawSql"], target["format"]))
        for ann in board["annotations"]["list"]:
            if "rawSql" in ann.get("target", {}):
                out.append((uid, f"annotation {ann['name']}", ann["target"]["rawSql"], 1))
    return out


PANELS = _panels()
# Panels whose metrics no source emits in this dataset: none. (Kept explicit so a new gap shows here.)
NO_ROWS_EXPECTED: set[tuple[str, str]] = set()


def _run(fleet: dict[str, Any], sql: str, range_s: int, to_ms: int | None = None, **variables: Any) -> list[tuple]:
    to_ms = to_ms if to_ms is not None else fleet["to_ms"]
    values = {"tenant": "default", "cluster": [ALL], "node": [ALL], "gpu": [ALL]}
    values.update(variables)
    ctx = Context(TimeRange(to_ms - range_s * 1000, to_ms), interval_ms=_interval_ms(range_s), variables=values)
    return fleet["store"].query(expand(sql, ctx)).result_rows


def _interval_ms(range_s: int) -> int:
    """Grafana's $__interval for a ~1000 px panel: range / 1000, rounded to a nice step, at least 1 s."""
    for step in (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 10800, 21600, 86400):
        if range_s / 1000 <= step:
            return step * 1000
    return 86400 * 1000


# Ranges: 6 h reads raw samples, 12 h the 1 m rollup, 4 d the 1 h rollup (sql.RAW_MAX_RANGE_S ...).
TIER_RANGES = {"raw": 6 * HOUR, "1m": 13 * HOUR, "1h": 4 * 86400}


@pytest.mark.parametrize("tier", list(TIER_RANGES))
@pytest.mark.parametrize(("uid", "title", "sql", "fmt"), PANELS, ids=[f"{u}:{t}" for u, t, _, _ in PANELS])
def test_every_panel_returns_rows_for_all(fleet, uid, title, sql, fmt, tier) -> None:
    rows = _run(fleet, sql, TIER_RANGES[tier])
    if not rows and tier == "raw":
        # Fault tables have rows only around their fault: also try the 6 h in the middle of the history.
        start_ms = fleet["manifest"]["fleet"]["start_ns"] // 10**6
        rows = _run(fleet, sql, TIER_RANGES[tier], start_ms + 9 * HOUR * 1000)
    assert rows, f"{uid} / {title} returned no rows over {tier} ({TIER_RANGES[tier]} s, All selected)"


def _selections(fleet: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(cluster, node, gpu) picks: one GPU or node per injected fault kind, then one whole node."""
    picks = []
    for f in fleet["manifest"]["faults"]:
        if "gpu" in f and isinstance(f["gpu"], str):
            picks.append((f["cluster"], f["node"], f["gpu"]))
        elif "device" in f:
            picks.append((f["cluster"], f["node"], ALL))
    picks.append(("sim-cluster-0", WHOLE_NODE, ALL))
    return list(dict.fromkeys(picks))


@pytest.mark.parametrize(("uid", "title", "sql", "fmt"), PANELS, ids=[f"{u}:{t}" for u, t, _, _ in PANELS])
def test_every_panel_runs_for_a_specific_selection(fleet, uid, title, sql, fmt) -> None:
    """Runs (valid SQL) for every single-value selection; returns rows for at least one; stays on it."""
    hits = 0
    for cluster, node, gpu in _selections(fleet):
        rows = _run(fleet, sql, TIER_RANGES["1h"], cluster=[cluster], node=[node], gpu=[gpu])
        if not rows:
            continue
        hits += 1
        names = _columns(fleet, sql, cluster, node, gpu)
        if "node" in names:
            assert {r[names.index("node")] for r in rows} == {node}, f"{uid} / {title}: node filter leaked"
        if "gpu" in names and gpu != ALL:
            assert {r[names.index("gpu")] for r in rows} == {gpu}, f"{uid} / {title}: gpu filter leaked"
    assert hits, f"{uid} / {title} returned no rows for any single-node selection"


def _columns(fleet, sql: str, cluster: str, node: str, gpu: str) -> list[str]:
    to_ms = fleet["to_ms"]
    ctx = Context(
        TimeRange(to_ms - 3600_000, to_ms),
        variables={"tenant": "default", "cluster": [cluster], "node": [node], "gpu": [gpu]},
    )
    return list(fleet["store"].query(f"SELECT * FROM (\n{expand(sql, ctx)}\n) LIMIT 0").column_names)


def test_variable_queries_list_the_fleet(fleet) -> None:
    from collector.grafana.panels import variable_queries

    q = variable_queries()
    m = fleet["manifest"]["fleet"]
    clusters = [r[0] for r in _run(fleet, q["cluster"], HOUR)]
    assert clusters == m["clusters"]
    nodes = [r[0] for r in _run(fleet, q["node"], HOUR)]
    assert nodes == [f"sim-node-{i:04d}" for i in range(m["nodes"])]  # agents' nodes, not the collector's
    one = nodes[1]
    gpus = _run(fleet, q["gpu"], HOUR, node=one)
    assert len(gpus) >= m["gpus_per_node"] and all(text.startswith(f"{one} gpu") for _, text in gpus)


# ---------------------------------------------------------------- fault panels show exactly the faults


def _faults(fleet, kind: str) -> list[dict[str, Any]]:
    return [f for f in fleet["manifest"]["faults"] if f["kind"] == kind]


def _panel_sql(uid: str, title: str) -> str:
    for u, t, sql, _ in PANELS:
        if u == uid and t == title:
            return sql
    raise KeyError(f"{uid} has no panel {title!r}")


def _fault_windows(fleet, faults: list[dict[str, Any]]) -> dict[str, tuple[int, int | None]]:
    """Per tier: (range_s, to_ms) that covers the faults (raw: a 6 h window around them)."""
    first = min(_ms(f["start"]) for f in faults)
    raw_to = min(first + 5 * HOUR * 1000, fleet["to_ms"])
    return {"raw": (6 * HOUR, raw_to), "1m": (13 * HOUR, None), "1h": (4 * 86400, None)}


def _tiers(fleet, faults):
    return _fault_windows(fleet, faults).items()


def test_thermal_panel_lists_exactly_the_throttled_rack(fleet) -> None:
    faults = _faults(fleet, "thermal_throttle")
    expected = {(f["node"], f["gpu"]) for f in faults}
    assert len(expected) >= 8
    sql = _panel_sql("fleetpulse-gpu", "Throttled GPUs")
    for tier, (range_s, to_ms) in _tiers(fleet, faults):
        rows = _run(fleet, sql, range_s, to_ms)
        got = {(r[0], r[1]) for r in rows}
        assert got == expected, f"{tier}: throttled GPUs differ: extra {got - expected}, missing {expected - got}"
        assert {r[3] for r in rows} == {"hw_thermal_slowdown"}
        assert all(r[4] > 0 for r in rows)


def test_xid_table_shows_exactly_the_injected_codes(fleet) -> None:
    faults = _faults(fleet, "xid")
    expected = Counter((f["node"], f["gpu"], f["code"]) for f in faults)
    sql = _panel_sql("fleetpulse-gpu", "Xid errors")
    for tier, (range_s, to_ms) in _tiers(fleet, faults):
        if tier == "raw":  # events are not tiered; one window covering all of them suffices
            continue
        rows = _run(fleet, sql, range_s, to_ms)
        got = Counter({(r[0], r[1], r[3]): r[4] for r in rows})
        assert got == expected, f"{tier}: Xid rows {got} != manifest {expected}"
        assert all(r[8] for r in rows), "every Xid row carries a recommended action"
    assert {code for _, _, code in expected} == {79, 63}


def test_ecc_panels_show_exactly_the_sbe_gpus(fleet) -> None:
    faults = _faults(fleet, "sbe_rising")
    expected = {(f["node"], f["gpu"]): f["total"] for f in faults}
    sql = _panel_sql("fleetpulse-gpu", "ECC errors in range")
    for tier, (range_s, to_ms) in (("1m", (13 * HOUR, None)), ("1h", (4 * 86400, None))):
        rows = _run(fleet, sql, range_s, to_ms)
        got = {(r[0], r[1]): r[3] for r in rows}
        assert got == expected, f"{tier}: ECC rows {got} != manifest {expected}"
        assert all(r[4] == 0 for r in rows)
    total = _run(fleet, _panel_sql("fleetpulse-overview", "Corrected ECC errors"), 13 * HOUR)
    assert total[0][0] == sum(expected.values())


def test_worst_offenders_are_the_faulty_gpus(fleet) -> None:
    gpus = set()
    for kind in ("sbe_rising", "xid", "thermal_throttle"):
        gpus |= {(f["node"], f["gpu"]) for f in _faults(fleet, kind)}
    rows = _run(fleet, _panel_sql("fleetpulse-overview", "Worst offenders"), 13 * HOUR)
    assert {(r[0], r[1]) for r in rows} <= gpus
    assert len(rows) == min(25, len(gpus))
    xid_gpus = {(f["node"], f["gpu"]) for f in _faults(fleet, "xid")}
    assert {(r[0], r[1]) for r in rows[: len(xid_gpus)]} == xid_gpus, "GPUs with Xids rank first"


def test_health_panel_counts_lost_pending_and_stale(fleet) -> None:
    end_ms = fleet["manifest"]["fleet"]["end_ns"] // 10**6
    rows = dict(_run(fleet, _panel_sql("fleetpulse-overview", "GPUs by health"), HOUR, end_ms))
    silent = _faults(fleet, "node_silent")
    assert rows.get("lost") == len(_faults(fleet, "gpu_lost"))
    assert rows.get("reset pending") == len(_faults(fleet, "row_remap_pending"))
    assert rows.get("stale") == sum(len(f["gpus"]) for f in silent)
    assert "throttled" not in rows  # the thermal window ended hours before the range end
    assert sum(rows.values()) == fleet["manifest"]["fleet"]["gpus"]


def test_ib_and_nvlink_tables_show_exactly_the_faulty_links(fleet) -> None:
    ib = _faults(fleet, "ib_symbol_errors")
    rows = _run(fleet, _panel_sql("fleetpulse-fabric", "InfiniBand ports with errors"), 13 * HOUR)
    assert {(r[0], r[1], r[2], r[3]) for r in rows} == {
        (f["node"], f["device"], str(f["port"]), f["counter"]) for f in ib
    }
    nv = _faults(fleet, "nvlink_crc")
    rows = _run(fleet, _panel_sql("fleetpulse-fabric", "NVLinks with errors"), 4 * 86400)
    assert {(r[0], r[1], r[3]) for r in rows} == {(f["node"], f["gpu"], str(f["link"])) for f in nv}
    assert {r[4] for r in rows} == {"crc_flit", "crc_data"}


def test_inventory_panel_shows_the_moves(fleet) -> None:
    moves = fleet["manifest"]["moves"]
    rows = _run(fleet, _panel_sql("fleetpulse-gpu", "Inventory and node moves"), 13 * HOUR)
    moved = {(r[0], r[1]) for r in rows if r[7] > 1}
    assert moved == {(m["gpu"], m["from_node"]) for m in moves} | {(m["gpu"], m["to_node"]) for m in moves}


def test_freshness_flags_the_silent_node(fleet) -> None:
    end_ms = fleet["manifest"]["fleet"]["end_ns"] // 10**6
    rows = _run(fleet, _panel_sql("fleetpulse-overview", "Telemetry freshness"), 13 * HOUR, end_ms)
    stale = {r[0] for r in rows if r[3] >= 300}
    assert stale == {f["node"] for f in _faults(fleet, "node_silent")}


def test_rollup_tiers_agree_on_the_thermal_throttle_time(fleet) -> None:
    """The same counter panel over raw, 1 m and 1 h tables gives the same total GPU-seconds."""
    sql = _panel_sql("fleetpulse-gpu", "Throttled GPUs")
    totals = {
        tier: sum(r[4] for r in _run(fleet, sql, *w)) for tier, w in _tiers(fleet, _faults(fleet, "thermal_throttle"))
    }
    assert len(set(round(v) for v in totals.values())) == 1, totals
