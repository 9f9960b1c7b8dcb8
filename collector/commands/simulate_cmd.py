"""`fleetpulse simulate-fleet`: write a simulated fleet's history through the collector's write path."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Generate a fleet's telemetry history with known faults (default: collector/fleet_sim/scenarios/default_fleet.yaml) "
        "and post it as OTLP/HTTP to a running collector (--collector http://127.0.0.1:4318), or to an in-process "
        "collector writing to --store DSN. Timestamps end now."
    )
    parser.add_argument("--nodes", type=int, default=100, help="nodes (default 100)")
    parser.add_argument("--gpus-per-node", type=int, default=8, help="GPUs per node (default 8)")
    parser.add_argument("--duration", default="24h", help="history length: 6h, 24h, 7d (default 24h)")
    parser.add_argument("--interval", default="10s", help="fast-tier interval (default 10s; ECC/inventory every 60s)")
    parser.add_argument(
        "--faults", metavar="FILE", help="fault scenario YAML (default: the built-in default fleet scenario)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed: same seed, same fleet and values (default 0)")
    parser.add_argument("--clusters", type=int, default=1, help="spread the nodes over N clusters (default 1)")
    parser.add_argument("--nodes-per-rack", type=int, default=4, help="nodes per rack (default 4)")
    parser.add_argument("--nvlinks", type=int, default=18, help="NVLinks per GPU (default 18, as H100 SXM)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--collector", metavar="URL", help="OTLP/HTTP endpoint of a running collector, e.g. http://127.0.0.1:4318"
    )
    target.add_argument(
        "--store",
        metavar="DSN",
        help="write into this store through an in-process collector (chdb:///path or http://host:8123)",
    )
    parser.add_argument(
        "--tenant", default=None, help="informational: the tenant comes from the token (default tenant without auth)"
    )
    parser.add_argument("--token-file", metavar="FILE", help="bearer token for a collector with auth: tokens")
    parser.add_argument("--manifest", metavar="FILE", help="write the injected faults (JSON) here; '-' prints them")
    parser.add_argument(
        "--workers", type=int, default=None, help="generator processes (default: CPUs - 1, 0 = in this process)"
    )
    parser.add_argument("--senders", type=int, default=2, help="concurrent HTTP requests (default 2)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from collector.fleet_sim import (
        FleetSpec,
        OtlpHttpSender,
        ScenarioError,
        SendError,
        build_plan,
        load_scenario,
        parse_duration,
        simulate,
    )

    try:
        duration = parse_duration(args.duration)
        interval = parse_duration(args.interval)
    except ValueError as exc:
        print(f"simulate-fleet: --duration/--interval: {exc}", file=sys.stderr)
        return 2
    try:
        spec = FleetSpec(
            nodes=args.nodes,
            gpus_per_node=args.gpus_per_node,
            duration_s=duration,
            interval_s=interval,
            seed=args.seed,
            clusters=args.clusters,
            nodes_per_rack=args.nodes_per_rack,
            nvlinks=args.nvlinks,
        )
        plan = build_plan(spec, load_scenario(args.faults))
    except ScenarioError as exc:
        print(f"simulate-fleet: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"simulate-fleet: {exc}", file=sys.stderr)
        return 2
    token = None
    if args.token_file:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as exc:
            print(f"simulate-fleet: --token-file {args.token_file}: {exc.strerror}", file=sys.stderr)
            return 2
    workers = args.workers if args.workers is not None else max(0, min(4, (os.cpu_count() or 1) - 1))
    progress = None if args.quiet else sys.stderr
    print(
        f"simulating {spec.nodes} nodes x {spec.gpus_per_node} GPUs, {args.duration} at {args.interval} "
        f"({plan.iso(plan.start_ns)} .. {plan.iso(plan.end_ns)}), {len(plan.manifest()['faults'])} injected faults",
        file=sys.stderr,
    )
    try:
        if args.collector:
            summary = simulate(plan, OtlpHttpSender(args.collector, token), workers, args.senders, progress)
        else:
            from collector.fleet_sim.inprocess import local_collector

            with local_collector(args.store, max_past_s=int(duration) + 3600) as (_collector, url):
                summary = simulate(plan, OtlpHttpSender(url, token), workers, args.senders, progress)
    except SendError as exc:
        print(f"simulate-fleet: {exc}", file=sys.stderr)
        return 1
    print(
        f"done: {summary.points:,} points and {summary.events} events in {summary.requests} requests, "
        f"{summary.seconds:.1f} s, {summary.points_per_s:,.0f} points/s",
        file=sys.stderr,
    )
    if summary.rejected_points or summary.rejected_logs:
        print(
            f"warning: the collector rejected {summary.rejected_points} points and {summary.rejected_logs} log records "
            "(partial success); a --duration longer than its limits.max_past_s is one cause",
            file=sys.stderr,
        )
    if args.manifest:
        text = json.dumps(summary.manifest, indent=2) + "\n"
        if args.manifest == "-":
            sys.stdout.write(text)
        else:
            Path(args.manifest).write_text(text)
            print(f"manifest of injected faults: {args.manifest}", file=sys.stderr)
    else:
        for fault in summary.manifest["faults"]:
            where = fault.get("gpu") or f"{fault.get('device', '')} port {fault.get('port', '')}".strip()
            print(f"  {fault['kind']:<18} {fault['node']:<14} {where}  {fault.get('start', '')}", file=sys.stderr)
    return 0
