"""GPU health and history: throttle reasons over time, clocks against max, ECC and remap counters with
the event timeline, Xid table with recommended action, inventory with node moves."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from collector.grafana import panels as p
from collector.grafana import sql
from collector.grafana.boards.common import HARMFUL_REASONS, board

UID = "fleetpulse-gpu"
LABEL = sql.gpu_label()


def ecc_increase_sql() -> str:
    inc = sql.counter_increase_by_series(["hw.gpu.ecc.errors"], extra="attributes['hw.gpu.ecc.scope'] = 'aggregate'")
    return f"""SELECT node, gpu, any(attributes['gpu.index']) AS gpu_index,
  sumIf(increase, attributes['hw.gpu.ecc.type'] = 'corrected') AS corrected,
  sumIf(increase, attributes['hw.gpu.ecc.type'] = 'uncorrected') AS uncorrected
FROM ({inc})
GROUP BY node, gpu
HAVING corrected + uncorrected > 0
ORDER BY uncorrected DESC, corrected DESC, node, gpu"""


def throttle_table_sql() -> str:
    inc = sql.counter_increase_by_series(
        ["hw.gpu.throttle.time"],
        extra=f"attributes['hw.gpu.throttle.reason'] IN ({sql.in_list(HARMFUL_REASONS)})",
    )
    return f"""SELECT node, gpu, attributes['gpu.index'] AS gpu_index,
  attributes['hw.gpu.throttle.reason'] AS reason, increase AS throttled_s
FROM ({inc})
WHERE increase > 0
ORDER BY throttled_s DESC, node, gpu_index"""


def xid_sql() -> str:
    return f"""SELECT node, gpu, attributes['gpu.index'] AS gpu_index, code, count() AS events,
  min(ts) AS first_seen, max(ts) AS last_seen, any(attributes['xid.severity']) AS severity,
  any(attributes['xid.action']) AS recommended_action
FROM {sql.table("events")} FINAL
WHERE event = 'gpu.xid' AND {sql.GPU_SCOPE.where()} AND $__timeFilter(ts)
GROUP BY node, gpu, gpu_index, code
ORDER BY last_seen DESC"""


def timeline_sql(limit: int = 500) -> str:
    return f"""SELECT ts AS time, node, attributes['gpu.index'] AS gpu_index, event, severity_text AS severity,
  code, body
FROM {sql.table("events")} FINAL
WHERE {sql.GPU_SCOPE.where()} AND gpu != '' AND $__timeFilter(ts)
ORDER BY time DESC
LIMIT {limit}"""


def inventory_sql() -> str:
    """Every (GPU, node) pairing seen in the range: a GPU listed under two nodes moved (RMA swap)."""
    return f"""SELECT s.gpu AS gpu, s.node AS node, s.cluster_name AS cluster, i.serial AS serial, i.model AS model,
  s.first_seen AS first_seen, s.last_seen AS last_seen, count() OVER (PARTITION BY s.gpu) AS nodes_seen
FROM (
  SELECT gpu, node, any(cluster) AS cluster_name, min(first_seen) AS first_seen, max(last_seen) AS last_seen
  FROM {sql.table("inventory_seen")}
  WHERE {sql.GPU_SCOPE.where()}
  GROUP BY gpu, node
  HAVING last_seen >= $__fromTime AND first_seen <= $__toTime
) AS s
LEFT JOIN (
  SELECT gpu, any(serial) AS serial, any(model) AS model
  FROM {sql.table("inventory")} FINAL
  WHERE tenant = '${{tenant}}'
  GROUP BY gpu
) AS i ON i.gpu = s.gpu
ORDER BY nodes_seen DESC, gpu, first_seen"""


def build() -> dashboard.Dashboard:
    sensors = f"concat({LABEL}, ' ', attributes['hw.sensor'])"
    now = [
        p.ts_panel(
            "Temperature",
            sql.gauge_series(["hw.gpu.temperature"], sensors, "max"),
            "celsius",
            "Die and memory temperature per GPU (bucket max).",
            steps=((None, "green"), (83, "orange"), (88, "red")),
            w=8,
        ),
        p.ts_panel(
            "Power draw",
            sql.gauge_series(["hw.gpu.power.usage"], LABEL),
            "watt",
            "Average power per GPU; the enforced limit is 700 W on H100 SXM.",
            steps=((None, "green"), (650, "orange"), (700, "red")),
            w=8,
        ),
        p.ts_panel(
            "Utilization",
            sql.gauge_series(["hw.gpu.utilization"], LABEL, extra="attributes['hw.gpu.task'] = 'general'"),
            "percentunit",
            "Fraction of time the GPU was busy.",
            w=8,
            min_val=0,
        ),
    ]
    throttling = [
        p.ts_panel(
            "Throttle reasons active",
            sql.gauge_series(
                ["hw.gpu.throttle.active"],
                f"concat({LABEL}, ' ', attributes['hw.gpu.throttle.reason'])",
                "max",
                nonzero=True,
            ),
            "bool_on_off",
            "1 while a clock-event reason is set (bucket max), per GPU and reason; reasons never set in the range are left out.",
            steps=((None, "green"), (1, "red")),
        ),
        p.ts_panel(
            "SM clock against max",
            sql.gauge_series(
                ["hw.gpu.clock.frequency", "hw.gpu.clock.max"],
                f"concat({LABEL}, if(metric = 'hw.gpu.clock.max', ' max', ' current'))",
                extra="attributes['hw.gpu.clock'] = 'sm'",
            ),
            "hertz",
            "Current SM clock and its maximum: a gap without idle means the GPU is held back.",
        ),
        p.table_panel(
            "Throttled GPUs",
            throttle_table_sql(),
            "GPUs that spent time in a harmful throttle reason in the range, and how long.",
            w=24,
            overrides=(("throttled_s", "s", ((None, "green"), (60, "orange"), (600, "red"))),),
            links=(p.gpu_link(),),
        ),
    ]
    memory = [
        p.ts_panel(
            "ECC error counters",
            sql.gauge_series(
                ["hw.gpu.ecc.errors"],
                f"concat({LABEL}, ' ', attributes['hw.gpu.ecc.type'], ' ', attributes['hw.gpu.ecc.scope'])",
                "max",
                nonzero=True,
            ),
            "short",
            "Cumulative ECC counts by type and scope (volatile resets with the driver); all-zero counters left out.",
            steps=((None, "green"), (1, "orange")),
            w=8,
        ),
        p.ts_panel(
            "Row remapping",
            sql.gauge_series(
                ["hw.gpu.row_remap.rows", "hw.gpu.row_remap.pending", "hw.gpu.row_remap.failure"],
                f"concat({LABEL}, ' ', replaceOne(metric, 'hw.gpu.row_remap.', ''), "
                "if(attributes['hw.gpu.ecc.type'] = '', '', concat(' ', attributes['hw.gpu.ecc.type'])))",
                "max",
                nonzero=True,
            ),
            "short",
            "Remapped rows, and pending/failure flags (all-zero series left out): pending needs a GPU reset, failure needs service.",
            steps=((None, "green"), (1, "red")),
            w=8,
        ),
        p.table_panel(
            "ECC errors in range",
            ecc_increase_sql(),
            "GPUs whose aggregate ECC counters increased in the range.",
            w=8,
            overrides=(("uncorrected", "none", ((None, "green"), (1, "red"))),),
            links=(p.gpu_link(),),
        ),
        p.table_panel(
            "Xid errors",
            xid_sql(),
            "Xid codes per GPU with NVIDIA's recommended action (from the agent's Xid catalog).",
            w=24,
            overrides=(("events", "none", ((None, "green"), (1, "red"))),),
        ),
        p.table_panel("Event timeline", timeline_sql(), "Every GPU event in the range, newest first.", w=24, h=10),
    ]
    inventory = [
        p.table_panel(
            "Inventory and node moves",
            inventory_sql(),
            "Where each GPU (by UUID) was seen; a GPU with nodes_seen > 1 moved between nodes.",
            w=24,
            h=10,
            overrides=(("nodes_seen", "none", ((None, "green"), (2, "orange"))),),
        ),
    ]
    return board(
        UID,
        "FleetPulse / GPU health and history",
        "One GPU (or a few): throttling, clocks, ECC and remapping, Xids and where the GPU has been.",
        [
            ("Now", now),
            ("Throttling and clocks", throttling),
            ("Memory errors and Xids", memory),
            ("Inventory", inventory),
        ],
        time_from="now-24h",
    )
