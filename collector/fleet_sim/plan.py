"""The simulated fleet: its layout over time, the resolved faults, and the manifest of what was injected.

Everything here is decided before a single point is generated, from the spec and the seed, so any
worker can generate any (node, time chunk) independently and the manifest is the ground truth the
report tests compare against.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from collector.fleet_sim.scenario import FaultSpec, ScenarioError, TimeRef

NS = 1_000_000_000
THERMAL_REASON = "hw_thermal_slowdown"


@dataclass(frozen=True, slots=True)
class FleetSpec:
    nodes: int = 100
    gpus_per_node: int = 8
    duration_s: float = 86400.0
    interval_s: float = 10.0
    slow_interval_s: float = 60.0  # ECC, remapping, inventory (the agent's slow tier)
    seed: int = 0
    clusters: int = 1
    nodes_per_rack: int = 4
    nvlinks: int = 18
    ib_devices: int = 4
    end_unix_s: float | None = None  # None: now, floored to the slow tick
    model: str = "NVIDIA H100 80GB HBM3"
    node_prefix: str = "sim-node"  # node names are <prefix>-0000...; `fleetpulse up` avoids the live node's name

    def validate(self) -> None:
        problems = []
        if self.nodes < 1:
            problems.append(f"--nodes must be at least 1, got {self.nodes}")
        if not 1 <= self.gpus_per_node <= 64:
            problems.append(f"--gpus-per-node must be 1..64, got {self.gpus_per_node}")
        if self.interval_s < 1:
            problems.append(f"--interval must be at least 1s, got {self.interval_s}")
        if self.duration_s < self.interval_s:
            problems.append(f"--duration ({self.duration_s}s) must cover at least one --interval ({self.interval_s}s)")
        if self.duration_s > 15 * 86400:
            # Raw samples older than the store's TTL would be dropped silently at insert.
            problems.append(f"--duration must be at most 15d (the raw-sample TTL), got {self.duration_s / 86400:.1f}d")
        if self.clusters < 1 or self.nodes_per_rack < 1:
            problems.append("--clusters and nodes per rack must be at least 1")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(slots=True)
class Move:
    tick: int
    gpu_a: int
    gpu_b: int
    node_a: int
    slot_a: int
    node_b: int
    slot_b: int


@dataclass(slots=True)
class Window:
    k0: int  # first tick the condition is observed
    k1: int  # last tick the condition is observed (inclusive)


@dataclass
class FleetPlan:
    spec: FleetSpec
    start_ns: int
    n_ticks: int
    interval_ns: int
    slow_ns: int
    scenario: list[FaultSpec]
    moves: list[Move] = field(default_factory=list)
    # gpu id -> [(slow tick, delta)] single-bit ECC increases
    sbe: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    remap_pending: dict[int, int] = field(default_factory=dict)  # gpu -> tick
    xids: list[tuple[int, int, int]] = field(default_factory=list)  # (gpu, code, tick)
    lost: dict[int, int] = field(default_factory=dict)  # gpu -> tick it fell off the bus
    throttle: list[tuple[int, Window]] = field(default_factory=list)  # (rack, window)
    ib_errors: dict[int, list[tuple[str, int, Window, int]]] = field(default_factory=dict)
    nvlink_crc: dict[int, list[tuple[int, Window, int]]] = field(default_factory=dict)
    silent: dict[int, int] = field(default_factory=dict)  # node -> first silent tick
    # node -> [(tick, gpu)]: an NVML call on that GPU hung past the agent's watchdog timeout
    nvml_timeouts: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    # ------------------------------------------------------------------ layout
    @property
    def end_ns(self) -> int:
        return self.tick_ns(self.n_ticks - 1)

    def tick_ns(self, k: int) -> int:
        return self.start_ns + k * self.interval_ns

    def is_slow(self, k: int) -> bool:
        return self.tick_ns(k) % self.slow_ns == 0

    def node_name(self, node: int) -> str:
        return f"{self.spec.node_prefix}-{node:04d}"

    def cluster_name(self, node: int) -> str:
        return f"sim-cluster-{node * self.spec.clusters // self.spec.nodes}"

    def rack_of(self, node: int) -> int:
        return node // self.spec.nodes_per_rack

    def rack_name(self, node: int) -> str:
        return f"rack-{self.rack_of(node):02d}"

    @property
    def racks(self) -> int:
        return math.ceil(self.spec.nodes / self.spec.nodes_per_rack)

    def gpu_uuid(self, gpu: int) -> str:
        h = hashlib.blake2b(f"{self.spec.seed}:{gpu}".encode(), digest_size=16).hexdigest()
        return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"

    def gpu_serial(self, gpu: int) -> str:
        h = int.from_bytes(hashlib.blake2b(f"serial:{self.spec.seed}:{gpu}".encode(), digest_size=6).digest())
        return f"1652{h % 10**9:09d}"

    def boot_ns(self, node: int) -> int:
        """When the node's driver loaded (counter start), days before the window."""
        h = int.from_bytes(hashlib.blake2b(f"boot:{self.spec.seed}:{node}".encode(), digest_size=4).digest())
        return self.start_ns - (1 + h % 20) * 86400 * NS - (h % 3600) * NS

    def placement(self, node: int, k: int) -> list[int]:
        """GPU ids in each slot of ``node`` at tick ``k`` (moves applied in order)."""
        g = self.spec.gpus_per_node
        slots = list(range(node * g, node * g + g))
        for mv in self.moves:
            if mv.tick > k:
                break
            if mv.node_a == node:
                slots[mv.slot_a] = mv.gpu_b
            if mv.node_b == node:
                slots[mv.slot_b] = mv.gpu_a
        return slots

    def segment_start_ns(self, gpu: int, node: int, k: int) -> int:
        """Counter start of ``gpu`` at tick k: the node's boot, or when the GPU was installed there."""
        start = self.boot_ns(node)
        for mv in self.moves:
            if mv.tick <= k and gpu in (mv.gpu_a, mv.gpu_b):
                start = self.tick_ns(mv.tick)
        return start

    def where(self, gpu: int, k: int) -> tuple[int, int]:
        """(node, slot) of ``gpu`` at tick ``k``."""
        g = self.spec.gpus_per_node
        node, slot = divmod(gpu, g)
        for mv in self.moves:
            if mv.tick > k:
                break
            if gpu == mv.gpu_a:
                node, slot = mv.node_b, mv.slot_b
            elif gpu == mv.gpu_b:
                node, slot = mv.node_a, mv.slot_a
        return node, slot

    def reporting(self, node: int, k: int) -> bool:
        return k < self.silent.get(node, self.n_ticks)

    def iso(self, ns: int) -> str:
        return datetime.fromtimestamp(ns / NS, UTC).isoformat().replace("+00:00", "Z")

    # ------------------------------------------------------------------ manifest
    def manifest(self) -> dict[str, Any]:
        """What was injected and what the reports must find: the ground truth for tests."""
        spec = self.spec

        def gpu_ref(gpu: int, k: int) -> dict[str, Any]:
            node, slot = self.where(gpu, k)
            return {
                "gpu": self.gpu_uuid(gpu),
                "gpu_index": slot,
                "node": self.node_name(node),
                "cluster": self.cluster_name(node),
                "rack": self.rack_name(node),
            }

        faults: list[dict[str, Any]] = []
        for gpu, incs in sorted(self.sbe.items()):
            faults.append(
                {
                    "kind": "sbe_rising",
                    **gpu_ref(gpu, incs[0][0]),
                    "increases": [{"time": self.iso(self.tick_ns(k)), "delta": d} for k, d in incs],
                    "total": sum(d for _, d in incs),
                    "start": self.iso(self.tick_ns(incs[0][0])),
                    "end": self.iso(self.tick_ns(incs[-1][0])),
                }
            )
        for gpu, k in sorted(self.remap_pending.items()):
            faults.append(
                {"kind": "row_remap_pending", **gpu_ref(gpu, k), "code": 63, "start": self.iso(self.tick_ns(k))}
            )
        for gpu, code, k in self.xids:
            faults.append({"kind": "xid", **gpu_ref(gpu, k), "code": code, "start": self.iso(self.tick_ns(k))})
        for gpu, k in sorted(self.lost.items()):
            faults.append({"kind": "gpu_lost", **gpu_ref(gpu, k), "start": self.iso(self.tick_ns(k))})
        for gpu, w in self.throttled_gpus():
            faults.append(
                {
                    "kind": "thermal_throttle",
                    **gpu_ref(gpu, w.k0),
                    "reason": THERMAL_REASON,
                    "start": self.iso(self.tick_ns(w.k0)),
                    "end": self.iso(self.tick_ns(w.k1)),
                    "seconds": (w.k1 - w.k0 + 1) * spec.interval_s,
                }
            )
        for node, items in sorted(self.ib_errors.items()):
            for device, port, w, _ in items:
                faults.append(
                    {
                        "kind": "ib_symbol_errors",
                        "node": self.node_name(node),
                        "cluster": self.cluster_name(node),
                        "device": device,
                        "port": port,
                        "counter": "symbol_error",
                        "start": self.iso(self.tick_ns(w.k0)),
                        "end": self.iso(self.tick_ns(w.k1)),
                    }
                )
        for gpu, items in sorted(self.nvlink_crc.items()):
            for link, w, _ in items:
                faults.append(
                    {
                        "kind": "nvlink_crc",
                        **gpu_ref(gpu, w.k0),
                        "link": link,
                        "start": self.iso(self.tick_ns(w.k0)),
                        "end": self.iso(self.tick_ns(w.k1)),
                    }
                )
        for _node, items in sorted(self.nvml_timeouts.items()):
            for gpu in sorted({g for _, g in items}):
                ks = sorted(k for k, g in items if g == gpu)
                faults.append(
                    {
                        "kind": "nvml_timeout",
                        **gpu_ref(gpu, ks[0]),
                        "function": "nvmlGpmSampleGet",
                        "times": [self.iso(self.tick_ns(k)) for k in ks],
                        "count": len(ks),
                        "start": self.iso(self.tick_ns(ks[0])),
                        "end": self.iso(self.tick_ns(ks[-1])),
                    }
                )
        for node, k in sorted(self.silent.items()):
            faults.append(
                {
                    "kind": "node_silent",
                    "node": self.node_name(node),
                    "cluster": self.cluster_name(node),
                    "start": self.iso(self.tick_ns(k)),
                    "last_report": self.iso(self.tick_ns(k - 1)) if k > 0 else None,
                    "gpus": [self.gpu_uuid(g) for g in self.placement(node, max(k - 1, 0))],
                }
            )
        moves = [
            {
                "gpu": self.gpu_uuid(gpu),
                "from_node": self.node_name(src),
                "to_node": self.node_name(dst),
                "to_gpu_index": slot,
                "time": self.iso(self.tick_ns(mv.tick)),
            }
            for mv in self.moves
            for gpu, src, dst, slot in (
                (mv.gpu_a, mv.node_a, mv.node_b, mv.slot_b),
                (mv.gpu_b, mv.node_b, mv.node_a, mv.slot_a),
            )
        ]
        return {
            "fleet": {
                "nodes": spec.nodes,
                "gpus_per_node": spec.gpus_per_node,
                "gpus": spec.nodes * spec.gpus_per_node,
                "clusters": sorted({self.cluster_name(n) for n in range(spec.nodes)}),
                "interval_s": spec.interval_s,
                "slow_interval_s": self.slow_ns / NS,
                "seed": spec.seed,
                "start": self.iso(self.start_ns),
                "end": self.iso(self.end_ns),
                "start_ns": self.start_ns,
                "end_ns": self.end_ns,
                "ticks": self.n_ticks,
            },
            "faults": faults,
            "moves": moves,
        }

    def throttled_gpus(self) -> list[tuple[int, Window]]:
        """Each GPU that sat in a throttled rack, with the ticks it was observed throttling."""
        out: dict[int, list[int]] = defaultdict(list)
        for rack, w in self.throttle:
            for k in range(w.k0, w.k1 + 1):
                for node in range(self.spec.nodes):
                    if self.rack_of(node) != rack or not self.reporting(node, k):
                        continue
                    for gpu in self.placement(node, k):
                        if k < self.lost.get(gpu, self.n_ticks):
                            out[gpu].append(k)
        return [(gpu, Window(min(ks), max(ks))) for gpu, ks in sorted(out.items())]


def build_plan(spec: FleetSpec, scenario: list[FaultSpec], now_s: float | None = None) -> FleetPlan:
    spec.validate()
    interval_ns = round(spec.interval_s * NS)
    ratio = max(1, math.ceil(spec.slow_interval_s / spec.interval_s))
    slow_ns = ratio * interval_ns
    end_s = spec.end_unix_s if spec.end_unix_s is not None else (now_s if now_s is not None else time.time())
    end_ns = int(end_s * NS) // slow_ns * slow_ns
    n_ticks = int(spec.duration_s * NS // interval_ns)
    start_ns = end_ns - (n_ticks - 1) * interval_ns
    plan = FleetPlan(spec, start_ns, n_ticks, interval_ns, slow_ns, scenario)
    _resolve(plan, scenario)
    return plan


def _resolve(plan: FleetPlan, scenario: list[FaultSpec]) -> None:
    spec = plan.spec
    start_s = plan.start_ns / NS
    duration_s = (plan.n_ticks - 1) * plan.interval_ns / NS

    def tick(ref: TimeRef) -> int:
        t_ns = int(ref.resolve(start_s, duration_s) * NS)
        k = -(-(t_ns - plan.start_ns) // plan.interval_ns)  # ceil: the first tick at or after the time
        return min(max(k, 0), plan.n_ticks - 1)

    def slow_tick(k: int) -> int | None:
        while k < plan.n_ticks and not plan.is_slow(k):
            k += 1
        return k if k < plan.n_ticks else None

    def window(f: FaultSpec) -> Window:
        k0 = tick(f.params["start"])
        k1 = max(k0, tick(f.params["end"]) - 1)
        return Window(k0, k1)

    node = lambda f, key="node": f.params[key] % spec.nodes  # noqa: E731 - indices wrap around the fleet
    slot = lambda f, key="gpu": f.params[key] % spec.gpus_per_node  # noqa: E731

    # Moves first: later faults name (node, slot) and mean the GPU sitting there at that time.
    for f in sorted((f for f in scenario if f.kind == "move"), key=lambda f: tick(f.params["at"])):
        k = tick(f.params["at"])
        na, sa, nb, sb = node(f), slot(f), node(f, "to_node"), slot(f, "to_gpu")
        if na == nb:
            raise ScenarioError(
                f"faults[{f.index}] (line {f.line}): move needs two different nodes (node wraps modulo {spec.nodes})"
            )
        ga, gb = plan.placement(na, k)[sa], plan.placement(nb, k)[sb]
        plan.moves.append(Move(k, ga, gb, na, sa, nb, sb))
    for f in scenario:
        if f.kind == "node_silent":
            plan.silent[node(f)] = min(plan.silent.get(node(f), plan.n_ticks), tick(f.params["start"]))
    for f in scenario:
        if f.kind == "xid":
            k = tick(f.params["at"])
            gpu = plan.placement(node(f), k)[slot(f)]
            if not plan.reporting(node(f), k):
                continue
            plan.xids.append((gpu, f.params["code"], k))
            if f.params["code"] == 79:
                plan.lost[gpu] = min(plan.lost.get(gpu, plan.n_ticks), k)
    for f in scenario:
        p = f.params
        if f.kind == "sbe_rising":
            k_first = tick(p["start"])
            gpu = plan.placement(node(f), k_first)[slot(f)]
            every_s = p["every"].span_s(duration_s)
            for i in range(p["count"]):
                k = slow_tick(k_first + int(i * every_s * NS // plan.interval_ns))
                if k is None or not _observable(plan, gpu, k):
                    continue
                incs = plan.sbe.setdefault(gpu, [])
                if not incs or incs[-1][0] != k:
                    incs.append((k, p["delta"]))
            if not plan.sbe.get(gpu):
                plan.sbe.pop(gpu, None)
            if p["remap_pending_at"] is not None:
                k = slow_tick(tick(p["remap_pending_at"]))
                if k is not None and _observable(plan, gpu, k):
                    plan.remap_pending[gpu] = k
                    plan.xids.append((gpu, 63, k))
        elif f.kind == "thermal_throttle":
            plan.throttle.append((p["rack"] % plan.racks, window(f)))
        elif f.kind == "ib_symbol_errors":
            plan.ib_errors.setdefault(node(f), []).append((p["device"], p["port"], window(f), max(1, p["per_tick"])))
        elif f.kind == "nvlink_crc":
            if p["link"] >= spec.nvlinks:
                raise ScenarioError(
                    f"faults[{f.index}] (line {f.line}).link: expected 0..{spec.nvlinks - 1}, got {p['link']}"
                )
            w = window(f)
            # NVLink error counters are read on the slow tier: the burst is seen at slow ticks.
            ks = [k for k in range(w.k0, w.k1 + 1) if plan.is_slow(k)] or [slow_tick(w.k0)]
            if ks[0] is None:
                continue
            gpu = plan.placement(node(f), ks[0])[slot(f)]
            plan.nvlink_crc.setdefault(gpu, []).append((p["link"], Window(ks[0], ks[-1]), max(1, p["per_tick"])))
        elif f.kind == "nvml_timeout":
            k_first = tick(p["start"])
            gpu = plan.placement(node(f), k_first)[slot(f)]
            every_s = p["every"].span_s(duration_s)
            for i in range(p["count"]):
                k = k_first + int(i * every_s * NS // plan.interval_ns)
                if k >= plan.n_ticks or not _observable(plan, gpu, k):
                    continue
                where, _ = plan.where(gpu, k)
                hung = plan.nvml_timeouts.setdefault(where, [])
                if (k, gpu) not in hung:
                    hung.append((k, gpu))
    plan.xids.sort(key=lambda x: (x[2], x[0]))


def _observable(plan: FleetPlan, gpu: int, k: int) -> bool:
    node, _ = plan.where(gpu, k)
    return plan.reporting(node, k) and k < plan.lost.get(gpu, plan.n_ticks)
