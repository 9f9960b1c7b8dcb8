"""`fleetpulse agent` as a daemon: sampling tiers, export, signals.

Two threads with one job each:

- the **sampler** (main thread) owns every source, so every NVML call happens here and never on
  the export path. It runs the fast tier each ``interval_s`` tick, adds the slow tier on
  ``slow_interval_s`` ticks, diagnostic-burst steps every second, and the placement poll; each
  cycle's snapshot is stamped with the tick (wall-clock aligned) and handed to the exporter.
- the **exporter** applies cardinality and redaction, updates the Prometheus snapshot, encodes OTLP
  requests (a cycle's events first, so they leave at once) and delivers them through the buffer
  (agent/exporters/delivery.py). A slow or absent collector never delays sampling.

Signals: SIGTERM/SIGINT stop cleanly (an ``agent.stop`` event, then a final flush; what cannot be
sent in time stays in the disk buffer); SIGHUP re-reads the config file (flags still win) and
applies it; a bad file is reported and the last good config stays in force.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import queue
import signal
import threading
import time
from collections import Counter
from dataclasses import replace

from agent.config import AgentConfig
from agent.exporters.prometheus import Liveness, PrometheusEndpoint, SnapshotCollector
from agent.processing.cardinality import CardinalityPolicy
from agent.processing.redaction import Redactor
from agent.runtime.burst import BurstManager, with_event_ids
from agent.runtime.scheduler import TickSchedule
from agent.runtime.selftelemetry import SelfTelemetry
from agent.runtime.sources import build_sources, resource_attributes
from agent.snapshot import Severity, Snapshot, SnapshotBuilder, align_to_tick

log = logging.getLogger(__name__)

SOURCE_KEYS = ("sources", "roots", "nvml", "simulate", "host_per_cpu")
EXPORT_KEYS = ("otlp", "buffer", "cardinality", "redaction", "prometheus_resource_labels", "interval_s")
STOP_FLUSH_S = 5.0


class ExportWorker(threading.Thread):
    """The export thread: process → Prometheus snapshot → OTLP delivery."""

    def __init__(self, config: AgentConfig, telemetry: SelfTelemetry, prometheus: SnapshotCollector) -> None:
        super().__init__(name="export", daemon=True)
        self.telemetry = telemetry
        self.prometheus = prometheus
        self.queue: queue.Queue = queue.Queue(maxsize=256)
        self.delivery = None
        self.dropped_queue_full = 0
        self._configure(config, None)

    # ------------------------------------------------------------------ configuration
    def _configure(self, config: AgentConfig, old: AgentConfig | None) -> None:
        self.config = config
        if old is None or (old.cardinality, old.redaction) != (config.cardinality, config.redaction):
            self.redactor = Redactor(config.redaction)
            self.policy = CardinalityPolicy(
                config.cardinality, self.redactor, stale_after_s=max(600.0, 10 * config.slow_interval_s)
            )
        self.prometheus.resource_labels = list(config.prometheus_resource_labels)
        if old is None or (old.otlp, old.buffer) != (config.otlp, config.buffer):
            from agent.exporters.otlp import otlp_enabled

            if self.delivery is not None:
                self.delivery.close()
                self.delivery = None
            if otlp_enabled(config.otlp):
                from agent.exporters.buffer import open_buffer
                from agent.exporters.delivery import Delivery
                from agent.exporters.otlp import build_transport

                transport = build_transport(config.otlp)
                buffer = open_buffer(
                    config.buffer.dir, config.buffer.max_bytes, config.buffer.max_age_s, config.buffer.fsync
                )
                self.delivery = Delivery(
                    transport,
                    buffer,
                    drain_batches_per_cycle=config.buffer.drain_batches_per_cycle,
                    retry_cap_s=max(1.0, min(30.0, config.interval_s)),
                )
                log.info(
                    "OTLP %s export to %s; buffer %s",
                    config.otlp.protocol,
                    transport.endpoint,
                    config.buffer.dir or "in memory",
                )
        if self.delivery is not None:
            self.delivery.retry_cap_s = max(1.0, min(30.0, config.interval_s))
            self.delivery.drain_batches_per_cycle = config.buffer.drain_batches_per_cycle

    # ------------------------------------------------------------------ queue
    def put(self, kind: str, payload: object) -> None:
        try:
            self.queue.put_nowait((kind, payload))
        except queue.Full:
            # The export thread is stuck (e.g. a long send timeout): drop the oldest item, not sampling.
            try:
                old_kind, old = self.queue.get_nowait()
                if old_kind in ("cycle", "burst"):
                    n = len(old.points) if isinstance(old, Snapshot) else len(old[0])
                    self.dropped_queue_full += n
                else:
                    self.queue.put_nowait((old_kind, old))
            except queue.Empty:
                pass
            self.queue.put_nowait((kind, payload))

    def run(self) -> None:
        while True:
            try:
                kind, payload = self.queue.get(timeout=self.config.interval_s)
            except queue.Empty:
                kind, payload = "idle", None
            try:
                if kind == "stop":
                    self._stop()
                    return
                if kind == "reconfigure":
                    self._configure(payload, self.config)
                elif kind == "cycle":
                    self._export(payload, cycle=True)
                elif kind == "burst":
                    points, resource, ended = payload
                    self._export(Snapshot(0, resource, points), cycle=False)
                    for event_id in ended:
                        self.policy.end_burst(event_id)
                if kind in ("cycle", "idle") and self.delivery is not None:
                    self.delivery.drain()
            except Exception:
                log.exception("export of a %s item failed", kind)
            self._report()

    def _export(self, snapshot: Snapshot, *, cycle: bool) -> None:
        cap = self.config.cardinality.max_value_length
        points = self.policy.process(snapshot.points)
        events = [
            replace(ev, attributes=self.redactor.attributes(tuple((k, v[:cap]) for k, v in ev.attributes)))
            for ev in snapshot.events
        ]
        resource = self.redactor.mapping(snapshot.resource)
        processed = Snapshot(snapshot.time_unix_nano, resource, points, events)
        if cycle:
            self.prometheus.update(processed)
        if self.delivery is None:
            return
        from agent.exporters.buffer import Batch
        from agent.exporters.otlp import encode_logs, encode_metrics

        batches = []
        if events:
            batches.append(Batch("logs", encode_logs(events, resource, time.time_ns()), len(events)))
        if points:
            batches.append(Batch("metrics", encode_metrics(points, resource), len(points)))
        self.delivery.submit(batches)

    def _report(self) -> None:
        d = self.delivery
        dropped: Counter[str] = Counter(d.points_dropped) if d else Counter()
        if d is not None:
            dropped["buffer_overflow"] += d.buffer.stats.dropped_overflow_points
            dropped["buffer_expired"] += d.buffer.stats.dropped_expired_points
        if self.dropped_queue_full:
            dropped["export_queue_full"] += self.dropped_queue_full
        if self.policy.burst_points_capped:
            dropped["burst_cap"] += self.policy.burst_points_capped
        self.telemetry.update_export(
            exported=Counter({"otlp": d.points_exported}) if d else Counter(),
            dropped=+dropped,
            buffered_points=d.buffer.points if d else 0,
            buffer_bytes=d.buffer.bytes if d else 0,
            overflow=self.policy.overflow,
            attributes_dropped=self.policy.attributes_dropped,
        )

    def _stop(self) -> None:
        if self.delivery is None:
            return
        empty = self.delivery.flush(min(STOP_FLUSH_S, self.config.otlp.timeout_s))
        if not empty:
            log.warning(
                "stopping with %d requests (%d points) still buffered%s",
                len(self.delivery.buffer),
                self.delivery.buffer.points,
                " on disk; they are sent after restart" if self.config.buffer.dir else " in memory; they are lost",
            )
        self.delivery.close()


class Daemon:
    def __init__(self, config: AgentConfig, config_path: str | None, args: argparse.Namespace | None) -> None:
        self.config = config
        self.config_path = config_path
        self.args = args
        self.stop_requested = threading.Event()
        self.wake = threading.Event()
        self.reload_requested = False
        self.telemetry = SelfTelemetry()
        self.liveness = Liveness(config.interval_s)
        self.prometheus = SnapshotCollector(config.prometheus_resource_labels)
        self.endpoint: PrometheusEndpoint | None = None
        self.sources = []
        self.placement = None

    # ------------------------------------------------------------------ signals
    def _on_stop(self, signum: int, _frame: object) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        self.stop_requested.set()
        self.wake.set()

    def _on_hup(self, _signum: int, _frame: object) -> None:
        self.reload_requested = True
        self.wake.set()

    # ------------------------------------------------------------------ components
    def _start_components(self) -> None:
        self.resource = resource_attributes(self.config)
        self.sources = build_sources(self.config)
        self.nvml = next((s for s in self.sources if getattr(s, "name", "") == "nvml"), None)
        self.bursts = BurstManager(self.config.diagnostic_burst_s, self.config.diagnostic_burst_max_gpus)
        self._start_placement()
        if self.config.prometheus_listen:
            self.endpoint = PrometheusEndpoint(self.config.prometheus_listen, self.prometheus, self.liveness)

    def _start_placement(self) -> None:
        self.placement = None
        if self.config.placement.enabled:
            from agent.placement import PlacementTracker, nvml_gpu_processes

            self.placement = PlacementTracker(
                self.config.roots.procfs,
                self.config.placement.kubelet_socket,
                nvml_gpu_processes(self.nvml) if self.nvml is not None else None,
            )
        self.placement_next = 0.0

    def _close_sources(self) -> None:
        for source in self.sources:
            try:
                source.close()
            except Exception:
                log.exception("closing source %s failed", getattr(source, "name", source))
        self.sources = []

    # ------------------------------------------------------------------ sampling
    def _cycle(self, tick: int, *, slow: bool, first: bool) -> None:
        builder = SnapshotBuilder(self.resource, tick)
        if first:
            builder.event(
                "agent.start",
                Severity.INFO,
                "fleetpulse agent started",
                {"fleetpulse.sources": ",".join(self.config.sources), "service.version": _version()},
            )
        durations: dict[str, float] = {}
        for source in self.sources:
            started = time.perf_counter()
            for tier in ("fast", "slow") if slow else ("fast",):
                try:
                    source.collect(builder, tier)
                except Exception:  # sources must not raise; if one does, the cycle still completes
                    log.exception("source %s raised in its %s tier", source.name, tier)
                    builder.count_error(source.name, "exception")
            durations[source.name] = time.perf_counter() - started
        if self.placement is not None and time.monotonic() >= self.placement_next:
            self.placement_next = time.monotonic() + self.config.placement.interval_s
            try:
                self.placement.poll(builder)
            except Exception:
                log.exception("placement poll failed")
                builder.count_error("placement", "exception")
        self.telemetry.record_cycle(durations, builder.snapshot)
        self.telemetry.add_points(builder)
        snapshot = builder.build()
        snapshot.events = with_event_ids(snapshot.events)
        if self.nvml is not None and hasattr(self.nvml, "collect_burst"):
            self.bursts.on_events(snapshot.events, time.time_ns())
        self.exporter.put("cycle", snapshot)
        self.liveness.cycle_done()

    def _burst_step(self, now: int) -> None:
        points, ended = self.bursts.collect(self.nvml.collect_burst, self.resource, now)
        if points or ended:
            self.exporter.put("burst", (points, self.resource, ended))

    # ------------------------------------------------------------------ reload
    def _reload(self) -> None:
        self.reload_requested = False
        if not self.config_path:
            log.warning("SIGHUP: the agent was started without --config; nothing to reload")
            return
        from agent.commands.agent_cmd import apply_flags
        from agent.config_schema import ConfigError, load_config

        try:
            new = load_config(self.config_path)
            if self.args is not None:
                apply_flags(new, self.args)
        except ConfigError as exc:
            log.error("config reload failed, keeping the last good config: %s", exc)
            return
        old = self.config
        changed = [f.name for f in dataclasses.fields(AgentConfig) if getattr(old, f.name) != getattr(new, f.name)]
        if not changed:
            log.info("config reloaded from %s: nothing changed", self.config_path)
            return
        if any(k in changed for k in SOURCE_KEYS):
            try:
                sources = build_sources(new)
            except Exception as exc:
                log.error("config reload failed, keeping the last good config: sources: %s", exc)
                return
            self._close_sources()
            self.sources = sources
            self.nvml = next((s for s in sources if getattr(s, "name", "") == "nvml"), None)
        if "prometheus_listen" in changed:
            if self.endpoint is not None:
                self.endpoint.close()
                self.endpoint = None
            if new.prometheus_listen:
                try:
                    self.endpoint = PrometheusEndpoint(new.prometheus_listen, self.prometheus, self.liveness)
                except OSError as exc:
                    log.error("prometheus_listen %s: cannot listen (%s); endpoint off", new.prometheus_listen, exc)
        self.config = new
        self.resource = resource_attributes(new)
        self.liveness.interval_s = new.interval_s
        if "interval_s" in changed or "slow_interval_s" in changed:
            self.fast = TickSchedule(new.interval_s)
            self.slow = TickSchedule(new.slow_interval_s)
        if "diagnostic_burst_s" in changed or "diagnostic_burst_max_gpus" in changed:
            self.bursts.duration_ns = int(new.diagnostic_burst_s * 1e9)
            self.bursts.max_gpus = new.diagnostic_burst_max_gpus
        if "placement" in changed or any(k in changed for k in SOURCE_KEYS):
            self._start_placement()
        if any(k in changed for k in EXPORT_KEYS):
            self.exporter.put("reconfigure", new)
        log.info("config reloaded from %s: changed %s", self.config_path, ", ".join(changed))

    # ------------------------------------------------------------------ main loop
    def run(self) -> int:
        previous = {
            sig: signal.signal(sig, handler)
            for sig, handler in (
                (signal.SIGTERM, self._on_stop),
                (signal.SIGINT, self._on_stop),
                (signal.SIGHUP, self._on_hup),
            )
        }
        try:
            try:
                self.exporter = ExportWorker(self.config, self.telemetry, self.prometheus)
                self._start_components()
            except (OSError, ValueError) as exc:
                log.error("agent cannot start: %s", exc)
                return 2
            self.exporter.start()
            self._loop()
            self._shutdown()
            return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _loop(self) -> None:
        self.fast = TickSchedule(self.config.interval_s)
        self.slow = TickSchedule(self.config.slow_interval_s)
        now = time.time_ns()
        self._cycle(align_to_tick(now, self.config.interval_s), slow=True, first=True)
        while not self.stop_requested.is_set():
            if self.reload_requested:
                self._reload()
            now = time.time_ns()
            if self.fast.due(now):
                tick = self.fast.take(now)
                slow = self.slow.due(tick)
                if slow:
                    self.slow.take(tick)
                self._cycle(tick, slow=slow, first=False)
            now = time.time_ns()
            if self.bursts.active and now >= self.bursts.next_ns:
                self._burst_step(now)
            now = time.time_ns()
            waits = [self.fast.seconds_until(now)]
            burst_wait = self.bursts.seconds_until(now)
            if burst_wait is not None:
                waits.append(burst_wait)
            self.wake.wait(min(waits))
            self.wake.clear()

    def _shutdown(self) -> None:
        builder = SnapshotBuilder(self.resource, time.time_ns())
        builder.event("agent.stop", Severity.INFO, "fleetpulse agent stopping", {"service.version": _version()})
        self.exporter.put("cycle", builder.build())
        self.exporter.put("stop", None)
        self.exporter.join(timeout=STOP_FLUSH_S + self.config.otlp.timeout_s + 5)
        self._close_sources()
        if self.endpoint is not None:
            self.endpoint.close()
        log.info("agent stopped")


def _version() -> str:
    from agent import __version__

    return __version__


def run_daemon(config: AgentConfig, config_path: str | None = None, args: argparse.Namespace | None = None) -> int:
    return Daemon(config, config_path, args).run()
