"""NVML start-up: a hung nvmlInit (some drivers hang there) and a machine without NVML."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

from agent.config import AgentConfig
from agent.sim import installed
from agent.snapshot import SnapshotBuilder
from agent.sources.nvml import NvmlSource
from tests.conftest import REPO
from tests.helpers import skip_if_real_nvml

HANG_INIT = "faults:\n  - {at: 0, gpu: 0, kind: hang, function: nvmlInit, seconds: 60}\n"
HANG_COUNT = "faults:\n  - {at: 0, gpu: 1, kind: hang, function: nvmlDeviceGetCount, seconds: 60}\n"
UNAVAILABLE = "NVML not available: "
DISABLED = "; GPU metrics disabled"


def hung_source(tmp_path: Path, scenario: str, init_timeout_s: float = 0.3) -> NvmlSource:
    path = tmp_path / "hang.yaml"
    path.write_text(scenario)
    config = AgentConfig(sources=["nvml"])
    config.simulate.gpus = 2
    config.simulate.faults = str(path)
    config.nvml.init_timeout_s = init_timeout_s
    return NvmlSource.create(config, sim_clock="manual")


def init_worker() -> threading.Thread | None:
    return next((t for t in threading.enumerate() if t.name == "nvml-init"), None)


def test_hung_nvml_init_gives_up_after_the_timeout(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="agent.sources.nvml"):
        started = time.monotonic()
        src = hung_source(tmp_path, HANG_INIT)
        waited = time.monotonic() - started
    try:
        assert 0.25 <= waited < 1.5  # gave up after ~0.3 s, not after the 60 s hang
        lines = [r.getMessage() for r in caplog.records]
        assert lines == [
            f"{UNAVAILABLE}nvmlInit did not return within 0.3 s (config key nvml.init_timeout_s); abandoned{DISABLED}"
        ]
        assert caplog.records[0].levelno == logging.WARNING
        assert not src.initialized and src.gpus == []
        # The abandoned call is still blocked, on a daemon thread: it cannot hold up process exit.
        worker = init_worker()
        assert worker is not None and worker.is_alive() and worker.daemon
        assert src.simulator.nvml_init_calls == 0  # nvmlInit never completed
        # No GPU metrics; the hang is counted once, in the first cycle; cycles do not wait on it.
        started = time.monotonic()
        first, second = SnapshotBuilder({}, 0), SnapshotBuilder({}, 1)
        for builder in (first, second):
            for tier in ("fast", "slow"):
                src.collect(builder, tier)
        assert time.monotonic() - started < 0.1
        one, two = first.build(), second.build()
        assert one.points == [] and two.points == []
        assert one.source_errors == {("nvml", "timeout:nvmlInit"): 1}
        assert two.source_errors == {}
        assert src.timeouts == {"nvmlInit": 1}
        assert src.gpu_processes() == {}
        assert src.gpu_by_pci("0000:18:00.0") is None
    finally:
        started = time.monotonic()
        src.close()
        assert time.monotonic() - started < 1.0  # close does not wait for the hung call either
    assert installed() is None


def test_hung_gpu_discovery_names_the_same_key(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="agent.sources.nvml"):
        src = hung_source(tmp_path, HANG_COUNT, init_timeout_s=0.2)
    try:
        lines = [r.getMessage() for r in caplog.records]
        assert lines == [
            f"{UNAVAILABLE}GPU discovery failed: nvmlDeviceGetCount did not return within 0.2 s "
            f"(config key nvml.init_timeout_s); abandoned{DISABLED}"
        ]
        builder = SnapshotBuilder({}, 0)
        src.collect(builder, "fast")
        snap = builder.build()
        assert snap.points == [] and snap.source_errors == {("nvml", "timeout:nvmlDeviceGetCount"): 1}
    finally:
        src.close()


def run_once(*flags: str, timeout: float = 120) -> tuple[int, list[dict], str, float]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "agent", "--once", *flags],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return proc.returncode, records, proc.stderr, time.monotonic() - started


def test_once_with_hung_nvml_init_reports_other_sources_and_the_timeout(tmp_path: Path) -> None:
    (tmp_path / "hang.yaml").write_text(HANG_INIT)
    (tmp_path / "agent.yaml").write_text("nvml: {init_timeout_s: 0.5}\nsources: [nvml, host]\n")
    code, records, stderr, took = run_once(
        "--config", str(tmp_path / "agent.yaml"), "--simulate", "2", "--faults", str(tmp_path / "hang.yaml")
    )
    assert code == 0, stderr
    assert took < 30  # the 60 s hang held up neither the cycle nor the exit
    lines = [line for line in stderr.splitlines() if UNAVAILABLE in line]
    assert len(lines) == 1 and "nvmlInit did not return within 0.5 s (config key nvml.init_timeout_s)" in lines[0]
    points = [r for r in records if "name" in r]
    names = {r["name"] for r in points}
    assert not any(n.startswith("hw.gpu.") for n in names)
    assert any(n.startswith("system.") for n in names)  # the host source still reports
    (timeout,) = [r for r in points if r["name"] == "fleetpulse.agent.nvml.timeouts"]
    assert timeout["attributes"] == {"nvml.function": "nvmlInit"} and timeout["value"] == 1.0
    assert "Traceback" not in stderr


def test_default_once_without_nvml_logs_one_line_and_prints_the_other_sources() -> None:
    skip_if_real_nvml()
    code, records, stderr, _ = run_once()  # the defaults: no --simulate, every source
    assert code == 0, stderr
    lines = [line for line in stderr.splitlines() if "NVML" in line]
    assert len(lines) == 1, stderr
    message = lines[0].split(" agent.sources.nvml: ", 1)[1]
    assert message.startswith(UNAVAILABLE) and message.endswith(DISABLED)
    assert "NVMLError_LibraryNotFound" in message or "NVMLError_DriverNotLoaded" in message
    assert set(records[0]) == {"resource"}
    names = {r["name"] for r in records[1:] if "name" in r}
    assert not any(n.startswith("hw.gpu.") for n in names)
    # The host source's points are printed (this machine's /proc and /sys).
    assert {"system.cpu.time", "system.memory.usage", "system.uptime"} <= names
    assert "Traceback" not in stderr
