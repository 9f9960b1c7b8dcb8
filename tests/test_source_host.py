"""Host source against the fixture /proc and /sys trees: exact values, odd cases, resets."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.snapshot import Snapshot, SnapshotBuilder
from agent.sources import host as host_module
from agent.sources.host import HostSource

FIXTURES = Path(__file__).parent / "fixtures"
HZ = os.sysconf("SC_CLK_TCK")
TICK = 1_800_000_000_000_000_000


def make_config(procfs: Path, sysfs: Path, *, per_cpu: bool = False) -> AgentConfig:
    config = AgentConfig()
    config.roots.procfs = str(procfs)
    config.roots.sysfs = str(sysfs)
    config.host_per_cpu = per_cpu
    return config


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A private copy of the fixture trees that a test may change."""
    shutil.copytree(FIXTURES / "procfs", tmp_path / "procfs")
    shutil.copytree(FIXTURES / "sysfs", tmp_path / "sysfs")
    return tmp_path


class FakeStatvfs:
    def __init__(self, f_bsize: int, f_frsize: int, f_blocks: int, f_bfree: int, f_bavail: int) -> None:
        self.f_bsize, self.f_frsize = f_bsize, f_frsize
        self.f_blocks, self.f_bfree, self.f_bavail = f_blocks, f_bfree, f_bavail


STATVFS = {
    "/": FakeStatvfs(4096, 4096, 1000, 400, 300),
    "/data": FakeStatvfs(4096, 4096, 2_000_000, 500_000, 500_000),
    "/mnt/scratch space": FakeStatvfs(4096, 1024, 100, 100, 90),
    "/mnt/nfs": FakeStatvfs(1_048_576, 1_048_576, 10, 5, 5),
}


@pytest.fixture
def fake_statvfs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    called: list[str] = []

    def statvfs(path: str) -> FakeStatvfs:
        called.append(path)
        if path not in STATVFS:
            raise FileNotFoundError(2, "No such file or directory", path)
        return STATVFS[path]

    monkeypatch.setattr(host_module.os, "statvfs", statvfs)
    return called


def cycle(source: HostSource, tick: int = TICK, tiers: tuple[str, ...] = ("fast", "slow")) -> Snapshot:
    builder = SnapshotBuilder({}, tick)
    for tier in tiers:
        source.collect(builder, tier)
    return builder.build()


def fixture_source(**kwargs: bool) -> HostSource:
    return HostSource(make_config(FIXTURES / "procfs", FIXTURES / "sysfs", **kwargs))


def test_cpu_time_and_load_exact() -> None:
    snap = cycle(fixture_source(), tiers=("fast",))
    cpu = {dict(p.attributes)["cpu.mode"]: p.value for p in snap.by_name("system.cpu.time")}
    assert cpu == {
        "user": 1000 / HZ,
        "nice": 20 / HZ,
        "system": 300 / HZ,
        "idle": 8000 / HZ,
        "iowait": 50 / HZ,
        "interrupt": 10 / HZ,
        "softirq": 5 / HZ,
        "steal": 2 / HZ,
    }
    # Counters start at the fixture's boot time (btime 1700000000).
    assert {p.start_time_unix_nano for p in snap.by_name("system.cpu.time")} == {1_700_000_000 * 10**9}
    assert snap.value("system.cpu.load_average.1m") == 1.25
    assert snap.value("system.cpu.load_average.5m") == 0.80
    assert snap.value("system.cpu.load_average.15m") == 0.40
    assert snap.by_name("system.cpu.utilization") == []  # needs two readings


def test_per_cpu_is_off_by_default_and_on_when_configured() -> None:
    default = cycle(fixture_source(), tiers=("fast",))
    assert all("cpu.logical_number" not in dict(p.attributes) for p in default.by_name("system.cpu.time"))
    per_cpu = cycle(fixture_source(per_cpu=True), tiers=("fast",))
    assert per_cpu.value("system.cpu.time", cpu__logical_number="1", cpu__mode="user") == 400 / HZ
    assert len(per_cpu.by_name("system.cpu.time")) == 3 * 8


def test_cpu_utilization_from_two_cycles(tree: Path) -> None:
    source = HostSource(make_config(tree / "procfs", tree / "sysfs"))
    cycle(source, TICK, ("fast",))
    stat = (tree / "procfs/stat").read_text()
    # +60 user, +40 idle jiffies (100 total) since the first cycle.
    (tree / "procfs/stat").write_text(stat.replace("cpu  1000 20 300 8000", "cpu  1060 20 300 8040"))
    snap = cycle(source, TICK + 10**10, ("fast",))
    assert snap.value("system.cpu.utilization", cpu__mode="user") == pytest.approx(0.6)
    assert snap.value("system.cpu.utilization", cpu__mode="idle") == pytest.approx(0.4)
    assert snap.value("system.cpu.utilization", cpu__mode="system") == 0.0


def test_cpu_utilization_rounded_to_four_decimals(tree: Path) -> None:
    """A ratio like 1/3 is sent as the short decimal 0.3333, which the store packs as a small integer."""
    source = HostSource(make_config(tree / "procfs", tree / "sysfs"))
    cycle(source, TICK, ("fast",))
    stat = (tree / "procfs/stat").read_text()
    (tree / "procfs/stat").write_text(stat.replace("cpu  1000 20 300 8000", "cpu  1001 20 300 8002"))
    snap = cycle(source, TICK + 10**10, ("fast",))
    assert snap.value("system.cpu.utilization", cpu__mode="user") == 0.3333
    assert snap.value("system.cpu.utilization", cpu__mode="idle") == 0.6667


def test_memory_exact() -> None:
    snap = cycle(fixture_source())
    kib = 1024
    assert snap.value("system.memory.usage", system__memory__state="free") == 4_096_000 * kib
    assert snap.value("system.memory.usage", system__memory__state="buffers") == 512_000 * kib
    # cached includes reclaimable slab, as free(1) does.
    assert snap.value("system.memory.usage", system__memory__state="cached") == (4_000_000 + 600_000) * kib
    assert (
        snap.value("system.memory.usage", system__memory__state="used")
        == (16_384_000 - 4_096_000 - 512_000 - 4_600_000) * kib
    )
    states = sum(p.value for p in snap.by_name("system.memory.usage"))
    assert states == snap.value("system.memory.limit") == 16_384_000 * kib
    assert snap.value("system.linux.memory.available") == 9_000_000 * kib
    assert snap.value("system.paging.usage", system__paging__state="used") == (2_097_152 - 1_048_576) * kib
    assert snap.value("system.paging.usage", system__paging__state="free") == 1_048_576 * kib


def test_pressure_exact_and_malformed_line_counted() -> None:
    snap = cycle(fixture_source(), tiers=("fast",))
    stall = {
        (dict(p.attributes)["system.pressure.resource"], dict(p.attributes)["system.pressure.scope"]): p.value
        for p in snap.by_name("system.pressure.stall_time")
    }
    # io "full" has avg10=garbage: that line is skipped and counted, the rest are exact.
    assert stall == {
        ("cpu", "some"): 123.456789,
        ("cpu", "full"): 0.0,
        ("memory", "some"): 5.0,
        ("memory", "full"): 2.5,
        ("io", "some"): 900.0,
    }
    assert snap.value("system.pressure.avg10", system__pressure__resource="io", system__pressure__scope="some") == 0.12
    assert (
        snap.value("system.pressure.avg10", system__pressure__resource="cpu", system__pressure__scope="some") == 0.015
    )


def test_disks_exact_partitions_and_loop_excluded() -> None:
    snap = cycle(fixture_source(), tiers=("fast",))
    devices = {dict(p.attributes)["system.device"] for p in snap.by_name("system.disk.io")}
    assert devices == {"sda", "nvme0n1", "dm-0"}  # sda1, nvme0n1p1, loop0 excluded; dm-1 malformed
    assert snap.value("system.disk.io", system__device="nvme0n1", disk__io__direction="read") == 987_654 * 512
    assert snap.value("system.disk.io", system__device="nvme0n1", disk__io__direction="write") == 3_456_789 * 512
    assert snap.value("system.disk.operations", system__device="nvme0n1", disk__io__direction="read") == 123_456
    assert snap.value("system.disk.operations", system__device="sda", disk__io__direction="write") == 2000
    assert snap.value("system.disk.io_time", system__device="nvme0n1") == 654.321
    # dm-0 has the short (pre-4.18) 14-field layout and still parses.
    assert snap.value("system.disk.io_time", system__device="dm-0") == 0.21


def test_network_and_tcp_exact() -> None:
    snap = cycle(fixture_source(), tiers=("fast",))
    names = {dict(p.attributes)["network.interface.name"] for p in snap.by_name("system.network.io")}
    assert names == {"lo", "eth0", "ib0"}  # veth excluded, bond0's broken line skipped
    assert (
        snap.value("system.network.io", network__interface__name="eth0", network__io__direction="receive")
        == 81234567890
    )
    assert (
        snap.value("system.network.io", network__interface__name="eth0", network__io__direction="transmit")
        == 9876543210
    )
    assert (
        snap.value("system.network.packet.count", network__interface__name="eth0", network__io__direction="receive")
        == 60_000_000
    )
    assert snap.value("system.network.errors", network__interface__name="eth0", network__io__direction="receive") == 3
    assert (
        snap.value("system.network.packet.dropped", network__interface__name="eth0", network__io__direction="receive")
        == 120
    )
    assert (
        snap.value("system.network.packet.dropped", network__interface__name="eth0", network__io__direction="transmit")
        == 7
    )
    assert snap.value("system.network.tcp.retransmits") == 4321


def test_uptime_and_temperatures_exact() -> None:
    snap = cycle(fixture_source())
    assert snap.value("system.uptime") == 86400.5
    temps = {dict(p.attributes)["hw.id"]: (p.value, dict(p.attributes)) for p in snap.by_name("hw.temperature")}
    assert temps["hwmon0/temp1"] == (
        45.0,
        {"hw.id": "hwmon0/temp1", "hw.name": "coretemp", "hw.sensor_location": "Package id 0"},
    )
    assert temps["hwmon1/temp1"][0] == 38.85
    assert temps["thermal_zone0"] == (
        47.0,
        {"hw.id": "thermal_zone0", "hw.name": "thermal_zone", "hw.sensor_location": "x86_pkg_temp"},
    )
    assert temps["thermal_zone1"][0] == 27.8
    assert "hwmon1/temp2" not in temps  # reads "N/A": skipped and counted
    assert snap.source_errors[("host", "not_available")] == 1


def test_filesystems_exact_and_pseudo_container_mounts_ignored(fake_statvfs: list[str]) -> None:
    snap = cycle(fixture_source(), tiers=("slow",))
    mounts = {dict(p.attributes)["system.filesystem.mountpoint"] for p in snap.by_name("system.filesystem.usage")}
    assert mounts == {"/", "/data", "/mnt/scratch space", "/mnt/nfs"}
    # proc, sysfs, tmpfs, cgroup2, overlay and kubelet pod volumes were never even stat'ed.
    assert set(fake_statvfs) == {"/", "/data", "/mnt/scratch space", "/mnt/nfs", "/gone"}
    assert fake_statvfs.count("/data") == 1  # duplicate mount line read once
    root = {"system.filesystem.mountpoint": "/"}
    assert snap.value("system.filesystem.usage", **_attrs(root, "used")) == (1000 - 400) * 4096
    assert snap.value("system.filesystem.usage", **_attrs(root, "free")) == 300 * 4096
    assert snap.value("system.filesystem.usage", **_attrs(root, "reserved")) == 100 * 4096
    scratch = {"system.filesystem.mountpoint": "/mnt/scratch space"}
    assert snap.value("system.filesystem.usage", **_attrs(scratch, "free")) == 90 * 1024  # f_frsize, not f_bsize
    point = snap.by_name("system.filesystem.usage")[0]
    assert dict(point.attributes)["system.device"] == "/dev/nvme0n1p1"
    assert dict(point.attributes)["system.filesystem.type"] == "ext4"
    # /gone fails statvfs; the "garbage" line is malformed: both skipped and counted.
    assert snap.source_errors[("host", "statvfs_failed")] == 1


def _attrs(base: dict[str, str], state: str) -> dict[str, str]:
    return {k.replace(".", "__"): v for k, v in {**base, "system.filesystem.state": state}.items()}


def test_hung_network_filesystem_times_out_and_is_not_retried_while_stuck(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    calls: list[str] = []

    def statvfs(path: str) -> FakeStatvfs:
        calls.append(path)
        if path == "/mnt/nfs":
            release.wait(5)
        if path not in STATVFS:
            raise FileNotFoundError(path)
        return STATVFS[path]

    monkeypatch.setattr(host_module.os, "statvfs", statvfs)
    monkeypatch.setattr(host_module, "STATVFS_TIMEOUT_S", 0.05)
    source = fixture_source()
    first = cycle(source, tiers=("slow",))
    second = cycle(source, TICK + 10**10, ("slow",))
    release.set()
    assert first.source_errors[("host", "statvfs_timeout")] == 1
    assert second.source_errors[("host", "statvfs_stale")] == 1
    assert calls.count("/mnt/nfs") == 1  # the stuck call was not stacked up
    assert "/data" in {
        dict(p.attributes)["system.filesystem.mountpoint"] for p in second.by_name("system.filesystem.usage")
    }


def test_malformed_lines_are_counted_not_raised() -> None:
    snap = cycle(fixture_source(), tiers=("fast",))
    # diskstats dm-1, net/dev bond0, pressure io full: one each.
    assert snap.source_errors[("host", "malformed_value")] == 3


def test_missing_and_unreadable_files_are_skipped_and_counted(tree: Path) -> None:
    (tree / "procfs/loadavg").unlink()
    (tree / "procfs/meminfo").unlink()
    (tree / "procfs/meminfo").mkdir()  # a directory where a file belongs
    (tree / "procfs/uptime").unlink()
    os.mkfifo(tree / "procfs/uptime")  # a FIFO must not block the cycle
    (tree / "procfs/net/snmp").write_text("Ip: Forwarding\nIp: 1\n")
    source = HostSource(make_config(tree / "procfs", tree / "sysfs"))
    snap = cycle(source)
    assert snap.by_name("system.cpu.load_average.1m") == []
    assert snap.by_name("system.memory.usage") == []
    assert snap.by_name("system.uptime") == []
    assert snap.by_name("system.network.tcp.retransmits") == []
    assert snap.source_errors[("host", "missing_file")] == 1
    assert snap.source_errors[("host", "unreadable_file")] == 3  # meminfo twice (fast + slow), uptime FIFO
    assert snap.by_name("system.cpu.time")  # the rest of the cycle went on


def test_missing_psi_directory_is_a_missing_feature_not_an_error(tree: Path) -> None:
    shutil.rmtree(tree / "procfs/pressure")
    snap = cycle(HostSource(make_config(tree / "procfs", tree / "sysfs")), tiers=("fast",))
    assert snap.by_name("system.pressure.stall_time") == []
    assert ("host", "missing_file") not in snap.source_errors


def test_counter_drop_is_reported_raw_with_a_new_start_time(tree: Path) -> None:
    source = HostSource(make_config(tree / "procfs", tree / "sysfs"))
    first = cycle(source, TICK, ("fast",))
    start = first.by_name("system.network.io")[0].start_time_unix_nano
    net = (tree / "procfs/net/dev").read_text()
    # ib0's 32-bit driver counter wrapped: 4294967000 -> 300.
    (tree / "procfs/net/dev").write_text(net.replace("ib0: 4294967000", "ib0: 300"))
    second = cycle(source, TICK + 10**10, ("fast",))
    wrapped = [
        p
        for p in second.by_name("system.network.io")
        if dict(p.attributes) == {"network.interface.name": "ib0", "network.io.direction": "receive"}
    ]
    assert [p.value for p in wrapped] == [300]  # raw value, no invented delta
    assert wrapped[0].start_time_unix_nano == TICK  # reset visible: restarted after the previous reading
    unchanged = second.value("system.network.io", network__interface__name="eth0", network__io__direction="receive")
    assert unchanged == 81234567890
    eth0 = [p for p in second.by_name("system.network.io") if ("network.interface.name", "eth0") in p.attributes]
    assert {p.start_time_unix_nano for p in eth0} == {start}


def test_real_machine_host_cycle_reports_without_errors() -> None:
    source = HostSource(AgentConfig())
    snap = cycle(source)
    names = {p.name for p in snap.points}
    assert {"system.cpu.time", "system.memory.usage", "system.cpu.load_average.1m", "system.uptime"} <= names
    assert sum(p.value for p in snap.by_name("system.memory.usage")) == snap.value("system.memory.limit")
    assert not [key for key in snap.source_errors if key[1] in ("malformed_value", "collect_failed")]
