"""Fabric: InfiniBand error rates and link downs, NVLink error rates and bandwidth, PCIe replays."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from collector.grafana import panels as p
from collector.grafana import sql
from collector.grafana.boards.common import board

UID = "fleetpulse-fabric"
PORT = "concat(node, ' ', attributes['ib.device'], '/', attributes['ib.port'])"
LINK = f"concat({sql.gpu_label()}, ' link', attributes['hw.nvlink.link'])"


def ib_error_table_sql() -> str:
    inc = sql.counter_increase_by_series(["hw.network.ib.errors"], scope=sql.NODE_SCOPE)
    return f"""SELECT node, attributes['ib.device'] AS device, attributes['ib.port'] AS port,
  attributes['ib.counter'] AS counter, increase AS errors
FROM ({inc})
WHERE increase > 0
ORDER BY errors DESC, node, device, port"""


def ports_not_active_sql() -> str:
    return f"""SELECT node, attributes['ib.device'] AS device, attributes['ib.port'] AS port,
  argMax(value, ts) AS state, max(ts) AS seen
FROM {sql.table("samples")}
WHERE metric = 'hw.network.ib.port.state' AND {sql.NODE_SCOPE.where()}
  AND ts > $__toTime - INTERVAL 15 MINUTE AND ts <= $__toTime
GROUP BY node, device, port
HAVING state != 4
ORDER BY node, device, port"""


def nvlink_error_table_sql() -> str:
    inc = sql.counter_increase_by_series(["hw.gpu.nvlink.errors"])
    return f"""SELECT node, gpu, attributes['gpu.index'] AS gpu_index, attributes['hw.nvlink.link'] AS link,
  attributes['hw.error.type'] AS error_type, increase AS errors
FROM ({inc})
WHERE increase > 0
ORDER BY errors DESC, node, gpu_index, link"""


def build() -> dashboard.Dashboard:
    ib = [
        p.ts_panel(
            "InfiniBand error rate",
            sql.counter_series(
                ["hw.network.ib.errors"],
                f"concat({PORT}, ' ', attributes['ib.counter'])",
                scope=sql.NODE_SCOPE,
                extra="attributes['ib.counter'] != 'port_xmit_wait'",
                per_second=True,
                changing_only=True,
            ),
            "short",
            "Errors per second per port and counter (port_xmit_wait, a congestion counter, left out).",
            steps=((None, "green"), (0.01, "orange"), (1, "red")),
        ),
        p.ts_panel(
            "InfiniBand link downs",
            sql.counter_series(
                ["hw.network.ib.errors"], PORT, scope=sql.NODE_SCOPE, extra="attributes['ib.counter'] = 'link_downed'"
            ),
            "short",
            "link_downed increments per bucket: each one is a link that dropped and retrained.",
            steps=((None, "green"), (1, "red")),
            bars=True,
        ),
        p.table_panel(
            "InfiniBand ports with errors",
            ib_error_table_sql(),
            "Port error counters that increased in the range.",
            links=(p.node_link(),),
        ),
        p.table_panel(
            "InfiniBand ports not active",
            ports_not_active_sql(),
            "Ports whose last state in the 15 minutes before the range end is not ACTIVE (4).",
            overrides=(("state", "none", ((None, "red"), (4, "green"))),),
        ),
        p.ts_panel(
            "InfiniBand throughput",
            sql.counter_series(
                ["hw.network.ib.io"],
                f"concat({PORT}, ' ', attributes['network.io.direction'])",
                scope=sql.NODE_SCOPE,
                per_second=True,
            ),
            "Bps",
            "Bytes per second per port and direction.",
            w=24,
        ),
    ]
    nvlink = [
        p.ts_panel(
            "NVLink error rate",
            sql.counter_series(
                ["hw.gpu.nvlink.errors"],
                f"concat({LINK}, ' ', attributes['hw.error.type'])",
                per_second=True,
                changing_only=True,
            ),
            "short",
            "CRC flit/data, replay and recovery errors per second per link.",
            steps=((None, "green"), (0.01, "orange"), (1, "red")),
        ),
        p.table_panel(
            "NVLinks with errors",
            nvlink_error_table_sql(),
            "NVLink error counters that increased in the range.",
            links=(p.gpu_link(),),
        ),
        p.ts_panel(
            "NVLink bandwidth",
            sql.counter_series(
                ["hw.gpu.nvlink.io"],
                f"concat({sql.gpu_label()}, ' ', attributes['network.io.direction'])",
                per_second=True,
            ),
            "Bps",
            "Bytes per second over all links of each GPU, per direction (hw.gpu.nvlink.io: the agent's "
            "per-GPU total, the sum of the links, every fast cycle).",
        ),
        p.ts_panel(
            "NVLink bandwidth per link",
            sql.counter_series(
                ["hw.gpu.nvlink.link.io"],
                f"concat({LINK}, ' ', attributes['network.io.direction'])",
                per_second=True,
            ),
            "Bps",
            "Bytes per second per link and direction (hw.gpu.nvlink.link.io, sent every slow cycle, 60 s by "
            "default): the links of a GPU carry about the same traffic, so one far below its siblings is "
            "degraded or down. 36 series per H100: select a node or GPU.",
        ),
        p.ts_panel(
            "PCIe replays",
            sql.counter_series(["hw.gpu.pcie.replays"], "node"),
            "short",
            "PCIe link replays per bucket, summed per node (the GPU dashboard has them per GPU): a rising "
            "count means a marginal link or riser.",
            steps=((None, "green"), (1, "orange"), (100, "red")),
            bars=True,
            w=24,
        ),
    ]
    return board(
        UID,
        "FleetPulse / Fabric",
        "InfiniBand ports, NVLinks and PCIe links: errors, link downs and bandwidth.",
        [("InfiniBand", ib), ("NVLink and PCIe", nvlink)],
        time_from="now-24h",
    )
