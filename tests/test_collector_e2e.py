"""The collector end to end, in process, against real chDB: SDK exporters (gRPC and HTTP, metrics
and logs) as clients, malformed bodies, limits, auth, partial success, store outage and recovery,
and the tenant-scoped read API."""

from __future__ import annotations

import gzip
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

from collector.config import CollectorConfig
from collector.limits import RateLimiter
from collector.server import Collector
from tests.conftest import free_port
from tests.helpers import FlakyStore
from tests.otlp_clients import RunningCollector, get, metrics_request, post, query

pytestmark = pytest.mark.timeout(120)

TOKENS = {"tok-alpha": "alpha", "tok-beta": "beta"}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Iterator:
    from collector.store.settings import StorageSettings
    from collector.store.writer import Store

    path = tmp_path_factory.mktemp("chdb")
    s = Store(StorageSettings(dsn=f"chdb://{path}"))
    yield s
    s.close()


def make_config(tmp: Path, **limits) -> CollectorConfig:
    c = CollectorConfig(data_dir=str(tmp))
    c.otlp.grpc_listen = f"127.0.0.1:{free_port()}"
    c.otlp.http_listen = f"127.0.0.1:{free_port()}"
    c.api.listen = f"127.0.0.1:{free_port()}"
    c.auth.mode = "tokens"
    tokens = tmp / "tokens.yaml"
    tokens.write_text("".join(f"{k}: {v}\n" for k, v in TOKENS.items()))
    c.auth.tokens_file = str(tokens)
    c.writer.flush_interval_s = 0.1
    c.shutdown_deadline_s = 5
    c.limits.max_request_bytes = 512 * 1024
    c.limits.max_points_per_request = 5000
    c.limits.max_attributes = 8
    c.limits.max_attribute_length = 64
    for k, v in limits.items():
        setattr(c.limits, k, v)
    return c


Running = RunningCollector


@pytest.fixture
def running(store, tmp_path) -> Iterator[Running]:
    collector = Collector(make_config(tmp_path), store=store)
    collector.start()
    deadline = time.monotonic() + 20
    while collector.pipeline.store is None and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield Running(collector)
    finally:
        collector.stop()


def _sdk_metrics(meter_name: str, cluster: str):
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.resources import Resource

    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader], resource=Resource.create({"host.name": "sdk-node", "k8s.cluster.name": cluster})
    )
    meter = provider.get_meter(meter_name)
    meter.create_counter("hw.gpu.test.counter").add(5, {"hw.id": "GPU-A"})
    meter.create_up_down_counter("hw.gpu.test.updown").add(-2, {"hw.id": "GPU-A"})
    meter.create_histogram("hw.gpu.test.latency").record(0.3, {"hw.id": "GPU-A"})
    meter.create_gauge("hw.gpu.test.gauge").set(42.5, {"hw.id": "GPU-B"})
    data = reader.get_metrics_data()
    provider.shutdown()
    return data


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_metric_exporters_store_every_kind(running: Running, transport: str) -> None:
    from opentelemetry.sdk.metrics.export import MetricExportResult

    cluster = f"sdk-{transport}"
    data = _sdk_metrics("t", cluster)
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(
            endpoint=f"127.0.0.1:{running.grpc}",
            insecure=True,
            headers={"authorization": "Bearer tok-alpha"},
            timeout=5,
        )
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(
            endpoint=f"http://127.0.0.1:{running.http}/v1/metrics",
            headers={"Authorization": "Bearer tok-alpha"},
            timeout=5,
        )
    assert exporter.export(data) == MetricExportResult.SUCCESS
    exporter.shutdown()
    # counter, updown, gauge, histogram count + sum + bucket rows (16 default buckets)
    n = running.wait_count(f"SELECT count() FROM samples WHERE cluster = '{cluster}'", 20)
    assert n >= 20
    _, body = query(
        running.api,
        f"SELECT metric, kind, value, gpu, start_ts > 0 FROM samples WHERE cluster = '{cluster}' AND metric NOT LIKE '%bucket' ORDER BY metric",
        "tok-alpha",
    )
    rows = {r[0]: r[1:] for r in body["rows"]}
    assert rows["hw.gpu.test.counter"] == ["sum", 5.0, "GPU-A", 1]
    assert rows["hw.gpu.test.updown"] == ["sum_nonmonotonic", -2.0, "GPU-A", 1]
    assert rows["hw.gpu.test.gauge"][:3] == ["gauge", 42.5, "GPU-B"]
    assert rows["hw.gpu.test.latency_count"][:2] == ["histogram", 1.0]
    assert rows["hw.gpu.test.latency_sum"][1] == pytest.approx(0.3)
    _status, body = query(
        running.api,
        f"SELECT attributes['le'], value FROM samples WHERE cluster = '{cluster}' AND metric = 'hw.gpu.test.latency_bucket' ORDER BY value, toFloat64OrZero(attributes['le'])",
        "tok-alpha",
    )
    assert body["rows"][-1] == ["+Inf", 1.0]
    # the tenant came from the token: beta sees none of it
    assert running.count(f"SELECT count() FROM samples WHERE cluster = '{cluster}'", "tok-beta") == 0


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_log_exporters_store_events(running: Running, transport: str) -> None:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    cluster = f"logs-{transport}"
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        exporter = OTLPLogExporter(
            endpoint=f"127.0.0.1:{running.grpc}", insecure=True, headers={"authorization": "Bearer tok-beta"}, timeout=5
        )
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

        exporter = OTLPLogExporter(
            endpoint=f"http://127.0.0.1:{running.http}/v1/logs", headers={"Authorization": "Bearer tok-beta"}, timeout=5
        )
    provider = LoggerProvider(resource=Resource.create({"host.name": "n1", "k8s.cluster.name": cluster}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("t")
    logger.emit(body="Xid 79 on GPU", attributes={"event.name": "gpu.xid", "hw.gpu.xid": 79, "hw.id": "GPU-X"})
    logger.emit(body="something else")
    provider.shutdown()
    assert running.wait_count(f"SELECT count() FROM events WHERE cluster = '{cluster}'", 2, "tok-beta") == 2
    _status, body = query(
        running.api, f"SELECT event, code, gpu, node FROM events WHERE cluster = '{cluster}' ORDER BY event", "tok-beta"
    )
    assert body["rows"] == [["gpu.xid", 79, "GPU-X", "n1"], ["log", 0, "", "n1"]]
    assert running.count(f"SELECT count() FROM events WHERE cluster = '{cluster}'", "tok-alpha") == 0


def test_json_gzip_partial_success_and_inventory(running: Running) -> None:
    from google.protobuf import json_format

    now = time.time_ns()
    req = metrics_request(nodes=1, gpus=2, metrics=1, cluster="json", ts_ns=now)
    points = req.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points
    points[0].as_double = math.nan
    bad_time = req.resource_metrics[0].scope_metrics[0].metrics.add()
    bad_time.name = "hw.gpu.old"
    p = bad_time.gauge.data_points.add()
    p.time_unix_nano = now - 30 * 86400 * 10**9
    p.as_int = 3
    info = req.resource_metrics[0].scope_metrics[0].metrics.add()
    info.name = "hw.gpu.info"
    p = info.gauge.data_points.add()
    p.time_unix_nano = now
    p.as_int = 1
    for k, v in {"hw.id": "GPU-INV", "hw.serial_number": "S123", "hw.model": "H100", "gpu.index": "3"}.items():
        kv = p.attributes.add()
        kv.key = k
        kv.value.string_value = v
    body = json_format.MessageToJson(req).encode()
    status, _headers, reply = post(running.http, "/v1/metrics", body, "application/json", "tok-alpha", gzip=True)
    assert status == 200, reply
    answer = json.loads(reply)
    assert answer["partialSuccess"]["rejectedDataPoints"] == "2"
    assert "non_finite" in answer["partialSuccess"]["errorMessage"]
    assert "timestamp_too_old" in answer["partialSuccess"]["errorMessage"]
    assert running.wait_count("SELECT count() FROM samples WHERE cluster = 'json'", 2) == 2
    assert running.wait_count("SELECT count() FROM inventory WHERE gpu = 'GPU-INV' AND serial = 'S123'", 1) == 1


def test_malformed_bodies(running: Running) -> None:
    good = metrics_request().SerializeToString()
    cases = {
        "truncated protobuf": (good[: len(good) // 2 + 3], "application/x-protobuf", False, 400),
        "wrong content type": (good, "text/plain", False, 415),
        "bad json": (b'{"resourceMetrics": [', "application/json", False, 400),
        "json of wrong shape": (b'{"resourceMetrics": 5}', "application/json", False, 400),
    }
    for name, (body, ctype, gz, expected) in cases.items():
        status, _, reply = post(running.http, "/v1/metrics", body, ctype, "tok-alpha", gzip=gz)
        assert status == expected, (name, reply)
    status, _, reply = post(
        running.http, "/v1/metrics", b"\x1f\x8b not gzip", headers={"Content-Encoding": "gzip"}, token="tok-alpha"
    )
    assert status == 400 and b"gzip" in reply
    truncated_gzip = gzip.compress(good)[:-12]
    status, _, reply = post(
        running.http, "/v1/metrics", truncated_gzip, headers={"Content-Encoding": "gzip"}, token="tok-alpha"
    )
    assert status == 400 and b"gzip" in reply
    status, _, _ = post(running.http, "/v1/metrics", good, headers={"Content-Encoding": "br"}, token="tok-alpha")
    assert status == 400
    # gRPC: garbage bytes straight to the method
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{running.grpc}") as channel:
        call = channel.unary_unary("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export")
        with pytest.raises(grpc.RpcError) as err:
            call(good[:7], metadata=(("authorization", "Bearer tok-alpha"),), timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_auth_failures(running: Running) -> None:
    body = metrics_request().SerializeToString()
    for token in (None, "wrong", "tok-alpha-but-longer"):
        status, _headers, _ = post(running.http, "/v1/metrics", body, token=token)
        assert status == 401
    status, _, _ = post(running.http, "/v1/metrics", body, headers={"Authorization": "Basic dG9rLWFscGhh"})
    assert status == 401
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{running.grpc}") as channel:
        call = channel.unary_unary("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export")
        for md in ((), (("authorization", "Bearer nope"),)):
            with pytest.raises(grpc.RpcError) as err:
                call(body, metadata=md, timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    status, _ = query(running.api, "SELECT 1", None)
    assert status == 401
    # a tenant attribute in the payload does not pick the tenant
    req = metrics_request(cluster="spoof", extra_point_attrs={"tenant": "beta"})
    status, _, _ = post(running.http, "/v1/metrics", req.SerializeToString(), token="tok-alpha")
    assert status == 200
    assert running.wait_count("SELECT count() FROM samples WHERE cluster = 'spoof'", 6) == 6
    assert running.count("SELECT count() FROM samples WHERE cluster = 'spoof'", "tok-beta") == 0


def test_limits(running: Running) -> None:
    # too many bytes → 413 (header check and streamed)
    big = metrics_request(nodes=1, gpus=72, metrics=72, cluster="big").SerializeToString()
    assert len(big) < running.c.limits.max_request_bytes
    huge = b"\0" * (running.c.limits.max_request_bytes + 1)
    status, _, _ = post(running.http, "/v1/metrics", huge, token="tok-alpha")
    assert status == 413
    bomb = gzip.compress(b"\0" * (running.c.limits.max_request_bytes * 4))
    status, _, reply = post(running.http, "/v1/metrics", bomb, headers={"Content-Encoding": "gzip"}, token="tok-alpha")
    assert status == 413 and b"decompressed" in reply
    # too many points → 413, final
    status, _, reply = post(running.http, "/v1/metrics", big, token="tok-alpha")
    assert status == 413 and b"max_points_per_request" in reply
    # attribute count and length → partial success
    many = {f"k{i}": "v" for i in range(10)}
    req = metrics_request(nodes=1, gpus=1, metrics=1, cluster="attrs", extra_point_attrs=many)
    req.MergeFrom(metrics_request(nodes=1, gpus=1, metrics=1, cluster="attrs", extra_point_attrs={"k": "x" * 100}))
    req.MergeFrom(metrics_request(nodes=1, gpus=1, metrics=1, cluster="attrs", node_prefix="ok"))
    status, _, reply = post(running.http, "/v1/metrics", req.SerializeToString(), token="tok-alpha")
    answer = ExportMetricsServiceResponse.FromString(reply)
    assert status == 200
    assert answer.partial_success.rejected_data_points == 2
    assert "attribute_count" in answer.partial_success.error_message
    assert "attribute_length" in answer.partial_success.error_message
    # timestamps too far in the future
    future = metrics_request(nodes=1, gpus=1, metrics=1, ts_ns=time.time_ns() + 3600 * 10**9, cluster="future")
    status, _, reply = post(running.http, "/v1/metrics", future.SerializeToString(), token="tok-alpha")
    assert ExportMetricsServiceResponse.FromString(reply).partial_success.rejected_data_points == 1
    assert running.wait_count("SELECT count() FROM samples WHERE cluster = 'attrs'", 1) == 1
    # rate limit → 429 with Retry-After (HTTP) and RESOURCE_EXHAUSTED (gRPC)
    running.c.ingest.rate = RateLimiter(5)
    small = metrics_request(nodes=1, gpus=2, metrics=3, cluster="rate").SerializeToString()
    assert post(running.http, "/v1/metrics", small, token="tok-alpha")[0] == 200
    status, headers, _ = post(running.http, "/v1/metrics", small, token="tok-alpha")
    assert status == 429 and int(headers["retry-after"]) >= 1
    status, _, _ = post(running.http, "/v1/metrics", small, token="tok-beta")  # per tenant
    assert status == 200
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{running.grpc}") as channel:
        call = channel.unary_unary("/opentelemetry.proto.collector.metrics.v1.MetricsService/Export")
        with pytest.raises(grpc.RpcError) as err:
            call(small, metadata=(("authorization", "Bearer tok-alpha"),), timeout=5)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status, _, metrics_text = get(running.api, "/metrics")
    assert b'fleetpulse_collector_points_rejected_total{reason="rate_limited"}' in metrics_text
    assert b'fleetpulse_collector_requests_total{code="429",transport="http"}' in metrics_text


def test_series_budget_folds_into_overflow(store, tmp_path) -> None:
    collector = Collector(make_config(tmp_path, tenant_active_series=3), store=store)
    collector.start()
    try:
        r = Running(collector)
        while collector.pipeline.store is None:
            time.sleep(0.02)
        req = metrics_request(nodes=1, gpus=5, metrics=1, cluster="budget")
        assert post(r.http, "/v1/metrics", req.SerializeToString(), token="tok-beta")[0] == 200
        assert r.wait_count("SELECT count() FROM samples WHERE cluster = 'budget'", 5, "tok-beta") == 5
        assert r.count("SELECT uniqExact(series_id) FROM samples WHERE cluster = 'budget'", "tok-beta") == 4
        assert (
            r.count(
                "SELECT count() FROM samples WHERE cluster = 'budget' AND attributes['otel.metric.overflow'] = 'true'",
                "tok-beta",
            )
            == 2
        )
        text = get(r.api, "/metrics")[2].decode()
        assert 'fleetpulse_collector_series_overflow_total{tenant="beta"} 2.0' in text
        assert 'fleetpulse_collector_tenant_active_series{tenant="beta"} 3.0' in text
    finally:
        collector.stop()


def test_store_outage_then_recovery(store, tmp_path) -> None:
    flaky = FlakyStore(store)
    config = make_config(tmp_path)
    config.wal.max_bytes = 64 * 1024
    config.wal.segment_bytes = 8 * 1024
    collector = Collector(config, store=flaky)
    collector.pipeline_backoff = 0.1
    collector.start()
    try:
        r = Running(collector)
        collector.pipeline.backoff_max_s = 0.2
        accepted = 0
        full = None
        # One millisecond per request: the store keeps ms resolution, and distinct (series, ts) pairs
        # are what the exactly-once check below counts.
        base_ns = time.time_ns() - 300 * 10**9
        for i in range(200):
            req = metrics_request(
                nodes=1, gpus=2, metrics=3, cluster="outage", value=float(i), ts_ns=base_ns + i * 1_000_000
            )
            status, headers, _ = post(r.http, "/v1/metrics", req.SerializeToString(), token="tok-alpha")
            if status == 503:
                full = headers
                break
            assert status == 200
            accepted += 6
        assert full is not None and int(full["retry-after"]) >= 1, "WAL cap must answer 503 + Retry-After"
        deadline = time.monotonic() + 10
        while flaky.failures < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert flaky.failures >= 1
        assert get(r.api, "/readyz")[0] == 503
        assert collector.wal.segments > 1
        flaky.down = False
        assert r.wait_count("SELECT count() FROM samples WHERE cluster = 'outage'", accepted) == accepted
        assert r.count("SELECT uniqExact(series_id, ts) FROM samples WHERE cluster = 'outage'") == accepted
        deadline = time.monotonic() + 10
        while collector.wal.segments > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert collector.wal.segments == 1, "confirmed segments are removed"
        assert get(r.api, "/readyz")[0] == 200
    finally:
        collector.stop()


def test_unreachable_http_store_keeps_accepting_into_wal(tmp_path) -> None:
    config = make_config(tmp_path)
    config.storage.dsn = f"http://127.0.0.1:{free_port()}"  # nothing listens: a real outage
    config.self_telemetry.enabled = False  # the WAL record ids below are the test's requests only
    collector = Collector(config)
    collector.start()
    try:
        r = Running(collector)
        req = metrics_request(cluster="down")
        assert post(r.http, "/v1/metrics", req.SerializeToString(), token="tok-alpha")[0] == 200
        assert collector.wal.last_id == 1 and collector.wal.bytes > 0
        assert get(r.api, "/readyz")[0] == 503
        status, _body = query(r.api, "SELECT 1", "tok-alpha")
        assert status == 503
    finally:
        collector.stop()
    # what was accepted is still in the WAL for the next start
    from collector.spool.wal import Wal

    wal = Wal(config.wal_dir, config.wal.max_bytes, config.wal.segment_bytes)
    assert wal.open() == [1]
    wal.close()


ESCAPES = [
    "SELECT * FROM system.tables",
    "SELECT * FROM `system`.`tables`",
    'SELECT * FROM "system"."one"',
    "SELECT name FROM system . databases",
    "SELECT * FROM other_db.samples",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:1/', 'CSV')",
    "SELECT * FROM merge('fleetpulse', 'samples')",
    "SELECT * FROM remote('127.0.0.1', fleetpulse.samples)",
    "SELECT * FROM samples SETTINGS additional_table_filters = {}",
    "SELECT * FROM samples; DROP TABLE samples",
    "INSERT INTO samples SELECT * FROM samples",
    "SELECT 1 FROM numbers(10)",
    "SELECT dictGet('d', 'x', 1)",
    "SELECT 1 IN system.one",
    "SELECT * FROM samples /* */ WHERE 1 FORMAT JSON",
    "SELECT * FROM samples INTO OUTFILE '/tmp/x'",
    "SELECT 1 UNION ALL SELECT name FROM system.users",
    "WITH x AS (SELECT * FROM system.tables) SELECT * FROM x",
    "ALTER TABLE samples DELETE WHERE 1",
    "SELECT * FROM (SELECT * FROM system.processes)",
    "SELECT * FROM samples AS s JOIN system.tables AS t ON 1",
    "SELECT getSetting('readonly')",
]


def test_query_api_cannot_escape_its_tenant(running: Running) -> None:
    for tenant_token in ("tok-alpha", "tok-beta"):
        req = metrics_request(cluster="scope")
        assert post(running.http, "/v1/metrics", req.SerializeToString(), token=tenant_token)[0] == 200
    running.wait_count("SELECT count() FROM samples WHERE cluster = 'scope'", 6)
    running.wait_count("SELECT count() FROM samples WHERE cluster = 'scope'", 6, "tok-beta")
    for sql in ESCAPES:
        status, body = query(running.api, sql, "tok-alpha")
        assert status == 400, (sql, body)
    # every read of every table path is filtered to the caller's tenant
    scoped = [
        "SELECT count() FROM samples WHERE cluster = 'scope'",
        "SELECT count() FROM fleetpulse.samples WHERE cluster = 'scope'",
        "SELECT count() FROM (SELECT * FROM samples WHERE cluster = 'scope')",
        "WITH s AS (SELECT * FROM samples WHERE cluster = 'scope') SELECT count() FROM s",
        "SELECT count() FROM samples a JOIN samples b USING (series_id, ts) WHERE a.cluster = 'scope'",
        "SELECT (SELECT count() FROM samples WHERE cluster = 'scope')",
        "SELECT count() FROM samples WHERE cluster = 'scope' AND tenant IN (SELECT tenant FROM samples)",
        "SELECT count() FROM samples WHERE cluster = 'scope' OR tenant = 'beta' AND cluster = 'scope'",
    ]
    for sql in scoped:
        assert running.count(sql, "tok-alpha") == 6, sql
    assert running.count("SELECT uniqExact(tenant) FROM samples", "tok-alpha") == 1
    # row limit and CSV
    status, _, body = get(
        running.api, "/api/v1/query?format=csv&max_rows=2&sql=SELECT%20metric%20FROM%20samples", "tok-alpha"
    )
    assert status == 200 and body.decode().splitlines()[0] == "metric" and len(body.decode().splitlines()) == 3
    status, body = query(running.api, "SELECT no_such_column FROM samples", "tok-alpha")
    assert status == 400 and "no_such_column" in body["error"]
    # value is an ALIAS of the stored decimal; SELECT * still shows it
    status, _, body = get(
        running.api, "/api/v1/query?format=csv&max_rows=1&sql=SELECT%20*%20FROM%20samples", "tok-alpha"
    )
    assert status == 200 and "value" in body.decode().splitlines()[0].split(","), body[:200]


def test_health_ready_metrics_and_reports(running: Running) -> None:
    assert get(running.api, "/healthz")[0] == 200
    assert get(running.api, "/readyz")[0] == 200
    text = get(running.api, "/metrics")[2].decode()
    for name in (
        "fleetpulse_collector_points_received_total",
        "fleetpulse_collector_points_accepted_total",
        "fleetpulse_collector_wal_bytes",
        "fleetpulse_collector_wal_segments",
        "fleetpulse_collector_flush_duration_seconds",
        "fleetpulse_collector_insert_errors_total",
    ):
        assert name in text
    status, _, body = get(running.api, "/api/v1/reports/no-such-report", "tok-alpha")
    assert status == 404 and b"report" in body
    assert get(running.api, "/api/v1/reports/throttle")[0] == 401
    try:
        from collector.reports import REPORTS
    except ImportError:
        return
    status, _, body = get(running.api, f"/api/v1/reports/{next(iter(REPORTS))}", "tok-alpha")
    assert status == 200, body
    assert "columns" in json.loads(body)
