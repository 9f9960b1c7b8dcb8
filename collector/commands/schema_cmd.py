"""`fleetpulse schema print`: the ClickHouse DDL that `fleetpulse collector migrate` applies."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["print"], help="print: write the DDL script to stdout")
    parser.add_argument("--database", default="fleetpulse", help="database name (default: fleetpulse)")
    parser.add_argument(
        "--cluster", default="", help="cluster name: ReplicatedMergeTree + Distributed, ON CLUSTER (default: none)"
    )
    parser.add_argument("--ttl-raw-days", type=int, default=15, help="raw samples TTL in days (0 = forever)")
    parser.add_argument("--ttl-1m-days", type=int, default=90, help="1-minute rollup TTL in days (0 = forever)")
    parser.add_argument("--ttl-1h-days", type=int, default=730, help="1-hour rollup TTL in days (0 = forever)")
    parser.add_argument("--ttl-events-days", type=int, default=1825, help="events/placements TTL in days")


def run(args: argparse.Namespace) -> int:
    import sys

    from collector.store.schema import render_ddl
    from collector.store.settings import StorageSettings

    try:
        settings = StorageSettings(
            dsn="chdb:///unused",
            database=args.database,
            cluster=args.cluster,
            ttl_raw_days=args.ttl_raw_days,
            ttl_1m_days=args.ttl_1m_days,
            ttl_1h_days=args.ttl_1h_days,
            ttl_events_days=args.ttl_events_days,
        )
    except ValueError as exc:
        print(f"fleetpulse schema: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(render_ddl(settings))
    return 0
