"""What both transports do with an export request: limits → decode/convert → WAL (fsync) → writer.

Outcomes are transport-neutral (:class:`Rejected` carries the kind); the HTTP and gRPC front ends
map them to status codes (docs/COLLECTOR.md "Limits and responses").
"""

from __future__ import annotations

import math
import time

from collector.convert import (
    Converted,
    Converter,
    DecodeError,
    count_log_records,
    count_metric_points,
    decode_logs,
    decode_metrics,
)
from collector.limits import Limits, RateLimiter
from collector.pipeline import Pipeline
from collector.spool.wal import KIND_LOGS, KIND_METRICS, Wal, WalFull
from collector.telemetry import Telemetry

# Rejected.kind values
BAD_REQUEST = "bad_request"  # HTTP 400 / INVALID_ARGUMENT: final
TOO_LARGE = "too_large"  # HTTP 413 / INVALID_ARGUMENT: final
RATE_LIMITED = "rate_limited"  # HTTP 429 / RESOURCE_EXHAUSTED: retry after
UNAVAILABLE = "unavailable"  # HTTP 503 / UNAVAILABLE: retry after


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
    ) -> None:
        self.wal = wal
        self.pipeline = pipeline
        self.converter = converter
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

    def export(self, signal: str, tenant: str, body: bytes, transport: str) -> Converted:
        """Validate, convert and durably append one protobuf export request; the result says what was rejected."""
        if self.draining:
            raise Rejected(UNAVAILABLE, "collector is shutting down", retry_after_s=5)
        self.check_size(len(body))
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
        if signal == "metrics":
            converted = self.converter.metrics(tenant, request, received_ns)
        else:
            converted = self.converter.logs(tenant, request, received_ns)
        for reason, n in converted.rejected.items():
            self.telemetry.points_rejected.labels(reason).inc(n)
        if converted.rows or len(converted.inventory) or len(converted.placements):
            kind = KIND_METRICS if signal == "metrics" else KIND_LOGS
            try:
                self.wal.append(tenant, kind, body, received_ns, lambda rid: self.pipeline.submit(rid, converted))
            except WalFull as exc:
                self.telemetry.points_rejected.labels("wal_full").inc(count)
                raise Rejected(UNAVAILABLE, str(exc), WalFull.retry_after_s) from None
            self.telemetry.wal_bytes.set(self.wal.bytes)
            self.telemetry.wal_segments.set(self.wal.segments)
        self.telemetry.points_accepted.inc(converted.accepted)
        return converted
