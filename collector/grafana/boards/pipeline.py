"""Pipeline: agent cycle time and buffer depth (fleetpulse.agent.* metrics the agents send) and the
collector's accepted / rejected points, WAL and insert latency (fleetpulse.collector.* metrics the
collector writes into the store itself, collector/selfmon.py). Everything reads ClickHouse."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from collector.grafana import panels as p
from collector.grafana import sql
from collector.grafana.boards.common import board

UID = "fleetpulse-pipeline"
HOST = sql.NODE_SCOPE
# Collectors are not fleet nodes (not in the inventory the cluster/node variables list): their panels
# show every collector instance that writes self-telemetry into this tenant.
COLLECTOR = sql.Scope(cluster=False, node=False, gpu=False)
C = "fleetpulse.collector."
WAL_ALERT_BYTES = 512 * 1024 * 1024  # CollectorWalBacklog (alerts/resources.yaml)


def histogram_quantiles(name: str, quantiles: dict[str, float], scope: sql.Scope = COLLECTOR) -> str:
    """Quantiles per bucket from a stored histogram's cumulative ``<name>_bucket`` rows (``le``).

    Like PromQL's ``histogram_quantile`` over ``sum by (le) (increase(...))``: each ``le`` series'
    increase per bucket (a reset counts the value itself), summed across instances, then linear
    interpolation inside the bucket that holds the rank; a rank in the ``+Inf`` bucket gives the highest
    finite bound. Buckets without observations give NULL (a gap).
    """
    columns = []
    for alias, q in quantiles.items():
        rank = f"({q!r} * total)"
        i = f"arrayFirstIndex(c -> c >= {rank}, counts)"
        # arr[0] is 0 in ClickHouse: the first bucket's lower bound and count below it.
        columns.append(
            f"if(total = 0, NULL, if({i} = length(bounds), bounds[{i} - 1], bounds[{i} - 1] + "
            f"(bounds[{i}] - bounds[{i} - 1]) * ({rank} - counts[{i} - 1]) / (counts[{i}] - counts[{i} - 1]))) "
            f"AS {alias}"
        )
    return (
        f"SELECT time, {', '.join(columns)}\n"
        "FROM (\n"
        "  SELECT time, arrayMap(x -> x.1, pairs) AS bounds, arrayMap(x -> x.2, pairs) AS counts,\n"
        "    counts[length(counts)] AS total\n"
        "  FROM (\n"
        "    SELECT time, arraySort(groupArray((bound, n))) AS pairs\n"
        "    FROM (\n"
        "      SELECT time, bound, sum(inc) AS n\n"
        "      FROM (\n"
        "        SELECT time, bound,\n"
        "          v - lagInFrame(v, 1, v) OVER (PARTITION BY series_id ORDER BY time"
        " ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS delta,\n"
        "          if(delta < 0, v, delta) AS inc\n"
        "        FROM (\n"
        "          SELECT t AS time, series_id,\n"
        "            any(if(attributes['le'] = '+Inf', inf, toFloat64(attributes['le']))) AS bound, max(vmax) AS v\n"
        f"          FROM {sql.source([f'{name}_bucket'], scope)}\n"
        "          GROUP BY series_id, time\n"
        "        )\n"
        "      )\n"
        "      GROUP BY time, bound\n"
        "    )\n"
        "    GROUP BY time\n"
        "  )\n"
        ")\nORDER BY time"
    )


def collector_panels() -> list:
    return [
        p.ts_panel(
            "Collector points accepted / rejected",
            sql.counter_series(
                [C + "points.accepted", C + "points.rejected"],
                f"if(metric = '{C}points.accepted', 'accepted', concat('rejected ', attributes['reason']))",
                scope=COLLECTOR,
                per_second=True,
            ),
            "short",
            "Points per second accepted into the WAL and rejected by reason, all collectors.",
            w=12,
        ),
        p.ts_panel(
            "Collector requests by code",
            sql.counter_series(
                [C + "requests"],
                "concat(attributes['transport'], ' ', attributes['code'])",
                scope=COLLECTOR,
                per_second=True,
            ),
            "reqps",
            "Export requests per second by transport and response code (429/503 mean clients retry).",
            w=12,
        ),
        p.ts_panel(
            "Write-ahead log",
            sql.gauge_series([C + "wal.size"], "node", "max", scope=COLLECTOR),
            "bytes",
            "Bytes waiting in each collector's WAL: growth means the store is slower than ingest. "
            "These rows pass through the WAL themselves, so while the store is down they arrive late.",
            steps=((None, "green"), (WAL_ALERT_BYTES, "red")),
            w=8,
        ),
        p.ts_panel(
            "Store insert latency",
            histogram_quantiles(C + "flush.duration", {"p50": 0.5, "p99": 0.99}),
            "s",
            "Time to insert one batch into ClickHouse (p50 / p99 over the bucket, all collectors).",
            steps=((None, "green"), (1, "orange"), (5, "red")),
            w=8,
        ),
        p.ts_panel(
            "Store insert errors and series overflow",
            sql.counter_series(
                [C + "insert.errors", C + "series.overflow"],
                f"if(metric = '{C}insert.errors', concat(node, ' insert errors'), "
                "concat('overflow ', attributes['tenant']))",
                scope=COLLECTOR,
            ),
            "short",
            "Failed inserts (retried) and points folded into overflow series, per bucket.",
            steps=((None, "green"), (1, "orange")),
            w=8,
        ),
        p.ts_panel(
            "Active series per tenant",
            sql.gauge_series(
                [C + "tenant.active.series"], "concat(node, ' ', attributes['tenant'])", "max", scope=COLLECTOR
            ),
            "short",
            "Series seen in the budget window, per collector and tenant.",
            w=12,
        ),
        p.ts_panel(
            "Collector rows stored",
            sql.counter_series([C + "rows.stored"], "node", scope=COLLECTOR, per_second=True),
            "short",
            "Rows per second each collector confirmed in the store.",
            w=12,
        ),
    ]


def agents_sql() -> str:
    return f"""SELECT node, max(ts) AS last_report, dateDiff('second', max(ts), $__toTime) AS age_s,
  maxIf(value, metric = 'fleetpulse.agent.cycle.duration') AS slowest_source_s,
  argMaxIf(value, ts, metric = 'fleetpulse.agent.points.buffered') AS buffered_points,
  argMaxIf(value, ts, metric = 'fleetpulse.agent.memory.rss') AS rss
FROM {sql.table("samples")}
WHERE metric IN ('fleetpulse.agent.cycle.duration', 'fleetpulse.agent.points.buffered',
    'fleetpulse.agent.memory.rss')
  AND {HOST.where()} AND ts > $__toTime - INTERVAL 1 HOUR AND ts <= $__toTime
GROUP BY node
ORDER BY age_s DESC, node"""


def build() -> dashboard.Dashboard:
    agent = [
        p.ts_panel(
            "Agent cycle time by source",
            sql.gauge_series(
                ["fleetpulse.agent.cycle.duration"],
                "concat(node, ' ', attributes['fleetpulse.source'])",
                "max",
                scope=HOST,
            ),
            "s",
            "Wall time of a sampling cycle per source; near the interval means samples will be late.",
            steps=((None, "green"), (1, "orange"), (5, "red")),
            w=8,
        ),
        p.ts_panel(
            "Agent buffer depth",
            sql.gauge_series(["fleetpulse.agent.points.buffered"], "node", "max", scope=HOST),
            "short",
            "Points waiting in the agent's on-disk buffer (collector unreachable or slow).",
            steps=((None, "green"), (1000, "orange"), (100000, "red")),
            w=8,
        ),
        p.ts_panel(
            "Agent buffer size",
            sql.gauge_series(["fleetpulse.agent.buffer.size"], "node", "max", scope=HOST),
            "bytes",
            "On-disk buffer size per agent.",
            w=8,
        ),
        p.ts_panel(
            "Agent points exported / dropped",
            sql.counter_series(
                ["fleetpulse.agent.points.exported", "fleetpulse.agent.points.dropped"],
                "concat(node, ' ', replaceOne(metric, 'fleetpulse.agent.points.', ''), ' ', "
                "if(metric = 'fleetpulse.agent.points.exported', attributes['fleetpulse.exporter'], "
                "attributes['error.type']))",
                scope=HOST,
                per_second=True,
            ),
            "short",
            "Points per second delivered to the collector, and dropped by reason.",
            w=12,
        ),
        p.ts_panel(
            "Agent source errors and NVML timeouts",
            sql.counter_series(
                ["fleetpulse.agent.source.errors", "fleetpulse.agent.nvml.timeouts"],
                "concat(node, ' ', if(metric = 'fleetpulse.agent.nvml.timeouts', "
                "concat('nvml timeout ', attributes['nvml.function']), "
                "concat(attributes['fleetpulse.source'], ' ', attributes['error.type'])))",
                scope=HOST,
            ),
            "short",
            "Problems the sources met and survived, per bucket.",
            steps=((None, "green"), (1, "orange")),
            w=12,
        ),
        p.ts_panel(
            "Agent memory (RSS)",
            sql.gauge_series(["fleetpulse.agent.memory.rss"], "node", "max", scope=HOST),
            "bytes",
            "Resident memory of each agent process.",
            steps=((None, "green"), (200 * 1024 * 1024, "orange"), (500 * 1024 * 1024, "red")),
            w=12,
        ),
        p.table_panel(
            "Agents",
            agents_sql(),
            "Last self-report of each agent in the hour before the range end.",
            w=12,
            overrides=(("age_s", "s", ((None, "green"), (60, "orange"), (300, "red"))),),
            links=(p.node_link(),),
        ),
    ]
    return board(
        UID,
        "FleetPulse / Pipeline",
        "The telemetry path itself: agents and collectors, both from their self-telemetry in ClickHouse.",
        [("Agents", agent), ("Collector", collector_panels())],
        variables=("cluster", "node"),
        gpu_annotations=False,
        time_from="now-6h",
    )
