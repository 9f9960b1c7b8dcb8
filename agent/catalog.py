"""The metric catalog: the single source of truth for every metric fleetpulse emits.

Each entry names the metric (OpenTelemetry semantic-convention style), its instrument, UCUM unit,
description, the point attributes it may carry (an allow-list: anything else is dropped and
counted), the source that produces it, its sampling tier, and the DCGM field(s) it corresponds to,
so users coming from dcgm-exporter can find their metric.

``docs/METRICS.md`` is generated from this file (``fleetpulse catalog --format markdown``); a test
fails when it is stale.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Literal

Instrument = Literal["gauge", "counter", "updowncounter"]
Tier = Literal["fast", "slow", "event"]

GPU = ("hw.id", "gpu.index", "hw.model")

# Throttle (clock-event) reason bits of nvmlDeviceGetCurrentClocksEventReasons (DESIGN §5).
THROTTLE_REASONS: dict[str, int] = {
    "gpu_idle": 0x1,
    "applications_clocks_setting": 0x2,
    "sw_power_cap": 0x4,
    "hw_slowdown": 0x8,
    "sync_boost": 0x10,
    "sw_thermal_slowdown": 0x20,
    "hw_thermal_slowdown": 0x40,
    "hw_power_brake_slowdown": 0x80,
    "display_clock_setting": 0x100,
}
# Reasons that mean the hardware is being held back (what SLOs and alerts count).
HARMFUL_THROTTLE_REASONS = (
    "hw_slowdown",
    "sw_thermal_slowdown",
    "hw_thermal_slowdown",
    "hw_power_brake_slowdown",
)

# InfiniBand port error counters (DESIGN §6), reported under hw.network.ib.errors{ib.counter}.
IB_ERROR_COUNTERS = (
    "symbol_error",
    "link_downed",
    "link_error_recovery",
    "local_link_integrity_errors",
    "excessive_buffer_overrun_errors",
    "port_rcv_errors",
    "port_rcv_remote_physical_errors",
    "port_rcv_switch_relay_errors",
    "port_xmit_discards",
    "port_xmit_wait",
    "VL15_dropped",
)

# UCUM unit → Prometheus suffix (OTel → Prometheus translation rules).
_PROM_UNIT_SUFFIX = {
    "By": "bytes",
    "Cel": "celsius",
    "W": "watts",
    "J": "joules",
    "s": "seconds",
    "Hz": "hertz",
    "bit/s": "bits_per_second",
    "By/s": "bytes_per_second",
}


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    instrument: Instrument
    unit: str
    description: str
    attributes: tuple[str, ...]
    source: str
    tier: Tier = "fast"
    dcgm: tuple[str, ...] = ()
    # Default per-metric series budget in the agent; past it, points fold into an overflow series.
    series_budget: int = 256

    @property
    def prometheus_name(self) -> str:
        base = self.name.replace(".", "_").replace("-", "_")
        suffix = _PROM_UNIT_SUFFIX.get(self.unit)
        if suffix is None and self.unit == "1" and self.instrument == "gauge":
            suffix = "ratio"
        if suffix and not base.endswith("_" + suffix):
            base = f"{base}_{suffix}"
        if self.instrument == "counter":
            base += "_total"
        return base

    @property
    def is_counter(self) -> bool:
        return self.instrument == "counter"


def _m(
    name: str,
    instrument: Instrument,
    unit: str,
    description: str,
    attributes: tuple[str, ...],
    source: str,
    tier: Tier = "fast",
    dcgm: tuple[str, ...] = (),
    series_budget: int = 256,
) -> MetricSpec:
    return MetricSpec(name, instrument, unit, description, attributes, source, tier, dcgm, series_budget)


_SPECS: list[MetricSpec] = [
    # ---------------------------------------------------------------- GPU (NVML)
    _m(
        "hw.gpu.utilization",
        "gauge",
        "1",
        "Fraction of time the engine was busy over the last sample period.",
        (*GPU, "hw.gpu.task"),
        "nvml",
        dcgm=(
            "DCGM_FI_DEV_GPU_UTIL (task=general)",
            "DCGM_FI_DEV_MEM_COPY_UTIL (task=memory)",
            "DCGM_FI_DEV_ENC_UTIL (task=encoder)",
            "DCGM_FI_DEV_DEC_UTIL (task=decoder)",
        ),
    ),
    _m(
        "hw.gpu.memory.usage",
        "gauge",
        "By",
        "Frame-buffer memory in use.",
        GPU,
        "nvml",
        dcgm=("DCGM_FI_DEV_FB_USED",),
    ),
    _m(
        "hw.gpu.memory.free",
        "gauge",
        "By",
        "Frame-buffer memory free.",
        GPU,
        "nvml",
        dcgm=("DCGM_FI_DEV_FB_FREE",),
    ),
    _m(
        "hw.gpu.memory.limit",
        "gauge",
        "By",
        "Total frame-buffer memory.",
        GPU,
        "nvml",
        "slow",
        dcgm=("DCGM_FI_DEV_FB_TOTAL",),
    ),
    _m(
        "hw.gpu.power.usage",
        "gauge",
        "W",
        "Power draw (1 s average on Ampere and newer).",
        GPU,
        "nvml",
        dcgm=("DCGM_FI_DEV_POWER_USAGE",),
    ),
    _m(
        "hw.gpu.power.limit",
        "gauge",
        "W",
        "Enforced power limit.",
        GPU,
        "nvml",
        "slow",
        dcgm=("DCGM_FI_DEV_ENFORCED_POWER_LIMIT",),
    ),
    _m(
        "hw.gpu.energy",
        "counter",
        "J",
        "Energy consumed since the driver was loaded.",
        GPU,
        "nvml",
        dcgm=("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",),
    ),
    _m(
        "hw.gpu.temperature",
        "gauge",
        "Cel",
        "Temperature of the GPU die or its memory.",
        (*GPU, "hw.sensor"),
        "nvml",
        dcgm=("DCGM_FI_DEV_GPU_TEMP (hw.sensor=gpu)", "DCGM_FI_DEV_MEMORY_TEMP (hw.sensor=memory)"),
    ),
    _m(
        "hw.gpu.clock.frequency",
        "gauge",
        "Hz",
        "Current clock frequency.",
        (*GPU, "hw.gpu.clock"),
        "nvml",
        dcgm=("DCGM_FI_DEV_SM_CLOCK (clock=sm)", "DCGM_FI_DEV_MEM_CLOCK (clock=memory)"),
    ),
    _m(
        "hw.gpu.clock.max",
        "gauge",
        "Hz",
        "Maximum clock frequency.",
        (*GPU, "hw.gpu.clock"),
        "nvml",
        "slow",
        dcgm=("DCGM_FI_DEV_MAX_SM_CLOCK (clock=sm)", "DCGM_FI_DEV_MAX_MEM_CLOCK (clock=memory)"),
    ),
    _m(
        "hw.gpu.performance_state",
        "gauge",
        "{state}",
        "Performance state P0 (max) .. P15 (min), as its number.",
        GPU,
        "nvml",
        dcgm=("DCGM_FI_DEV_PSTATE",),
    ),
    _m(
        "hw.gpu.fan.speed",
        "gauge",
        "1",
        "Fan speed as a fraction of its maximum.",
        (*GPU, "hw.fan"),
        "nvml",
        dcgm=("DCGM_FI_DEV_FAN_SPEED",),
    ),
    _m(
        "hw.gpu.throttle.active",
        "gauge",
        "{state}",
        "1 while this clock-event (throttle) reason is set in the sampled bitmask, else 0.",
        (*GPU, "hw.gpu.throttle.reason"),
        "nvml",
        dcgm=("DCGM_FI_DEV_CLOCKS_EVENT_REASONS",),
    ),
    _m(
        "hw.gpu.throttle.time",
        "counter",
        "s",
        "Cumulative time the clocks were held back for this reason (NVML field values).",
        (*GPU, "hw.gpu.throttle.reason"),
        "nvml",
        dcgm=(
            "DCGM_FI_DEV_POWER_VIOLATION (sw_power_cap)",
            "DCGM_FI_DEV_THERMAL_VIOLATION (thermal)",
            "DCGM_FI_DEV_SYNC_BOOST_VIOLATION (sync_boost)",
        ),
    ),
    _m(
        "hw.gpu.ecc.errors",
        "counter",
        "{error}",
        "ECC errors by type and counter scope.",
        (*GPU, "hw.gpu.ecc.type", "hw.gpu.ecc.scope"),
        "nvml",
        "slow",
        dcgm=(
            "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
            "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
            "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL",
            "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
        ),
    ),
    _m(
        "hw.gpu.retired_pages",
        "gauge",
        "{page}",
        "Memory pages retired (pre-Ampere), by cause.",
        (*GPU, "hw.gpu.retirement.cause"),
        "nvml",
        "slow",
        dcgm=("DCGM_FI_DEV_RETIRED_SBE", "DCGM_FI_DEV_RETIRED_DBE"),
    ),
    _m(
        "hw.gpu.retired_pages.pending",
        "gauge",
        "{state}",
        "1 when a page retirement waits for a reset.",
        GPU,
        "nvml",
        "slow",
        dcgm=("DCGM_FI_DEV_RETIRED_PENDING",),
    ),
    _m(
        "hw.gpu.row_remap.rows",
        "gauge",
        "{row}",
        "Rows remapped (Ampere and newer), by error type.",
        (*GPU, "hw.gpu.ecc.type"),
        "nvml",
        "slow",
        dcgm=("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"),
    ),
    _m(
        "hw.gpu.row_remap.pending",
        "gauge",
        "{state}",
        "1 when a row remap waits for a GPU reset.",
        GPU,
        "nvml",
        "slow",
        dcgm=("DCGM_FI_DEV_ROW_REMAP_PENDING",),
    ),
    _m(
        "hw.gpu.row_remap.failure",
        "gauge",
        "{state}",
        "1 when a row remap failed: the GPU needs service.",
        GPU,
        "nvml",
        "slow",
        dcgm=("DCGM_FI_DEV_ROW_REMAP_FAILURE",),
    ),
    _m(
        "hw.gpu.pcie.replays",
        "counter",
        "{replay}",
        "PCIe link replays.",
        GPU,
        "nvml",
        dcgm=("DCGM_FI_DEV_PCIE_REPLAY_COUNTER",),
    ),
    _m(
        "hw.gpu.pcie.link.generation",
        "gauge",
        "{generation}",
        "PCIe link generation.",
        (*GPU, "hw.pcie.link.state"),
        "nvml",
        "slow",
        dcgm=("DCGM_FI_DEV_PCIE_LINK_GEN", "DCGM_FI_DEV_PCIE_MAX_LINK_GEN"),
    ),
    _m(
        "hw.gpu.pcie.link.width",
        "gauge",
        "{lane}",
        "PCIe link width.",
        (*GPU, "hw.pcie.link.state"),
        "nvml",
        "slow",
        dcgm=("DCGM_FI_DEV_PCIE_LINK_WIDTH", "DCGM_FI_DEV_PCIE_MAX_LINK_WIDTH"),
    ),
    _m(
        "hw.gpu.pcie.io",
        "counter",
        "By",
        "Bytes over PCIe.",
        (*GPU, "network.io.direction"),
        "nvml",
        dcgm=("DCGM_FI_PROF_PCIE_TX_BYTES", "DCGM_FI_PROF_PCIE_RX_BYTES"),
    ),
    _m(
        "hw.gpu.nvlink.state",
        "gauge",
        "{state}",
        "1 when the NVLink is up.",
        (*GPU, "hw.nvlink.link"),
        "nvml",
        "slow",
        series_budget=1024,
    ),
    # Per-GPU total at the fast tier, per link at the slow tier (as dcgm-exporter's default set:
    # per-link bandwidth is opt-in there); the agent's nvml.nvlink_link_io option moves the
    # per-link counter to the fast tier or turns it off.
    _m(
        "hw.gpu.nvlink.io",
        "counter",
        "By",
        "Bytes over all NVLinks of the GPU.",
        (*GPU, "network.io.direction"),
        "nvml",
        dcgm=("DCGM_FI_PROF_NVLINK_TX_BYTES", "DCGM_FI_PROF_NVLINK_RX_BYTES"),
    ),
    _m(
        "hw.gpu.nvlink.link.io",
        "counter",
        "By",
        "Bytes over one NVLink.",
        (*GPU, "hw.nvlink.link", "network.io.direction"),
        "nvml",
        "slow",
        dcgm=("DCGM_FI_PROF_NVLINK_L0_TX_BYTES .. L17_TX_BYTES", "DCGM_FI_PROF_NVLINK_L0_RX_BYTES .. L17_RX_BYTES"),
        series_budget=1024,
    ),
    _m(
        "hw.gpu.nvlink.errors",
        "counter",
        "{error}",
        "NVLink error counters per link.",
        (*GPU, "hw.nvlink.link", "hw.error.type"),
        "nvml",
        "slow",
        dcgm=(
            "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL",
            "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL",
            "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
            "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL",
        ),
        series_budget=2048,
    ),
    _m(
        "hw.gpu.sm.activity",
        "gauge",
        "1",
        "Fraction of time at least one warp was active on an SM (GPM; resolution 1e-4).",
        GPU,
        "nvml",
        dcgm=("DCGM_FI_PROF_SM_ACTIVE",),
    ),
    _m(
        "hw.gpu.sm.occupancy",
        "gauge",
        "1",
        "Resident warps as a fraction of the maximum (GPM; resolution 1e-4).",
        GPU,
        "nvml",
        dcgm=("DCGM_FI_PROF_SM_OCCUPANCY",),
    ),
    _m(
        "hw.gpu.tensor.activity",
        "gauge",
        "1",
        "Fraction of cycles the tensor pipes were active (GPM; resolution 1e-4).",
        GPU,
        "nvml",
        dcgm=("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",),
    ),
    _m(
        "hw.gpu.dram.activity",
        "gauge",
        "1",
        "Fraction of cycles the memory interface was busy (GPM; resolution 1e-4).",
        GPU,
        "nvml",
        dcgm=("DCGM_FI_PROF_DRAM_ACTIVE",),
    ),
    _m(
        "hw.gpu.xid.errors",
        "counter",
        "{event}",
        "Xid errors seen, counted per code (repeats are visible); xid.source says which reader saw them.",
        (*GPU, "hw.gpu.xid", "hw.pci.bus_id", "xid.source"),
        "nvml",
        "event",
        dcgm=("DCGM_FI_DEV_XID_ERRORS",),
    ),
    _m(
        "hw.gpu.recovery_action",
        "gauge",
        "{action}",
        "NVML recovery action the driver asks for: 0 none, 1 GPU reset, 2 node reboot, 3 drain P2P, 4 drain and reset.",
        GPU,
        "nvml",
        "slow",
        dcgm=("DCGM_FI_DEV_GET_GPU_RECOVERY_ACTION",),
    ),
    _m(
        "hw.gpu.mig.mode",
        "gauge",
        "{state}",
        "1 when MIG mode is enabled.",
        GPU,
        "nvml",
        "slow",
        dcgm=("DCGM_FI_DEV_MIG_MODE",),
    ),
    _m(
        "hw.gpu.mig.memory.usage",
        "gauge",
        "By",
        "Memory used by a MIG GPU instance.",
        (*GPU, "hw.gpu.mig.instance"),
        "nvml",
        dcgm=("DCGM_FI_DEV_FB_USED (per MIG instance)",),
    ),
    _m(
        "hw.gpu.lost",
        "gauge",
        "{state}",
        "1 when the GPU no longer answers (fallen off the bus, Xid 79).",
        GPU,
        "nvml",
    ),
    _m(
        "hw.gpu.info",
        "gauge",
        "{info}",
        "Static identity; value is always 1.",
        (*GPU, "hw.serial_number", "hw.gpu.driver_version", "hw.gpu.vbios_version", "hw.pci.bus_id"),
        "nvml",
        "slow",
        dcgm=(
            "DCGM_FI_DRIVER_VERSION",
            "DCGM_FI_DEV_VBIOS_VERSION",
            "DCGM_FI_DEV_SERIAL",
            "DCGM_FI_DEV_PCI_BUSID",
        ),
    ),
    # ---------------------------------------------------------------- host
    _m("system.cpu.time", "counter", "s", "CPU time by mode.", ("cpu.mode", "cpu.logical_number"), "host"),
    _m(
        "system.cpu.utilization",
        "gauge",
        "1",
        "CPU utilization by mode since the last cycle (fraction, rounded to 1e-4).",
        ("cpu.mode", "cpu.logical_number"),
        "host",
    ),
    _m("system.cpu.load_average.1m", "gauge", "{thread}", "Load average over 1 minute.", (), "host"),
    _m("system.cpu.load_average.5m", "gauge", "{thread}", "Load average over 5 minutes.", (), "host"),
    _m("system.cpu.load_average.15m", "gauge", "{thread}", "Load average over 15 minutes.", (), "host"),
    _m("system.memory.usage", "gauge", "By", "Memory by state.", ("system.memory.state",), "host"),
    _m("system.memory.limit", "gauge", "By", "Total physical memory.", (), "host", "slow"),
    _m(
        "system.linux.memory.available",
        "gauge",
        "By",
        "MemAvailable: memory usable without swapping.",
        (),
        "host",
    ),
    _m("system.paging.usage", "gauge", "By", "Swap by state.", ("system.paging.state",), "host"),
    _m(
        "system.pressure.stall_time",
        "counter",
        "s",
        "PSI: time tasks stalled on the resource.",
        ("system.pressure.resource", "system.pressure.scope"),
        "host",
    ),
    _m(
        "system.pressure.avg10",
        "gauge",
        "1",
        "PSI: share of the last 10 s tasks stalled on the resource.",
        ("system.pressure.resource", "system.pressure.scope"),
        "host",
    ),
    _m(
        "system.disk.io",
        "counter",
        "By",
        "Disk bytes read and written.",
        ("system.device", "disk.io.direction"),
        "host",
    ),
    _m(
        "system.disk.operations",
        "counter",
        "{operation}",
        "Disk operations completed.",
        ("system.device", "disk.io.direction"),
        "host",
    ),
    _m(
        "system.disk.io_time",
        "counter",
        "s",
        "Time the disk had I/O in flight (busy time).",
        ("system.device",),
        "host",
    ),
    _m(
        "system.filesystem.usage",
        "gauge",
        "By",
        "Filesystem space by state.",
        (
            "system.device",
            "system.filesystem.mountpoint",
            "system.filesystem.type",
            "system.filesystem.state",
        ),
        "host",
        "slow",
    ),
    _m(
        "system.network.io",
        "counter",
        "By",
        "Bytes sent and received.",
        ("network.interface.name", "network.io.direction"),
        "host",
    ),
    _m(
        "system.network.packet.count",
        "counter",
        "{packet}",
        "Packets sent and received.",
        ("network.interface.name", "network.io.direction"),
        "host",
    ),
    _m(
        "system.network.errors",
        "counter",
        "{error}",
        "Receive and transmit errors.",
        ("network.interface.name", "network.io.direction"),
        "host",
    ),
    _m(
        "system.network.packet.dropped",
        "counter",
        "{packet}",
        "Packets dropped.",
        ("network.interface.name", "network.io.direction"),
        "host",
    ),
    _m("system.network.tcp.retransmits", "counter", "{segment}", "TCP segments retransmitted.", (), "host"),
    _m("system.uptime", "gauge", "s", "Seconds since boot.", (), "host", "slow"),
    _m(
        "hw.temperature",
        "gauge",
        "Cel",
        "Host temperature sensors (hwmon and thermal zones).",
        ("hw.id", "hw.name", "hw.sensor_location"),
        "host",
    ),
    # ---------------------------------------------------------------- fabric
    _m(
        "hw.network.ib.port.state",
        "gauge",
        "{state}",
        "Logical port state: 1 down, 2 init, 3 armed, 4 active, 5 active-defer.",
        ("ib.device", "ib.port"),
        "fabric",
    ),
    _m(
        "hw.network.ib.port.phys_state",
        "gauge",
        "{state}",
        "Physical port state: 2 polling, 3 disabled, 5 link-up, 6 link-error-recovery, ...",
        ("ib.device", "ib.port"),
        "fabric",
    ),
    _m(
        "hw.network.ib.port.rate",
        "gauge",
        "bit/s",
        "Negotiated port rate.",
        ("ib.device", "ib.port"),
        "fabric",
        "slow",
    ),
    _m(
        "hw.network.ib.io",
        "counter",
        "By",
        "Port data bytes (the kernel counts 4-byte words; converted).",
        ("ib.device", "ib.port", "network.io.direction"),
        "fabric",
    ),
    _m(
        "hw.network.ib.packets",
        "counter",
        "{packet}",
        "Port packets.",
        ("ib.device", "ib.port", "network.io.direction"),
        "fabric",
    ),
    _m(
        "hw.network.ib.errors",
        "counter",
        "{error}",
        "Port error counters, one series per counter file.",
        ("ib.device", "ib.port", "ib.counter"),
        "fabric",
    ),
    _m(
        "hw.network.ib.hw_counters",
        "counter",
        "{event}",
        "Vendor hw_counters (RoCE and others).",
        ("ib.device", "ib.port", "ib.counter"),
        "fabric",
        series_budget=512,
    ),
    _m(
        "hw.network.nic.errors",
        "counter",
        "{error}",
        "NIC detailed error and drop counters from sysfs.",
        ("network.interface.name", "hw.error.type"),
        "fabric",
    ),
    # ---------------------------------------------------------------- errors
    _m(
        "hw.memory.edac.errors",
        "counter",
        "{error}",
        "Host memory ECC errors from EDAC.",
        ("edac.mc", "edac.csrow", "hw.error.type"),
        "errors",
    ),
    _m(
        "hw.pcie.aer.errors",
        "counter",
        "{error}",
        "PCIe Advanced Error Reporting counters.",
        ("hw.pci.bus_id", "hw.pcie.aer.severity", "hw.pcie.aer.type", "hw.type"),
        "errors",
        series_budget=1024,
    ),
    # ---------------------------------------------------------------- agent self-telemetry
    _m(
        "fleetpulse.agent.cycle.duration",
        "gauge",
        "s",
        "Wall time of the last cycle, per source (microsecond resolution).",
        ("fleetpulse.source",),
        "agent",
    ),
    _m(
        "fleetpulse.agent.source.errors",
        "counter",
        "{error}",
        "Problems a source met and survived (unreadable file, NVML error...).",
        ("fleetpulse.source", "error.type"),
        "agent",
    ),
    _m(
        "fleetpulse.agent.nvml.timeouts",
        "counter",
        "{call}",
        "NVML calls abandoned after their timeout.",
        ("nvml.function",),
        "agent",
    ),
    _m(
        "fleetpulse.agent.nvml.unsupported",
        "gauge",
        "{metric}",
        "GPU x NVML function pairs that returned NotSupported and are skipped.",
        ("nvml.function",),
        "agent",
    ),
    _m(
        "fleetpulse.agent.points.exported",
        "counter",
        "{point}",
        "Points delivered to the collector.",
        ("fleetpulse.exporter",),
        "agent",
    ),
    _m(
        "fleetpulse.agent.points.dropped",
        "counter",
        "{point}",
        "Points dropped, by reason.",
        ("error.type",),
        "agent",
    ),
    _m(
        "fleetpulse.agent.points.buffered",
        "gauge",
        "{point}",
        "Points waiting in the on-disk buffer.",
        (),
        "agent",
    ),
    _m("fleetpulse.agent.buffer.size", "gauge", "By", "On-disk buffer size.", (), "agent"),
    _m(
        "fleetpulse.agent.cardinality.overflow",
        "counter",
        "{point}",
        "Points folded into a metric's overflow series after its series budget was spent.",
        ("metric.name",),
        "agent",
    ),
    _m(
        "fleetpulse.agent.attributes.dropped",
        "counter",
        "{attribute}",
        "Attributes removed because the metric's allow-list does not name them.",
        ("metric.name",),
        "agent",
    ),
    _m("fleetpulse.agent.memory.rss", "gauge", "By", "Resident memory of the agent process.", (), "agent"),
    _m(
        "fleetpulse.agent.cpu.time",
        "counter",
        "s",
        "CPU time used by the agent process.",
        ("cpu.mode",),
        "agent",
    ),
]

CATALOG: dict[str, MetricSpec] = {spec.name: spec for spec in _SPECS}
if len(CATALOG) != len(_SPECS):  # pragma: no cover - guards the table above
    raise RuntimeError("duplicate metric name in catalog")

# Event names carried as OTLP log records (event.name attribute).
EVENTS: dict[str, str] = {
    "gpu.xid": "Xid error reported by the driver (code, severity, recommended action).",
    "gpu.throttle.onset": "A harmful throttle reason became active.",
    "gpu.throttle.clear": "A harmful throttle reason cleared.",
    "gpu.ecc.increase": "An ECC counter increased (type, scope, delta).",
    "gpu.row_remap.pending": "A row remap is pending: the GPU needs a reset.",
    "gpu.row_remap.failure": "A row remap failed: the GPU needs service.",
    "gpu.lost": "The GPU stopped answering (fallen off the bus).",
    "gpu.nvlink.down": "An NVLink went down.",
    "ib.port.down": "An InfiniBand port left the ACTIVE state.",
    "agent.start": "The agent started.",
    "agent.stop": "The agent stopped.",
}


def iter_specs() -> Iterator[MetricSpec]:
    return iter(_SPECS)


def by_prometheus_name() -> dict[str, MetricSpec]:
    return {spec.prometheus_name: spec for spec in _SPECS}


def render(fmt: str = "table") -> str:
    """The catalog as a text table, JSON, or the Markdown of docs/METRICS.md."""
    if fmt == "json":
        rows = [{**asdict(s), "prometheus_name": s.prometheus_name} for s in _SPECS]
        return json.dumps(rows, indent=2) + "\n"
    if fmt == "markdown":
        out = [
            "# Metric catalog",
            "",
            "Generated by `fleetpulse catalog --format markdown` from `agent/catalog.py`; do not edit by hand.",
            "",
            f"{len(_SPECS)} metrics. Resource attributes on every batch: `host.name`, `k8s.node.name`, "
            "`k8s.cluster.name`, plus configured topology (`rack`, `zone`).",
            "",
        ]
        for source in dict.fromkeys(s.source for s in _SPECS):
            out += [
                f"## {source}",
                "",
                "| name | Prometheus name | type | unit | tier | attributes | DCGM field | description |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for s in (s for s in _SPECS if s.source == source):
                attrs = ", ".join(f"`{a}`" for a in s.attributes) or "—"
                dcgm = "<br>".join(s.dcgm) or "—"
                out.append(
                    f"| `{s.name}` | `{s.prometheus_name}` | {s.instrument} | `{s.unit}` | {s.tier} | "
                    f"{attrs} | {dcgm} | {s.description} |"
                )
            out.append("")
        out += ["## Events (OTLP log records)", "", "| event.name | meaning |", "|---|---|"]
        out += [f"| `{name}` | {text} |" for name, text in EVENTS.items()]
        return "\n".join(out) + "\n"
    if fmt != "table":
        raise ValueError(f"unknown catalog format {fmt!r}: expected table, json or markdown")
    width = max(len(s.name) for s in _SPECS)
    lines = [f"{'NAME':<{width}}  {'TYPE':<8} {'UNIT':<11} {'SOURCE':<7} DCGM"]
    for s in _SPECS:
        lines.append(f"{s.name:<{width}}  {s.instrument:<8} {s.unit:<11} {s.source:<7} {', '.join(s.dcgm) or '-'}")
    return "\n".join(lines) + "\n"
