"""The simulated GPU's value model: one plain state object per GPU, advanced with ``step(dt)``.

Kept free of pynvml so it can be stepped fast and in bulk (``fleetpulse simulate-fleet`` reuses it
to write a fleet's history). ``step`` is exact for any ``dt`` (exponential relaxation, random walks
scaled by sqrt(dt), Poisson counts), so a fleet can be stepped at its sampling interval directly.

Dynamics: jobs come and go (busy/idle phases); utilization is a mean-reverting random walk around
the phase's level; power follows utilization (capped by the limit, cut while clocks are held
back); temperature relaxes towards ambient + power x thermal resistance with a lag; clocks drop
while a throttle reason is set; energy integrates power; every counter only grows.
"""

from __future__ import annotations

import math
import random
import zlib

from agent.sim.profiles import Profile

# Clock-event reason bits (DESIGN §5).
GPU_IDLE = 0x1
SW_POWER_CAP = 0x4
HW_SLOWDOWN = 0x8
SW_THERMAL = 0x20
HW_THERMAL = 0x40
HW_POWER_BRAKE = 0x80

# Throttle-time field ids (ns) and the reason bit each accumulates under.
THROTTLE_TIME_FIELDS: dict[int, int] = {
    269: SW_THERMAL,
    270: HW_THERMAL,
    271: HW_POWER_BRAKE,
    74: SW_POWER_CAP,
    76: 0x10,  # sync boost: never set by this model, counter stays flat
    77: 0,  # board limit
    79: 0,  # reliability
}

# NVLink error counter indices (NVML_NVLINK_ERROR_DL_*).
NVLINK_REPLAY, NVLINK_RECOVERY, NVLINK_CRC_FLIT, NVLINK_CRC_DATA, NVLINK_ECC_DATA = range(5)


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw; cheap for the tiny means background error rates produce."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


class GpuState:
    """All of one GPU's readings; NVML-facing units are applied by the facade, not here."""

    def __init__(self, profile: Profile, index: int, seed: int) -> None:
        self.profile = profile
        self.index = index
        self.rng = rng = random.Random(zlib.crc32(f"{seed}:{index}:{profile.name}".encode()))
        self.t = 0.0
        # Workload: busy/idle phases with exponential lengths; most of a training fleet is busy.
        self.busy = rng.random() < 0.8
        self.phase_left = rng.expovariate(1 / (1800.0 if self.busy else 300.0))
        self.util_level = self._level()
        self.util = self.util_level
        self.tensor_share = rng.uniform(0.4, 0.8)
        self.mem_fraction = rng.uniform(0.55, 0.95) if self.busy else 0.0
        self.mem_util = self.util * 0.6
        self.enc_util = 0.0
        self.dec_util = 0.0
        # Power, thermal, clocks.
        self.power_limit_w = profile.tdp_w
        self.ambient_offset_c = rng.uniform(-3.0, 3.0)
        self.cooling_penalty_c = 0.0
        self.power_w = self._power_demand()
        self.temp_c = self._temp_target()
        self.mem_temp_c = self.temp_c + 4.0
        self.reasons = 0
        self.forced_reasons = 0
        self.clock_factor = 1.0
        self.sm_mhz = profile.max_sm_mhz if self.busy else profile.idle_sm_mhz
        self.mem_mhz = profile.max_mem_mhz
        self.pstate = 0 if self.busy else 8
        self.fan = 0.35
        # Counters since driver load.
        self.energy_mj = rng.uniform(1e8, 5e9)
        self.throttle_ns = dict.fromkeys(THROTTLE_TIME_FIELDS, 0)
        self.throttle_ns[74] = int(rng.uniform(0, 3e12))
        self.pcie_tx = rng.uniform(1e12, 5e13)
        self.pcie_rx = rng.uniform(1e12, 5e13)
        self.pcie_replays = 0
        self.nvlink_tx_kib = rng.uniform(1e9, 5e10)
        self.nvlink_rx_kib = rng.uniform(1e9, 5e10)
        self.nvlink_share = [rng.uniform(0.9, 1.1) for _ in range(profile.nvlinks)]
        self.nvlink_up = [True] * profile.nvlinks
        self.nvlink_errors = [[0] * 5 for _ in range(profile.nvlinks)]
        # ECC, retirement, remapping. Aggregate counts persist across driver loads: some history.
        self.sbe_vol = 0
        self.dbe_vol = 0
        self.sbe_agg = rng.choice((0, 0, 0, 0, 1, 3, 12))
        self.dbe_agg = 0
        self.sbe_rate_s = rng.choice((0.0, 0.0, 0.0, 2e-5))
        self.retired_sbe = 0
        self.retired_dbe = 0
        self.retired_pending = 0
        self.remap_cor = rng.choice((0, 0, 0, 1, 2))
        self.remap_unc = 0
        self.remap_pending = 0
        self.remap_failure = 0
        self.recovery_action = 0
        # GPM activity integrals (activity x seconds) and the time they cover.
        self.gpm_time = 0.0
        self.gpm_sm = 0.0
        self.gpm_occ = 0.0
        self.gpm_tensor = 0.0
        self.gpm_dram = 0.0
        # Fault-driven rates (events per second) and their end times.
        self.pcie_replay_rate = 0.0
        self.nvlink_crc_rate: dict[int, float] = {}
        self.lost = False
        self.xid_log: list[tuple[float, int]] = []
        self.mig_used_fraction = [rng.uniform(0.2, 0.9) for _ in range(profile.mig_instances)]
        self._update_reasons()

    # ------------------------------------------------------------------ dynamics
    def _level(self) -> float:
        return self.rng.uniform(0.82, 0.99) if self.busy else self.rng.uniform(0.0, 0.03)

    def _power_demand(self) -> float:
        p = self.profile
        return p.idle_w + (p.tdp_w * 1.03 - p.idle_w) * self.util**0.9

    def _temp_target(self) -> float:
        p = self.profile
        return p.ambient_c + self.ambient_offset_c + self.cooling_penalty_c + self.power_w * p.thermal_c_per_w

    def _update_reasons(self) -> None:
        r = self.forced_reasons
        if self.util < 0.05:
            r |= GPU_IDLE
        if self._power_demand() > self.power_limit_w:
            r |= SW_POWER_CAP
        if self.temp_c >= self.profile.slowdown_c:
            r |= SW_THERMAL
        self.reasons = r
        factor = 1.0
        if r & SW_POWER_CAP:
            factor = min(factor, 0.92)
        if r & SW_THERMAL:
            factor = min(factor, 0.72)
        if r & HW_THERMAL:
            factor = min(factor, 0.5)
        if r & HW_POWER_BRAKE:
            factor = min(factor, 0.3)
        self.clock_factor = factor

    def step(self, dt: float) -> None:
        """Advance this GPU by ``dt`` seconds of simulated time."""
        if dt <= 0:
            return
        rng = self.rng
        p = self.profile
        self.t += dt
        if self.lost:
            return
        self.phase_left -= dt
        if self.phase_left <= 0:
            self.busy = not self.busy
            self.phase_left = rng.expovariate(1 / (1800.0 if self.busy else 300.0))
            self.util_level = self._level()
            self.tensor_share = rng.uniform(0.4, 0.8)
            self.mem_fraction = rng.uniform(0.55, 0.95) if self.busy else 0.0
        # Utilization: Ornstein-Uhlenbeck walk around the phase level (30 s memory).
        a = math.exp(-dt / 30.0)
        noise = 0.05 * math.sqrt(1 - a * a) * rng.gauss(0.0, 1.0)
        u = self.util_level + (self.util - self.util_level) * a + noise
        self.util = 0.0 if u < 0 else 1.0 if u > 1 else u
        self.mem_util = min(1.0, self.util * 0.6 + 0.02 * rng.random())
        # Clocks, power and heat. Reasons use the previous temperature: the thermal lag.
        self._update_reasons()
        f = self.clock_factor
        demand = self._power_demand()
        power = min(demand * (0.35 + 0.65 * f), self.power_limit_w) + rng.uniform(-0.01, 0.01) * p.tdp_w
        self.power_w = max(p.idle_w * 0.9, power)
        b = math.exp(-dt / p.thermal_tau_s)
        self.temp_c = self._temp_target() + (self.temp_c - self._temp_target()) * b
        self.mem_temp_c = self.temp_c + 4.0 + 2.0 * self.mem_util
        busy_clock = self.util >= 0.05 or self.forced_reasons
        self.sm_mhz = round((p.max_sm_mhz if busy_clock else p.idle_sm_mhz) * (f if busy_clock else 1.0))
        self.pstate = 0 if busy_clock else 8
        # Counters.
        self.energy_mj += self.power_w * dt * 1000.0
        reasons = self.reasons
        ns = dt * 1e9
        for fid, bit in THROTTLE_TIME_FIELDS.items():
            if bit and reasons & bit:
                self.throttle_ns[fid] += int(ns)
        self.pcie_tx += p.pcie_busy_bytes_s * (0.05 + self.util) * dt * rng.uniform(0.8, 1.2)
        self.pcie_rx += p.pcie_busy_bytes_s * (0.05 + self.util) * dt * rng.uniform(0.8, 1.2)
        if p.nvlinks:
            kib = p.nvlink_busy_bytes_s * self.util * dt / 1024.0
            self.nvlink_tx_kib += kib * rng.uniform(0.9, 1.1)
            self.nvlink_rx_kib += kib * rng.uniform(0.9, 1.1)
        if self.pcie_replay_rate:
            self.pcie_replays += poisson(rng, self.pcie_replay_rate * dt)
        for link, rate in self.nvlink_crc_rate.items():
            n = poisson(rng, rate * dt)
            if n:
                errs = self.nvlink_errors[link]
                errs[NVLINK_CRC_FLIT] += n
                errs[NVLINK_CRC_DATA] += n // 4
                errs[NVLINK_REPLAY] += n // 2
        if self.sbe_rate_s:
            n = poisson(rng, self.sbe_rate_s * dt)
            self.sbe_vol += n
            self.sbe_agg += n
        # GPM integrals.
        self.gpm_time += dt
        sm = self.util * 0.93
        self.gpm_sm += sm * dt
        self.gpm_occ += sm * 0.45 * dt
        self.gpm_tensor += sm * self.tensor_share * dt
        self.gpm_dram += self.mem_util * 0.8 * dt

    # ------------------------------------------------------------------ faults
    def xid(self, code: int) -> None:
        self.xid_log.append((self.t, code))
        if code == 79:
            self.fall_off_bus()

    def fall_off_bus(self) -> None:
        if not self.xid_log or self.xid_log[-1][1] != 79:
            self.xid_log.append((self.t, 79))
        self.lost = True
        self.recovery_action = 2  # node reboot

    def force_reasons(self, bits: int, on: bool) -> None:
        self.forced_reasons = self.forced_reasons | bits if on else self.forced_reasons & ~bits
        self._update_reasons()

    def dbe(self, count: int) -> None:
        self.dbe_vol += count
        self.dbe_agg += count
        self.xid(48)
        if self.profile.row_remapping:
            self.remap_unc += count
            self.remap_pending = 1
        else:
            self.retired_dbe += count
            self.retired_pending = 1
        self.xid(63)
        self.recovery_action = max(self.recovery_action, 1)

    def row_remap_pending(self) -> None:
        if self.profile.row_remapping:
            self.remap_cor += 1
            self.remap_pending = 1
        else:
            self.retired_sbe += 1
            self.retired_pending = 1
        self.xid(63)
        self.recovery_action = max(self.recovery_action, 1)

    def row_remap_failure(self) -> None:
        if self.profile.row_remapping:
            self.remap_failure = 1
        self.xid(64)
        self.recovery_action = max(self.recovery_action, 1)
