"""Collector parts in isolation: config validation, WAL recovery, auth, limits, conversion mapping."""

from __future__ import annotations

import gzip
import threading
import time

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from collector.auth import AuthConfigError, Authenticator, check_bind, parse_tokens_env
from collector.config import ConfigError, load_config
from collector.convert import Converter, decode_metrics
from collector.limits import Limits, RateLimiter, SeriesBudget
from collector.spool.wal import KIND_METRICS, Wal, WalFull
from tests.otlp_clients import logs_request, metrics_request

# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("limits: {max_points_per_request: many}\n", "limits.max_points_per_request: expected an integer, got 'many'"),
        ("limits: {max_attributes: 0}\n", "limits.max_attributes: expected a value > 0"),
        ("wal: {fsync: 1}\n", "wal.fsync: expected true or false"),
        ("otlp: {grpc_listen: nowhere}\n", "otlp.grpc_listen: expected HOST:PORT"),
        ("auth: {mode: magic}\n", "auth.mode: expected one of ['none', 'tokens'], got 'magic'"),
        ("storage: {ttl_days: {raw: x}}\n", "storage.ttl_days.raw: expected an integer"),
        ("storage: {dsn: 'mysql://x'}\n", "storage.dsn: expected chdb:///PATH"),
        ("unknown_key: 1\n", "unknown_key: unknown key"),
        ("limits: [1, 2]\n", "limits: expected a mapping"),
        ("wal: {segment_bytes: 100, max_bytes: 10}\n", "wal.segment_bytes: expected <= wal.max_bytes"),
        ("tls: {cert_file: a.pem}\n", "tls: cert_file and key_file must be set together"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_config_errors_name_file_key_expected_and_got(tmp_path, text: str, needle: str) -> None:
    path = tmp_path / "collector.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_config_defaults_env_and_flags(tmp_path, monkeypatch) -> None:
    from collector.commands.collector_cmd import add_arguments, build_config

    path = tmp_path / "collector.yaml"
    path.write_text("data_dir: /srv/fp\nlimits: {rate_points_per_s: 1000}\n")
    monkeypatch.setenv("FLEETPULSE_STORAGE_DSN", "http://ch:8123")
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = build_config(parser.parse_args(["--config", str(path), "--api-listen", "127.0.0.1:9999"]))
    assert config.data_dir == "/srv/fp" and config.limits.rate_points_per_s == 1000
    assert config.storage_dsn == "http://ch:8123" and config.api.listen == "127.0.0.1:9999"
    monkeypatch.delenv("FLEETPULSE_STORAGE_DSN")
    assert load_config(None).storage_dsn.startswith("chdb:///")
    with pytest.raises(ConfigError, match=r"command line: auth\.tokens_file"):
        build_config(parser.parse_args(["--auth", "tokens"]))


# ---------------------------------------------------------------- auth


def test_tokens_and_loopback_rule(tmp_path, monkeypatch) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("s3cret: teamA\n")
    monkeypatch.setenv("FLEETPULSE_TOKENS", "other=teamB")
    auth = Authenticator.from_config("tokens", str(tokens))
    assert auth.tenant_for("Bearer s3cret") == "teamA"
    assert auth.tenant_for("bearer other") == "teamB"
    assert auth.tenant_for("Bearer s3cre") is None
    assert auth.tenant_for(None) is None
    assert Authenticator("none").tenant_for(None) == "default"
    with pytest.raises(AuthConfigError, match="token=tenant"):
        parse_tokens_env("justatoken")
    with pytest.raises(AuthConfigError, match="only binds loopback"):
        check_bind("none", {"api.listen": ("0.0.0.0", 4319)})
    check_bind("none", {"api.listen": ("127.0.0.1", 4319), "x": ("::1", 1)})
    check_bind("tokens", {"api.listen": ("0.0.0.0", 4319)})


# ---------------------------------------------------------------- WAL


def test_wal_replay_torn_tail_cap_and_confirm(tmp_path) -> None:
    wal = Wal(tmp_path, max_bytes=4000, segment_bytes=1000)
    assert wal.open() == []
    seen: list[int] = []
    for i in range(10):
        wal.append("t", KIND_METRICS, bytes([i]) * 200, i, seen.append)
    assert seen == list(range(1, 11)) and wal.synced_id == 10 and wal.segments > 2
    with pytest.raises(WalFull):
        for _ in range(20):
            wal.append("t", KIND_METRICS, b"x" * 200, 0)
    wal.set_inflight(1, 4)
    wal.confirm(4)
    wal.close()
    # a torn tail: half a record at the end of the last segment
    last = sorted(tmp_path.glob("*.wal"))[-1]
    with open(last, "ab") as f:
        f.write(b"FPW1\x00\x00\x00\x00\xff\x00\x00\x00partial")
    wal = Wal(tmp_path, max_bytes=4000, segment_bytes=1000)
    pending = wal.open()
    assert pending[0] == 5 and wal.torn_bytes > 0
    assert wal.read(5).payload == bytes([4]) * 200 and wal.read(5).tenant == "t"
    assert wal.inflight is None  # the confirmed range is not replayed
    nxt = wal.append("t", KIND_METRICS, b"new", 0)
    assert nxt == pending[-1] + 1
    wal.close()


def test_wal_keeps_gzip_bodies_compressed_and_inflates_on_read(tmp_path) -> None:
    """The client's gzip body goes into the WAL as sent (fewer bytes to fsync); a replay gets the protobuf."""
    message = metrics_request(nodes=2, gpus=8, metrics=20).SerializeToString()
    wire = gzip.compress(message)
    wal = Wal(tmp_path, max_bytes=10_000_000, segment_bytes=1_000_000)
    wal.open()
    plain = wal.append("t", KIND_METRICS, message, 1)
    packed = wal.append("t", KIND_METRICS, wire, 2, gzip=True)
    assert wal.bytes < 2 * len(message)  # the second record costs the gzip size, not the message size
    wal.close()
    reopened = Wal(tmp_path, max_bytes=10_000_000, segment_bytes=1_000_000)
    assert reopened.open() == [plain, packed]
    first, second = reopened.read(plain), reopened.read(packed)
    assert (first.gzip, second.gzip) == (False, True)
    assert first.kind == second.kind == KIND_METRICS
    assert second.payload == wire and first.message() == second.message() == message
    reopened.close()


def test_wal_group_commit_concurrent_appends(tmp_path) -> None:
    wal = Wal(tmp_path, max_bytes=10**8, segment_bytes=4096)
    wal.open()
    ids: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            rid = wal.append("t", KIND_METRICS, b"p" * 100, 0)
            assert wal.synced_id >= rid  # acknowledged only once durable
            with lock:
                ids.append(rid)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(ids) == list(range(1, 201))
    wal.close()
    wal = Wal(tmp_path, max_bytes=10**8, segment_bytes=4096)
    assert wal.open() == list(range(1, 201))
    wal.close()


# ---------------------------------------------------------------- limits


def test_rate_limiter_and_series_budget() -> None:
    now = [0.0]
    rate = RateLimiter(100, clock=lambda: now[0])
    assert rate.acquire("a", 150) == 0  # a positive bucket admits even a big request
    assert rate.acquire("a", 1) == pytest.approx(0.5)  # 50 in debt at 100/s
    assert rate.acquire("b", 1) == 0
    now[0] = 1.0
    assert rate.acquire("a", 1) == 0
    assert RateLimiter(0).acquire("a", 10**9) == 0


# ---------------------------------------------------------------- conversion


def _convert(req, limits: Limits | None = None):
    return Converter(limits or Limits()).metrics("t", decode_metrics(req.SerializeToString()), time.time_ns())


def test_mapping_sum_delta_int_and_resource_attributes() -> None:
    from opentelemetry.proto.metrics.v1 import metrics_pb2

    req = metrics_request(nodes=1, gpus=1, metrics=1)
    rm = req.resource_metrics[0]
    kv = rm.resource.attributes.add()
    kv.key, kv.value.string_value = "k8s.node.name", "k8s-node"
    m = rm.scope_metrics[0].metrics.add()
    m.name = "hw.errors"
    m.sum.is_monotonic = True
    m.sum.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    p = m.sum.data_points.add()
    p.time_unix_nano, p.start_time_unix_nano, p.as_int = time.time_ns(), time.time_ns() - 10**9, 7
    flagged = m.sum.data_points.add()
    flagged.time_unix_nano, flagged.flags = time.time_ns(), 1  # no recorded value: skipped silently
    out = _convert(req)
    rows = {r["metric"]: r for r in out.samples.to_columns().rows()}
    assert not out.rejected and out.received == 2
    assert rows["hw.errors"]["kind"] == "sum_delta" and rows["hw.errors"]["value"] == 7
    assert rows["hw.errors"]["start_ts"] > 0
    gauge = rows["hw.gpu.test0"]
    assert gauge["node"] == "k8s-node" and gauge["cluster"] == "c1" and gauge["gpu"] == "GPU-0-0"
    assert gauge["attributes"] == {"gpu.index": "0", "rack": "r1"}  # service.* dropped, hw.id → gpu


def _gauges_sharing_attributes(names: tuple[str, ...], hw_id: str) -> ExportMetricsServiceRequest:
    """One gauge point per metric name, every point with the same attributes (the registry caches per set)."""
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    kv = rm.resource.attributes.add()
    kv.key, kv.value.string_value = "host.name", "n1"
    sm = rm.scope_metrics.add()
    for name in names:
        m = sm.metrics.add()
        m.name = name
        p = m.gauge.data_points.add()
        p.time_unix_nano, p.as_double = time.time_ns(), 40.0
        for key, value in (("hw.id", hw_id), ("hw.sensor_location", "cpu")):
            kv = p.attributes.add()
            kv.key, kv.value.string_value = key, value
    return req


@pytest.mark.parametrize("names", [("hw.temperature", "hw.gpu.temperature"), ("hw.gpu.temperature", "hw.temperature")])
def test_only_gpu_metrics_file_hw_id_under_gpu(names: tuple[str, str]) -> None:
    converter = Converter(Limits())
    for _ in range(2):  # the second request takes the cached series
        req = _gauges_sharing_attributes(names, "hwmon1/temp1")
        out = converter.metrics("t", decode_metrics(req.SerializeToString()), time.time_ns())
        rows = {r["metric"]: r for r in out.samples.to_columns().rows()}
        assert not out.rejected and set(rows) == set(names)
        host, gpu = rows["hw.temperature"], rows["hw.gpu.temperature"]
        assert host["gpu"] == "" and host["attributes"] == {"hw.id": "hwmon1/temp1", "hw.sensor_location": "cpu"}
        assert gpu["gpu"] == "hwmon1/temp1" and gpu["attributes"] == {"hw.sensor_location": "cpu"}
        assert host["series_id"] != gpu["series_id"]


def test_mapping_logs_placement_and_xid() -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    now = time.time_ns()
    req = logs_request(
        [
            {"attributes": {"event.name": "gpu.xid", "hw.gpu.xid": "79", "hw.id": "G1"}, "body": "fell off", "ts": now},
            {
                "attributes": {
                    "event.name": "placement",
                    "hw.id": "G1",
                    "k8s.pod.uid": "u1",
                    "k8s.pod.name": "p",
                    "k8s.namespace.name": "ns",
                    "placement.start": str(now - 10**9),
                },
                "ts": now,
            },
            {"body": "old", "ts": now - 30 * 86400 * 10**9},
        ]
    )
    out = Converter(Limits()).logs("t", ExportLogsServiceRequest.FromString(req.SerializeToString()), now)
    events = out.events.rows()
    assert [e["event"] for e in events] == ["gpu.xid", "placement"] and events[0]["code"] == 79
    assert out.rejected == {"timestamp_too_old": 1}
    placement = out.placements.rows()[0]
    assert placement["pod_uid"] == "u1" and placement["start"] == now - 10**9 and placement["stop"] == 0


def test_series_budget_unit() -> None:
    req = metrics_request(nodes=1, gpus=4, metrics=1)
    samples = _convert(req).samples
    budget = SeriesBudget(2)
    folded_samples, folded = budget.apply(samples)
    assert folded == {"t": 2} and budget.active("t") == 2
    assert sum(1 for a in folded_samples.attributes if a == {"otel.metric.overflow": "true"}) == 2
