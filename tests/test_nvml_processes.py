"""NvmlSource.gpu_processes(): running processes per GPU through the simulator's pynvml functions."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pynvml
import pytest

from agent.placement import nvml_gpu_processes
from agent.sim import PROFILES, installed
from agent.snapshot import SnapshotBuilder
from agent.sources.nvml import GpuProcess, GpuProcesses, NvmlSource
from tests.helpers import count_calls, make_nvml_source

MIB = 1024 * 1024


def make(tmp_path: Path, scenario: str, gpus: int = 2, profile: str = "h100-sxm", timeout_s: float = 2.0) -> NvmlSource:
    return make_nvml_source(tmp_path, profile=profile, gpus=gpus, faults=scenario, seed=0, timeout_s=timeout_s)


@pytest.fixture
def sources() -> Iterator[list[NvmlSource]]:
    made: list[NvmlSource] = []
    yield made
    for s in made:
        s.close()
    assert installed() is None, "a test left the simulator installed"


def cycle(src: NvmlSource, tiers: tuple[str, ...] = ("fast", "slow")):
    builder = SnapshotBuilder({}, 0)
    for tier in tiers:
        src.collect(builder, tier)
    return builder.build()


TWO_GPUS = """faults:
  - {at: 0, gpu: 0, kind: process, pid: 300, used_memory_mib: 1024}
  - {at: 0, gpu: 0, kind: process, pid: 100, type: graphics, used_memory_mib: 64}
  - {at: 0, gpu: 0, kind: process, pid: 100, used_memory_mib: 2048}
  - {at: 0, gpu: 1, kind: process, pid: 200}
  - {at: 60, gpu: 1, kind: process, pid: 201, used_memory_mib: 10, duration: 30}
"""


def test_simulated_functions_return_pynvml_process_objects(tmp_path: Path, sources: list) -> None:
    src = make(tmp_path, TWO_GPUS)
    sources.append(src)
    handle = src.gpus[0].handle
    compute = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
    graphics = pynvml.nvmlDeviceGetGraphicsRunningProcesses(handle)
    # pynvml hands back nvmlFriendlyObject built from c_nvmlProcessInfo_t: the struct's fields, no more.
    assert [type(p) for p in compute] == [pynvml.nvmlFriendlyObject] * 2
    assert set(vars(compute[0])) == {name for name, _ in pynvml.c_nvmlProcessInfo_t._fields_}
    assert [(p.pid, p.usedGpuMemory) for p in compute] == [(100, 2048 * MIB), (300, 1024 * MIB)]
    assert [(p.pid, p.usedGpuMemory) for p in graphics] == [(100, 64 * MIB)]
    assert compute[0].gpuInstanceId == 0xFFFFFFFF  # not a MIG instance
    (unreported,) = pynvml.nvmlDeviceGetComputeRunningProcesses_v3(src.gpus[1].handle)
    assert unreported.pid == 200 and unreported.usedGpuMemory is None  # NVML_VALUE_NOT_AVAILABLE → None


def test_gpu_processes_compute_and_graphics_with_memory(tmp_path: Path, sources: list) -> None:
    src = make(tmp_path, TWO_GPUS)
    sources.append(src)
    g0, g1 = src.gpus
    assert src.gpu_processes() == {
        g0.uuid: GpuProcesses(
            0,
            (
                GpuProcess(100, "compute", 2048 * MIB),
                GpuProcess(300, "compute", 1024 * MIB),
                GpuProcess(100, "graphics", 64 * MIB),
            ),
        ),
        g1.uuid: GpuProcesses(1, (GpuProcess(200, "compute", None),)),
    }
    assert src.gpu_processes()[g0.uuid].pids == [100, 300]
    src.simulator.advance(70)  # pid 201 runs from 60 s for 30 s
    assert src.gpu_processes()[g1.uuid].pids == [200, 201]
    src.simulator.advance(30)
    assert src.gpu_processes()[g1.uuid].pids == [200]
    read = nvml_gpu_processes(src)
    assert read is not None and read() == {g0.uuid: (0, [100, 300]), g1.uuid: (1, [200])}
    assert cycle(src).source_errors == {}


def test_not_supported_is_skipped_asked_once_and_counted(tmp_path: Path, sources: list, monkeypatch) -> None:
    variant = PROFILES["h100-sxm"].replace(
        name="h100-no-graphics",
        unsupported_functions=PROFILES["h100-sxm"].unsupported_functions | {"nvmlDeviceGetGraphicsRunningProcesses"},
    )
    monkeypatch.setitem(PROFILES, variant.name, variant)
    src = make(tmp_path, TWO_GPUS, profile=variant.name)
    sources.append(src)
    calls = count_calls(monkeypatch, "nvmlDeviceGetGraphicsRunningProcesses")
    for _ in range(3):
        found = src.gpu_processes()
        # Compute processes still come back; only the graphics list is skipped.
        assert {u: p.pids for u, p in found.items()} == {src.gpus[0].uuid: [100, 300], src.gpus[1].uuid: [200]}
        assert all(p.type == "compute" for procs in found.values() for p in procs.processes)
    assert len(calls) == 2  # once per GPU, then never again
    unsupported = {
        dict(p.attributes)["nvml.function"]: p.value for p in cycle(src).by_name("fleetpulse.agent.nvml.unsupported")
    }
    assert unsupported["nvmlDeviceGetGraphicsRunningProcesses"] == 2  # one per GPU


def test_hung_process_query_is_abandoned_counted_and_skips_only_that_gpu(tmp_path: Path, sources: list, caplog) -> None:
    src = make(
        tmp_path,
        TWO_GPUS + "  - {at: 5, gpu: 1, kind: hang, function: nvmlDeviceGetComputeRunningProcesses, seconds: 1.5}\n",
        timeout_s=0.2,
    )
    sources.append(src)
    src.simulator.advance(10)
    with caplog.at_level(logging.WARNING, logger="agent.sources.nvml"):
        started = time.monotonic()
        found = src.gpu_processes()
        assert time.monotonic() - started < 1.2  # abandoned after ~0.2 s, not after 1.5 s
    assert set(found) == {src.gpus[0].uuid}
    assert "GPU 1: nvmlDeviceGetComputeRunningProcesses did not return within 0.2 s" in caplog.text
    assert src.gpu_processes().keys() == {src.gpus[0].uuid}  # GPU 1's worker is still stuck: skipped
    snap = cycle(src, ("fast",))
    assert snap.source_errors[("nvml", "timeout:nvmlDeviceGetComputeRunningProcesses")] == 1
    assert snap.source_errors[("nvml", "gpu_call_still_hung")] >= 1
    assert src.timeouts == {"nvmlDeviceGetComputeRunningProcesses": 1}
    deadline = time.monotonic() + 5
    while src.watchdog.stuck_keys() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(src.gpu_processes()) == {g.uuid for g in src.gpus}  # recovered
    assert sum(1 for t in threading.enumerate() if t.name == "nvml-1") == 1  # no thread pile-up


def test_lost_gpu_is_left_out(tmp_path: Path, sources: list) -> None:
    src = make(tmp_path, TWO_GPUS + "  - {at: 5, gpu: 0, kind: fall_off_bus}\n")
    sources.append(src)
    src.simulator.advance(10)
    assert set(src.gpu_processes()) == {src.gpus[1].uuid}
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        pynvml.nvmlDeviceGetComputeRunningProcesses(src.gpus[0].handle)


def test_scenario_process_fields_are_checked(tmp_path: Path) -> None:
    from agent.sim.faults import ScenarioError, parse_scenario

    with pytest.raises(ScenarioError, match=r"s.yaml:2: faults\[0\].pid: expected an integer >= 1, got 0"):
        parse_scenario("faults:\n  - {at: 0, gpu: 0, kind: process, pid: 0}\n", "s.yaml")
    with pytest.raises(ScenarioError, match=r"faults\[0\].type: expected one of compute, graphics, got 'video'"):
        parse_scenario("faults:\n  - {at: 0, gpu: 0, kind: process, pid: 5, type: video}\n")
    with pytest.raises(ScenarioError, match=r"faults\[0\].used_memory_mib: expected an integer >= 0"):
        parse_scenario("faults:\n  - {at: 0, gpu: 0, kind: process, pid: 5, used_memory_mib: -1}\n")
