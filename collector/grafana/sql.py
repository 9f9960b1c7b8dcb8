"""SQL for dashboard panels: variable filters, rollup selection by time range, and query shapes.

Rollup selection (docs/DASHBOARDS.md): a panel reading time series over ``samples`` gets a ``UNION ALL``
of three branches, one per table, each guarded by a condition on the dashboard range
``($__toTime - $__fromTime)``. After the plugin expands the macros the guard is a constant, so
ClickHouse folds it and reads only the branch whose guard holds; the SQL stays plain ClickHouse that the
real plugin sends unchanged (no server-side templating, no ``$__`` macro the plugin lacks):

    range <= 6 h   -> samples      (raw, every point)
    range <= 3 d   -> samples_1m   (bucket width at least 1 min)
    longer         -> samples_1h   (bucket width at least 1 h)

Every branch yields the same columns, so a panel's outer query does not care which one ran:
``t`` (bucket start, at least the table's resolution), ``step`` (bucket width, s), ``ts``, ``metric``,
``cluster``, ``node``, ``gpu``, ``series_id``, ``attributes`` and the bucket's ``vmin, vmax, vsum, vcount``
(a raw row is a bucket of one). Averages are ``sum(vsum) / sum(vcount)``; counter increases use
``max(vmax)`` per series and bucket (a monotonic counter's last value) differenced across buckets.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

DATABASE = "fleetpulse"
RAW_MAX_RANGE_S = 6 * 3600
MINUTE_MAX_RANGE_S = 3 * 86400
RANGE_S = "($__toTime - $__fromTime)"

Tier = Literal["raw", "1m", "1h"]
TIERS: tuple[Tier, ...] = ("raw", "1m", "1h")
_TABLE: dict[Tier, str] = {"raw": "samples", "1m": "samples_1m", "1h": "samples_1h"}
_RESOLUTION_S: dict[Tier, int] = {"raw": 1, "1m": 60, "1h": 3600}
_GUARD: dict[Tier, str] = {
    "raw": f"{RANGE_S} <= {RAW_MAX_RANGE_S}",
    "1m": f"{RANGE_S} > {RAW_MAX_RANGE_S} AND {RANGE_S} <= {MINUTE_MAX_RANGE_S}",
    "1h": f"{RANGE_S} > {MINUTE_MAX_RANGE_S}",
}

# Set while generating the benchmark's baseline: every series source reads this one tier, unguarded.
_forced: contextvars.ContextVar[Tier | None] = contextvars.ContextVar("fleetpulse_forced_tier", default=None)


@contextlib.contextmanager
def forced_tier(tier: Tier) -> Iterator[None]:
    """Generate panels that always read ``tier`` (the benchmark's raw-samples baseline)."""
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {TIERS}, got {tier!r}")
    token = _forced.set(tier)
    try:
        yield
    finally:
        _forced.reset(token)


def table(name: str) -> str:
    return f"{DATABASE}.{name}"


@dataclass(frozen=True, slots=True)
class Scope:
    """Which dashboard variables filter a query (host-level rows have gpu = '', so no gpu filter)."""

    cluster: bool = True
    node: bool = True
    gpu: bool = True

    def where(self, alias: str = "") -> str:
        p = f"{alias}." if alias else ""
        parts = [f"{p}tenant = '${{tenant}}'"]
        for var, on in (("cluster", self.cluster), ("node", self.node), ("gpu", self.gpu)):
            if on:
                parts.append(f"$__conditionalAll({p}{var} IN (${{{var}:singlequote}}), ${var})")
        return " AND ".join(parts)


GPU_SCOPE = Scope()
NODE_SCOPE = Scope(gpu=False)
CLUSTER_SCOPE = Scope(node=False, gpu=False)


def in_list(values: Sequence[str]) -> str:
    for v in values:
        if "'" in v or "\\" in v:
            raise ValueError(f"SQL literal {v!r} must not contain quotes or backslashes")
    return ", ".join(f"'{v}'" for v in values)


def _branch(tier: Tier, metrics: Sequence[str], scope: Scope, extra: str, guarded: bool) -> str:
    res = _RESOLUTION_S[tier]
    if tier == "raw":
        bucket, step = "$__timeInterval(ts)", "$__interval_s"
        values = "value AS vmin, value AS vmax, value AS vsum, toUInt64(1) AS vcount"
        attributes = "CAST(attributes, 'Map(String, String)')"
    else:
        step = f"greatest($__interval_s, {res})"
        bucket = f"toStartOfInterval(toDateTime(ts), INTERVAL {step} second)"
        values = "min AS vmin, max AS vmax, sum AS vsum, count AS vcount"
        attributes = "attributes"
    conditions = [f"metric IN ({in_list(metrics)})", scope.where(), "$__timeFilter(ts)"]
    if guarded:
        conditions.insert(0, _GUARD[tier])
    if extra:
        conditions.append(f"({extra})")
    where = "\n    AND ".join(conditions)
    return (
        f"  SELECT {bucket} AS t, toUInt32({step}) AS step, ts, metric, cluster, node, gpu, series_id,\n"
        f"    {attributes} AS attributes, {values}\n"
        f"  FROM {table(_TABLE[tier])}\n"
        f"  WHERE {where}"
    )


def source(metrics: Sequence[str], scope: Scope = GPU_SCOPE, extra: str = "") -> str:
    """Rows of ``metrics`` in the dashboard range, from the table the range calls for."""
    if not metrics:
        raise ValueError("source() needs at least one metric")
    forced = _forced.get()
    if forced is not None:
        return "(\n" + _branch(forced, metrics, scope, extra, guarded=False) + "\n)"
    branches = [_branch(tier, metrics, scope, extra, guarded=True) for tier in TIERS]
    return "(\n" + "\n  UNION ALL\n".join(branches) + "\n)"


# ---------------------------------------------------------------- query shapes


def _series_filter(metrics: Sequence[str], scope: Scope, extra: str, having: str) -> str:
    """``extra`` narrowed to the series whose range aggregate satisfies ``having``.

    Fleet-wide error panels cover thousands of series of which a handful move: selecting those first
    (a cheap pass over series_id and the value columns) keeps the window functions, the attribute
    reads and the rows sent to Grafana proportional to what there is to see.
    """
    inner = f"series_id IN (SELECT series_id FROM {source(metrics, scope, extra)} GROUP BY series_id HAVING {having})"
    return f"{extra}) AND ({inner}" if extra else inner


AGGREGATES = {
    "avg": "sum(vsum) / sum(vcount)",
    "max": "max(vmax)",
    "min": "min(vmin)",
}


def gauge_series(
    metrics: Sequence[str],
    label: str,
    agg: str = "avg",
    scope: Scope = GPU_SCOPE,
    extra: str = "",
    nonzero: bool = False,
) -> str:
    """One line per ``label`` value: the gauge aggregated per bucket (``nonzero``: only series ever above 0)."""
    if nonzero:
        extra = _series_filter(metrics, scope, extra, "max(vmax) > 0")
    return (
        f"SELECT t AS time, {label} AS series, {AGGREGATES[agg]} AS value\n"
        f"FROM {source(metrics, scope, extra)}\n"
        "GROUP BY time, series\nORDER BY time, series"
    )


def fleet_distribution(metric: str, extra: str = "", scope: Scope = GPU_SCOPE) -> str:
    """p50 / p95 / max across series of each bucket's per-series average (the fleet's spread)."""
    return (
        "SELECT time, quantile(0.5)(v) AS p50, quantile(0.95)(v) AS p95, max(v) AS max\n"
        "FROM (\n"
        f"  SELECT t AS time, series_id, {AGGREGATES['avg']} AS v\n"
        f"  FROM {source([metric], scope, extra)}\n"
        "  GROUP BY time, series_id\n"
        ")\nGROUP BY time\nORDER BY time"
    )


def counter_series(
    metrics: Sequence[str],
    label: str,
    scope: Scope = GPU_SCOPE,
    extra: str = "",
    per_second: bool = False,
    changing_only: bool = False,
) -> str:
    """Increase (or rate) of counters per bucket, summed per ``label`` value.

    ``changing_only`` leaves out series that did not move in the range (for fleet-wide error panels:
    thousands of flat counters have nothing to draw).

    A series' bucket value is its max (a monotonic counter's last value); the increase is the
    difference from the previous bucket, or the value itself after a reset (counter went down).
    The first bucket of each series has no predecessor in range and counts 0.
    """
    value = "sum(inc) / any(step)" if per_second else "sum(inc)"
    if changing_only:
        extra = _series_filter(metrics, scope, extra, "max(vmax) > min(vmin)")
    return (
        f"SELECT time, series, {value} AS value\n"
        "FROM (\n"
        "  SELECT time, step, series,\n"
        "    v - lagInFrame(v, 1, v) OVER (PARTITION BY series_id ORDER BY time"
        " ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS delta,\n"
        "    if(delta < 0, v, delta) AS inc\n"
        "  FROM (\n"
        f"    SELECT t AS time, any(step) AS step, series_id, any({label}) AS series, max(vmax) AS v\n"
        f"    FROM {source(metrics, scope, extra)}\n"
        "    GROUP BY series_id, time\n"
        "  )\n"
        ")\nGROUP BY time, series\nORDER BY time, series"
    )


def counter_increase_by_series(metrics: Sequence[str], scope: Scope = GPU_SCOPE, extra: str = "") -> str:
    """Per series: its increase over the whole range (max - min; counters only grow), with labels.

    Columns: metric, cluster, node, gpu, series_id, attributes, increase. Only series that increased
    are listed (flat ones are selected out first, before their attributes are read).
    """
    extra = _series_filter(metrics, scope, extra, "max(vmax) > min(vmin)")
    return (
        "SELECT any(metric) AS metric, cluster, node, gpu, series_id,\n"
        "  any(attributes) AS attributes, max(vmax) - min(vmin) AS increase\n"
        f"FROM {source(metrics, scope, extra)}\n"
        "GROUP BY series_id, cluster, node, gpu"
    )


def gpu_label(alias: str = "") -> str:
    """'node/gpuN' for a GPU series: short, unique in a fleet, sorts by node."""
    p = f"{alias}." if alias else ""
    return f"concat({p}node, '/gpu', {p}attributes['gpu.index'])"
