"""ClickHouse SQL for the Grafana-managed rules, from the same spec fields as the PromQL.

Every query uses the Grafana ClickHouse plugin's macros (``$__toTime``), so the rule's evaluation
time decides the windows; ``collector/grafana/macros.py`` expands them for tests. Each query returns
time-series frames: a ``time`` column, string label columns (``node``, ``gpu``, ``gpu_index`` and the
alert's labels) and one ``value`` column, which the rule reduces (last) and compares (threshold).
Tables and columns: docs/ARCHITECTURE.md "Storage contract".
"""

from __future__ import annotations

from agent.catalog import CATALOG
from collector.alerting.promql import label
from collector.alerting.spec import COLLECTOR_KINDS, Alert, Slo, Spec

DATABASE = "fleetpulse"
GAUGE_LOOKBACK_S = 300  # like Prometheus' lookback delta: a gauge's last value within 5 minutes
STALE_AFTER_S = 300
COLLECTOR_PREFIX = "fleetpulse.collector."  # the collector's self-telemetry (collector/selfmon.py)
INSTANCE = "attributes['service.instance.id']"  # one collector process's series (its WAL identity)
RECEIVED = "fleetpulse.collector.points.received"
REJECTED = "fleetpulse.collector.points.rejected"


def quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def match_sql(match: dict[str, tuple[str, ...]]) -> str:
    parts = []
    for key, values in match.items():
        parts.append(f"attributes[{quote(key)}] IN ({', '.join(quote(v) for v in values)})")
    return "".join(f"\n    AND {p}" for p in parts)


def _label_columns(alert: Alert) -> tuple[list[str], list[str]]:
    """(select expressions, output names) for the labels an alert keeps."""
    select, names = [], []
    if alert.metric in CATALOG and "hw.id" in CATALOG[alert.metric].attributes:
        select += ["gpu", "attributes['gpu.index'] AS gpu_index"]
        names += ["gpu", "gpu_index"]
    for attr in alert.labels:
        select.append(f"attributes[{quote(attr)}] AS {label(attr)}")
        names.append(label(attr))
    return ["node", *select], ["node", *names]


def _window_start(seconds: int) -> str:
    return f"$__toTime - INTERVAL {seconds} SECOND"


def _collector_increase(tenant: str, metric: str, labels: tuple[str, ...], window_s: int) -> str:
    """Per collector instance (and ``labels``): the counter's increase over the window, as in the
    counter_increase template (a series first seen in the window or reset counts from zero)."""
    start = _window_start(window_s)
    keep = "".join(f", attributes[{quote(a)}] AS {label(a)}" for a in labels)
    group = "node, instance" + "".join(f", {label(a)}" for a in labels)
    return f"""SELECT {group}, sum(increase) AS increase
  FROM (
    SELECT node, {INSTANCE} AS instance{keep}, series_id,
      argMaxIf(value, ts, ts > {start}) AS last_in,
      argMaxIf(value, ts, ts <= {start}) AS last_before,
      countIf(ts <= {start}) AS points_before,
      argMaxIf(start_ts, ts, ts > {start}) AS start_in,
      argMaxIf(start_ts, ts, ts <= {start}) AS start_before,
      if(points_before = 0 OR start_in != start_before OR last_in < last_before, last_in, last_in - last_before) AS increase
    FROM {DATABASE}.samples
    WHERE tenant = {tenant} AND metric = {quote(metric)}
      AND ts > $__toTime - INTERVAL {2 * window_s} SECOND AND ts <= $__toTime
    GROUP BY {group}, series_id
    HAVING countIf(ts > {start}) > 0
  )
  GROUP BY {group}"""


def collector_sql(alert: Alert, spec: Spec) -> str:
    """collector_gauge / collector_ratio over the collector's stored self-metrics, per instance."""
    tenant = quote(spec.settings.tenant)
    if alert.kind == "collector_gauge":
        return f"""SELECT $__toTime AS time, node, instance, max(series_value) AS value
FROM (
  SELECT node, {INSTANCE} AS instance, series_id, argMax(value, ts) AS series_value
  FROM {DATABASE}.samples
  WHERE tenant = {tenant} AND metric = {quote(alert.metric)}
    AND ts > {_window_start(GAUGE_LOOKBACK_S)} AND ts <= $__toTime
  GROUP BY node, instance, series_id
)
GROUP BY node, instance
ORDER BY node, instance"""
    w = alert.window.seconds  # type: ignore[union-attr]
    kept = "".join(f", num.{label(a)} AS {label(a)}" for a in alert.labels)
    order = "node, instance" + "".join(f", {label(a)}" for a in alert.labels)
    return f"""SELECT $__toTime AS time, num.node AS node, num.instance AS instance{kept},
  num.increase / den.increase AS value
FROM (
  {_collector_increase(tenant, alert.metric, alert.labels, w)}
) AS num
INNER JOIN (
  {_collector_increase(tenant, alert.params["denominator"], (), w)}
) AS den ON den.node = num.node AND den.instance = num.instance
WHERE den.increase > 0
ORDER BY {order}"""


def resource_sql(alert: Alert, spec: Spec, match: dict[str, tuple[str, ...]] | None = None) -> str:
    if alert.kind in COLLECTOR_KINDS:
        return collector_sql(alert, spec)
    match = alert.match if match is None else match
    tenant = quote(spec.settings.tenant)
    metric = quote(alert.metric) if alert.metric else ""
    select, names = _label_columns(alert)
    group = ", ".join(names)
    outer = ", ".join(names)
    where = f"tenant = {tenant} AND metric = {metric}{match_sql(match)}" if metric else f"tenant = {tenant}"
    if alert.kind in ("counter_increase", "counter_rate"):
        w = alert.window.seconds  # type: ignore[union-attr]
        start = _window_start(w)
        per = "" if alert.kind == "counter_increase" else f" / {w}"
        # Per series: the last value in the window minus the last one before it. A series first seen
        # in the window, or reset (start_ts changed, value fell), counts from zero, so the first Xid of
        # a code is an increase and a driver reload is not a negative one.
        return f"""SELECT $__toTime AS time, {outer}, sum(increase){per} AS value
FROM (
  SELECT {", ".join(select)}, series_id,
    argMaxIf(value, ts, ts > {start}) AS last_in,
    argMaxIf(value, ts, ts <= {start}) AS last_before,
    countIf(ts <= {start}) AS points_before,
    argMaxIf(start_ts, ts, ts > {start}) AS start_in,
    argMaxIf(start_ts, ts, ts <= {start}) AS start_before,
    if(points_before = 0 OR start_in != start_before OR last_in < last_before, last_in, last_in - last_before) AS increase
  FROM {DATABASE}.samples
  WHERE {where}
    AND ts > $__toTime - INTERVAL {2 * w} SECOND AND ts <= $__toTime
  GROUP BY {group}, series_id
  HAVING countIf(ts > {start}) > 0
)
GROUP BY {group}
ORDER BY {group}"""
    if alert.kind in ("gauge", "gauge_avg"):
        w = GAUGE_LOOKBACK_S if alert.kind == "gauge" else alert.window.seconds  # type: ignore[union-attr]
        agg = "argMax(value, ts)" if alert.kind == "gauge" else "avg(value)"
        return f"""SELECT $__toTime AS time, {outer}, max(series_value) AS value
FROM (
  SELECT {", ".join(select)}, series_id, {agg} AS series_value
  FROM {DATABASE}.samples
  WHERE {where}
    AND ts > {_window_start(w)} AND ts <= $__toTime
  GROUP BY {group}, series_id
)
GROUP BY {group}
ORDER BY {group}"""
    if alert.kind == "gpu_count_drop":
        w = alert.window.seconds  # type: ignore[union-attr]
        # GPUs the inventory saw on the node within the window, minus GPUs reporting now; nodes that
        # report nothing at all are AgentStale's business.
        return f"""SELECT $__toTime AS time, known.node AS node, toFloat64(known.gpus - current.gpus) AS value
FROM (
  SELECT node, count() AS gpus
  FROM (
    SELECT node, gpu FROM {DATABASE}.inventory_seen
    WHERE tenant = {tenant}
    GROUP BY node, gpu
    HAVING max(last_seen) > {_window_start(w)}
  )
  GROUP BY node
) AS known
INNER JOIN (
  SELECT node, uniqExact(gpu) AS gpus FROM {DATABASE}.samples
  WHERE tenant = {tenant} AND metric = 'hw.gpu.info'
    AND ts > {_window_start(GAUGE_LOOKBACK_S)} AND ts <= $__toTime
  GROUP BY node
) AS current ON current.node = known.node
ORDER BY node"""
    if alert.kind == "agent_stale":
        w = alert.window.seconds  # type: ignore[union-attr]
        # Collectors write self-telemetry under their own host name; they are not agents.
        return f"""SELECT $__toTime AS time, node, toFloat64(dateDiff('second', max(ts), $__toTime)) AS value
FROM {DATABASE}.samples
WHERE tenant = {tenant} AND NOT startsWith(metric, {quote(COLLECTOR_PREFIX)})
  AND ts > {_window_start(w)} AND ts <= $__toTime
GROUP BY node
ORDER BY node"""
    raise ValueError(f"{alert.alert}: kind {alert.kind} has no ClickHouse query")


def slo_sql(slo: Slo, spec: Spec, long_s: int, short_s: int) -> str:
    """Burn rate of the SLO: the smaller of the long- and short-window error ratios, over the budget.

    Windows are whole minutes of the 1-minute rollup ending at the last complete minute, so the
    denominator is exactly GPU-minutes (or node-minutes).
    """
    tenant = quote(spec.settings.tenant)
    end = "toStartOfMinute($__toTime)"
    long_start = f"{end} - INTERVAL {long_s} SECOND"
    short_start = f"{end} - INTERVAL {short_s} SECOND"
    if slo.sli_kind == "gpu_state":
        metrics = ", ".join(quote(m) for m in slo.sli["bad_when_any"])
        inner = f"""  SELECT node, gpu, ts, max(s / c) AS bad
  FROM (
    SELECT node, gpu, series_id, ts, sum(sum) AS s, sum(count) AS c
    FROM {DATABASE}.samples_1m
    WHERE tenant = {tenant} AND metric IN ({metrics}){match_sql(slo.sli.get("match") or {})}
      AND ts >= {long_start} AND ts < {end}
    GROUP BY node, gpu, series_id, ts
  )
  GROUP BY node, gpu, ts"""
        ratios = f"""  sumIf(bad, ts >= {long_start}) / countIf(ts >= {long_start}) AS long_ratio,
  sumIf(bad, ts >= {short_start}) / countIf(ts >= {short_start}) AS short_ratio"""
    elif slo.sli_kind == "node_freshness":
        heartbeat = quote("hw.gpu.power.usage")
        # Expected nodes: those the inventory saw within a day before the long window, from the minute
        # it first saw them (a new node does not spend budget for the time before it joined); a node
        # that stops reporting keeps spending budget until it has been gone for a day.
        inner = f"""  SELECT nodes.node AS node, minutes.ts AS ts, if(fresh.node = '', 1.0, 0.0) AS bad
  FROM (
    SELECT node, toUnixTimestamp(toStartOfMinute(min(first_seen))) AS since
    FROM {DATABASE}.inventory_seen
    WHERE tenant = {tenant}
    GROUP BY node
    HAVING max(last_seen) >= {long_start} - INTERVAL 1 DAY
  ) AS nodes
  CROSS JOIN (
    SELECT toUnixTimestamp({long_start}) + 60 * number AS ts FROM numbers({long_s // 60})
  ) AS minutes
  LEFT JOIN (
    SELECT DISTINCT node, toUnixTimestamp(toStartOfMinute(ts)) AS ts FROM {DATABASE}.samples_1m
    WHERE tenant = {tenant} AND metric = {heartbeat}
      AND ts >= {long_start} AND ts < {end}
  ) AS fresh ON fresh.node = nodes.node AND fresh.ts = minutes.ts
  WHERE minutes.ts >= nodes.since"""
        ratios = f"""  sumIf(bad, ts >= toUnixTimestamp({long_start})) / countIf(ts >= toUnixTimestamp({long_start})) AS long_ratio,
  sumIf(bad, ts >= toUnixTimestamp({short_start})) / countIf(ts >= toUnixTimestamp({short_start})) AS short_ratio"""
    elif slo.sli_kind == "ingest_rejections":
        return _ingest_slo_sql(slo, tenant, end, long_start, short_start)
    else:
        raise ValueError(f"SLO {slo.name}: SLI kind {slo.sli_kind} has no ClickHouse query")
    return f"""SELECT $__toTime AS time, least(long_ratio, short_ratio) / {slo.budget!r} AS value
FROM (
SELECT
{ratios}
FROM (
{inner}
)
)"""


def _ingest_slo_sql(slo: Slo, tenant: str, end: str, long_start: str, short_start: str) -> str:
    """Points rejected / points received by every collector (its stored self-metrics), per window.

    Per counter series and minute of ``samples_1m``: the minute's last value and counter start. The
    increase of a minute is the difference from the series' previous minute, or the value itself when
    the counter restarted (start changed or value fell); a series' first minute counts from zero only
    if the counter started inside the range read (a new reason's first rejection), else it is the
    baseline. Minutes from 10 before the long window are read for that baseline.
    """
    read_start = f"{long_start} - INTERVAL 10 MINUTE"

    def ratio(start: str) -> str:
        received = f"sumIf(inc, received AND ts >= {start})"
        return f"if({received} > 0, sumIf(inc, NOT received AND ts >= {start}) / {received}, 0)"

    return f"""SELECT $__toTime AS time, least(long_ratio, short_ratio) / {slo.budget!r} AS value
FROM (
SELECT
  {ratio(long_start)} AS long_ratio,
  {ratio(short_start)} AS short_ratio
FROM (
  SELECT ts, received,
    lagInFrame(ts, 1, ts) OVER w AS prev_ts,
    lagInFrame(v, 1, v) OVER w AS prev_v,
    lagInFrame(st, 1, st) OVER w AS prev_st,
    if(prev_ts = ts, if(st >= {read_start}, v, 0), if(st != prev_st OR v < prev_v, v, v - prev_v)) AS inc
  FROM (
    SELECT series_id, ts, metric = {quote(RECEIVED)} AS received,
      argMaxMerge(last) AS v, max(start_ts) AS st
    FROM {DATABASE}.samples_1m
    WHERE tenant = {tenant} AND metric IN ({quote(RECEIVED)}, {quote(REJECTED)})
      AND ts >= {read_start} AND ts < {end}
    GROUP BY series_id, ts, metric
  )
  WINDOW w AS (PARTITION BY series_id ORDER BY ts ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
)
)"""
