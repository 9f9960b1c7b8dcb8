"""docs/CAPACITY.md from the recorded benchmark sections (docs/bench/*.md), so the two cannot drift.

    python -m bench.capacity            # rewrite docs/CAPACITY.md
    python -m bench.capacity --check    # exit 1 when docs/CAPACITY.md is not what the sections give

Every input is a figure read from a recorded section (the value exactly as printed there); every
output line shows its arithmetic. The only numbers that are not measured are the sizing policy
constants below (headroom, replica and shard sizes, event rate), each stated in the document.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SECTIONS = REPO / "docs" / "bench"
OUTPUT = REPO / "docs" / "CAPACITY.md"

FLEETS = (1_000, 10_000, 100_000)
GPUS_PER_NODE = 8
INTERVAL_S = 10
SLOW_EVERY = 6  # slow tier 60 s = every 6th 10 s tick
# Sizing policy (not measured; stated in the document).
CPU_HEADROOM = 0.5  # run collectors at <= 50% CPU: room for catch-up after an outage and for restarts
CORES_PER_REPLICA = 2
MIN_REPLICAS = 2  # high availability
EVENTS_PER_GPU_DAY = 20  # throttle onset/clear dominate; Xid and ECC increments are rare
SHARD_INSERT_CORES = 4  # cores per ClickHouse shard we let inserts use (the rest: merges, queries)
SHARD_DISK_TB = 2.0  # hot data per shard before adding one
CH_REPLICAS = 2
RAW_TTL_DAYS = 15
MONTH_DAYS = 30

# (section, figure name prefix): what each input is, so a renamed figure fails loudly.
INPUTS = {
    "gpu_fast": ("scaling", "agent points per GPU per fast tick (10 s)"),
    "gpu_slow": ("scaling", "agent points per GPU per slow tick (60 s)"),
    "node_fast": ("scaling", "agent points per node per fast tick (host/fabric/errors)"),
    "node_slow": ("scaling", "agent points per node per slow tick (host/fabric/errors)"),
    "event_b": ("scaling", "events bytes/event on disk"),
    # Conservative: the figure without the steady-state layout path (slow-tier requests never take it).
    "ingest_core": ("ingest", "same, every request laid out anew"),
    "raw_b": ("storage", "samples bytes/sample on disk after merges"),
    "rollup_b": ("storage", "rollups (1m + 1h) bytes per raw sample"),
    "insert_rate": ("storage", "Store.insert rate into samples (+ rollup views)"),
    "wal_nodes": ("wal", "nodes one collector WAL absorbs at 10 s"),
}

ROW = re.compile(r"^\| (?P<figure>[^|]+?) \| (?P<value>[-0-9.,e+]+) (?P<unit>[^|]*?) \|")


class CapacityInputError(Exception):
    pass


@dataclass(frozen=True)
class Input:
    value: float
    text: str  # as printed in the section, with unit
    source: str  # docs/bench/<section>.md: figure


def read_inputs(sections: Path = SECTIONS) -> dict[str, Input]:
    out: dict[str, Input] = {}
    for key, (section, prefix) in INPUTS.items():
        path = sections / f"{section}.md"
        if not path.exists():
            raise CapacityInputError(
                f"{path}: missing; record it with `python -m bench.run_all --only {section}` (needed for {prefix!r})"
            )
        for line in path.read_text().splitlines():
            m = ROW.match(line)
            if m and m["figure"].startswith(prefix):
                text = f"{m['value']} {m['unit']}".strip()
                out[key] = Input(float(m["value"].replace(",", "")), text, f"docs/bench/{section}.md: {m['figure']}")
                break
        else:
            raise CapacityInputError(
                f"{path}: no figure starting with {prefix!r}; re-record the section or update bench/capacity.py INPUTS"
            )
    return out


def _n(v: float, digits: int = 0) -> str:
    return f"{v:,.{digits}f}"


def _bytes(b: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if b >= scale:
            return f"{b / scale:,.2f} {unit}"
    return f"{b:,.0f} B"


@dataclass
class Fleet:
    gpus: int
    nodes: int
    points_s: float
    cores: float
    replicas: int
    nodes_per_replica: float
    raw_day: float
    rollup_day: float
    events_day: float
    day: float
    month: float
    resident: float
    shards_insert: int
    shards_disk: int
    shards: int


def model(i: dict[str, Input]) -> tuple[float, float, list[Fleet]]:
    per_gpu = i["gpu_fast"].value + i["gpu_slow"].value / SLOW_EVERY
    per_node = i["node_fast"].value + i["node_slow"].value / SLOW_EVERY
    fleets = []
    for gpus in FLEETS:
        nodes = gpus // GPUS_PER_NODE
        points_s = (gpus * per_gpu + nodes * per_node) / INTERVAL_S
        cores = points_s / i["ingest_core"].value / CPU_HEADROOM
        replicas = max(MIN_REPLICAS, math.ceil(cores / CORES_PER_REPLICA))
        samples_day = points_s * 86_400
        raw_day = samples_day * i["raw_b"].value
        rollup_day = samples_day * i["rollup_b"].value
        events_day = gpus * EVENTS_PER_GPU_DAY * i["event_b"].value
        day = raw_day + rollup_day + events_day
        resident = raw_day * min(RAW_TTL_DAYS, MONTH_DAYS) + (rollup_day + events_day) * MONTH_DAYS
        shards_insert = math.ceil(points_s / (i["insert_rate"].value * SHARD_INSERT_CORES))
        shards_disk = math.ceil(resident / (SHARD_DISK_TB * 1e12))
        fleets.append(
            Fleet(
                gpus, nodes, points_s, cores, replicas, nodes / replicas, raw_day, rollup_day, events_day, day,
                day * MONTH_DAYS, resident, shards_insert, shards_disk, max(1, shards_insert, shards_disk),
            )
        )  # fmt: skip
    return per_gpu, per_node, fleets


def render(i: dict[str, Input]) -> str:
    per_gpu, per_node, fleets = model(i)
    g = i
    lines = [
        "# Capacity model",
        "",
        "Generated by `python -m bench.capacity` from the recorded benchmark sections in `docs/bench/`",
        "(`make bench` re-derives it; tests/test_capacity_doc.py fails when it is stale). Do not edit by hand.",
        "",
        "## Measured inputs",
        "",
        "| input | value | recorded in |",
        "|---|---|---|",
    ]
    labels = {
        "gpu_fast": "points per GPU per fast tick (10 s)",
        "gpu_slow": "points per GPU per slow tick (60 s)",
        "node_fast": "points per node per fast tick (host, fabric, errors)",
        "node_slow": "points per node per slow tick",
        "ingest_core": "collector ingest per core (OTLP/HTTP → WAL fsync → store), every request laid out anew",
        "raw_b": "raw bytes per sample on disk (6 h dataset, merged)",
        "rollup_b": "rollup (1m + 1h) bytes per raw sample",
        "event_b": "bytes per event on disk",
        "insert_rate": "store insert rate (one process, rollup views included)",
        "wal_nodes": "nodes one collector's WAL absorbs at 10 s (group commit)",
    }
    for key, label in labels.items():
        lines.append(f"| {label} | {g[key].text} | {g[key].source} |")
    lines += [
        "",
        "The point counts come from one real `fleetpulse agent --once --simulate 8:h100-sxm` cycle (fabric and",
        "errors on the fixture GPU-node trees: 4 InfiniBand ports, NICs, EDAC, AER); a node is 8 GPUs.",
        "",
        "## Sizing policy (chosen, not measured)",
        "",
        f"- Collectors run at <= {CPU_HEADROOM:.0%} CPU (headroom for draining agents' buffers after an outage and for",
        f"  a replica restart); {CORES_PER_REPLICA} cores per replica; at least {MIN_REPLICAS} replicas.",
        f"- Events: {EVENTS_PER_GPU_DAY} per GPU per day (throttle onset/clear dominate).",
        f"- ClickHouse: a shard lets inserts use {SHARD_INSERT_CORES} cores at the measured per-process insert rate,",
        f"  and holds at most {SHARD_DISK_TB:g} TB; {CH_REPLICAS} replicas per shard. Raw TTL {RAW_TTL_DAYS} d,",
        "  rollups 90 d / 2 y, events 5 y (collector.yaml `storage.ttl_days`).",
        "",
        "## Points per second",
        "",
        f"- per GPU per 10 s: {_n(g['gpu_fast'].value, 1)} + {_n(g['gpu_slow'].value, 1)} / {SLOW_EVERY} = {per_gpu:,.2f} points",
        f"- per node per 10 s: {_n(g['node_fast'].value, 1)} + {_n(g['node_slow'].value, 1)} / {SLOW_EVERY} = {per_node:,.2f} points",
        "",
        "| GPUs | nodes | points/s = (GPUs x per GPU + nodes x per node) / 10 s |",
        "|---|---|---|",
    ]
    for f in fleets:
        lines.append(
            f"| {f.gpus:,} | {f.nodes:,} | ({f.gpus:,} x {per_gpu:,.2f} + {f.nodes:,} x {per_node:,.2f}) / {INTERVAL_S} "
            f"= **{f.points_s:,.0f}** |"
        )
    lines += [
        "",
        "## Collector replicas",
        "",
        "| GPUs | cores = points/s / per-core rate / headroom | replicas = max(min, ceil(cores / cores per replica)) | nodes per replica (WAL limit) |",
        "|---|---|---|---|",
    ]
    for f in fleets:
        wal_ok = "ok" if f.nodes_per_replica <= g["wal_nodes"].value else "**over**"
        lines.append(
            f"| {f.gpus:,} | {f.points_s:,.0f} / {g['ingest_core'].value:,.0f} / {CPU_HEADROOM} = {f.cores:,.2f} "
            f"| max({MIN_REPLICAS}, ceil({f.cores:,.2f} / {CORES_PER_REPLICA})) = **{f.replicas}** "
            f"| {f.nodes_per_replica:,.0f} of {g['wal_nodes'].value:,.0f}: {wal_ok} |"
        )
    lines += [
        "",
        "The per-core rate includes the embedded chDB insert; with a ClickHouse server the collector does less",
        "work per point, so these counts are an upper bound.",
        "",
        "## ClickHouse storage",
        "",
        "samples/day = points/s x 86,400; raw = samples/day x raw B/sample; rollups = samples/day x rollup B/sample;",
        f"events = GPUs x {EVENTS_PER_GPU_DAY} x B/event; month = 30 days written; on disk after a month =",
        f"raw x {RAW_TTL_DAYS} d (TTL) + (rollups + events) x {MONTH_DAYS} d.",
        "",
        "| GPUs | raw per day | rollups per day | events per day | **per day** | **per month** | on disk after a month |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in fleets:
        lines.append(
            f"| {f.gpus:,} "
            f"| {f.points_s:,.0f} x 86,400 x {g['raw_b'].value:g} B = {_bytes(f.raw_day)} "
            f"| x {g['rollup_b'].value:g} B = {_bytes(f.rollup_day)} "
            f"| {f.gpus:,} x {EVENTS_PER_GPU_DAY} x {g['event_b'].value:g} B = {_bytes(f.events_day)} "
            f"| **{_bytes(f.day)}** | **{_bytes(f.month)}** | {_bytes(f.resident)} |"
        )
    lines += [
        "",
        "## Recommended ClickHouse layout",
        "",
        "| GPUs | shards for inserts = ceil(points/s / (insert rate x cores)) | shards for disk = ceil(on disk / limit) | **shards x replicas** |",
        "|---|---|---|---|",
    ]
    for f in fleets:
        lines.append(
            f"| {f.gpus:,} | ceil({f.points_s:,.0f} / ({g['insert_rate'].value:,.0f} x {SHARD_INSERT_CORES})) = {f.shards_insert} "
            f"| ceil({_bytes(f.resident)} / {SHARD_DISK_TB:g} TB) = {f.shards_disk} "
            f"| **{f.shards} x {CH_REPLICAS}** |"
        )
    lines += [
        "",
        "Shards > 1 need `storage.cluster` set (ReplicatedMergeTree + Distributed, docs/HELM.md); one shard with",
        f"{CH_REPLICAS} replicas is the smallest highly available layout. The insert rate is the embedded engine's on a",
        "shared 2-core machine, a conservative stand-in for a dedicated server core.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/CAPACITY.md is stale")
    args = parser.parse_args(argv)
    try:
        text = render(read_inputs())
    except CapacityInputError as exc:
        print(f"bench.capacity: {exc}", file=sys.stderr)
        return 2
    if args.check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is stale: run `python -m bench.capacity`", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
