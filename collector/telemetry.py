"""The collector's own metrics (served on the API port at /metrics); names fixed by the contract."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

P = "fleetpulse_collector_"


class Telemetry:
    """One registry per collector instance (tests run several in one process)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.points_received = Counter(
            P + "points_received", "Data points and log records received.", ["transport"], registry=r
        )
        self.points_accepted = Counter(
            P + "points_accepted", "Data points and log records accepted into the WAL.", registry=r
        )
        self.points_rejected = Counter(
            P + "points_rejected", "Data points and log records rejected, by reason.", ["reason"], registry=r
        )
        self.requests = Counter(
            P + "requests", "Export requests by transport and response code.", ["transport", "code"], registry=r
        )
        self.wal_bytes = Gauge(P + "wal_bytes", "Bytes in the write-ahead log.", registry=r)
        self.wal_segments = Gauge(P + "wal_segments", "Segments in the write-ahead log.", registry=r)
        self.flush_duration = Histogram(
            P + "flush_duration_seconds",
            "Time to insert one batch into the store.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.insert_errors = Counter(P + "insert_errors", "Failed store inserts (retried).", registry=r)
        self.tenant_active_series = Gauge(
            P + "tenant_active_series", "Active series per tenant.", ["tenant"], registry=r
        )
        self.series_overflow = Counter(
            P + "series_overflow",
            "Points folded into overflow series (tenant over its series budget).",
            ["tenant"],
            registry=r,
        )
        self.rows_stored = Counter(P + "rows_stored", "Rows confirmed by the store.", registry=r)
        self.requests_shed = Counter(
            P + "requests_shed",
            "Export requests refused with 503 by the memory guard (limits.max_memory_bytes / max_inflight_bytes).",
            registry=r,
        )
