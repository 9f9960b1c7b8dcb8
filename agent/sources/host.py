"""Host source: CPU, load, memory, PSI pressure, disks, filesystems, network, uptime, temperatures.

Everything is read straight from files under the configured roots (``config.roots.procfs`` and
``config.roots.sysfs``) so a fixture tree or a host ``/proc`` mounted into a container works the
same. psutil is not used here: it always reads the real ``/proc`` of this process. The only call
that does not go through a root is ``os.statvfs`` on the mount points listed in
``<procfs>/self/mounts`` (there is no file to read instead).

Which metric goes in which tier follows the catalog (``MetricSpec.tier``); the slow tier also
refreshes the cached device lists (hwmon sensors, thermal zones, PSI availability).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time

from agent.config import AgentConfig
from agent.snapshot import SnapshotBuilder
from agent.sources.sysfs_read import MALFORMED, FileReader, ResetTracker, list_dir

log = logging.getLogger(__name__)

NAME = "host"

# /proc/stat cpu columns we export; guest time is already inside user/nice, so it is left out.
CPU_MODES = ("user", "nice", "system", "idle", "iowait", "interrupt", "softirq", "steal")
# Utilization fractions are rounded to 1e-4 (stated in the catalog).
UTILIZATION_DECIMALS = 4

# node_exporter's default: whole disks and device-mapper volumes, not partitions or loop/ram.
DISK_EXCLUDE = re.compile(r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$")
# Per-pod veth pairs churn a new series per pod; the node's own NICs are what SREs read.
NET_EXCLUDE = re.compile(r"^(veth|cali|lxc|gke|azv)[0-9a-zA-Z]")

# Pseudo and container filesystems carry no capacity worth alerting on (node_exporter defaults,
# plus tmpfs/ramfs and the kubelet's per-pod volumes).
PSEUDO_FS = frozenset(
    {
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "efivarfs",
        "fusectl",
        "hugetlbfs",
        "iso9660",
        "mqueue",
        "nsfs",
        "overlay",
        "proc",
        "procfs",
        "pstore",
        "ramfs",
        "rpc_pipefs",
        "securityfs",
        "selinuxfs",
        "squashfs",
        "erofs",
        "sysfs",
        "tracefs",
        "tmpfs",
        "fuse.lxcfs",
        "fuse.gvfsd-fuse",
        "nfsd",
    }
)
MOUNT_EXCLUDE = re.compile(
    r"^/(dev|proc|sys|run/credentials/.+|run/containerd/.+|run/k3s/.+|var/lib/docker/.+"
    r"|var/lib/containers/storage/.+|var/lib/containerd/.+|var/lib/kubelet/pods/.+)($|/)"
)
# statvfs on these can hang when the server is away: it runs in a thread with a timeout.
NETWORK_FS = re.compile(r"^(nfs4?|cifs|smb3?|ceph|lustre|gpfs|beegfs|wekafs|9p|glusterfs|fuse\..*)$")
STATVFS_TIMEOUT_S = 1.0

_MEMINFO_KEYS = {
    b"MemTotal": "total",
    b"MemFree": "free",
    b"MemAvailable": "available",
    b"Buffers": "buffers",
    b"Cached": "cached",
    b"SReclaimable": "sreclaimable",
    b"SwapTotal": "swap_total",
    b"SwapFree": "swap_free",
}
_PSI_RESOURCES = ("cpu", "memory", "io")
_MOUNT_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape_mount(field: str) -> str:
    return _MOUNT_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


class HostSource:
    name = NAME

    def __init__(self, config: AgentConfig) -> None:
        self.proc = config.roots.procfs.rstrip("/") or "/"
        self.sys = config.roots.sysfs.rstrip("/") or "/"
        self.per_cpu = config.host_per_cpu
        self.reader = FileReader(NAME)
        self._ticks_per_s = float(os.sysconf("SC_CLK_TCK"))
        self._boot_unix_nano: int | None = None
        self._resets = ResetTracker(time.time_ns())
        self._last_cpu: dict[str, list[int]] = {}
        self._sensors: list[tuple[str, dict[str, str]]] | None = None  # (path, attributes)
        self._psi_present: bool | None = None
        self._statvfs_pending: set[str] = set()

    # ------------------------------------------------------------------ protocol
    def collect(self, builder: SnapshotBuilder, tier: str) -> None:
        self.reader.begin(builder)
        steps = self._FAST if tier == "fast" else self._SLOW
        for step in steps:
            try:
                step(self, builder)
            except Exception as exc:  # a parser bug must not take the cycle down
                log.debug("host source: %s failed: %r", step.__name__, exc, exc_info=True)
                builder.count_error(NAME, "collect_failed")

    def close(self) -> None:
        self.reader.release()
        self._statvfs_pending.clear()

    # ------------------------------------------------------------------ helpers
    def _counter(self, builder: SnapshotBuilder, name: str, value: float, attributes: dict[str, str]) -> None:
        key = (name, *attributes.values())
        start = self._resets.start_for(key, value, builder.time_unix_nano)
        builder.add(name, value, attributes, start_time_unix_nano=start)

    # ------------------------------------------------------------------ /proc/stat
    def _cpu(self, builder: SnapshotBuilder) -> None:
        lines = self.reader.lines(f"{self.proc}/stat")
        if lines is None:
            return
        for line in lines:
            if line.startswith("btime "):
                self._set_boot_time(line)
                break
        tick = self._ticks_per_s
        for line in lines:
            if not line.startswith("cpu"):
                continue
            label, _, rest = line.partition(" ")
            aggregate = label == "cpu"
            if not aggregate and not self.per_cpu:
                continue
            try:
                jiffies = [int(v) for v in rest.split()[: len(CPU_MODES)]]
            except ValueError:
                jiffies = []
            if len(jiffies) < 4:  # user nice system idle are always there
                self.reader.skip(f"{self.proc}/stat", MALFORMED, line[:60])
                continue
            base = {} if aggregate else {"cpu.logical_number": label[3:]}
            for mode, value in zip(CPU_MODES, jiffies, strict=False):
                self._counter(builder, "system.cpu.time", value / tick, {**base, "cpu.mode": mode})
            self._utilization(builder, label, jiffies, base)

    def _set_boot_time(self, line: str) -> None:
        try:
            boot = int(line[6:]) * 1_000_000_000
        except ValueError:
            self.reader.skip(f"{self.proc}/stat", MALFORMED, line[:60])
            return
        if boot != self._boot_unix_nano:
            # Kernel counters started at boot; a new boot time means every counter restarted.
            self._boot_unix_nano = boot
            self._resets = ResetTracker(boot)

    def _utilization(self, builder: SnapshotBuilder, label: str, jiffies: list[int], base: dict[str, str]) -> None:
        previous = self._last_cpu.get(label)
        self._last_cpu[label] = jiffies
        if previous is None or len(previous) != len(jiffies):
            return  # utilization needs two readings
        deltas = [now - before for now, before in zip(jiffies, previous, strict=True)]
        total = sum(deltas)
        if total <= 0 or min(deltas) < 0:
            return  # no time passed, or the counters went backwards (hotplug): skip this cycle
        for mode, delta in zip(CPU_MODES, deltas, strict=False):
            # 1e-4 is finer than jiffies allow (100 Hz x 10 s = 1e-3 per CPU) and stores as a short decimal.
            builder.add(
                "system.cpu.utilization", round(delta / total, UTILIZATION_DECIMALS), {**base, "cpu.mode": mode}
            )

    def _load(self, builder: SnapshotBuilder) -> None:
        text = self.reader.text(f"{self.proc}/loadavg")
        if text is None:
            return
        try:
            one, five, fifteen = (float(v) for v in text.split()[:3])
        except ValueError:
            self.reader.skip(f"{self.proc}/loadavg", MALFORMED, text[:60])
            return
        builder.add("system.cpu.load_average.1m", one)
        builder.add("system.cpu.load_average.5m", five)
        builder.add("system.cpu.load_average.15m", fifteen)

    # ------------------------------------------------------------------ memory
    def _meminfo(self) -> dict[str, int] | None:
        path = f"{self.proc}/meminfo"
        data = self.reader.raw(path)
        if data is None:
            return None
        values: dict[str, int] = {}
        for line in data.split(b"\n"):
            key, _, rest = line.partition(b":")
            name = _MEMINFO_KEYS.get(key)
            if name is None:
                continue
            parts = rest.split()
            try:
                number = int(parts[0])
            except (IndexError, ValueError):
                self.reader.skip(path, MALFORMED, line[:60])
                continue
            values[name] = number * 1024 if len(parts) > 1 and parts[1] == b"kB" else number
        if "total" not in values or "free" not in values:
            self.reader.skip(path, MALFORMED, "MemTotal/MemFree missing")
            return None
        return values

    def _memory(self, builder: SnapshotBuilder) -> None:
        mem = self._meminfo()
        if mem is None:
            return
        buffers = mem.get("buffers", 0)
        cached = mem.get("cached", 0) + mem.get("sreclaimable", 0)
        # As free(1): used excludes page cache, buffers and reclaimable slab; the four states sum to total.
        used = mem["total"] - mem["free"] - buffers - cached
        for state, value in (("used", used), ("free", mem["free"]), ("buffers", buffers), ("cached", cached)):
            builder.add("system.memory.usage", value, {"system.memory.state": state})
        if "available" in mem:
            builder.add("system.linux.memory.available", mem["available"])
        if "swap_total" in mem and "swap_free" in mem:
            builder.add("system.paging.usage", mem["swap_total"] - mem["swap_free"], {"system.paging.state": "used"})
            builder.add("system.paging.usage", mem["swap_free"], {"system.paging.state": "free"})

    def _memory_limit(self, builder: SnapshotBuilder) -> None:
        mem = self._meminfo()
        if mem is not None:
            builder.add("system.memory.limit", mem["total"])

    # ------------------------------------------------------------------ PSI
    def _pressure(self, builder: SnapshotBuilder) -> None:
        if self._psi_present is None:
            # A kernel without PSI has no /proc/pressure: a missing feature, not an error.
            self._psi_present = os.path.isdir(f"{self.proc}/pressure")
        if not self._psi_present:
            return
        for resource in _PSI_RESOURCES:
            path = f"{self.proc}/pressure/{resource}"
            lines = self.reader.lines(path)
            if lines is None:
                continue
            for line in lines:
                scope, _, rest = line.partition(" ")
                fields = dict(item.split("=", 1) for item in rest.split() if "=" in item)
                try:
                    avg10 = float(fields["avg10"])
                    total_us = int(fields["total"])
                except (KeyError, ValueError):
                    self.reader.skip(path, MALFORMED, line[:60])
                    continue
                attributes = {"system.pressure.resource": resource, "system.pressure.scope": scope}
                self._counter(builder, "system.pressure.stall_time", total_us / 1e6, attributes)
                # The kernel prints percent with 2 decimals: 4 decimals hold the fraction exactly.
                builder.add("system.pressure.avg10", round(avg10 / 100.0, 4), attributes)

    # ------------------------------------------------------------------ disks
    def _disks(self, builder: SnapshotBuilder) -> None:
        path = f"{self.proc}/diskstats"
        lines = self.reader.lines(path)
        if lines is None:
            return
        for line in lines:
            parts = line.split()
            if len(parts) < 14:
                self.reader.skip(path, MALFORMED, line[:60])
                continue
            device = parts[2]
            if DISK_EXCLUDE.match(device):
                continue
            try:
                reads, read_sectors, writes, write_sectors, io_ms = (
                    int(parts[3]),
                    int(parts[5]),
                    int(parts[7]),
                    int(parts[9]),
                    int(parts[12]),
                )
            except ValueError:
                self.reader.skip(path, MALFORMED, line[:60])
                continue
            # diskstats sectors are always 512 bytes, whatever the device's own sector size.
            self._counter(
                builder, "system.disk.io", read_sectors * 512, {"system.device": device, "disk.io.direction": "read"}
            )
            self._counter(
                builder, "system.disk.io", write_sectors * 512, {"system.device": device, "disk.io.direction": "write"}
            )
            self._counter(
                builder, "system.disk.operations", reads, {"system.device": device, "disk.io.direction": "read"}
            )
            self._counter(
                builder, "system.disk.operations", writes, {"system.device": device, "disk.io.direction": "write"}
            )
            self._counter(builder, "system.disk.io_time", io_ms / 1000.0, {"system.device": device})

    # ------------------------------------------------------------------ network
    def _network(self, builder: SnapshotBuilder) -> None:
        path = f"{self.proc}/net/dev"
        lines = self.reader.lines(path)
        if lines is None:
            return
        for line in lines[2:]:  # two header lines
            name, sep, rest = line.partition(":")
            name = name.strip()
            if not sep or not name:
                self.reader.skip(path, MALFORMED, line[:60])
                continue
            if NET_EXCLUDE.match(name):
                continue
            try:
                f = [int(v) for v in rest.split()]
            except ValueError:
                self.reader.skip(path, MALFORMED, line[:60])
                continue
            if len(f) < 16:
                self.reader.skip(path, MALFORMED, line[:60])
                continue
            for direction, bytes_, packets, errors, drops in (
                ("receive", f[0], f[1], f[2], f[3]),
                ("transmit", f[8], f[9], f[10], f[11]),
            ):
                attributes = {"network.interface.name": name, "network.io.direction": direction}
                self._counter(builder, "system.network.io", bytes_, attributes)
                self._counter(builder, "system.network.packet.count", packets, attributes)
                self._counter(builder, "system.network.errors", errors, attributes)
                self._counter(builder, "system.network.packet.dropped", drops, attributes)

    def _tcp(self, builder: SnapshotBuilder) -> None:
        path = f"{self.proc}/net/snmp"
        lines = self.reader.lines(path)
        if lines is None:
            return
        tcp = [line.split()[1:] for line in lines if line.startswith("Tcp:")]
        if len(tcp) < 2:
            self.reader.skip(path, MALFORMED, "no Tcp: header and value lines")
            return
        header, values = tcp[0], tcp[1]
        try:
            retransmits = int(values[header.index("RetransSegs")])
        except (ValueError, IndexError):
            self.reader.skip(path, MALFORMED, "Tcp RetransSegs")
            return
        self._counter(builder, "system.network.tcp.retransmits", retransmits, {})

    # ------------------------------------------------------------------ uptime
    def _uptime(self, builder: SnapshotBuilder) -> None:
        path = f"{self.proc}/uptime"
        text = self.reader.text(path)
        if text is None:
            return
        try:
            builder.add("system.uptime", float(text.split()[0]))
        except (ValueError, IndexError):
            self.reader.skip(path, MALFORMED, text[:60])

    # ------------------------------------------------------------------ filesystems
    def _filesystems(self, builder: SnapshotBuilder) -> None:
        path = f"{self.proc}/self/mounts"
        text = self.reader.text(path, keep=False)
        lines = None if text is None else text.splitlines()
        if lines is None:
            return
        seen: set[str] = set()
        for line in lines:
            parts = line.split()
            if len(parts) < 3:
                self.reader.skip(path, MALFORMED, line[:60])
                continue
            device, mountpoint, fstype = _unescape_mount(parts[0]), _unescape_mount(parts[1]), parts[2]
            if fstype in PSEUDO_FS or MOUNT_EXCLUDE.match(mountpoint) or mountpoint in seen:
                continue
            seen.add(mountpoint)
            st = self._statvfs(mountpoint, fstype)
            if st is None:
                continue
            size = st.f_frsize or st.f_bsize
            attributes = {
                "system.device": device,
                "system.filesystem.mountpoint": mountpoint,
                "system.filesystem.type": fstype,
            }
            for state, blocks in (
                ("used", st.f_blocks - st.f_bfree),
                ("free", st.f_bavail),
                ("reserved", st.f_bfree - st.f_bavail),
            ):
                builder.add("system.filesystem.usage", blocks * size, {**attributes, "system.filesystem.state": state})

    def _statvfs(self, mountpoint: str, fstype: str) -> os.statvfs_result | None:
        if not NETWORK_FS.match(fstype):
            try:
                return os.statvfs(mountpoint)
            except OSError as exc:
                self.reader.skip(mountpoint, "statvfs_failed", exc)
                return None
        if mountpoint in self._statvfs_pending:
            self.reader.skip(mountpoint, "statvfs_stale")  # an earlier call still hangs
            return None
        box: list[os.statvfs_result | BaseException] = []

        def call() -> None:
            try:
                box.append(os.statvfs(mountpoint))
            except OSError as exc:
                box.append(exc)
            finally:
                self._statvfs_pending.discard(mountpoint)

        self._statvfs_pending.add(mountpoint)
        worker = threading.Thread(target=call, name=f"statvfs {mountpoint}", daemon=True)
        worker.start()
        worker.join(STATVFS_TIMEOUT_S)
        if not box:
            self.reader.skip(mountpoint, "statvfs_timeout")
            return None
        result = box[0]
        if isinstance(result, BaseException):
            self.reader.skip(mountpoint, "statvfs_failed", result)
            return None
        return result

    # ------------------------------------------------------------------ temperatures
    def _discover_sensors(self) -> list[tuple[str, dict[str, str]]]:
        sensors: list[tuple[str, dict[str, str]]] = []
        hwmon_root = f"{self.sys}/class/hwmon"
        for hwmon in list_dir(hwmon_root):
            base = f"{hwmon_root}/{hwmon}"
            chip = self.reader.text(f"{base}/name", optional=True, keep=False) or hwmon
            for entry in list_dir(base):
                if not (entry.startswith("temp") and entry.endswith("_input")):
                    continue
                sensor = entry[: -len("_input")]
                label = self.reader.text(f"{base}/{sensor}_label", optional=True, keep=False) or sensor
                sensors.append(
                    (f"{base}/{entry}", {"hw.id": f"{hwmon}/{sensor}", "hw.name": chip, "hw.sensor_location": label})
                )
        thermal_root = f"{self.sys}/class/thermal"
        for zone in list_dir(thermal_root):
            if not zone.startswith("thermal_zone"):
                continue
            kind = self.reader.text(f"{thermal_root}/{zone}/type", optional=True, keep=False) or zone
            sensors.append(
                (f"{thermal_root}/{zone}/temp", {"hw.id": zone, "hw.name": "thermal_zone", "hw.sensor_location": kind})
            )
        return sensors

    def _temperatures(self, builder: SnapshotBuilder) -> None:
        if self._sensors is None:
            self._sensors = self._discover_sensors()
        for path, attributes in self._sensors:
            millidegrees = self.reader.integer(path)
            if millidegrees is not None:
                builder.add("hw.temperature", millidegrees / 1000.0, attributes)

    def _refresh(self, builder: SnapshotBuilder) -> None:
        self.reader.release()
        self._sensors = self._discover_sensors()
        self._psi_present = None
        self._resets.expire(builder.time_unix_nano - 3600 * 1_000_000_000)

    _FAST = (_cpu, _load, _memory, _pressure, _disks, _network, _tcp, _temperatures)
    _SLOW = (_refresh, _memory_limit, _uptime, _filesystems)
