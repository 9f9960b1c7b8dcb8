"""Write-ahead log: every accepted request is appended and fsynced here before it is acknowledged.

Layout under ``<data_dir>/wal``: segments ``<first record id>.wal`` and two small state files,
``confirmed`` (highest record id the store has confirmed) and ``inflight`` (the record range the
writer is inserting right now, so a replay re-sends exactly that range under the same dedup token).

Record: ``b"FPW1" | crc32 u32 | length u32 | body``, body = ``id u64 | received_ns i64 | kind u8 |
tenant_len u16 | tenant | payload`` (the raw OTLP protobuf request). A torn tail (crash mid-write)
fails its length or CRC check; it is cut off at open and the rest of the log is kept.

Group commit: concurrent appenders share one fdatasync; an append returns only once a sync covering
its record has finished.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MAGIC = b"FPW1"
_FRAME = struct.Struct("<4sII")
_BODY = struct.Struct("<QqBH")
KIND_METRICS = 1
KIND_LOGS = 2
# High bit of the kind byte: the payload is the gzip body as the client sent it. Keeping it
# compressed writes ~10x fewer WAL bytes per point (less fsync'd I/O, a longer store outage fits
# under wal.max_bytes); a replay inflates it. Records written before the flag existed read as before.
_GZIP_FLAG = 0x80


class WalFull(Exception):
    """The WAL reached its byte cap (the store is not keeping up): answer 503 / UNAVAILABLE."""

    retry_after_s = 5


class WalWriteFailed(WalFull):
    """Appending failed (disk full, file size limit, I/O error): answered like a full WAL, 503 + Retry-After."""


@dataclass(slots=True)
class Record:
    id: int
    received_ns: int
    kind: int
    tenant: str
    payload: bytes
    gzip: bool = False

    def message(self) -> bytes:
        """The OTLP protobuf bytes (inflated when the WAL kept the client's gzip body)."""
        return zlib.decompress(self.payload, 16 + zlib.MAX_WBITS) if self.gzip else self.payload


@dataclass(slots=True)
class _Segment:
    path: Path
    first_id: int
    last_id: int
    size: int


def encode(record: Record) -> bytes:
    tenant = record.tenant.encode()
    kind = record.kind | (_GZIP_FLAG if record.gzip else 0)
    body = _BODY.pack(record.id, record.received_ns, kind, len(tenant)) + tenant + record.payload
    return _FRAME.pack(MAGIC, zlib.crc32(body), len(body)) + body


def _decode_body(body: bytes) -> Record:
    rid, received_ns, kind, tlen = _BODY.unpack_from(body)
    start = _BODY.size
    tenant = body[start : start + tlen].decode()
    return Record(rid, received_ns, kind & ~_GZIP_FLAG, tenant, body[start + tlen :], bool(kind & _GZIP_FLAG))


def scan(path: Path) -> Iterator[tuple[int, Record | None, int]]:
    """(offset, record, size) for each valid record; a final (offset, None, 0) marks a bad tail."""
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
        if len(data) - offset < _FRAME.size:
            yield offset, None, 0
            return
        magic, crc, length = _FRAME.unpack_from(data, offset)
        end = offset + _FRAME.size + length
        body = data[offset + _FRAME.size : end]
        if magic != MAGIC or end > len(data) or zlib.crc32(body) != crc:
            yield offset, None, 0
            return
        yield offset, _decode_body(body), end - offset
        offset = end


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_state(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Wal:
    def __init__(self, directory: str | os.PathLike[str], max_bytes: int, segment_bytes: int, fsync: bool = True):
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._segments: list[_Segment] = []
        self._index: dict[int, tuple[_Segment, int, int]] = {}  # id -> (segment, offset, size)
        self._fd: int | None = None
        self._retired: list[int] = []  # fds of rotated segments, closed by the next sync
        self.last_id = 0
        self.synced_id = 0
        self.confirmed_id = 0
        self.inflight: tuple[int, int] | None = None
        self.torn_bytes = 0  # bytes cut off a torn tail at open
        self.identity = ""

    # ---------------------------------------------------------------- open / recovery

    def open(self) -> list[int]:
        """Recover the log; returns the ids of records not yet confirmed (to replay, in order)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        identity = self.dir / "identity"
        if not identity.exists():
            _write_state(identity, uuid.uuid4().hex + "\n")
        # Part of every dedup token: record ids restart in a new WAL, and replicas share one store.
        self.identity = identity.read_text().strip()
        confirmed = self.dir / "confirmed"
        if confirmed.exists():
            self.confirmed_id = int(confirmed.read_text().strip() or 0)
        inflight = self.dir / "inflight"
        if inflight.exists():
            first, last = (int(x) for x in inflight.read_text().split())
            if last > self.confirmed_id:
                self.inflight = (max(first, self.confirmed_id + 1), last)
        paths = sorted(self.dir.glob("*.wal"), key=lambda p: int(p.stem))
        pending: list[int] = []
        self.last_id = self.confirmed_id
        for i, path in enumerate(paths):
            seg = _Segment(path, int(path.stem), 0, 0)
            good_end = 0
            for offset, record, size in scan(path):
                if record is None:
                    lost = path.stat().st_size - offset
                    if i == len(paths) - 1:
                        log.warning("WAL %s: torn tail of %d bytes at offset %d cut off", path, lost, offset)
                    else:
                        log.error("WAL %s: corrupt record at offset %d; %d bytes after it dropped", path, offset, lost)
                    self.torn_bytes += lost
                    with open(path, "r+b") as f:
                        f.truncate(offset)
                        os.fsync(f.fileno())
                    break
                good_end = offset + size
                seg.last_id = record.id
                self.last_id = max(self.last_id, record.id)
                if record.id > self.confirmed_id:
                    self._index[record.id] = (seg, offset, size)
                    pending.append(record.id)
            seg.size = good_end
            if seg.last_id and seg.last_id <= self.confirmed_id:
                path.unlink()
                continue
            if good_end == 0:
                path.unlink()
                continue
            self._segments.append(seg)
        self.synced_id = self.last_id
        if self.inflight is not None and self.inflight[1] > self.last_id:
            self.inflight = (self.inflight[0], self.last_id) if self.last_id >= self.inflight[0] else None
        self._open_segment()
        return pending

    def _open_segment(self) -> None:
        path = self.dir / f"{self.last_id + 1:020d}.wal"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._segments.append(_Segment(path, self.last_id + 1, 0, os.fstat(self._fd).st_size))
        if self.fsync:
            _fsync_dir(self.dir)

    # ---------------------------------------------------------------- append

    @property
    def bytes(self) -> int:
        return sum(s.size for s in self._segments)

    @property
    def segments(self) -> int:
        return len(self._segments)

    def append(
        self,
        tenant: str,
        kind: int,
        payload: bytes,
        received_ns: int,
        written: Callable[[int], None] | None = None,
        gzip: bool = False,
    ) -> int:
        """Append and make durable; ``written(id)`` runs under the log lock, so ids reach it in order.

        ``gzip``: ``payload`` is a single-member gzip stream of the message (the client's body as sent).
        """
        with self._lock:
            if self._fd is None:
                raise WalFull("WAL is closed")
            rid = self.last_id + 1
            frame = encode(Record(rid, received_ns, kind, tenant, payload, gzip))
            if self.bytes + len(frame) > self.max_bytes:
                raise WalFull(f"WAL holds {self.bytes} of {self.max_bytes} bytes; the store is not keeping up")
            seg = self._segments[-1]
            if seg.size and seg.size + len(frame) > self.segment_bytes:
                self._rotate()
                seg = self._segments[-1]
            self._write_frame(seg, frame)
            self._index[rid] = (seg, seg.size, len(frame))
            seg.size += len(frame)
            seg.last_id = rid
            self.last_id = rid
            if written is not None:
                written(rid)
        self._sync(rid)
        return rid

    def _write_frame(self, seg: _Segment, frame: bytes) -> None:
        """Write one whole frame or nothing: a failed or short write (ENOSPC, EFBIG) is cut off again,
        so a later append never lands behind half a record (which recovery would read as corruption)."""
        written = 0
        try:
            while written < len(frame):
                n = os.write(self._fd, frame[written:])
                if n <= 0:
                    raise OSError(f"short write of {written} of {len(frame)} bytes")
                written += n
        except OSError as exc:
            try:
                os.ftruncate(self._fd, seg.size)
            except OSError:
                log.exception("WAL %s: cannot cut a failed write back to %d bytes", seg.path, seg.size)
            raise WalWriteFailed(
                f"WAL {seg.path}: write failed ({exc.strerror or exc}); is the WAL disk full?"
            ) from None

    def _rotate(self) -> None:
        # Under self._lock. The old fd stays open until the syncer is done with it.
        if self.fsync:
            os.fdatasync(self._fd)
        self._retired.append(self._fd)
        self._open_segment()

    def _sync(self, rid: int) -> None:
        if not self.fsync:
            with self._lock:
                self.synced_id = max(self.synced_id, rid)
            return
        with self._sync_lock:
            if self.synced_id >= rid:
                return
            with self._lock:
                target = self.last_id
                fd = self._fd
                retired, self._retired = self._retired, []
            if fd is not None:
                os.fdatasync(fd)
            for old in retired:
                os.close(old)
            self.synced_id = max(self.synced_id, target)

    # ---------------------------------------------------------------- read / confirm

    def read(self, rid: int) -> Record:
        seg, offset, size = self._index[rid]
        with open(seg.path, "rb") as f:
            f.seek(offset)
            frame = f.read(size)
        body = frame[_FRAME.size :]
        if zlib.crc32(body) != _FRAME.unpack_from(frame)[1]:
            raise OSError(f"WAL {seg.path}: record {rid} at offset {offset} fails its CRC")
        return _decode_body(body)

    def set_inflight(self, first: int, last: int) -> None:
        self.inflight = (first, last)
        _write_state(self.dir / "inflight", f"{first} {last}\n")

    def confirm(self, upto: int) -> None:
        """The store holds every record <= ``upto``: drop them and any segment they fully cover."""
        _write_state(self.dir / "confirmed", f"{upto}\n")
        with self._lock:
            self.confirmed_id = max(self.confirmed_id, upto)
            for rid in [r for r in self._index if r <= upto]:
                del self._index[rid]
            keep = []
            for seg in self._segments:
                active = seg is self._segments[-1]
                if not active and seg.last_id and seg.last_id <= self.confirmed_id:
                    seg.path.unlink(missing_ok=True)
                else:
                    keep.append(seg)
            self._segments = keep

    def close(self) -> None:
        with self._sync_lock, self._lock:
            if self._fd is not None:
                if self.fsync:
                    os.fdatasync(self._fd)
                os.close(self._fd)
                self._fd = None
            for old in self._retired:
                os.close(old)
            self._retired = []
