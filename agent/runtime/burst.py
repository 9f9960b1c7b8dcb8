"""Diagnostic bursts: after a fault event, that GPU's fast fields every second for a while.

A fault event (Xid, GPU lost, uncorrected ECC increase, harmful throttle onset, row remap
pending/failure) that names a ``gpu.index`` starts a burst: the NVML source's
``collect_burst(builder, gpu_index)`` is called every 1 s for ``diagnostic_burst_s`` seconds, and
each point is tagged ``fleetpulse.burst.event_id`` = the event's id, so the detail joins to the event.
A GPU already in a burst keeps it (no restart); at most ``max_gpus`` bursts run at once, further
ones are skipped and counted. Burst points are exempt from the series budget but capped
(``CardinalityPolicy.burst_series_cap``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from agent.processing.cardinality import BURST_KEY
from agent.snapshot import Event, Point, SnapshotBuilder, align_to_tick

log = logging.getLogger(__name__)

FAULT_EVENTS = frozenset(
    {"gpu.xid", "gpu.lost", "gpu.throttle.onset", "gpu.row_remap.pending", "gpu.row_remap.failure"}
)
BURST_STEP_S = 1.0


def is_fault(event: Event) -> bool:
    if event.name in FAULT_EVENTS:
        return True
    if event.name == "gpu.ecc.increase":
        return any(v.lower() == "uncorrected" for _, v in event.attributes)
    return False


def with_event_ids(events: list[Event]) -> list[Event]:
    """Give every fault event an id (the burst and the event must share it)."""
    return [replace(ev, event_id=uuid.uuid4().hex[:16]) if not ev.event_id and is_fault(ev) else ev for ev in events]


@dataclass(slots=True)
class Burst:
    event_id: str
    gpu_index: int
    until_ns: int


class BurstManager:
    def __init__(self, duration_s: float, max_gpus: int) -> None:
        self.duration_ns = int(duration_s * 1e9)
        self.max_gpus = max_gpus
        self.active: dict[int, Burst] = {}
        self.skipped = 0
        self.next_ns = 0

    def on_events(self, events: list[Event], now_ns: int) -> list[Burst]:
        started = []
        if self.duration_ns <= 0:
            return started
        for ev in events:
            if not is_fault(ev):
                continue
            index = dict(ev.attributes).get("gpu.index")
            if index is None or not index.isdigit():
                continue
            gpu = int(index)
            if gpu in self.active:
                continue
            if len(self.active) >= self.max_gpus:
                self.skipped += 1
                log.warning("diagnostic burst for GPU %d (%s) skipped: %d already running", gpu, ev.name, self.max_gpus)
                continue
            burst = Burst(ev.event_id, gpu, now_ns + self.duration_ns)
            self.active[gpu] = burst
            started.append(burst)
            log.info("diagnostic burst on GPU %d for event %s (%s)", gpu, ev.event_id, ev.name)
            if not self.next_ns:
                self.next_ns = now_ns
        return started

    def seconds_until(self, now_ns: int) -> float | None:
        if not self.active:
            return None
        return max(0.0, (self.next_ns - now_ns) / 1e9)

    def collect(
        self,
        collect_burst: Callable[[SnapshotBuilder, int], None],
        resource: Mapping[str, str],
        now_ns: int,
    ) -> tuple[list[Point], list[str]]:
        """Run one burst step for every active burst; returns (tagged points, ended event ids)."""
        tick = align_to_tick(now_ns, BURST_STEP_S)
        self.next_ns = tick + int(BURST_STEP_S * 1e9)
        points: list[Point] = []
        ended = []
        for gpu, burst in list(self.active.items()):
            builder = SnapshotBuilder(resource, tick)
            try:
                collect_burst(builder, gpu)
            except Exception:  # a source bug ends the burst, never the agent
                log.exception("diagnostic burst on GPU %d failed; ending it", gpu)
                burst.until_ns = 0
            for p in builder.build().points:
                points.append(replace(p, attributes=tuple(sorted((*p.attributes, (BURST_KEY, burst.event_id))))))
            if tick >= burst.until_ns:
                del self.active[gpu]
                ended.append(burst.event_id)
        if not self.active:
            self.next_ns = 0
        return points, ended
