"""`health`: a verdict per GPU (healthy / degraded / unhealthy) with the reason and the suggested
action, following DESIGN §5 and the Xid catalog, plus GPUs missing against the inventory and
node-level fabric/memory findings.

Rules (each finding has a level; the GPU's verdict is its worst finding):
- unhealthy: GPU lost (Xid 79 / gpu.lost / hw.gpu.lost=1); fatal or critical Xid; DBE increase;
  row-remap failure; NVML recovery action requested.
- degraded: row remap or page retirement pending; warning Xid (63, 92, 94); SBE increase; NVLink
  error counters growing; harmful throttling for >= 1% of the window; PCIe replays >= 100.
- healthy otherwise (application Xids such as 13/31/43 are the application's, not the GPU's).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from agent.catalog import HARMFUL_THROTTLE_REASONS
from collector.reports import ecc, freshness, throttle, xid
from collector.reports.base import Query, epoch, iso, share
from collector.reports.result import ReportResult

DEFAULT_SINCE = "24h"
THROTTLE_SHARE_MIN = 1.0  # percent of the window
PCIE_REPLAYS_MIN = 100
LEVELS = {"unhealthy": 2, "degraded": 1, "healthy": 0}
THROTTLE_ACTION = {
    "hw_thermal_slowdown": "check cooling and airflow of the node/rack",
    "sw_thermal_slowdown": "check cooling and airflow of the node/rack",
    "hw_power_brake_slowdown": "check the power supply (external power brake asserted)",
    "hw_slowdown": "check power and cooling (HW slowdown)",
}
RECOVERY = {1: "GPU reset", 2: "node reboot", 3: "drain P2P", 4: "drain and reset"}
# Fabric counters that mean a marginal link (port_xmit_wait is congestion, not an error).
IB_ERROR_COUNTERS = (
    "symbol_error",
    "link_downed",
    "link_error_recovery",
    "local_link_integrity_errors",
    "excessive_buffer_overrun_errors",
    "port_rcv_errors",
    "port_rcv_remote_physical_errors",
)


@dataclass
class GpuHealth:
    gpu: str
    node: str = ""
    cluster: str = ""
    findings: list[tuple[int, str, str]] = field(default_factory=list)  # (level, reason, action)

    def add(self, level: str, reason: str, action: str) -> None:
        self.findings.append((LEVELS[level], reason, action))

    @property
    def verdict(self) -> str:
        worst = max((f[0] for f in self.findings), default=0)
        return {2: "unhealthy", 1: "degraded", 0: "healthy"}[worst]

    def ordered(self) -> list[tuple[int, str, str]]:
        return sorted(self.findings, key=lambda f: -f[0])


def assess(q: Query) -> tuple[dict[str, GpuHealth], list[list[Any]], list[list[Any]]]:
    """(per-GPU health, missing GPUs rows, node findings rows)."""
    gpus: dict[str, GpuHealth] = {}

    def gpu(g: str, node: str = "", cluster: str = "") -> GpuHealth:
        h = gpus.get(g)
        if h is None:
            h = gpus[g] = GpuHealth(g)
        h.node = h.node or node
        h.cluster = h.cluster or cluster
        return h

    # Known GPUs: the inventory (where each was last seen) plus anything reporting GPU samples.
    inventory = q.rows(
        f"""SELECT gpu, argMax(node, ls), argMax(cluster, ls), max(ls) FROM (
                SELECT gpu, node, any(cluster) AS cluster, max(last_seen) AS ls FROM inventory_seen
                WHERE tenant = {{tenant:String}} GROUP BY gpu, node)
            WHERE ls >= fromUnixTimestamp64Milli({{since_ms:Int64}}, 'UTC')
              AND {_filters(q)}
            GROUP BY gpu"""
    )
    last_seen = {}
    for g, node, cluster, ls in inventory:
        gpu(g, node, cluster)
        last_seen[g] = epoch(ls)

    lost: set[str] = set()
    for g, node, cluster in q.rows(
        f"""SELECT gpu, argMax(node, ts), argMax(cluster, ts) FROM events FINAL
            WHERE {q.where()} AND gpu != '' AND (event = 'gpu.lost' OR (event = 'gpu.xid' AND code = 79))
            GROUP BY gpu"""
    ):
        gpu(g, node, cluster)
        lost.add(g)
    for _m, cluster, g, node, last in q.rows(
        f"SELECT metric, cluster, gpu, argMax(node, ts), argMax(value, ts) FROM ({q.points(['hw.gpu.lost'])}) GROUP BY metric, cluster, gpu"
    ):
        gpu(g, node, cluster)
        if last > 0:
            lost.add(g)
    for g in lost:
        gpu(g).add("unhealthy", "GPU lost: fallen off the bus (Xid 79)", "reboot node; inspect hardware")

    for r in xid.xid_rows(q):
        if r["code"] == 79:
            continue  # reported as GPU lost
        level = {"fatal": "unhealthy", "critical": "unhealthy", "warning": "degraded", "unknown": "degraded"}.get(
            r["severity"]
        )
        h = gpu(r["gpu"], r["node"], r["cluster"])
        if level:
            h.add(level, f"Xid {r['code']} x{r['count']}: {r['meaning']}", r["action"])

    for g, e in ecc.ecc_state(q).items():
        h = gpu(g, e["node"], e["cluster"])
        dbe = max(e["dbe_volatile"], e["dbe_aggregate"])
        sbe = max(e["sbe_volatile"], e["sbe_aggregate"])
        if dbe > 0:
            h.add("unhealthy", f"{int(dbe)} double-bit ECC error(s)", "reset GPU; inspect hardware if repeated")
        if e["remap_failure"] > 0:
            h.add("unhealthy", "row remap failed", "inspect hardware: the GPU needs service (RMA)")
        if e["remap_pending"] > 0:
            h.add("degraded", "row remap pending", "reset GPU to apply the remap")
        if e["retired_pending"] > 0:
            h.add("degraded", "page retirement pending", "reset GPU to retire the pages")
        if sbe > 0:
            h.add("degraded", f"single-bit ECC errors rising (+{int(sbe)})", "watch; inspect hardware if persistent")

    links: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for _m, cluster, node, g, attrs, inc, _t0, _t1 in q.counter_increases(["hw.gpu.nvlink.errors"]):
        gpu(g, node, cluster)
        links[g][(attrs or {}).get("hw.nvlink.link", "?")] += float(inc)
    for g, per_link in links.items():
        desc = ", ".join(f"link {link} +{int(n)}" for link, n in sorted(per_link.items()))
        gpu(g).add("degraded", f"NVLink errors ({desc})", "reset GPU; inspect links if repeated")

    for _m, cluster, node, g, _attrs, inc, _t0, _t1 in q.counter_increases(["hw.gpu.pcie.replays"]):
        if inc >= PCIE_REPLAYS_MIN:
            gpu(g, node, cluster).add("degraded", f"PCIe replays +{int(inc)}", "reseat the GPU / inspect the PCIe link")

    for r in throttle.throttle_rows(q):
        pct = share(r["seconds"], q.win.seconds)
        if r["reason"] in HARMFUL_THROTTLE_REASONS and pct >= THROTTLE_SHARE_MIN:
            gpu(r["gpu"], r["node"], r["cluster"]).add(
                "degraded",
                f"{r['reason']} {pct:g}% of the window",
                THROTTLE_ACTION.get(r["reason"], "check power and cooling"),
            )

    for _m, cluster, g, node, last in q.rows(
        f"SELECT metric, cluster, gpu, argMax(node, ts), argMax(value, ts) FROM ({q.points(['hw.gpu.recovery_action'])}) GROUP BY metric, cluster, gpu"
    ):
        if last > 0:
            gpu(g, node, cluster).add(
                "unhealthy",
                f"driver requests recovery: {RECOVERY.get(int(last), int(last))}",
                f"perform the {RECOVERY.get(int(last), 'requested recovery')}",
            )

    # Missing: in the inventory during the window but silent for longer than `late` (lost GPUs are
    # already unhealthy and say why).
    late_s = freshness.late_threshold(q)
    missing = []
    for g, ls in sorted(last_seen.items(), key=lambda kv: kv[1]):
        if g not in lost and q.win.until - ls > late_s:
            h = gpus[g]
            missing.append([g, h.node, h.cluster, iso(ls), round(q.win.until - ls, 1)])
    missing_ids = {m[0] for m in missing}
    for g in missing_ids:
        gpus.pop(g, None)

    return gpus, missing, node_findings(q)


def node_findings(q: Query) -> list[list[Any]]:
    """IB port error counters and EDAC counts that grew, with when they first and last grew."""
    ib_filter = "attributes['ib.counter'] IN (" + ", ".join(f"'{c}'" for c in IB_ERROR_COUNTERS) + ")"
    grew: dict[tuple, dict[str, Any]] = {}
    for metric, cluster, node, _g, attrs, ts, delta in [
        *q.increase_times(["hw.network.ib.errors"], ib_filter),
        *q.increase_times(["hw.memory.edac.errors"]),
    ]:
        a = attrs or {}
        if metric == "hw.network.ib.errors":
            key = (
                node,
                cluster,
                f"ib {a.get('ib.device', '?')} port {a.get('ib.port', '?')}",
                a.get("ib.counter", "?"),
            )
            action = "inspect/replace the cable or transceiver"
        else:
            kind = a.get("hw.error.type", "?")
            key = (
                node,
                cluster,
                f"memory controller {a.get('edac.mc', '?')} csrow {a.get('edac.csrow', '?')}",
                f"EDAC {kind}",
            )
            action = "replace the DIMM" if kind.startswith("uncorr") else "watch; replace the DIMM if it keeps rising"
        e = grew.setdefault(key, {"inc": 0.0, "first": ts, "last": ts, "action": action})
        e["inc"] += float(delta)
        e["first"] = min(e["first"], ts)
        e["last"] = max(e["last"], ts)
    return [
        [*key, int(e["inc"]), iso(epoch(e["first"])), iso(epoch(e["last"])), e["action"]]
        for key, e in sorted(grew.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][3]))
    ]


def _filters(q: Query) -> str:
    parts = ["1"]
    if q.win.cluster:
        parts.append("cluster = {f_cluster:String}")
    if q.win.node:
        parts.append("node = {f_node:String}")
    if q.win.gpu:
        parts.append("gpu = {f_gpu:String}")
    return " AND ".join(parts)


def run(q: Query) -> ReportResult:
    gpus, missing, nodes = assess(q)
    ordered = sorted(gpus.values(), key=lambda h: (-LEVELS[h.verdict], h.node, h.gpu))
    rows = []
    for h in ordered:
        findings = h.ordered()
        rows.append(
            [h.gpu, h.node, h.verdict, "; ".join(f[1] for f in findings) or "-", findings[0][2] if findings else "-"]
        )
    counts = defaultdict(int)
    for h in ordered:
        counts[h.verdict] += 1
    summary = ", ".join(f"{counts[v]} {v}" for v in ("unhealthy", "degraded", "healthy")) + f", {len(missing)} missing"
    return ReportResult(
        name="health",
        title="GPU health verdicts (worst first)",
        columns=["gpu", "node", "verdict", "reason", "action"],
        units=["", "", "", "", ""],
        rows=rows,
        notes=[summary],
        params=q.win.describe(),
        sections=[
            ReportResult(
                name="missing",
                title="GPUs missing against the inventory (no report for longer than `late`)",
                columns=["gpu", "node", "cluster", "last_seen", "silent_for"],
                units=["", "", "", "UTC", "s"],
                rows=missing,
            ),
            ReportResult(
                name="nodes",
                title="Node fabric and memory findings",
                columns=["node", "cluster", "component", "counter", "increase", "first", "last", "action"],
                units=["", "", "", "", "{error}", "UTC", "UTC", ""],
                rows=nodes,
            ),
        ],
    )
