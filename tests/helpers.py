"""Small helpers shared by several test modules."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path


def wait_for(condition: Callable[[], object], timeout: float = 15.0, what: str = "condition", step: float = 0.1):
    """Poll ``condition`` every ``step`` s until it is truthy (returned) or ``timeout`` s pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def make_nvml_source(
    tmp_path: Path,
    profile: str = "h100-sxm",
    gpus: int = 8,
    faults: str | None = None,
    seed: int = 1,
    timeout_s: float = 2.0,
):  # -> agent.sources.nvml.NvmlSource
    """The production NVML source on ``gpus`` simulated GPUs (manual clock), with an optional fault scenario."""
    from agent.config import AgentConfig
    from agent.sources.nvml import NvmlSource

    config = AgentConfig(sources=["nvml"])
    config.simulate.gpus = gpus
    config.simulate.profile = profile
    config.simulate.seed = seed
    config.nvml.call_timeout_s = timeout_s
    if faults is not None:
        path = tmp_path / "scenario.yaml"
        path.write_text(faults)
        config.simulate.faults = str(path)
    return NvmlSource.create(config, sim_clock="manual")


def skip_if_real_nvml() -> None:
    """Skip the calling test on a machine whose NVML initialises (it tests the no-NVML path)."""
    import pynvml
    import pytest

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return
    pynvml.nvmlShutdown()  # pragma: no cover - only on a machine with a GPU
    pytest.skip("this machine has NVML")  # pragma: no cover


class FlakyStore:
    """A real Store whose inserts fail with StoreUnavailable (a connection error) while ``down`` is set."""

    def __init__(self, store) -> None:
        self.store, self.down, self.failures = store, True, 0

    def insert(self, batch, dedup_token: str) -> None:
        from collector.store.errors import StoreUnavailable

        if self.down:
            self.failures += 1
            raise StoreUnavailable("connection refused (simulated outage)")
        self.store.insert(batch, dedup_token)

    def ping(self) -> bool:
        return not self.down

    def __getattr__(self, name):
        return getattr(self.store, name)


def snapshot_cycle(source, tick: int, tiers: tuple[str, ...] = ("fast", "slow")):  # -> agent.snapshot.Snapshot
    """One collection cycle of an agent source (``collect(builder, tier)`` per tier) as a Snapshot."""
    from agent.snapshot import SnapshotBuilder

    builder = SnapshotBuilder({}, tick)
    for tier in tiers:
        source.collect(builder, tier)
    return builder.build()


def run_agent_once(*flags: str, timeout: float = 120) -> tuple[int, list[dict], str]:
    """``fleetpulse agent --once --format json FLAGS`` in a subprocess: (exit code, JSON records, stderr)."""
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "agent", "agent", "--once", "--format", "json", *flags],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines() if line.strip()], proc.stderr


def count_calls(monkeypatch, function_name: str) -> list:
    """Wrap ``pynvml.<function_name>`` (the simulator's, once installed) so each call's first argument is
    recorded in the returned list."""
    import pynvml

    calls: list = []
    real = getattr(pynvml, function_name)

    @functools.wraps(real)
    def counting(handle, *args, **kwargs):
        calls.append(handle)
        return real(handle, *args, **kwargs)

    monkeypatch.setattr(pynvml, function_name, counting)
    return calls
