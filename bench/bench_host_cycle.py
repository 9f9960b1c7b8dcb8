"""Host + fabric + errors cycle vs one scrape of Debian's prometheus-node-exporter.

Agent side: the production sources in this process, host against the real /proc and /sys, fabric
and errors against the fixture InfiniBand/NIC/EDAC/AER trees (this machine has none) so those
paths do real work, plus the fixture kernel log. One "cycle" is the fast tier with the slow tier
amortized as in production (every 6th cycle; 10 s / 60 s), rendered to JSON lines.

Baseline: node_exporter with its default collectors on a free loopback port; its process CPU
(utime+stime from /proc/<pid>/stat) over N scrapes of /metrics, and its RSS.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.common import BenchResult, Figure, cpu_seconds, free_port

TITLE = "Host + fabric + errors cycle vs node_exporter scrape"

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
SLOW_EVERY = 6
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _rss_bytes(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S  # utime, stime


def _agent_config():  # -> AgentConfig
    from agent.config import AgentConfig

    config = AgentConfig()
    config.roots.sysfs = str(FIXTURES / "sysfs")  # fabric + errors only; host keeps the real roots
    config.roots.kmsg = str(FIXTURES / "kmsg" / "xid.log")
    return config


def build_sources() -> list:
    from agent.config import AgentConfig
    from agent.sources.errors import ErrorsSource
    from agent.sources.fabric import FabricSource
    from agent.sources.host import HostSource

    fixture = _agent_config()
    return [HostSource(AgentConfig()), FabricSource(fixture), ErrorsSource(fixture)]


def run_cycles(sources: list, cycles: int, *, render: bool) -> tuple[float, int]:
    """CPU seconds per cycle and points in the last full cycle."""
    from agent.exporters.jsonl import write_snapshot
    from agent.snapshot import SnapshotBuilder

    points = 0
    started = cpu_seconds()
    for i in range(cycles):
        builder = SnapshotBuilder({"host.name": "bench"}, time.time_ns())
        slow = i % SLOW_EVERY == 0
        for source in sources:
            source.collect(builder, "fast")
            if slow:
                source.collect(builder, "slow")
        snapshot = builder.build()
        if render:
            write_snapshot(snapshot, io.StringIO())
        if slow:
            points = len(snapshot.points)
    return (cpu_seconds() - started) / cycles, points


def fresh_process_rss(cycles: int) -> int:
    """RSS of a new Python process that only imports the three sources and runs cycles."""
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from bench.bench_host_cycle import build_sources, run_cycles, _rss_bytes\n"
        f"sources = build_sources(); run_cycles(sources, {cycles}, render=True); print(_rss_bytes())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return int(out.stdout.strip().splitlines()[-1])


# node_exporter collectors covering what the three sources report (no AER collector exists in 1.5).
COMPARABLE_COLLECTORS = (
    "cpu",
    "loadavg",
    "meminfo",
    "pressure",
    "diskstats",
    "filesystem",
    "netdev",
    "netstat",
    "stat",
    "hwmon",
    "thermal_zone",
    "infiniband",
    "edac",
    "netclass",
)


def node_exporter_scrape(scrapes: int, collectors: tuple[str, ...] = ()) -> tuple[float, int, int] | None:
    """(CPU seconds per scrape, RSS bytes, series per scrape), or None when not installed.

    ``collectors`` empty = the default set; otherwise only those (``--collector.disable-defaults``).
    """
    binary = shutil.which("prometheus-node-exporter") or (NODE_EXPORTER if os.path.exists(NODE_EXPORTER) else None)
    if binary is None:
        return None
    port = free_port()
    only = ["--collector.disable-defaults", *(f"--collector.{c}" for c in collectors)] if collectors else []
    proc = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}", *only],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        body = b""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    body = response.read()
                break
            except OSError:
                time.sleep(0.1)
        if not body:
            raise RuntimeError(f"node_exporter on port {port} did not answer within 15 s")
        for _ in range(2):  # warm caches the way a long-running exporter has them
            urllib.request.urlopen(url, timeout=10).read()
        before = _process_cpu_seconds(proc.pid)
        for _ in range(scrapes):
            with urllib.request.urlopen(url, timeout=10) as response:
                body = response.read()
        per_scrape = (_process_cpu_seconds(proc.pid) - before) / scrapes
        series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        return per_scrape, _rss_bytes(proc.pid), series
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def run(quick: bool) -> BenchResult:
    result = BenchResult(TITLE)
    cycles = 60 if quick else 3000
    scrapes = 5 if quick else 200

    rss_before = _rss_bytes()
    sources = build_sources()
    run_cycles(sources, SLOW_EVERY, render=True)  # warm-up: device lists, regexes, first readings
    collect_only, points = run_cycles(sources, cycles, render=False)
    with_render, _ = run_cycles(sources, cycles, render=True)
    rss_delta = _rss_bytes() - rss_before
    for source in sources:
        source.close()

    baseline = None if quick and not os.path.exists(NODE_EXPORTER) else node_exporter_scrape(scrapes)
    base_cpu, base_rss, base_series = baseline if baseline else (None, None, None)
    result.add(
        Figure(
            "agent CPU per cycle (host+fabric+errors, collect + JSON render)",
            with_render * 1e3,
            "ms",
            "node_exporter CPU per scrape (default collectors)" if baseline else None,
            base_cpu * 1e3 if base_cpu is not None else None,
            "<= 0.5x node_exporter",
            (with_render <= 0.5 * base_cpu) if base_cpu else None,
        )
    )
    result.add(
        Figure(
            "agent CPU per cycle (collect only)",
            collect_only * 1e3,
            "ms",
            "node_exporter CPU per scrape" if baseline else None,
            base_cpu * 1e3 if base_cpu is not None else None,
        )
    )
    agent_rss = fresh_process_rss(SLOW_EVERY * 5) if not quick else None
    if agent_rss is not None:
        result.add(
            Figure(
                "agent process RSS (fresh Python, the three sources only)",
                agent_rss / 2**20,
                "MiB",
                "node_exporter RSS" if baseline else None,
                base_rss / 2**20 if base_rss is not None else None,
            )
        )
    comparable = node_exporter_scrape(scrapes, COMPARABLE_COLLECTORS) if baseline else None
    if comparable is not None:
        result.add(
            Figure(
                "agent CPU per cycle (collect + JSON render)",
                with_render * 1e3,
                "ms",
                "node_exporter CPU per scrape, only the collectors the agent's sources match",
                comparable[0] * 1e3,
                "<= 0.5x node_exporter",
                with_render <= 0.5 * comparable[0],
            )
        )
        result.add(
            Figure(
                "points per full cycle (agent)",
                points,
                "points",
                "node_exporter series per scrape, matching collectors only",
                comparable[2],
            )
        )
    result.add(Figure("agent RSS delta in the bench process", rss_delta / 2**20, "MiB"))
    result.add(
        Figure(
            "points per full cycle (agent)",
            points,
            "points",
            "node_exporter series per scrape" if baseline else None,
            base_series,
        )
    )
    result.notes += [
        f"{cycles} agent cycles (slow tier every {SLOW_EVERY}th, as at 10 s / 60 s), {scrapes} node_exporter scrapes.",
        "Host reads the real /proc and /sys; fabric and errors read the fixture InfiniBand (4 ports), NIC, EDAC "
        "and AER (5 devices) trees and the fixture kernel log, since this machine has none of that hardware.",
        "node_exporter's default collectors cover more kernel subsystems (conntrack, softnet, vmstat, sockstat...) "
        "and its CPU includes Prometheus text rendering; the agent figure includes JSON-lines rendering of its points.",
        "Matching collectors: " + ", ".join(COMPARABLE_COLLECTORS) + " (node_exporter series include its own "
        "scrape-duration and Go runtime series; the agent's include PCIe AER and Xid, which node_exporter lacks).",
    ]
    if baseline is None:
        result.notes.append("node_exporter not installed: baseline not measured.")
    return result


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv).to_text())
