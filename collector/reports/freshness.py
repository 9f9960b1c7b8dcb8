"""`freshness`: nodes whose telemetry is late (last sample older than `late`, default 5m, before `until`)."""

from __future__ import annotations

from collector.fleet_sim.scenario import parse_duration
from collector.reports.base import Query, ReportError, epoch, iso
from collector.reports.result import ReportResult

DEFAULT_SINCE = "24h"
DEFAULT_LATE = "5m"


def late_threshold(q: Query) -> float:
    text = str(q.win.options.get("late") or DEFAULT_LATE)
    try:
        value = parse_duration(text)
    except ValueError:
        raise ReportError(f"late: expected a duration like 90s or 5m, got {text!r}") from None
    if value <= 0:
        raise ReportError("late: must be more than 0s")
    return value


# Collectors store their own metrics under their host name (collector/selfmon.py); they are not fleet nodes.
NOT_COLLECTOR = "NOT startsWith(metric, 'fleetpulse.collector.')"


def last_seen_per_node(q: Query) -> dict[tuple[str, str], float]:
    """Last sample time of every node that reported in the window. The hourly rollup finds the nodes
    cheaply; raw samples of the last hours give their exact last time."""
    # An hourly bucket starts up to an hour before the samples it holds: widen the coarse look back.
    coarse = q.rows(
        f"SELECT cluster, node, max(ts) FROM samples_1h WHERE {q.where()} AND {NOT_COLLECTOR} GROUP BY cluster, node",
        since_ms=int((q.win.since - 3600) * 1000),
    )
    # Each node's last sample lies at or after its last bucket's start: raw rows from there are enough.
    recent_from = max(q.win.since, min((epoch(t) for _, _, t in coarse), default=q.win.since))
    recent = q.rows(
        f"""SELECT cluster, node, max(ts) FROM samples
        WHERE {q.where()} AND {NOT_COLLECTOR} AND ts >= fromUnixTimestamp64Milli({{recent_ms:Int64}}, 'UTC')
        GROUP BY cluster, node""",
        recent_ms=int(recent_from * 1000),
    )
    last = {(c, n): epoch(t) for c, n, t in coarse}
    last.update({(c, n): epoch(t) for c, n, t in recent})
    return {k: v for k, v in last.items() if k[1]}


def run(q: Query) -> ReportResult:
    late_s = late_threshold(q)
    last = last_seen_per_node(q)
    rows = []
    for (cluster, node), ts in sorted(last.items(), key=lambda kv: kv[1]):
        lag = q.win.until - ts
        if lag > late_s:
            rows.append([node, cluster, iso(ts), round(lag, 1)])
    return ReportResult(
        name="freshness",
        title=f"Nodes whose telemetry is late (no sample for more than {late_s:g} s before {iso(q.win.until)})",
        columns=["node", "cluster", "last_sample", "lag"],
        units=["", "", "UTC", "s"],
        rows=rows,
        notes=[f"{len(rows)} of {len(last)} node(s) late" if last else "no node reported in the window"],
        params={**q.win.describe(), "late_s": late_s},
    )
