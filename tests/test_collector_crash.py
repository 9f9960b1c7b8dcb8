"""kill -9 mid-ingest, restart: every acknowledged point is stored exactly once (real subprocess, real chDB)."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from collector.spool.wal import Wal
from tests.conftest import free_port
from tests.otlp_clients import get, metrics_request, post, query, start_collector_process, wait_http

pytestmark = pytest.mark.timeout(180)


def _wait_ready(port: int, proc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "collector exited during start"
        try:
            if get(port, "/readyz", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError("collector not ready")


@pytest.mark.parametrize("gzip", [False, True], ids=["identity", "gzip"])
def test_kill9_mid_ingest_then_restart_stores_every_ack_once(tmp_path, gzip: bool) -> None:
    """gzip: the WAL holds the clients' gzip bodies (spool/wal.py); the replay inflates them."""
    http, api = free_port(), free_port()
    config = tmp_path / "collector.yaml"
    config.write_text(
        f"""
data_dir: {tmp_path / "data"}
otlp: {{grpc_listen: 127.0.0.1:{free_port()}, http_listen: 127.0.0.1:{http}}}
api: {{listen: 127.0.0.1:{api}}}
writer: {{flush_interval_s: 0.05, batch_max_rows: 200}}
wal: {{segment_bytes: 65536}}
shutdown_deadline_s: 5
"""
    )
    log = tmp_path / "collector.log"
    proc = start_collector_process(config, log)
    acked: list[int] = []
    stop = threading.Event()
    base = time.time_ns()

    def client() -> None:
        i = 0
        while not stop.is_set():
            req = metrics_request(
                nodes=1, gpus=2, metrics=3, ts_ns=base + i * 1_000_000, value=float(i), cluster="crash"
            )
            try:
                status, _, _ = post(http, "/v1/metrics", req.SerializeToString(), gzip=gzip, timeout=5)
            except OSError:
                return  # the collector died under us: this one was never acknowledged
            if status == 200:
                acked.append(i)
            i += 1

    try:
        _wait_ready(api, proc)
        sender = threading.Thread(target=client)
        sender.start()
        deadline = time.monotonic() + 20
        while len(acked) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        stop.set()
        sender.join(10)
        assert len(acked) >= 40, log.read_text()[-2000:]
        # What the WAL holds at the crash is kept as the clients sent it (gzip or not).
        wal = Wal(tmp_path / "data" / "wal", max_bytes=1 << 30, segment_bytes=65536)
        wal.open()
        newest = wal.read(wal.last_id)
        wal.close()
        assert newest.gzip == gzip and newest.message().startswith(b"\n")  # ExportMetricsServiceRequest field 1
        proc = start_collector_process(config, log)
        _wait_ready(api, proc)
        expected = len(acked) * 6
        deadline = time.monotonic() + 30
        total = 0
        while time.monotonic() < deadline:
            status, body = query(api, "SELECT count() FROM samples WHERE cluster = 'crash'")
            total = body["rows"][0][0] if status == 200 else 0
            if total >= expected:
                break
            time.sleep(0.2)
        status, body = query(
            api,
            "SELECT toInt64(value) AS i, count() FROM samples WHERE cluster = 'crash' GROUP BY i ORDER BY i",
        )
        per_request = dict(body["rows"])
        missing = [i for i in acked if per_request.get(i) != 6]
        assert not missing, f"acknowledged requests not stored exactly once: {missing[:10]} ({per_request})"
        status, body = query(api, "SELECT count(), uniqExact(series_id, ts) FROM samples WHERE cluster = 'crash'")
        count, distinct = body["rows"][0]
        assert count == distinct, "a replay stored some points twice"
        # graceful stop drains and exits 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_wait_http_helper_times_out_fast() -> None:
    with pytest.raises(TimeoutError):
        wait_http(free_port(), timeout=0.5)
