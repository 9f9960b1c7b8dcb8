"""GPU simulator at the pynvml function level (no GPU needed).

    handle = agent.sim.install(gpus=8, profile="h100-sxm", faults_path="default", seed=1, clock="manual")
    ...  # production code calls pynvml.nvml*(): it gets the simulated GPUs
    handle.advance(10)  # simulated seconds (clock="manual"); clock="real" follows wall time
    handle.uninstall()

Layers: ``model.py`` (per-GPU value model, ``step(dt)``), ``simulator.py`` (clock + fault timeline),
``nvml_api.py`` (the pynvml facade), ``faults.py`` (scenario YAML), ``profiles.py``.
"""

from __future__ import annotations

import threading
from pathlib import Path

from agent.sim.faults import Scenario, ScenarioError, load_scenario, parse_scenario
from agent.sim.profiles import PROFILES, Profile, get_profile
from agent.sim.simulator import ManualClock, RealClock, Simulator

__all__ = [
    "PROFILES",
    "Profile",
    "Scenario",
    "ScenarioError",
    "Simulator",
    "SimulatorHandle",
    "install",
    "installed",
    "load_scenario",
    "parse_scenario",
]

_install_lock = threading.Lock()
_current: SimulatorHandle | None = None


class SimulatorHandle:
    """What ``install`` returns: the running simulation and control over its clock."""

    def __init__(self, simulator: Simulator, originals: dict[str, object]) -> None:
        self.simulator = simulator
        self._originals = originals

    @property
    def now(self) -> float:
        return self.simulator.now()

    def advance(self, seconds: float) -> None:
        self.simulator.advance(seconds)

    def gpu(self, index: int):  # -> SimGpu
        return self.simulator.gpus[index]

    def state(self, index: int):  # -> GpuState, synced to now
        with self.simulator.lock:
            return self.simulator.sync(self.simulator.gpus[index])

    @property
    def nvml_init_calls(self) -> int:
        from agent.sim import nvml_api

        return nvml_api.init_calls()

    @property
    def installed(self) -> bool:
        return _current is self

    def uninstall(self) -> None:
        """Restore the real pynvml functions and wake any simulated hung call."""
        global _current
        import pynvml

        from agent.sim import nvml_api

        with _install_lock:
            if _current is not self:
                return
            self.simulator.release.set()
            for name, original in self._originals.items():
                if original is None:
                    delattr(pynvml, name)
                else:
                    setattr(pynvml, name, original)
            nvml_api.attach(None)
            _current = None

    def __enter__(self) -> SimulatorHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.uninstall()


def installed() -> SimulatorHandle | None:
    return _current


def install(
    gpus: int,
    profile: str | Profile = "h100-sxm",
    faults_path: str | Path | Scenario | None = None,
    seed: int = 0,
    clock: str = "real",
) -> SimulatorHandle:
    """Replace the pynvml functions fleetpulse uses with simulated ones; one simulation at a time."""
    global _current
    import pynvml

    from agent.sim import nvml_api

    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    scenario = faults_path if faults_path is None or isinstance(faults_path, Scenario) else load_scenario(faults_path)
    if clock not in ("real", "manual"):
        raise ValueError(f"clock must be 'real' or 'manual', got {clock!r}")
    simulator = Simulator(
        gpus,
        prof,
        scenario,
        seed,
        RealClock() if clock == "real" else ManualClock(),
        known_functions=frozenset(nvml_api.FUNCTIONS),
    )
    with _install_lock:
        if _current is not None:
            raise RuntimeError("a GPU simulator is already installed in this process; uninstall it first")
        originals = {name: getattr(pynvml, name, None) for name in nvml_api.FUNCTIONS}
        nvml_api.attach(simulator)
        for name, fn in nvml_api.FUNCTIONS.items():
            setattr(pynvml, name, fn)
        _current = SimulatorHandle(simulator, originals)
        return _current
