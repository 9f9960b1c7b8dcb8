"""Agent steady state: RSS and CPU of the daemon process with 8 simulated GPUs plus host sources.

Method: the agent runs as a subprocess (``fleetpulse agent --simulate 8:h100-sxm --sources
nvml,host``) exporting OTLP/gRPC to an in-process receiver, Prometheus endpoint on. After a warm-up
the process's CPU time (user + system, from /proc via psutil) is read at the start and end of a
window; CPU% = CPU seconds / wall seconds x 100 of one core. The full run uses the real 10 s
interval (no scaling): 9 cycles in a 90 s window, the slow tier included. RSS is read at the end.
Baseline in the same window: ``prometheus-node-exporter`` idling at its defaults (not scraped),
and a bare ``python -c 'import time; time.sleep(...)'`` interpreter's RSS.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench.common import BenchResult, Figure, free_port

TITLE = "Agent steady state (8 simulated GPUs + host, OTLP export)"
REPO = Path(__file__).resolve().parent.parent


def _cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def run(quick: bool) -> BenchResult:
    sys.path.insert(0, str(REPO))
    from tests.otlp_receiver import OtlpReceiver

    interval, warmup, window = (0.5, 2.0, 3.0) if quick else (10.0, 15.0, 90.0)
    result = BenchResult(TITLE)
    procs: list[subprocess.Popen] = []
    receiver = OtlpReceiver().start()
    tmp = Path(tempfile.mkdtemp(prefix="fleetpulse-bench-agent-"))
    try:
        config = tmp / "agent.yaml"
        config.write_text(
            f"interval_s: {interval}\nslow_interval_s: {max(interval, 60.0) if not quick else interval}\n"
            f"sources: [nvml, host]\nprometheus_listen: 127.0.0.1:{free_port()}\n"
            f"otlp: {{endpoint: '{receiver.grpc_endpoint}'}}\nbuffer: {{dir: '{tmp / 'buffer'}'}}\n"
        )
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        agent = subprocess.Popen(
            [
                *(sys.executable, "-m", "agent", "--log-level", "warning", "agent", "--config", str(config)),
                *("--simulate", "8:h100-sxm", "--seed", "1"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp / "agent.log").open("wb"),
            env=env,
            cwd=REPO,
        )
        procs.append(agent)
        node_exporter = shutil.which("prometheus-node-exporter")
        baseline = None
        if node_exporter:
            baseline = subprocess.Popen(
                [node_exporter, f"--web.listen-address=127.0.0.1:{free_port()}"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            procs.append(baseline)
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        procs.append(sleeper)

        print(f"  warm-up {warmup:.0f} s, then a {window:.0f} s window at a {interval:g} s interval", flush=True)
        time.sleep(warmup)
        if agent.poll() is not None:
            raise RuntimeError(f"agent exited: {(tmp / 'agent.log').read_text()[-2000:]}")
        pa = psutil.Process(agent.pid)
        pb = psutil.Process(baseline.pid) if baseline else None
        requests_before = len(receiver.requests("metrics"))
        a0, b0, t0 = _cpu(pa), _cpu(pb) if pb else 0.0, time.monotonic()
        end = t0 + window
        while time.monotonic() < end:
            time.sleep(min(15.0, end - time.monotonic()))
            print(f"  ... {time.monotonic() - t0:.0f}/{window:.0f} s", flush=True)
        a1, b1, t1 = _cpu(pa), _cpu(pb) if pb else 0.0, time.monotonic()
        wall = t1 - t0
        agent_cpu = (a1 - a0) / wall * 100
        base_cpu = (b1 - b0) / wall * 100 if pb else None
        agent_rss = pa.memory_info().rss / 2**20
        base_rss = pb.memory_info().rss / 2**20 if pb else None
        python_rss = psutil.Process(sleeper.pid).memory_info().rss / 2**20
        cycles = len(receiver.requests("metrics")) - requests_before
        points = receiver.points()
        per_cycle = len(points) / max(1, len(receiver.requests("metrics")))
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        receiver.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    if cycles < max(2, int(window / interval) - 2):
        raise RuntimeError(f"only {cycles} cycles exported in the window; the agent is not keeping up")
    rss_name = "node-exporter RSS" if base_rss is not None else "bare python RSS"
    result.add(
        Figure(
            "agent RSS",
            agent_rss,
            "MB",
            rss_name,
            base_rss if base_rss is not None else python_rss,
            "< 80 MB",
            agent_rss < 80,
        )
    )
    result.add(
        Figure(
            f"agent CPU at a {interval:g} s interval",
            agent_cpu,
            "% of one core",
            "node-exporter idle CPU" if base_cpu is not None else None,
            base_cpu,
            "< 0.5 %" if not quick else None,
            agent_cpu < 0.5 if not quick else None,
        )
    )
    result.notes += [
        f"Window {wall:.0f} s at the real {interval:g} s interval ({cycles} cycles exported), after a "
        f"{warmup:.0f} s warm-up; CPU% = (user+system CPU seconds of the agent process) / wall seconds.",
        f"~{per_cycle:.0f} points per cycle (8 simulated H100 GPUs + host), OTLP/gRPC with gzip to a local "
        "receiver, disk buffer configured, Prometheus endpoint listening (not scraped).",
        f"Bare `python -c 'import time; time.sleep(...)'` RSS in the same run: {python_rss:.1f} MB.",
    ]
    return result
