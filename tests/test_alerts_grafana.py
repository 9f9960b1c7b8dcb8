"""The Grafana-managed rules run on chDB: each rule's ClickHouse query (plugin macros expanded) over
simulated data written through Store.insert, then the rule's own reduce + threshold. With the fault
the rule fires for the faulty node/GPU only; without it, it stays quiet."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest

from collector.alerting.grafana import evaluate, grafana_files
from collector.alerting.spec import Spec, load_default
from collector.grafana.macros import Context, TimeRange, expand

pytest.importorskip("chdb")

from collector.store.rows import GAUGE, SUM, Batch
from collector.store.settings import StorageSettings, chdb_dsn
from collector.store.writer import Store

S = 1_000_000_000
NOW = int(time.time()) // 60 * 60 + 30  # mid-minute: the last complete minute is well defined
STEP = 10


def _ticks(span_s: int, step: int = STEP) -> list[int]:
    return list(range(NOW - span_s, NOW + 1, step))


class Writer:
    """Simulated agent data for one tenant, as the collector would store it."""

    def __init__(self, tenant: str = "default") -> None:
        self.tenant = tenant
        self.batch = Batch()

    def series(
        self,
        metric: str,
        node: str,
        gpu: str,
        attrs: dict[str, str],
        values: Any,
        span_s: int = 2400,
        step: int = STEP,
        kind: str = GAUGE,
        until_s: int = 0,
        start: Any = None,
    ) -> None:
        """``start``: the counter's start (unix s), or a function of the point's time (a restart)."""
        attributes = {"gpu.index": gpu[-1:], **attrs} if gpu else dict(attrs)
        for t in _ticks(span_s, step):
            if t > NOW - until_s:
                break
            value = values(t) if callable(values) else values
            if value is None:
                continue
            start_s = start(t) if callable(start) else start
            start_ts = (NOW - 86400 if start_s is None else start_s) * S if kind == SUM else 0
            self.batch.samples.append(
                self.tenant, metric, "", node, gpu, attributes, t * S, float(value), start_ts, kind
            )

    def inventory(self, node: str, gpu: str, seen_s_ago: int) -> None:
        self.batch.inventory.append(self.tenant, gpu, node, "", (NOW - seen_s_ago) * S, gpu_index=int(gpu[-1:]))


def _step(at_s_ago: int, before: float, after: float):
    return lambda t: after if t >= NOW - at_s_ago else before


def _resource_data() -> Batch:
    w = Writer()
    bad, ok = ("node-bad", "GPU-bad0"), ("node-ok", "GPU-ok0")
    # Xid: the first 79 on GPU-bad0 5 minutes ago (new series at 1), a 63 on GPU-bad1; on node-ok an old 79
    # and an application Xid 13.
    w.series("hw.gpu.xid.errors", *bad, {"hw.gpu.xid": "79"}, 1, span_s=300, kind=SUM)
    w.series("hw.gpu.xid.errors", "node-bad", "GPU-bad1", {"hw.gpu.xid": "63"}, _step(200, 0, 1), kind=SUM)
    w.series("hw.gpu.xid.errors", *ok, {"hw.gpu.xid": "79"}, 1, kind=SUM)
    w.series("hw.gpu.xid.errors", *ok, {"hw.gpu.xid": "13"}, _step(120, 0, 4), kind=SUM)
    ecc = {"hw.gpu.ecc.scope": "volatile"}
    w.series("hw.gpu.ecc.errors", *bad, {**ecc, "hw.gpu.ecc.type": "uncorrected"}, _step(180, 0, 2), 2400, 60, SUM)
    w.series("hw.gpu.ecc.errors", *ok, {**ecc, "hw.gpu.ecc.type": "uncorrected"}, 0, 2400, 60, SUM)
    w.series("hw.gpu.ecc.errors", *ok, {**ecc, "hw.gpu.ecc.type": "corrected"}, lambda t: t - NOW + 9999, 2400, 60, SUM)
    for metric in ("hw.gpu.row_remap.failure", "hw.gpu.row_remap.pending", "hw.gpu.lost"):
        w.series(metric, *bad, {}, _step(300, 0, 1), 2400, 60)
        w.series(metric, *ok, {}, 0, 2400, 60)
    thermal = {"hw.gpu.throttle.reason": "hw_thermal_slowdown"}
    w.series("hw.gpu.throttle.active", *bad, thermal, 1)
    w.series("hw.gpu.throttle.active", *ok, thermal, lambda t: 1 if (t // STEP) % 3 == 0 else 0)
    w.series("hw.gpu.throttle.active", *ok, {"hw.gpu.throttle.reason": "sw_power_cap"}, 1)
    link3 = {"hw.nvlink.link": "3"}
    w.series(
        "hw.gpu.nvlink.errors", *bad, {**link3, "hw.error.type": "crc_flit"}, lambda t: (t - NOW) / 10 + 500, kind=SUM
    )
    w.series(
        "hw.gpu.nvlink.errors", *ok, {**link3, "hw.error.type": "crc_flit"}, lambda t: (t - NOW) / 60 + 500, kind=SUM
    )
    w.series("hw.gpu.nvlink.errors", *ok, {**link3, "hw.error.type": "recovery"}, lambda t: (t - NOW) + 5000, kind=SUM)
    w.series("hw.gpu.pcie.replays", *bad, {}, lambda t: (t - NOW) / 5 + 1000, kind=SUM)
    w.series("hw.gpu.pcie.replays", *ok, {}, lambda t: (t - NOW) / 20 + 1000, kind=SUM)
    port = {"ib.device": "mlx5_0", "ib.port": "1"}
    w.series("hw.network.ib.errors", "node-bad", "", {**port, "ib.counter": "link_downed"}, _step(300, 0, 1), kind=SUM)
    w.series("hw.network.ib.errors", "node-ok", "", {**port, "ib.counter": "link_downed"}, 3, kind=SUM)
    w.series(
        "hw.network.ib.errors",
        "node-bad",
        "",
        {**port, "ib.counter": "symbol_error"},
        lambda t: (t - NOW) / 10 + 99,
        kind=SUM,
    )
    w.series(
        "hw.network.ib.errors",
        "node-ok",
        "",
        {**port, "ib.counter": "symbol_error"},
        lambda t: (t - NOW) / 200 + 99,
        kind=SUM,
    )
    mc = {"edac.mc": "0", "edac.csrow": "2"}
    w.series(
        "hw.memory.edac.errors", "node-bad", "", {**mc, "hw.error.type": "uncorrected"}, _step(240, 0, 1), kind=SUM
    )
    w.series("hw.memory.edac.errors", "node-ok", "", {**mc, "hw.error.type": "uncorrected"}, 0, kind=SUM)
    w.series(
        "hw.memory.edac.errors", "node-ok", "", {**mc, "hw.error.type": "corrected"}, lambda t: t - NOW + 50, kind=SUM
    )
    # Inventory: node-bad had three GPUs (GPU-bad2 last seen 2 h ago), reports two now; node-ok one of one.
    for node, gpu, ago in (("node-bad", "GPU-bad0", 0), ("node-bad", "GPU-bad1", 0), ("node-bad", "GPU-bad2", 7200)):
        w.inventory(node, gpu, ago)
    w.inventory("node-ok", "GPU-ok0", 0)
    for node, gpu in (("node-bad", "GPU-bad0"), ("node-bad", "GPU-bad1"), ("node-ok", "GPU-ok0")):
        w.series("hw.gpu.info", node, gpu, {"hw.serial_number": gpu}, 1, 2400, 60)
    # node-stale stopped reporting 10 minutes ago.
    w.series("hw.gpu.temperature", "node-stale", "GPU-st0", {"hw.sensor": "gpu"}, 50, until_s=600)
    _collector_data(w)
    return w.batch


def _collector(w: Writer, host: str, instance: str, metric: str, attrs: dict[str, str], values: Any, **kw: Any) -> None:
    """A collector's self-telemetry row series (collector/selfmon.py): host as node, its instance id."""
    w.series(f"fleetpulse.collector.{metric}", host, "", {**attrs, "service.instance.id": instance}, values, **kw)


def _per_s(rate: float, since: int) -> Any:
    """A counter growing at ``rate`` per second from 0 at ``since`` (unix s)."""
    return lambda t: rate * (t - since)


def _collector_data(w: Writer) -> None:
    mib = 1024 * 1024
    bad, ok, gone = ("collector-bad", "inst-bad"), ("collector-ok", "inst-ok"), ("collector-gone", "inst-gone")
    origin = NOW - 2400
    counter = {"kind": SUM, "start": origin}
    # collector-bad: a 600 MiB WAL; 5 % of received points (http + its own self transport) too old,
    # another reason at 0.1 %.
    _collector(w, *bad, "wal.size", {}, 600 * mib)
    _collector(w, *bad, "points.received", {"transport": "http"}, _per_s(100, origin), **counter)
    _collector(w, *bad, "points.received", {"transport": "self"}, _per_s(10, origin), **counter)
    _collector(w, *bad, "points.rejected", {"reason": "timestamp_too_old"}, _per_s(5.5, origin), **counter)
    _collector(w, *bad, "points.rejected", {"reason": "non_finite"}, _per_s(0.1, origin), **counter)
    # collector-ok: a small WAL, 0.1 % rejected, and it restarted 5 minutes ago (counters reset: a
    # new start, lower values) — the reset must not look like a burst or a negative increase.
    restart = NOW - 300

    def since_restart(rate: float) -> Any:
        return lambda t: rate * (t - origin) if t < restart else rate * (t - restart)

    def start(t: int) -> int:
        return origin if t < restart else restart

    _collector(w, *ok, "wal.size", {}, mib)
    _collector(w, *ok, "points.received", {"transport": "http"}, since_restart(100), kind=SUM, start=start)
    _collector(w, *ok, "points.rejected", {"reason": "timestamp_too_old"}, since_restart(0.1), kind=SUM, start=start)
    # collector-gone stopped 10 minutes ago with a big WAL: too old for the gauge rule, and no agent, so
    # AgentStale leaves its host alone.
    _collector(w, *gone, "wal.size", {}, 700 * mib, until_s=600)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = Store(StorageSettings(dsn=chdb_dsn(tmp_path_factory.mktemp("alerts-ch"))))
    s.insert(_resource_data(), "resources")
    yield s
    s.close()


def _run(store: Store, rule: dict[str, Any]) -> list[dict[str, Any]]:
    query = rule["data"][0]
    rng = query["relativeTimeRange"]
    ctx = Context(TimeRange.last(rng["from"], NOW + 1), query["model"]["intervalMs"])
    sql = expand(query["model"]["rawSql"], ctx)
    result = store.query(sql)
    rows = [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]
    return evaluate(rule, rows)


def _rules(spec: Spec, file: str) -> dict[str, dict[str, Any]]:
    return {r["uid"]: r for g in grafana_files(spec)[file]["groups"] for r in g["rules"]}


EXPECTED_RESOURCE: dict[str, list[dict[str, str]]] = {
    "fp-gpu-xid-error-page": [{"node": "node-bad", "gpu": "GPU-bad0", "gpu_index": "0", "hw_gpu_xid": "79"}],
    "fp-gpu-xid-error-ticket": [{"node": "node-bad", "gpu": "GPU-bad1", "gpu_index": "1", "hw_gpu_xid": "63"}],
    "fp-gpu-ecc-uncorrectable": [{"node": "node-bad", "gpu": "GPU-bad0", "gpu_index": "0"}],
    "fp-gpu-row-remap-failure": [{"node": "node-bad", "gpu": "GPU-bad0", "gpu_index": "0"}],
    "fp-gpu-row-remap-pending": [{"node": "node-bad", "gpu": "GPU-bad0", "gpu_index": "0"}],
    "fp-gpu-lost": [{"node": "node-bad", "gpu": "GPU-bad0", "gpu_index": "0"}],
    "fp-gpu-count-below-inventory": [{"node": "node-bad"}],
    "fp-gpu-thermal-slowdown-sustained": [{"node": "node-bad", "gpu": "GPU-bad0", "gpu_index": "0"}],
    "fp-nvlink-error-rate": [{"node": "node-bad", "gpu": "GPU-bad0", "gpu_index": "0", "hw_nvlink_link": "3"}],
    "fp-pcie-replay-rate": [{"node": "node-bad", "gpu": "GPU-bad0", "gpu_index": "0"}],
    "fp-ib-link-downed": [{"node": "node-bad", "ib_device": "mlx5_0", "ib_port": "1"}],
    "fp-ib-symbol-error-rate": [{"node": "node-bad", "ib_device": "mlx5_0", "ib_port": "1"}],
    "fp-host-edac-uncorrectable": [{"node": "node-bad", "edac_mc": "0"}],
    "fp-agent-stale": [{"node": "node-stale"}],
    "fp-collector-rejecting": [{"node": "collector-bad", "instance": "inst-bad", "reason": "timestamp_too_old"}],
    "fp-collector-wal-backlog": [{"node": "collector-bad", "instance": "inst-bad"}],
}


def test_every_grafana_resource_rule_has_a_case() -> None:
    assert set(_rules(load_default(), "resources.yaml")) == set(EXPECTED_RESOURCE)


@pytest.mark.parametrize("uid", sorted(EXPECTED_RESOURCE))
def test_resource_rule_fires_on_fault_only(store: Store, uid: str) -> None:
    rule = _rules(load_default(), "resources.yaml")[uid]
    firing = _run(store, rule)
    assert sorted((f["labels"] for f in firing), key=str) == EXPECTED_RESOURCE[uid], firing
    # Healthy neighbours were evaluated too (they are rows under the threshold, or absent by design).
    assert all(f["labels"]["node"] not in ("node-ok", "collector-ok", "collector-gone") for f in firing)


def test_collector_rejecting_value_is_the_share_of_received_points(store: Store) -> None:
    (firing,) = _run(store, _rules(load_default(), "resources.yaml")["fp-collector-rejecting"])
    assert firing["value"] == pytest.approx(5.5 / 110, rel=0.02)


# ---------------------------------------------------------------- SLO burn-rate rules


def _slo_data(tenant: str, faulty: bool) -> Batch:
    w = Writer(tenant)
    span = 4500  # 75 minutes: covers the 1h window and part of the longer ones
    for i in range(10):
        node, gpu = f"node-{i // 2}", f"GPU-{i}"
        # GPU-0 is lost the whole time (availability); GPU-1 lost from 60 to 10 minutes ago only.
        lost: Any = 0
        if faulty and i == 0:
            lost = 1
        w.series("hw.gpu.lost", node, gpu, {}, lost, span)
        w.series("hw.gpu.row_remap.failure", node, gpu, {}, 0, span, 60)
        harmful = 1 if faulty and i == 2 else 0
        w.series("hw.gpu.throttle.active", node, gpu, {"hw.gpu.throttle.reason": "hw_slowdown"}, harmful, span)
        w.series("hw.gpu.throttle.active", node, gpu, {"hw.gpu.throttle.reason": "gpu_idle"}, 1, span)
        w.inventory(node, gpu, span)  # first seen when the data starts, still seen now
        w.inventory(node, gpu, 0)
        # Freshness heartbeat: node-4 (GPUs 8, 9) sends nothing when faulty.
        if not (faulty and i >= 8):
            w.series("hw.gpu.power.usage", node, gpu, {}, 300, span)
    # Ingest: two collectors, one restarted 30 minutes ago (its counters reset). Faulty: 2 % of received
    # points rejected (20x the 0.1 % budget); healthy: none rejected.
    origin, restart = NOW - span, NOW - 1800
    for host, restarts in (("coll-a", False), ("coll-b", True)):

        def start(t: int, restarts: bool = restarts) -> int:
            return restart if restarts and t >= restart else origin

        def grows(rate: float, start=start) -> Any:
            return lambda t: rate * (t - start(t))

        counter = {"kind": SUM, "start": start, "span_s": span}
        _collector(w, host, f"id-{host}", "points.received", {"transport": "http"}, grows(100), **counter)
        if faulty:
            _collector(w, host, f"id-{host}", "points.rejected", {"reason": "rate_limited"}, grows(2), **counter)
    return w.batch


def _long_not_short(tenant: str) -> Batch:
    """GPU-0 of 10 lost from 60 to 10 minutes ago: the 1h window burns, the last 5 minutes do not."""
    w = Writer(tenant)
    for i in range(10):
        lost = (lambda t: 1 if NOW - 3600 <= t < NOW - 600 else 0) if i == 0 else 0
        w.series("hw.gpu.lost", f"node-{i // 2}", f"GPU-{i}", {}, lost, 4500)
    # Ingest: 5 % rejected from 60 to 10 minutes ago, none since (the rejected counter stays flat).
    origin = NOW - 4500
    counter = {"kind": SUM, "start": origin, "span_s": 4500}
    _collector(w, "coll-a", "id-a", "points.received", {"transport": "http"}, _per_s(100, origin), **counter)

    def rejected(t: int) -> float:
        return 5.0 * (min(t, NOW - 600) - (NOW - 3600)) if t >= NOW - 3600 else 0.0

    _collector(w, "coll-a", "id-a", "points.rejected", {"reason": "wal_full"}, rejected, **counter)
    return w.batch


@pytest.fixture(scope="module")
def slo_store(store: Store) -> Store:
    store.insert(_slo_data("slo-bad", True), "slo-bad")
    store.insert(_slo_data("slo-ok", False), "slo-ok")
    store.insert(_long_not_short("slo-edge"), "slo-edge")
    return store


def _slo_rules(tenant: str) -> dict[str, dict[str, Any]]:
    spec = load_default()
    spec = dataclasses.replace(spec, settings=dataclasses.replace(spec.settings, tenant=tenant))
    return _rules(spec, "slo-alerts.yaml")


def test_slo_rules_cover_every_grafana_slo_and_pair() -> None:
    spec = load_default()
    rules = _slo_rules("default")
    grafana_slos = [s for s in spec.slos if "grafana" in s.backends]
    assert len(rules) == len(grafana_slos) * len(spec.burn_rates) == 16


def test_slo_rules_fire_with_fault(slo_store: Store) -> None:
    fired = {uid for uid, rule in _slo_rules("slo-bad").items() if _run(slo_store, rule)}
    # 1 of 10 GPUs lost (burn 100x), 1 of 10 throttled (10x of a 1 % budget), 1 of 5 nodes silent (40x),
    # 2 % of points rejected (20x, across a collector restart): every pair of every SLO except
    # throttle's 14.4x page, which 10x stays under.
    assert fired == set(_slo_rules("slo-bad")) - {"fp-gpu-throttle-budget-burn-1h-5m"}, fired


def test_slo_rules_quiet_without_fault(slo_store: Store) -> None:
    fired = {uid: _run(slo_store, rule) for uid, rule in _slo_rules("slo-ok").items()}
    assert not any(fired.values()), fired


def test_slo_long_window_burning_short_window_not_stays_quiet(slo_store: Store) -> None:
    rules = _slo_rules("slo-edge")
    page_1h = rules["fp-gpu-availability-budget-burn-1h-5m"]
    page_6h = rules["fp-gpu-availability-budget-burn-6h-30m"]
    assert _run(slo_store, page_1h) == []  # 1h burns ~83x, the last 5 minutes 0x
    burning = _run(slo_store, page_6h)  # 30m window: 20 of 30 minutes lost → burns
    assert len(burning) == 1 and burning[0]["value"] > 6
    assert _run(slo_store, rules["fp-ingest-budget-burn-1h-5m"]) == []  # 1h: ~42x, last 5 minutes: 0x
    (ingest,) = _run(slo_store, rules["fp-ingest-budget-burn-6h-30m"])  # 30m: 20 minutes at 5 % → ~33x
    assert ingest["value"] == pytest.approx(min(50 * 5 / 75, 20 * 5 / 30) * 10, rel=0.05)


def test_ingest_slo_burn_rate_is_rejected_over_received(slo_store: Store) -> None:
    """The value is the error ratio over the budget: 2 % rejected / 0.1 % = 20, a restart not counted twice."""
    rules = _slo_rules("slo-bad")
    for uid in ("fp-ingest-budget-burn-1h-5m", "fp-ingest-budget-burn-3d-6h"):
        (firing,) = _run(slo_store, rules[uid])
        assert firing["value"] == pytest.approx(20, rel=0.02), uid
