"""simulate-fleet throughput: points/s through the collector's real write path, against inserting the
same rows straight into chDB with Store.insert (the ceiling), and the generator alone.

Real path: the default fleet scenario generated (one worker process) and posted as OTLP/HTTP
protobuf to an in-process collector (receiver → limits → WAL with fsync → writer → chDB), timed
from the first request to the last row stored. Baseline: the same requests converted to store
batches beforehand, then only ``Store.insert`` timed into a fresh chDB directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

from bench.common import BenchResult, Figure

TITLE = "simulate-fleet throughput (real write path vs direct Store.insert)"
TARGET_POINTS_PER_S = 100_000


def _spec(quick: bool):
    from collector.fleet_sim import FleetSpec

    if quick:
        return FleetSpec(nodes=2, gpus_per_node=8, duration_s=900, interval_s=60, nvlinks=8, seed=1)
    return FleetSpec(nodes=12, gpus_per_node=8, duration_s=2 * 3600, interval_s=10, nvlinks=18, seed=1)


def _real_path(plan, root: str) -> tuple[int, float]:
    from collector.fleet_sim import OtlpHttpSender, simulate
    from collector.fleet_sim.inprocess import _wait_drained, local_collector
    from collector.store.settings import chdb_dsn

    dsn = chdb_dsn(os.path.join(root, "real"))
    with local_collector(dsn, max_past_s=int(plan.spec.duration_s) + 3600) as (collector, url):
        started = time.perf_counter()
        summary = simulate(plan, OtlpHttpSender(url), workers=1, senders=2, progress=None)
        _wait_drained(collector)
        # The writer flushes at most every flush_interval_s: the last rows land within it.
        store = collector.pipeline.store
        while store.query("SELECT count() FROM samples").result_rows[0][0] < summary.points:
            time.sleep(0.05)
        seconds = time.perf_counter() - started
    return summary.points, seconds


def _direct(plan, root: str) -> tuple[int, float, float]:
    """(points, insert seconds, generation seconds) for the same payloads inserted with Store.insert."""
    import gzip

    from collector.convert import Converter, SampleArrays, decode_logs, decode_metrics
    from collector.fleet_sim.generate import payloads, tasks
    from collector.limits import Limits
    from collector.store.rows import Batch
    from collector.store.settings import StorageSettings, chdb_dsn
    from collector.store.writer import Store

    converter = Converter(Limits(max_past_s=int(plan.spec.duration_s) + 3600))
    batches: list[Batch] = []
    now = time.time_ns()
    points = 0
    t0 = time.perf_counter()
    bodies = list(payloads(plan, tasks(plan)))
    gen_s = time.perf_counter() - t0
    pending: list[SampleArrays] = []
    batch = Batch()
    for p in bodies:
        if p.metrics:
            conv = converter.metrics("default", decode_metrics(gzip.decompress(p.metrics)), now)
            pending.append(conv.samples)
            batch.inventory.extend(conv.inventory)
            points += len(conv.samples)
        if p.logs:
            batch.events.extend(converter.logs("default", decode_logs(gzip.decompress(p.logs)), now).events)
        if sum(len(s) for s in pending) >= 500_000:
            batch.arrow_samples = SampleArrays.concat(pending).to_arrow()
            batches.append(batch)
            batch, pending = Batch(), []
    if pending:
        batch.arrow_samples = SampleArrays.concat(pending).to_arrow()
    batches.append(batch)
    store = Store(StorageSettings(dsn=chdb_dsn(os.path.join(root, "direct"))))
    try:
        t0 = time.perf_counter()
        for i, b in enumerate(batches):
            store.insert(b, f"bench-{i}")
        insert_s = time.perf_counter() - t0
    finally:
        store.close()
    return points, insert_s, gen_s


def run(quick: bool) -> BenchResult:
    from collector.fleet_sim import build_plan, load_scenario

    plan = build_plan(_spec(quick), load_scenario())
    root = tempfile.mkdtemp(prefix="bench-simfleet-")
    try:
        real_points, real_s = _real_path(plan, root)
        direct_points, direct_s, gen_s = _direct(plan, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    real_rate = real_points / real_s
    direct_rate = direct_points / direct_s
    gen_rate = direct_points / gen_s
    from collector.fleet_sim.generate import points_per_node_tick

    spec = plan.spec
    full = points_per_node_tick(plan) * 100 * 8640
    result = BenchResult(TITLE)
    result.add(
        Figure(
            "simulate-fleet through the real write path",
            real_rate,
            "points/s",
            baseline_name="direct Store.insert of the same rows",
            baseline_value=direct_rate,
            target=f">= {TARGET_POINTS_PER_S:,} points/s",
            met=real_rate >= TARGET_POINTS_PER_S,
        )
    )
    result.add(
        Figure(
            "generator alone (OTLP requests built, gzip, one process)",
            gen_rate,
            "points/s",
            baseline_name="real write path",
            baseline_value=real_rate,
            target=">= 2x the write path (never the bottleneck)",
            met=gen_rate >= 2 * real_rate,
        )
    )
    result.notes += [
        f"fleet: {spec.nodes} nodes x {spec.gpus_per_node} GPUs, {spec.duration_s / 3600:g} h at {spec.interval_s:g} s "
        f"(slow tier 60 s, {spec.nvlinks} NVLinks), default fault scenario: {real_points:,} points",
        f"real path: {real_s:.1f} s from first request to last row stored (WAL fsync on, 1 generator process, 2 senders)",
        f"direct: {direct_s:.1f} s of Store.insert for {direct_points:,} pre-converted rows",
        f"at the real-path rate, the 100-node x 8-GPU x 24 h at 10 s history (~{full / 1e6:,.0f} M points, "
        f"{points_per_node_tick(plan):,.0f} per node and tick as a real agent sends) takes {full / real_rate / 60:.0f} "
        "min on this machine",
    ]
    return result
