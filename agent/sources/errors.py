"""Errors source: host memory ECC (EDAC), PCIe AER counters, and kernel-log Xid lines.

* EDAC: ``<sysfs>/devices/system/edac/mc/mc*/csrow*/{ce,ue}_count`` per chip-select row, and the
  controller's ``{ce,ue}_noinfo_count`` (errors the driver could not place) as csrow ``unknown``,
  so summing the series of one controller gives its total without double counting. A controller
  without csrow directories reports its ``{ce,ue}_count`` as csrow ``all``.
* AER: ``<sysfs>/bus/pci/devices/<BDF>/aer_dev_{correctable,fatal,nonfatal}`` ("Name count" lines).
  The ``TOTAL_ERR_*`` line is always exported (type ``total``); the per-type breakdown only once a
  type is non-zero, which keeps a node with hundreds of AER-capable bridges within its budget.
* Xid: ``NVRM: Xid (PCI:...): N, ...`` lines from ``config.roots.kmsg`` (see :mod:`agent.sources.kmsg`)
  become ``gpu.xid`` events (severity and action from :mod:`agent.xid`) and the
  ``hw.gpu.xid.errors`` counter, with the GPU's UUID/index/model when ``gpu_by_pci`` maps the address.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from agent.catalog import GPU
from agent.config import AgentConfig
from agent.snapshot import SnapshotBuilder
from agent.sources.kmsg import KmsgReader, XidRecord
from agent.sources.sysfs_read import MALFORMED, FileReader, ResetTracker, list_dir
from agent.xid import lookup as xid_lookup

log = logging.getLogger(__name__)

NAME = "errors"

# Xid storms (an application spinning on Xid 13) must not flood the event pipeline: past this
# many events per cycle the counter still counts, the events are dropped and counted.
MAX_XID_EVENTS_PER_CYCLE = 100
XID_SOURCE = "kernel_log"

AER_SEVERITIES = ("correctable", "fatal", "nonfatal")

GpuLookup = Callable[[str], Mapping[str, object] | str | None]


@dataclass(frozen=True, slots=True)
class EdacCounter:
    path: str
    attributes: dict[str, str]


@dataclass(frozen=True, slots=True)
class AerDevice:
    bus_id: str
    hw_type: str
    files: tuple[tuple[str, str], ...]  # (severity, path)


def pci_hw_type(class_code: str | None, vendor: str | None) -> str:
    """Classify a PCI function by its class code, e.g. ``0x030200`` from NVIDIA → ``gpu``."""
    if not class_code:
        return "other"
    try:
        code = int(class_code, 16)
    except ValueError:
        return "other"
    base, sub = code >> 16, (code >> 8) & 0xFF
    nvidia = (vendor or "").lower() == "0x10de"
    if base == 0x03:
        return "gpu" if nvidia else "display"
    if base == 0x06 and sub == 0x80 and nvidia:
        return "nvswitch"
    return {0x01: "storage", 0x02: "network", 0x06: "bridge", 0x12: "accelerator"}.get(base, "other")


class ErrorsSource:
    name = NAME

    def __init__(self, config: AgentConfig, gpu_by_pci: GpuLookup | None = None) -> None:
        self.sys = config.roots.sysfs.rstrip("/") or "/"
        self.gpu_by_pci = gpu_by_pci
        self.reader = FileReader(NAME)
        self._resets = ResetTracker(time.time_ns())
        self._edac: list[EdacCounter] | None = None
        self._aer: list[AerDevice] | None = None
        self._aer_seen_types: set[tuple[str, str, str]] = set()
        self._kmsg = KmsgReader(config.roots.kmsg)
        self._kmsg_reported = False
        self._kmsg.open()
        # (bus id, code) -> Xids seen since the agent started, and the GPU attributes last mapped.
        self._xid_counts: dict[tuple[str, int], int] = {}
        self._xid_gpu: dict[str, dict[str, str]] = {}

    # ------------------------------------------------------------------ protocol
    def collect(self, builder: SnapshotBuilder, tier: str) -> None:
        self.reader.begin(builder)
        steps = (
            (self._discover, self._reopen_kmsg) if tier == "slow" else (self._edac_counts, self._aer_counts, self._xids)
        )
        for step in steps:
            try:
                step(builder)
            except Exception as exc:  # a parser bug must not take the cycle down
                log.debug("errors source: %s failed: %r", step.__name__, exc, exc_info=True)
                builder.count_error(NAME, "collect_failed")

    def close(self) -> None:
        self.reader.release()
        self._kmsg.close()

    def _counter(self, builder: SnapshotBuilder, name: str, value: float, attributes: dict[str, str]) -> None:
        key = (name, *attributes.values())
        builder.add(
            name, value, attributes, start_time_unix_nano=self._resets.start_for(key, value, builder.time_unix_nano)
        )

    # ------------------------------------------------------------------ discovery (slow tier)
    def _discover(self, builder: SnapshotBuilder) -> None:
        self.reader.release()
        self._edac = self._discover_edac()
        self._aer = self._discover_aer()
        self._resets.expire(builder.time_unix_nano - 3600 * 1_000_000_000)

    def _discover_edac(self) -> list[EdacCounter]:
        counters: list[EdacCounter] = []
        root = f"{self.sys}/devices/system/edac/mc"
        for mc in list_dir(root):
            if not mc.startswith("mc") or not mc[2:].isdigit():
                continue
            base = f"{root}/{mc}"
            entries = list_dir(base)
            csrows = [e for e in entries if e.startswith("csrow") and e[5:].isdigit()]
            for kind, error_type in (("ce", "corrected"), ("ue", "uncorrected")):
                if csrows:
                    for csrow in csrows:
                        counters.append(
                            EdacCounter(
                                f"{base}/{csrow}/{kind}_count",
                                {"edac.mc": mc[2:], "edac.csrow": csrow[5:], "hw.error.type": error_type},
                            )
                        )
                    if f"{kind}_noinfo_count" in entries:
                        counters.append(
                            EdacCounter(
                                f"{base}/{kind}_noinfo_count",
                                {"edac.mc": mc[2:], "edac.csrow": "unknown", "hw.error.type": error_type},
                            )
                        )
                else:
                    counters.append(
                        EdacCounter(
                            f"{base}/{kind}_count",
                            {"edac.mc": mc[2:], "edac.csrow": "all", "hw.error.type": error_type},
                        )
                    )
        return counters

    def _discover_aer(self) -> list[AerDevice]:
        devices: list[AerDevice] = []
        root = f"{self.sys}/bus/pci/devices"
        for bdf in list_dir(root):
            base = f"{root}/{bdf}"
            files = tuple(
                (severity, f"{base}/aer_dev_{severity}")
                for severity in AER_SEVERITIES
                if os.path.exists(f"{base}/aer_dev_{severity}")
            )
            if not files:
                continue
            hw_type = pci_hw_type(
                self.reader.text(f"{base}/class", optional=True, keep=False),
                self.reader.text(f"{base}/vendor", optional=True, keep=False),
            )
            devices.append(AerDevice(bdf.lower(), hw_type, files))
        return devices

    # ------------------------------------------------------------------ EDAC
    def _edac_counts(self, builder: SnapshotBuilder) -> None:
        if self._edac is None:
            self._edac = self._discover_edac()
        for counter in self._edac:
            value = self.reader.integer(counter.path)
            if value is not None:
                self._counter(builder, "hw.memory.edac.errors", value, counter.attributes)

    # ------------------------------------------------------------------ AER
    def _aer_counts(self, builder: SnapshotBuilder) -> None:
        if self._aer is None:
            self._aer = self._discover_aer()
        for device in self._aer:
            for severity, path in device.files:
                lines = self.reader.lines(path)
                if lines is None:
                    continue
                for line in lines:
                    name, _, count = line.rpartition(" ")
                    try:
                        value = int(count)
                    except ValueError:
                        self.reader.skip(path, MALFORMED, line[:60])
                        continue
                    if not name:
                        self.reader.skip(path, MALFORMED, line[:60])
                        continue
                    if name.startswith("TOTAL_ERR"):
                        error_type = "total"
                    else:
                        error_type = name
                        seen = (device.bus_id, severity, name)
                        if value == 0 and seen not in self._aer_seen_types:
                            continue
                        self._aer_seen_types.add(seen)
                    self._counter(
                        builder,
                        "hw.pcie.aer.errors",
                        value,
                        {
                            "hw.pci.bus_id": device.bus_id,
                            "hw.pcie.aer.severity": severity,
                            "hw.pcie.aer.type": error_type,
                            "hw.type": device.hw_type,
                        },
                    )

    # ------------------------------------------------------------------ Xid from the kernel log
    def _reopen_kmsg(self, builder: SnapshotBuilder) -> None:
        if not self._kmsg.is_open and self._kmsg.open():
            log.info("errors source: reading Xid lines from %s", self._kmsg.path)
            self._kmsg_reported = False

    def _xids(self, builder: SnapshotBuilder) -> None:
        if not self._kmsg.is_open:
            if not self._kmsg_reported:
                # Reported once (not every cycle): a container without /dev/kmsg is a setup choice.
                log.debug("errors source: kernel log %s not readable: %s", self._kmsg.path, self._kmsg.open_error)
                reason = (self._kmsg.open_error or "unreadable_file").split(" ")[0]
                builder.count_error(NAME, f"kmsg_{reason}")
                self._kmsg_reported = True
        else:
            result = self._kmsg.read_new()
            if result.malformed:
                builder.count_error(NAME, "malformed_xid_line", result.malformed)
            if result.overruns:
                builder.count_error(NAME, "kmsg_overrun", result.overruns)
            for index, record in enumerate(result.records):
                self._xid_counts[(record.bus_id, record.code)] = (
                    self._xid_counts.get((record.bus_id, record.code), 0) + 1
                )
                if index < MAX_XID_EVENTS_PER_CYCLE:
                    self._xid_event(builder, record)
            if len(result.records) > MAX_XID_EVENTS_PER_CYCLE:
                builder.count_error(NAME, "xid_events_suppressed", len(result.records) - MAX_XID_EVENTS_PER_CYCLE)
        for (bus_id, code), count in self._xid_counts.items():
            # Counted from zero when the agent started (the kernel log is read from its end).
            attributes = {**self._gpu_attributes(builder, bus_id), "hw.gpu.xid": code, "xid.source": XID_SOURCE}
            self._counter(builder, "hw.gpu.xid.errors", count, attributes)

    def _gpu_attributes(self, builder: SnapshotBuilder, bus_id: str) -> dict[str, str]:
        """``hw.pci.bus_id`` plus the GPU's ``hw.id``/``gpu.index``/``hw.model`` when NVML knows it."""
        attributes = {"hw.pci.bus_id": bus_id}
        known = self._xid_gpu.get(bus_id)
        if known is None and self.gpu_by_pci is not None:
            try:
                found = self.gpu_by_pci(bus_id)
            except Exception as exc:  # NVML trouble must not lose the Xid
                log.debug("errors source: gpu_by_pci(%s) failed: %r", bus_id, exc)
                builder.count_error(NAME, "gpu_lookup_failed")
                found = None
            if isinstance(found, str):
                known = {"hw.id": found}
            elif isinstance(found, Mapping):
                known = {key: str(found[key]) for key in GPU if found.get(key) is not None}
            if known:
                self._xid_gpu[bus_id] = known  # a GPU's address does not change while it is up
        if known:
            attributes.update(known)
        return attributes

    def _xid_event(self, builder: SnapshotBuilder, record: XidRecord) -> None:
        info = xid_lookup(record.code)
        attributes = {
            **self._gpu_attributes(builder, record.bus_id),
            "hw.gpu.xid": record.code,
            "xid.severity": info.severity,
            "xid.action": info.action,
            "xid.source": XID_SOURCE,
        }
        when = record.time_unix_nano if record.time_unix_nano is not None else builder.time_unix_nano
        builder.event(
            "gpu.xid",
            info.log_severity,
            f"Xid {record.code} on {record.bus_id}: {info.meaning}. Action: {info.action}. Driver: {record.detail}",
            attributes,
            time_unix_nano=when,
            event_id=f"xid:{record.bus_id}:{record.code}:{when}:{record.record_id}",
        )
