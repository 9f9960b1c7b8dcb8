"""The collector stores its own metrics (collector/selfmon.py): in process, real chDB, its own OTLP ingest
path. Stored values match /metrics, counters grow across snapshots, a restart shows as a reset."""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.catalog import MetricSpec
from collector.config import CollectorConfig, ConfigError, load_config, validate
from collector.receiver.core import UNAVAILABLE, Rejected
from collector.selfmon import SelfMonitor, snapshot_request
from collector.server import Collector
from collector.telemetry import Telemetry, otel_name, self_metrics
from tests.conftest import free_port
from tests.otlp_clients import get, metrics_request, post

pytestmark = pytest.mark.timeout(120)

S = 1_000_000_000
TENANT = "selfmon"


# ---------------------------------------------------------------- name mapping and the OTLP snapshot


def test_every_self_metric_has_an_otel_name_that_translates_back() -> None:
    metrics = self_metrics()
    assert len(metrics) == len({m.prometheus_name for m in metrics.values()}) >= 12
    assert metrics["fleetpulse.collector.points.received"].prometheus_name == (
        "fleetpulse_collector_points_received_total"
    )
    assert metrics["fleetpulse.collector.flush.duration"].stored_metrics() == (
        "fleetpulse.collector.flush.duration_count",
        "fleetpulse.collector.flush.duration_sum",
        "fleetpulse.collector.flush.duration_bucket",
    )
    for m in metrics.values():
        assert m.name.startswith("fleetpulse.collector.") and "_" not in m.name.removeprefix("fleetpulse.")
        # The catalog's OTel -> Prometheus translation gives the /metrics name back (the _bytes gauge
        # carries the word 'size' in its OTel name, like the agent's fleetpulse.agent.buffer.size).
        spec = MetricSpec(m.name.replace(".size", ""), m.instrument, m.unit, m.description, (), "collector")
        assert spec.prometheus_name == m.prometheus_name, m
    with pytest.raises(ValueError, match="prefix"):
        otel_name("http_requests")


def test_snapshot_maps_counters_gauges_and_histograms() -> None:
    t = Telemetry()
    t.points_received.labels("http").inc(7)
    t.points_rejected.labels("non_finite").inc(2)
    t.wal_bytes.set(4096)
    for seconds in (0.004, 0.03, 0.03, 7.0, 99.0):
        t.flush_duration.observe(seconds)
    now = time.time_ns()
    request = snapshot_request(t, "collector-host", "inst-1", now, fallback_start_ns=1)
    rm = request.resource_metrics[0]
    resource = {kv.key: kv.value.string_value for kv in rm.resource.attributes}
    assert resource == {"host.name": "collector-host", "service.name": "fleetpulse-collector"}
    metrics = {m.name: m for m in rm.scope_metrics[0].metrics}
    # Labelled counters without children (requests, shed, overflow...) send nothing yet.
    assert "fleetpulse.collector.requests" not in metrics
    received = metrics["fleetpulse.collector.points.received"]
    assert received.sum.is_monotonic and received.sum.aggregation_temporality == 2  # cumulative
    (dp,) = received.sum.data_points
    attrs = {kv.key: kv.value.string_value for kv in dp.attributes}
    assert attrs == {"transport": "http", "service.instance.id": "inst-1"}
    assert dp.as_double == 7 and dp.time_unix_nano == now
    assert 0 < now - dp.start_time_unix_nano < 60 * S  # the counter's _created time, not the fallback
    assert metrics["fleetpulse.collector.wal.size"].gauge.data_points[0].as_double == 4096
    assert metrics["fleetpulse.collector.wal.size"].unit == "By"
    (hist,) = metrics["fleetpulse.collector.flush.duration"].histogram.data_points
    assert hist.count == 5 and math.isclose(hist.sum, 106.064)
    assert list(hist.explicit_bounds) == [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
    # OTLP buckets are per bucket, not cumulative: 1 <= 5 ms, 2 in (25, 50] ms, 1 in (5, 10] s, 1 above 30 s.
    assert list(hist.bucket_counts) == [1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1, 0, 1]


def test_refused_snapshots_are_counted_and_ticks_never_repeat() -> None:
    t = Telemetry()
    outcomes: list[Exception | None] = [Rejected(UNAVAILABLE, "WAL full"), RuntimeError("boom"), None, None]
    sent: list[bytes] = []

    def export(signal: str, tenant: str, body: bytes, transport: str) -> None:
        assert (signal, tenant, transport) == ("metrics", "t1", "self")
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        sent.append(body)

    clock = [1_000 * S + 123]
    mon = SelfMonitor(t, export, "t1", 10, "inst", "host", clock_ns=lambda: clock[0])
    assert not mon.snapshot() and not mon.snapshot()  # refused, then failed: both counted
    dropped = {s.labels["reason"]: s.value for s in t.selfmon_dropped.collect()[0].samples if s.name.endswith("_total")}
    assert dropped == {"unavailable": 1, "error": 1}
    assert mon.snapshot() and mon.last_ns == 1_000 * S  # aligned on the 10 s tick
    assert not mon.snapshot()  # same tick: already stored, nothing sent
    clock[0] += 10 * S
    assert mon.snapshot() and len(sent) == 2
    assert outcomes == []


def test_config_keys_validated(tmp_path: Path) -> None:
    c = CollectorConfig()
    assert (c.self_telemetry.enabled, c.self_telemetry.interval_s, c.self_telemetry.tenant) == (True, 10.0, "default")
    c.self_telemetry.interval_s = 0.5
    with pytest.raises(ConfigError, match=r"self_telemetry\.interval_s: expected seconds between 1 and 3600"):
        validate(c)
    c = CollectorConfig()
    c.self_telemetry.tenant = " "
    with pytest.raises(ConfigError, match=r"self_telemetry\.tenant: expected a non-empty tenant"):
        validate(c)
    path = tmp_path / "collector.yaml"
    path.write_text("self_telemetry:\n  enabled: maybe\n")
    with pytest.raises(ConfigError, match=r"collector\.yaml: self_telemetry\.enabled: expected true or false"):
        load_config(path)
    path.write_text("self_telemetry:\n  interval: 5\n")
    with pytest.raises(ConfigError, match=r"self_telemetry\.interval: unknown key"):
        load_config(path)
    path.write_text("self_telemetry: {enabled: false, interval_s: 30, tenant: ops}\n")
    loaded = load_config(path).self_telemetry
    assert (loaded.enabled, loaded.interval_s, loaded.tenant) == (False, 30.0, "ops")


# ---------------------------------------------------------------- a running collector


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    from collector.store.settings import StorageSettings
    from collector.store.writer import Store

    s = Store(StorageSettings(dsn=f"chdb://{tmp_path_factory.mktemp('selfmon-ch')}"))
    yield s
    s.close()


def _config(data_dir: Path) -> CollectorConfig:
    c = CollectorConfig(data_dir=str(data_dir))
    c.otlp.grpc_listen = f"127.0.0.1:{free_port()}"
    c.otlp.http_listen = f"127.0.0.1:{free_port()}"
    c.api.listen = f"127.0.0.1:{free_port()}"
    c.writer.flush_interval_s = 0.1
    c.shutdown_deadline_s = 10
    c.wal.fsync = False
    c.self_telemetry.interval_s = 1
    c.self_telemetry.tenant = TENANT
    return validate(c, "test")


def _start(store, data_dir: Path) -> Collector:
    collector = Collector(_config(data_dir), store=store)
    collector.start()
    deadline = time.monotonic() + 20
    while collector.pipeline.store is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return collector


def _rows(store, metric: str, where: str = "1") -> list[tuple]:
    """(ts_ms, start_ms, value, attributes, node, kind) of one stored self-metric, oldest first."""
    return store.query(
        "SELECT toUnixTimestamp64Milli(ts), toUnixTimestamp64Milli(start_ts), value, attributes, node, kind "
        "FROM samples WHERE tenant = {t:String} AND metric = {m:String} AND " + where + " ORDER BY ts",
        parameters={"t": TENANT, "m": metric},
    ).result_rows


def _wait(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for stored self-telemetry"
        time.sleep(0.1)


def _scrape(api_port: int) -> dict[tuple[str, tuple], float]:
    text = get(api_port, "/metrics")[2].decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _latest(store, metric: str) -> dict[tuple, float]:
    rows = store.query(
        "SELECT attributes, argMax(value, ts) FROM samples WHERE tenant = {t:String} AND metric = {m:String} "
        "GROUP BY attributes",
        parameters={"t": TENANT, "m": metric},
    ).result_rows
    return {tuple(sorted((k, v) for k, v in attrs.items() if k != "service.instance.id")): v for attrs, v in rows}


def test_running_collector_stores_its_metrics_matching_metrics_endpoint(store, tmp_path: Path) -> None:
    collector = _start(store, tmp_path)
    try:
        http = int(collector.config.otlp.http_listen.rsplit(":", 1)[1])
        api = int(collector.config.api.listen.rsplit(":", 1)[1])
        good = metrics_request(gpus=2, metrics=2, cluster="selfmon").SerializeToString()
        bad = metrics_request(gpus=1, metrics=1, ts_ns=time.time_ns() - 30 * 86400 * S).SerializeToString()
        for body in (good, good, bad):
            assert post(http, "/v1/metrics", body)[0] == 200
        traffic_done_ms = time.time_ns() // 1_000_000
        # Within a few seconds a snapshot taken after the traffic is queryable.
        _wait(lambda: any(r[0] > traffic_done_ms for r in _rows(store, "fleetpulse.collector.requests")))
        scraped = _scrape(api)
        expected = {
            "fleetpulse.collector.points.received": (
                "fleetpulse_collector_points_received_total",
                (("transport", "http"),),
                9,
            ),
            "fleetpulse.collector.points.rejected": (
                "fleetpulse_collector_points_rejected_total",
                (("reason", "timestamp_too_old"),),
                1,
            ),
            "fleetpulse.collector.requests": (
                "fleetpulse_collector_requests_total",
                (("code", "200"), ("transport", "http")),
                3,
            ),
        }
        for metric, (prom, labels, value) in expected.items():
            assert scraped[(prom, labels)] == value
            assert _latest(store, metric)[labels] == value, metric
        # Series that keep moving (its own exports count too) are never ahead of /metrics.
        accepted = _latest(store, "fleetpulse.collector.points.accepted")[()]
        assert 8 <= accepted <= _scrape(api)[("fleetpulse_collector_points_accepted_total", ())]

        def own_rows() -> list[tuple]:
            return _rows(store, "fleetpulse.collector.points.received", "attributes['transport'] = 'self'")

        _wait(lambda: len(own_rows()) >= 3)
        rows = own_rows()
        assert {r[4] for r in rows} == {socket.gethostname()}  # node = this host
        assert {r[5] for r in rows} == {"sum"}
        assert {r[3]["service.instance.id"] for r in rows} == {collector.wal.identity}
        assert len({r[1] for r in rows}) == 1  # one start_ts: no reset within a run
        values = [r[2] for r in rows]
        assert values == sorted(values) and values[-1] > values[0]  # monotonic across snapshots
        assert all(r[0] % 1000 == 0 for r in rows[1:])  # scheduled snapshots sit on the 1 s tick
        # Histograms arrive as _count / _sum / _bucket rows (ingest mapping), gauges as gauges.
        _wait(lambda: _latest(store, "fleetpulse.collector.flush.duration_count").get((), 0) > 0)
        buckets = _latest(store, "fleetpulse.collector.flush.duration_bucket")
        assert (("le", "+Inf"),) in buckets and len(buckets) == 13
        assert _rows(store, "fleetpulse.collector.wal.size")[-1][5] == "gauge"
    finally:
        collector.stop()


def test_restart_keeps_series_and_shows_a_reset(store, tmp_path: Path) -> None:
    where = "attributes['transport'] = 'http' AND node = {n:String} AND attributes['service.instance.id'] = {i:String}"
    first = _start(store, tmp_path)
    try:
        http = int(first.config.otlp.http_listen.rsplit(":", 1)[1])
        body = metrics_request(gpus=4, metrics=5, cluster="restart").SerializeToString()
        for _ in range(3):
            assert post(http, "/v1/metrics", body)[0] == 200
        instance = first.wal.identity
    finally:
        first.stop()  # its last snapshot (60 points over http) is stored during the drain

    def http_rows() -> list[tuple]:
        return store.query(
            "SELECT toUnixTimestamp64Milli(ts), toUnixTimestamp64Milli(start_ts), value, "
            "attributes['service.instance.id'] FROM samples WHERE tenant = {t:String} "
            "AND metric = 'fleetpulse.collector.points.received' AND " + where + " ORDER BY ts",
            parameters={"t": TENANT, "n": socket.gethostname(), "i": instance},
        ).result_rows

    before = http_rows()
    assert before and before[-1][2] == 60
    second = _start(store, tmp_path)  # same data dir: same WAL identity, same series
    try:
        assert second.wal.identity == instance
        http = int(second.config.otlp.http_listen.rsplit(":", 1)[1])
        assert post(http, "/v1/metrics", metrics_request(gpus=1, metrics=2, cluster="restart").SerializeToString())[0]
        _wait(lambda: http_rows()[-1][1] != before[-1][1])
    finally:
        second.stop()
    rows = http_rows()
    starts = [r[1] for r in rows]
    change = next(i for i, s in enumerate(starts) if s != starts[0])
    assert starts[change:] == [starts[change]] * (len(rows) - change)  # exactly one start_ts change
    assert starts[change] > rows[change - 1][0]  # the new counter started after the old run's last point
    assert rows[change - 1][2] == 60 and rows[change][2] < 60 and rows[-1][2] == 2  # the reset is visible
    assert [r[0] for r in rows] == sorted({r[0] for r in rows})  # timestamps never repeat or go back


def test_freshness_report_does_not_list_collectors_as_nodes(store, tmp_path: Path) -> None:
    """A collector's self-telemetry sits under its host name; the node reports must not count it as a node."""
    from collector.reports.base import Query, window
    from collector.reports.freshness import last_seen_per_node

    collector = _start(store, tmp_path)
    try:
        http = int(collector.config.otlp.http_listen.rsplit(":", 1)[1])
        req = metrics_request(gpus=1, metrics=1, cluster="fresh", node_prefix="fresh-node")
        assert post(http, "/v1/metrics", req.SerializeToString())[0] == 200
    finally:
        collector.stop()
    own = store.query(
        "SELECT count() FROM samples WHERE tenant = {t:String} AND node = {n:String}",
        parameters={"t": TENANT, "n": socket.gethostname()},
    ).result_rows[0][0]
    assert own > 0  # the collector did store its own rows under its host name
    agent_rows = "SELECT count() FROM samples WHERE node = 'fresh-node0'"
    assert store.query(agent_rows).result_rows[0][0] == 1  # tenant 'default' (no auth)
    nodes = {node for _, node in last_seen_per_node(Query(store, TENANT, window({"since": "1h"}, "1h")))}
    assert socket.gethostname() not in nodes
    assert {node for _, node in last_seen_per_node(Query(store, "default", window({"since": "1h"}, "1h")))} >= {
        "fresh-node0"
    }
