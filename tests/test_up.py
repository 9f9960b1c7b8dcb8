"""`fleetpulse up` as README says (`make run` runs `.venv/bin/fleetpulse up`): start, query, SIGINT."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port

FLEETPULSE = str(Path(sys.executable).parent / "fleetpulse")


def _up(data_dir: Path, ports: dict[str, int], *extra: str) -> subprocess.Popen:
    cmd = [
        FLEETPULSE, "up", "--data-dir", str(data_dir),
        "--otlp-grpc-listen", f"127.0.0.1:{ports['grpc']}",
        "--otlp-http-listen", f"127.0.0.1:{ports['http']}",
        "--api-listen", f"127.0.0.1:{ports['api']}",
        "--prometheus-listen", f"127.0.0.1:{ports['prom']}",
        "--interval", "1", *extra,
    ]  # fmt: skip
    return subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def _query(api: int, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [FLEETPULSE, "query", *args, "--collector", f"http://127.0.0.1:{api}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def ports() -> dict[str, int]:
    return {name: free_port() for name in ("grpc", "http", "api", "prom")}


def test_up_serves_reports_and_stops_cleanly_on_sigint(tmp_path: Path, ports: dict[str, int]):
    proc = _up(tmp_path / "data", ports)
    agent_pids: list[int] = []
    try:
        deadline = time.monotonic() + 120
        health = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"fleetpulse up exited early:\n{proc.stderr.read() if proc.stderr else ''}"
            agent_pids = agent_pids or _children(proc.pid)
            res = _query(ports["api"], "health", "--since", "10m", "--format", "json")
            if res.returncode == 0:
                data = json.loads(res.stdout)
                if len(data["rows"]) == 8:  # all 8 simulated GPUs have reported
                    health = data
                    break
            time.sleep(1)
        assert health is not None, "no health verdicts for 8 GPUs within 120 s"
        assert {row[2] for row in health["rows"]} <= {"healthy", "degraded", "unhealthy"}
        table = _query(ports["api"], "health", "--since", "10m")
        assert table.returncode == 0 and "VERDICT" in table.stdout
        assert agent_pids, "the agent child process was never seen"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"fleetpulse up did not stop within 60 s of SIGINT:\n{err[-2000:]}")
    assert proc.returncode == 0, err[-2000:]
    assert "fleetpulse is up" in out and "fleetpulse query health" in out
    assert "stopped cleanly" in err
    assert not any(_alive(pid) for pid in agent_pids), "agent child still running after up exited"
    for port in ports.values():  # everything it listened on is released
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))

    # Running it again reuses the data: the GPUs seen before answer at once.
    again = _up(tmp_path / "data", ports)
    try:
        deadline = time.monotonic() + 60
        rows = []
        while time.monotonic() < deadline and len(rows) < 8:
            assert again.poll() is None
            res = _query(ports["api"], "health", "--since", "10m", "--format", "json")
            rows = json.loads(res.stdout)["rows"] if res.returncode == 0 else []
            time.sleep(0.5)
        assert len(rows) == 8
    finally:
        again.send_signal(signal.SIGINT)
        out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err[-2000:]
    assert "reusing the data" in out


def test_up_names_a_taken_port_and_its_flag(tmp_path: Path, ports: dict[str, int]):
    data = tmp_path / "data"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports["http"]))
        busy.listen()
        proc = _up(data, ports)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"port {ports['http']} (OTLP/HTTP) is already in use" in err
    assert "--otlp-http-listen" in err


def test_query_without_a_collector_says_how_to_fix(tmp_path: Path):
    res = _query(free_port(), "health")
    assert res.returncode == 1
    assert "no collector answers" in res.stderr
    assert "fleetpulse up" in res.stderr and "--store" in res.stderr
