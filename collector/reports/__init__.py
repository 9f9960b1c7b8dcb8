"""Reports over the store: throttle, ecc, xid, health, gpu, cardinality, freshness.

``run_report(name, store, tenant, params) -> ReportResult``; ``params`` are strings as they arrive
from the API's query string or the CLI: since, until (24h, 7d, ISO, now), cluster, node, gpu,
arg (the GPU UUID of `gpu`), resolution (auto|raw|1m|1h), late (freshness/missing threshold),
reasons (throttle), limit (cardinality). Bad parameters raise :class:`ReportError` (HTTP 400).
Rendering (table, json, csv, html) is in :mod:`collector.reports.render`.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Mapping
from typing import Any

from collector.reports.base import Query, ReportError, window
from collector.reports.result import Plot, ReportResult

REPORTS: dict[str, str] = {
    "throttle": "per GPU, time throttled by reason and share of time, worst first",
    "ecc": "per GPU, SBE/DBE increases, remapped rows, pending/failed remaps, retired pages, and when",
    "xid": "Xid events by code with severity and recommended action, per GPU",
    "health": "verdict per GPU with reason and action; GPUs missing against the inventory",
    "gpu": "one GPU's life across nodes (inventory, moves, errors, throttle): RMA evidence",
    "cardinality": "active series per metric; attribute keys with the most distinct values",
    "freshness": "nodes whose telemetry is late",
}

__all__ = ["REPORTS", "Plot", "ReportError", "ReportResult", "run_report"]


def run_report(
    name: str, store: Any, tenant: str, params: Mapping[str, Any] | None = None, now: float | None = None
) -> ReportResult:
    if name not in REPORTS:
        raise ReportError(f"unknown report {name!r}; reports: {', '.join(REPORTS)}")
    if not tenant:
        raise ReportError("tenant must be set (every read is tenant-scoped)")
    module = importlib.import_module(f"collector.reports.{name}")
    params = {k: v for k, v in (params or {}).items() if v not in (None, "")}
    win = window(params, module.DEFAULT_SINCE, now)
    started = time.perf_counter()
    result = module.run(Query(store, tenant, win))
    result.params.setdefault("tenant", tenant)
    result.params["query_seconds"] = round(time.perf_counter() - started, 3)
    return result
