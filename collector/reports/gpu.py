"""`gpu UUID`: one GPU's life across nodes — inventory, moves, errors, throttle, ECC, health — the
evidence an RMA needs. ``--html FILE`` renders it with plots (collector/reports/render.py)."""

from __future__ import annotations

import dataclasses
import itertools

from collector.reports import ecc, health, throttle
from collector.reports.base import Query, ReportError, epoch, iso
from collector.reports.result import Plot, ReportResult

DEFAULT_SINCE = "30d"
PLOT_METRICS = [
    ("hw.gpu.temperature", "attributes['hw.sensor'] = 'gpu'", "GPU temperature", "Cel"),
    ("hw.gpu.power.usage", "", "Power", "W"),
    ("hw.gpu.clock.frequency", "attributes['hw.gpu.clock'] = 'sm'", "SM clock", "Hz"),
    ("hw.gpu.utilization", "attributes['hw.gpu.task'] = 'general'", "Utilization", "1"),
    (
        "hw.gpu.ecc.errors",
        "attributes['hw.gpu.ecc.scope'] = 'aggregate' AND attributes['hw.gpu.ecc.type'] IN ('corrected', 'correctable', 'sbe')",
        "SBE (aggregate)",
        "{error}",
    ),
]
MAX_PLOT_POINTS = 400


def run(q: Query) -> ReportResult:
    uuid = str(q.win.options.get("arg") or q.win.options.get("uuid") or q.win.gpu or "")
    if not uuid:
        raise ReportError(
            "gpu: which GPU? give its UUID, e.g. `fleetpulse query gpu GPU-1234...` (arg=UUID at the API)"
        )
    win = dataclasses.replace(q.win, gpu=uuid)
    q = Query(q.store, q.tenant, win)
    inventory = q.rows(
        """SELECT i.node, i.cluster, i.gpu_index, i.serial, i.model, i.pci_bus_id, i.driver, i.vbios, s.fs, s.ls
           FROM (SELECT * FROM inventory FINAL WHERE tenant = {tenant:String} AND gpu = {f_gpu:String}) AS i
           LEFT JOIN (SELECT node, min(first_seen) AS fs, max(last_seen) AS ls FROM inventory_seen
                      WHERE tenant = {tenant:String} AND gpu = {f_gpu:String} GROUP BY node) AS s ON s.node = i.node
           ORDER BY s.fs"""
    )
    events = q.rows(
        f"""SELECT ts, node, event, code, severity_text, body FROM events FINAL
            WHERE {q.where()} ORDER BY ts LIMIT 5000"""
    )
    if not inventory and not events:
        raise ReportError(
            f"gpu {uuid}: no inventory record and no events for this tenant; check the UUID (`fleetpulse query health` lists GPUs)"
        )
    identity_rows = [
        [n, c, int(i), s, m, p, d, v, iso(epoch(fs)) if fs else None, iso(epoch(ls)) if ls else None]
        for n, c, i, s, m, p, d, v, fs, ls in inventory
    ]
    moves = []
    for prev, cur in itertools.pairwise(identity_rows):
        moves.append([prev[0], cur[0], prev[9], cur[8]])
    verdicts, _missing, _nodes = health.assess(q)
    h = verdicts.get(uuid)
    throttle_rows = throttle.throttle_rows(q)
    ecc_rows = ecc.ecc_state(q).get(uuid)
    summary_rows = [
        ["verdict", h.verdict if h else ("missing" if identity_rows else "unknown")],
        ["reasons", "; ".join(f[1] for f in h.ordered()) if h and h.findings else "-"],
        ["action", h.ordered()[0][2] if h and h.findings else "-"],
        ["serial", identity_rows[-1][3] if identity_rows else ""],
        ["model", identity_rows[-1][4] if identity_rows else ""],
        ["nodes", " -> ".join(r[0] for r in identity_rows)],
        ["throttled", ", ".join(f"{r['reason']} {r['seconds']:.0f} s" for r in throttle_rows) or "none"],
        [
            "ecc",
            f"SBE +{int(max(ecc_rows['sbe_volatile'], ecc_rows['sbe_aggregate']))}, DBE +{int(max(ecc_rows['dbe_volatile'], ecc_rows['dbe_aggregate']))}, remap pending {'yes' if ecc_rows['remap_pending'] else 'no'}, remap failed {'yes' if ecc_rows['remap_failure'] else 'no'}"
            if ecc_rows
            else "no ECC activity",
        ],
    ]
    result = ReportResult(
        name="gpu",
        title=f"GPU {uuid}",
        columns=["field", "value"],
        units=["", ""],
        rows=summary_rows,
        params={**win.describe(), "gpu": uuid},
        sections=[
            ReportResult(
                "inventory",
                "Where it lived (inventory)",
                [
                    "node",
                    "cluster",
                    "index",
                    "serial",
                    "model",
                    "pci_bus_id",
                    "driver",
                    "vbios",
                    "first_seen",
                    "last_seen",
                ],
                ["", "", "", "", "", "", "", "", "UTC", "UTC"],
                identity_rows,
            ),
            ReportResult(
                "moves",
                "Moves between nodes",
                ["from_node", "to_node", "left", "arrived"],
                ["", "", "UTC", "UTC"],
                moves,
            ),
            ReportResult(
                "events",
                "Events (Xid, ECC, remap, throttle, lost)",
                ["time", "node", "event", "code", "severity", "body"],
                ["UTC", "", "", "", "", ""],
                [[iso(epoch(t)), n, e, int(c) if c else None, s, b] for t, n, e, c, s, b in events],
            ),
            ReportResult(
                "throttle",
                "Throttling",
                ["reason", "node", "throttled", "first_active", "last_active"],
                ["", "", "s", "UTC", "UTC"],
                [
                    [
                        r["reason"],
                        r["node"],
                        round(r["seconds"], 1),
                        iso(epoch(r["first"])) if r["first"] else None,
                        iso(epoch(r["last"])) if r["last"] else None,
                    ]
                    for r in throttle_rows
                ],
            ),
            ReportResult(
                "ecc_increases",
                "ECC increases",
                ["time", "node", "type", "scope", "delta"],
                ["UTC", "", "", "", "{error}"],
                [
                    [i["time"], i["node"], i["type"], i["scope"], int(i["delta"])]
                    for i in (ecc_rows or {}).get("increases", [])
                ],
            ),
        ],
        plots=plots(q, throttle_rows),
    )
    return result


def plots(q: Query, throttle_rows: list[dict]) -> list[Plot]:
    """Time series for the HTML page at a resolution that gives at most ~MAX_PLOT_POINTS points."""
    step = max(60, int(q.win.seconds / MAX_PLOT_POINTS) // 60 * 60)
    spans = [(epoch(r["first"]), epoch(r["last"]), r["reason"]) for r in throttle_rows if r["first"] is not None]
    out = []
    for metric, cond, title, unit in PLOT_METRICS:
        rows = q.rows(
            f"""SELECT toUnixTimestamp(toStartOfInterval(ts, INTERVAL {{step:UInt32}} SECOND)) AS b, avg(value)
                FROM ({q.points([metric], cond)}) GROUP BY b ORDER BY b""",
            step=step,
        )
        out.append(Plot(title, unit, [(float(b), float(v)) for b, v in rows], spans))
    return out
