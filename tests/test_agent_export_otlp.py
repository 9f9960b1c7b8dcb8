"""OTLP delivery against a real in-process OTLP receiver (gRPC and HTTP/protobuf)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from agent.config import OtlpConfig
from agent.exporters.buffer import Batch, DiskBuffer
from agent.exporters.delivery import Delivery
from agent.exporters.otlp import build_transport, encode_logs, encode_metrics
from agent.snapshot import Event, Point, Severity, freeze_attributes
from tests.otlp_receiver import OtlpReceiver

PROTOCOLS = ["grpc", "http/protobuf"]


@pytest.fixture
def receiver():
    with OtlpReceiver() as r:
        yield r


def endpoint(r: OtlpReceiver, protocol: str) -> str:
    return r.grpc_endpoint if protocol == "grpc" else r.http_endpoint


def cycle(i: int) -> Batch:
    t = (1000 + i) * 10**9
    points = [
        Point("hw.gpu.temperature", float(i), freeze_attributes({"hw.id": "GPU-0", "hw.sensor": "gpu"}), t),
        Point("hw.gpu.energy", 100.0 + i, freeze_attributes({"hw.id": "GPU-0"}), t, start_time_unix_nano=10**9),
    ]
    return Batch("metrics", encode_metrics(points, {"host.name": "node-1"}), len(points))


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def delivery(receiver: OtlpReceiver, protocol: str, tmp_path: Path, clock: Clock, **otlp: object) -> Delivery:
    transport = build_transport(
        OtlpConfig(endpoint=endpoint(receiver, protocol), protocol=protocol, timeout_s=2, **otlp)
    )
    return Delivery(transport, DiskBuffer(tmp_path, 10_000_000, 3600), drain_batches_per_cycle=3, clock=clock)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_outage_buffers_then_drains_exactly_once_in_order(receiver, protocol: str, tmp_path: Path) -> None:
    clock = Clock()
    d = delivery(receiver, protocol, tmp_path, clock)
    d.submit([cycle(0)])
    receiver.down()
    for i in range(1, 8):
        clock.t += 10
        d.submit([cycle(i)])
        d.drain()
    assert len(d.buffer) == 7  # collector down → the buffer grows
    receiver.up()
    sizes = []
    for i in range(8, 14):  # live cycles keep coming while the buffer drains 3 per cycle
        clock.t += 10
        d.submit([cycle(i)])
        d.drain()
        sizes.append(len(d.buffer))
    assert sizes[0] < 7 and sizes[-1] == 0
    temps = [v for name, _, _, v in receiver.points() if name == "hw.gpu.temperature"]
    assert temps == [float(i) for i in range(14)]  # every cycle once, in order
    assert d.points_exported == 28 and not d.points_dropped


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_final_refusal_drops_and_counts(receiver, protocol: str, tmp_path: Path) -> None:
    d = delivery(receiver, protocol, tmp_path, Clock())
    receiver.http_status = 400
    receiver.grpc_status = grpc.StatusCode.INVALID_ARGUMENT
    d.submit([cycle(0)])
    assert len(d.buffer) == 0 and d.points_dropped == {"rejected_by_collector": 2}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_partial_success_counts_rejected_without_retry(receiver, protocol: str, tmp_path: Path) -> None:
    d = delivery(receiver, protocol, tmp_path, Clock())
    receiver.reject_points = 1
    d.submit([cycle(0)])
    assert len(receiver.requests("metrics")) == 1 and len(d.buffer) == 0
    assert d.points_dropped == {"partial_success_rejected": 1} and d.points_exported == 1


def test_http_retry_after_is_honoured(receiver, tmp_path: Path) -> None:
    clock = Clock()
    d = delivery(receiver, "http/protobuf", tmp_path, clock)
    receiver.http_status, receiver.http_retry_after = 503, "7"
    d.submit([cycle(0)])
    assert len(d.buffer) == 1
    receiver.http_status = None
    clock.t = 6.5
    assert d.drain() == 0  # still inside Retry-After
    clock.t = 7.1
    assert d.drain() == 1 and len(receiver.requests("metrics")) == 1


def test_grpc_resource_exhausted_is_retryable(receiver, tmp_path: Path) -> None:
    clock = Clock()
    d = delivery(receiver, "grpc", tmp_path, clock)
    receiver.grpc_status = grpc.StatusCode.RESOURCE_EXHAUSTED
    d.submit([cycle(0)])
    assert len(d.buffer) == 1 and not d.points_dropped


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_headers_bearer_token_and_logs(receiver, protocol: str, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    d = delivery(receiver, protocol, tmp_path / "buf", Clock(), token_file=str(token), headers={"X-Tenant": "blue"})
    ev = Event(
        "gpu.xid",
        Severity.ERROR,
        "Xid 79: GPU has fallen off the bus",
        freeze_attributes({"hw.id": "GPU-0", "hw.gpu.xid": 79}),
        123,
        "ev1",
    )
    d.submit([Batch("logs", encode_logs([ev], {"host.name": "node-1"}, 456), 1)])
    (req,) = receiver.requests("logs")
    assert req.headers["authorization"] == "Bearer s3cret" and req.headers["x-tenant"] == "blue"
    (record,) = receiver.log_records()
    assert record["attributes"] == {"event.name": "gpu.xid", "hw.id": "GPU-0", "hw.gpu.xid": "79", "event.id": "ev1"}
    assert record["severity_number"] == Severity.ERROR and record["severity_text"] == "ERROR"
    assert record["time_unix_nano"] == 123


def test_env_endpoint_works_like_the_sdk(receiver, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-from-env=yes")
    transport = build_transport(OtlpConfig(endpoint=None, protocol="http/protobuf", timeout_s=2))
    assert transport.send("metrics", cycle(0).payload).outcome == "ok"
    (req,) = receiver.requests("metrics")
    assert req.headers["x-from-env"] == "yes"


def test_encoding_kinds_and_timestamps() -> None:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    request = ExportMetricsServiceRequest.FromString(cycle(5).payload)
    metrics = {m.name: m for m in request.resource_metrics[0].scope_metrics[0].metrics}
    gauge = metrics["hw.gpu.temperature"]
    assert gauge.WhichOneof("data") == "gauge" and gauge.unit == "Cel"
    assert gauge.gauge.data_points[0].time_unix_nano == 1005 * 10**9
    total = metrics["hw.gpu.energy"].sum
    assert total.is_monotonic and total.aggregation_temporality == 2  # cumulative
    assert total.data_points[0].start_time_unix_nano == 10**9
