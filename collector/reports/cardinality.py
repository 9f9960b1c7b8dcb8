"""`cardinality`: active series per metric, and the attribute keys with the most distinct values."""

from __future__ import annotations

from collector.reports.base import Query, ReportError
from collector.reports.result import ReportResult

DEFAULT_SINCE = "1h"


def run(q: Query) -> ReportResult:
    try:
        limit = int(q.win.options.get("limit") or 20)
    except ValueError:
        raise ReportError(f"limit: expected a whole number, got {q.win.options.get('limit')!r}") from None
    table = q.win.table
    count = "count()" if table == "samples" else "sum(count)"
    per_metric = q.rows(
        f"""SELECT metric, uniqExact(series_id), {count}, uniqExactIf(node, node != ''), uniqExactIf(gpu, gpu != '')
        FROM {table} WHERE {q.where()} GROUP BY metric ORDER BY 2 DESC, metric"""
    )
    keys = q.rows(
        f"""SELECT key, uniqExact(val), uniqExact(metric), uniqExact(series_id) FROM (
            SELECT metric, series_id, tupleElement(kv, 1) AS key, tupleElement(kv, 2) AS val
            FROM (SELECT metric, series_id, any(attributes) AS attributes FROM {table} WHERE {q.where()} GROUP BY metric, series_id)
            ARRAY JOIN CAST(attributes, 'Array(Tuple(String, String))') AS kv
        ) GROUP BY key ORDER BY 2 DESC, key LIMIT {{lim:UInt32}}""",
        lim=limit,
    )
    dims = q.rows(
        f"SELECT uniqExactIf(cluster, cluster != ''), uniqExactIf(node, node != ''), uniqExactIf(gpu, gpu != ''), uniqExact(series_id) FROM {table} WHERE {q.where()}"
    )
    clusters, nodes, gpus, total = dims[0] if dims else (0, 0, 0, 0)
    key_rows = [[k, int(v), int(m), int(s)] for k, v, m, s in keys]
    key_rows += [
        ["(cluster)", int(clusters), len(per_metric), int(total)],
        ["(node)", int(nodes), len(per_metric), int(total)],
        ["(gpu)", int(gpus), len(per_metric), int(total)],
    ]
    key_rows.sort(key=lambda r: (-r[1], r[0]))
    return ReportResult(
        name="cardinality",
        title="Active series per metric",
        columns=["metric", "series", "points", "nodes", "gpus"],
        units=["", "{series}", "{point}", "{node}", "{gpu}"],
        rows=[[m, int(s), int(p), int(n), int(g)] for m, s, p, n, g in per_metric],
        notes=[f"{int(total)} active series across {len(per_metric)} metric(s)"],
        params=q.win.describe(),
        sections=[
            ReportResult(
                name="attribute_keys",
                title="Attribute keys with the most distinct values",
                columns=["key", "distinct_values", "metrics", "series"],
                units=["", "{value}", "{metric}", "{series}"],
                rows=key_rows[:limit],
            )
        ],
    )
