"""`ecc`: per GPU, SBE/DBE increases (volatile and aggregate), remapped rows, pending/failed remaps,
retired pages, and when each increase happened (section ``increases``)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from collector.reports.base import Query, epoch, iso
from collector.reports.result import ReportResult

DEFAULT_SINCE = "7d"
_SBE = {"corrected", "correctable", "sbe", "single_bit", "single"}
_DBE = {"uncorrected", "uncorrectable", "dbe", "double_bit", "double"}
ECC_METRICS = ["hw.gpu.ecc.errors"]
STATE_METRICS = [
    "hw.gpu.row_remap.rows",
    "hw.gpu.row_remap.pending",
    "hw.gpu.row_remap.failure",
    "hw.gpu.retired_pages",
    "hw.gpu.retired_pages.pending",
]


def ecc_type(attrs: dict[str, str] | None) -> str:
    value = str((attrs or {}).get("hw.gpu.ecc.type", "")).lower()
    return "sbe" if value in _SBE else "dbe" if value in _DBE else value or "unknown"


def ecc_scope(attrs: dict[str, str] | None) -> str:
    value = str((attrs or {}).get("hw.gpu.ecc.scope", "")).lower()
    return "aggregate" if value.startswith("agg") else "volatile" if value.startswith("vol") else value or "unknown"


def ecc_state(q: Query) -> dict[str, dict[str, Any]]:
    """Per GPU: counter increases, remap/retirement state, and the list of increases."""
    gpus: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "node": "",
            "cluster": "",
            "sbe_volatile": 0.0,
            "sbe_aggregate": 0.0,
            "dbe_volatile": 0.0,
            "dbe_aggregate": 0.0,
            "rows_corrected": 0.0,
            "rows_uncorrected": 0.0,
            "rows_increase": 0.0,
            "remap_pending": 0.0,
            "remap_failure": 0.0,
            "retired_pages": 0.0,
            "retired_increase": 0.0,
            "retired_pending": 0.0,
            "increases": [],
        }
    )
    for _metric, cluster, node, gpu, attrs, inc, _t0, _t1 in q.counter_increases(ECC_METRICS):
        key = f"{ecc_type(attrs)}_{ecc_scope(attrs)}"
        g = gpus[gpu]
        g.update(node=node, cluster=cluster)
        if key in g:
            g[key] += float(inc)
    for _metric, _cluster, node, gpu, attrs, ts, delta in q.increase_times(ECC_METRICS):
        gpus[gpu]["increases"].append(
            {
                "time": iso(epoch(ts)),
                "node": node,
                "type": ecc_type(attrs),
                "scope": ecc_scope(attrs),
                "delta": float(delta),
            }
        )
    # Remap / retirement gauges: the last value (current state), the max (was it ever set) and growth.
    state_sql = f"""
        SELECT metric, cluster, gpu, argMax(node, ts), any(attributes), argMax(value, ts), max(vmax), max(vmax) - min(vmin)
        FROM ({q.points(STATE_METRICS)})
        GROUP BY metric, cluster, gpu, series_id
    """
    for metric, cluster, gpu, node, attrs, last, peak, growth in q.rows(state_sql):
        if not (peak > 0 or growth > 0) and gpu not in gpus:
            continue
        g = gpus[gpu]
        g["node"] = g["node"] or node
        g["cluster"] = g["cluster"] or cluster
        if metric == "hw.gpu.row_remap.rows":
            g["rows_corrected" if ecc_type(attrs) == "sbe" else "rows_uncorrected"] = float(last)
            g["rows_increase"] += float(growth)
        elif metric == "hw.gpu.row_remap.pending":
            g["remap_pending"] = max(g["remap_pending"], float(peak))
        elif metric == "hw.gpu.row_remap.failure":
            g["remap_failure"] = max(g["remap_failure"], float(peak))
        elif metric == "hw.gpu.retired_pages":
            g["retired_pages"] += float(last)
            g["retired_increase"] += float(growth)
        elif metric == "hw.gpu.retired_pages.pending":
            g["retired_pending"] = max(g["retired_pending"], float(peak))
    return {gpu: g for gpu, g in gpus.items() if _interesting(g)}


def _interesting(g: dict[str, Any]) -> bool:
    keys = (
        "sbe_volatile",
        "sbe_aggregate",
        "dbe_volatile",
        "dbe_aggregate",
        "rows_increase",
        "remap_pending",
        "remap_failure",
        "retired_increase",
        "retired_pending",
    )
    return any(g[k] > 0 for k in keys)


def run(q: Query) -> ReportResult:
    gpus = ecc_state(q)
    order = sorted(
        gpus,
        key=lambda gpu: (
            -max(gpus[gpu]["dbe_volatile"], gpus[gpu]["dbe_aggregate"]),
            -gpus[gpu]["remap_failure"],
            -max(gpus[gpu]["sbe_volatile"], gpus[gpu]["sbe_aggregate"]),
            gpu,
        ),
    )
    rows = []
    increases = []
    for gpu in order:
        g = gpus[gpu]
        times = [i["time"] for i in g["increases"]]
        rows.append(
            [
                gpu,
                g["node"],
                int(g["sbe_volatile"]),
                int(g["sbe_aggregate"]),
                int(g["dbe_volatile"]),
                int(g["dbe_aggregate"]),
                int(g["rows_corrected"]),
                int(g["rows_uncorrected"]),
                "yes" if g["remap_pending"] > 0 else "no",
                "yes" if g["remap_failure"] > 0 else "no",
                int(g["retired_pages"]),
                min(times) if times else None,
                max(times) if times else None,
            ]
        )
        increases += [[gpu, i["node"], i["time"], i["type"], i["scope"], int(i["delta"])] for i in g["increases"]]
    section = ReportResult(
        name="increases",
        title="Each ECC counter increase",
        columns=["gpu", "node", "time", "type", "scope", "delta"],
        units=["", "", "UTC", "", "", "{error}"],
        rows=increases,
    )
    return ReportResult(
        name="ecc",
        title="ECC errors, row remapping and retired pages per GPU",
        columns=[
            "gpu",
            "node",
            "sbe_volatile",
            "sbe_aggregate",
            "dbe_volatile",
            "dbe_aggregate",
            "remapped_rows_corr",
            "remapped_rows_uncorr",
            "remap_pending",
            "remap_failed",
            "retired_pages",
            "first_increase",
            "last_increase",
        ],
        units=["", "", "{error}", "{error}", "{error}", "{error}", "{row}", "{row}", "", "", "{page}", "UTC", "UTC"],
        rows=rows,
        notes=[
            f"{len(rows)} GPU(s) with ECC activity in the window"
            if rows
            else "no ECC increases, pending or failed remaps in the window",
            "SBE/DBE columns are increases within the window; remapped rows and retired pages are current values",
        ],
        params=q.win.describe(),
        sections=[section],
    )
