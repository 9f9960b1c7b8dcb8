"""The agent's own health as fleetpulse.agent.* metrics (names in the catalog).

The sampler adds these points to every fast-tier snapshot, so they travel, are buffered and are
scraped exactly like hardware metrics. Counters are cumulative since the agent started.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections import Counter

from agent.snapshot import Snapshot, SnapshotBuilder

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class SelfTelemetry:
    def __init__(self) -> None:
        self.start_ns = time.time_ns()
        self._lock = threading.Lock()
        self.cycle_duration: dict[str, float] = {}
        self.source_errors: Counter[tuple[str, str]] = Counter()
        self.nvml_timeouts: Counter[str] = Counter()
        # Written by the export thread.
        self.points_exported: Counter[str] = Counter()
        self.points_dropped: Counter[str] = Counter()
        self.points_buffered = 0
        self.buffer_bytes = 0
        self.cardinality_overflow: Counter[str] = Counter()
        self.attributes_dropped: Counter[str] = Counter()

    def record_cycle(self, durations: dict[str, float], snapshot: Snapshot) -> None:
        with self._lock:
            self.cycle_duration.update(durations)
            for (source, reason), n in snapshot.source_errors.items():
                self.source_errors[(source, reason)] += n
                # Sources report a hung call as reason "timeout:<nvml function>".
                if source == "nvml" and reason.startswith("timeout"):
                    self.nvml_timeouts[reason.partition(":")[2] or "unknown"] += n

    def update_export(
        self,
        *,
        exported: Counter[str],
        dropped: Counter[str],
        buffered_points: int,
        buffer_bytes: int,
        overflow: Counter[str],
        attributes_dropped: Counter[str],
    ) -> None:
        with self._lock:
            self.points_exported = Counter(exported)
            self.points_dropped = Counter(dropped)
            self.points_buffered = buffered_points
            self.buffer_bytes = buffer_bytes
            self.cardinality_overflow = Counter(overflow)
            self.attributes_dropped = Counter(attributes_dropped)

    def add_points(self, builder: SnapshotBuilder) -> None:
        start = self.start_ns
        with self._lock:
            for source, seconds in self.cycle_duration.items():
                # Microseconds: finer than the cycle's own jitter; nanosecond noise only costs storage.
                builder.add("fleetpulse.agent.cycle.duration", round(seconds, 6), {"fleetpulse.source": source})
            for (source, reason), n in self.source_errors.items():
                builder.add(
                    "fleetpulse.agent.source.errors",
                    n,
                    {"fleetpulse.source": source, "error.type": reason},
                    start_time_unix_nano=start,
                )
            for function, n in self.nvml_timeouts.items():
                builder.add(
                    "fleetpulse.agent.nvml.timeouts", n, {"nvml.function": function}, start_time_unix_nano=start
                )
            for exporter, n in self.points_exported.items():
                builder.add(
                    "fleetpulse.agent.points.exported", n, {"fleetpulse.exporter": exporter}, start_time_unix_nano=start
                )
            for reason, n in self.points_dropped.items():
                builder.add("fleetpulse.agent.points.dropped", n, {"error.type": reason}, start_time_unix_nano=start)
            builder.add("fleetpulse.agent.points.buffered", self.points_buffered)
            builder.add("fleetpulse.agent.buffer.size", self.buffer_bytes)
            for metric, n in self.cardinality_overflow.items():
                builder.add(
                    "fleetpulse.agent.cardinality.overflow", n, {"metric.name": metric}, start_time_unix_nano=start
                )
            for metric, n in self.attributes_dropped.items():
                builder.add(
                    "fleetpulse.agent.attributes.dropped", n, {"metric.name": metric}, start_time_unix_nano=start
                )
        builder.add("fleetpulse.agent.memory.rss", rss_bytes())
        usage = resource.getrusage(resource.RUSAGE_SELF)
        builder.add("fleetpulse.agent.cpu.time", usage.ru_utime, {"cpu.mode": "user"}, start_time_unix_nano=start)
        builder.add("fleetpulse.agent.cpu.time", usage.ru_stime, {"cpu.mode": "system"}, start_time_unix_nano=start)
