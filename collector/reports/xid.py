"""`xid`: Xid events by code with severity and recommended action, per GPU (from the events table)."""

from __future__ import annotations

from agent.xid import lookup
from collector.reports.base import Query, epoch, iso
from collector.reports.result import ReportResult

DEFAULT_SINCE = "7d"
SEVERITY_RANK = {"fatal": 0, "critical": 1, "warning": 2, "unknown": 3, "app": 4, "info": 5}


def xid_rows(q: Query) -> list[dict]:
    """One dict per (gpu, node, code): count and first/last time. Events are read FINAL: a record
    re-sent by an agent's buffer counts once."""
    sql = f"""
        SELECT gpu, node, cluster, code, count(), min(ts), max(ts)
        FROM events FINAL
        WHERE {q.where()} AND event = 'gpu.xid'
        GROUP BY gpu, node, cluster, code
    """
    out = []
    for gpu, node, cluster, code, n, first, last in q.rows(sql):
        info = lookup(int(code))
        out.append(
            {
                "gpu": gpu,
                "node": node,
                "cluster": cluster,
                "code": int(code),
                "meaning": info.meaning,
                "severity": info.severity,
                "action": info.action,
                "count": int(n),
                "first": iso(epoch(first)),
                "last": iso(epoch(last)),
            }
        )
    out.sort(key=lambda r: (SEVERITY_RANK.get(r["severity"], 9), r["code"], -r["count"], r["gpu"]))
    return out


def run(q: Query) -> ReportResult:
    rows = xid_rows(q)
    by_code: dict[int, dict] = {}
    for r in rows:
        c = by_code.setdefault(r["code"], {"r": r, "gpus": set(), "events": 0})
        c["gpus"].add(r["gpu"])
        c["events"] += r["count"]
    summary = ReportResult(
        name="by_code",
        title="Xid codes",
        columns=["code", "meaning", "severity", "action", "gpus", "events"],
        units=["", "", "", "", "{gpu}", "{event}"],
        rows=[
            [code, c["r"]["meaning"], c["r"]["severity"], c["r"]["action"], len(c["gpus"]), c["events"]]
            for code, c in by_code.items()
        ],
    )
    return ReportResult(
        name="xid",
        title="Xid errors per GPU (most severe first)",
        columns=["code", "severity", "gpu", "node", "count", "first", "last", "meaning", "action"],
        units=["", "", "", "", "{event}", "UTC", "UTC", "", ""],
        rows=[
            [
                r["code"],
                r["severity"],
                r["gpu"],
                r["node"],
                r["count"],
                r["first"],
                r["last"],
                r["meaning"],
                r["action"],
            ]
            for r in rows
        ],
        notes=[
            f"{sum(r['count'] for r in rows)} Xid event(s) on {len({r['gpu'] for r in rows})} GPU(s)"
            if rows
            else "no Xid events in the window"
        ],
        params=q.win.describe(),
        sections=[summary],
    )
