"""Faults: collector kill -9 (repeated), store outage, WAL disk full, collector restarts under retrying
agents. Real subprocesses and real chDB; every wait is bounded."""

from __future__ import annotations

import resource
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from collector.spool.wal import Wal
from tests.helpers import FlakyStore
from tests.otlp_clients import get, metrics_request, post, query
from tests.reliability.helpers import ALPHA, CollectorProcess, InProcess, inprocess_config, wait_for

pytestmark = pytest.mark.timeout(240)

METRICS_PATH = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
POINTS_PER_REQUEST = 6  # metrics_request(nodes=1, gpus=2, metrics=3)


def numbered_request(n: int, base_ns: int, cluster: str) -> bytes:
    """Request ``n``: 6 points with value n and a timestamp unique to n (1 ms apart: ts is DateTime64(3))."""
    return metrics_request(
        nodes=1, gpus=2, metrics=3, ts_ns=base_ns + n * 1_000_000, value=float(n), cluster=cluster
    ).SerializeToString()


class Sender(threading.Thread):
    """Posts numbered requests until stopped or the collector goes away; records what was acknowledged."""

    def __init__(self, transport: str, port: int, ids: Iterator[int], base_ns: int, cluster: str, token=None):
        super().__init__(daemon=True)
        self.transport, self.port, self.ids, self.base_ns, self.cluster = transport, port, ids, base_ns, cluster
        self.token = token
        self.acked: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        channel = grpc.insecure_channel(f"127.0.0.1:{self.port}") if self.transport == "grpc" else None
        try:
            while not self.stop.is_set():
                n = next(self.ids)
                body = numbered_request(n, self.base_ns, self.cluster)
                try:
                    if channel is not None:
                        md = (("authorization", f"Bearer {self.token}"),) if self.token else ()
                        channel.unary_unary(METRICS_PATH)(body, metadata=md, timeout=5)
                        ok = True
                    else:
                        ok = post(self.port, "/v1/metrics", body, token=self.token, timeout=5)[0] == 200
                except (OSError, grpc.RpcError):
                    return  # the collector died under us: never acknowledged
                if ok:
                    self.acked.append(n)
        finally:
            if channel is not None:
                channel.close()


class _Ids:
    """A thread-safe id source shared by senders."""

    def __init__(self) -> None:
        self._n = 0
        self._lock = threading.Lock()

    def __iter__(self):
        return self

    def __next__(self) -> int:
        with self._lock:
            self._n += 1
            return self._n


def per_request_counts(api: int, cluster: str, token: str | None = None) -> dict[int, int]:
    status, body = query(
        api, f"SELECT toInt64(value) AS n, count() FROM samples WHERE cluster = '{cluster}' GROUP BY n", token
    )
    assert status == 200, body
    return {int(n): c for n, c in body["rows"]}


def test_kill9_repeated_rounds_lose_no_ack_and_store_nothing_twice(tmp_path: Path) -> None:
    """Three rounds of kill -9 while HTTP and gRPC clients ingest; every acknowledged request ends up
    stored exactly once, and no request (acknowledged or not) is stored twice."""
    collector = CollectorProcess(tmp_path, "writer: {flush_interval_s: 0.05, batch_max_rows: 300}\n")
    ids = _Ids()
    base = time.time_ns() - 60 * 10**9
    acked: list[int] = []
    try:
        for _round in range(3):
            collector.start().wait_ready()
            senders = [
                Sender(t, collector.http if t == "http" else collector.grpc, ids, base, "k9") for t in ("http", "grpc")
            ]
            for s in senders:
                s.start()
            wait_for(
                lambda s=senders: sum(len(x.acked) for x in s) >= 30,
                what="acks this round",
            )
            collector.kill9()  # mid-ingest: both senders are in the middle of requests
            for s in senders:
                s.stop.set()
                s.join(10)
                acked += s.acked
        collector.start().wait_ready()
        expected = len(acked) * POINTS_PER_REQUEST
        wait_for(
            lambda: sum(c for n, c in per_request_counts(collector.api, "k9").items() if n in set(acked)) >= expected,
            timeout=60,
            what="acknowledged points stored",
        )
        counts = per_request_counts(collector.api, "k9")
        lost = [n for n in acked if counts.get(n) != POINTS_PER_REQUEST]
        assert not lost, f"acknowledged requests not stored exactly once: {lost[:10]}"
        twice = {n: c for n, c in counts.items() if c != POINTS_PER_REQUEST}
        assert not twice, f"requests stored more than once (or half): {twice}"
        assert collector.terminate() == 0
    finally:
        collector.cleanup()


# ------------------------------------------------------------------------------------------- store outage


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from collector.store.settings import StorageSettings
    from collector.store.writer import Store

    s = Store(StorageSettings(dsn=f"chdb://{tmp_path_factory.mktemp('chdb')}"))
    yield s
    s.close()


def test_store_outage_grpc_backpressure_then_full_recovery(store, tmp_path: Path) -> None:
    """Store down: the WAL absorbs, then at wal.max_bytes gRPC answers UNAVAILABLE with a retry-after
    trailer; /readyz fails; when the store returns every accepted point is stored once and new
    requests are accepted again. (The HTTP 503 + Retry-After side: tests/test_collector_e2e.py::
    test_store_outage_then_recovery.)"""
    flaky = FlakyStore(store)
    config = inprocess_config(tmp_path)
    config.wal.max_bytes = 48 * 1024
    config.wal.segment_bytes = 8 * 1024
    c = InProcess(config, store=flaky)
    c.c.pipeline.backoff_max_s = 0.2
    base = time.time_ns() - 30 * 10**9
    accepted: list[int] = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{c.grpc}") as channel:
            call = channel.unary_unary(METRICS_PATH)
            md = (("authorization", f"Bearer {ALPHA}"),)
            refused = None
            for n in range(1, 400):
                try:
                    call(numbered_request(n, base, "outage-grpc"), metadata=md, timeout=5)
                    accepted.append(n)
                except grpc.RpcError as exc:
                    refused = exc
                    break
            assert refused is not None and refused.code() == grpc.StatusCode.UNAVAILABLE
            trailers = dict(refused.trailing_metadata() or ())
            assert int(trailers["retry-after"]) >= 1
            assert "WAL" in refused.details()
            assert get(c.api, "/readyz")[0] == 503
            time.sleep(1.0)  # the outage lasts a while: still refused, still nothing lost
            with pytest.raises(grpc.RpcError):
                call(numbered_request(999, base, "outage-grpc"), metadata=md, timeout=5)
            flaky.down = False
            expected = len(accepted) * POINTS_PER_REQUEST
            assert c.wait_count("SELECT count() FROM samples WHERE cluster = 'outage-grpc'", expected) == expected
            counts = per_request_counts(c.api, "outage-grpc", ALPHA)
            assert sorted(counts) == accepted and set(counts.values()) == {POINTS_PER_REQUEST}
            wait_for(lambda: get(c.api, "/readyz")[0] == 200, what="ready again")
            call(numbered_request(1000, base, "outage-grpc"), metadata=md, timeout=5)  # accepting again
            assert (
                c.wait_count("SELECT count() FROM samples WHERE cluster = 'outage-grpc'", expected + 6) == expected + 6
            )
            assert flaky.failures >= 1
    finally:
        c.stop()


# ------------------------------------------------------------------------------------------- WAL disk full

WAL_FILE_LIMIT = 96 * 1024  # RLIMIT_FSIZE of the collector process: WAL segment writes past it fail (EFBIG)


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (WAL_FILE_LIMIT, resource.RLIM_INFINITY))


def test_wal_disk_full_answers_503_keeps_serving_and_never_replays_half_records(tmp_path: Path) -> None:
    """A real write failure: the collector runs with RLIMIT_FSIZE, so a WAL segment cannot grow past
    96 KiB (write → short write, then EFBIG: what a full disk looks like to the writer). The collector
    answers 503 + Retry-After and keeps serving; once the limit is lifted (space returns) it accepts
    again, and after a kill -9 the replayed WAL holds no torn or half records: every acknowledged
    request is stored once."""
    collector = CollectorProcess(
        tmp_path,
        # one big segment, so the segment file (not the cap) is what runs out of space
        "wal: {segment_bytes: 1048576, max_bytes: 8388608}\nwriter: {flush_interval_s: 0.05}\n",
    )
    collector.start(preexec_fn=_limit_file_size).wait_ready()
    base = time.time_ns() - 60 * 10**9
    acked: list[int] = []
    try:
        # the store is up, so confirmed segments get deleted: make the writer fall behind by sending fast
        refused = None
        for n in range(1, 3000):
            status, headers, body = post(collector.http, "/v1/metrics", numbered_request(n, base, "full"), timeout=10)
            if status == 503:
                refused = (headers, body)
                break
            assert status == 200, body
            acked.append(n)
        assert refused is not None, "the WAL never hit the file size limit"
        headers, body = refused
        assert int(headers["retry-after"]) >= 1 and b"WAL" in body
        # keeps serving: health, queries, and further requests get the same clean answer
        assert get(collector.api, "/healthz")[0] == 200
        for n in range(3000, 3005):
            assert post(collector.http, "/v1/metrics", numbered_request(n, base, "full"))[0] == 503
        text = get(collector.api, "/metrics")[2].decode()
        assert 'fleetpulse_collector_points_rejected_total{reason="wal_write_failed"}' in text
        # space returns: the same process accepts again
        resource.prlimit(collector.proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        for n in range(3005, 3015):
            status, _, body = post(collector.http, "/v1/metrics", numbered_request(n, base, "full"))
            assert status == 200, body
            acked.append(n)
        collector.kill9()
        # the WAL on disk is whole: no torn tail, no corrupt record to cut at recovery
        config_wal = tmp_path / "data" / "wal"
        wal = Wal(config_wal, 8 * 2**20, 2**20, fsync=False)
        wal.open()
        assert wal.torn_bytes == 0, "a failed write left half a record in the WAL"
        wal.close()
        collector.start().wait_ready()
        expected = len(acked) * POINTS_PER_REQUEST
        wait_for(lambda: sum(per_request_counts(collector.api, "full").values()) >= expected, what="all acks stored")
        counts = per_request_counts(collector.api, "full")
        assert sorted(counts) == sorted(acked), "refused requests must not be stored; acknowledged ones must"
        assert set(counts.values()) == {POINTS_PER_REQUEST}
        assert collector.terminate() == 0
    finally:
        collector.cleanup()


# ------------------------------------------------------------------------------------------- restarts under retrying agents


def test_collector_restarts_while_agents_retry_lose_nothing(tmp_path: Path) -> None:
    """Two agents' delivery stacks (agent.exporters: Delivery + DiskBuffer + SDK transports, one gRPC,
    one HTTP) send numbered cycles while the collector is killed -9 once and stopped with SIGTERM once.
    Every cycle reaches the store; duplicates are possible only for a request whose reply the crash
    swallowed (at-least-once), at most one per agent per kill."""
    from agent.config import OtlpConfig
    from agent.exporters.buffer import Batch, DiskBuffer
    from agent.exporters.delivery import Delivery
    from agent.exporters.otlp import build_transport

    collector = CollectorProcess(tmp_path, "writer: {flush_interval_s: 0.05}\n").start()
    collector.wait_ready()
    base = time.time_ns() - 60 * 10**9
    cycles = 60
    agents = []
    for name, protocol, port in (("ag-grpc", "grpc", collector.grpc), ("ag-http", "http/protobuf", collector.http)):
        transport = build_transport(OtlpConfig(endpoint=f"http://127.0.0.1:{port}", protocol=protocol, timeout_s=2))
        buffer = DiskBuffer(tmp_path / name, 10_000_000, 3600)
        agents.append((name, Delivery(transport, buffer, drain_batches_per_cycle=50, retry_cap_s=0.3)))
    sent = {name: 0 for name, _ in agents}
    stop = threading.Event()

    def run_agent(name: str, delivery) -> None:
        for i in range(1, cycles + 1):
            if stop.is_set():
                return
            delivery.submit([Batch("metrics", numbered_request(i, base, name), POINTS_PER_REQUEST)])
            delivery.drain()
            sent[name] = i
            time.sleep(0.05)
        deadline = time.monotonic() + 60
        while len(delivery.buffer) and time.monotonic() < deadline and not stop.is_set():
            delivery.drain()
            time.sleep(0.05)

    threads = [threading.Thread(target=run_agent, args=a, daemon=True) for a in agents]
    try:
        for t in threads:
            t.start()
        wait_for(lambda: min(sent.values()) >= 15, what="agents under way")
        collector.kill9()
        time.sleep(0.5)  # agents retry against a dead port and buffer
        collector.start().wait_ready()
        wait_for(lambda: min(sent.values()) >= 35, what="agents continue")
        assert collector.terminate() == 0  # graceful stop while agents send: 503s, then refused connections
        time.sleep(0.5)
        collector.start().wait_ready()
        for t in threads:
            t.join(90)
        assert not any(t.is_alive() for t in threads)
        for name, delivery in agents:
            assert len(delivery.buffer) == 0, f"{name} still holds buffered requests"
            assert not delivery.points_dropped, delivery.points_dropped
            wait_for(
                lambda name=name: len(per_request_counts(collector.api, name)) >= cycles,
                timeout=30,
                what=f"{name} stored",
            )
            counts = per_request_counts(collector.api, name)
            assert sorted(counts) == list(range(1, cycles + 1)), f"{name}: cycles lost"
            extra = sum(c // POINTS_PER_REQUEST - 1 for c in counts.values())
            assert all(c % POINTS_PER_REQUEST == 0 for c in counts.values())
            assert extra <= 2, f"{name}: {extra} re-sent requests stored twice (at most one per kill/stop)"
        assert collector.terminate() == 0
    finally:
        stop.set()
        for _, delivery in agents:
            delivery.close()
        collector.cleanup()


def test_sigterm_during_ingest_drains_and_exits_zero(tmp_path: Path) -> None:
    """SIGTERM under load: new requests get 503 (retryable), the WAL drains to the store, exit code 0,
    and everything acknowledged before the signal is stored after the next start."""
    collector = CollectorProcess(tmp_path, "writer: {flush_interval_s: 0.05}\n").start()
    collector.wait_ready()
    ids = _Ids()
    base = time.time_ns() - 60 * 10**9
    sender = Sender("http", collector.http, ids, base, "term")
    try:
        sender.start()
        wait_for(lambda: len(sender.acked) >= 20, what="acks")
        collector.proc.send_signal(signal.SIGTERM)
        assert collector.proc.wait(30) == 0
        sender.stop.set()
        sender.join(10)
        collector.start().wait_ready()
        counts = per_request_counts(collector.api, "term")
        assert all(counts.get(n) == POINTS_PER_REQUEST for n in sender.acked)
        assert set(counts.values()) == {POINTS_PER_REQUEST}
        assert collector.terminate() == 0
    finally:
        sender.stop.set()
        collector.cleanup()
