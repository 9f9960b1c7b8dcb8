"""The simulator is a faithful drop-in for the pynvml functions: names, signatures, shapes, errors."""

from __future__ import annotations

import ctypes
import inspect
from collections.abc import Iterator

import pynvml
import pytest

import agent.sim
from agent.sim import nvml_api


@pytest.fixture
def sim() -> Iterator[agent.sim.SimulatorHandle]:
    handle = agent.sim.install(8, "h100-sxm", None, seed=3, clock="manual")
    pynvml.nvmlInit()
    yield handle
    handle.uninstall()


def test_same_names_and_signatures_as_pynvml() -> None:
    originals = {name: getattr(pynvml, name) for name in nvml_api.FUNCTIONS}
    for name, fn in nvml_api.FUNCTIONS.items():
        real = originals[name]
        assert callable(real), name
        ours = list(inspect.signature(fn).parameters)
        theirs = list(inspect.signature(real).parameters)
        assert ours == theirs, f"{name}: {ours} != pynvml's {theirs}"


def test_install_replaces_and_uninstall_restores() -> None:
    real_init = pynvml.nvmlInit
    handle = agent.sim.install(1, "t4", clock="manual")
    try:
        assert pynvml.nvmlInit is not real_init
        with pytest.raises(RuntimeError, match="already installed"):
            agent.sim.install(1, "t4")
    finally:
        handle.uninstall()
    assert pynvml.nvmlInit is real_init
    assert agent.sim.installed() is None


def test_calls_before_init_raise_uninitialized() -> None:
    with agent.sim.install(1, "t4", clock="manual"), pytest.raises(pynvml.NVMLError_Uninitialized):
        pynvml.nvmlDeviceGetCount()


def test_return_shapes(sim) -> None:
    assert pynvml.nvmlDeviceGetCount() == 8
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    assert isinstance(h, pynvml.c_nvmlDevice_t)
    mem = pynvml.nvmlDeviceGetMemoryInfo(h)
    assert isinstance(mem, pynvml.c_nvmlMemory_t) and mem.used + mem.free == mem.total
    util = pynvml.nvmlDeviceGetUtilizationRates(h)
    assert isinstance(util, pynvml.c_nvmlUtilization_t) and 0 <= util.gpu <= 100
    enc = pynvml.nvmlDeviceGetEncoderUtilization(h)
    assert isinstance(enc, list) and len(enc) == 2
    rows = pynvml.nvmlDeviceGetRemappedRows(h)
    assert isinstance(rows, tuple) and len(rows) == 4
    assert pynvml.nvmlDeviceGetMigMode(h) == [0, 0]
    pci = pynvml.nvmlDeviceGetPciInfo(h)
    assert isinstance(pci, pynvml.nvmlPciInfo_t) and pci.busId == "00000000:18:00.0"
    assert pynvml.nvmlDeviceGetUUID(h).startswith("GPU-")
    assert isinstance(pynvml.nvmlDeviceGetPowerUsage(h), int)  # milliwatts, as NVML reports
    assert pynvml.nvmlDeviceGetEnforcedPowerLimit(h) == 700_000
    assert pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM) == 1980
    assert pynvml.nvmlDeviceGetNvLinkState(h, 17) == 1
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        pynvml.nvmlDeviceGetNvLinkState(h, 18)
    with pytest.raises(pynvml.NVMLError_NotSupported):
        pynvml.nvmlDeviceGetNumFans(h)


def test_field_values_carry_their_own_return_codes(sim) -> None:
    h = pynvml.nvmlDeviceGetHandleByIndex(1)
    values = pynvml.nvmlDeviceGetFieldValues(
        h,
        [
            pynvml.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION,
            pynvml.NVML_FI_DEV_RETIRED_SBE,
            (pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, 4),
            9999,
        ],
    )
    assert isinstance(values[0], pynvml.c_nvmlFieldValue_t) and len(values) == 4
    energy, retired, nvlink, unknown = values
    assert energy.nvmlReturn == pynvml.NVML_SUCCESS and energy.valueType == pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
    assert energy.value.ullVal > 0
    assert retired.nvmlReturn == pynvml.NVML_ERROR_NOT_SUPPORTED  # Hopper remaps rows instead
    assert nvlink.scopeId == 4 and nvlink.nvmlReturn == pynvml.NVML_SUCCESS
    assert unknown.nvmlReturn == pynvml.NVML_ERROR_NOT_SUPPORTED


def test_gpm_needs_two_samples_spanning_time(sim) -> None:
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    assert pynvml.nvmlGpmQueryDeviceSupport(h).isSupportedDevice == 1
    first, second = pynvml.nvmlGpmSampleAlloc(), pynvml.nvmlGpmSampleAlloc()
    pynvml.nvmlGpmSampleGet(h, first)
    sim.advance(5)
    pynvml.nvmlGpmSampleGet(h, second)
    request = pynvml.c_nvmlGpmMetricsGet_t()
    request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
    request.numMetrics = 2
    request.sample1, request.sample2 = first, second
    request.metrics[0].metricId = pynvml.NVML_GPM_METRIC_SM_UTIL
    request.metrics[1].metricId = 77777
    pynvml.nvmlGpmMetricsGet(request)
    assert request.metrics[0].nvmlReturn == pynvml.NVML_SUCCESS and 0 <= request.metrics[0].value <= 100
    assert request.metrics[1].nvmlReturn == pynvml.NVML_ERROR_NOT_SUPPORTED
    request.version = 99
    with pytest.raises(pynvml.NVMLError_ArgumentVersionMismatch):
        pynvml.nvmlGpmMetricsGet(request)
    pynvml.nvmlGpmSampleFree(first)
    pynvml.nvmlGpmSampleFree(second)


def test_xid_events_non_blocking_and_lost_before_registration() -> None:
    scenario = agent.sim.parse_scenario(
        "faults:\n  - {at: 0, gpu: 1, kind: xid, code: 13}\n  - {at: 5, gpu: 1, kind: xid, code: 79}\n"
    )
    with agent.sim.install(2, "h100-sxm", scenario, clock="manual") as sim:
        pynvml.nvmlInit()
        event_set = pynvml.nvmlEventSetCreate()
        h = pynvml.nvmlDeviceGetHandleByIndex(1)
        pynvml.nvmlDeviceRegisterEvents(h, pynvml.nvmlEventTypeXidCriticalError, event_set)
        with pytest.raises(pynvml.NVMLError_Timeout):
            pynvml.nvmlEventSetWait_v2(event_set, 0)  # Xid 13 came before registration: lost
        sim.advance(10)
        data = pynvml.nvmlEventSetWait_v2(event_set, 0)
        assert isinstance(data, pynvml.c_nvmlEventData_t)
        assert data.eventData == 79 and data.eventType == pynvml.nvmlEventTypeXidCriticalError
        assert ctypes.cast(data.device, ctypes.c_void_p).value == ctypes.cast(h, ctypes.c_void_p).value
        with pytest.raises(pynvml.NVMLError_Timeout):
            pynvml.nvmlEventSetWait_v2(event_set, 0)
        # After Xid 79 every call on that GPU raises GpuIsLost; its neighbour still answers.
        for call in (
            lambda: pynvml.nvmlDeviceGetPowerUsage(h),
            lambda: pynvml.nvmlDeviceGetFieldValues(h, [83]),
            lambda: pynvml.nvmlDeviceGetHandleByIndex(1),
            lambda: pynvml.nvmlDeviceGetRemappedRows(h),
        ):
            with pytest.raises(pynvml.NVMLError_GpuIsLost):
                call()
        assert pynvml.nvmlDeviceGetPowerUsage(pynvml.nvmlDeviceGetHandleByIndex(0)) > 0
        pynvml.nvmlEventSetFree(event_set)


def test_no_nvml_without_the_simulator() -> None:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        return
    except pynvml.NVMLError:  # pragma: no cover - a driver without GPUs
        return
    pynvml.nvmlShutdown()  # pragma: no cover - a machine with a GPU
