"""The agent daemon as a subprocess against the in-process OTLP receiver.

Intervals are 0.2 s so each test runs in seconds. Sources are off (``sources: []``) unless the
test needs GPUs: every cycle still carries the agent's self-telemetry, which is enough to check
delivery (one ``fleetpulse.agent.memory.rss`` point per tick).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from agent.exporters.buffer import DiskBuffer
from tests.conftest import REPO, free_port
from tests.helpers import wait_for
from tests.otlp_receiver import OtlpReceiver

TICK = "fleetpulse.agent.memory.rss"  # one point per cycle


class Agent:
    def __init__(
        self,
        tmp: Path,
        receiver: OtlpReceiver,
        protocol: str = "grpc",
        extra: str = "",
        name: str = "a",
        flags: tuple[str, ...] = (),
    ):
        self.flags = flags
        self.prom_port = free_port()
        self.config = tmp / f"{name}.yaml"
        self.log = tmp / f"{name}.log"
        endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_endpoint
        self.config.write_text(
            f"interval_s: 0.2\nsources: [{'nvml' if flags else ''}]\nprometheus_listen: 127.0.0.1:{self.prom_port}\n"
            f"otlp: {{endpoint: '{endpoint}', protocol: {protocol}, timeout_s: 2}}\n"
            f"buffer: {{dir: '{tmp / 'buffer'}', drain_batches_per_cycle: 5}}\n{extra}"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> Agent:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "agent", "--config", str(self.config), *self.flags],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("ab"),
            env=env,
            cwd=REPO,
        )
        wait_for(self.healthy, what="agent /healthz")
        return self

    def healthy(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.prom_port}/healthz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.prom_port}/metrics", timeout=2) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def receiver():
    with OtlpReceiver() as r:
        yield r


@pytest.fixture
def agents():
    started: list[Agent] = []
    yield started
    for a in started:
        a.kill()


def ticks(receiver: OtlpReceiver) -> list[int]:
    return [t for name, _, t, _ in receiver.points() if name == TICK]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_outage_then_recovery_delivers_every_point_once_in_order(
    tmp_path: Path, receiver: OtlpReceiver, agents: list, protocol: str
) -> None:
    agent = Agent(tmp_path, receiver, protocol)
    agents.append(agent.start())
    wait_for(lambda: len(ticks(receiver)) >= 3, what="first cycles")
    receiver.down()
    down_at = time.time_ns()
    wait_for(lambda: agent.metric("fleetpulse_agent_points_buffered") > 0, what="buffer to grow")
    first = agent.metric("fleetpulse_agent_buffer_size_bytes")
    wait_for(lambda: agent.metric("fleetpulse_agent_buffer_size_bytes") > 3 * first, what="buffer to keep growing")
    assert list((tmp_path / "buffer").glob("seg-*.fpb"))
    receiver.up()
    up_at = time.time_ns()
    wait_for(lambda: agent.metric("fleetpulse_agent_points_buffered") == 0, what="buffer to drain")
    assert agent.stop() == 0
    got = ticks(receiver)
    assert got == sorted(set(got)), "a tick arrived twice or out of order"
    assert sum(down_at <= t <= up_at for t in got) >= 3, "cycles sampled during the outage are missing"
    events = [r["attributes"]["event.name"] for r in receiver.log_records()]
    assert events[0] == "agent.start" and events[-1] == "agent.stop"


def test_kill9_while_buffering_then_restart_drains_the_disk(
    tmp_path: Path, receiver: OtlpReceiver, agents: list
) -> None:
    receiver.down()
    first = Agent(tmp_path, receiver, name="first")
    agents.append(first.start())
    wait_for(lambda: first.metric("fleetpulse_agent_points_buffered") > 30, what="buffered points")
    first.stop(signal.SIGKILL)
    on_disk = DiskBuffer(tmp_path / "buffer", 10**9, 3600)
    disk_ticks = []
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    while (batch := on_disk.peek()) is not None:
        if batch.signal == "metrics":
            request = ExportMetricsServiceRequest.FromString(batch.payload)
            for m in request.resource_metrics[0].scope_metrics[0].metrics:
                if m.name == TICK:
                    disk_ticks += [dp.time_unix_nano for dp in m.gauge.data_points]
        on_disk.pop()  # reads only the test's in-memory index; the cursor is restored below
    on_disk.close()
    (tmp_path / "buffer" / "cursor").unlink()  # back to "nothing delivered"
    assert len(disk_ticks) >= 3

    receiver.up()
    second = Agent(tmp_path, receiver, name="second")
    agents.append(second.start())
    wait_for(lambda: set(disk_ticks) <= set(ticks(receiver)), what="disk contents at the receiver")
    assert second.stop() == 0
    got = ticks(receiver)
    assert got == sorted(set(got))
    assert got[: len(disk_ticks)] == disk_ticks  # what was on disk goes out first, in order


def test_budget_overflow_and_redaction_on_the_wire(tmp_path: Path, receiver: OtlpReceiver, agents: list) -> None:
    extra = (
        "resource: {rack: rack-secret-7, k8s.cluster.name: prod, host.name: node-secret-42}\n"
        "cardinality: {series_budget: {fleetpulse.agent.cpu.time: 1}}\n"
        "redaction: {drop: [rack], hash: [host.name, k8s.node.name, cpu.mode], salt: pepper}\n"
    )
    agent = Agent(tmp_path, receiver, extra=extra)
    agents.append(agent.start())
    wait_for(
        lambda: any(n == "fleetpulse.agent.cardinality.overflow" for n, *_ in receiver.points()),
        what="overflow counter on the wire",
    )
    assert agent.stop() == 0
    points = receiver.points()
    cpu = [a for n, a, _, _ in points if n == "fleetpulse.agent.cpu.time"]
    assert {"otel.metric.overflow": "true"} in cpu
    assert all(a.get("cpu.mode", "sha256:").startswith("sha256:") for a in cpu)
    overflow = [(a, v) for n, a, _, v in points if n == "fleetpulse.agent.cardinality.overflow"]
    assert overflow[-1][0] == {"metric.name": "fleetpulse.agent.cpu.time"} and overflow[-1][1] >= 1
    for resource in receiver.resources():
        assert "rack" not in resource and resource["host.name"].startswith("sha256:")
        assert resource["k8s.cluster.name"] == "prod"
    wire = b"".join(r.request.SerializeToString() for r in receiver.received)
    assert b"node-secret-42" not in wire and b"rack-secret-7" not in wire


def test_sighup_reload_good_and_bad(tmp_path: Path, receiver: OtlpReceiver, agents: list) -> None:
    agent = Agent(tmp_path, receiver)
    agents.append(agent.start())
    wait_for(lambda: len(ticks(receiver)) >= 2, what="first cycles")
    good = agent.config.read_text() + "resource: {zone: z1}\n"
    agent.config.write_text(good)
    agent.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: any(r.get("zone") == "z1" for r in receiver.resources()), what="reloaded resource")

    agent.config.write_text(good + "intervall_s: 1\n")
    agent.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "keeping the last good config" in agent.log.read_text(), what="reload error in the log")
    assert "did you mean 'interval_s'?" in agent.log.read_text()
    seen = len(ticks(receiver))
    wait_for(lambda: len(ticks(receiver)) > seen + 2, what="sampling to continue")
    last = receiver.requests("metrics")[-1].request.resource_metrics[0].resource.attributes
    assert {kv.key: kv.value.string_value for kv in last}["zone"] == "z1"
    assert agent.stop() == 0


def test_bad_config_at_start_exits_with_the_reason(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("otlp:\n  endpiont: http://x:4317\n")
    out = subprocess.run(
        [sys.executable, "-m", "agent", "agent", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert out.returncode != 0
    assert f"{config}:2: otlp.endpiont: unknown key; did you mean 'endpoint'?" in out.stderr


def test_fault_event_starts_a_tagged_diagnostic_burst(tmp_path: Path, receiver: OtlpReceiver, agents: list) -> None:
    scenario = tmp_path / "xid.yaml"
    scenario.write_text(
        "name: xid\ndescription: one Xid 13 on GPU 1\nfaults:\n  - {at: 1s, gpu: 1, kind: xid, code: 13}\n"
    )
    flags = ("--simulate", "2:h100-sxm", "--faults", str(scenario), "--seed", "3")
    agent = Agent(tmp_path, receiver, extra="diagnostic_burst_s: 2\n", flags=flags)
    agents.append(agent.start())
    key = "fleetpulse.burst.event_id"
    wait_for(lambda: len({t for _, a, t, _ in receiver.points() if key in a}) >= 2, what="two burst steps")
    time.sleep(2.0)  # past the burst's end: no further steps
    assert agent.stop() == 0
    (xid,) = [r for r in receiver.log_records() if r["attributes"]["event.name"] == "gpu.xid"]
    assert xid["attributes"]["hw.gpu.xid"] == "13" and xid["attributes"]["gpu.index"] == "1"
    burst = [(a, t) for _, a, t, _ in receiver.points() if key in a]
    assert {a[key] for a, _ in burst} == {xid["attributes"]["event.id"]}
    assert {a["gpu.index"] for a, _ in burst} == {"1"}
    steps = sorted({t for _, t in burst})
    assert all(t % 10**9 == 0 for t in steps) and 2 <= len(steps) <= 4  # 1 s steps for 2 s
    # Regular fast-tier points of both GPUs keep flowing and carry no burst tag.
    assert {a.get("gpu.index") for n, a, _, _ in receiver.points() if n == "hw.gpu.temperature"} == {"0", "1"}
