"""`throttle`: per GPU, time throttled by reason and its share of the window, worst first.

Time comes from the cumulative throttle-time counter (``hw.gpu.throttle.time``, NVML field values);
when a GPU only reports the sampled bitmask (``hw.gpu.throttle.active``) the time is estimated as
active samples x sample spacing. First/last are the first and last samples with the reason active.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from agent.catalog import THROTTLE_REASONS
from collector.reports.base import Query, ReportError, Window, epoch, iso, share
from collector.reports.result import ReportResult

DEFAULT_SINCE = "24h"
# Not throttling in the sense anyone asks about: an idle GPU or clocks an operator pinned.
BENIGN = ("gpu_idle", "applications_clocks_setting", "display_clock_setting")


def reasons_filter(win: Window) -> set[str] | None:
    """Reasons to report: default all but the benign ones; `reasons=all` or a comma list."""
    text = str(win.options.get("reasons") or "").strip()
    if not text:
        return set(THROTTLE_REASONS) - set(BENIGN)
    if text == "all":
        return None
    wanted = {r.strip() for r in text.split(",") if r.strip()}
    unknown = wanted - set(THROTTLE_REASONS)
    if unknown:
        raise ReportError(f"reasons: unknown {sorted(unknown)}; known: all, {', '.join(THROTTLE_REASONS)}")
    return wanted


def throttle_rows(q: Query) -> list[dict[str, Any]]:
    """One dict per (gpu, reason) with throttled seconds > 0 or active samples."""
    wanted = reasons_filter(q.win)
    found: dict[tuple[str, str], dict[str, Any]] = {}

    def entry(gpu: str, reason: str, node: str, cluster: str) -> dict[str, Any]:
        key = (gpu, reason)
        if key not in found:
            found[key] = {
                "gpu": gpu,
                "node": node,
                "cluster": cluster,
                "reason": reason,
                "seconds": 0.0,
                "first": None,
                "last": None,
                "active_samples": 0,
                "est_seconds": 0.0,
                "onsets": 0,
            }
        return found[key]

    for _metric, cluster, node, gpu, attrs, inc, _t0, _t1 in q.counter_increases(["hw.gpu.throttle.time"]):
        reason = (attrs or {}).get("hw.gpu.throttle.reason", "unknown")
        if wanted is None or reason in wanted:
            entry(gpu, reason, node, cluster)["seconds"] += float(inc)
    active_sql = f"""
        SELECT gpu, attributes['hw.gpu.throttle.reason'] AS reason, argMax(node, ts), argMax(cluster, ts),
               min(ts), max(ts), count(),
               if(count() > 1, dateDiff('millisecond', min(ts), max(ts)) / 1000 / (count() - 1), 0) AS spacing
        FROM ({q.points(["hw.gpu.throttle.active"])})
        WHERE vmax > 0
        GROUP BY gpu, reason
    """
    # Spacing of all samples (not just active ones) estimates time for bitmask-only sources.
    spacing_sql = f"""
        SELECT gpu, if(count() > 1, dateDiff('millisecond', min(ts), max(ts)) / 1000 / (count() - 1), 0)
        FROM ({q.points(["hw.gpu.throttle.active"])})
        GROUP BY gpu, series_id
    """
    spacing = {gpu: float(s) for gpu, s in q.rows(spacing_sql)}
    for gpu, reason, node, cluster, first, last, n, _ in q.rows(active_sql):
        if wanted is not None and reason not in wanted:
            continue
        e = entry(gpu, reason, node, cluster)
        e.update(first=first, last=last, active_samples=int(n))
        e["est_seconds"] = n * spacing.get(gpu, 0.0)
    onset_sql = f"""
        SELECT gpu, attributes['hw.gpu.throttle.reason'] AS reason, count()
        FROM events FINAL WHERE {q.where()} AND event = 'gpu.throttle.onset' GROUP BY gpu, reason
    """
    for gpu, reason, n in q.rows(onset_sql):
        if (gpu, reason) in found:
            found[(gpu, reason)]["onsets"] = int(n)
    out = []
    for e in found.values():
        if e["seconds"] <= 0:
            e["seconds"] = e["est_seconds"]
        if e["seconds"] > 0 or e["active_samples"] > 0:
            out.append(e)
    return out


def run(q: Query) -> ReportResult:
    rows = throttle_rows(q)
    per_gpu: dict[str, float] = defaultdict(float)
    for r in rows:
        per_gpu[r["gpu"]] += r["seconds"]
    rows.sort(key=lambda r: (-per_gpu[r["gpu"]], r["gpu"], -r["seconds"], r["reason"]))
    window_s = q.win.seconds
    table = [
        [
            r["gpu"],
            r["node"],
            r["reason"],
            round(r["seconds"], 1),
            share(r["seconds"], window_s),
            iso(epoch(r["first"])) if r["first"] is not None else None,
            iso(epoch(r["last"])) if r["last"] is not None else None,
            r["onsets"],
        ]
        for r in rows
    ]
    notes = [f"{len(per_gpu)} GPU(s) throttled in the window" if per_gpu else "no throttling in the window"]
    if not q.win.options.get("reasons"):
        notes.append(f"benign reasons ({', '.join(BENIGN)}) hidden; reasons=all shows them")
    return ReportResult(
        name="throttle",
        title="GPU throttling by reason (worst first)",
        columns=["gpu", "node", "reason", "throttled", "share", "first_active", "last_active", "onsets"],
        units=["", "", "", "s", "%", "UTC", "UTC", "{event}"],
        rows=table,
        notes=notes,
        params=q.win.describe(),
    )
