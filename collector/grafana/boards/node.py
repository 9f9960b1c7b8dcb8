"""Node drill-down: every GPU on a node plus host CPU, memory, PSI, disk, network, IB ports, EDAC, AER."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from collector.grafana import panels as p
from collector.grafana import sql
from collector.grafana.boards.common import board

UID = "fleetpulse-node"
GPU = sql.gpu_label()
HOST = sql.NODE_SCOPE


def _attr(key: str) -> str:
    return f"attributes['{key}']"


def build() -> dashboard.Dashboard:
    gpus = [
        p.ts_panel(
            "GPU utilization",
            sql.gauge_series(["hw.gpu.utilization"], GPU, extra="attributes['hw.gpu.task'] = 'general'"),
            "percentunit",
            "Every GPU of the selected node(s).",
            w=8,
            min_val=0,
        ),
        p.ts_panel(
            "GPU temperature",
            sql.gauge_series(["hw.gpu.temperature"], GPU, "max", extra="attributes['hw.sensor'] = 'gpu'"),
            "celsius",
            "Die temperature per GPU (bucket max).",
            steps=((None, "green"), (83, "orange"), (88, "red")),
            w=8,
        ),
        p.ts_panel(
            "GPU power",
            sql.gauge_series(["hw.gpu.power.usage"], GPU),
            "watt",
            "Power draw per GPU.",
            steps=((None, "green"), (650, "orange"), (700, "red")),
            w=8,
        ),
    ]
    host = [
        p.ts_panel(
            "CPU utilization by mode",
            sql.gauge_series(["system.cpu.utilization"], f"concat(node, ' ', {_attr('cpu.mode')})", scope=HOST),
            "percentunit",
            "Average over CPUs, per mode.",
            w=8,
            min_val=0,
        ),
        p.ts_panel(
            "Memory",
            sql.gauge_series(
                ["system.memory.usage", "system.linux.memory.available"],
                f"concat(node, ' ', if(metric = 'system.memory.usage', {_attr('system.memory.state')}, 'available'))",
                scope=HOST,
            ),
            "bytes",
            "Memory by state and MemAvailable.",
            w=8,
        ),
        p.ts_panel(
            "Load average (1 m)",
            sql.gauge_series(["system.cpu.load_average.1m"], "node", scope=HOST),
            "short",
            "Runnable and uninterruptible threads.",
            w=8,
        ),
        p.ts_panel(
            "Pressure stall (PSI avg10)",
            sql.gauge_series(
                ["system.pressure.avg10"],
                f"concat(node, ' ', {_attr('system.pressure.resource')}, ' ', {_attr('system.pressure.scope')})",
                "max",
                scope=HOST,
            ),
            "percentunit",
            "Share of the last 10 s tasks stalled on CPU, memory or I/O.",
            steps=((None, "green"), (0.1, "orange"), (0.4, "red")),
            w=8,
        ),
        p.ts_panel(
            "Disk I/O",
            sql.counter_series(
                ["system.disk.io"],
                f"concat(node, ' ', {_attr('system.device')}, ' ', {_attr('disk.io.direction')})",
                scope=HOST,
                per_second=True,
            ),
            "Bps",
            "Bytes per second read and written, per device.",
            w=8,
        ),
        p.ts_panel(
            "Network I/O",
            sql.counter_series(
                ["system.network.io"],
                f"concat(node, ' ', {_attr('network.interface.name')}, ' ', {_attr('network.io.direction')})",
                scope=HOST,
                per_second=True,
            ),
            "Bps",
            "Bytes per second per interface and direction.",
            w=8,
        ),
        p.ts_panel(
            "Network errors and drops",
            sql.counter_series(
                ["system.network.errors", "system.network.packet.dropped", "system.network.tcp.retransmits"],
                f"concat(node, ' ', replaceOne(metric, 'system.network.', ''), ' ', {_attr('network.interface.name')})",
                scope=HOST,
            ),
            "short",
            "Errors, drops and TCP retransmits per bucket.",
            steps=((None, "green"), (1, "orange")),
            w=12,
        ),
    ]
    fabric_errors = [
        p.ts_panel(
            "InfiniBand port data",
            sql.counter_series(
                ["hw.network.ib.io"],
                f"concat(node, ' ', {_attr('ib.device')}, '/', {_attr('ib.port')}, ' ', "
                f"{_attr('network.io.direction')})",
                scope=HOST,
                per_second=True,
            ),
            "Bps",
            "Bytes per second per IB port (kernel counts 4-byte words; converted by the agent).",
            w=12,
        ),
        p.ts_panel(
            "InfiniBand port state",
            sql.gauge_series(
                ["hw.network.ib.port.state"],
                f"concat(node, ' ', {_attr('ib.device')}, '/', {_attr('ib.port')})",
                "min",
                scope=HOST,
            ),
            "short",
            "Logical port state: 4 active; 1 down, 2 init, 3 armed.",
            steps=((None, "red"), (4, "green")),
            w=12,
        ),
        p.ts_panel(
            "Host memory ECC (EDAC)",
            sql.counter_series(
                ["hw.memory.edac.errors"],
                f"concat(node, ' mc', {_attr('edac.mc')}, ' ', {_attr('edac.csrow')}, ' ', {_attr('hw.error.type')})",
                scope=HOST,
            ),
            "short",
            "Corrected and uncorrected host memory errors per bucket.",
            steps=((None, "green"), (1, "red")),
            w=12,
        ),
        p.ts_panel(
            "PCIe AER errors",
            sql.counter_series(
                ["hw.pcie.aer.errors"],
                f"concat(node, ' ', {_attr('hw.pci.bus_id')}, ' ', {_attr('hw.pcie.aer.severity')}, ' ', "
                f"{_attr('hw.pcie.aer.type')})",
                scope=HOST,
            ),
            "short",
            "PCIe Advanced Error Reporting counts per device, severity and type, per bucket.",
            steps=((None, "green"), (1, "red")),
            w=12,
        ),
    ]
    return board(
        UID,
        "FleetPulse / Node drill-down",
        "One node: its GPUs, host resources, fabric ports and host error counters.",
        [("GPUs", gpus), ("Host", host), ("Fabric and errors", fabric_errors)],
        time_from="now-6h",
    )
