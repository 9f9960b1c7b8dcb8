"""Errors source: EDAC, PCIe AER and kernel-log Xid lines, against fixture trees and log files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.snapshot import Severity, Snapshot
from agent.sources import errors as errors_module
from agent.sources.errors import ErrorsSource, pci_hw_type
from agent.sources.kmsg import KmsgReader, normalize_pci_bus_id, parse_xid
from agent.xid import lookup
from tests.helpers import snapshot_cycle

FIXTURES = Path(__file__).parent / "fixtures"
TICK = 1_800_000_000_000_000_000
XID_LOG = FIXTURES / "kmsg/xid.log"


def source_for(sysfs: Path, kmsg: Path | str, gpu_by_pci=None) -> ErrorsSource:
    config = AgentConfig()
    config.roots.sysfs = str(sysfs)
    config.roots.kmsg = str(kmsg)
    return ErrorsSource(config, gpu_by_pci=gpu_by_pci)


def cycle(source: ErrorsSource, tick: int = TICK, tiers: tuple[str, ...] = ("fast", "slow")) -> Snapshot:
    return snapshot_cycle(source, tick, tiers)


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURES / "sysfs", tmp_path / "sysfs")
    return tmp_path / "sysfs"


# ---------------------------------------------------------------------------- parsing
def test_normalize_pci_bus_id_spellings() -> None:
    assert normalize_pci_bus_id("PCI:0000:3b:00") == "0000:3b:00.0"
    assert normalize_pci_bus_id("00000000:3B:00.0") == "0000:3b:00.0"  # NVML's spelling
    assert normalize_pci_bus_id("0000:AF:00.1") == "0000:af:00.1"
    assert normalize_pci_bus_id("3b:00") == "0000:3b:00.0"


def test_parse_xid_line() -> None:
    record = parse_xid(
        "NVRM: Xid (PCI:0000:18:00): 79, pid=2211, name=python3, GPU has fallen off the bus.", record_id="kmsg:7"
    )
    assert record is not None
    assert (record.bus_id, record.code, record.record_id) == ("0000:18:00.0", 79, "kmsg:7")
    assert record.detail == "pid=2211, name=python3, GPU has fallen off the bus."
    assert parse_xid("NVRM: Xid (PCI:0000:18:00): seventy-nine, garbled") is None
    assert parse_xid("NVRM: GPU at PCI:0000:18:00: GPU-1234") is None


def test_pci_hw_type() -> None:
    assert pci_hw_type("0x030200", "0x10de") == "gpu"
    assert pci_hw_type("0x030000", "0x1a03") == "display"  # the BMC's VGA
    assert pci_hw_type("0x068000", "0x10de") == "nvswitch"
    assert pci_hw_type("0x020700", "0x15b3") == "network"
    assert pci_hw_type("0x060400", "0x1000") == "bridge"
    assert pci_hw_type("0x010802", "0x144d") == "storage"
    assert pci_hw_type(None, None) == "other"
    assert pci_hw_type("zz", "0x10de") == "other"


# ---------------------------------------------------------------------------- EDAC
def test_edac_per_csrow_with_unknown_and_controller_without_csrows() -> None:
    snap = cycle(source_for(FIXTURES / "sysfs", XID_LOG))
    values = {
        (dict(p.attributes)["edac.mc"], dict(p.attributes)["edac.csrow"], dict(p.attributes)["hw.error.type"]): p.value
        for p in snap.by_name("hw.memory.edac.errors")
    }
    assert values == {
        ("0", "0", "corrected"): 3,
        ("0", "1", "corrected"): 2,
        ("0", "unknown", "corrected"): 2,  # ce_noinfo_count: errors the driver could not place
        ("0", "0", "uncorrected"): 0,
        ("0", "1", "uncorrected"): 0,
        ("0", "unknown", "uncorrected"): 0,
        ("1", "all", "corrected"): 0,
        ("1", "all", "uncorrected"): 1,
    }
    # The csrow series of mc0 add up to its ce_count (7): no double counting.
    mc0 = sum(v for (mc, _, kind), v in values.items() if mc == "0" and kind == "corrected")
    assert mc0 == int((FIXTURES / "sysfs/devices/system/edac/mc/mc0/ce_count").read_text())


def test_edac_unreadable_csrow_counted(sysfs: Path) -> None:
    path = sysfs / "devices/system/edac/mc/mc0/csrow1/ce_count"
    path.unlink()
    path.mkdir()
    snap = cycle(source_for(sysfs, XID_LOG), tiers=("fast",))
    assert ("1", "corrected") not in {
        (dict(p.attributes)["edac.csrow"], dict(p.attributes)["hw.error.type"])
        for p in snap.by_name("hw.memory.edac.errors")
    }
    assert snap.source_errors[("errors", "unreadable_file")] == 1


# ---------------------------------------------------------------------------- AER
def aer(snap: Snapshot, bus: str, severity: str, kind: str) -> float:
    return snap.value(
        "hw.pcie.aer.errors", hw__pci__bus_id=bus, hw__pcie__aer__severity=severity, hw__pcie__aer__type=kind
    )


def test_aer_totals_always_and_types_once_non_zero() -> None:
    snap = cycle(source_for(FIXTURES / "sysfs", XID_LOG), tiers=("fast",))
    assert aer(snap, "0000:18:00.0", "correctable", "total") == 4
    assert aer(snap, "0000:18:00.0", "correctable", "RxErr") == 3
    assert aer(snap, "0000:18:00.0", "correctable", "BadTLP") == 1
    assert aer(snap, "0000:18:00.0", "nonfatal", "UnsupReq") == 2
    assert aer(snap, "0000:18:00.0", "fatal", "total") == 0
    assert aer(snap, "0000:17:00.0", "correctable", "Timeout") == 5
    assert aer(snap, "0000:5e:00.0", "fatal", "MalfTLP") == 1
    types = {
        dict(p.attributes)["hw.pci.bus_id"]: dict(p.attributes)["hw.type"] for p in snap.by_name("hw.pcie.aer.errors")
    }
    assert types == {
        "0000:17:00.0": "bridge",
        "0000:18:00.0": "gpu",
        "0000:1a:00.0": "network",
        "0000:3b:00.0": "gpu",
        "0000:5e:00.0": "nvswitch",
    }  # 0000:00:1f.0 has no AER capability
    zero_types = [
        p
        for p in snap.by_name("hw.pcie.aer.errors")
        if dict(p.attributes)["hw.pcie.aer.type"] == "RxErr" and p.value == 0
    ]
    assert zero_types == []
    assert snap.source_errors[("errors", "malformed_value")] == 1  # "BadDLLP x" on 0000:1a:00.0


def test_aer_type_series_persists_after_it_appears(sysfs: Path) -> None:
    source = source_for(sysfs, XID_LOG)
    cycle(source, TICK, ("fast",))
    path = sysfs / "bus/pci/devices/0000:3b:00.0/aer_dev_correctable"
    path.write_text(path.read_text().replace("RxErr 0", "RxErr 2").replace("TOTAL_ERR_COR 0", "TOTAL_ERR_COR 2"))
    second = cycle(source, TICK + 10**10, ("fast",))
    assert aer(second, "0000:3b:00.0", "correctable", "RxErr") == 2
    path.write_text(path.read_text().replace("RxErr 2", "RxErr 0").replace("TOTAL_ERR_COR 2", "TOTAL_ERR_COR 0"))
    third = cycle(source, TICK + 2 * 10**10, ("fast",))
    [point] = [
        p
        for p in third.by_name("hw.pcie.aer.errors")
        if ("hw.pci.bus_id", "0000:3b:00.0") in p.attributes and ("hw.pcie.aer.type", "RxErr") in p.attributes
    ]
    assert point.value == 0 and point.start_time_unix_nano == TICK + 10**10  # cleared: a visible reset


# ---------------------------------------------------------------------------- Xid
def test_xid_events_and_counters_from_a_log_file() -> None:
    snap = cycle(source_for(FIXTURES / "sysfs", XID_LOG), tiers=("fast",))
    events = snap.events
    assert [dict(e.attributes)["hw.gpu.xid"] for e in events] == ["13", "13", "79", "48", "119", "154"]
    fallen = events[2]
    assert fallen.name == "gpu.xid"
    assert fallen.severity == Severity.FATAL == lookup(79).log_severity
    attributes = dict(fallen.attributes)
    assert attributes == {
        "hw.gpu.xid": "79",
        "hw.pci.bus_id": "0000:18:00.0",
        "xid.severity": "fatal",
        "xid.action": lookup(79).action,
        "xid.source": "kernel_log",
    }
    assert "GPU has fallen off the bus" in fallen.body and "pid=2211" in fallen.body
    assert dict(events[4].attributes)["hw.pci.bus_id"] == "0000:af:00.0"  # syslog line, upper-case address
    assert dict(events[5].attributes)["xid.severity"] == "unknown"  # 154 is not in the catalog
    assert len({e.event_id for e in events}) == 6
    counts = {
        (dict(p.attributes)["hw.pci.bus_id"], dict(p.attributes)["hw.gpu.xid"]): p.value
        for p in snap.by_name("hw.gpu.xid.errors")
    }
    assert counts == {
        ("0000:3b:00.0", "13"): 2,
        ("0000:18:00.0", "79"): 1,
        ("0000:86:00.0", "48"): 1,
        ("0000:af:00.0", "119"): 1,
        ("0000:3b:00.0", "154"): 1,
    }
    assert snap.source_errors[("errors", "malformed_xid_line")] == 1  # "seventy-nine"


def test_xid_mapped_to_gpu_when_nvml_knows_the_address() -> None:
    asked: list[str] = []

    def gpu_by_pci(bus_id: str) -> dict[str, object] | None:
        asked.append(bus_id)
        if bus_id == "0000:18:00.0":
            return {"hw.id": "GPU-5b1c", "gpu.index": 0, "hw.model": "NVIDIA H100 80GB HBM3"}
        if bus_id == "0000:86:00.0":
            raise RuntimeError("NVML went away")
        return None

    snap = cycle(source_for(FIXTURES / "sysfs", XID_LOG, gpu_by_pci), tiers=("fast",))
    fallen = next(e for e in snap.events if dict(e.attributes)["hw.gpu.xid"] == "79")
    assert dict(fallen.attributes)["hw.id"] == "GPU-5b1c"
    assert dict(fallen.attributes)["gpu.index"] == "0"
    assert dict(fallen.attributes)["hw.model"] == "NVIDIA H100 80GB HBM3"
    assert snap.value("hw.gpu.xid.errors", hw__id="GPU-5b1c", hw__gpu__xid="79") == 1
    dbe = next(e for e in snap.events if dict(e.attributes)["hw.gpu.xid"] == "48")
    assert "hw.id" not in dict(dbe.attributes)  # lookup failed: Xid kept, failure counted
    assert snap.source_errors[("errors", "gpu_lookup_failed")] >= 1
    assert "0000:18:00.0" in asked


def test_log_followed_between_cycles_and_truncation_restarts(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    log.write_text("6,1,100,-;unrelated\n4,2,200,-;NVRM: Xid (PCI:0000:3b:00): 31, pid=1, name=a, MMU Fault\n")
    source = source_for(tmp_path, log)
    first = cycle(source, TICK, ("fast",))
    assert len(first.events) == 1
    with log.open("a") as f:
        f.write("4,3,300,-;NVRM: Xid (PCI:0000:3b:00): 31, pid=1, name=a, MMU Fault\n4,4,400,-;NVRM: Xid (PCI:0000:3b")
    second = cycle(source, TICK + 10**10, ("fast",))
    assert len(second.events) == 1  # the partial line waits for its end
    assert second.value("hw.gpu.xid.errors", hw__gpu__xid="31") == 2
    with log.open("a") as f:
        f.write(":00): 31, pid=1, name=a, MMU Fault\n")
    third = cycle(source, TICK + 2 * 10**10, ("fast",))
    assert [e.event_id.split(":")[-1] for e in third.events] == ["4"]  # kmsg sequence number kept
    log.write_text("4,9,900,-;NVRM: Xid (PCI:0000:3b:00): 43, pid=1, name=a, channel reset\n")  # rotated in place
    fourth = cycle(source, TICK + 3 * 10**10, ("fast",))
    assert [dict(e.attributes)["hw.gpu.xid"] for e in fourth.events] == ["43"]
    assert fourth.value("hw.gpu.xid.errors", hw__gpu__xid="31") == 3  # counts since the agent started


def test_xid_storm_caps_events_but_counts_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(errors_module, "MAX_XID_EVENTS_PER_CYCLE", 5)
    log = tmp_path / "storm.log"
    log.write_text("".join(f"4,{i},{i},-;NVRM: Xid (PCI:0000:3b:00): 13, pid=9, name=x, ESR\n" for i in range(40)))
    snap = cycle(source_for(tmp_path, log), tiers=("fast",))
    assert len(snap.events) == 5
    assert snap.value("hw.gpu.xid.errors", hw__gpu__xid="13") == 40
    assert snap.source_errors[("errors", "xid_events_suppressed")] == 35


def test_missing_kernel_log_counted_once_and_retried_on_slow_tier(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    source = source_for(tmp_path, log)
    first = cycle(source, TICK)
    second = cycle(source, TICK + 10**10, ("fast",))
    assert first.source_errors[("errors", "kmsg_missing_file")] == 1
    assert not second.source_errors
    log.write_text("4,1,1,-;NVRM: Xid (PCI:0000:3b:00): 94, pid=1, name=a, Contained: SM (0x1)\n")
    cycle(source, TICK + 2 * 10**10, ("slow",))
    third = cycle(source, TICK + 3 * 10**10, ("fast",))
    assert [dict(e.attributes)["xid.severity"] for e in third.events] == ["warning"]


def test_fifo_as_kernel_log_is_rejected_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "kmsg"
    os.mkfifo(fifo)
    snap = cycle(source_for(tmp_path, fifo), tiers=("fast",))
    assert snap.source_errors[("errors", "kmsg_unreadable_file")] == 1


@pytest.mark.skipif(not os.access("/dev/kmsg", os.R_OK), reason="/dev/kmsg not readable here")
def test_dev_kmsg_starts_at_the_current_end() -> None:
    reader = KmsgReader("/dev/kmsg")
    assert reader.open()
    try:
        result = reader.read_new()
        # Boot messages exist, but positioned at the end nothing old is replayed.
        assert result.records == [] and result.lines_seen < 5
    finally:
        reader.close()
