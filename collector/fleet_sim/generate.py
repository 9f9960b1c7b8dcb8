"""Cut the fleet's history into requests and build them, in this process or in worker processes.

A task is (node, first tick, end tick); its payload is the gzip-compressed OTLP metrics request and,
when the chunk has events, the logs request. Tasks go out time-major (every node's first hour, then
the second...), like a live fleet.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from collector.fleet_sim.host import host_series_per_tick
from collector.fleet_sim.model import NodeModel, gpu_series_per_tick
from collector.fleet_sim.otlp import LayoutCache, encode, logs_request, metrics_request_bytes
from collector.fleet_sim.plan import FleetPlan

TARGET_POINTS_PER_REQUEST = 50_000


@dataclass(frozen=True, slots=True)
class Task:
    node: int
    ka: int
    kb: int


@dataclass(slots=True)
class Payload:
    metrics: bytes | None
    logs: bytes | None
    points: int
    events: int


def points_per_node_tick(plan: FleetPlan) -> float:
    """Points one healthy node reports per tick, on average (sizes the requests and the progress bar's total)."""
    g = plan.spec.gpus_per_node
    gpu_fast, gpu_slow = gpu_series_per_tick(plan)
    host_fast, host_slow = host_series_per_tick(plan)
    return g * gpu_fast + host_fast + (g * gpu_slow + host_slow) * plan.interval_ns / plan.slow_ns


def tasks(plan: FleetPlan, target_points: int = TARGET_POINTS_PER_REQUEST) -> list[Task]:
    per_chunk = max(1, min(plan.n_ticks, int(target_points // points_per_node_tick(plan))))
    out = []
    for ka in range(0, plan.n_ticks, per_chunk):
        kb = min(plan.n_ticks, ka + per_chunk)
        out.extend(Task(node, ka, kb) for node in range(plan.spec.nodes) if plan.reporting(node, ka))
    return out


class Builder:
    def __init__(self, plan: FleetPlan) -> None:
        self.model = NodeModel(plan)
        self.layouts = LayoutCache()

    def build(self, task: Task) -> Payload:
        chunk = self.model.chunk(task.node, task.ka, task.kb)
        points = chunk.points
        metrics = encode(metrics_request_bytes([chunk], self.layouts)) if points else None
        logs_msg = logs_request([chunk])
        return Payload(metrics, encode(logs_msg) if logs_msg is not None else None, points, len(chunk.events))


_WORKER: Builder | None = None


def _init_worker(plan: FleetPlan) -> None:
    global _WORKER
    _WORKER = Builder(plan)


def _build_in_worker(task: Task) -> Payload:
    assert _WORKER is not None
    return _WORKER.build(task)


def payloads(plan: FleetPlan, task_list: list[Task], workers: int = 0) -> Iterator[Payload]:
    """Payloads in task order; ``workers`` > 0 builds them in that many spawned processes."""
    if workers <= 0:
        builder = Builder(plan)
        for task in task_list:
            yield builder.build(task)
        return
    # spawn, not fork: the parent may hold a chDB engine and server threads.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(plan,)) as pool:
        pending: deque = deque()
        it = iter(task_list)
        window = workers * 3  # bounded look-ahead: memory stays flat however long the run
        for task in it:
            pending.append(pool.apply_async(_build_in_worker, (task,)))
            if len(pending) >= window:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
