"""One GPU's collection: the NVML calls of each tier, and the events derived from state changes.

Runs on the GPU's watchdog worker thread. It writes into a private :class:`Sink` (the NVML source
moves it into the cycle's SnapshotBuilder), so a job abandoned on a hung call cannot touch a later
cycle. NotSupported answers are remembered per GPU and never asked again.
"""

from __future__ import annotations

import ctypes
from collections import Counter
from collections.abc import Callable
from typing import Any

import pynvml as N

from agent.catalog import HARMFUL_THROTTLE_REASONS, THROTTLE_REASONS
from agent.snapshot import Severity
from agent.sources import nvml_fields as F

Call = Callable[..., Any]
_CLOCKS = (("sm", N.NVML_CLOCK_SM), ("memory", N.NVML_CLOCK_MEM), ("graphics", N.NVML_CLOCK_GRAPHICS))
_NVLINK_ERRORS = (
    ("replay", N.NVML_NVLINK_ERROR_DL_REPLAY),
    ("recovery", N.NVML_NVLINK_ERROR_DL_RECOVERY),
    ("crc_flit", N.NVML_NVLINK_ERROR_DL_CRC_FLIT),
    ("crc_data", N.NVML_NVLINK_ERROR_DL_CRC_DATA),
)
# GPM activities arrive as full-precision doubles (percent); they are sampled ratios whose last
# digits are noise, and at full precision they cost ~5 B/sample on disk against ~0.05 B for the
# integer-valued gauges (docs/STORAGE.md). Kept as fractions rounded to 1e-4 (0.01 %).
GPM_DECIMALS = 4
_GPM_METRICS = (
    (N.NVML_GPM_METRIC_SM_UTIL, "hw.gpu.sm.activity"),
    (N.NVML_GPM_METRIC_SM_OCCUPANCY, "hw.gpu.sm.occupancy"),
    (N.NVML_GPM_METRIC_ANY_TENSOR_UTIL, "hw.gpu.tensor.activity"),
    (N.NVML_GPM_METRIC_DRAM_BW_UTIL, "hw.gpu.dram.activity"),
)


def handle_address(handle: object) -> int:
    return ctypes.cast(handle, ctypes.c_void_p).value or 0


class Sink:
    """One job's output, moved into the SnapshotBuilder by the caller's thread.

    ``link_io`` holds the fast pass's per-link NVLink byte counters (``hw.gpu.nvlink.link.io``)
    apart from ``points``: the source sends them at the tier ``nvml.nvlink_link_io`` names.
    """

    __slots__ = ("errors", "events", "link_io", "points")

    def __init__(self) -> None:
        self.points: list[tuple[str, float, dict[str, str]]] = []
        self.link_io: list[tuple[str, float, dict[str, str]]] = []
        self.events: list[tuple[str, Severity, str, dict[str, str]]] = []
        self.errors: Counter[str] = Counter()


class GpuCollector:
    def __init__(self, index: int) -> None:
        self.index = index
        self.handle: object | None = None
        self.address = 0
        self.uuid = f"unknown-gpu-{index}"
        self.model = "unknown"
        self.info: dict[str, str] = {}
        self.attrs: dict[str, str] = {}
        self.lost = False
        self.unsupported: set[str] = set()
        self.links: list[int] = []
        self.fans = 0
        self.gpm_samples: list[object] = []
        self.gpm_have_previous = False
        self.gpm_request: N.c_nvmlGpmMetricsGet_t | None = None
        self.mig_handles: list[tuple[str, object]] = []
        self.fast_fields: list[int | tuple[int, int]] = []
        self.slow_fields: list[int] = list(F.SLOW_FIELDS)
        self._prev: dict[Any, float] = {}  # previous readings, for events
        self._attr_cache: dict[tuple[str, str], dict[str, str]] = {}

    # ------------------------------------------------------------------ helpers
    def _with(self, key: str, value: str) -> dict[str, str]:
        """GPU attributes plus one more; cached, these dicts are built once per GPU."""
        attrs = self._attr_cache.get((key, value))
        if attrs is None:
            attrs = self._attr_cache[(key, value)] = {**self.attrs, key: value}
        return attrs

    def _get(self, call: Call, sink: Sink, fn: Callable[..., Any], *args: Any, key: str | None = None) -> Any:
        key = key or fn.__name__
        if key in self.unsupported:
            return None
        try:
            return call(fn, *args)
        except N.NVMLError_NotSupported:
            self.unsupported.add(key)
        except N.NVMLError_GpuIsLost:
            raise
        except N.NVMLError as exc:
            sink.errors[type(exc).__name__] += 1
        return None

    def _fields(self, call: Call, sink: Sink, ids: list) -> list[tuple[int, int, float]]:
        """Batched field values; each value's own nvmlReturn decides whether it counts."""
        if not ids:
            return []
        values = self._get(call, sink, N.nvmlDeviceGetFieldValues, self.handle, ids)
        if values is None:
            return []
        out, dropped = [], []
        for requested, v in zip(ids, values, strict=False):
            ret = v.nvmlReturn
            if ret == N.NVML_SUCCESS:
                number = F.decode(v)
                if number is not None:
                    out.append((v.fieldId, v.scopeId, number))
            elif ret == N.NVML_ERROR_NOT_SUPPORTED:
                self.unsupported.add(F.field_key(v.fieldId))
                dropped.append(requested)  # a (field, link) pair drops that link only
            elif ret == N.NVML_ERROR_GPU_IS_LOST:
                raise N.NVMLError(ret)
            else:
                sink.errors[f"field_{v.fieldId}_error_{ret}"] += 1
        if dropped:  # never ask again for what this GPU does not have
            gone = set(dropped)
            ids[:] = [i for i in ids if i not in gone]
        return out

    def _event(self, sink: Sink, name: str, severity: Severity, body: str, **extra: object) -> None:
        attrs = dict(self.attrs)
        attrs.update({k.replace("__", "."): str(v) for k, v in extra.items()})
        sink.events.append((name, severity, body, attrs))

    def _condition(self, sink: Sink, key: Any, active: bool, on: tuple, off: tuple | None = None) -> None:
        """Emit ``on`` when a condition appears (also on first sight), ``off`` when it clears."""
        before = self._prev.get(key)
        self._prev[key] = active
        if active and not before:
            self._event(sink, *on[:3], **(on[3] if len(on) > 3 else {}))
        elif before and not active and off is not None:
            self._event(sink, *off[:3], **(off[3] if len(off) > 3 else {}))

    def _increase(self, sink: Sink, key: Any, value: float) -> float:
        """Delta since the previous cycle (0 on the first: it sets the baseline)."""
        before = self._prev.get(key)
        self._prev[key] = value
        return value - before if before is not None and value > before else 0.0

    # ------------------------------------------------------------------ setup (once)
    def setup(self, call: Call, sink: Sink, driver: str, event_set: object | None) -> None:
        self.handle = call(N.nvmlDeviceGetHandleByIndex, self.index)
        self.address = handle_address(self.handle)
        self.uuid = call(N.nvmlDeviceGetUUID, self.handle)
        self.model = call(N.nvmlDeviceGetName, self.handle)
        self.attrs = {"hw.id": self.uuid, "gpu.index": str(self.index), "hw.model": self.model}
        pci = self._get(call, sink, N.nvmlDeviceGetPciInfo, self.handle)
        bus_id = pci.busId if pci is not None else ""
        if isinstance(bus_id, bytes):  # older nvidia-ml-py hands back the raw char array
            bus_id = bus_id.decode(errors="replace")
        self.info = {
            "hw.serial_number": self._get(call, sink, N.nvmlDeviceGetSerial, self.handle) or "",
            "hw.gpu.driver_version": driver,
            "hw.gpu.vbios_version": self._get(call, sink, N.nvmlDeviceGetVbiosVersion, self.handle) or "",
            "hw.pci.bus_id": bus_id,
        }
        self.fans = self._get(call, sink, N.nvmlDeviceGetNumFans, self.handle) or 0
        links = [(fid, scope, n) for fid, scope, n in self._fields(call, sink, [F.NVLINK_LINK_COUNT])]
        self.links = list(range(int(links[0][2]))) if links else []
        self.fast_fields = [*F.FAST_FIELDS]
        for link in self.links:
            self.fast_fields += [(F.NVLINK_TX, link), (F.NVLINK_RX, link)]
        support = self._get(call, sink, N.nvmlGpmQueryDeviceSupport, self.handle)
        if support is not None and support.isSupportedDevice:
            self.gpm_samples = [call(N.nvmlGpmSampleAlloc), call(N.nvmlGpmSampleAlloc)]
            self.gpm_request = N.c_nvmlGpmMetricsGet_t()
            self.gpm_request.version = N.NVML_GPM_METRICS_GET_VERSION
            self.gpm_request.numMetrics = len(_GPM_METRICS)
            for i, (metric_id, _) in enumerate(_GPM_METRICS):
                self.gpm_request.metrics[i].metricId = metric_id
            # First sample now, so the first cycle already has an interval to report.
            call(N.nvmlGpmSampleGet, self.handle, self.gpm_samples[0])
            self.gpm_have_previous = True
        mig = self._get(call, sink, N.nvmlDeviceGetMigMode, self.handle)
        if mig and mig[0]:
            count = self._get(call, sink, N.nvmlDeviceGetMaxMigDeviceCount, self.handle) or 0
            for k in range(count):
                try:
                    mig_handle = call(N.nvmlDeviceGetMigDeviceHandleByIndex, self.handle, k)
                except N.NVMLError_NotFound:
                    continue
                instance = self._get(call, sink, N.nvmlDeviceGetGpuInstanceId, mig_handle)
                self.mig_handles.append((str(instance if instance is not None else k), mig_handle))
        if event_set is not None:
            self._get(call, sink, N.nvmlDeviceRegisterEvents, self.handle, N.nvmlEventTypeXidCriticalError, event_set)

    # ------------------------------------------------------------------ tiers
    def run(self, tier: str, call: Call, sink: Sink) -> None:
        """One tier's collection; a lost GPU is reported, never raised."""
        if self.handle is None:
            self._report_lost(sink, point=tier == "fast")
            return
        try:
            if tier == "slow":
                self.slow(call, sink)
            else:
                self.fast(call, sink, burst=tier == "burst")
        except N.NVMLError_GpuIsLost:
            self._report_lost(sink, point=tier == "fast")
            return
        if tier != "slow":
            if self.lost:
                self.lost = False  # answering again (after a reset)
            sink.points.append(("hw.gpu.lost", 0.0, self.attrs))

    def _report_lost(self, sink: Sink, *, point: bool = True) -> None:
        if not self.attrs:
            self.attrs = {"hw.id": self.uuid, "gpu.index": str(self.index), "hw.model": self.model}
        if point:
            sink.points.append(("hw.gpu.lost", 1.0, self.attrs))
        if not self.lost:
            self.lost = True
            self._event(
                sink, "gpu.lost", Severity.FATAL, f"GPU {self.index} ({self.uuid}) stopped answering NVML (GPU is lost)"
            )

    def fast(self, call: Call, sink: Sink, *, burst: bool = False) -> None:
        h, A, add, get = self.handle, self.attrs, sink.points.append, self._get
        util = get(call, sink, N.nvmlDeviceGetUtilizationRates, h)
        if util is not None:
            add(("hw.gpu.utilization", util.gpu / 100.0, self._with("hw.gpu.task", "general")))
            add(("hw.gpu.utilization", util.memory / 100.0, self._with("hw.gpu.task", "memory")))
        for task, fn in (
            ("encoder", N.nvmlDeviceGetEncoderUtilization),
            ("decoder", N.nvmlDeviceGetDecoderUtilization),
        ):
            value = get(call, sink, fn, h)
            if value is not None:
                add(("hw.gpu.utilization", value[0] / 100.0, self._with("hw.gpu.task", task)))
        mem = get(call, sink, N.nvmlDeviceGetMemoryInfo, h)
        if mem is not None:
            add(("hw.gpu.memory.usage", mem.used, A))
            add(("hw.gpu.memory.free", mem.free, A))
        power = get(call, sink, N.nvmlDeviceGetPowerUsage, h)
        if power is not None:
            add(("hw.gpu.power.usage", power / 1000.0, A))
        temp = get(call, sink, N.nvmlDeviceGetTemperature, h, N.NVML_TEMPERATURE_GPU)
        if temp is not None:
            add(("hw.gpu.temperature", temp, self._with("hw.sensor", "gpu")))
        for name, clock in _CLOCKS:
            mhz = get(call, sink, N.nvmlDeviceGetClockInfo, h, clock)
            if mhz is not None:
                add(("hw.gpu.clock.frequency", mhz * 1e6, self._with("hw.gpu.clock", name)))
        pstate = get(call, sink, N.nvmlDeviceGetPerformanceState, h)
        if pstate is not None:
            add(("hw.gpu.performance_state", pstate, A))
        for fan in range(self.fans):
            speed = get(call, sink, N.nvmlDeviceGetFanSpeed_v2, h, fan)
            if speed is not None:
                add(("hw.gpu.fan.speed", speed / 100.0, self._with("hw.fan", str(fan))))
        reasons = get(call, sink, N.nvmlDeviceGetCurrentClocksEventReasons, h)
        if reasons is not None:
            self._throttle(sink, reasons)
        nvlink_totals: dict[str, float] = {}
        for fid, scope, value in self._fields(call, sink, self.fast_fields):
            if fid == F.NVLINK_TX or fid == F.NVLINK_RX:
                # NVML counts KiB per link; the per-GPU total sums the links that answered this cycle.
                direction = "transmit" if fid == F.NVLINK_TX else "receive"
                nbytes = value * 1024.0
                nvlink_totals[direction] = nvlink_totals.get(direction, 0.0) + nbytes
                attrs = self._link_attrs(scope, "network.io.direction", direction)
                sink.link_io.append(("hw.gpu.nvlink.link.io", nbytes, attrs))
            elif fid in F.THROTTLE_TIME_FIELDS:
                add(
                    (
                        "hw.gpu.throttle.time",
                        value / 1e9,
                        self._with("hw.gpu.throttle.reason", F.THROTTLE_TIME_FIELDS[fid]),
                    )
                )
            elif fid == F.MEMORY_TEMP:
                add(("hw.gpu.temperature", value, self._with("hw.sensor", "memory")))
            elif fid == F.ENERGY:
                add(("hw.gpu.energy", value / 1000.0, A))
            elif fid == F.PCIE_REPLAY:
                add(("hw.gpu.pcie.replays", value, A))
            elif fid == F.PCIE_TX:
                add(("hw.gpu.pcie.io", value, self._with("network.io.direction", "transmit")))
            elif fid == F.PCIE_RX:
                add(("hw.gpu.pcie.io", value, self._with("network.io.direction", "receive")))
        for direction, total in nvlink_totals.items():
            # A link that failed this cycle (not NotSupported: those left fast_fields) would make the
            # sum dip and read as a counter reset downstream: skip the total until every link answers.
            fid = F.NVLINK_TX if direction == "transmit" else F.NVLINK_RX
            expected = sum(1 for i in self.fast_fields if isinstance(i, tuple) and i[0] == fid)
            answered = sum(1 for m, _, a in sink.link_io if a["network.io.direction"] == direction)
            if answered == expected:
                add(("hw.gpu.nvlink.io", total, self._with("network.io.direction", direction)))
        if self.gpm_request is not None:
            self._gpm(call, sink)
        if not burst:
            for instance, mig_handle in self.mig_handles:
                mig_mem = get(call, sink, N.nvmlDeviceGetMemoryInfo, mig_handle, key="nvmlDeviceGetMemoryInfo[mig]")
                if mig_mem is not None:
                    add(("hw.gpu.mig.memory.usage", mig_mem.used, self._with("hw.gpu.mig.instance", instance)))

    def _link_attrs(self, link: int, key: str | None = None, value: str | None = None) -> dict[str, str]:
        cache_key = (f"link{link}", f"{key}={value}")
        attrs = self._attr_cache.get(cache_key)
        if attrs is None:
            attrs = {**self.attrs, "hw.nvlink.link": str(link)}
            if key is not None:
                attrs[key] = value
            self._attr_cache[cache_key] = attrs
        return attrs

    def _throttle(self, sink: Sink, reasons: int) -> None:
        add = sink.points.append
        for name, bit in THROTTLE_REASONS.items():
            add(("hw.gpu.throttle.active", 1.0 if reasons & bit else 0.0, self._with("hw.gpu.throttle.reason", name)))
        for name in HARMFUL_THROTTLE_REASONS:
            active = bool(reasons & THROTTLE_REASONS[name])
            self._condition(
                sink,
                ("throttle", name),
                active,
                (
                    "gpu.throttle.onset",
                    Severity.WARN,
                    f"GPU {self.index} clocks held back: {name}",
                    {"hw.gpu.throttle.reason": name},
                ),
                (
                    "gpu.throttle.clear",
                    Severity.INFO,
                    f"GPU {self.index} throttle cleared: {name}",
                    {"hw.gpu.throttle.reason": name},
                ),
            )

    def _gpm(self, call: Call, sink: Sink) -> None:
        previous, current = self.gpm_samples
        got = self._get(call, sink, N.nvmlGpmSampleGet, self.handle, current)
        if got is None:
            return
        if self.gpm_have_previous:
            request = self.gpm_request
            request.sample1 = previous
            request.sample2 = current
            if self._get(call, sink, N.nvmlGpmMetricsGet, request) is not None:
                for i, (_, name) in enumerate(_GPM_METRICS):
                    metric = request.metrics[i]
                    if metric.nvmlReturn == N.NVML_SUCCESS:
                        sink.points.append((name, round(metric.value / 100.0, GPM_DECIMALS), self.attrs))
                    elif metric.nvmlReturn == N.NVML_ERROR_NOT_SUPPORTED:
                        self.unsupported.add(f"nvmlGpmMetricsGet[{metric.metricId}]")
        self.gpm_samples = [current, previous]
        self.gpm_have_previous = True

    def slow(self, call: Call, sink: Sink) -> None:
        h, A, add, get = self.handle, self.attrs, sink.points.append, self._get
        add(("hw.gpu.info", 1.0, {**A, **self.info}))
        mem = get(call, sink, N.nvmlDeviceGetMemoryInfo, h)
        if mem is not None:
            add(("hw.gpu.memory.limit", mem.total, A))
        limit = get(call, sink, N.nvmlDeviceGetEnforcedPowerLimit, h)
        if limit is not None:
            add(("hw.gpu.power.limit", limit / 1000.0, A))
        for name, clock in _CLOCKS:
            mhz = get(call, sink, N.nvmlDeviceGetMaxClockInfo, h, clock)
            if mhz is not None:
                add(("hw.gpu.clock.max", mhz * 1e6, self._with("hw.gpu.clock", name)))
        for metric, state, fn in (
            ("hw.gpu.pcie.link.generation", "current", N.nvmlDeviceGetCurrPcieLinkGeneration),
            ("hw.gpu.pcie.link.generation", "max", N.nvmlDeviceGetMaxPcieLinkGeneration),
            ("hw.gpu.pcie.link.width", "current", N.nvmlDeviceGetCurrPcieLinkWidth),
            ("hw.gpu.pcie.link.width", "max", N.nvmlDeviceGetMaxPcieLinkWidth),
        ):
            value = get(call, sink, fn, h)
            if value is not None:
                add((metric, value, self._with("hw.pcie.link.state", state)))
        retired: dict[int, float] = {}
        for fid, _, value in self._fields(call, sink, self.slow_fields):
            if fid in F.ECC_FIELDS:
                kind, scope = F.ECC_FIELDS[fid]
                attrs = self._attr_cache.get(("ecc", f"{kind}/{scope}"))
                if attrs is None:
                    attrs = self._attr_cache[("ecc", f"{kind}/{scope}")] = {
                        **A,
                        "hw.gpu.ecc.type": kind,
                        "hw.gpu.ecc.scope": scope,
                    }
                add(("hw.gpu.ecc.errors", value, attrs))
                delta = self._increase(sink, ("ecc", fid), value)
                if delta:
                    severity = Severity.ERROR if kind == "uncorrected" else Severity.INFO
                    body = f"GPU {self.index}: {int(delta)} new {kind} ECC error(s) ({scope})"
                    self._event(
                        sink,
                        "gpu.ecc.increase",
                        severity,
                        body,
                        hw__gpu__ecc__type=kind,
                        hw__gpu__ecc__scope=scope,
                        delta=int(delta),
                    )
            elif fid == F.RECOVERY_ACTION:
                add(("hw.gpu.recovery_action", value, A))
            else:
                retired[fid] = value
        if F.RETIRED_SBE in retired:
            add(("hw.gpu.retired_pages", retired[F.RETIRED_SBE], self._with("hw.gpu.retirement.cause", "single_bit")))
        if F.RETIRED_DBE in retired:
            add(("hw.gpu.retired_pages", retired[F.RETIRED_DBE], self._with("hw.gpu.retirement.cause", "double_bit")))
        if F.RETIRED_PENDING in retired:
            add(("hw.gpu.retired_pages.pending", retired[F.RETIRED_PENDING], A))
        rows = get(call, sink, N.nvmlDeviceGetRemappedRows, h)
        if rows is not None:
            corrected, uncorrected, pending, failure = rows
            add(("hw.gpu.row_remap.rows", corrected, self._with("hw.gpu.ecc.type", "corrected")))
            add(("hw.gpu.row_remap.rows", uncorrected, self._with("hw.gpu.ecc.type", "uncorrected")))
            add(("hw.gpu.row_remap.pending", pending, A))
            add(("hw.gpu.row_remap.failure", failure, A))
            self._condition(
                sink,
                "remap_pending",
                bool(pending),
                (
                    "gpu.row_remap.pending",
                    Severity.WARN,
                    f"GPU {self.index}: row remap pending, reset the GPU to apply it",
                ),
            )
            self._condition(
                sink,
                "remap_failure",
                bool(failure),
                ("gpu.row_remap.failure", Severity.ERROR, f"GPU {self.index}: row remap failed, the GPU needs service"),
            )
        for link in self.links:
            state = get(call, sink, N.nvmlDeviceGetNvLinkState, h, link)
            if state is not None:
                add(("hw.gpu.nvlink.state", state, self._link_attrs(link)))
                self._condition(
                    sink,
                    ("nvlink", link),
                    not state,
                    (
                        "gpu.nvlink.down",
                        Severity.ERROR,
                        f"GPU {self.index}: NVLink {link} is down",
                        {"hw.nvlink.link": link},
                    ),
                )
            for error_name, counter in _NVLINK_ERRORS:
                value = get(call, sink, N.nvmlDeviceGetNvLinkErrorCounter, h, link, counter)
                if value is not None:
                    add(("hw.gpu.nvlink.errors", value, self._link_attrs(link, "hw.error.type", error_name)))
        mig = get(call, sink, N.nvmlDeviceGetMigMode, h)
        if mig is not None:
            add(("hw.gpu.mig.mode", mig[0], A))
