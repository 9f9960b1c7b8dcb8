"""What both transports do with an export request: limits → decode/convert → WAL (fsync) → writer.

Outcomes are transport-neutral (:class:`Rejected` carries the kind); the HTTP and gRPC front ends
map them to status codes (docs/COLLECTOR.md "Limits and responses").
"""

from __future__ import annotations

import math
import time

from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from collector.convert import (
    Converted,
    Converter,
    DecodeError,
    count_log_records,
    count_metric_points,
    decode_logs,
    decode_metrics,
)
from collector.limits import Limits, MemoryGuard, RateLimiter
from collector.pipeline import Pipeline
from collector.receiver.layouts import LayoutCache
from collector.spool.wal import KIND_LOGS, KIND_METRICS, Wal, WalFull, WalWriteFailed
from collector.telemetry import Telemetry

# Rejected.kind values
BAD_REQUEST = "bad_request"  # HTTP 400 / INVALID_ARGUMENT: final
TOO_LARGE = "too_large"  # HTTP 413 / INVALID_ARGUMENT: final
RATE_LIMITED = "rate_limited"  # HTTP 429 / RESOURCE_EXHAUSTED: retry after
UNAVAILABLE = "unavailable"  # HTTP 503 / UNAVAILABLE: retry after


def export_response(
    signal: str, converted: Converted
) -> metrics_service_pb2.ExportMetricsServiceResponse | logs_service_pb2.ExportLogsServiceResponse:
    """The OTLP export reply (both transports): partial success names what was rejected and why."""
    if signal == "metrics":
        reply = metrics_service_pb2.ExportMetricsServiceResponse()
        if converted.rejected:
            reply.partial_success.rejected_data_points = sum(converted.rejected.values())
            reply.partial_success.error_message = converted.error_message()
        return reply
    logs_reply = logs_service_pb2.ExportLogsServiceResponse()
    if converted.rejected:
        logs_reply.partial_success.rejected_log_records = sum(converted.rejected.values())
        logs_reply.partial_success.error_message = converted.error_message()
    return logs_reply


class Rejected(Exception):
    def __init__(self, kind: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after_s = retry_after_s

    @property
    def retry_after_header(self) -> str:
        return str(max(1, math.ceil(self.retry_after_s or 1)))


class Ingest:
    def __init__(
        self,
        wal: Wal,
        pipeline: Pipeline,
        converter: Converter,
        limits: Limits,
        rate: RateLimiter,
        telemetry: Telemetry,
        memory: MemoryGuard | None = None,
    ) -> None:
        self.wal = wal
        self.memory = memory or MemoryGuard(max_inflight_bytes=8 * limits.max_request_bytes)
        self.pipeline = pipeline
        self.converter = converter
        self.layouts = LayoutCache(converter)
        self.limits = limits
        self.rate = rate
        self.telemetry = telemetry
        self.draining = False

    def check_size(self, size: int) -> None:
        if size > self.limits.max_request_bytes:
            self.telemetry.points_rejected.labels("request_too_large").inc(0)
            raise Rejected(
                TOO_LARGE, f"request of {size} bytes exceeds limits.max_request_bytes={self.limits.max_request_bytes}"
            )

    def export(
        self, signal: str, tenant: str, body: bytes, transport: str, wire_gzip: bytes | None = None
    ) -> Converted:
        """Validate, convert and durably append one protobuf export request; the result says what was rejected."""
        if self.draining:
            raise Rejected(UNAVAILABLE, "collector is shutting down", retry_after_s=5)
        self.check_size(len(body))
        refusal = self.memory.acquire(len(body))
        if refusal:
            self.telemetry.requests_shed.inc()
            raise Rejected(UNAVAILABLE, refusal, self.memory.retry_after_s)
        try:
            return self._export(signal, tenant, body, transport, wire_gzip)
        finally:
            self.memory.release(len(body))

    def check_memory(self) -> None:
        """Refuse before reading a body while memory is over its soft limit (HTTP calls this first)."""
        refusal = self.memory.memory_refusal()
        if refusal:
            self.telemetry.requests_shed.inc()
            raise Rejected(UNAVAILABLE, refusal, self.memory.retry_after_s)

    def _export(
        self, signal: str, tenant: str, body: bytes, transport: str, wire_gzip: bytes | None = None
    ) -> Converted:
        # A sender's steady-state request: same layout as one already converted (receiver/layouts.py).
        layout = self.layouts.match(tenant, body) if signal == "metrics" else None
        if layout is not None:
            request = None
            count = layout.count
        else:
            try:
                request = decode_metrics(body) if signal == "metrics" else decode_logs(body)
            except DecodeError as exc:
                raise Rejected(BAD_REQUEST, str(exc)) from None
            count = count_metric_points(request) if signal == "metrics" else count_log_records(request)
        self.telemetry.points_received.labels(transport).inc(count)
        if count > self.limits.max_points_per_request:
            self.telemetry.points_rejected.labels("too_many_points").inc(count)
            raise Rejected(
                TOO_LARGE,
                f"request has {count} points, over limits.max_points_per_request={self.limits.max_points_per_request}; "
                "send smaller batches",
            )
        wait = self.rate.acquire(tenant, count)
        if wait:
            self.telemetry.points_rejected.labels("rate_limited").inc(count)
            raise Rejected(RATE_LIMITED, f"tenant {tenant!r} is over limits.rate_points_per_s={self.rate.rate:g}", wait)
        received_ns = time.time_ns()
        try:
            if layout is not None:
                converted = self.layouts.convert(tenant, layout, body, received_ns)
            elif signal == "metrics":
                converted = self.converter.metrics(tenant, request, received_ns)
                self.layouts.learn(tenant, body, converted)
            else:
                converted = self.converter.logs(tenant, request, received_ns)
        except (ProtobufDecodeError, RecursionError, UnicodeError) as exc:
            # Point attributes are decoded lazily (per new series): bad UTF-8 or nesting past the
            # decoder's depth limit surfaces here, not in decode_metrics. Final, like any bad body.
            raise Rejected(BAD_REQUEST, f"not a valid OTLP request: a data point attribute: {exc}") from None
        for reason, n in converted.rejected.items():
            self.telemetry.points_rejected.labels(reason).inc(n)
        if converted.rows or len(converted.inventory) or len(converted.placements):
            kind = KIND_METRICS if signal == "metrics" else KIND_LOGS
            try:
                # The client's gzip body, when there is one, is what the WAL keeps (spool/wal.py).
                payload = body if wire_gzip is None else wire_gzip
                self.wal.append(
                    tenant,
                    kind,
                    payload,
                    received_ns,
                    lambda rid: self.pipeline.submit(rid, converted),
                    gzip=wire_gzip is not None,
                )
            except WalWriteFailed as exc:
                self.telemetry.points_rejected.labels("wal_write_failed").inc(count)
                raise Rejected(UNAVAILABLE, str(exc), WalFull.retry_after_s) from None
            except WalFull as exc:
                self.telemetry.points_rejected.labels("wal_full").inc(count)
                raise Rejected(UNAVAILABLE, str(exc), WalFull.retry_after_s) from None
            except OSError as exc:  # fdatasync failed: not acknowledged; the client retries
                self.telemetry.points_rejected.labels("wal_write_failed").inc(count)
                raise Rejected(UNAVAILABLE, f"WAL sync failed: {exc}", WalFull.retry_after_s) from None
            self.telemetry.wal_bytes.set(self.wal.bytes)
            self.telemetry.wal_segments.set(self.wal.segments)
        self.telemetry.points_accepted.inc(converted.accepted)
        return converted
