"""Drive a simulation: build payloads, post them with a few sender threads, show progress."""

from __future__ import annotations

import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TextIO

from collector.fleet_sim.generate import payloads, points_per_node_tick, tasks
from collector.fleet_sim.plan import FleetPlan
from collector.fleet_sim.send import OtlpHttpSender


@dataclass(slots=True)
class Summary:
    points: int
    events: int
    requests: int
    rejected_points: int
    rejected_logs: int
    seconds: float
    manifest: dict[str, Any]

    @property
    def points_per_s(self) -> float:
        return self.points / self.seconds if self.seconds > 0 else 0.0


class Progress:
    """A one-line progress bar on stderr (a line every 10% when stderr is not a terminal)."""

    def __init__(self, total: float, stream: TextIO | None = sys.stderr, width: int = 30) -> None:
        self.total = max(total, 1.0)
        self.stream = stream
        self.width = width
        self.started = time.perf_counter()
        self.last_draw = 0.0
        self.last_decile = -1
        self.tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())

    def update(self, done: int, force: bool = False) -> None:
        if self.stream is None:
            return
        now = time.perf_counter()
        frac = min(done / self.total, 1.0)
        elapsed = now - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 and frac < 1 else 0.0
        bar = "#" * int(frac * self.width) + "." * (self.width - int(frac * self.width))
        line = f"[{bar}] {frac * 100:5.1f}%  {done:,} points  {rate:,.0f} points/s  ETA {_fmt_s(eta)}"
        if self.tty:
            if force or now - self.last_draw > 0.25:
                self.stream.write("\r" + line)
                self.stream.flush()
                self.last_draw = now
        elif force or int(frac * 10) > self.last_decile:
            self.last_decile = int(frac * 10)
            self.stream.write(line + "\n")
            self.stream.flush()

    def finish(self, done: int) -> None:
        self.update(done, force=True)
        if self.tty and self.stream is not None:
            self.stream.write("\n")


def _fmt_s(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def simulate(
    plan: FleetPlan,
    sender: OtlpHttpSender,
    workers: int = 0,
    senders: int = 2,
    progress: TextIO | None = sys.stderr,
) -> Summary:
    """Generate the whole history and post it; returns counts and the manifest of injected faults."""
    task_list = tasks(plan)
    estimate = sum(points_per_node_tick(plan) * (t.kb - t.ka) for t in task_list)
    bar = Progress(estimate, progress)
    points = events = 0
    started = time.perf_counter()
    in_flight: deque[Future] = deque()
    with ThreadPoolExecutor(max_workers=max(1, senders), thread_name_prefix="simulate-send") as pool:
        for payload in payloads(plan, task_list, workers):
            if payload.metrics is not None:
                in_flight.append(pool.submit(sender.send_metrics, payload.metrics))
            if payload.logs is not None:
                in_flight.append(pool.submit(sender.send_logs, payload.logs))
            while len(in_flight) > senders * 2:
                in_flight.popleft().result()  # raises SendError: stop at the first final refusal
            points += payload.points
            events += payload.events
            bar.update(points)
        while in_flight:
            in_flight.popleft().result()
    seconds = time.perf_counter() - started
    bar.total = max(points, 1)
    bar.finish(points)
    return Summary(
        points=points,
        events=events,
        requests=sender.stats.requests,
        rejected_points=sender.stats.rejected_points,
        rejected_logs=sender.stats.rejected_logs,
        seconds=seconds,
        manifest=plan.manifest(),
    )
