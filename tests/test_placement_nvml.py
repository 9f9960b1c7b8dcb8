"""Placement from NVML running processes: the agent daemon, simulated GPUs, a fixture /proc tree.

The whole path: ``agent/sim/scenarios/placement.yaml`` declares processes on simulated GPUs →
``nvmlDeviceGet{Compute,Graphics}RunningProcesses`` (NvmlSource.gpu_processes, per-GPU watchdog) →
``<roots.procfs>/<pid>/cgroup`` and ``environ`` (tests/fixtures/procfs-placement) → ``placement``
log records over OTLP to a receiver.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.placement import PlacementTracker, nvml_gpu_processes
from agent.sim import installed
from agent.sim.profiles import get_profile
from agent.sim.simulator import SimGpu
from agent.snapshot import SnapshotBuilder
from agent.sources.nvml import NvmlSource
from tests.conftest import REPO
from tests.helpers import wait_for
from tests.otlp_receiver import OtlpReceiver

PROCFS = REPO / "tests" / "fixtures" / "procfs-placement"
SEED = 7
POD_A = "5f0c8e2a-3b71-4c1d-9e4f-2a6b8c0d1e3f"
CONTAINER_A = "3f9d2c7b1e0a4f6d8c5b2a1907e6d4c3b2a19f8e7d6c5b4a3928170f6e5d4c3b"
POD_B = "a1b2c3d4-0000-4111-8222-93a4b5c6d7e8"
CONTAINER_B = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"


def uuid(index: int) -> str:
    """The simulated GPU's UUID, derived the way the simulator derives it (seed, index, profile)."""
    return SimGpu(get_profile("h100-sxm"), index, SEED).uuid


def expected_starts() -> list[dict[str, str]]:
    """What the fixture tree and the scenario must produce: one record per (GPU, owner)."""
    procfs = {"placement.source": "procfs", "placement.state": "start"}
    pod_a = {"k8s.pod.uid": POD_A, "container.id": CONTAINER_A}
    return sorted(
        (
            # pid 4101 on GPUs 0 and 1, pid 4102 (same pod and container) on GPU 1: one record per GPU;
            # pid 7000 on GPU 0 has no /proc entry (exited): nothing.
            {"hw.id": uuid(0), "gpu.index": "0", **pod_a, **procfs},
            {"hw.id": uuid(1), "gpu.index": "1", **pod_a, **procfs},
            # SLURM job from /proc/5200/environ.
            {"hw.id": uuid(2), "gpu.index": "2", "slurm.job.id": "7781", **procfs},
            # A graphics process in a burstable pod (cgroupfs driver) with a SLURM job id; pid 6400 on
            # the same GPU is a login-session process: no owner, no record.
            {
                "hw.id": uuid(3),
                "gpu.index": "3",
                "k8s.pod.uid": POD_B,
                "container.id": CONTAINER_B,
                "slurm.job.id": "9001",
                **procfs,
            },
        ),
        key=lambda r: r["gpu.index"],
    )


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


def test_daemon_placement_from_nvml_processes_and_fixture_procfs(tmp_path: Path, receiver: OtlpReceiver) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(
        "interval_s: 0.2\nsources: [nvml]\nprometheus_listen: null\n"
        f"otlp: {{endpoint: '{receiver.grpc_endpoint}', protocol: grpc, timeout_s: 2}}\n"
        f"roots: {{procfs: '{PROCFS}'}}\n"
        f"placement: {{interval_s: 0.2, kubelet_socket: '{tmp_path / 'no-kubelet.sock'}'}}\n"
    )
    log = tmp_path / "agent.log"
    flags = ["--simulate", "4:h100-sxm", "--faults", "placement", "--seed", str(SEED)]
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "agent", "--config", str(config), *flags],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            cwd=REPO,
        )
        try:

            def placements() -> list[dict]:
                assert proc.poll() is None, log.read_text()
                return placements_of(receiver)

            wait_for(lambda: len(placements()) >= 4, 30, "four placement records")
            time.sleep(0.6)  # three more polls: nothing changed, so nothing more is sent
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    records = placements_of(receiver)
    got = [
        {k: v for k, v in r["attributes"].items() if k not in ("event.name", "event.id", "placement.start")}
        for r in records
    ]
    assert sorted(got, key=lambda r: r["gpu.index"]) == expected_starts()  # exactly these, each once
    starts = {int(r["attributes"]["placement.start"]) for r in records}
    assert len(starts) == 1 and abs(starts.pop() - time.time_ns()) < 120e9  # one poll, unix ns
    # The GPUs are the simulated node's (their points carry the same UUIDs).
    point_gpus = {a["hw.id"] for n, a, _, _ in receiver.points() if n == "hw.gpu.power.usage"}
    assert point_gpus == {uuid(i) for i in range(4)}
    assert "Traceback" not in log.read_text()


def placements_of(receiver: OtlpReceiver) -> list[dict]:
    return [r for r in receiver.log_records() if r["attributes"].get("event.name") == "placement"]


@pytest.fixture
def source() -> Iterator[NvmlSource]:
    config = AgentConfig(sources=["nvml"])
    config.simulate.gpus = 4
    config.simulate.faults = "placement"
    config.simulate.seed = SEED
    src = NvmlSource.create(config, sim_clock="manual")
    yield src
    src.close()
    assert installed() is None


def test_tracker_in_process_ends_the_slurm_job_when_its_process_exits(source: NvmlSource) -> None:
    """Same path without the daemon, on the simulated clock: the SLURM job's process lives 30 min."""
    tracker = PlacementTracker(str(PROCFS), "", nvml_gpu_processes(source))
    first = SnapshotBuilder({}, 1_000)
    assert tracker.poll(first) == 4
    records = sorted(
        ({k: v for k, v in e.attributes if k != "placement.start"} for e in first.build().events),
        key=lambda r: r["gpu.index"],
    )
    assert records == expected_starts()
    source.simulator.advance(29 * 60)
    assert tracker.poll(SnapshotBuilder({}, 2_000)) == 0
    source.simulator.advance(2 * 60)
    later = SnapshotBuilder({}, 3_000)
    assert tracker.poll(later) == 1
    (end,) = later.build().events
    assert dict(end.attributes) == {
        "hw.id": uuid(2),
        "gpu.index": "2",
        "slurm.job.id": "7781",
        "placement.source": "procfs",
        "placement.state": "end",
        "placement.start": "1000",
        "placement.end": "3000",
    }


def test_procfs_root_is_honoured(source: NvmlSource, tmp_path: Path) -> None:
    """An empty procfs root: NVML still lists processes, but nobody owns them, so no records."""
    tracker = PlacementTracker(str(tmp_path), "", nvml_gpu_processes(source))
    assert tracker.poll(SnapshotBuilder({}, 1)) == 0
