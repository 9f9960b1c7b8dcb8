"""The offline buffer: a bounded FIFO of serialized OTLP requests, on disk or in memory.

On disk (``buffer.dir``) it is a set of append-only segment files ``seg-<seq>.fpb`` plus a
``cursor`` file. Each record is framed as::

    b"FP" | u32 body length | u32 CRC-32 of body | body
    body = u8 signal (1 metrics, 2 logs) | u32 point count | u64 created unix ns | request bytes

- Append: frames are written to the newest segment (a new one starts past ``segment_bytes``),
  flushed, and fsynced when ``fsync`` is on (the default: one fsync per appended group, i.e. at most
  one per sampling cycle). kill -9 loses nothing either way (written data is in the page cache);
  fsync protects against power loss.
- Delivery: ``peek()`` returns the oldest record, ``pop()`` marks it delivered and rewrites the
  cursor atomically (temp file + rename). A crash between a successful send and the cursor write
  re-sends that one request after restart: at-least-once on a crash, exactly once otherwise.
  Segments wholly behind the cursor are deleted.
- Open: every segment from the cursor on is scanned; a record whose frame or CRC is bad at the end
  of the newest segment is a torn write (kill -9 mid-append): it is counted and the file truncated
  there. A bad record inside an older segment skips the rest of that segment (counted as corrupt).
- Bounds: past ``max_bytes`` of pending records the oldest are dropped, and records older than
  ``max_age_s`` are dropped when they reach the head; both are counted in points.
"""

from __future__ import annotations

import logging
import os
import struct
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

MAGIC = b"FP"
FRAME = struct.Struct("<2sII")  # magic, body length, crc32
BODY = struct.Struct("<BIQ")  # signal, points, created ns
SIGNALS = {"metrics": 1, "logs": 2}
SIGNAL_NAMES = {v: k for k, v in SIGNALS.items()}
MAX_RECORD = 64 * 1024 * 1024


@dataclass(slots=True)
class Batch:
    signal: str  # "metrics" | "logs"
    payload: bytes
    points: int
    created_ns: int = field(default_factory=time.time_ns)

    @property
    def size(self) -> int:
        return FRAME.size + BODY.size + len(self.payload)


@dataclass(slots=True)
class BufferStats:
    dropped_overflow_points: int = 0
    dropped_expired_points: int = 0
    torn_records: int = 0
    corrupt_records: int = 0


class MemoryBuffer:
    """Same contract as :class:`DiskBuffer`, kept in RAM (``buffer.dir`` unset): lost on restart."""

    def __init__(self, max_bytes: int, max_age_s: float) -> None:
        self.max_bytes = max_bytes
        self.max_age_ns = int(max_age_s * 1e9)
        self._items: deque[Batch] = deque()
        self.bytes = 0
        self.points = 0
        self.stats = BufferStats()

    def __len__(self) -> int:
        return len(self._items)

    def append(self, batches: list[Batch]) -> None:
        for b in batches:
            self._items.append(b)
            self.bytes += b.size
            self.points += b.points
        while self.bytes > self.max_bytes and len(self._items) > 1:
            self.stats.dropped_overflow_points += self._discard().points

    def _discard(self) -> Batch:
        b = self._items.popleft()
        self.bytes -= b.size
        self.points -= b.points
        return b

    def peek(self) -> Batch | None:
        horizon = time.time_ns() - self.max_age_ns
        while self._items and self._items[0].created_ns < horizon:
            self.stats.dropped_expired_points += self._discard().points
        return self._items[0] if self._items else None

    def pop(self) -> None:
        self._discard()

    def close(self) -> None:
        pass


@dataclass(slots=True)
class _Ref:
    seq: int
    offset: int
    size: int  # whole frame
    signal: str
    points: int
    created_ns: int


class DiskBuffer:
    def __init__(self, directory: str | Path, max_bytes: int, max_age_s: float, *, fsync: bool = True) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.max_age_ns = int(max_age_s * 1e9)
        self.fsync = fsync
        self.segment_bytes = min(max(max_bytes // 16, 64 * 1024), 8 * 1024 * 1024)
        self.stats = BufferStats()
        self._refs: deque[_Ref] = deque()
        self.bytes = 0
        self.points = 0
        self._writer = None
        self._writer_seq = -1
        self._writer_size = 0
        self._reader = None
        self._reader_seq = -1
        # Oldest segment possibly still on disk: lets pop() delete spent segments without listing the directory.
        self._oldest_seq = 0
        self._recover()

    # ------------------------------------------------------------------ open / recovery
    def _segment(self, seq: int) -> Path:
        return self.dir / f"seg-{seq:016d}.fpb"

    def _segments(self) -> list[int]:
        return sorted(int(p.name[4:20]) for p in self.dir.glob("seg-*.fpb"))

    def _read_cursor(self) -> tuple[int, int]:
        try:
            seq, offset = (self.dir / "cursor").read_text().split()
            return int(seq), int(offset)
        except (OSError, ValueError):
            return -1, 0

    def _write_cursor(self) -> None:
        head = (self._refs[0].seq, self._refs[0].offset) if self._refs else (self._writer_seq, self._writer_size)
        tmp = self.dir / "cursor.tmp"
        tmp.write_text(f"{head[0]} {head[1]}\n")
        os.replace(tmp, self.dir / "cursor")

    def _recover(self) -> None:
        cursor_seq, cursor_offset = self._read_cursor()
        segments = self._segments()
        self._oldest_seq = max(segments[0], cursor_seq) if segments else max(cursor_seq, 0)
        for i, seq in enumerate(segments):
            path = self._segment(seq)
            if seq < cursor_seq:
                path.unlink(missing_ok=True)
                continue
            start = cursor_offset if seq == cursor_seq else 0
            self._scan(seq, start, last=i == len(segments) - 1)
        if cursor_seq > self._writer_seq:
            self._writer_seq, self._writer_size = cursor_seq, 0
        if self._refs or segments:
            log.info(
                "disk buffer %s: %d pending requests (%d points, %d bytes) recovered",
                self.dir,
                len(self._refs),
                self.points,
                self.bytes,
            )

    def _scan(self, seq: int, start: int, *, last: bool) -> None:
        path = self._segment(seq)
        data = path.read_bytes()
        offset = start
        while offset < len(data):
            ref = self._parse(data, offset, seq)
            if ref is None:
                if last:
                    self.stats.torn_records += 1
                    log.warning("disk buffer %s: torn record at offset %d (partial write); truncated", path, offset)
                    with open(path, "r+b") as f:
                        f.truncate(offset)
                else:
                    self.stats.corrupt_records += 1
                    log.warning("disk buffer %s: corrupt record at offset %d; rest of segment skipped", path, offset)
                break
            self._add_ref(ref)
            offset += ref.size
        if last:
            self._writer_seq = seq
            self._writer_size = path.stat().st_size

    @staticmethod
    def _parse(data: bytes, offset: int, seq: int) -> _Ref | None:
        if len(data) - offset < FRAME.size + BODY.size:
            return None
        magic, length, crc = FRAME.unpack_from(data, offset)
        body_at = offset + FRAME.size
        if magic != MAGIC or length < BODY.size or length > MAX_RECORD or body_at + length > len(data):
            return None
        if zlib.crc32(data[body_at : body_at + length]) != crc:
            return None
        signal, points, created = BODY.unpack_from(data, body_at)
        if signal not in SIGNAL_NAMES:
            return None
        return _Ref(seq, offset, FRAME.size + length, SIGNAL_NAMES[signal], points, created)

    def _add_ref(self, ref: _Ref) -> None:
        self._refs.append(ref)
        self.bytes += ref.size
        self.points += ref.points

    # ------------------------------------------------------------------ queue operations
    def __len__(self) -> int:
        return len(self._refs)

    def append(self, batches: list[Batch]) -> None:
        if not batches:
            return
        for b in batches:
            if self._writer is None or self._writer_size >= self.segment_bytes:
                self._roll()
            body = BODY.pack(SIGNALS[b.signal], b.points, b.created_ns) + b.payload
            frame = FRAME.pack(MAGIC, len(body), zlib.crc32(body)) + body
            self._writer.write(frame)
            self._add_ref(_Ref(self._writer_seq, self._writer_size, len(frame), b.signal, b.points, b.created_ns))
            self._writer_size += len(frame)
        self._writer.flush()
        if self.fsync:
            os.fsync(self._writer.fileno())
        while self.bytes > self.max_bytes and len(self._refs) > 1:
            self.stats.dropped_overflow_points += self._discard().points
            self._advance()

    def _roll(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._writer_seq += 1
        elif self._writer_seq < 0 or self._writer_size >= self.segment_bytes:
            self._writer_seq += 1
        # Otherwise: reopen the newest segment found at start (already truncated to its last good record).
        self._writer = open(self._segment(self._writer_seq), "ab")  # noqa: SIM115 - long-lived handle
        self._writer_size = self._writer.tell()

    def _discard(self) -> _Ref:
        ref = self._refs.popleft()
        self.bytes -= ref.size
        self.points -= ref.points
        return ref

    def _advance(self) -> None:
        """Persist the new head and delete segments wholly behind it."""
        self._write_cursor()
        head_seq = self._refs[0].seq if self._refs else self._writer_seq
        # Segment numbers only grow, so everything in [oldest, head) is spent.
        while self._oldest_seq < head_seq:
            seq = self._oldest_seq
            if seq == self._reader_seq and self._reader is not None:
                self._reader.close()
                self._reader, self._reader_seq = None, -1
            self._segment(seq).unlink(missing_ok=True)
            self._oldest_seq += 1

    def peek(self) -> Batch | None:
        horizon = time.time_ns() - self.max_age_ns
        expired = False
        while self._refs and self._refs[0].created_ns < horizon:
            self.stats.dropped_expired_points += self._discard().points
            expired = True
        if expired:
            self._advance()
        if not self._refs:
            return None
        ref = self._refs[0]
        if self._reader_seq != ref.seq:
            if self._reader is not None:
                self._reader.close()
            self._reader = open(self._segment(ref.seq), "rb")  # noqa: SIM115 - reused across peeks
            self._reader_seq = ref.seq
        if self._writer is not None and ref.seq == self._writer_seq:
            self._writer.flush()
        self._reader.seek(ref.offset + FRAME.size + BODY.size)
        payload = self._reader.read(ref.size - FRAME.size - BODY.size)
        return Batch(ref.signal, payload, ref.points, ref.created_ns)

    def pop(self) -> None:
        self._discard()
        self._advance()

    def close(self) -> None:
        for f in (self._writer, self._reader):
            if f is not None:
                f.close()
        self._writer = self._reader = None


def open_buffer(directory: str | None, max_bytes: int, max_age_s: float, fsync: bool = True):
    if directory:
        return DiskBuffer(directory, max_bytes, max_age_s, fsync=fsync)
    return MemoryBuffer(max_bytes, max_age_s)
