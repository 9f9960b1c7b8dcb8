"""The simulation itself: GPUs (value models), a clock, and the fault timeline.

Independent of pynvml; ``agent/sim/nvml_api.py`` puts the pynvml function facade on top. The fleet
simulator can use :class:`Simulator` with a :class:`ManualClock` directly: ``advance(dt)`` then read
``sim.gpus[i].state``.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.sim.faults import Fault, Scenario, ScenarioError
from agent.sim.model import HW_POWER_BRAKE, HW_SLOWDOWN, HW_THERMAL, SW_THERMAL, GpuState
from agent.sim.profiles import Profile


class ManualClock:
    """Simulated time that moves only when told to (tests, benchmarks, fleet generation)."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the simulated clock only moves forward")
        self.t += seconds


class RealClock:
    """Simulated time that follows wall time from the moment the simulator starts (the agent daemon)."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def advance(self, seconds: float) -> None:
        self._t0 -= seconds  # jump ahead: what a test or demo wants from a real-time simulation


@dataclass(order=True)
class _Action:
    t: float
    seq: int
    run: Callable[[], None] = field(compare=False)


class SimGpu:
    """One simulated GPU: its model, identity, pending fault actions and armed call hangs."""

    def __init__(self, profile: Profile, index: int, seed: int) -> None:
        self.index = index
        self.profile = profile
        self.state = GpuState(profile, index, seed)
        digest = hashlib.sha256(f"{seed}:{index}:{profile.name}".encode()).hexdigest()
        h = int(digest[:12], 16)
        self.uuid = f"GPU-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
        self.serial = str(1650000000000 + h % 10**9)
        bus = profile.pci_buses[index % len(profile.pci_buses)] + (index // len(profile.pci_buses)) * 0x100
        self.pci_bus = bus
        self.pci_bus_id = f"00000000:{bus:02X}:00.0"
        self.actions: list[_Action] = []
        self.hangs: dict[str, list[float]] = {}  # function -> [calls left, seconds]
        # (pid, "compute" | "graphics") -> used GPU memory in bytes, None = not reported. One pid can
        # be both (a CUDA program that also renders).
        self.processes: dict[tuple[int, str], int | None] = {}
        self._forced: dict[int, int] = {}

    def force(self, bits: int, on: bool) -> None:
        """Reference-counted throttle reasons, so overlapping faults do not clear each other."""
        for bit in (b for b in (1 << i for i in range(16)) if bits & b):
            self._forced[bit] = self._forced.get(bit, 0) + (1 if on else -1)
        combined = 0
        for bit, n in self._forced.items():
            if n > 0:
                combined |= bit
        self.state.forced_reasons = 0
        self.state.force_reasons(combined, True)


class Simulator:
    def __init__(
        self,
        gpus: int,
        profile: Profile,
        scenario: Scenario | None = None,
        seed: int = 0,
        clock: ManualClock | RealClock | None = None,
        known_functions: frozenset[str] = frozenset(),
    ) -> None:
        if gpus < 1:
            raise ValueError(f"the simulator needs at least 1 GPU, got {gpus}")
        self.profile = profile
        self.seed = seed
        self.clock = clock or ManualClock()
        self.gpus = [SimGpu(profile, i, seed) for i in range(gpus)]
        self.lock = threading.RLock()
        self.release = threading.Event()  # set on uninstall: wakes every simulated hang
        self._seq = itertools.count()
        self.scenario = scenario
        self.known_functions = known_functions
        if scenario is not None:
            scenario.check_gpus(gpus)
            for fault in scenario.faults:
                self._schedule(fault)

    # ------------------------------------------------------------------ time
    def now(self) -> float:
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def sync(self, gpu: SimGpu) -> GpuState:
        """Bring one GPU's model to the current simulated time, applying due fault actions in order."""
        now = self.clock.now()
        state = gpu.state
        actions = gpu.actions
        while actions and actions[0].t <= now:
            action = heapq.heappop(actions)
            state.step(action.t - state.t)
            action.run()
        if now > state.t:
            state.step(now - state.t)
        return state

    def sync_all(self) -> None:
        for gpu in self.gpus:
            self.sync(gpu)

    # ------------------------------------------------------------------ faults
    def _at(self, gpu: SimGpu, t: float, run: Callable[[], None]) -> None:
        heapq.heappush(gpu.actions, _Action(t, next(self._seq), run))

    def _link(self, fault: Fault) -> int:
        link = fault.params["link"]
        if link >= self.profile.nvlinks:
            raise ScenarioError(
                f"{fault.where()}: link: expected an NVLink index below {self.profile.nvlinks} "
                f"(profile {self.profile.name} has {self.profile.nvlinks} NVLinks), got {link}"
            )
        return link

    def _schedule(self, fault: Fault) -> None:
        gpu = self.gpus[fault.gpu]
        s = gpu.state
        p = fault.params
        end = fault.at + (fault.duration or 0.0)
        kind = fault.kind
        if kind == "xid":
            self._at(gpu, fault.at, lambda: s.xid(p["code"]))
        elif kind == "fall_off_bus":
            self._at(gpu, fault.at, s.fall_off_bus)
        elif kind == "dbe":
            self._at(gpu, fault.at, lambda: s.dbe(p["count"]))
        elif kind == "row_remap_pending":
            self._at(gpu, fault.at, s.row_remap_pending)
        elif kind == "row_remap_failure":
            self._at(gpu, fault.at, s.row_remap_failure)
        elif kind == "thermal_throttle":
            bit = SW_THERMAL if p["reason"] == "sw" else HW_THERMAL | HW_SLOWDOWN
            rise = p["temperature_rise"]

            def heat(on: bool) -> None:
                s.cooling_penalty_c += rise if on else -rise
                gpu.force(bit, on)

            self._at(gpu, fault.at, lambda: heat(True))
            self._at(gpu, end, lambda: heat(False))
        elif kind == "power_brake":
            self._at(gpu, fault.at, lambda: gpu.force(HW_POWER_BRAKE | HW_SLOWDOWN, True))
            self._at(gpu, end, lambda: gpu.force(HW_POWER_BRAKE | HW_SLOWDOWN, False))
        elif kind == "sbe_rate":
            rate = p["per_minute"] / 60.0

            def sbe(on: bool) -> None:
                s.sbe_rate_s = max(0.0, s.sbe_rate_s + (rate if on else -rate))
                if on:
                    s.xid(92)

            self._at(gpu, fault.at, lambda: sbe(True))
            self._at(gpu, end, lambda: sbe(False))
        elif kind == "pcie_replay_burst":
            self._burst(gpu, fault, lambda r: setattr(s, "pcie_replay_rate", max(0.0, s.pcie_replay_rate + r)))
        elif kind == "nvlink_crc_burst":
            link = self._link(fault)

            def crc(r: float) -> None:
                rate = s.nvlink_crc_rate.get(link, 0.0) + r
                if rate > 1e-12:
                    s.nvlink_crc_rate[link] = rate
                else:
                    s.nvlink_crc_rate.pop(link, None)

            self._at(gpu, fault.at, lambda: s.nvlink_errors[link].__setitem__(1, s.nvlink_errors[link][1] + 1))
            self._burst(gpu, fault, crc)
        elif kind == "nvlink_down":
            link = self._link(fault)

            def down(on: bool) -> None:
                s.nvlink_up[link] = not on
                if on:
                    s.nvlink_errors[link][1] += 1
                    s.xid(74)

            self._at(gpu, fault.at, lambda: down(True))
            if fault.duration is not None:
                self._at(gpu, end, lambda: down(False))
        elif kind == "process":
            key = (p["pid"], p["type"])
            mib = p["used_memory_mib"]
            used = None if mib is None else mib * 1024 * 1024
            self._at(gpu, fault.at, lambda: gpu.processes.__setitem__(key, used))
            if fault.duration is not None:
                self._at(gpu, end, lambda: gpu.processes.pop(key, None))
        elif kind == "hang":
            fn = p["function"]
            if self.known_functions and fn not in self.known_functions:
                raise ScenarioError(
                    f"{fault.where()}: function: expected an NVML function the simulator provides, got {fn!r}"
                )
            self._at(gpu, fault.at, lambda: gpu.hangs.__setitem__(fn, [p["calls"], p["seconds"]]))
        else:  # pragma: no cover - faults.KINDS and this dispatcher are kept in step by tests
            raise ScenarioError(f"{fault.where()}: kind: no simulator action for {kind!r}")

    def _burst(self, gpu: SimGpu, fault: Fault, add_rate: Callable[[float], None]) -> None:
        count = fault.params["count"]
        duration = fault.duration or 0.0
        if duration <= 0:
            raise ScenarioError(f"{fault.where()}: duration: expected a duration > 0 for a {fault.kind}, got 0")
        rate = count / duration
        self._at(gpu, fault.at, lambda: add_rate(rate))
        self._at(gpu, fault.at + duration, lambda: add_rate(-rate))
