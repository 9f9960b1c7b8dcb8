"""Kernel-log reader for NVIDIA Xid lines (``NVRM: Xid (PCI:0000:3b:00): 79, pid=..., ...``).

NVML Xid events registered after an error are lost, and NVML events carry no message: the
kernel log has both. Two kinds of input:

* ``/dev/kmsg`` (a character device): opened non-blocking and positioned at the *current end*,
  so a restarting agent does not replay old Xids; each ``read()`` returns one record
  (``prio,seq,usec,flags;message``). Records overwritten before we read them (``EPIPE``) are
  counted as an overrun.
* a regular file (tests, replaying a saved ``dmesg`` or ``kern.log``): read from its beginning,
  then followed like ``tail -f``; a truncated file is read again from the start.

The parser is independent of the Xid catalog; severity and action are attached by the errors
source through :mod:`agent.xid`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import time
from dataclasses import dataclass

# DESIGN §5; the group after the code is the driver's free-text detail.
XID_RE = re.compile(r"NVRM: Xid \((PCI:[0-9a-fA-F:.]+)\).*?: (\d+),\s*(.*)")
_KMSG_PREFIX = re.compile(rb"^(\d+),(\d+),(\d+),[^;]*;")
_NEEDLE = b"NVRM: Xid"

MAX_RECORDS_PER_READ = 10_000  # bounds one cycle's work during a log storm
_FILE_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class XidRecord:
    bus_id: str  # normalized sysfs form, e.g. "0000:3b:00.0"
    code: int
    detail: str  # driver text after the code ("pid=..., name=..., GPU has fallen off the bus.")
    message: str  # the whole kernel message
    time_unix_nano: int | None  # from the kmsg timestamp; None when the input has none
    record_id: str  # stable per record: kmsg sequence number or file offset


def normalize_pci_bus_id(raw: str) -> str:
    """Any PCI address spelling → ``dddd:bb:dd.f`` lowercase (the sysfs form).

    Kernel Xid lines print ``PCI:0000:3b:00`` (no function); NVML prints ``00000000:3B:00.0``.
    """
    text = raw.strip().lower().removeprefix("pci:")
    head, _, function = text.partition(".")
    parts = head.split(":")
    if len(parts) == 2:  # bus:device without a domain
        parts.insert(0, "0")
    if len(parts) != 3:
        return text
    domain, bus, device = parts
    try:
        return f"{int(domain, 16):04x}:{int(bus, 16):02x}:{int(device, 16):02x}.{int(function or '0', 16)}"
    except ValueError:
        return text


def parse_xid(message: str, *, record_id: str = "", time_unix_nano: int | None = None) -> XidRecord | None:
    match = XID_RE.search(message)
    if match is None:
        return None
    return XidRecord(
        bus_id=normalize_pci_bus_id(match.group(1)),
        code=int(match.group(2)),
        detail=match.group(3).strip(),
        message=message[match.start() :].strip(),
        time_unix_nano=time_unix_nano,
        record_id=record_id,
    )


@dataclass(slots=True)
class ReadResult:
    records: list[XidRecord]
    lines_seen: int = 0
    malformed: int = 0  # lines that mention "NVRM: Xid" but do not parse
    overruns: int = 0  # kmsg records lost before we could read them


class KmsgReader:
    """Incremental reader of Xid records from /dev/kmsg or a plain file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._is_device = False
        self._offset = 0
        self._pending = b""  # a partial last line of a plain file
        self.open_error: str | None = None

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def open(self) -> bool:
        """Open the log; on failure ``open_error`` says why (missing_file / unreadable_file)."""
        if self._fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            self.open_error = "missing_file"
            return False
        except OSError as exc:
            self.open_error = f"unreadable_file ({errno.errorcode.get(exc.errno or 0, exc)})"
            return False
        mode = os.fstat(fd).st_mode
        if stat.S_ISCHR(mode):
            with contextlib.suppress(OSError):
                os.lseek(fd, 0, os.SEEK_END)  # only records logged from now on
            self._is_device = True
        elif not stat.S_ISREG(mode):
            os.close(fd)
            self.open_error = "unreadable_file (not a file or character device)"
            return False
        self._fd = fd
        self.open_error = None
        return True

    def read_new(self) -> ReadResult:
        if self._fd is None:
            return ReadResult([])
        return self._read_device() if self._is_device else self._read_file()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # ------------------------------------------------------------------ /dev/kmsg
    def _read_device(self) -> ReadResult:
        assert self._fd is not None
        result = ReadResult([])
        # kmsg stamps records with the kernel's monotonic clock (µs since boot).
        offset_ns = time.time_ns() - time.monotonic_ns()
        for _ in range(MAX_RECORDS_PER_READ):
            try:
                record = os.read(self._fd, 8192)
            except BlockingIOError:
                break
            except BrokenPipeError:
                result.overruns += 1  # the ring buffer wrapped past us; the next read resyncs
                continue
            except OSError:
                break
            if not record:
                break
            result.lines_seen += 1
            if _NEEDLE not in record:
                continue
            prefix = _KMSG_PREFIX.match(record)
            if prefix is None:
                result.malformed += 1
                continue
            message = record[prefix.end() :].split(b"\n", 1)[0].decode(errors="replace")
            xid = parse_xid(
                message,
                record_id=f"kmsg:{int(prefix.group(2))}",
                time_unix_nano=offset_ns + int(prefix.group(3)) * 1000,
            )
            if xid is None:
                result.malformed += 1
            else:
                result.records.append(xid)
        return result

    # ------------------------------------------------------------------ plain file
    def _read_file(self) -> ReadResult:
        assert self._fd is not None
        result = ReadResult([])
        try:
            size = os.fstat(self._fd).st_size
            if size < self._offset:  # truncated or rotated in place: start over
                self._offset, self._pending = 0, b""
            data = os.pread(self._fd, _FILE_CHUNK, self._offset)
        except OSError:
            return result
        if not data:
            return result
        chunk_start = self._offset - len(self._pending)
        data = self._pending + data
        self._offset += len(data) - len(self._pending)
        cut = data.rfind(b"\n") + 1
        self._pending = data[cut:]
        position = chunk_start
        for raw_line in data[:cut].split(b"\n")[:-1]:
            line_offset = position
            position += len(raw_line) + 1
            result.lines_seen += 1
            if _NEEDLE not in raw_line:
                continue
            prefix = _KMSG_PREFIX.match(raw_line)
            record_id = f"kmsg:{int(prefix.group(2))}" if prefix else f"offset:{line_offset}"
            xid = parse_xid(raw_line.decode(errors="replace"), record_id=record_id)
            if xid is None:
                result.malformed += 1
            else:
                result.records.append(xid)
        return result
