"""The collector writes its own metrics into the store, like any other telemetry.

Every ``self_telemetry.interval_s`` the prometheus-client registry behind /metrics is snapshotted into an
OTLP ``ExportMetricsServiceRequest`` and handed to :meth:`collector.receiver.core.Ingest.export` with
the configured tenant and transport ``self``: the same limits, WAL (fsync), writer, deduplication and
ingest mapping as an agent's export, no side door into the store.

- Names: OTel style (``collector.telemetry.otel_name``): ``fleetpulse.collector.points.received``.
- Counters → monotonic cumulative Sums; ``start_time_unix_nano`` is the counter's ``_created`` time, so
  a restart shows as a new ``start_ts`` with a lower value (a reset). Gauges → Gauges. Histograms →
  cumulative Histograms (stored as ``_count``, ``_sum``, ``_bucket`` rows with ``le``).
- Resource: ``host.name`` = this host (the stored ``node``), ``service.name = fleetpulse-collector``.
  Point attributes: the labels plus ``service.instance.id`` = the WAL identity, which survives restarts
  of the same data directory (so a restart continues the same series, with a reset).
- Timestamps: scheduled snapshots sit on the interval tick (aligned samples compress to ~0 bytes of
  timestamp); the snapshot at start and the one at shutdown carry the actual time, so what was counted
  until shutdown is stored and timestamps never go backwards across a restart.
- A snapshot the ingest refuses (WAL full, rate limit, shutting down) is dropped and counted in
  ``fleetpulse_collector_selfmon_dropped_total{reason}``: counters are cumulative, so the next snapshot
  carries what it missed.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2

from collector.telemetry import Telemetry, self_metrics

log = logging.getLogger(__name__)

SERVICE_NAME = "fleetpulse-collector"
SCOPE = "fleetpulse.collector.selfmon"
TRANSPORT = "self"
_CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
_NS = 1_000_000_000


def _attributes(pairs: Iterable[tuple[str, str]]) -> list[KeyValue]:
    out = []
    for key, value in pairs:
        kv = KeyValue(key=key)
        kv.value.string_value = value
        out.append(kv)
    return out


def snapshot_request(
    telemetry: Telemetry, host_name: str, instance_id: str, time_ns: int, fallback_start_ns: int
) -> ExportMetricsServiceRequest:
    """The registry's current values as one OTLP request (see the module doc for the mapping).

    ``fallback_start_ns`` is the counter start when prometheus-client exposes no ``_created`` sample
    (``PROMETHEUS_DISABLE_CREATED_SERIES``): the collector's start.
    """
    catalog = {m.prometheus_name.removesuffix("_total"): m for m in self_metrics(telemetry).values()}
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.extend(_attributes((("host.name", host_name), ("service.name", SERVICE_NAME))))
    sm = rm.scope_metrics.add()
    sm.scope.name = SCOPE
    instance = ("service.instance.id", instance_id)
    for family in telemetry.registry.collect():
        spec = catalog.get(family.name)
        if spec is None:  # not declared in Telemetry: nothing to map it to
            continue
        by_labels: dict[tuple[tuple[str, str], ...], dict[str, object]] = defaultdict(dict)
        for sample in family.samples:
            labels = dict(sample.labels)
            le = labels.pop("le", None)
            key = tuple(sorted(labels.items()))
            suffix = sample.name.removeprefix(family.name)
            if suffix == "_bucket":
                by_labels[key].setdefault("buckets", []).append((float(le), sample.value))  # type: ignore[union-attr, arg-type]
            else:
                by_labels[key][suffix] = sample.value
        if not by_labels:
            continue  # a labelled metric with no children yet
        metric = sm.metrics.add(name=spec.name, unit=spec.unit, description=spec.description)
        for key, values in sorted(by_labels.items()):
            attrs = _attributes((*key, instance))
            created = values.get("_created")
            start_ns = int(created * _NS) if created is not None else fallback_start_ns  # type: ignore[operator]
            if spec.instrument == "counter":
                metric.sum.is_monotonic = True
                metric.sum.aggregation_temporality = _CUMULATIVE
                metric.sum.data_points.add(
                    attributes=attrs, start_time_unix_nano=start_ns, time_unix_nano=time_ns, as_double=values["_total"]
                )
            elif spec.instrument == "gauge":
                metric.gauge.data_points.add(attributes=attrs, time_unix_nano=time_ns, as_double=values[""])
            elif spec.instrument == "histogram":
                buckets = sorted(values["buckets"])  # type: ignore[arg-type]
                cumulative = [count for _, count in buckets]
                per_bucket = [int(c - p) for c, p in zip(cumulative, [0.0, *cumulative[:-1]], strict=True)]
                metric.histogram.aggregation_temporality = _CUMULATIVE
                metric.histogram.data_points.add(
                    attributes=attrs,
                    start_time_unix_nano=start_ns,
                    time_unix_nano=time_ns,
                    count=int(values["_count"]),  # type: ignore[call-overload]
                    sum=values["_sum"],
                    explicit_bounds=[bound for bound, _ in buckets[:-1]],  # the last one is +Inf
                    bucket_counts=per_bucket,
                )
            else:
                raise ValueError(f"{family.name}: instrument {spec.instrument!r} has no OTLP mapping here")
    return request


class SelfMonitor:
    """Snapshots the collector's registry into its own ingest path on a timer (a daemon thread)."""

    def __init__(
        self,
        telemetry: Telemetry,
        export: Callable[[str, str, bytes, str], object],
        tenant: str,
        interval_s: float,
        instance_id: str,
        host_name: str | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.telemetry = telemetry
        self.export = export  # Ingest.export(signal, tenant, body, transport)
        self.tenant = tenant
        self.interval_ns = int(interval_s * _NS)
        self.instance_id = instance_id
        self.host_name = host_name or socket.gethostname()
        self.clock_ns = clock_ns
        self.started_ns = clock_ns()
        self.last_ns = 0
        self.sent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one snapshot at a time, timestamps strictly increasing

    def snapshot(self, aligned: bool = True) -> bool:
        """Take one snapshot and export it; False when it was skipped or refused (and counted)."""
        from collector.receiver.core import Rejected

        with self._lock:
            now = self.clock_ns()
            ts = now - now % self.interval_ns if aligned else now - now % 1_000_000  # the store keeps ms
            if ts <= self.last_ns:
                return False  # this tick is already stored
            body = snapshot_request(
                self.telemetry, self.host_name, self.instance_id, ts, self.started_ns
            ).SerializeToString()
            try:
                self.export("metrics", self.tenant, body, TRANSPORT)
            except Rejected as exc:
                self.telemetry.selfmon_dropped.labels(exc.kind).inc()
                log.warning("self-telemetry snapshot dropped (%s): %s", exc.kind, exc.message)
                return False
            except Exception:  # never let self-monitoring take the collector down
                self.telemetry.selfmon_dropped.labels("error").inc()
                log.exception("self-telemetry snapshot failed")
                return False
            self.last_ns = ts
            self.sent += 1
            return True

    def _run(self) -> None:
        while True:
            now = self.clock_ns()
            wait_ns = self.interval_ns - now % self.interval_ns
            if self._stop.wait(wait_ns / _NS):
                return
            self.snapshot(aligned=True)

    def start(self) -> None:
        """Snapshot now (the counters' starting values), then on every interval tick."""
        self.snapshot(aligned=False)
        self._thread = threading.Thread(target=self._run, name="selfmon", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the timer and store a last snapshot (call before the ingest starts refusing: draining)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.snapshot(aligned=False)
