"""The on-disk buffer: FIFO across restarts, torn tails, bounds with counters."""

from __future__ import annotations

import time
from pathlib import Path

from agent.exporters.buffer import Batch, DiskBuffer, MemoryBuffer


def batch(i: int, size: int = 100, created_ns: int | None = None) -> Batch:
    return Batch(
        "metrics" if i % 2 else "logs",
        f"{i:08d}".encode() * (size // 8),
        points=i + 1,
        created_ns=created_ns or time.time_ns(),
    )


def drain(buffer) -> list[bytes]:
    out = []
    while (b := buffer.peek()) is not None:
        out.append(b.payload)
        buffer.pop()
    return out


def test_fifo_across_restart_and_segments(tmp_path: Path) -> None:
    buf = DiskBuffer(tmp_path, max_bytes=10_000_000, max_age_s=3600)
    buf.segment_bytes = 1000  # force several segments
    batches = [batch(i) for i in range(30)]
    buf.append(batches[:10])
    buf.append(batches[10:30])
    assert len(buf) == 30 and buf.points == sum(b.points for b in batches)
    assert len(list(tmp_path.glob("seg-*.fpb"))) > 2
    first = buf.peek()
    assert first.payload == batches[0].payload and first.signal == "logs"
    buf.pop()
    buf.close()  # simulates a restart (kill -9 leaves the same files)

    again = DiskBuffer(tmp_path, max_bytes=10_000_000, max_age_s=3600)
    assert len(again) == 29
    again.append([batch(99)])
    assert drain(again) == [b.payload for b in batches[1:]] + [batch(99).payload]
    again.close()
    # Delivered segments are deleted; a reopened empty buffer stays empty.
    assert len(list(tmp_path.glob("seg-*.fpb"))) <= 1
    assert len(DiskBuffer(tmp_path, max_bytes=10_000_000, max_age_s=3600)) == 0


def test_torn_tail_is_detected_and_skipped(tmp_path: Path) -> None:
    buf = DiskBuffer(tmp_path, max_bytes=10_000_000, max_age_s=3600)
    buf.append([batch(i) for i in range(3)])
    buf.close()
    (segment,) = tmp_path.glob("seg-*.fpb")
    whole = segment.read_bytes()
    segment.write_bytes(whole + whole[:60])  # a record cut off mid-write (kill -9 during append)
    reopened = DiskBuffer(tmp_path, max_bytes=10_000_000, max_age_s=3600)
    assert reopened.stats.torn_records == 1
    assert len(reopened) == 3
    assert segment.stat().st_size == len(whole)  # truncated back to the last good record
    reopened.append([batch(7)])  # appends continue after the good records
    assert drain(reopened) == [batch(i).payload for i in (0, 1, 2, 7)]


def test_crc_mismatch_at_tail_is_torn(tmp_path: Path) -> None:
    buf = DiskBuffer(tmp_path, max_bytes=10_000_000, max_age_s=3600)
    buf.append([batch(0), batch(1)])
    buf.close()
    (segment,) = tmp_path.glob("seg-*.fpb")
    data = bytearray(segment.read_bytes())
    data[-5] ^= 0xFF  # flip a byte inside the last record's payload
    segment.write_bytes(bytes(data))
    reopened = DiskBuffer(tmp_path, max_bytes=10_000_000, max_age_s=3600)
    assert reopened.stats.torn_records == 1
    assert drain(reopened) == [batch(0).payload]


def test_overflow_drops_oldest_and_counts(tmp_path: Path) -> None:
    one = batch(0).size
    buf = DiskBuffer(tmp_path, max_bytes=one * 5, max_age_s=3600)
    batches = [batch(i) for i in range(8)]
    for b in batches:
        buf.append([b])
    assert len(buf) == 5
    assert buf.stats.dropped_overflow_points == sum(b.points for b in batches[:3])
    assert drain(buf) == [b.payload for b in batches[3:]]


def test_age_limit_drops_at_the_head_and_counts(tmp_path: Path) -> None:
    buf = DiskBuffer(tmp_path, max_bytes=10_000_000, max_age_s=60)
    old = batch(1, created_ns=time.time_ns() - 120 * 10**9)
    buf.append([old, batch(2)])
    assert buf.peek().payload == batch(2).payload
    assert buf.stats.dropped_expired_points == old.points


def test_memory_buffer_same_contract() -> None:
    buf = MemoryBuffer(max_bytes=batch(0).size * 2, max_age_s=3600)
    buf.append([batch(0), batch(1), batch(2)])
    assert buf.stats.dropped_overflow_points == batch(0).points
    assert drain(buf) == [batch(1).payload, batch(2).payload]
