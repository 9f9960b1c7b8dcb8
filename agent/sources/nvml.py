"""The NVML source: GPU readings and GPU events through pynvml (nvidia-ml-py).

One ``nvmlInit`` per source (one per process); every driver call runs under the watchdog
(``agent/watchdog.py``) on a per-GPU worker, so a hung call is abandoned after
``nvml.call_timeout_s``, counted in ``fleetpulse.agent.nvml.timeouts`` and the cycle goes on.
NotSupported answers omit the metric for that GPU and are counted once in
``fleetpulse.agent.nvml.unsupported``. With ``simulate.gpus > 0`` the simulator is installed into
the pynvml module first and this same code runs on top of it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import pynvml as N

from agent import xid as xid_catalog
from agent.config import AgentConfig
from agent.snapshot import SnapshotBuilder
from agent.sources.nvml_device import GpuCollector, Sink, handle_address
from agent.watchdog import CallTracker, Outcome, Watchdog

if TYPE_CHECKING:
    from agent.sim import SimulatorHandle

log = logging.getLogger(__name__)

_PCI_RE = re.compile(
    r"^\s*(?:pci:)?(?:(?P<domain>[0-9a-f]{1,8}):)?(?P<bus>[0-9a-f]{1,2}):(?P<device>[0-9a-f]{1,2})(?:\.[0-7])?\s*$",
    re.IGNORECASE,
)
_MAX_EVENTS_PER_CYCLE = 256
# The errors source counts kernel-log Xids under xid.source=kernel_log; ours stay distinct.
XID_SOURCE = "nvml"
# (process type, pynvml function) asked per GPU by gpu_processes(); looked up by name at call time
# so the simulator's functions are used once installed.
_PROCESS_QUERIES = (
    ("compute", "nvmlDeviceGetComputeRunningProcesses"),
    ("graphics", "nvmlDeviceGetGraphicsRunningProcesses"),
)


@dataclass(frozen=True, slots=True)
class GpuProcess:
    pid: int
    type: str  # "compute" | "graphics"
    used_memory_bytes: int | None  # None: the driver does not report it (NVML_VALUE_NOT_AVAILABLE)


class GpuProcesses(NamedTuple):
    """The processes NVML lists on one GPU (a pid can appear as compute and as graphics)."""

    index: int
    processes: tuple[GpuProcess, ...]

    @property
    def pids(self) -> list[int]:
        return sorted({p.pid for p in self.processes})


def parse_pci(pci_bus_id: str) -> tuple[int, int, int] | None:
    """(domain, bus, device) from '00000000:1B:00.0', '0000:1b:00.0' or 'PCI:0000:1b:00'."""
    m = _PCI_RE.match(pci_bus_id or "")
    if m is None:
        return None
    return int(m["domain"] or "0", 16), int(m["bus"], 16), int(m["device"], 16)


class NvmlSource:
    name = "nvml"

    def __init__(
        self,
        config: AgentConfig,
        watchdog: Watchdog,
        gpus: list[GpuCollector],
        event_set: object | None,
        simulator: SimulatorHandle | None,
        initialized: bool,
    ) -> None:
        self.config = config
        self.watchdog = watchdog
        self.gpus = gpus
        self.event_set = event_set
        self.simulator = simulator
        self.initialized = initialized
        self.start_time_unix_nano = time.time_ns()
        self.timeouts: Counter[str] = Counter()
        self.xid_counts: Counter[tuple[int, int]] = Counter()
        self._by_address = {g.address: g for g in gpus if g.address}
        self._by_pci: dict[tuple[int, int, int], GpuCollector] = {}
        for g in gpus:
            key = parse_pci(g.info.get("hw.pci.bus_id", ""))
            if key is not None:
                self._by_pci[key] = g
        self._pending_errors: Counter[str] = Counter()
        self._event_seq = itertools.count(1)
        # GPU index -> (cycle tick, per-link NVLink points of that cycle's fast pass), for the slow pass.
        self._link_io: dict[int, tuple[int, list[tuple[str, float, dict[str, str]]]]] = {}
        self._closed = False

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, config: AgentConfig, *, sim_clock: str = "real") -> NvmlSource:
        """Start NVML (or the simulator when ``config.simulate.gpus > 0``) and discover the GPUs.

        Without NVML (no driver, no GPU) this logs one line and returns a source that emits
        nothing, so the other sources keep working.
        """
        simulator = None
        if config.simulate.gpus > 0:
            from agent import sim

            sim_cfg = config.simulate
            simulator = sim.install(sim_cfg.gpus, sim_cfg.profile, sim_cfg.faults, sim_cfg.seed, clock=sim_clock)
        watchdog = Watchdog(config.nvml.call_timeout_s, "nvml")
        try:
            return cls._start(config, watchdog, simulator)
        except BaseException:
            watchdog.close()
            if simulator is not None:
                simulator.uninstall()
            raise

    @classmethod
    def _start(cls, config: AgentConfig, watchdog: Watchdog, simulator: SimulatorHandle | None) -> NvmlSource:
        init_timeout = config.nvml.init_timeout_s
        # A driver can hang in init: the call is abandoned on its daemon worker thread, which cannot
        # hold up the cycle or process exit.
        hung_hint = f"within {init_timeout:g} s (config key nvml.init_timeout_s); abandoned"

        def unavailable(reason: str, hung_function: str | None = None) -> NvmlSource:
            log.warning("NVML not available: %s; GPU metrics disabled", reason)
            source = cls(config, watchdog, [], None, simulator, initialized=False)
            if hung_function:  # counted in fleetpulse.agent.nvml.timeouts by the first cycle
                source.timeouts[hung_function] += 1
                source._pending_errors[f"timeout:{hung_function}"] += 1
            return source

        out = watchdog.run("init", lambda tr: tr.call(N.nvmlInit), timeout_s=init_timeout)
        if out.hung_function:
            return unavailable(f"{out.hung_function} did not return {hung_hint}", out.hung_function)
        if out.error is not None:
            return unavailable(_describe(out.error))

        def discover(tr: CallTracker) -> tuple[str, int, object | None]:
            driver = tr.call(N.nvmlSystemGetDriverVersion)
            count = tr.call(N.nvmlDeviceGetCount)
            try:
                event_set = tr.call(N.nvmlEventSetCreate)
            except N.NVMLError as exc:
                log.warning("NVML event set unavailable (%s): Xid events come from the kernel log only", _describe(exc))
                event_set = None
            return driver, count, event_set

        out = watchdog.run("init", discover, timeout_s=init_timeout)
        if not out.ok:
            reason = f"{out.hung_function} did not return {hung_hint}" if out.hung_function else _describe(out.error)
            return unavailable(f"GPU discovery failed: {reason}", out.hung_function)
        driver, count, event_set = out.value
        gpus = [GpuCollector(i) for i in range(count)]
        pending: Counter[str] = Counter()
        jobs = []
        for g in gpus:
            sink = Sink()
            jobs.append(
                (g, sink, watchdog.submit(g.index, lambda tr, g=g, s=sink: g.setup(tr.call, s, driver, event_set)))
            )
        for g, sink, job in jobs:
            result = watchdog.wait(job, init_timeout)
            pending.update(sink.errors)
            if isinstance(result.error, N.NVMLError_GpuIsLost):
                log.error("GPU %d is lost (fallen off the bus?) at start-up", g.index)
            elif result.error is not None:
                log.error("GPU %d: set-up failed: %s", g.index, _describe(result.error))
                pending[f"setup_{type(result.error).__name__}"] += 1
            elif result.hung_function:
                log.error(
                    "GPU %d: %s hung during set-up; its metrics are skipped until it answers",
                    g.index,
                    result.hung_function,
                )
        source = cls(config, watchdog, gpus, event_set, simulator, initialized=True)
        source._pending_errors = pending
        log.info("NVML: %d GPU(s), driver %s%s", count, driver, " (simulated)" if simulator else "")
        return source

    # ------------------------------------------------------------------ Source protocol
    def collect(self, builder: SnapshotBuilder, tier: str) -> None:
        if self._closed:
            return
        # Start-up problems (also a hung nvmlInit) and placement-query errors land in the next cycle.
        for reason, n in self._pending_errors.items():
            builder.count_error(self.name, reason, n)
        self._pending_errors.clear()
        if not self.initialized:
            return
        jobs = self._submit_all(tier)
        event_job = None
        if tier == "fast" and self.event_set is not None:
            event_job = self.watchdog.submit("events", self._poll_xids)
        for g, sink, job in jobs:
            self._absorb(builder, g, sink, self.watchdog.wait(job))
            self._per_link_io(builder, g, sink, tier)
        if event_job is not None:
            self._absorb_xids(builder, self.watchdog.wait(event_job))
        if tier == "fast":
            for (index, code), n in sorted(self.xid_counts.items()):
                attrs = {**self.gpus[index].attrs, "hw.gpu.xid": str(code), "xid.source": XID_SOURCE}
                builder.add("hw.gpu.xid.errors", n, attrs, start_time_unix_nano=self.start_time_unix_nano)
        else:
            self._self_metrics(builder)

    def collect_burst(self, builder: SnapshotBuilder, gpu_index: int) -> None:
        """That one GPU's fast fields (the daemon's 1 s diagnostic burst after a fault)."""
        if not self.initialized or self._closed or not 0 <= gpu_index < len(self.gpus):
            return
        g = self.gpus[gpu_index]
        sink = Sink()
        job = self.watchdog.submit(g.index, lambda tr: g.run("burst", tr.call, sink))
        self._absorb(builder, g, sink, self.watchdog.wait(job))
        self._per_link_io(builder, g, sink, "burst")

    def gpu_processes(self) -> dict[str, GpuProcesses]:
        """GPU UUID → the processes NVML lists on it (compute, and graphics where supported).

        For placement (``agent/placement.py``). Each GPU is asked on its own watchdog worker, so a
        hung call is abandoned after ``nvml.call_timeout_s`` (counted as a timeout) and a GPU still
        stuck from earlier is skipped. NotSupported is remembered per GPU, never asked again and
        reported in ``fleetpulse.agent.nvml.unsupported``. GPUs that are lost or did not answer are
        left out; other errors are counted in the next cycle's source errors.
        """
        if not self.initialized or self._closed:
            return {}
        jobs = [
            (g, self.watchdog.submit(g.index, lambda tr, g=g: self._query_processes(tr, g)))
            for g in self.gpus
            if g.handle is not None and not g.lost
        ]
        out: dict[str, GpuProcesses] = {}
        for g, job in jobs:
            result = self.watchdog.wait(job)
            if result.busy:
                self._pending_errors["gpu_call_still_hung"] += 1
            elif result.hung_function:
                self.timeouts[result.hung_function] += 1
                self._pending_errors[f"timeout:{result.hung_function}"] += 1
                log.warning(
                    "GPU %d: %s did not return within %g s; abandoned (placement skips this GPU)",
                    g.index,
                    result.hung_function,
                    self.watchdog.timeout_s,
                )
            elif result.error is not None:
                self._pending_errors[f"processes_{type(result.error).__name__}"] += 1
            elif result.value is not None:
                out[g.uuid] = GpuProcesses(g.index, result.value)
        return out

    @staticmethod
    def _query_processes(tr: CallTracker, g: GpuCollector) -> tuple[GpuProcess, ...] | None:
        """One GPU's running processes; None when the GPU is lost (the collection reports that)."""
        found: list[GpuProcess] = []
        for kind, function in _PROCESS_QUERIES:
            if function in g.unsupported:
                continue
            try:
                processes = tr.call(getattr(N, function), g.handle)
            except (N.NVMLError_NotSupported, N.NVMLLibraryMismatchError):
                g.unsupported.add(function)  # NotSupported, or a driver without this call version
                continue
            except N.NVMLError_GpuIsLost:
                return None
            for p in processes:
                used = getattr(p, "usedGpuMemory", None)
                found.append(GpuProcess(int(p.pid), kind, int(used) if used is not None else None))
        return tuple(found)

    def gpu_by_pci(self, pci_bus_id: str) -> dict[str, str] | None:
        """GPU attributes for a PCI address in any common spelling; None when no GPU sits there."""
        key = parse_pci(pci_bus_id)
        g = self._by_pci.get(key) if key is not None else None
        if g is None:
            return None
        return {"hw.id": g.uuid, "gpu.index": str(g.index), "hw.model": g.model}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.initialized:
                self._release_nvml()
        finally:
            self.watchdog.close()
            if self.simulator is not None:
                self.simulator.uninstall()

    # ------------------------------------------------------------------ internals
    def _submit_all(self, tier: str) -> list[tuple[GpuCollector, Sink, Any]]:
        jobs = []
        for g in self.gpus:
            sink = Sink()
            jobs.append((g, sink, self.watchdog.submit(g.index, lambda tr, g=g, s=sink: g.run(tier, tr.call, s))))
        return jobs

    def _absorb(self, builder: SnapshotBuilder, g: GpuCollector, sink: Sink, out: Outcome) -> None:
        if out.busy:
            builder.count_error(self.name, "gpu_call_still_hung")
            return
        if out.hung_function:
            self._timed_out(builder, out.hung_function)
            log.warning(
                "GPU %d: %s did not return within %g s; abandoned (the cycle goes on without it)",
                g.index,
                out.hung_function,
                self.watchdog.timeout_s,
            )
        elif out.error is not None:
            log.error("GPU %d: collection failed: %s", g.index, _describe(out.error))
            builder.count_error(self.name, f"internal_{type(out.error).__name__}")
        add = builder.add
        for name, value, attrs in list(sink.points):
            add(name, value, attrs)
        for name, severity, body, attrs in list(sink.events):
            builder.event(name, severity, body, attrs, event_id=self._event_id(g, name))
        for reason, n in sink.errors.items():
            builder.count_error(self.name, reason, n)

    def _per_link_io(self, builder: SnapshotBuilder, g: GpuCollector, sink: Sink, tier: str) -> None:
        """``hw.gpu.nvlink.link.io`` at the tier ``nvml.nvlink_link_io`` names.

        The fast pass reads every link (its per-GPU total is their sum); with 'slow' those same
        readings are kept until the slow pass of the same cycle (same tick) and sent there, so the
        per-link series agree with the total at that tick and cost no extra NVML call.
        """
        mode = self.config.nvml.nvlink_link_io
        if mode == "fast":
            points = sink.link_io if tier != "slow" else []
        elif mode == "slow" and tier == "fast":
            self._link_io[g.index] = (builder.time_unix_nano, sink.link_io)
            return
        elif mode == "slow" and tier == "slow":
            tick, points = self._link_io.pop(g.index, (None, []))
            if tick != builder.time_unix_nano:  # no fast pass in this cycle: nothing current to send
                return
        else:
            return
        for name, value, attrs in points:
            builder.add(name, value, attrs)

    def _event_id(self, g: GpuCollector, name: str) -> str:
        return f"{g.uuid}/{name}/{time.time_ns()}/{next(self._event_seq)}"

    def _poll_xids(self, tr: CallTracker) -> tuple[list[tuple[int, int]], Counter[str]]:
        """Drain the Xid event set without blocking (timeout 0 unless configured otherwise)."""
        events: list[tuple[int, int]] = []
        errors: Counter[str] = Counter()
        wait_ms = self.config.nvml.xid_poll_ms
        for _ in range(_MAX_EVENTS_PER_CYCLE):
            try:
                data = tr.call(N.nvmlEventSetWait_v2, self.event_set, wait_ms)
            except N.NVMLError_Timeout:
                break
            except N.NVMLError as exc:
                errors[f"event_wait_{type(exc).__name__}"] += 1
                break
            if data.eventType & N.nvmlEventTypeXidCriticalError:
                events.append((handle_address(data.device), int(data.eventData)))
        return events, errors

    def _absorb_xids(self, builder: SnapshotBuilder, out: Outcome) -> None:
        if out.busy:
            builder.count_error(self.name, "event_wait_still_hung")
            return
        if out.hung_function:
            self._timed_out(builder, out.hung_function)
            return
        if out.error is not None:
            builder.count_error(self.name, f"internal_{type(out.error).__name__}")
            return
        events, errors = out.value
        for reason, n in errors.items():
            builder.count_error(self.name, reason, n)
        for address, code in events:
            g = self._by_address.get(address)
            if g is None:
                builder.count_error(self.name, "xid_unknown_device")
                continue
            info = xid_catalog.lookup(code)
            self.xid_counts[(g.index, code)] += 1
            builder.event(
                "gpu.xid",
                info.log_severity,
                f"GPU {g.index} Xid {code}: {info.meaning}; action: {info.action}",
                {
                    **g.attrs,
                    "hw.gpu.xid": str(code),
                    "xid.severity": info.severity,
                    "xid.action": info.action,
                    "xid.source": XID_SOURCE,
                },
                event_id=self._event_id(g, f"xid{code}"),
            )

    def _timed_out(self, builder: SnapshotBuilder, function: str) -> None:
        # The runtime's self-telemetry turns "timeout:<function>" into fleetpulse.agent.nvml.timeouts.
        self.timeouts[function] += 1
        builder.count_error(self.name, f"timeout:{function}")

    def _self_metrics(self, builder: SnapshotBuilder) -> None:
        unsupported: Counter[str] = Counter()
        for g in self.gpus:
            unsupported.update(list(g.unsupported))  # list(): a C-level copy, safe against a late worker
        for function, n in sorted(unsupported.items()):
            builder.add("fleetpulse.agent.nvml.unsupported", n, {"nvml.function": function})

    def _release_nvml(self) -> None:
        def release(tr: CallTracker) -> None:
            for g in self.gpus:
                for sample in g.gpm_samples:
                    with contextlib.suppress(N.NVMLError):
                        tr.call(N.nvmlGpmSampleFree, sample)
            if self.event_set is not None:
                with contextlib.suppress(N.NVMLError):
                    tr.call(N.nvmlEventSetFree, self.event_set)
            tr.call(N.nvmlShutdown)

        out = self.watchdog.run("init", release, timeout_s=self.config.nvml.call_timeout_s)
        if out.error is not None or out.hung_function:
            log.warning("NVML shutdown did not complete: %s", out.hung_function or _describe(out.error))


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, N.NVMLError):
        return f"{exc} ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"
