"""Dashboard panel latency on a 7-day, 100-node store: rollup selection vs the same panels on raw samples.

The store holds the fleet simulator's history (collector/fleet_sim: plan with the default fault scenario,
so fault panels have rows) for the metrics the panels read, at a 600 s raw interval (slow tier 3600 s),
generated once into a cache folder under /tmp and reused while it is younger than a week.

Loading takes the fast path, with the production schema and rollup views:

- the fleet model's values (numpy, one UTC day of the whole fleet at a time) are laid out as an Arrow
  table in the ``samples`` layout and inserted with ``INSERT INTO samples SELECT ... FROM
  Python(table)`` on the Store's client (what ``Store.insert`` does for chDB), so the materialized
  views fill ``samples_1m`` and ``samples_1h`` exactly as in production;
- each series' identity columns (tenant, metric, cluster, node, gpu, attributes, series_id, kind,
  start_ts) come from the collector's real converter: one probe point per series goes through the
  OTLP request builder and ``Converter.metrics``, its value set to the series' position so the
  converted row maps back to the series; every point of the series then reuses that row;
- events (Xid, GPU lost, ECC increase, row remap, throttle onset/clear) go through ``Converter.logs``
  and inventory through ``Converter.metrics`` on ``hw.gpu.info`` (first and last report of each
  GPU-on-node stay, which is what inventory/inventory_seen keep), both stored with ``Store.insert``.

Host and agent metrics the fleet model does not emit but the Node and Pipeline dashboards read (PSI,
disk/network I/O and errors, available memory, PCIe AER, ``fleetpulse.agent.*``) are added per node
as simple deterministic waves and counters, so those panels scan a fleet's worth of rows too.

Every panel query of every dashboard (macros expanded as the plugin does, all variables "All") runs
3 times over the 7-day range: the generated panels (the guard picks ``samples_1h``) and the
same panels generated with every series source forced onto raw ``samples`` (the baseline).
Target: p95 < 500 ms.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import BenchResult, Figure, percentile

TITLE = "Dashboard panel latency (7-day range, 100 nodes)"
TARGET_MS = 500.0
CACHE_ROOT = Path(tempfile.gettempdir()) / "fleetpulse-bench-dashboards"
# Bump when the loader changes what it stores: the cache key includes it.
LAYOUT = 2
# Raw interval 600 s for the fast tier and 3600 s for the slow tier (ECC, row remapping, NVLink errors,
# clock limits): the agent's 10 s / 60 s ratio at 60x the period. The store with its rollup views costs
# ~4-5 us of CPU per raw row on chDB (measured: 300 s, 46 M rows, took ~4.5 min on this shared 2-core
# machine), so 600 s (~24 M rows) is what lets a cold build and the timing fit the 5-minute budget.
FULL = {
    "nodes": 100,
    "gpus_per_node": 8,
    "days": 7.0,
    "interval_s": 600.0,
    "slow_interval_s": 3600.0,
    "nvlinks": 2,
    "ib_devices": 2,
}
QUICK = {
    "nodes": 2,
    "gpus_per_node": 2,
    "days": 7.0,
    "interval_s": 3600.0,
    "slow_interval_s": 3600.0,
    "nvlinks": 1,
    "ib_devices": 1,
}
CACHE_MAX_AGE_MS = 7 * 86400_000  # raw TTL is 15 days: a week-old cache still holds its whole week
TENANT = "default"
TABLES = ("samples", "samples_1m", "samples_1h", "events", "inventory", "inventory_seen")


def _panel_queries(tier: str | None) -> dict[str, list[tuple[str, str]]]:
    """uid -> [(panel title, rawSql)] for the generated dashboards, optionally forced onto one tier."""
    from collector.grafana import generate, sql

    def collect() -> dict[str, list[tuple[str, str]]]:
        out: dict[str, list[tuple[str, str]]] = {}
        for uid, board in generate.all_dashboards().items():
            out[uid] = [
                (p["title"], t["rawSql"]) for p in board["panels"] for t in p.get("targets", []) if "rawSql" in t
            ]
        return out

    if tier is None:
        return collect()
    with sql.forced_tier(tier):  # type: ignore[arg-type]
        return collect()


def _panel_metrics() -> set[str]:
    """Catalog metrics named in any panel query (the only ones worth storing for this bench)."""
    from agent.catalog import CATALOG

    text = "\n".join(raw for panels in _panel_queries(None).values() for _title, raw in panels)
    return {name for name in CATALOG if f"'{name}'" in text}


def _plan(shape: dict[str, Any]) -> Any:
    from collector.fleet_sim import DEFAULT_SCENARIO, FleetSpec, build_plan, load_scenario

    spec = FleetSpec(
        nodes=shape["nodes"],
        gpus_per_node=shape["gpus_per_node"],
        duration_s=shape["days"] * 86400,
        interval_s=shape["interval_s"],
        slow_interval_s=shape["slow_interval_s"],
        nvlinks=shape["nvlinks"],
        ib_devices=shape["ib_devices"],
        seed=11,
    )
    # The default scenario names NVLink 7; this fleet has fewer links per GPU, so wrap the index.
    scenario = [
        dataclasses.replace(f, params={**f.params, "link": f.params["link"] % spec.nvlinks})
        if f.kind == "nvlink_crc"
        else f
        for f in load_scenario(DEFAULT_SCENARIO)
    ]
    return build_plan(spec, scenario)


# ---------------------------------------------------------------- host and agent series the model lacks


def _extra_series(plan: Any, node: int, ka: int, kb: int, wanted: set[str]) -> list[Any]:
    """Host (PSI, disk, network, AER) and agent self-metrics of ``node``: waves and slowly growing counters."""
    import numpy as np

    from collector.fleet_sim.model import Series
    from collector.fleet_sim.plan import NS

    kb = min(kb, plan.silent.get(node, plan.n_ticks))
    if kb <= ka:
        return []
    ks = np.arange(ka, kb)
    t_ns = plan.start_ns + ks * plan.interval_ns
    t = t_ns / NS
    times = t_ns.tolist()
    boot = plan.boot_ns(node)
    up = t - boot / NS
    rng = np.random.default_rng([plan.spec.seed, node, 99])
    wave = 0.5 + 0.5 * np.sin(2 * math.pi * t / 7200.0 + node)
    out: list[Any] = []

    def gauge(metric: str, values: Any, attrs: tuple = ()) -> None:
        if metric in wanted:
            out.append(Series(metric, attrs, times, np.round(values, 4).tolist()))

    def counter(metric: str, rate: float, attrs: tuple = (), start: int = boot) -> None:
        if metric in wanted:
            out.append(Series(metric, attrs, times, np.floor(rate * np.maximum(up, 0.0)).tolist(), start))

    for resource in ("cpu", "memory", "io"):
        for scope in ("some", "full"):
            share = (0.02 if scope == "some" else 0.005) * (1 + wave) * (2 if resource == "io" else 1)
            gauge(
                "system.pressure.avg10",
                share,
                (("system.pressure.resource", resource), ("system.pressure.scope", scope)),
            )
    gauge("system.linux.memory.available", 2048 * 1024**3 * (0.55 - 0.1 * wave))
    for device in ("nvme0n1", "nvme1n1"):
        for direction, rate in (("read", 4.0e8), ("write", 1.5e8)):
            counter("system.disk.io", rate, (("system.device", device), ("disk.io.direction", direction)))
    for iface in ("eth0", "ib0"):
        for direction, rate in (("transmit", 1.2e8), ("receive", 1.0e8)):
            attrs = (("network.interface.name", iface), ("network.io.direction", direction))
            counter("system.network.io", rate, attrs)
            counter("system.network.errors", 0.0, attrs)
            counter("system.network.packet.dropped", 0.001, attrs)
    counter("system.network.tcp.retransmits", 0.05)
    for slot in range(plan.spec.gpus_per_node):
        bus = f"00000000:{0x18 + 0x10 * slot:02X}:00.0"
        for severity, kind in (("correctable", "BadTLP"), ("fatal", "SurpriseDown")):
            attrs = (("hw.pci.bus_id", bus), ("hw.pcie.aer.severity", severity), ("hw.pcie.aer.type", kind))
            counter("hw.pcie.aer.errors", 0.0, (*attrs, ("hw.type", "gpu")))
    agent_start = plan.start_ns  # the agent restarted at the window's start (its counters begin there)
    since = (t_ns - agent_start) / NS
    for source, base in (("nvml", 0.35), ("host", 0.02), ("fabric", 0.01), ("errors", 0.004)):
        jitter = base * 0.1 * rng.standard_normal(len(ks))
        gauge("fleetpulse.agent.cycle.duration", base * (1 + 0.2 * wave) + jitter, (("fleetpulse.source", source),))
        if "fleetpulse.agent.source.errors" in wanted:
            out.append(
                Series(
                    "fleetpulse.agent.source.errors",
                    (("error.type", "read_error"), ("fleetpulse.source", source)),
                    times,
                    np.floor(since / 86400.0).tolist(),
                    agent_start,
                )
            )
    counter("fleetpulse.agent.nvml.timeouts", 0.0, (("nvml.function", "nvmlDeviceGetPowerUsage"),), agent_start)
    points_per_s = 400.0 * plan.spec.gpus_per_node / 10.0
    if "fleetpulse.agent.points.exported" in wanted:
        out.append(
            Series(
                "fleetpulse.agent.points.exported",
                (("fleetpulse.exporter", "otlp"),),
                times,
                np.floor(points_per_s * since).tolist(),
                agent_start,
            )
        )
    if "fleetpulse.agent.points.dropped" in wanted:
        out.append(
            Series(
                "fleetpulse.agent.points.dropped",
                (("error.type", "buffer_full"),),
                times,
                np.zeros(len(ks)).tolist(),
                agent_start,
            )
        )
    buffered = np.where(rng.uniform(size=len(ks)) < 0.02, rng.integers(1, 50_000, len(ks)), 0).astype(float)
    gauge("fleetpulse.agent.points.buffered", buffered)
    gauge("fleetpulse.agent.buffer.size", buffered * 24.0)
    gauge("fleetpulse.agent.memory.rss", 48e6 + 4e6 * wave + 2e5 * rng.standard_normal(len(ks)))
    return out


# ---------------------------------------------------------------- loading


def _identities(converter: Any, probes: list[Any], count: int, templates: Any) -> Any:
    """Arrow ``samples`` rows, one per series, as the collector's converter builds them.

    ``probes`` are node chunks holding one point per series whose value is the series' position
    (0..count-1); after ``Converter.metrics`` row ``i`` of the result is the identity of series ``i``.
    """
    import numpy as np
    import pyarrow as pa

    from collector.convert import decode_metrics
    from collector.fleet_sim.otlp import metrics_request

    request = metrics_request(probes, templates)
    converted = converter.metrics(TENANT, decode_metrics(request.SerializeToString()), time.time_ns())
    kept = 0 if converted.samples is None else len(converted.samples)
    if converted.rejected or kept != count:
        raise RuntimeError(
            f"bench_dashboards: the converter kept {kept} of {count} probe points "
            f"(rejected: {dict(converted.rejected)}); check Limits.max_past_s"
        )
    table = converted.samples.to_arrow()
    order = np.empty(count, dtype=np.int64)
    order[table.column("value").to_numpy().astype(np.int64)] = np.arange(count)
    return table.take(pa.array(order))


class _Slice:
    """One time slice of the whole fleet, columnar: per series a probe point, per row ts and value."""

    def __init__(self) -> None:
        self.probes: list[Any] = []  # NodeChunk per node, one point per series (value = series position)
        self.counts: list[int] = []
        self.ts: list[Any] = []  # numpy int64 ns per series
        self.values: list[Any] = []  # numpy float64 per series
        self.info: list[Any] = []  # NodeChunk per node: hw.gpu.info, first and last report
        self.events: list[Any] = []  # NodeChunk per node with its events

    def add(self, chunk: Any, series: list[Any]) -> None:
        import numpy as np

        from collector.fleet_sim.model import NodeChunk, Series

        probe = NodeChunk(chunk.node, chunk.resource)
        for s in series:
            probe.series.append(Series(s.metric, s.attributes, s.times[:1], [float(len(self.counts))], s.start_ns))
            self.counts.append(len(s.values))
            self.ts.append(np.asarray(s.times, dtype=np.int64))
            self.values.append(np.asarray(s.values, dtype=np.float64))
        self.probes.append(probe)
        info = NodeChunk(chunk.node, chunk.resource)
        info.series = [_first_and_last(s) for s in chunk.series if s.metric == "hw.gpu.info"]
        self.info.append(info)
        self.events.append(NodeChunk(chunk.node, chunk.resource, events=chunk.events))

    def samples(self, identities: Any) -> Any:
        """Every point in the ``samples`` layout: identity columns repeated, ts and value set."""
        import numpy as np
        import pyarrow as pa

        rows = np.repeat(np.arange(len(self.counts), dtype=np.int64), self.counts)
        table = identities.take(pa.array(rows))
        ts_ms = np.concatenate(self.ts) // 1_000_000
        table = table.set_column(
            table.schema.get_field_index("ts"), "ts", pa.array(ts_ms, type=pa.timestamp("ms", tz="UTC"))
        )
        values = pa.array(np.concatenate(self.values), type=pa.float64())
        return table.set_column(table.schema.get_field_index("value"), "value", values)


def _insert_samples(store: Any, table: Any, token: str) -> None:
    """``Store._insert_table`` for chDB, in one block (one part per table), views run in parallel."""
    from collector.store.value_codec import encode_samples

    table = encode_samples(table)  # the stored value_m/value_s columns, as Store.insert does
    names = ", ".join(f"`{n}`" for n in table.column_names)
    settings = {
        "insert_deduplication_token": f"{token}:samples",
        "optimize_on_insert": 0,
        "parallel_view_processing": 1,
        # Squash the whole slice into one block: one raw part per day partition, one rollup part per slice.
        "min_insert_block_size_rows": table.num_rows + 1,
        "min_insert_block_size_bytes": 1 << 40,
        "max_insert_block_size": table.num_rows + 1,
    }
    # chDB resolves Python(<name>) by looking the name up in the calling frames: this local.
    fleetpulse_bench_block = table  # noqa: F841
    store.client.command(
        f"INSERT INTO {store.settings.database}.samples ({names}) SELECT {names} FROM Python(fleetpulse_bench_block)",
        settings=settings,
    )


def _first_and_last(series: Any) -> Any:
    from collector.fleet_sim.model import Series

    keep = [0, len(series.times) - 1] if len(series.times) > 1 else [0]
    return Series(
        series.metric, series.attributes, [series.times[i] for i in keep], [series.values[i] for i in keep], None
    )


def _day_slices(plan: Any) -> list[tuple[int, int]]:
    """Tick ranges [ka, kb) cut at UTC midnight: the raw table is partitioned by day."""
    from collector.fleet_sim.plan import NS

    day_ns = 86400 * NS
    cuts = [0]
    midnight = (plan.start_ns // day_ns + 1) * day_ns
    while midnight <= plan.end_ns:
        cuts.append(-(-(midnight - plan.start_ns) // plan.interval_ns))
        midnight += day_ns
    cuts.append(plan.n_ticks)
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]


def _load(path: Path, shape: dict[str, Any], progress: bool) -> dict[str, Any]:
    """Fill a chDB store at ``path`` with the simulated fleet; returns its time span and table sizes.

    Time-major, one UTC day of the whole fleet per insert, background merges stopped: the raw table
    ends with one part per day partition (what merges reach anyway) and no CPU goes to merging
    parts that the next insert would add to. The hourly rollup is merged once at the end.
    """
    from collector.convert import Converter, decode_logs, decode_metrics
    from collector.fleet_sim.model import NodeModel
    from collector.fleet_sim.otlp import TemplateCache, logs_request, metrics_request
    from collector.limits import Limits
    from collector.store.client import release
    from collector.store.rows import Batch
    from collector.store.settings import StorageSettings
    from collector.store.writer import Store

    plan = _plan(shape)
    wanted = _panel_metrics()
    settings = StorageSettings(dsn=f"chdb://{path}")
    store = Store(settings)
    db = settings.database
    converter = Converter(Limits(max_past_s=int(plan.spec.duration_s) + 86400))
    model = NodeModel(plan)
    templates = TemplateCache()
    slices = _day_slices(plan)
    rows = events = inventory = 0
    started = time.perf_counter()
    try:
        store.command("SYSTEM STOP MERGES")
        for i, (ka, kb) in enumerate(slices):
            day = _Slice()
            for node in range(plan.spec.nodes):
                chunk = model.chunk(node, ka, kb)
                series = [s for s in chunk.series if s.metric in wanted]
                # Only what the model does not emit itself (a newer model may cover host metrics too).
                missing = wanted - {s.metric for s in chunk.series}
                day.add(chunk, series + _extra_series(plan, node, ka, kb, missing))
            table = day.samples(_identities(converter, day.probes, len(day.counts), templates))
            _insert_samples(store, table, f"bench-dashboards-{ka}")
            rows += table.num_rows
            del table

            received = time.time_ns()
            batch = Batch()
            request = metrics_request(day.info, templates)
            batch.inventory.extend(
                converter.metrics(TENANT, decode_metrics(request.SerializeToString()), received).inventory
            )
            logs = logs_request(day.events)
            if logs is not None:
                batch.events.extend(converter.logs(TENANT, decode_logs(logs.SerializeToString()), received).events)
            store.insert(batch, f"bench-dashboards-{ka}-meta")
            events += len(batch.events)
            inventory += len(batch.inventory)
            if progress:
                print(
                    f"\r  loading simulated fleet: day {i + 1}/{len(slices)}, {rows:,} samples rows, "
                    f"{time.perf_counter() - started:.0f} s",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
        if progress:
            print(f"\n  loaded {rows:,} samples rows in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        # The hourly rollup holds one part per day insert with disjoint keys; merge them as a week-old
        # store would have (cheap: ~1/12 of the raw rows).
        store.command(f"SYSTEM START MERGES {db}.samples_1h")
        store.command(f"OPTIMIZE TABLE {db}.samples_1h FINAL")
        store.command("SYSTEM STOP MERGES")
        counts = _table_counts(store)
    finally:
        store.close()
        release(settings)
    return {
        "rows": rows,
        "events": events,
        "inventory": inventory,
        "counts": counts,
        "load_s": round(time.perf_counter() - started, 1),
        "start_ms": plan.start_ns // 10**6,
        "end_ms": plan.end_ns // 10**6,
    }


def _table_counts(store: Any) -> dict[str, int]:
    """Rows per table; the rollups after merging their parts (what a query reads once merges caught up)."""
    db = store.settings.database
    out = {}
    for table in TABLES:
        final = " FINAL" if table in ("events", "inventory") else ""  # re-sent rows count once, as panels read them
        out[table] = int(store.query(f"SELECT count() FROM {db}.{table}{final}").result_rows[0][0])
    for table in ("samples_1m", "samples_1h"):
        keys = store.query(f"SELECT count() FROM (SELECT 1 FROM {db}.{table} GROUP BY series_id, ts)")
        out[f"{table}_keys"] = int(keys.result_rows[0][0])
    parts = store.query(
        "SELECT table, count() FROM system.parts WHERE active AND database = {db:String} GROUP BY table",
        parameters={"db": db},
    )
    for table, n in parts.result_rows:
        out[f"{table}_parts"] = int(n)
    return out


def _store(shape: dict[str, Any], quick: bool) -> tuple[Path, dict[str, Any], Path | None]:
    """(store path, fleet info, temp dir to remove) — the full store is cached across runs."""
    if quick:
        tmp = Path(tempfile.mkdtemp(prefix="fleetpulse-bench-dash-quick-"))
        return tmp / "clickhouse", _load(tmp / "clickhouse", shape, progress=False), tmp
    key = "-".join(f"{k}{v:g}" if isinstance(v, float) else f"{k}{v}" for k, v in sorted(shape.items()))
    root = CACHE_ROOT / f"layout{LAYOUT}-{key}"
    marker = root / "complete.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        if time.time() * 1000 - info["end_ms"] < CACHE_MAX_AGE_MS:
            return root / "clickhouse", info, None
    # Stale or other-layout caches of this bench only: they would just hold disk.
    if CACHE_ROOT.exists():
        for old in CACHE_ROOT.iterdir():
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
    root.mkdir(parents=True)
    info = _load(root / "clickhouse", shape, progress=True)
    marker.write_text(json.dumps(info))
    return root / "clickhouse", info, None


def _time_queries(store: Any, queries: dict[str, list[tuple[str, str]]], ctx: Any, repeat: int) -> dict[str, list]:
    from collector.grafana.macros import expand

    out: dict[str, list[float]] = {}
    for uid, panels in queries.items():
        times = []
        for _title, raw in panels:
            sql = expand(raw, ctx)
            for _ in range(repeat):
                t0 = time.perf_counter()
                store.query(sql)
                times.append((time.perf_counter() - t0) * 1000)
        out[uid] = times
    return out


def _rows_per_dashboard(store: Any, queries: dict[str, list[tuple[str, str]]]) -> dict[str, tuple[int, int]]:
    """uid -> (rows in samples_1h, rows in samples) of the metrics its panels name: what each side scans.

    chDB's query summary does not report rows read, so this counts them: every panel filters on its
    metrics (the sort key's second column) and the 7-day range covers the whole history.
    """
    from agent.catalog import CATALOG

    db = store.settings.database
    out = {}
    for uid, panels in queries.items():
        text = "\n".join(raw for _title, raw in panels)
        metrics = sorted(name for name in CATALOG if f"'{name}'" in text)
        names = ", ".join(f"'{m}'" for m in metrics) or "''"
        counts = [
            int(store.query(f"SELECT count() FROM {db}.{table} WHERE metric IN ({names})").result_rows[0][0])
            for table in ("samples_1h", "samples")
        ]
        out[uid] = (counts[0], counts[1])
    return out


def run(quick: bool = False) -> BenchResult:
    from collector.grafana.macros import ALL, Context, TimeRange
    from collector.store.client import release
    from collector.store.settings import StorageSettings
    from collector.store.writer import Store

    shape = QUICK if quick else FULL
    repeat = 1 if quick else 3
    path, info, tmp = _store(shape, quick)
    settings = StorageSettings(dsn=f"chdb://{path}")
    store = Store(settings)
    try:
        # A reopened store would resume merging its parts in the background, under the timed queries.
        store.command("SYSTEM STOP MERGES")
        end = info["end_ms"]
        ctx = Context(
            TimeRange(end - 7 * 86400_000, end),
            interval_ms=600_000,  # Grafana's $__interval for 7 days on a ~1000 px panel
            variables={"tenant": TENANT, "cluster": [ALL], "node": [ALL], "gpu": [ALL]},
        )
        auto = _panel_queries(None)
        raw = _panel_queries("raw")
        _time_queries(store, {k: v[:2] for k, v in auto.items()}, ctx, 1)  # warm caches and mappings
        _time_queries(store, {k: v[:2] for k, v in raw.items()}, ctx, 1)
        auto_ms = _time_queries(store, auto, ctx, repeat)
        raw_ms = _time_queries(store, raw, ctx, repeat)
        scanned = _rows_per_dashboard(store, auto)
    finally:
        store.close()
        release(settings)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    result = BenchResult(TITLE)
    everything_auto = [t for ts in auto_ms.values() for t in ts]
    everything_raw = [t for ts in raw_ms.values() for t in ts]
    for uid in auto_ms:
        for q in (50, 95):
            value = percentile(auto_ms[uid], q)
            result.add(
                Figure(
                    f"{uid} p{q} ({len(auto[uid])} panels)",
                    value,
                    "ms",
                    baseline_name="same panels on raw samples",
                    baseline_value=percentile(raw_ms[uid], q),
                    target=f"< {TARGET_MS:.0f} ms" if q == 95 else None,
                    met=value < TARGET_MS if q == 95 else None,
                )
            )
    for q in (50, 95):
        value = percentile(everything_auto, q)
        result.add(
            Figure(
                f"all panels p{q}",
                value,
                "ms",
                baseline_name=f"raw samples p{q}",
                baseline_value=percentile(everything_raw, q),
                target=f"< {TARGET_MS:.0f} ms" if q == 95 else None,
                met=value < TARGET_MS if q == 95 else None,
            )
        )
    result.add(Figure("slowest panel query", max(everything_auto), "ms", "raw samples", max(everything_raw)))
    result.add(
        Figure(
            "rows of the metrics the panels read",
            sum(rollup for rollup, _raw in scanned.values()),
            "rows",
            "raw samples",
            sum(raw for _rollup, raw in scanned.values()),
        )
    )
    counts = info["counts"]
    panels = sum(len(v) for v in auto.values())
    result.notes += [
        f"Store: fleet simulator history (default fault scenario) of {shape['nodes']} nodes x "
        f"{shape['gpus_per_node']} GPUs over {shape['days']:g} days, raw interval {shape['interval_s']:g} s for "
        f"the fast tier and {shape['slow_interval_s']:g} s for the slow tier (ECC, row remapping, NVLink errors, "
        f"clock limits) ({shape['nvlinks']} NVLinks, {shape['ib_devices']} IB devices per node); only the metrics "
        "the panels read, plus the host/agent metrics of the Node and Pipeline dashboards the model lacks. "
        "Series identities come from the collector's converter; rows go in one UTC day of the whole fleet per "
        "Arrow block through chDB's Python() table function into the real schema, so the rollup views filled "
        f"samples_1m / samples_1h as in production. Built in {info['load_s']:g} s (once; cached under "
        f"{CACHE_ROOT} and reused for a week).",
        f"Rows: samples (raw) {counts['samples']:,} in {counts.get('samples_parts', 0)} parts (one per day); "
        f"samples_1m {counts['samples_1m']:,} (at a {shape['interval_s']:g} s interval each raw row is its own "
        f"minute; not read by a 7-day panel); samples_1h {counts['samples_1h']:,} in "
        f"{counts.get('samples_1h_parts', 0)} part ({counts['samples_1h_keys']:,} series-hours, "
        f"{counts['samples'] / max(1, counts['samples_1h']):.1f}x fewer rows than raw); events {counts['events']:,}; "
        f"inventory {counts['inventory']:,} (GPU, node) pairs.",
        f"Range 7 days (the whole history), every variable All, $__interval 600 s; {panels} panel queries, each "
        f"run {repeat}x after a warm-up, background merges stopped (nothing left to merge on the tables read); "
        "the generated SQL reads samples_1h for a 7-day range, the baseline is the same panels generated with "
        "every series source forced onto raw samples (no guard).",
        "Rows of each dashboard's metrics over the 7 days, samples_1h / raw samples (each side filters by metric, "
        "the sort key's second column, and scans these): "
        + "; ".join(f"{uid} {rollup:,} / {raw:,}" for uid, (rollup, raw) in scanned.items())
        + ". Current-state panels (health, freshness, ports, agents) read the last minutes of raw samples on both "
        "sides, and events/inventory panels read those tables directly, so their latency is the same on both.",
        f"Scale: an agent scraping every 10 s (slow tier 60 s) writes {shape['interval_s'] / 10:g}x more raw rows "
        "than this store for the same samples_1h rows (one per series and hour), so the raw baseline is a lower "
        "bound of what skipping the rollups costs; the rollup side is production-sized. A 300 s store (46 M raw "
        "rows) was tried: loading it through the views took ~4.5 min on this shared machine, over the budget.",
    ]
    return result


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv).to_text())
