"""End-to-end ingest: OTLP/HTTP protobuf from a separate load-generator process → rows queryable.

The collector runs as its own process (real WAL with fsync, real chDB store). A load generator
process builds every request first (gzip-compressed, as the agent sends them), then posts them over
keep-alive connections. The figure is
data points per CPU-second of the collector process (user + system, all threads, chDB included),
from the first request until every row is queryable. The ceiling, measured in the same run, is
``Store.insert`` of the very same rows (pre-built Batches) into a fresh chDB in this process, per
CPU-second.

    python -m bench.run_all --only ingest
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import BenchResult, Figure, cpu_seconds, free_port, http_get, proc_cpu_seconds, serve_load

TITLE = "Collector ingest (OTLP/HTTP → WAL → chDB), points per collector core"
REPO = Path(__file__).resolve().parent.parent
TICK_NS = 10 * 1_000_000_000
ROUNDS = 3  # end-to-end runs and ceiling runs; each figure is the median round
HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}


def build_requests(
    nodes: int,
    gpus: int,
    series_per_gpu: int,
    ticks: int,
    base_ns: int,
    cluster: str = "bench",
    new_layout_per_tick: bool = False,
) -> list[bytes]:
    """One request per node per tick, agent-shaped: resource attrs once, gauges per GPU with hw.id etc.

    ``new_layout_per_tick`` lengthens the scope name every tick (not stored, same rows), so no request
    is laid out like an earlier one and the collector's steady-state layout path never applies.
    """
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    bodies = []
    for n in range(nodes):
        template = ExportMetricsServiceRequest()
        rm = template.resource_metrics.add()
        for k, v in (("host.name", f"node-{n:04d}"), ("k8s.cluster.name", cluster), ("rack", f"r{n % 8}")):
            kv = rm.resource.attributes.add()
            kv.key, kv.value.string_value = k, v
        sm = rm.scope_metrics.add()
        for m in range(series_per_gpu):
            metric = sm.metrics.add()
            metric.name = f"hw.gpu.bench.m{m:03d}"
            for g in range(gpus):
                dp = metric.gauge.data_points.add()
                dp.as_double = float(m + g)
                for k, v in (("hw.id", f"GPU-{n:04d}-{g}"), ("gpu.index", str(g)), ("hw.model", "H100")):
                    kv = dp.attributes.add()
                    kv.key, kv.value.string_value = k, v
        for t in range(ticks):
            if new_layout_per_tick:
                sm.scope.name = "bench" + "." * t
            ts = base_ns + t * TICK_NS
            for metric in sm.metrics:
                for dp in metric.gauge.data_points:
                    dp.time_unix_nano = ts
            bodies.append(template.SerializeToString())
    return bodies


def loadgen_main(argv: list[str]) -> int:
    """The separate load-generator process: build, say READY, wait for GO, post everything, say DONE."""
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int)
    p.add_argument("--spec")
    p.add_argument("--connections", type=int, default=4)
    a = p.parse_args(argv)
    spec = json.loads(a.spec)
    # Compressed like the agent sends them (otlp.compression: gzip, the OTel exporter's default level).
    bodies = [gzip.compress(body) for body in build_requests(**spec)]
    return serve_load(bodies, a.port, a.connections, HEADERS, timeout_s=60)


def _count(api: int, cluster: str = "bench") -> int:
    from urllib.parse import quote

    sql = f"SELECT count() FROM samples WHERE cluster = '{cluster}'"
    status, body = http_get(api, "/api/v1/query?sql=" + quote(sql))
    return json.loads(body)["rows"][0][0] if status == 200 else 0


def _warm_up(http_port: int, api: int, base_ns: int) -> None:
    """One small request (its own cluster, not counted) stored before the clock starts.

    The collector imports pyarrow and initialises Arrow's compute kernels and chDB's insert path on
    its first batch (~0.2 CPU-s, once per process); the ceiling pays none of that inside its clock,
    so neither does the figure.
    """
    import http.client

    spec = {"nodes": 1, "gpus": 2, "series_per_gpu": 10, "ticks": 1, "base_ns": base_ns, "cluster": "warmup"}
    conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=30)
    try:
        for body in build_requests(**spec):
            conn.request("POST", "/v1/metrics", body=gzip.compress(body), headers=HEADERS)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError(f"warm-up request answered {resp.status}")
    finally:
        conn.close()
    deadline = time.monotonic() + 60
    while _count(api, "warmup") < 20:
        if time.monotonic() > deadline:
            raise RuntimeError("warm-up request not stored in 60 s")
        time.sleep(0.1)


def _collector_run(spec: dict, total_points: int, workdir: Path) -> tuple[float, float, dict]:
    http, api = free_port(), free_port()
    config = workdir / "collector.yaml"
    config.write_text(
        f"data_dir: {workdir / 'collector-data'}\n"
        f"otlp: {{grpc_listen: 127.0.0.1:{free_port()}, http_listen: 127.0.0.1:{http}}}\n"
        f"api: {{listen: 127.0.0.1:{api}}}\n"
        "writer: {batch_max_rows: 500000, flush_interval_s: 0.5}\n"
        "limits: {max_past_s: 31536000}\n"
    )
    log = open(workdir / "collector.log", "wb")  # noqa: SIM115
    collector = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "--log-level", "warning", "collector", "--config", str(config)],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    loadgen = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_ingest", "--loadgen", "--port", str(http), "--spec", json.dumps(spec)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if http_get(api, "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if collector.poll() is not None:
                raise RuntimeError(f"collector exited: {(workdir / 'collector.log').read_text()[-2000:]}")
            time.sleep(0.2)
        else:
            raise RuntimeError("collector not ready in 120 s")
        _warm_up(http, api, spec["base_ns"])
        ready = loadgen.stdout.readline()
        if not ready.startswith("READY"):
            raise RuntimeError(f"load generator failed: {ready!r}")
        cpu0 = proc_cpu_seconds(collector.pid)
        t0 = time.perf_counter()
        loadgen.stdin.write("GO\n")
        loadgen.stdin.flush()
        done = json.loads(loadgen.stdout.readline().split(" ", 1)[1])
        sent_wall = time.perf_counter() - t0
        deadline = time.monotonic() + 240
        stored = 0
        while time.monotonic() < deadline:
            stored = _count(api)
            if stored >= total_points:
                break
            time.sleep(0.25)
        wall = time.perf_counter() - t0
        cpu = proc_cpu_seconds(collector.pid) - cpu0
        if stored != total_points or done["failures"]:
            raise RuntimeError(f"stored {stored} of {total_points} points; failures {done['failures'][:5]}")
        return cpu, wall, {"sent_wall": sent_wall}
    finally:
        loadgen.kill()
        collector.terminate()
        try:
            collector.wait(30)
        except subprocess.TimeoutExpired:
            collector.kill()
        log.close()


def _ceiling(spec: dict, workdir: Path, round_no: int) -> tuple[float, int]:
    """CPU seconds to insert the same rows straight into a fresh chDB (same schema, rollup views firing).

    The rows are converted to Arrow blocks of up to 500k rows (the writer's batch size) before the
    clock starts; what is timed is ``Store.insert`` of those blocks (chDB's ``Python()`` table function,
    deduplication token, both rollup views) and nothing of HTTP, protobuf, WAL or conversion. Each
    round inserts into a database of its own (chDB holds one data path per process); returns the CPU
    seconds and the row count.
    """
    from collector.convert import Converter, SampleArrays, decode_metrics
    from collector.limits import Limits
    from collector.store.rows import Batch
    from collector.store.settings import StorageSettings
    from collector.store.writer import Store

    bodies = build_requests(**spec)
    converter = Converter(Limits(max_past_s=31536000))
    now = time.time_ns()
    batches = []
    parts: list[SampleArrays] = []
    rows = 0
    for body in bodies:
        parts.append(converter.metrics("default", decode_metrics(body), now).samples)
        rows += len(parts[-1])
        if sum(len(p) for p in parts) >= 500_000:
            batches.append(Batch(arrow_samples=SampleArrays.concat(parts).to_arrow()))
            parts = []
    if parts:
        batches.append(Batch(arrow_samples=SampleArrays.concat(parts).to_arrow()))
    store = Store(StorageSettings(dsn=f"chdb://{workdir / 'ceiling'}", database=f"ceiling{round_no}"))
    try:
        c0 = cpu_seconds()
        for i, batch in enumerate(batches):
            store.insert(batch, f"ceiling-{i}")
        store.query("SELECT count() FROM samples")
        return cpu_seconds() - c0, rows
    finally:
        # No background merges of this round's parts may run into the next round's clock.
        store.client.command(f"DROP DATABASE IF EXISTS ceiling{round_no} SYNC")
        store.close()


def run(quick: bool) -> BenchResult:
    spec = (
        {"nodes": 2, "gpus": 2, "series_per_gpu": 10, "ticks": 2}
        if quick
        else {"nodes": 40, "gpus": 8, "series_per_gpu": 250, "ticks": 15}
    )
    spec["base_ns"] = (time.time_ns() // TICK_NS - spec["ticks"] - 6) * TICK_NS
    total = spec["nodes"] * spec["gpus"] * spec["series_per_gpu"] * spec["ticks"]
    result = BenchResult(TITLE)
    rounds = 1 if quick else ROUNDS
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        workdir = Path(tmp)
        # Rounds alternate (collector, ceiling, collector, ...) so each pair sees the same machine load.
        runs, ceiling_cpus = [], []
        for r in range(rounds):
            (workdir / f"run{r}").mkdir()
            runs.append(_collector_run(spec, total, workdir / f"run{r}"))
            seconds, ceiling_rows = _ceiling(spec, workdir, r)
            ceiling_cpus.append(seconds)
        ordinary_cpu = None
        if not quick:
            (workdir / "ordinary").mkdir()
            ordinary_cpu, _, _ = _collector_run({**spec, "new_layout_per_tick": True}, total, workdir / "ordinary")
    # The pair with the median ratio: this shared machine's load moves both sides by +-20 % from one
    # minute to the next, the ratio within a pair much less.
    pairs = sorted(zip(runs, ceiling_cpus, strict=True), key=lambda pair: pair[1] / pair[0][0])
    (cpu, wall, extra), ceiling_cpu = pairs[len(pairs) // 2]
    per_core = total / cpu
    ceiling = ceiling_rows / ceiling_cpu
    result.add(
        Figure(
            "end-to-end ingest per collector core, vs ceiling",
            per_core,
            "points/CPU-s",
            baseline_name="same rows straight into chDB (ceiling)",
            baseline_value=ceiling,
            target=">= 40% of ceiling",
            met=per_core >= 0.4 * ceiling,
        )
    )
    result.add(
        Figure(
            "end-to-end ingest per collector core, absolute",
            per_core,
            "points/CPU-s",
            baseline_name="same rows straight into chDB (ceiling)",
            baseline_value=ceiling,
            target=">= 250k points/CPU-s",
            met=per_core >= 250_000,
        )
    )
    if ordinary_cpu is not None:
        result.add(
            Figure(
                "same, every request laid out anew (no steady-state layout path)",
                total / ordinary_cpu,
                "points/CPU-s",
                baseline_name="same rows straight into chDB (ceiling)",
                baseline_value=ceiling,
            )
        )
    result.add(Figure("wall-clock throughput (2 shared CPUs)", total / wall, "points/s"))
    result.notes.append(
        f"{total:,} points in {total // (spec['gpus'] * spec['series_per_gpu']):,} requests of "
        f"{spec['gpus'] * spec['series_per_gpu']:,} points ({spec['nodes']} nodes x {spec['gpus']} GPUs x "
        f"{spec['series_per_gpu']} series, {spec['ticks']} ticks), gzip-compressed as the agent sends them, "
        f"4 keep-alive connections; collector used {cpu:.2f} CPU-s over {wall:.2f} s wall (load sent in "
        f"{extra['sent_wall']:.2f} s); WAL fsync on. One small warm-up request (another cluster) is stored "
        "before the clock starts, so one-time imports and first-insert setup are not in the figure. "
        "A node's requests differ only in times and values, as an agent's do, so from its third request on "
        "the collector takes its steady-state layout path (collector/receiver/layouts.py); the 'laid out anew' "
        "run lengthens the scope name every tick (same rows) so that path never applies."
    )
    result.notes.append(
        f"{rounds} rounds, alternating collector and ceiling; the figures are the round with the median "
        "ratio. (collector, ceiling) CPU-s per round: "
        + ", ".join(f"({run[0]:.2f}, {c:.2f})" for run, c in zip(runs, ceiling_cpus, strict=True))
        + "."
    )
    result.notes.append(
        "Collector CPU includes chDB's own insert, rollup materialized views and merges (same process). "
        f"The ceiling (pre-built Arrow blocks of 500k rows through Store.insert: chDB Python() insert, dedup token, "
        f"both rollup views; no HTTP, decode, WAL or conversion) is {ceiling:,.0f} rows per CPU-s here, so "
        f"250k points/CPU-s end to end would be {250_000 / ceiling:.0%} of it."
    )
    return result


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--loadgen":
        sys.exit(loadgen_main(sys.argv[2:]))
    print(run(quick="--quick" in sys.argv).to_text())
