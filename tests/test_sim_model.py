"""The simulated GPU's value model: believable, deterministic, cheap to step."""

from __future__ import annotations

import math

from agent.sim.model import HW_POWER_BRAKE, SW_THERMAL, GpuState
from agent.sim.profiles import PROFILES
from agent.sim.simulator import ManualClock, Simulator

H100 = PROFILES["h100-sxm"]


def series(state: GpuState, steps: int, dt: float = 1.0) -> list[tuple[float, float, float, float]]:
    out = []
    for _ in range(steps):
        state.step(dt)
        out.append((state.util, state.power_w, state.temp_c, state.energy_mj))
    return out


def corr(a: list[float], b: list[float]) -> float:
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
    return cov / math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))


def test_deterministic_for_a_seed() -> None:
    assert series(GpuState(H100, 2, 11), 200) == series(GpuState(H100, 2, 11), 200)
    assert series(GpuState(H100, 2, 11), 50) != series(GpuState(H100, 2, 12), 50)
    assert series(GpuState(H100, 2, 11), 50) != series(GpuState(H100, 3, 11), 50)


def test_power_follows_utilization_and_temperature_follows_power_with_lag() -> None:
    # Find a GPU that changes phase (busy <-> idle) within two simulated hours.
    for index in range(32):
        rows = series(GpuState(H100, index, 1), 7200)
        utils = [r[0] for r in rows]
        if max(utils) - min(utils) > 0.5:
            break
    else:  # pragma: no cover
        raise AssertionError("no GPU changed workload phase in two hours")
    power = [r[1] for r in rows]
    temps = [r[2] for r in rows]
    assert corr(utils, power) > 0.9
    # Temperature lags power: it correlates better with power from ~a time constant ago.
    lag = 45
    assert corr(power[:-lag], temps[lag:]) > corr(power, temps)
    assert all(0.0 <= u <= 1.0 for u in utils)
    assert all(p <= H100.tdp_w * 1.02 for p in power)


def test_energy_integrates_power_and_counters_only_grow() -> None:
    state = GpuState(H100, 0, 4)
    e0 = state.energy_mj
    integral = 0.0
    previous = (state.pcie_tx, state.nvlink_tx_kib, state.energy_mj, state.gpm_sm)
    for _ in range(600):
        state.step(1.0)
        integral += state.power_w * 1.0
        current = (state.pcie_tx, state.nvlink_tx_kib, state.energy_mj, state.gpm_sm)
        assert all(c >= p for c, p in zip(current, previous, strict=True))
        previous = current
    assert math.isclose((state.energy_mj - e0) / 1000.0, integral, rel_tol=1e-9)


def test_clocks_drop_while_a_throttle_reason_is_set() -> None:
    state = GpuState(H100, 0, 1)
    state.busy, state.util_level, state.util, state.phase_left = True, 0.9, 0.9, 1e9
    state.step(1.0)
    free = state.sm_mhz
    state.force_reasons(SW_THERMAL, True)
    state.step(1.0)
    assert state.sm_mhz < free * 0.8 and state.reasons & SW_THERMAL
    state.force_reasons(HW_POWER_BRAKE, True)
    state.step(1.0)
    assert state.sm_mhz <= H100.max_sm_mhz * 0.3
    state.force_reasons(SW_THERMAL | HW_POWER_BRAKE, False)
    state.step(1.0)
    assert state.sm_mhz > free * 0.85


def test_large_steps_stay_stable() -> None:
    state = GpuState(H100, 5, 9)
    for _ in range(48):
        state.step(3600.0)
        assert 0.0 <= state.util <= 1.0
        assert H100.ambient_c - 5 < state.temp_c < 120
        assert state.power_w <= H100.tdp_w * 1.02


def test_simulator_applies_faults_at_their_time() -> None:
    from agent.sim.faults import parse_scenario

    scenario = parse_scenario("faults:\n  - {at: 100, gpu: 1, kind: power_brake, duration: 50}\n")
    sim = Simulator(2, H100, scenario, seed=1, clock=ManualClock())
    sim.advance(99)
    sim.sync_all()
    assert not sim.gpus[1].state.reasons & HW_POWER_BRAKE
    sim.advance(2)
    sim.sync_all()
    assert sim.gpus[1].state.reasons & HW_POWER_BRAKE
    assert not sim.gpus[0].state.reasons & HW_POWER_BRAKE
    sim.advance(50)
    sim.sync_all()
    assert not sim.gpus[1].state.reasons & HW_POWER_BRAKE
    assert sim.gpus[1].state.throttle_ns[271] == 50 * 10**9
