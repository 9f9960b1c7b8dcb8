"""`fleetpulse up` as README says (`make run` runs `.venv/bin/fleetpulse up`): start, query, SIGINT;
the history backfill (4 simulated nodes through the collector's OTLP/HTTP port) shows in the reports
at once, is written once per data dir, and Ctrl-C in the middle of it still stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
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


class _Lines:
    """Collects a running process's stdout lines (a thread, so the test can wait for one)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, proc: subprocess.Popen, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        pytest.fail(f"no {text!r} in the output within {timeout:.0f} s:\n{self.text[-3000:]}")

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def finish(self, proc: subprocess.Popen, timeout: float = 60) -> str:
        """SIGINT, wait for the exit; stderr."""
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail(f"fleetpulse up did not stop within {timeout:.0f} s of SIGINT")
        self._thread.join(10)
        return proc.stderr.read() if proc.stderr else ""


def _sql(api: int, sql: str) -> list[list]:
    import requests

    resp = requests.get(f"http://127.0.0.1:{api}/api/v1/query", params={"sql": sql}, timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.json()["rows"]


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
    proc = _up(tmp_path / "data", ports, "--backfill", "0")
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
    assert "no backfill (--backfill 0)" in out and "backfilling" not in out
    assert not (tmp_path / "data" / "backfill.json").exists()
    assert "stopped cleanly" in err
    assert not any(_alive(pid) for pid in agent_pids), "agent child still running after up exited"
    for port in ports.values():  # everything it listened on is released
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))

    # Running it again reuses the data: the GPUs seen before answer at once.
    again = _up(tmp_path / "data", ports, "--backfill", "0")
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


def _expected_plan(data_dir: Path):
    """The simulated fleet the backfill wrote, rebuilt from its record: the ground truth of its faults."""
    from collector.fleet_sim.backfill import read_marker, resumed_plan

    marker = read_marker(data_dir)
    assert marker is not None, "no backfill.json after the backfill"
    return marker, resumed_plan(marker)


def test_up_backfills_history_once_through_the_write_path(tmp_path: Path, ports: dict[str, int]):
    data = tmp_path / "data"
    proc = _up(data, ports, "--backfill", "2h")
    out = _Lines(proc)
    agent_pids: list[int] = []
    try:
        out.wait_for("fleetpulse is up", proc, 60)
        banner = out.text
        assert "history    backfilling 2 h of past history for 4 simulated nodes x 8 GPUs" in banner
        out.wait_for("backfilling 2 h of history for 4 nodes: 0%", proc, 60)
        agent_pids = _children(proc.pid)
        done = out.wait_for("backfill done:", proc, 120)
        assert (
            "fleetpulse query throttle --since 2h" in out.text
            and f"--collector http://127.0.0.1:{ports['api']}" in out.text
        )
        marker, plan = _expected_plan(data)
        assert marker["status"] == "done" and marker["points_acknowledged"] > 100_000, marker
        assert f"{marker['points_acknowledged']:,} points" in done
        manifest = plan.manifest()
        prefix = plan.spec.node_prefix + "-"
        assert prefix == "sim-node-" or socket.gethostname().startswith("sim-node-")
        faults = manifest["faults"]

        # Xid: exactly the injected codes on the injected GPUs (the live node may add its own: filtered out).
        xid = json.loads(_query(ports["api"], "xid", "--since", "3h", "--format", "json").stdout)
        got = {(r[2], r[0]) for r in xid["rows"] if r[3].startswith(prefix)}
        want = {(f["gpu"], f["code"]) for f in faults if f["kind"] in ("xid", "row_remap_pending")}
        assert {code for _, code in want} == {79, 63}
        assert got == want

        # Throttle: the hot rack's 16 GPUs, HW thermal slowdown, in the injected window.
        thr = json.loads(_query(ports["api"], "throttle", "--since", "3h", "--format", "json").stdout)
        hot = {(r[0], r[1], r[2]) for r in thr["rows"] if r[1].startswith(prefix)}
        want_hot = {(f["gpu"], f["node"], f["reason"]) for f in faults if f["kind"] == "thermal_throttle"}
        assert len(want_hot) == 16 and {n for _, n, _ in want_hot} == {prefix + "0002", prefix + "0003"}
        assert hot == want_hot

        # ECC: the two GPUs with rising SBE counts, one with its row remap pending.
        ecc = json.loads(_query(ports["api"], "ecc", "--since", "3h", "--format", "json").stdout)
        rows = {r[0]: r for r in ecc["rows"] if r[1].startswith(prefix)}
        sbe = {f["gpu"]: f["total"] for f in faults if f["kind"] == "sbe_rising"}
        assert {g: rows[g][3] for g in rows} == sbe  # sbe_aggregate increase
        pending = {f["gpu"] for f in faults if f["kind"] == "row_remap_pending"}
        assert {g for g, r in rows.items() if r[8] == "yes"} == pending

        # Health: the lost GPU is unhealthy, nothing of the simulated fleet is missing.
        health = json.loads(_query(ports["api"], "health", "--since", "3h", "--format", "json").stdout)
        lost = {f["gpu"] for f in faults if f["kind"] == "gpu_lost"}
        assert {r[0] for r in health["rows"] if r[2] == "unhealthy" and r[1].startswith(prefix)} == lost
        missing = next(s for s in health["sections"] if s["report"] == "missing")
        assert not [r for r in missing["rows"] if r[1].startswith(prefix)]

        in_window = f"node LIKE '{prefix}%' AND ts <= fromUnixTimestamp64Nano({plan.end_ns})"
        old_rows = _sql(ports["api"], f"SELECT count() FROM samples WHERE {in_window}")[0][0]
        assert old_rows == marker["points_acknowledged"]  # every acknowledged point is stored, once
    finally:
        err = out.finish(proc)
    assert proc.returncode == 0, err[-2000:]
    assert "stopped cleanly" in err
    assert agent_pids and not any(_alive(pid) for pid in agent_pids)

    # A second `up` on the same data dir does not write the history again; the simulated nodes go on.
    again = _up(data, ports, "--backfill", "2h")
    out2 = _Lines(again)
    try:
        out2.wait_for("the 4 simulated nodes go on reporting", again, 120)
        assert "backfilled before (done" in out2.text and "backfilling" not in out2.text
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the store is open once the API answers a query
            try:
                rows = _sql(ports["api"], f"SELECT count() FROM samples WHERE {in_window}")
                break
            except (AssertionError, OSError):
                time.sleep(0.5)
        assert rows[0][0] == old_rows
    finally:
        err = out2.finish(again)
    assert again.returncode == 0, err[-2000:]


def test_up_ctrl_c_during_the_backfill_stops_cleanly_and_keeps_what_was_acknowledged(
    tmp_path: Path, ports: dict[str, int]
):
    data = tmp_path / "data"
    proc = _up(data, ports)  # the default: 24 h of history
    out = _Lines(proc)
    marker_file = data / "backfill.json"
    try:
        out.wait_for("backfilling 24 h of history for 4 nodes: 0%", proc, 60)
        agent_pids = _children(proc.pid)
        deadline = time.monotonic() + 60
        while not marker_file.exists() and time.monotonic() < deadline:  # something is acknowledged
            time.sleep(0.1)
        assert marker_file.exists()
    finally:
        err = out.finish(proc)
    assert proc.returncode == 0, err[-2000:]
    assert "stopped cleanly" in err
    assert "backfill interrupted at" in out.text and "they stay stored" in out.text
    assert agent_pids and not any(_alive(pid) for pid in agent_pids)
    marker = json.loads(marker_file.read_text())
    assert marker["status"] == "interrupted" and marker["points_acknowledged"] > 0

    # What was acknowledged is in the store (--backfill 0: nothing new from the simulated nodes).
    again = _up(data, ports, "--backfill", "0")
    out2 = _Lines(again)
    try:
        out2.wait_for("fleetpulse is up", again, 60)
        deadline = time.monotonic() + 60
        rows = None
        while rows is None and time.monotonic() < deadline:
            try:
                rows = _sql(ports["api"], "SELECT count() FROM samples WHERE node LIKE 'sim-%'")
            except (AssertionError, OSError):
                time.sleep(0.5)
        assert rows is not None and rows[0][0] == marker["points_acknowledged"]
    finally:
        err = out2.finish(again)
    assert again.returncode == 0, err[-2000:]


@pytest.mark.parametrize(
    ("value", "message"),
    [("1x", "expected a duration like 90s"), ("30s", "expected 0 (off) or between 120s and 7d"), ("8d", "7d")],
)
def test_up_rejects_a_bad_backfill_duration_naming_the_flag(tmp_path: Path, ports: dict[str, int], value, message):
    proc = _up(tmp_path / "data", ports, "--backfill", value)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"--backfill {value!r}" in err and message in err
    assert not (tmp_path / "data").exists()  # nothing started, nothing written


def test_a_damaged_backfill_record_is_refused_with_its_name():
    from collector.fleet_sim.backfill import MARKER, resumed_plan

    with pytest.raises(ValueError, match=MARKER):
        resumed_plan({"status": "unreadable (Expecting value: line 1 column 1)"})
    with pytest.raises(ValueError, match="not on a 60 s tick"):
        resumed_plan(
            {"window_end_ns": 1_700_000_030_000_000_000, "duration_s": 7200, "node_prefix": "sim-node", "seed": 0}
        )


def test_the_simulated_nodes_continue_their_history_after_its_end():
    """Live ticks extend the plan: the lost GPU stays lost, the moved GPU stays moved, counters keep their start."""
    from collector.fleet_sim.backfill import fleet_spec, scenario
    from collector.fleet_sim.model import NodeModel
    from collector.fleet_sim.plan import build_plan

    plan = build_plan(fleet_spec(7200, "sim-node"), scenario(), now_s=1_700_000_000)
    end = plan.n_ticks
    lost_gpu = next(iter(plan.lost))
    move = plan.moves[0]
    before = NodeModel(plan).chunk(move.node_b, end - 1, end)
    plan.n_ticks = end + 5
    after = NodeModel(plan).chunk(move.node_b, end, end + 5)

    def energy_starts(chunk) -> dict[str, int]:
        return {dict(s.attributes)["hw.id"]: s.start_ns for s in chunk.series if s.metric == "hw.gpu.energy"}

    assert energy_starts(after) == energy_starts(before)  # same GPUs in the same slots, no counter restart
    assert plan.gpu_uuid(move.gpu_a) in energy_starts(after)  # the GPU moved in is still there
    lost_node, _ = plan.where(lost_gpu, end)
    lost = {
        dict(s.attributes)["hw.id"]: s.values
        for s in NodeModel(plan).chunk(lost_node, end, end + 5).series
        if s.metric == "hw.gpu.lost"
    }
    assert lost[plan.gpu_uuid(lost_gpu)] == [1.0] * 5
    assert sum(v == [0.0] * 5 for v in lost.values()) == plan.spec.gpus_per_node - 1
    assert all(f["kind"] != "node_silent" for f in plan.manifest()["faults"])
