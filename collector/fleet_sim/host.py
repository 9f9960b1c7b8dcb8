"""The non-GPU part of what an agent on a simulated node reports, vectorised over a run of ticks.

Same metric names, attribute keys, tiers and value resolution as the agent's host, fabric and errors
sources and its self-telemetry (agent/sources/host.py, fabric.py, errors.py,
agent/runtime/selftelemetry.py) on a DGX-like H100 node: 224 logical CPUs, 2 TiB of memory, an OS and
a data NVMe, ``lo``/``eth0``/``ib0``, ``ib_devices`` InfiniBand HCAs, four memory controllers, and the
PCIe functions with AER (GPUs, their switch ports, HCAs, NVMe drives, NVSwitches).

Counters are integrals of the node's activity since boot (the agent's, for its own counters) plus a
bounded jitter (:mod:`collector.fleet_sim.shapes`): CPU time in jiffies, PSI stall time in µs, disk
bytes in 512-byte sectors, InfiniBand data in 4-byte words. Error counters stay flat unless the plan
injects a fault (IB symbol errors, NVML call timeouts), so the reports find exactly the manifest.
"""

from __future__ import annotations

import math

import numpy as np

from agent.catalog import IB_ERROR_COUNTERS
from agent.sources.fabric import NIC_ERROR_COUNTERS  # the counters the agent's fabric source reads
from collector.fleet_sim.plan import NS, FleetPlan
from collector.fleet_sim.series import Attrs, NodeChunk, Series
from collector.fleet_sim.shapes import counter, tick_uniform, unit_hash, wave, wave_integral

NCPU = 224
CLK_TCK = 100
CPU_MODES = ("user", "nice", "system", "idle", "iowait", "interrupt", "softirq", "steal")
# Non-idle shares of CPU time: (base, wave amplitude); idle is what is left of wall time.
CPU_SHARES = {
    "user": (0.16, 0.06),
    "nice": (0.0008, 0.0),
    "system": (0.03, 0.01),
    "iowait": (0.004, 0.002),
    "interrupt": (0.002, 0.0),
    "softirq": (0.01, 0.004),
    "steal": (0.0, 0.0),
}
MEM_TOTAL_KB = 2_113_442_848
# PSI stall shares of wall time: (resource, scope) -> (base, amplitude). System-wide cpu "full" is 0.
PSI = {
    ("cpu", "some"): (0.015, 0.008),
    ("cpu", "full"): (0.0, 0.0),
    ("memory", "some"): (0.0004, 0.0002),
    ("memory", "full"): (0.0002, 0.0001),
    ("io", "some"): (0.006, 0.003),
    ("io", "full"): (0.003, 0.0015),
}
# device -> (read B/s base, amplitude, write B/s, read request size, write request size, busy share)
DISKS = {
    "nvme0n1": (2e5, 1e5, 1.5e6, 16384, 16384, 0.01),
    "nvme1n1": (1.5e8, 1e8, 2e7, 131072, 32768, 0.12),
}
# interface -> (receive B/s base, amplitude, transmit B/s, receive packet size, transmit packet size)
NICS = {
    "lo": (2e6, 0.0, 2e6, 4096, 4096),
    "eth0": (4e7, 2e7, 1.5e7, 1200, 800),
    "ib0": (3e8, 2e8, 3e7, 2044, 2044),
}
IB_HW_COUNTERS = (
    "lifespan",
    "local_ack_timeout_err",
    "np_cnp_sent",
    "out_of_buffer",
    "out_of_sequence",
    "req_cqe_error",
    "rnr_nak_retry_err",
    "rp_cnp_handled",
)
IB_RATE_BITS = 400e9  # NDR
# The dual-port storage HCA (mlx5_<ib_devices>): port 1 carries ib0, port 2 is not cabled (DOWN, Polling).
STORAGE_PORTS = (("1", 4.0, 5.0, 200e9), ("2", 1.0, 2.0, 10e9))  # port, state, phys_state, rate (bit/s)
SENSORS = (
    ("hwmon1/temp1", "coretemp", "Package id 0"),
    ("hwmon2/temp1", "coretemp", "Package id 1"),
    ("hwmon3/temp1", "nvme", "Composite"),
    ("hwmon4/temp1", "nvme", "Composite"),
)
FILESYSTEMS = (("/dev/nvme0n1p2", "/", "ext4", 1_759_218_604_032, 0.18), ("/dev/md0", "/raid", "ext4", 28e12, 0.41))
EDAC_CONTROLLERS = 4
AER_SEVERITIES = ("correctable", "fatal", "nonfatal")
# Functions NVML answers NotSupported on an H100 SXM (the agent counts GPUs per function on its slow tier).
NVML_UNSUPPORTED = (
    "nvmlDeviceGetFieldValues[29]",
    "nvmlDeviceGetFieldValues[30]",
    "nvmlDeviceGetFieldValues[31]",
    "nvmlDeviceGetNumFans",
)
NVML_TIMEOUT_FUNCTION = "nvmlGpmSampleGet"
NVML_CALL_TIMEOUT_S = 2.0  # agent default nvml.call_timeout_s: a hung call costs the cycle this much
# Typical agent cycle time per source (s): median on a fast tier, extra on a slow one.
CYCLE_S = {"nvml": (0.0065, 0.012), "host": (0.0021, 0.0018), "fabric": (0.0014, 0.0004), "errors": (0.0009, 0.0006)}
AGENT_RSS = 71 * 1024 * 1024


def aer_devices(plan: FleetPlan) -> list[tuple[str, str]]:
    """(bus id, hw.type) of every PCIe function with AER counters on a node."""
    g, d = plan.spec.gpus_per_node, plan.spec.ib_devices
    out = []
    for slot in range(g):
        out.append((f"0000:{0x17 + 0x10 * slot:02x}:00.0", "bridge"))
        out.append((f"0000:{0x18 + 0x10 * slot:02x}:00.0", "gpu"))
    out += [(f"0000:{0x1A + 0x10 * i:02x}:00.0", "network") for i in range(d)]
    out += [("0000:c1:00.0", "storage"), ("0000:c2:00.0", "storage")]
    out += [(f"0000:{0xA5 + i:02x}:00.0", "nvswitch") for i in range(4)]
    return out


def ib_ports(plan: FleetPlan) -> list[tuple[str, str, float, float, float, float]]:
    """(device, port, state, phys_state, rate bit/s, data bytes/s at full load) of every InfiniBand port."""
    d = plan.spec.ib_devices
    ports = [(f"mlx5_{i}", "1", 4.0, 5.0, IB_RATE_BITS, 1e10) for i in range(d)]
    storage = NICS["ib0"][0] + NICS["ib0"][2]
    ports += [
        (f"mlx5_{d}", port, state, phys, rate, storage if state == 4.0 else 0.0)
        for port, state, phys, rate in STORAGE_PORTS
    ]
    return ports


def host_series_per_tick(plan: FleetPlan) -> tuple[int, int]:
    """(series on every tick, extra series on slow ticks) of this module, per node."""
    d = len(STORAGE_PORTS) + plan.spec.ib_devices
    host = 2 * len(CPU_MODES) + 3 + 4 + 1 + 2 + 2 * len(PSI) + 5 * len(DISKS) + 8 * len(NICS) + 1 + len(SENSORS)
    fabric = d * (6 + len(IB_ERROR_COUNTERS) + len(IB_HW_COUNTERS)) + 2 * len(NIC_ERROR_COUNTERS)
    errors = 2 * EDAC_CONTROLLERS + len(aer_devices(plan)) * len(AER_SEVERITIES)
    agent = len(CYCLE_S) + 6
    return host + fabric + errors + agent, 2 + 3 * len(FILESYSTEMS) + d + len(NVML_UNSUPPORTED)


class HostModel:
    def __init__(self, plan: FleetPlan) -> None:
        self.plan = plan
        self.interval_s = plan.interval_ns / NS

    def agent_start_ns(self, node: int) -> int:
        """The agent started a minute or two after the node booted (its own counters start there)."""
        return self.plan.boot_ns(node) + int((45 + 60 * unit_hash(self.plan.spec.seed, node, "agent")) * NS)

    def chunk(self, out: NodeChunk, node: int, ka: int, kb: int, gpu_series: tuple[int, int]) -> None:
        """Append everything but the GPUs for ticks [ka, kb); ``gpu_series``: one GPU's (fast, slow) series."""
        plan = self.plan
        ks = np.arange(ka, kb)
        t_ns = plan.start_ns + ks * plan.interval_ns
        ctx = _Ctx(self, node, ks, t_ns / NS, t_ns.tolist(), np.random.default_rng([plan.spec.seed, node, ka, 1]))
        self._cpu(out, ctx)
        self._memory(out, ctx)
        self._pressure(out, ctx)
        self._disks(out, ctx)
        self._network(out, ctx)
        self._temperatures(out, ctx)
        self._infiniband(out, ctx)
        self._errors(out, ctx)
        self._agent(out, ctx, gpu_series)
        slow = np.nonzero((t_ns % plan.slow_ns) == 0)[0]
        if len(slow):
            self._slow(out, ctx, slow)

    # ------------------------------------------------------------------ host source
    def _cpu_jiffies(self, ctx: _Ctx, t: np.ndarray, ks: np.ndarray) -> np.ndarray:
        """(ticks, modes) cumulative jiffies since boot, all CPUs together."""
        scale = CLK_TCK * NCPU
        jitter = tick_uniform(ks, len(CPU_MODES), self.plan.spec.seed, ctx.node, "cpu")
        out = np.zeros((len(t), len(CPU_MODES)))
        for i, mode in enumerate(CPU_MODES):
            base, amp = CPU_SHARES.get(mode, (0.0, 0.0))
            if mode == "idle" or base == 0.0:
                continue
            integral = scale * wave_integral(base, amp, ctx.period, ctx.phase + i, t, ctx.boot_s)
            out[:, i] = counter(integral, jitter[:, i], 0.5 * scale * (base - amp) * self.interval_s)
        out[:, CPU_MODES.index("idle")] = np.floor(scale * (t - ctx.boot_s)) - out.sum(axis=1)
        return out

    def _cpu(self, out: NodeChunk, ctx: _Ctx) -> None:
        now = self._cpu_jiffies(ctx, ctx.t, ctx.ks)
        before = self._cpu_jiffies(ctx, ctx.t - self.interval_s, ctx.ks - 1)
        delta = now - before
        share = delta / delta.sum(axis=1, keepdims=True)
        for i, mode in enumerate(CPU_MODES):
            attrs = (("cpu.mode", mode),)
            ctx.counter(out, "system.cpu.time", attrs, now[:, i] / CLK_TCK)
            ctx.gauge(out, "system.cpu.utilization", attrs, np.round(share[:, i], 4))
        shares = [CPU_SHARES[m] for m in CPU_MODES if m != "idle"]

        def busy(lag: float) -> np.ndarray:
            """Runnable threads follow the busy share of the CPUs."""
            return NCPU * sum(wave(b, a, ctx.period, ctx.phase + i, ctx.t - lag) for i, (b, a) in enumerate(shares))

        one = np.clip(np.round(busy(0) + 0.8 * ctx.noise(), 2), 0, None)
        ctx.gauge(out, "system.cpu.load_average.1m", (), one)
        ctx.gauge(out, "system.cpu.load_average.5m", (), np.round(busy(150.0), 2))
        ctx.gauge(out, "system.cpu.load_average.15m", (), np.round(busy(450.0), 2))
        tcp = counter(0.6 * (ctx.t - ctx.boot_s), ctx.jitter("tcp", 1)[:, 0], 0.3 * self.interval_s)
        ctx.counter(out, "system.network.tcp.retransmits", (), tcp)

    def _memory(self, out: NodeChunk, ctx: _Ctx) -> None:
        total = MEM_TOTAL_KB
        used = np.round(total * (wave(0.24, 0.06, ctx.period * 1.7, ctx.phase, ctx.t) + 0.002 * ctx.noise()))
        cached = np.round(total * wave(0.40, 0.05, ctx.period * 3.1, ctx.phase + 1, ctx.t))
        buffers = np.round(total * (0.0015 + 0.00005 * ctx.noise()))
        free = total - used - cached - buffers
        for state, kb in (("used", used), ("free", free), ("buffers", buffers), ("cached", cached)):
            ctx.gauge(out, "system.memory.usage", (("system.memory.state", state),), kb * 1024)
        ctx.gauge(out, "system.linux.memory.available", (), (free + np.round(0.92 * cached) + buffers) * 1024)
        zeros = ctx.zeros
        ctx.gauge(out, "system.paging.usage", (("system.paging.state", "used"),), zeros)  # no swap on GPU nodes
        ctx.gauge(out, "system.paging.usage", (("system.paging.state", "free"),), zeros)

    def _pressure(self, out: NodeChunk, ctx: _Ctx) -> None:
        jitter = ctx.jitter("psi", len(PSI))
        for i, ((resource, scope), (base, amp)) in enumerate(PSI.items()):
            attrs = (("system.pressure.resource", resource), ("system.pressure.scope", scope))
            if base == 0.0:
                ctx.counter(out, "system.pressure.stall_time", attrs, ctx.zeros)
                ctx.gauge(out, "system.pressure.avg10", attrs, ctx.zeros)
                continue
            integral = 1e6 * wave_integral(base, amp, ctx.period, ctx.phase + i, ctx.t, ctx.boot_s)
            micros = counter(integral, jitter[:, i], 0.5e6 * (base - amp) * self.interval_s)
            ctx.counter(out, "system.pressure.stall_time", attrs, micros / 1e6)
            pct = wave(base, amp, ctx.period, ctx.phase + i, ctx.t) * 100 * (1 + 0.3 * ctx.noise())
            ctx.gauge(out, "system.pressure.avg10", attrs, np.round(np.clip(np.round(pct, 2), 0, None) / 100.0, 4))

    def _disks(self, out: NodeChunk, ctx: _Ctx) -> None:
        for j, (device, (rd, rd_amp, wr, rd_size, wr_size, busy)) in enumerate(DISKS.items()):
            jitter = ctx.jitter(f"disk-{device}", 5)
            step = self.interval_s
            reads = wave_integral(rd, rd_amp, ctx.period * 0.4, ctx.phase + j, ctx.t, ctx.boot_s)
            writes = wr * (ctx.t - ctx.boot_s)
            dev = (("system.device", device),)
            for col, (direction, integral, low, size) in enumerate(
                (("read", reads, rd - rd_amp, rd_size), ("write", writes, wr, wr_size))
            ):
                attrs = (*dev, ("disk.io.direction", direction))
                sectors = counter(integral / 512, jitter[:, col], 0.5 * low / 512 * step)
                ctx.counter(out, "system.disk.io", attrs, sectors * 512)
                ops = counter(integral / size, jitter[:, 2 + col], 0.5 * low / size * step)
                ctx.counter(out, "system.disk.operations", attrs, ops)
            millis = counter(1000 * busy * (ctx.t - ctx.boot_s), jitter[:, 4], 500 * busy * step)
            ctx.counter(out, "system.disk.io_time", dev, millis / 1000)

    def _network(self, out: NodeChunk, ctx: _Ctx) -> None:
        step = self.interval_s
        for j, (name, (rx, rx_amp, tx, rx_size, tx_size)) in enumerate(NICS.items()):
            jitter = ctx.jitter(f"net-{name}", 4)
            received = wave_integral(rx, rx_amp, ctx.period * 0.6, ctx.phase + 2 * j, ctx.t, ctx.boot_s)
            sent = tx * (ctx.t - ctx.boot_s)
            for col, (direction, integral, low, size) in enumerate(
                (("receive", received, rx - rx_amp, rx_size), ("transmit", sent, tx, tx_size))
            ):
                attrs = (("network.interface.name", name), ("network.io.direction", direction))
                if name == "lo":  # loopback: what is sent is received
                    integral, low, size = sent, tx, tx_size
                    col = 1
                ctx.counter(out, "system.network.io", attrs, counter(integral, jitter[:, col], 0.5 * low * step))
                packets = counter(integral / size, jitter[:, 2 + col], 0.5 * low / size * step)
                ctx.counter(out, "system.network.packet.count", attrs, packets)
                ctx.counter(out, "system.network.errors", attrs, ctx.zeros)
                # A busy Ethernet port drops the odd received frame (ring overrun); the rest stays at 0.
                dropped = np.floor((ctx.t - ctx.boot_s) / 600.0) if (name, direction) == ("eth0", "receive") else None
                ctx.counter(out, "system.network.packet.dropped", attrs, ctx.zeros if dropped is None else dropped)

    def _temperatures(self, out: NodeChunk, ctx: _Ctx) -> None:
        user = wave(*CPU_SHARES["user"], ctx.period, ctx.phase, ctx.t)
        for i, (hw_id, chip, label) in enumerate(SENSORS):
            attrs = (("hw.id", hw_id), ("hw.name", chip), ("hw.sensor_location", label))
            if chip == "coretemp":
                celsius = np.round(42.0 + i + 60.0 * user + 0.8 * ctx.noise())
            else:  # NVMe reports whole kelvins; hwmon gives millidegrees Celsius
                kelvin = np.round(309.0 + i + 2.0 * np.sin(ctx.t / 5400.0 + i) + 0.4 * ctx.noise())
                celsius = (kelvin * 1000 - 273150) / 1000
            ctx.gauge(out, "hw.temperature", attrs, celsius)

    # ------------------------------------------------------------------ fabric source
    def _infiniband(self, out: NodeChunk, ctx: _Ctx) -> None:
        plan, step = self.plan, self.interval_s
        faults = plan.ib_errors.get(ctx.node, [])
        for d, (device, port, state, phys, _, full) in enumerate(ib_ports(plan)):
            dev = (("ib.device", device), ("ib.port", port))
            ctx.gauge(out, "hw.network.ib.port.state", dev, ctx.const(state))
            ctx.gauge(out, "hw.network.ib.port.phys_state", dev, ctx.const(phys))
            jitter = ctx.jitter(f"ib-{device}-{port}", 4)
            for col, (direction, share) in enumerate((("transmit", 1.0), ("receive", 0.97))):
                attrs = (*dev, ("network.io.direction", direction))
                if not full:  # a port without a link counts nothing
                    ctx.counter(out, "hw.network.ib.io", attrs, ctx.zeros)
                    ctx.counter(out, "hw.network.ib.packets", attrs, ctx.zeros)
                    continue
                base, amp = 0.6 * full * share, 0.4 * full * share  # collective traffic follows the node's load
                integral = wave_integral(base, amp, ctx.period, ctx.phase + d, ctx.t, ctx.boot_s)
                words = counter(integral / 4, jitter[:, col], 0.5 * (base - amp) / 4 * step)
                ctx.counter(out, "hw.network.ib.io", attrs, words * 4)
                packets = counter(integral / 4096, jitter[:, 2 + col], 0.5 * (base - amp) / 4096 * step)
                ctx.counter(out, "hw.network.ib.packets", attrs, packets)
            for name in IB_ERROR_COUNTERS:
                values = ctx.zeros
                if name == "symbol_error":
                    acc = np.zeros(len(ctx.ks))
                    for fdev, fport, w, per_tick in faults:
                        if fdev == device and str(fport) == port:
                            acc += np.clip(np.minimum(ctx.ks, w.k1) - w.k0 + 1, 0, None) * per_tick
                    values = acc
                ctx.counter(out, "hw.network.ib.errors", (*dev, ("ib.counter", name)), values)
            for name in IB_HW_COUNTERS:
                if name == "lifespan":
                    values = ctx.const(10.0)
                elif name in ("np_cnp_sent", "rp_cnp_handled") and full:  # congestion notifications trickle in
                    values = np.floor(0.02 * (1 + d) * (ctx.t - ctx.boot_s))
                else:
                    values = ctx.zeros
                ctx.counter(out, "hw.network.ib.hw_counters", (*dev, ("ib.counter", name)), values)
        for name in ("eth0", "ib0"):
            for error in NIC_ERROR_COUNTERS:
                attrs = (("network.interface.name", name), ("hw.error.type", error))
                ctx.counter(out, "hw.network.nic.errors", attrs, ctx.zeros)

    # ------------------------------------------------------------------ errors source
    def _errors(self, out: NodeChunk, ctx: _Ctx) -> None:
        for mc in range(EDAC_CONTROLLERS):
            for error_type in ("corrected", "uncorrected"):
                attrs = (("edac.csrow", "all"), ("edac.mc", str(mc)), ("hw.error.type", error_type))
                ctx.counter(out, "hw.memory.edac.errors", attrs, ctx.zeros)
        seed = self.plan.spec.seed
        devices = aer_devices(self.plan)
        # About one node in four has a switch port that logged a few receiver errors while the link trained
        # at boot: flat, non-zero, and the agent then also reports that type on its own.
        noisy = None
        if unit_hash(seed, ctx.node, "aer") < 0.25:
            noisy = devices[2 * int(unit_hash(seed, ctx.node, "aer-slot") * self.plan.spec.gpus_per_node)][0]
        for bus_id, hw_type in devices:
            for severity in AER_SEVERITIES:
                count = (
                    1.0 + int(unit_hash(seed, ctx.node, "aer-count") * 3)
                    if (bus_id, severity)
                    == (
                        noisy,
                        "correctable",
                    )
                    else 0.0
                )
                base = (("hw.pci.bus_id", bus_id), ("hw.pcie.aer.severity", severity))
                ctx.counter(
                    out,
                    "hw.pcie.aer.errors",
                    (*base, ("hw.pcie.aer.type", "total"), ("hw.type", hw_type)),
                    ctx.const(count),
                )
                if count:
                    attrs = (*base, ("hw.pcie.aer.type", "RxErr"), ("hw.type", hw_type))
                    ctx.counter(out, "hw.pcie.aer.errors", attrs, ctx.const(count))

    # ------------------------------------------------------------------ agent self-telemetry
    def _agent(self, out: NodeChunk, ctx: _Ctx, gpu_series: tuple[int, int]) -> None:
        plan, step = self.plan, self.interval_s
        start_ns = self.agent_start_ns(ctx.node)
        since = ctx.t - start_ns / NS
        is_slow = (ctx.t_ns % plan.slow_ns) == 0
        timeouts = sorted(plan.nvml_timeouts.get(ctx.node, ()))
        hung = np.isin(ctx.ks, [k for k, _ in timeouts])
        for source, (fast_s, slow_s) in CYCLE_S.items():
            seconds = fast_s * np.exp(0.25 * ctx.noise()) + np.where(is_slow, slow_s, 0.0)
            if source == "nvml":
                seconds = seconds + np.where(hung, NVML_CALL_TIMEOUT_S, 0.0)
            ctx.gauge(out, "fleetpulse.agent.cycle.duration", (("fleetpulse.source", source),), np.round(seconds, 6))
        if timeouts:
            first = timeouts[0][0]
            seen = np.searchsorted([k for k, _ in timeouts], ctx.ks, side="right").astype(float)
            keep = ctx.ks >= first
            if keep.any():
                reason = f"timeout:{NVML_TIMEOUT_FUNCTION}"
                attrs = (("error.type", reason), ("fleetpulse.source", "nvml"))
                ctx.counter(out, "fleetpulse.agent.source.errors", attrs, seen, start_ns, keep)
                attrs = (("nvml.function", NVML_TIMEOUT_FUNCTION),)
                ctx.counter(out, "fleetpulse.agent.nvml.timeouts", attrs, seen, start_ns, keep)
        # Points delivered: every earlier cycle's points (the last one is still on its way).
        host_fast, host_slow = host_series_per_tick(plan)
        per_cycle = host_fast + plan.spec.gpus_per_node * gpu_series[0]
        slow_extra = host_slow + plan.spec.gpus_per_node * gpu_series[1]
        cycles = np.floor(since / step)
        slow_cycles = np.floor(since / (plan.slow_ns / NS))
        exported = np.round(per_cycle * np.maximum(cycles - 1, 0) + slow_extra * np.maximum(slow_cycles - 1, 0))
        ctx.counter(out, "fleetpulse.agent.points.exported", (("fleetpulse.exporter", "otlp"),), exported, start_ns)
        ctx.gauge(out, "fleetpulse.agent.points.buffered", (), ctx.zeros)
        ctx.gauge(out, "fleetpulse.agent.buffer.size", (), ctx.zeros)
        rss = np.round((AGENT_RSS + 6e5 * np.sin(since / 3600.0) + 1.5e5 * ctx.noise()) / 4096) * 4096
        ctx.gauge(out, "fleetpulse.agent.memory.rss", (), rss)
        jitter = ctx.jitter("agent-cpu", 2)
        for col, (mode, rate) in enumerate((("user", 0.0042), ("system", 0.0013))):
            micros = counter(1e6 * rate * since, jitter[:, col], 0.5e6 * rate * step)
            ctx.counter(out, "fleetpulse.agent.cpu.time", (("cpu.mode", mode),), micros / 1e6, start_ns)

    # ------------------------------------------------------------------ slow tier
    def _slow(self, out: NodeChunk, ctx: _Ctx, idx: np.ndarray) -> None:
        times = [ctx.times[i] for i in idx]
        t = ctx.t[idx]
        n = len(idx)
        add = out.series.append
        add(Series("system.memory.limit", (), times, [MEM_TOTAL_KB * 1024.0] * n))
        add(Series("system.uptime", (), times, np.round(t - ctx.boot_s, 2).tolist()))
        for mount, (device, point, fstype, size, used_share) in enumerate(FILESYSTEMS):
            blocks = size // 4096
            used = np.floor(blocks * used_share + 0.4 * (t - ctx.boot_s) * (1 + mount))
            reserved = math.floor(blocks * 0.05)
            attrs = (
                ("system.device", device),
                ("system.filesystem.mountpoint", point),
                ("system.filesystem.type", fstype),
            )
            for state, value in (
                ("used", used),
                ("free", blocks - used - reserved),
                ("reserved", np.full(n, reserved)),
            ):
                add(
                    Series(
                        "system.filesystem.usage",
                        (*attrs, ("system.filesystem.state", state)),
                        times,
                        (value * 4096).tolist(),
                    )
                )
        for d in range(self.plan.spec.ib_devices):
            add(
                Series(
                    "hw.network.ib.port.rate", (("ib.device", f"mlx5_{d}"), ("ib.port", "1")), times, [IB_RATE_BITS] * n
                )
            )
        for function in NVML_UNSUPPORTED:
            gpus = float(self.plan.spec.gpus_per_node)
            add(Series("fleetpulse.agent.nvml.unsupported", (("nvml.function", function),), times, [gpus] * n))


class _Ctx:
    """One node's ticks for one chunk, with helpers that append gauges and counters."""

    def __init__(self, model: HostModel, node: int, ks: np.ndarray, t: np.ndarray, times: list[int], rng) -> None:
        plan = model.plan
        self.node = node
        self.ks = ks
        self.t = t
        self.t_ns = plan.start_ns + ks * plan.interval_ns
        self.times = times
        self.rng = rng
        self.boot_ns = plan.boot_ns(node)
        self.boot_s = self.boot_ns / NS
        self.period = 3600.0 * (1.5 + 3.0 * unit_hash(plan.spec.seed, node, "period"))
        self.phase = 2 * math.pi * unit_hash(plan.spec.seed, node, "phase")
        self.zeros = np.zeros(len(ks))
        self._seed = plan.spec.seed

    def const(self, value: float) -> np.ndarray:
        return np.full(len(self.ks), value)

    def noise(self) -> np.ndarray:
        return self.rng.standard_normal(len(self.ks))

    def jitter(self, key: str, columns: int) -> np.ndarray:
        return tick_uniform(self.ks, columns, self._seed, self.node, key)

    def gauge(self, out: NodeChunk, metric: str, attrs: Attrs, values: np.ndarray) -> None:
        out.series.append(Series(metric, attrs, self.times, values.tolist()))

    def counter(
        self,
        out: NodeChunk,
        metric: str,
        attrs: Attrs,
        values: np.ndarray,
        start_ns: int | None = None,
        keep: np.ndarray | None = None,
    ) -> None:
        start = self.boot_ns if start_ns is None else start_ns
        if keep is None:
            out.series.append(Series(metric, attrs, self.times, values.tolist(), start))
            return
        idx = np.nonzero(keep)[0]
        out.series.append(Series(metric, attrs, [self.times[i] for i in idx], values[idx].tolist(), start))
