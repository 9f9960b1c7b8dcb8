"""Fleet overview: GPUs by health, utilization/power/temperature spread, throttling, worst offenders,
ECC and Xid event counts, telemetry freshness."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from collector.grafana import panels as p
from collector.grafana import sql
from collector.grafana.boards.common import HARMFUL_REASONS, board

UID = "fleetpulse-overview"
HEALTH_LOOKBACK = "INTERVAL 1 HOUR"
STALE_AFTER_S = 300
STATE_METRICS = ("hw.gpu.lost", "hw.gpu.row_remap.pending", "hw.gpu.row_remap.failure", "hw.gpu.throttle.active")


def health_sql() -> str:
    """Each GPU's state at the end of the range (worst wins), counted per state."""
    harmful = sql.in_list(HARMFUL_REASONS)
    return f"""SELECT state, count() AS gpus
FROM (
  SELECT gpu,
    multiIf(
      maxIf(v, metric = 'hw.gpu.lost') > 0, 'lost',
      maxIf(v, metric = 'hw.gpu.row_remap.failure') > 0, 'remap failed',
      maxIf(v, metric = 'hw.gpu.row_remap.pending') > 0, 'reset pending',
      max(seen) < $__toTime - INTERVAL {STALE_AFTER_S} SECOND, 'stale',
      maxIf(v, metric = 'hw.gpu.throttle.active') > 0, 'throttled',
      'healthy') AS state
  FROM (
    SELECT gpu, metric, series_id, argMax(value, ts) AS v, max(ts) AS seen
    FROM {sql.table("samples")}
    WHERE metric IN ({sql.in_list(STATE_METRICS)}) AND {sql.GPU_SCOPE.where()}
      AND ts > $__toTime - {HEALTH_LOOKBACK} AND ts <= $__toTime
      AND (metric != 'hw.gpu.throttle.active' OR attributes['hw.gpu.throttle.reason'] IN ({harmful}))
    GROUP BY gpu, metric, series_id
  )
  GROUP BY gpu
)
GROUP BY state
ORDER BY gpus DESC"""


def worst_offenders_sql(limit: int = 25) -> str:
    harmful = sql.in_list(HARMFUL_REASONS)
    counters = sql.counter_increase_by_series(["hw.gpu.throttle.time", "hw.gpu.ecc.errors"])
    return f"""SELECT node, gpu, any(gpu_index) AS gpu_index, sum(throttled_s) AS throttled_s,
  sum(ecc_corrected) AS ecc_corrected, sum(ecc_uncorrected) AS ecc_uncorrected, sum(xids) AS xids
FROM (
  SELECT node, gpu, attributes['gpu.index'] AS gpu_index,
    if(metric = 'hw.gpu.throttle.time' AND attributes['hw.gpu.throttle.reason'] IN ({harmful}), increase, 0)
      AS throttled_s,
    if(metric = 'hw.gpu.ecc.errors' AND attributes['hw.gpu.ecc.type'] = 'corrected'
      AND attributes['hw.gpu.ecc.scope'] = 'aggregate', increase, 0) AS ecc_corrected,
    if(metric = 'hw.gpu.ecc.errors' AND attributes['hw.gpu.ecc.type'] = 'uncorrected'
      AND attributes['hw.gpu.ecc.scope'] = 'aggregate', increase, 0) AS ecc_uncorrected,
    0 AS xids
  FROM ({counters})
  UNION ALL
  SELECT node, gpu, attributes['gpu.index'], 0, 0, 0, 1
  FROM {sql.table("events")} FINAL
  WHERE event = 'gpu.xid' AND {sql.GPU_SCOPE.where()} AND $__timeFilter(ts)
)
GROUP BY node, gpu
HAVING throttled_s + ecc_corrected + ecc_uncorrected + xids > 0
ORDER BY xids DESC, ecc_uncorrected DESC, ecc_corrected DESC, throttled_s DESC
LIMIT {limit}"""


def event_counts_sql() -> str:
    return f"""SELECT $__timeInterval(ts) AS time, event AS series, count() AS value
FROM {sql.table("events")} FINAL
WHERE {sql.GPU_SCOPE.where()} AND $__timeFilter(ts) AND event NOT IN ('agent.start', 'agent.stop')
GROUP BY time, series
ORDER BY time, series"""


def event_total_sql(event: str) -> str:
    return f"""SELECT count() AS events
FROM {sql.table("events")} FINAL
WHERE event = '{event}' AND {sql.GPU_SCOPE.where()} AND $__timeFilter(ts)"""


def ecc_total_sql() -> str:
    inc = sql.counter_increase_by_series(
        ["hw.gpu.ecc.errors"],
        extra="attributes['hw.gpu.ecc.type'] = 'corrected' AND attributes['hw.gpu.ecc.scope'] = 'aggregate'",
    )
    return f"SELECT sum(increase) AS corrected_errors\nFROM ({inc})"


def freshness_sql() -> str:
    """Per node: the newest minute with a fast-tier sample (read from the 1 m rollup, last day at most)."""
    return f"""SELECT node, cluster, max(ts) AS last_seen,
  dateDiff('second', max(ts), $__toTime) AS age_s
FROM {sql.table("samples_1m")}
WHERE metric IN ('hw.gpu.power.usage', 'system.cpu.load_average.1m') AND {sql.NODE_SCOPE.where()}
  AND ts >= greatest($__fromTime, $__toTime - INTERVAL 1 DAY) AND ts <= $__toTime
GROUP BY node, cluster
ORDER BY age_s DESC, node"""


def build() -> dashboard.Dashboard:
    gpu_filter = "attributes['hw.gpu.task'] = 'general'"
    health = [
        p.pie_panel(
            "GPUs by health",
            health_sql(),
            "Each GPU's state at the end of the range, worst first: lost (Xid 79), remap failed, reset pending "
            "(row remap waits for a reset), stale (no sample for 5 min), throttled (a harmful clock-event "
            "reason is set), healthy.",
            w=6,
        ),
        p.stat_panel(
            "Xid errors", event_total_sql("gpu.xid"), "Xid events in the range.", steps=((None, "green"), (1, "red"))
        ),
        p.stat_panel(
            "Corrected ECC errors",
            ecc_total_sql(),
            "Increase of the aggregate single-bit ECC counters in the range.",
            steps=((None, "green"), (1, "orange"), (100, "red")),
        ),
        p.stat_panel(
            "GPUs lost", event_total_sql("gpu.lost"), "GPUs that fell off the bus.", steps=((None, "green"), (1, "red"))
        ),
        p.table_panel(
            "Telemetry freshness",
            freshness_sql(),
            "Newest minute each node reported (GPU power or host load), oldest first. Over 5 minutes: the agent "
            "or its network path is down.",
            w=6,
            overrides=(("age_s", "s", ((None, "green"), (300, "orange"), (900, "red"))),),
            links=(p.node_link(),),
        ),
    ]
    spread = [
        p.ts_panel(
            "GPU utilization (fleet p50 / p95 / max)",
            sql.fleet_distribution("hw.gpu.utilization", gpu_filter),
            "percentunit",
            "Spread of per-GPU utilization across the selected GPUs.",
            w=8,
            min_val=0,
        ),
        p.ts_panel(
            "GPU power (fleet p50 / p95 / max)",
            sql.fleet_distribution("hw.gpu.power.usage"),
            "watt",
            "Spread of per-GPU power draw.",
            steps=((None, "green"), (650, "orange"), (700, "red")),
            w=8,
        ),
        p.ts_panel(
            "GPU temperature (fleet p50 / p95 / max)",
            sql.fleet_distribution("hw.gpu.temperature", "attributes['hw.sensor'] = 'gpu'"),
            "celsius",
            "Spread of per-GPU die temperature; thermal slowdown starts around 87-90 °C on H100.",
            steps=((None, "green"), (83, "orange"), (88, "red")),
            w=8,
        ),
    ]
    trouble = [
        p.ts_panel(
            "Throttled GPU-time by reason",
            sql.counter_series(
                ["hw.gpu.throttle.time"],
                "attributes['hw.gpu.throttle.reason']",
                extra=f"attributes['hw.gpu.throttle.reason'] IN ({sql.in_list(HARMFUL_REASONS)})",
                changing_only=True,
            ),
            "s",
            "GPU-seconds spent with clocks held back, per harmful reason (hw.gpu.throttle.time increase).",
            stacked=True,
            bars=True,
        ),
        p.ts_panel(
            "Hardware events",
            event_counts_sql(),
            "short",
            "Events per bucket by kind (Xid, ECC increase, throttle onset/clear, remap, link down).",
            bars=True,
        ),
        p.table_panel(
            "Worst offenders",
            worst_offenders_sql(),
            "GPUs with Xids, ECC errors or harmful throttling in the range. Click a row for its history.",
            w=24,
            links=(p.gpu_link(),),
            overrides=(
                ("throttled_s", "s", ((None, "green"), (60, "orange"), (600, "red"))),
                ("ecc_uncorrected", "none", ((None, "green"), (1, "red"))),
                ("xids", "none", ((None, "green"), (1, "red"))),
            ),
        ),
    ]
    return board(
        UID,
        "FleetPulse / Fleet overview",
        "GPU fleet health at a glance; drill into a GPU or node from the tables.",
        [("Health", health), ("Utilization, power, temperature", spread), ("Trouble", trouble)],
    )
