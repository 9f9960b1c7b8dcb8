"""The collector's own metrics: served on the API port at /metrics (Prometheus names fixed by the
contract) and written into the store by collector/selfmon.py under OTel-style names.

Name mapping (``otel_name``), the OTel → Prometheus translation run backwards: the prefix
``fleetpulse_collector_`` becomes ``fleetpulse.collector.``, a counter's ``_total`` goes (the instrument
says counter), a unit suffix moves into the unit (``_seconds`` → ``s``; ``_bytes`` → ``By`` and the word
``size``, as in the agent's ``fleetpulse.agent.buffer.size``), and the
remaining ``_`` become ``.``. So ``fleetpulse_collector_points_received_total`` is
``fleetpulse.collector.points.received``, ``fleetpulse_collector_flush_duration_seconds`` is
``fleetpulse.collector.flush.duration`` (unit s; stored as ``_count``/``_sum``/``_bucket`` rows) and
``fleetpulse_collector_wal_bytes`` is ``fleetpulse.collector.wal.size`` (unit By).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

P = "fleetpulse_collector_"
OTEL_PREFIX = "fleetpulse.collector."
_UNIT_SUFFIXES = (("_seconds", "", "s"), ("_bytes", "_size", "By"))  # (suffix, replacement, unit)
# Annotation units (UCUM curly braces) of the unitless metrics; translation adds no suffix for them.
_COUNT_UNITS = {
    "points_received": "{point}",
    "points_accepted": "{point}",
    "points_rejected": "{point}",
    "requests": "{request}",
    "requests_shed": "{request}",
    "wal_segments": "{segment}",
    "insert_errors": "{error}",
    "tenant_active_series": "{series}",
    "series_overflow": "{point}",
    "rows_stored": "{row}",
    "selfmon_dropped": "{snapshot}",
}


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
        self.selfmon_dropped = Counter(
            P + "selfmon_dropped",
            "Self-telemetry snapshots the collector could not write into its own store, by reason.",
            ["reason"],
            registry=r,
        )


@dataclass(frozen=True, slots=True)
class SelfMetric:
    """One collector self-metric under both names (the store's OTel name and the /metrics name)."""

    name: str  # OTel style, as stored: fleetpulse.collector.points.received
    prometheus_name: str  # as exposed on /metrics: fleetpulse_collector_points_received_total
    instrument: str  # counter | gauge | histogram
    unit: str
    description: str
    labels: tuple[str, ...]

    def stored_metrics(self) -> tuple[str, ...]:
        """The ``metric`` values its rows have in ``samples`` (a histogram is three)."""
        if self.instrument == "histogram":
            return (f"{self.name}_count", f"{self.name}_sum", f"{self.name}_bucket")
        return (self.name,)


def otel_name(family: str) -> tuple[str, str]:
    """(OTel name, unit) for a prometheus-client family name (without ``_total``); see the module doc."""
    if not family.startswith(P):
        raise ValueError(f"{family!r} is not a collector metric (expected the prefix {P!r})")
    base = family.removeprefix(P)
    unit = _COUNT_UNITS.get(base, "")
    for suffix, replacement, suffix_unit in _UNIT_SUFFIXES:
        if base.endswith(suffix):
            base, unit = base.removesuffix(suffix) + replacement, suffix_unit
            break
    if not unit:
        raise ValueError(f"{family!r}: no unit known; add it to collector/telemetry.py _COUNT_UNITS")
    return OTEL_PREFIX + base.replace("_", "."), unit


def self_metrics(telemetry: Telemetry | None = None) -> dict[str, SelfMetric]:
    """Every collector self-metric, keyed by its OTel name (the store's ``metric``)."""
    telemetry = telemetry or Telemetry()
    out: dict[str, SelfMetric] = {}
    for metric in vars(telemetry).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        family = metric._name  # prometheus-client keeps the family name here (no _total)
        name, unit = otel_name(family)
        kind = metric._type
        out[name] = SelfMetric(
            name=name,
            prometheus_name=family + ("_total" if kind == "counter" else ""),
            instrument=kind,
            unit=unit,
            description=metric._documentation,
            labels=tuple(metric._labelnames),
        )
    return out
