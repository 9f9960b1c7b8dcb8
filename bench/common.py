"""Benchmark plumbing shared by every bench module.

A bench module ``bench/bench_<name>.py`` defines ``TITLE: str`` and
``run(quick: bool) -> BenchResult``. ``quick=True`` is the tiny size the CI smoke test uses;
figures are only recorded from full runs. Every figure is reported next to a baseline measured in
the same run, because these machines are shared and noisy.
"""

from __future__ import annotations

import math
import os
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    baseline_name: str | None = None
    baseline_value: float | None = None
    target: str | None = None  # human-readable, e.g. "< 20 ms"
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline_value in (None, 0):
            return None
        return self.value / self.baseline_value


@dataclass
class BenchResult:
    title: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    def to_markdown(self, command: str) -> str:
        lines = [
            f"## {self.title}",
            "",
            f"Command: `{command}`",
            "",
            "| figure | value | baseline (same run) | ratio | target | met |",
            "|---|---|---|---|---|---|",
        ]
        for f in self.figures:
            base = f"{f.baseline_name}: {_fmt(f.baseline_value)}" if f.baseline_name else "—"
            ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "—"
            met = {True: "yes", False: "**no**", None: "—"}[f.met]
            lines.append(f"| {f.name} | {_fmt(f.value)} {f.unit} | {base} | {ratio} | {f.target or '—'} | {met} |")
        if self.notes:
            lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def to_text(self) -> str:
        out = [f"== {self.title}"]
        for f in self.figures:
            ratio = f"  ratio {f.ratio:.2f}x vs {f.baseline_name}" if f.ratio is not None else ""
            target = f"  target {f.target}: {'MET' if f.met else 'MISSED'}" if f.target else ""
            out.append(f"  {f.name}: {_fmt(f.value)} {f.unit}{ratio}{target}")
        return "\n".join(out)


def _fmt(v: float | None) -> str:
    if v is None:
        return "—"
    if v == 0 or 0.01 <= abs(v) < 1e6:
        return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return f"{v:.3g}"


def machine_description() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of another process so far (Linux ``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range (benches' and tests' servers).

    A port from bind(0) is an ephemeral one: between this check and the server's bind, any outgoing
    connection (a client, gRPC, a child process) may be given the same port. Ports below the range are
    never handed out implicitly, so only an explicit bind can take them; this process never repeats one.
    """
    import random
    import socket

    low = _ephemeral_low()
    rng = random.Random()
    for _ in range(500):
        candidate = rng.randrange(max(1024, low - 12000), low)
        if candidate in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
        _HANDED_OUT.add(candidate)
        return candidate
    with socket.socket() as s:  # a crowded range: fall back to the kernel's choice
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str) -> tuple[int, bytes]:
    """GET ``path`` from a loopback server: (status, body)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def measure_cpu(fn: Callable[[], object], repeat: int) -> float:
    """Median process-CPU seconds of one call of ``fn`` over ``repeat`` calls."""
    samples = []
    for _ in range(repeat):
        t0 = cpu_seconds()
        fn()
        samples.append(cpu_seconds() - t0)
    samples.sort()
    return samples[len(samples) // 2]


def wall(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``, nearest-rank; 0.0 for an empty list."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100.0 * len(ordered)) - 1))
    return ordered[rank]


FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def simulated_node_snapshot(gpus: int = 8, profile: str = "h100-sxm", seed: int = 1, fixture_fabric: bool = True):
    """One full agent cycle (fast + slow tiers) of a simulated GPU node, as ``fleetpulse agent --once`` makes it.

    With ``fixture_fabric`` the fabric and error sources read the fixture GPU-node trees (4 InfiniBand ports,
    NICs, EDAC, AER, a kernel log with Xids) instead of this VM's /sys, which has none of that hardware.
    """
    from agent.config import AgentConfig
    from agent.runtime.once import collect_once

    config = AgentConfig()
    config.simulate.gpus = gpus
    config.simulate.profile = profile
    config.simulate.seed = seed
    if fixture_fabric:
        config.roots.sysfs = str(FIXTURES / "sysfs")
        config.roots.kmsg = str(FIXTURES / "kmsg" / "xid.log")
    return collect_once(config)


def serve_load(bodies: list[bytes], port: int, connections: int, headers: dict[str, str], timeout_s: float) -> int:
    """The load-generator process protocol: print READY, wait for a line on stdin, POST every body to
    /v1/metrics over ``connections`` keep-alive connections (retrying 429/503 after Retry-After, at
    most 100 attempts per body), print DONE with the final non-retryable statuses."""
    import http.client
    import json
    import sys
    import threading

    print("READY", len(bodies), flush=True)
    sys.stdin.readline()
    lock = threading.Lock()
    queue = list(range(len(bodies)))[::-1]
    failures: list[int] = []

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
        while True:
            with lock:
                if not queue:
                    break
                i = queue.pop()
            for _attempt in range(100):
                conn.request("POST", "/v1/metrics", body=bodies[i], headers=headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    break
                if resp.status not in (429, 503):
                    failures.append(resp.status)
                    break
                time.sleep(float(resp.getheader("Retry-After", "1")))
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("DONE", json.dumps({"failures": failures}), flush=True)
    return 0
