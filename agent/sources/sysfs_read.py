"""Safe, cheap readers for sysfs and procfs files, shared by the host, fabric and errors sources.

Every read goes through a :class:`FileReader` bound to one source. A file that is missing,
unreadable (permission, a directory or FIFO where a file was expected), ``N/A (no PMA)`` or
malformed yields ``None``; the problem is logged at debug level and counted on the cycle's
builder as ``builder.count_error(source, reason)``. Nothing here raises out of a cycle.

Reads use ``os.open``/``os.read`` with ``O_NONBLOCK`` (a FIFO planted where a counter should be
cannot block the agent) and no text-mode wrappers: one sysfs attribute costs a few microseconds.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import resource
import stat

from agent.snapshot import SnapshotBuilder

log = logging.getLogger(__name__)

# Skip reasons, as counted in fleetpulse.agent.source.errors{error.type}.
MISSING = "missing_file"
UNREADABLE = "unreadable_file"
NOT_AVAILABLE = "not_available"  # IB counters reading "N/A (no PMA)"
MALFORMED = "malformed_value"

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
# sysfs attributes are at most one page; procfs tables (/proc/stat on big hosts) can be larger.
_CHUNK = 65536
_MAX_BYTES = 8 * 1024 * 1024


def _fd_budget() -> int:
    """How many files one reader may keep open: a small share of the process's fd limit."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return 64
    if soft == resource.RLIM_INFINITY:
        return 256
    return max(0, min(256, soft // 8))


def _pread_all(fd: int) -> bytes:
    data = os.pread(fd, _CHUNK, 0)
    if len(data) < _CHUNK:
        return data
    parts = [data]
    total = len(data)
    while total < _MAX_BYTES:
        chunk = os.pread(fd, _CHUNK, total)
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    return b"".join(parts)


class FileReader:
    """Reads files for one source and counts what it had to skip on the current builder.

    Hot files stay open between cycles and are re-read with one ``pread`` at offset 0 (sysfs and
    seq_file procfs entries regenerate their content on a read from 0): one syscall instead of
    open+read+close, several times cheaper. ``release()`` (called on every slow tick) closes them,
    so a removed or replaced device is picked up within one slow interval.
    """

    __slots__ = ("_budget", "_open", "builder", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.builder: SnapshotBuilder | None = None
        self._open: dict[str, int] = {}
        self._budget = _fd_budget()

    def begin(self, builder: SnapshotBuilder) -> None:
        """Point the skip counters at this cycle's builder."""
        self.builder = builder

    def release(self) -> None:
        """Close every kept file (slow tier, and on close)."""
        for fd in self._open.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._open.clear()

    def skip(self, path: str, reason: str, detail: object = "") -> None:
        log.debug("%s source: skipped %s (%s) %s", self.source, path, reason, detail)
        if self.builder is not None:
            self.builder.count_error(self.source, reason)

    def raw(self, path: str, *, optional: bool = False, keep: bool = True) -> bytes | None:
        """File content, or None (counted unless ``optional`` and simply absent).

        ``keep`` leaves the file open for the next cycle (hot counters); discovery reads pass False.
        """
        fd = self._open.get(path)
        if fd is not None:
            try:
                return _pread_all(fd)
            except OSError:  # device gone (ENODEV) or similar: drop the handle, read afresh
                del self._open[path]
                with contextlib.suppress(OSError):
                    os.close(fd)
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except FileNotFoundError:
            if not optional:
                self.skip(path, MISSING)
            return None
        except OSError as exc:
            self.skip(path, UNREADABLE, errno.errorcode.get(exc.errno or 0, exc))
            return None
        kept = False
        try:
            data = _pread_all(fd)
            if not data and not stat.S_ISREG(os.fstat(fd).st_mode):
                # A FIFO or socket opened non-blocking reads as empty: not a kernel attribute.
                self.skip(path, UNREADABLE, "not a regular file")
                return None
            if keep and len(self._open) < self._budget:
                self._open[path] = fd
                kept = True
            return data
        except OSError as exc:
            # EISDIR (a directory where a file belongs), EACCES, EIO from a driver...
            self.skip(path, UNREADABLE, errno.errorcode.get(exc.errno or 0, exc))
            return None
        finally:
            if not kept:
                os.close(fd)

    def text(self, path: str, *, optional: bool = False, keep: bool = True) -> str | None:
        data = self.raw(path, optional=optional, keep=keep)
        if data is None:
            return None
        try:
            return data.decode().strip()
        except UnicodeDecodeError:
            self.skip(path, MALFORMED, "not UTF-8")
            return None

    def integer(self, path: str, *, optional: bool = False) -> int | None:
        """A file holding one integer (sysfs counters); ``N/A (no PMA)`` and junk are skipped."""
        data = self.raw(path, optional=optional)
        if data is None:
            return None
        try:
            return int(data)
        except ValueError:
            if data.startswith(b"N/A"):
                self.skip(path, NOT_AVAILABLE, data.strip()[:40])
            else:
                self.skip(path, MALFORMED, data.strip()[:40])
            return None

    def lines(self, path: str, *, optional: bool = False) -> list[str] | None:
        text = self.text(path, optional=optional)
        return None if text is None else text.splitlines()


def list_dir(path: str) -> list[str]:
    """Sorted entries of a directory, or [] when it is missing or unreadable."""
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


class ResetTracker:
    """Start times for cumulative counters, so a counter that goes down shows as a reset.

    Values are exported as the kernel gives them (no invented negative deltas, no unwrapping).
    When a series reads lower than last cycle the counter restarted (driver reload, interface
    re-created, 32-bit wrap): its start time moves to the previous observation, which OTLP
    consumers and ClickHouse's ``start_ts`` read as a reset; Prometheus ``rate()`` handles the
    drop itself.
    """

    __slots__ = ("_default_start", "_last")

    def __init__(self, default_start_unix_nano: int) -> None:
        self._default_start = default_start_unix_nano
        # key -> [last value, last observation time, start time]
        self._last: dict[object, list[int | float]] = {}

    def start_for(self, key: object, value: float, now_unix_nano: int) -> int:
        entry = self._last.get(key)
        if entry is None:
            # A start after the (floored) tick would be invalid OTLP: pull the default back once.
            self._default_start = min(self._default_start, now_unix_nano - 1)
            self._last[key] = [value, now_unix_nano, self._default_start]
            return self._default_start
        if value < entry[0]:
            entry[2] = min(int(entry[1]), now_unix_nano - 1)
        entry[0] = value
        entry[1] = now_unix_nano
        return int(entry[2])

    def expire(self, older_than_unix_nano: int) -> None:
        """Forget series not seen since ``older_than`` (device removed): the table cannot grow forever."""
        for key in [k for k, entry in self._last.items() if entry[1] < older_than_unix_nano]:
            del self._last[key]

    def __len__(self) -> int:
        return len(self._last)
