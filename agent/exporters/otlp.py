"""OTLP export: snapshots encoded once to request bytes, sent over gRPC or HTTP/protobuf.

Why bytes: the serialized ``ExportMetricsServiceRequest`` / ``ExportLogsServiceRequest`` is the unit
of delivery. A live send and a drain from the on-disk buffer are the same call on the same bytes,
so "in order, exactly once" is a property of a FIFO of requests, and the buffer never re-encodes.

Why not the SDK's MeterProvider: observable instruments are stamped at collection time, while the
agent's points carry the cycle's aligned tick (DESIGN §7). Points are therefore encoded directly
into the opentelemetry-proto message classes (gauges → Gauge, counters → monotonic cumulative Sum
with their start time, up-down counters → non-monotonic Sum).

Transport: the SDK exporters (``OTLPMetricExporter`` / ``OTLPLogExporter``, grpc and http) are
built with the agent's settings, so endpoint resolution, ``OTEL_EXPORTER_OTLP_*`` environment
variables, TLS credentials, headers and compression behave exactly as in the SDK. Their public
``export()`` takes SDK objects, retries internally with blocking sleeps and reports only
SUCCESS/FAILURE; the agent needs one attempt with the outcome classified (retryable → buffer, final
→ drop and count, partial success → count rejected). So each request's bytes go through the
exporter's own gRPC channel (a raw unary call, no re-serialization) or its own HTTP transport and
compression. grpc and the exporters are imported only for the protocol in use.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlparse

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from agent import __version__ as AGENT_VERSION
from agent.catalog import CATALOG
from agent.config import OtlpConfig
from agent.snapshot import Event, Point

log = logging.getLogger(__name__)

Signal = Literal["metrics", "logs"]
SCOPE_NAME = "fleetpulse.agent"
EVENT_ID_KEY = "event.id"
GRPC_PATHS = {
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
RESPONSES = {"metrics": ExportMetricsServiceResponse, "logs": ExportLogsServiceResponse}


# ------------------------------------------------------------------------------------------ encode


def _set_attributes(target, attributes: Iterable[tuple[str, str]]) -> None:
    for key, value in attributes:
        kv = target.add()
        kv.key = key
        kv.value.string_value = value


def _scope(scope_container) -> None:
    scope_container.scope.name = SCOPE_NAME
    scope_container.scope.version = AGENT_VERSION


def encode_metrics(points: list[Point], resource: Mapping[str, str]) -> bytes:
    """One ExportMetricsServiceRequest for ``points`` (one Metric per name, points in input order)."""
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    _set_attributes(rm.resource.attributes, sorted(resource.items()))
    sm = rm.scope_metrics.add()
    _scope(sm)
    by_name: dict[str, list[Point]] = defaultdict(list)
    for p in points:
        by_name[p.name].append(p)
    for name, group in by_name.items():
        spec = CATALOG[name]
        metric = sm.metrics.add()
        metric.name = name
        metric.unit = spec.unit
        metric.description = spec.description
        if spec.instrument == "gauge":
            data_points = metric.gauge.data_points
        else:
            metric.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
            metric.sum.is_monotonic = spec.instrument == "counter"
            data_points = metric.sum.data_points
        for p in group:
            dp = data_points.add()
            dp.time_unix_nano = p.time_unix_nano
            if p.start_time_unix_nano:
                dp.start_time_unix_nano = p.start_time_unix_nano
            dp.as_double = p.value
            _set_attributes(dp.attributes, p.attributes)
    return request.SerializeToString()


def encode_logs(events: list[Event], resource: Mapping[str, str], observed_unix_nano: int) -> bytes:
    """One ExportLogsServiceRequest: each event a LogRecord with ``event.name`` and its attributes."""
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    _set_attributes(rl.resource.attributes, sorted(resource.items()))
    sl = rl.scope_logs.add()
    _scope(sl)
    for ev in events:
        record = sl.log_records.add()
        record.time_unix_nano = ev.time_unix_nano
        record.observed_time_unix_nano = observed_unix_nano
        record.severity_number = int(ev.severity)
        record.severity_text = ev.severity.name
        record.body.string_value = ev.body
        record.event_name = ev.name
        attributes = [("event.name", ev.name), *ev.attributes]
        if ev.event_id:
            attributes.append((EVENT_ID_KEY, ev.event_id))
        _set_attributes(record.attributes, attributes)
    return request.SerializeToString()


# ------------------------------------------------------------------------------------------ send


@dataclass(slots=True, frozen=True)
class SendResult:
    outcome: Literal["ok", "retry", "final"]
    rejected: int = 0  # partial_success rejected points / log records
    retry_after_s: float | None = None
    detail: str = ""


def _rejected(signal: Signal, body: bytes) -> tuple[int, str]:
    if not body:
        return 0, ""
    try:
        response = RESPONSES[signal].FromString(body)
    except Exception:  # a 2xx with an unparseable body is still a success
        return 0, ""
    if not response.HasField("partial_success"):
        return 0, ""
    ps = response.partial_success
    n = ps.rejected_data_points if signal == "metrics" else ps.rejected_log_records
    return int(n), ps.error_message


def _auth_headers(config: OtlpConfig) -> dict[str, str] | None:
    """Config headers plus the bearer token; None (→ SDK reads OTEL_EXPORTER_OTLP_HEADERS) if neither."""
    headers = {k.lower(): v for k, v in config.headers.items()}
    if config.token_file:
        try:
            with open(config.token_file) as f:
                token = f.read().strip()
        except OSError as exc:
            raise ValueError(f"otlp.token_file: cannot read {config.token_file}: {exc.strerror}") from None
        headers["authorization"] = f"Bearer {token}"
    if not headers:
        return None
    from opentelemetry.util.re import parse_env_headers

    env = os.environ.get("OTEL_EXPORTER_OTLP_HEADERS", "")
    return {**parse_env_headers(env, liberal=True), **headers}


def otlp_enabled(config: OtlpConfig) -> bool:
    return bool(
        config.endpoint
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    )


class GrpcTransport:
    RETRYABLE = ("UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "ABORTED", "CANCELLED", "DATA_LOSS")

    def __init__(self, config: OtlpConfig) -> None:
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        self._grpc = grpc
        kwargs: dict = {
            "endpoint": config.endpoint,
            "insecure": config.insecure,
            "headers": _auth_headers(config),
            "timeout": config.timeout_s,
            "compression": grpc.Compression.Gzip if config.compression == "gzip" else grpc.Compression.NoCompression,
        }
        if config.ca_file or config.cert_file:
            kwargs["credentials"] = grpc.ssl_channel_credentials(
                root_certificates=_read(config.ca_file),
                private_key=_read(config.key_file),
                certificate_chain=_read(config.cert_file),
            )
            if kwargs["insecure"] is None:
                kwargs["insecure"] = False
        self._exporters = {"metrics": OTLPMetricExporter(**kwargs), "logs": OTLPLogExporter(**kwargs)}
        self._calls: dict[str, object] = {}
        for signal in self._exporters:
            self._bind(signal)
        self.endpoint = self._exporters["metrics"]._endpoint

    def _bind(self, signal: str) -> None:
        channel = self._exporters[signal]._channel
        # request_serializer=None: the request is already bytes, sent as they are.
        self._calls[signal] = channel.unary_unary(
            GRPC_PATHS[signal], request_serializer=None, response_deserializer=None
        )

    def send(self, signal: Signal, payload: bytes) -> SendResult:
        exporter = self._exporters[signal]
        try:
            body = self._calls[signal](payload, metadata=exporter._headers or None, timeout=exporter._timeout)
        except self._grpc.RpcError as error:
            code = error.code()
            detail = f"gRPC {code.name}: {error.details()}"
            if code.name not in self.RETRYABLE:
                return SendResult("final", detail=detail)
            if code == self._grpc.StatusCode.UNAVAILABLE:
                # As the SDK does: a fresh channel skips grpc's reconnect backoff once the collector is back.
                exporter._channel.close()
                exporter._initialize_channel_and_stub()
                self._bind(signal)
            return SendResult("retry", retry_after_s=_retry_info(error), detail=detail)
        rejected, message = _rejected(signal, body)
        return SendResult("ok", rejected=rejected, detail=message)

    def close(self) -> None:
        for exporter in self._exporters.values():
            exporter._channel.close()


def _retry_info(error) -> float | None:
    try:
        raw = dict(error.trailing_metadata() or ()).get("google.rpc.retryinfo-bin")
    except Exception:
        return None
    if raw is None:
        return None
    from opentelemetry.exporter.otlp.proto.grpc.exporter import RetryInfo

    info = RetryInfo.FromString(raw)
    return info.retry_delay.seconds + info.retry_delay.nanos / 1e9


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


class HttpTransport:
    RETRYABLE = frozenset({429, 502, 503, 504})

    def __init__(self, config: OtlpConfig) -> None:
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        def url(path: str) -> str | None:
            if not config.endpoint:
                return None  # SDK: OTEL_EXPORTER_OTLP_{METRICS,LOGS}_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT + path
            parsed = urlparse(config.endpoint)
            if parsed.path in ("", "/"):
                return config.endpoint.rstrip("/") + "/" + path
            return config.endpoint

        kwargs: dict = {
            "certificate_file": config.ca_file,
            "client_key_file": config.key_file,
            "client_certificate_file": config.cert_file,
            "headers": _auth_headers(config),
            "timeout": config.timeout_s,
            "compression": Compression.Gzip if config.compression == "gzip" else Compression.NoCompression,
        }
        self._exporters = {
            "metrics": OTLPMetricExporter(endpoint=url("v1/metrics"), **kwargs),
            "logs": OTLPLogExporter(endpoint=url("v1/logs"), **kwargs),
        }
        self.endpoint = self._exporters["metrics"]._endpoint

    def send(self, signal: Signal, payload: bytes) -> SendResult:
        client = self._exporters[signal]._client
        headers = {"content-type": "application/x-protobuf", **client._headers}
        result = client._transport.request(
            "POST", client._endpoint, headers=headers, data=client._compress(payload), timeout=client._timeout
        )
        status = result.status_code
        if status is None:
            return SendResult("retry", detail=f"HTTP connection error: {result.error}")
        if 200 <= status < 300:
            rejected, message = _rejected(signal, _content(result))
            return SendResult("ok", rejected=rejected, detail=message)
        detail = f"HTTP {status} {result.reason or ''}".strip()
        if status in self.RETRYABLE:
            from opentelemetry.exporter.otlp.common.http import _extract_retry_after

            return SendResult("retry", retry_after_s=_extract_retry_after(result), detail=detail)
        return SendResult("final", detail=detail)

    def close(self) -> None:
        for exporter in self._exporters.values():
            exporter._client._transport.close()


def _content(result) -> bytes:
    try:
        return result.content() or b""
    except Exception:
        return b""


def build_transport(config: OtlpConfig) -> GrpcTransport | HttpTransport:
    return GrpcTransport(config) if config.protocol == "grpc" else HttpTransport(config)
