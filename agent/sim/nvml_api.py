"""A drop-in for the pynvml functions fleetpulse uses, backed by :class:`~agent.sim.simulator.Simulator`.

Same names and signatures as ``pynvml`` (nvidia-ml-py), same return shapes (ctypes structs such as
``c_nvmlMemory_t``, lists where pynvml returns lists, tuples where it returns tuples, field-value
arrays with a per-value ``nvmlReturn``), real ``pynvml.NVMLError_*`` exceptions. Device handles are
genuine ``c_nvmlDevice_t`` pointers (never dereferenced). ``agent.sim.install`` swaps these functions
into the ``pynvml`` module; the production NVML source runs unchanged on top.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
from collections.abc import Callable

import pynvml as N

from agent.sim.model import THROTTLE_TIME_FIELDS, GpuState
from agent.sim.simulator import SimGpu, Simulator

_SIM: Simulator | None = None
_INIT_COUNT = 0
_INIT_CALLS = 0
_HANDLE_BASE = 0x7F3A00000000
_MIG_OFFSET = 0x100
_by_address: dict[int, SimGpu] = {}
_mig_by_address: dict[int, tuple[SimGpu, int]] = {}
_gpm_samples: dict[int, tuple[int, float, float, float, float, float] | None] = {}
_event_sets: dict[int, dict[int, int]] = {}  # event set address -> {gpu index: next xid-log position}
_addresses = itertools.count(0x7F3B00000000, 0x40)
_lock = threading.RLock()


def _addr(pointer: object) -> int:
    return ctypes.cast(pointer, ctypes.c_void_p).value or 0


def _pointer(address: int, kind: type) -> object:
    return ctypes.cast(ctypes.c_void_p(address), kind)


def attach(sim: Simulator | None) -> None:
    """Point the facade at ``sim`` (or detach it with None); resets handles, samples, event sets."""
    global _SIM, _INIT_COUNT, _INIT_CALLS
    with _lock:
        _SIM = sim
        _INIT_COUNT = 0
        _INIT_CALLS = 0
        _by_address.clear()
        _mig_by_address.clear()
        _gpm_samples.clear()
        _event_sets.clear()
        if sim is not None:
            for gpu in sim.gpus:
                base = _HANDLE_BASE + gpu.index * 0x1000
                _by_address[base] = gpu
                for k in range(gpu.profile.mig_instances):
                    _mig_by_address[base + _MIG_OFFSET + k] = (gpu, k)


def init_calls() -> int:
    return _INIT_CALLS


def _sim() -> Simulator:
    if _SIM is None or _INIT_COUNT <= 0:
        raise N.NVMLError(N.NVML_ERROR_UNINITIALIZED)
    return _SIM


def _device(handle: object, function: str) -> GpuState:
    """The synced model behind ``handle``, or the NVML error a real driver would raise."""
    sim = _sim()
    gpu = _by_address.get(_addr(handle))
    if gpu is None:
        raise N.NVMLError(N.NVML_ERROR_INVALID_ARGUMENT)
    with sim.lock:
        state = sim.sync(gpu)
        if state.lost:
            raise N.NVMLError(N.NVML_ERROR_GPU_IS_LOST)
        if function in gpu.profile.unsupported_functions:
            raise N.NVMLError(N.NVML_ERROR_NOT_SUPPORTED)
        hang = gpu.hangs.get(function)
        seconds = 0.0
        if hang is not None:
            hang[0] -= 1
            seconds = hang[1]
            if hang[0] <= 0:
                del gpu.hangs[function]
    if seconds > 0:
        sim.release.wait(seconds)  # a hung driver call; the lock is not held while it hangs
    return state


# ---------------------------------------------------------------------------- library and system
def _library_hang(sim: Simulator, function: str) -> None:
    """Block like a hung driver when a scenario armed a hang of a library-wide function (any GPU's)."""
    seconds = 0.0
    with sim.lock:
        for gpu in sim.gpus:
            sim.sync(gpu)  # applies hangs armed at this time
            hang = gpu.hangs.get(function)
            if hang is not None:
                hang[0] -= 1
                seconds = max(seconds, hang[1])
                if hang[0] <= 0:
                    del gpu.hangs[function]
    if seconds > 0:
        sim.release.wait(seconds)


def _init(function: str) -> None:
    global _INIT_COUNT, _INIT_CALLS
    sim = _SIM
    if sim is None:
        raise N.NVMLError(N.NVML_ERROR_LIBRARY_NOT_FOUND)
    _library_hang(sim, function)
    with _lock:
        _INIT_COUNT += 1
        _INIT_CALLS += 1


def nvmlInitWithFlags(flags: int) -> None:
    _init("nvmlInitWithFlags")


def nvmlInit() -> None:
    _init("nvmlInit")


def nvmlShutdown() -> None:
    global _INIT_COUNT
    _sim()
    with _lock:
        _INIT_COUNT -= 1


def nvmlSystemGetDriverVersion() -> str:
    sim = _sim()
    _library_hang(sim, "nvmlSystemGetDriverVersion")
    return sim.profile.driver_version


def nvmlDeviceGetCount() -> int:
    sim = _sim()
    _library_hang(sim, "nvmlDeviceGetCount")
    return len(sim.gpus)


def nvmlDeviceGetHandleByIndex(index: int) -> object:
    sim = _sim()
    if not 0 <= index < len(sim.gpus):
        raise N.NVMLError(N.NVML_ERROR_INVALID_ARGUMENT)
    gpu = sim.gpus[index]
    with sim.lock:
        if sim.sync(gpu).lost:
            raise N.NVMLError(N.NVML_ERROR_GPU_IS_LOST)
    return _pointer(_HANDLE_BASE + index * 0x1000, N.c_nvmlDevice_t)


def _gpu(handle: object) -> SimGpu:
    gpu = _by_address.get(_addr(handle))
    if gpu is None:
        raise N.NVMLError(N.NVML_ERROR_INVALID_ARGUMENT)
    return gpu


# ---------------------------------------------------------------------------- identity
def nvmlDeviceGetName(handle: object) -> str:
    _device(handle, "nvmlDeviceGetName")
    return _gpu(handle).profile.model_name


def nvmlDeviceGetUUID(handle: object) -> str:
    _device(handle, "nvmlDeviceGetUUID")
    return _gpu(handle).uuid


def nvmlDeviceGetSerial(handle: object) -> str:
    _device(handle, "nvmlDeviceGetSerial")
    return _gpu(handle).serial


def nvmlDeviceGetVbiosVersion(handle: object) -> str:
    _device(handle, "nvmlDeviceGetVbiosVersion")
    return _gpu(handle).profile.vbios_version


def nvmlDeviceGetPciInfo_v3(handle: object) -> N.nvmlPciInfo_t:
    _device(handle, "nvmlDeviceGetPciInfo_v3")
    gpu = _gpu(handle)
    info = N.nvmlPciInfo_t()
    info.busId = gpu.pci_bus_id.encode()
    info.busIdLegacy = gpu.pci_bus_id[4:].encode()
    info.domain = 0
    info.bus = gpu.pci_bus
    info.device = 0
    info.pciDeviceId = 0x233010DE
    return info


def nvmlDeviceGetPciInfo(handle: object) -> N.nvmlPciInfo_t:
    return nvmlDeviceGetPciInfo_v3(handle)


# ---------------------------------------------------------------------------- utilization, memory, power
def nvmlDeviceGetUtilizationRates(handle: object) -> N.c_nvmlUtilization_t:
    s = _device(handle, "nvmlDeviceGetUtilizationRates")
    util = N.c_nvmlUtilization_t()
    util.gpu = round(s.util * 100)
    util.memory = round(s.mem_util * 100)
    return util


def nvmlDeviceGetEncoderUtilization(handle: object) -> list[int]:
    s = _device(handle, "nvmlDeviceGetEncoderUtilization")
    return [round(s.enc_util * 100), 167000]


def nvmlDeviceGetDecoderUtilization(handle: object) -> list[int]:
    s = _device(handle, "nvmlDeviceGetDecoderUtilization")
    return [round(s.dec_util * 100), 167000]


def nvmlDeviceGetMemoryInfo(handle: object, version: int | None = None) -> N.c_nvmlMemory_t:
    mig = _mig_by_address.get(_addr(handle))
    if mig is not None:
        gpu, k = mig
        s = _device(_pointer(_HANDLE_BASE + gpu.index * 0x1000, N.c_nvmlDevice_t), "nvmlDeviceGetMemoryInfo")
        total = gpu.profile.memory_bytes // max(1, gpu.profile.mig_instances) // (1 << 20) * (1 << 20)
        used = int(total * s.mig_used_fraction[k])
    else:
        s = _device(handle, "nvmlDeviceGetMemoryInfo")
        total = s.profile.memory_bytes
        used = int(total * 0.006 + total * s.mem_fraction * min(1.0, 0.2 + s.util))
    mem = N.c_nvmlMemory_t() if not version else N.c_nvmlMemory_v2_t()
    if version:
        mem.version = version
    mem.total = total
    mem.used = used
    mem.free = total - used
    return mem


def nvmlDeviceGetPowerUsage(handle: object) -> int:
    return round(_device(handle, "nvmlDeviceGetPowerUsage").power_w * 1000)


def nvmlDeviceGetEnforcedPowerLimit(handle: object) -> int:
    return round(_device(handle, "nvmlDeviceGetEnforcedPowerLimit").power_limit_w * 1000)


def nvmlDeviceGetTotalEnergyConsumption(handle: object) -> int:
    return int(_device(handle, "nvmlDeviceGetTotalEnergyConsumption").energy_mj)


def nvmlDeviceGetTemperature(handle: object, sensor: int) -> int:
    s = _device(handle, "nvmlDeviceGetTemperature")
    if sensor != N.NVML_TEMPERATURE_GPU:
        raise N.NVMLError(N.NVML_ERROR_INVALID_ARGUMENT)
    return round(s.temp_c)


def _clock(s: GpuState, kind: int, maximum: bool) -> int:
    p = s.profile
    if kind in (N.NVML_CLOCK_GRAPHICS, N.NVML_CLOCK_SM):
        return p.max_sm_mhz if maximum else s.sm_mhz
    if kind == N.NVML_CLOCK_MEM:
        return p.max_mem_mhz if maximum else s.mem_mhz
    if kind == N.NVML_CLOCK_VIDEO:
        return round(p.max_sm_mhz * 0.88) if maximum else round(s.sm_mhz * 0.88)
    raise N.NVMLError(N.NVML_ERROR_INVALID_ARGUMENT)


def nvmlDeviceGetClockInfo(handle: object, type: int) -> int:
    return _clock(_device(handle, "nvmlDeviceGetClockInfo"), type, False)


def nvmlDeviceGetMaxClockInfo(handle: object, type: int) -> int:
    return _clock(_device(handle, "nvmlDeviceGetMaxClockInfo"), type, True)


def nvmlDeviceGetPerformanceState(handle: object) -> int:
    return _device(handle, "nvmlDeviceGetPerformanceState").pstate


def nvmlDeviceGetNumFans(device: object) -> int:
    return _device(device, "nvmlDeviceGetNumFans").profile.fans


def nvmlDeviceGetFanSpeed_v2(handle: object, fan: int) -> int:
    s = _device(handle, "nvmlDeviceGetFanSpeed_v2")
    if not 0 <= fan < s.profile.fans:
        raise N.NVMLError(N.NVML_ERROR_INVALID_ARGUMENT)
    return round(min(100.0, 30 + s.temp_c * 0.6))


def nvmlDeviceGetCurrentClocksEventReasons(handle: object) -> int:
    return _device(handle, "nvmlDeviceGetCurrentClocksEventReasons").reasons


# ---------------------------------------------------------------------------- field values
_UINT, _ULL = N.NVML_VALUE_TYPE_UNSIGNED_INT, N.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
_NO_SCOPE: Callable[[GpuState, int], float]

_FIELDS: dict[int, tuple[int, Callable[[GpuState, int], float]]] = {
    N.NVML_FI_DEV_ECC_SBE_VOL_TOTAL: (_ULL, lambda s, _: s.sbe_vol),
    N.NVML_FI_DEV_ECC_DBE_VOL_TOTAL: (_ULL, lambda s, _: s.dbe_vol),
    N.NVML_FI_DEV_ECC_SBE_AGG_TOTAL: (_ULL, lambda s, _: s.sbe_agg),
    N.NVML_FI_DEV_ECC_DBE_AGG_TOTAL: (_ULL, lambda s, _: s.dbe_agg),
    N.NVML_FI_DEV_RETIRED_SBE: (_UINT, lambda s, _: s.retired_sbe),
    N.NVML_FI_DEV_RETIRED_DBE: (_UINT, lambda s, _: s.retired_dbe),
    N.NVML_FI_DEV_RETIRED_PENDING: (_UINT, lambda s, _: s.retired_pending),
    N.NVML_FI_DEV_MEMORY_TEMP: (_UINT, lambda s, _: round(s.mem_temp_c)),
    N.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION: (_ULL, lambda s, _: int(s.energy_mj)),
    N.NVML_FI_DEV_NVLINK_LINK_COUNT: (_UINT, lambda s, _: s.profile.nvlinks),
    N.NVML_FI_DEV_PCIE_REPLAY_COUNTER: (_UINT, lambda s, _: s.pcie_replays),
    N.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX: (_ULL, lambda s, link: int(s.nvlink_tx_kib * s.nvlink_share[link])),
    N.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX: (_ULL, lambda s, link: int(s.nvlink_rx_kib * s.nvlink_share[link])),
    N.NVML_FI_DEV_REMAPPED_COR: (_UINT, lambda s, _: s.remap_cor),
    N.NVML_FI_DEV_REMAPPED_UNC: (_UINT, lambda s, _: s.remap_unc),
    N.NVML_FI_DEV_REMAPPED_PENDING: (_UINT, lambda s, _: s.remap_pending),
    N.NVML_FI_DEV_REMAPPED_FAILURE: (_UINT, lambda s, _: s.remap_failure),
    N.NVML_FI_DEV_NVLINK_GET_STATE: (_UINT, lambda s, link: int(s.nvlink_up[link])),
    N.NVML_FI_DEV_PCIE_COUNT_TX_BYTES: (_ULL, lambda s, _: int(s.pcie_tx)),
    N.NVML_FI_DEV_PCIE_COUNT_RX_BYTES: (_ULL, lambda s, _: int(s.pcie_rx)),
    N.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION: (_UINT, lambda s, _: s.recovery_action),
}
for _fid in THROTTLE_TIME_FIELDS:
    _FIELDS[_fid] = (_ULL, lambda s, _, fid=_fid: s.throttle_ns[fid])
_LINK_SCOPED = frozenset(
    {N.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, N.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX, N.NVML_FI_DEV_NVLINK_GET_STATE}
)
_UNION_MEMBER = {_UINT: "uiVal", _ULL: "ullVal"}


def nvmlDeviceGetFieldValues(handle: object, fieldIds: list) -> ctypes.Array:
    s = _device(handle, "nvmlDeviceGetFieldValues")
    values = (N.c_nvmlFieldValue_t * len(fieldIds))()
    unsupported = s.profile.unsupported_fields
    stamp = int(s.t * 1e6)
    for i, field_id in enumerate(fieldIds):
        v = values[i]
        try:
            v.fieldId, v.scopeId = field_id
        except TypeError:
            v.fieldId = field_id
        fid, scope = v.fieldId, v.scopeId
        spec = _FIELDS.get(fid)
        if spec is None or fid in unsupported:
            v.nvmlReturn = N.NVML_ERROR_NOT_SUPPORTED
            continue
        if fid in _LINK_SCOPED and scope >= s.profile.nvlinks:
            v.nvmlReturn = N.NVML_ERROR_INVALID_ARGUMENT
            continue
        value_type, read = spec
        v.valueType = value_type
        setattr(v.value, _UNION_MEMBER[value_type], int(read(s, scope)))
        v.timestamp = stamp
        v.latencyUsec = 3
        v.nvmlReturn = N.NVML_SUCCESS
    return values


# ---------------------------------------------------------------------------- ECC, remapping, PCIe
def nvmlDeviceGetTotalEccErrors(handle: object, errorType: int, counterType: int) -> int:
    s = _device(handle, "nvmlDeviceGetTotalEccErrors")
    table = {(0, 0): s.sbe_vol, (1, 0): s.dbe_vol, (0, 1): s.sbe_agg, (1, 1): s.dbe_agg}
    if (errorType, counterType) not in table:
        raise N.NVMLError(N.NVML_ERROR_INVALID_ARGUMENT)
    return table[(errorType, counterType)]


def nvmlDeviceGetRemappedRows(device: object) -> tuple[int, int, int, int]:
    s = _device(device, "nvmlDeviceGetRemappedRows")
    if not s.profile.row_remapping:
        raise N.NVMLError(N.NVML_ERROR_NOT_SUPPORTED)
    return (s.remap_cor, s.remap_unc, s.remap_pending, s.remap_failure)


def nvmlDeviceGetRetiredPages(device: object, sourceFilter: int) -> list[int]:
    s = _device(device, "nvmlDeviceGetRetiredPages")
    if s.profile.row_remapping:
        raise N.NVMLError(N.NVML_ERROR_NOT_SUPPORTED)
    n = s.retired_sbe if sourceFilter == N.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS else s.retired_dbe
    return [0x1_0000_0000 + 0x1000 * i for i in range(n)]


def nvmlDeviceGetRetiredPagesPendingStatus(device: object) -> int:
    s = _device(device, "nvmlDeviceGetRetiredPagesPendingStatus")
    if s.profile.row_remapping:
        raise N.NVMLError(N.NVML_ERROR_NOT_SUPPORTED)
    return s.retired_pending


def nvmlDeviceGetPcieReplayCounter(handle: object) -> int:
    return _device(handle, "nvmlDeviceGetPcieReplayCounter").pcie_replays


def nvmlDeviceGetCurrPcieLinkGeneration(handle: object) -> int:
    s = _device(handle, "nvmlDeviceGetCurrPcieLinkGeneration")
    return s.profile.pcie_gen if s.util >= 0.05 else 1  # links train down when idle


def nvmlDeviceGetMaxPcieLinkGeneration(handle: object) -> int:
    return _device(handle, "nvmlDeviceGetMaxPcieLinkGeneration").profile.pcie_gen


def nvmlDeviceGetCurrPcieLinkWidth(handle: object) -> int:
    return _device(handle, "nvmlDeviceGetCurrPcieLinkWidth").profile.pcie_width


def nvmlDeviceGetMaxPcieLinkWidth(handle: object) -> int:
    return _device(handle, "nvmlDeviceGetMaxPcieLinkWidth").profile.pcie_width


def nvmlDeviceGetPcieThroughput(device: object, counter: int) -> int:
    s = _device(device, "nvmlDeviceGetPcieThroughput")
    _sim().release.wait(0.02)  # the real call blocks ~20 ms: why the agent reads byte-counter fields instead
    return round(s.profile.pcie_busy_bytes_s * (0.05 + s.util) / 1024)


# ---------------------------------------------------------------------------- NVLink
def _link_state(device: object, link: int, function: str) -> GpuState:
    s = _device(device, function)
    if s.profile.nvlinks == 0:
        raise N.NVMLError(N.NVML_ERROR_NOT_SUPPORTED)
    if not 0 <= link < s.profile.nvlinks:
        raise N.NVMLError(N.NVML_ERROR_INVALID_ARGUMENT)
    return s


def nvmlDeviceGetNvLinkState(device: object, link: int) -> int:
    return int(_link_state(device, link, "nvmlDeviceGetNvLinkState").nvlink_up[link])


def nvmlDeviceGetNvLinkErrorCounter(device: object, link: int, counter: int) -> int:
    s = _link_state(device, link, "nvmlDeviceGetNvLinkErrorCounter")
    if not 0 <= counter < 5:
        raise N.NVMLError(N.NVML_ERROR_INVALID_ARGUMENT)
    return s.nvlink_errors[link][counter]


# ---------------------------------------------------------------------------- GPM
def nvmlGpmQueryDeviceSupport(device: object) -> N.c_nvmlGpmSupport_t:
    s = _device(device, "nvmlGpmQueryDeviceSupport")
    support = N.c_nvmlGpmSupport_t()
    support.version = N.NVML_GPM_SUPPORT_VERSION
    support.isSupportedDevice = int(s.profile.gpm)
    return support


def nvmlGpmSampleAlloc() -> object:
    _sim()
    with _lock:
        address = next(_addresses)
        _gpm_samples[address] = None
    return _pointer(address, N.c_nvmlGpmSample_t)


def nvmlGpmSampleFree(gpmSample: object) -> None:
    with _lock:
        if _gpm_samples.pop(_addr(gpmSample), False) is False:
            raise N.NVMLError(N.NVML_ERROR_INVALID_ARGUMENT)


def nvmlGpmSampleGet(device: object, gpmSample: object) -> object:
    s = _device(device, "nvmlGpmSampleGet")
    if not s.profile.gpm:
        raise N.NVMLError(N.NVML_ERROR_NOT_SUPPORTED)
    address = _addr(gpmSample)
    if address not in _gpm_samples:
        raise N.NVMLError(N.NVML_ERROR_INVALID_ARGUMENT)
    _gpm_samples[address] = (_gpu(device).index, s.gpm_time, s.gpm_sm, s.gpm_occ, s.gpm_tensor, s.gpm_dram)
    return gpmSample


_GPM_COLUMN = {
    N.NVML_GPM_METRIC_SM_UTIL: 2,
    N.NVML_GPM_METRIC_SM_OCCUPANCY: 3,
    N.NVML_GPM_METRIC_ANY_TENSOR_UTIL: 4,
    N.NVML_GPM_METRIC_DRAM_BW_UTIL: 5,
}


def nvmlGpmMetricsGet(metricsGet: N.c_nvmlGpmMetricsGet_t) -> N.c_nvmlGpmMetricsGet_t:
    _sim()
    if metricsGet.version != N.NVML_GPM_METRICS_GET_VERSION:
        raise N.NVMLError(N.NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
    first = _gpm_samples.get(_addr(metricsGet.sample1))
    second = _gpm_samples.get(_addr(metricsGet.sample2))
    if first is None or second is None or first[0] != second[0]:
        raise N.NVMLError(N.NVML_ERROR_INVALID_ARGUMENT)
    dt = second[1] - first[1]
    for i in range(metricsGet.numMetrics):
        metric = metricsGet.metrics[i]
        column = _GPM_COLUMN.get(metric.metricId)
        if column is None:
            metric.nvmlReturn = N.NVML_ERROR_NOT_SUPPORTED
        elif dt <= 0:
            metric.nvmlReturn = N.NVML_ERROR_INVALID_ARGUMENT  # samples must span time
        else:
            metric.value = max(0.0, min(100.0, (second[column] - first[column]) / dt * 100.0))
            metric.nvmlReturn = N.NVML_SUCCESS
    return metricsGet


# ---------------------------------------------------------------------------- events (Xid)
def nvmlEventSetCreate() -> object:
    _sim()
    with _lock:
        address = next(_addresses)
        _event_sets[address] = {}
    return _pointer(address, N.c_nvmlEventSet_t)


def nvmlDeviceRegisterEvents(handle: object, eventTypes: int, eventSet: object) -> None:
    s = _device(handle, "nvmlDeviceRegisterEvents")
    registered = _event_sets.get(_addr(eventSet))
    if registered is None:
        raise N.NVMLError(N.NVML_ERROR_INVALID_ARGUMENT)
    if eventTypes & ~N.nvmlEventTypeXidCriticalError:
        raise N.NVMLError(N.NVML_ERROR_NOT_SUPPORTED)
    # Events from before registration are lost, as with the real driver.
    registered[_gpu(handle).index] = len(s.xid_log)


def nvmlEventSetWait_v2(eventSet: object, timeoutms: int) -> N.c_nvmlEventData_t:
    sim = _sim()
    registered = _event_sets.get(_addr(eventSet))
    if registered is None:
        raise N.NVMLError(N.NVML_ERROR_INVALID_ARGUMENT)
    with sim.lock:
        best: tuple[float, int, int] | None = None
        for index, position in registered.items():
            log = sim.sync(sim.gpus[index]).xid_log
            if position < len(log) and (best is None or log[position][0] < best[0]):
                best = (log[position][0], index, log[position][1])
        if best is not None:
            registered[best[1]] += 1
            data = N.c_nvmlEventData_t()
            data.device = _pointer(_HANDLE_BASE + best[1] * 0x1000, N.c_nvmlDevice_t)
            data.eventType = N.nvmlEventTypeXidCriticalError
            data.eventData = best[2]
            return data
    if timeoutms:
        sim.release.wait(min(timeoutms, 1000) / 1000)
    raise N.NVMLError(N.NVML_ERROR_TIMEOUT)


def nvmlEventSetWait(eventSet: object, timeoutms: int) -> N.c_nvmlEventData_t:
    return nvmlEventSetWait_v2(eventSet, timeoutms)


def nvmlEventSetFree(eventSet: object) -> None:
    with _lock:
        if _event_sets.pop(_addr(eventSet), None) is None:
            raise N.NVMLError(N.NVML_ERROR_INVALID_ARGUMENT)


# ---------------------------------------------------------------------------- running processes
_NOT_AVAILABLE_ULL = N.NVML_VALUE_NOT_AVAILABLE_ulonglong.value
_NO_INSTANCE = 0xFFFFFFFF  # gpuInstanceId / computeInstanceId outside MIG


def _running_processes(handle: object, function: str, kind: str) -> list:
    """What pynvml's ``nvmlDeviceGet*RunningProcesses`` returns: friendly objects built from
    ``c_nvmlProcessInfo_t`` (pid, usedGpuMemory, gpuInstanceId, computeInstanceId), usedGpuMemory
    None where the driver reports NVML_VALUE_NOT_AVAILABLE."""
    sim = _sim()
    _device(handle, function)
    gpu = _gpu(handle)
    with sim.lock:
        running = sorted((pid, used) for (pid, k), used in gpu.processes.items() if k == kind)
    out = []
    for pid, used in running:
        info = N.c_nvmlProcessInfo_t()
        info.pid = pid
        info.usedGpuMemory = _NOT_AVAILABLE_ULL if used is None else used
        info.gpuInstanceId = _NO_INSTANCE
        info.computeInstanceId = _NO_INSTANCE
        obj = N.nvmlStructToFriendlyObject(info)
        if obj.usedGpuMemory == _NOT_AVAILABLE_ULL:
            obj.usedGpuMemory = None
        out.append(obj)
    return out


def nvmlDeviceGetComputeRunningProcesses_v3(handle: object) -> list:
    return _running_processes(handle, "nvmlDeviceGetComputeRunningProcesses", "compute")


def nvmlDeviceGetComputeRunningProcesses(handle: object) -> list:
    return _running_processes(handle, "nvmlDeviceGetComputeRunningProcesses", "compute")


def nvmlDeviceGetGraphicsRunningProcesses_v3(handle: object) -> list:
    return _running_processes(handle, "nvmlDeviceGetGraphicsRunningProcesses", "graphics")


def nvmlDeviceGetGraphicsRunningProcesses(handle: object) -> list:
    return _running_processes(handle, "nvmlDeviceGetGraphicsRunningProcesses", "graphics")


# ---------------------------------------------------------------------------- MIG
def nvmlDeviceGetMigMode(device: object) -> list[int]:
    s = _device(device, "nvmlDeviceGetMigMode")
    if not s.profile.mig_capable:
        raise N.NVMLError(N.NVML_ERROR_NOT_SUPPORTED)
    on = int(s.profile.mig_instances > 0)
    return [on, on]


def nvmlDeviceGetMaxMigDeviceCount(device: object) -> int:
    s = _device(device, "nvmlDeviceGetMaxMigDeviceCount")
    if not s.profile.mig_capable:
        raise N.NVMLError(N.NVML_ERROR_NOT_SUPPORTED)
    return 7


def nvmlDeviceGetMigDeviceHandleByIndex(device: object, index: int) -> object:
    s = _device(device, "nvmlDeviceGetMigDeviceHandleByIndex")
    if not 0 <= index < s.profile.mig_instances:
        raise N.NVMLError(N.NVML_ERROR_NOT_FOUND)
    return _pointer(_addr(device) + _MIG_OFFSET + index, N.c_nvmlDevice_t)


def nvmlDeviceGetGpuInstanceId(device: object) -> int:
    mig = _mig_by_address.get(_addr(device))
    if mig is None:
        _device(device, "nvmlDeviceGetGpuInstanceId")
        raise N.NVMLError(N.NVML_ERROR_INVALID_ARGUMENT)  # not a MIG device handle
    return mig[1] + 1


FUNCTIONS: dict[str, Callable[..., object]] = {
    name: obj for name, obj in dict(globals()).items() if name.startswith("nvml") and callable(obj)
}
