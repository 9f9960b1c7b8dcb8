"""WAL durability cost: the collector's write-ahead log with fsync on, off, and with group commit.

Every accepted OTLP request is appended to the WAL (collector/spool/wal.py) and, with ``wal.fsync``
on, acknowledged only after an fdatasync covers it. Concurrent appenders share one fdatasync
(group commit). The payload is a real agent request: one full cycle (fast + slow tiers) of a
simulated 8 x H100 node, encoded as the agent encodes it. A confirmer thread plays the writer's
part (confirms what is synced, so segments are recycled and the WAL stays small).

Baseline for each fsync-on figure: the same WAL, same concurrency, fsync off (page cache only).

    python -m bench.run_all --only wal
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from dataclasses import dataclass

from bench.common import BenchResult, Figure, percentile, simulated_node_snapshot

TITLE = "Collector WAL: append + fsync overhead, group commit"
GROUP_APPENDERS = 8


@dataclass
class ModeResult:
    requests: int
    seconds: float
    latencies_s: list[float]
    syncs: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def p(self, q: float) -> float:
        return percentile(self.latencies_s, q) * 1000.0


def _run_mode(payload: bytes, fsync: bool, appenders: int, duration_s: float, max_requests: int) -> ModeResult:
    from collector.spool.wal import KIND_METRICS, Wal

    syncs = 0
    real_fdatasync = os.fdatasync

    def counting_fdatasync(fd: int) -> None:
        nonlocal syncs
        syncs += 1
        real_fdatasync(fd)

    with tempfile.TemporaryDirectory(prefix="bench-wal-") as tmp:
        wal = Wal(tmp, max_bytes=4 << 30, segment_bytes=16 << 20, fsync=fsync)
        wal.open()
        stop = threading.Event()
        lock = threading.Lock()
        latencies: list[float] = []
        count = 0

        def confirmer() -> None:
            while not stop.wait(0.05):
                if wal.synced_id > wal.confirmed_id:
                    wal.confirm(wal.synced_id)

        def appender(deadline: float) -> None:
            nonlocal count
            local: list[float] = []
            while time.perf_counter() < deadline:
                with lock:
                    if count >= max_requests:
                        break
                    count += 1
                t0 = time.perf_counter()
                wal.append("default", KIND_METRICS, payload, time.time_ns())
                local.append(time.perf_counter() - t0)
            with lock:
                latencies.extend(local)

        confirm_thread = threading.Thread(target=confirmer, daemon=True)
        confirm_thread.start()
        os.fdatasync = counting_fdatasync
        try:
            started = time.perf_counter()
            deadline = started + duration_s
            threads = [threading.Thread(target=appender, args=(deadline,)) for _ in range(appenders)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - started
        finally:
            os.fdatasync = real_fdatasync
            stop.set()
            confirm_thread.join(5)
            wal.close()
    return ModeResult(len(latencies), elapsed, latencies, syncs)


def run(quick: bool) -> BenchResult:
    from agent.exporters.otlp import encode_metrics

    snapshot = simulated_node_snapshot()
    payload = encode_metrics(snapshot.points, snapshot.resource)
    points = len(snapshot.points)
    duration, cap = (0.3, 200) if quick else (4.0, 20_000)

    modes = {
        ("off", 1): _run_mode(payload, False, 1, duration, cap),
        ("on", 1): _run_mode(payload, True, 1, duration, cap),
        ("off", GROUP_APPENDERS): _run_mode(payload, False, GROUP_APPENDERS, duration, cap),
        ("on", GROUP_APPENDERS): _run_mode(payload, True, GROUP_APPENDERS, duration, cap),
    }
    off1, on1 = modes[("off", 1)], modes[("on", 1)]
    offg, ong = modes[("off", GROUP_APPENDERS)], modes[("on", GROUP_APPENDERS)]

    result = BenchResult(TITLE)
    result.add(
        Figure(
            "requests/s, fsync on, 1 appender (one fdatasync per request)",
            on1.rate,
            "req/s",
            "fsync off, 1 appender",
            off1.rate,
        )
    )
    result.add(
        Figure(
            f"requests/s, fsync on, {GROUP_APPENDERS} appenders (group commit)",
            ong.rate,
            "req/s",
            f"fsync off, {GROUP_APPENDERS} appenders",
            offg.rate,
        )
    )
    result.add(
        Figure(
            "group commit gain: requests/s",
            ong.rate,
            "req/s",
            "fsync on, 1 appender",
            on1.rate,
            target=">= 2x serial fsync",
            met=ong.rate >= 2 * on1.rate,
        )
    )
    result.add(Figure("p50 ack latency, fsync on, 1 appender", on1.p(50), "ms", "fsync off", off1.p(50)))
    result.add(Figure("p99 ack latency, fsync on, 1 appender", on1.p(99), "ms", "fsync off", off1.p(99)))
    result.add(
        Figure(f"p50 ack latency, group commit ({GROUP_APPENDERS} appenders)", ong.p(50), "ms", "fsync off", offg.p(50))
    )
    result.add(
        Figure(
            f"p99 ack latency, group commit ({GROUP_APPENDERS} appenders)",
            ong.p(99),
            "ms",
            "fsync off",
            offg.p(99),
            target="< 100 ms",
            met=ong.p(99) < 100.0,
        )
    )
    per_sync = ong.requests / max(ong.syncs, 1)
    result.add(
        Figure(
            "requests per fdatasync, group commit", per_sync, "req", "serial fsync", on1.requests / max(on1.syncs, 1)
        )
    )
    nodes = ong.rate * 10.0
    result.add(
        Figure(
            "nodes one collector WAL absorbs at 10 s (group commit, fsync on)",
            nodes,
            "nodes",
            target=">= 1,000 nodes",
            met=nodes >= 1000,
        )
    )
    result.notes.append(
        f"Payload: one full cycle of a simulated 8 x H100 node ({points} points, {len(payload):,} B raw OTLP "
        f"protobuf, as the WAL stores it); {duration:g} s per mode, at most {cap:,} requests."
    )
    result.notes.append(
        "Modes (requests, seconds, fdatasyncs): "
        + "; ".join(
            f"fsync {f}, {a} appender{'s' if a > 1 else ''}: {m.requests}, {m.seconds:.2f} s, {m.syncs}"
            for (f, a), m in modes.items()
        )
    )
    result.notes.append(
        "Group commit: concurrent appenders share one fdatasync, so the durable rate grows with concurrency "
        "(the receiver's gRPC/HTTP worker threads are the appenders). The nodes figure assumes every node "
        "sends its full cycle every 10 s (the slow tier only every 60 s, so it is conservative)."
    )
    return result


if __name__ == "__main__":
    import sys

    print(run(quick="--quick" in sys.argv).to_text())
