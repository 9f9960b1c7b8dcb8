"""Prometheus endpoint: the latest processed snapshot, served by a prometheus-client custom collector.

Names follow the OTel→Prometheus translation (the catalog's ``prometheus_name``: dots → underscores,
unit suffix, ``_total`` on counters); attribute keys become labels the same way
(``hw.id`` → ``hw_id``). Resource attributes are published once as ``target_info`` (OTel
convention); ``prometheus_resource_labels`` copies chosen ones (e.g. ``k8s.node.name``) onto every
sample. Diagnostic-burst points are not served (they are 1 s detail for OTLP only). What is served
went through the same cardinality and redaction steps as OTLP.

``/healthz`` answers 200 while sampling completes cycles and 503 when no cycle completed within
three intervals (a hung driver call, a stuck source).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from agent.catalog import CATALOG
from agent.processing.cardinality import BURST_KEY
from agent.snapshot import Snapshot

log = logging.getLogger(__name__)
_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def label_name(key: str) -> str:
    name = _INVALID.sub("_", key)
    return f"_{name}" if name[:1].isdigit() else name


class SnapshotCollector:
    """prometheus-client collector over the most recent snapshot."""

    def __init__(self, resource_labels: list[str] | None = None) -> None:
        self.resource_labels = list(resource_labels or [])
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()

    def update(self, snapshot: Snapshot) -> None:
        with self._lock:
            self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snapshot = self._snapshot
        if snapshot is None:
            return
        extra = [(label_name(k), snapshot.resource[k]) for k in self.resource_labels if k in snapshot.resource]
        info = GaugeMetricFamily(
            "target_info",
            "Resource attributes of this agent (OTel target_info).",
            labels=[label_name(k) for k in sorted(snapshot.resource)],
        )
        info.add_metric([snapshot.resource[k] for k in sorted(snapshot.resource)], 1.0)
        yield info
        groups: dict[str, list] = defaultdict(list)
        for p in snapshot.points:
            if any(k == BURST_KEY for k, _ in p.attributes):
                continue
            groups[p.name].append(p)
        for name, points in groups.items():
            spec = CATALOG[name]
            family_cls = CounterMetricFamily if spec.is_counter else GaugeMetricFamily
            # One family needs one label set: the union of the keys its points carry.
            keys = sorted({k for p in points for k, _ in p.attributes})
            labels = [label_name(k) for k in keys] + [k for k, _ in extra]
            family = family_cls(spec.prometheus_name, spec.description, labels=labels)
            seen = set()
            for p in points:
                attrs = dict(p.attributes)
                values = [attrs.get(k, "") for k in keys] + [v for _, v in extra]
                if tuple(values) in seen:  # two label sets that differ only by a sanitized key
                    continue
                seen.add(tuple(values))
                family.add_metric(values, p.value, timestamp=None)
            yield family


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class PrometheusEndpoint:
    """HTTP server: ``/metrics`` (the snapshot) and ``/healthz`` (sampling liveness)."""

    def __init__(
        self,
        listen: str,
        collector: SnapshotCollector,
        healthy: Callable[[], tuple[bool, str]],
    ) -> None:
        host, _, port = listen.rpartition(":")
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        metrics_app = make_wsgi_app(registry)

        def app(environ, start_response):
            if environ.get("PATH_INFO") == "/healthz":
                ok, why = healthy()
                status = "200 OK" if ok else "503 Service Unavailable"
                start_response(status, [("Content-Type", "text/plain")])
                return [why.encode() + b"\n"]
            return metrics_app(environ, start_response)

        self.server = make_server(host or "0.0.0.0", int(port), app, _Server, handler_class=_QuietHandler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="prometheus")
        self._thread.start()
        log.info("Prometheus endpoint on %s:%d (/metrics, /healthz)", host or "0.0.0.0", self.port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


class Liveness:
    """Sampling liveness for /healthz: stalled when no cycle completed within 3 intervals."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self.started = clock()
        self.last_cycle: float | None = None

    def cycle_done(self) -> None:
        self.last_cycle = self.clock()

    def __call__(self) -> tuple[bool, str]:
        now = self.clock()
        limit = 3 * self.interval_s
        since = now - (self.last_cycle if self.last_cycle is not None else self.started)
        if since <= limit:
            return True, f"ok: last cycle {since:.1f}s ago"
        return False, f"stalled: no completed sampling cycle for {since:.1f}s (limit {limit:.1f}s)"
