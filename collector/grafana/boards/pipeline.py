"""Pipeline: agent cycle time and buffer depth (fleetpulse.agent.* in ClickHouse), collector accepted /
rejected, WAL and insert latency (the collector's own /metrics: Prometheus datasource panels)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from collector.grafana import panels as p
from collector.grafana import sql
from collector.grafana.boards.common import board

UID = "fleetpulse-pipeline"
HOST = sql.NODE_SCOPE
C = "fleetpulse_collector_"
RATE = "[$__rate_interval]"

# The collector's self-metrics are Prometheus-only (collector/telemetry.py): they never reach the store.
PROMETHEUS_PANELS: tuple[tuple[str, tuple[tuple[str, str], ...], str, str], ...] = (
    (
        "Collector points accepted / rejected",
        (
            (f"sum(rate({C}points_accepted_total{RATE}))", "accepted"),
            (f"sum by (reason) (rate({C}points_rejected_total{RATE}))", "rejected {{reason}}"),
        ),
        "short",
        "Points per second accepted into the WAL and rejected by reason.",
    ),
    (
        "Collector requests by code",
        ((f"sum by (transport, code) (rate({C}requests_total{RATE}))", "{{transport}} {{code}}"),),
        "reqps",
        "Export requests per second by transport and response code.",
    ),
    (
        "Write-ahead log",
        ((f"sum({C}wal_bytes)", "bytes"),),
        "bytes",
        "Bytes waiting in the WAL: growth means the store is slower than ingest (or down).",
    ),
    (
        "Store insert latency",
        (
            (f"histogram_quantile(0.5, sum by (le) (rate({C}flush_duration_seconds_bucket{RATE})))", "p50"),
            (f"histogram_quantile(0.99, sum by (le) (rate({C}flush_duration_seconds_bucket{RATE})))", "p99"),
        ),
        "s",
        "Time to insert one batch into ClickHouse.",
    ),
    (
        "Store insert errors and series overflow",
        (
            (f"sum(rate({C}insert_errors_total{RATE}))", "insert errors"),
            (f"sum by (tenant) (rate({C}series_overflow_total{RATE}))", "overflow {{tenant}}"),
        ),
        "short",
        "Failed inserts (retried) and points folded into overflow series per second.",
    ),
    (
        "Active series per tenant",
        ((f"sum by (tenant) ({C}tenant_active_series)", "{{tenant}}"),),
        "short",
        "Series seen in the budget window, per tenant.",
    ),
)


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
    collector = [p.prometheus_panel(title, exprs, unit, text) for title, exprs, unit, text in PROMETHEUS_PANELS]
    return board(
        UID,
        "FleetPulse / Pipeline",
        "The telemetry path itself: agents (from ClickHouse) and the collector (from Prometheus).",
        [("Agents", agent), ("Collector (Prometheus datasource)", collector)],
        variables=("cluster", "node"),
        prometheus=True,
        gpu_annotations=False,
        time_from="now-6h",
    )
