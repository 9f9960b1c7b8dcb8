"""`fleetpulse` console script: a thin dispatcher.

Only the chosen subcommand's module is imported, so `fleetpulse agent` never loads the storage
stack and `fleetpulse --help` starts fast. Each command module provides
``add_arguments(parser)`` and ``run(args) -> int`` and keeps heavy imports inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# name -> (module, one-line help). Order is the order `fleetpulse --help` lists them in.
COMMANDS: dict[str, tuple[str, str]] = {
    "agent": ("agent.commands.agent_cmd", "run the node agent (or one snapshot with --once)"),
    "catalog": ("agent.commands.catalog_cmd", "print the metric catalog"),
    "collector": ("collector.commands.collector_cmd", "run the OTLP collector (or `collector migrate`)"),
    "schema": ("collector.commands.schema_cmd", "print the ClickHouse schema DDL"),
    "up": ("collector.commands.up_cmd", "collector + local agent + embedded store, in one command"),
    "query": ("collector.commands.query_cmd", "run a report: throttle, ecc, xid, health, gpu, ..."),
    "simulate-fleet": (
        "collector.commands.simulate_cmd",
        "write a simulated fleet's history through the collector",
    ),
    "dashboards": ("collector.commands.dashboards_cmd", "generate Grafana dashboards and provisioning"),
    "alerts": (
        "collector.commands.alerts_cmd",
        "generate Prometheus and Grafana alert rules from the SLO spec",
    ),
}


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _top_parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<16}{text}" for name, (_, text) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="fleetpulse",
        description="Fleet hardware telemetry for GPU clusters.",
        epilog=f"commands:\n{listing}\n\nRun `fleetpulse COMMAND --help` for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error (default: info)")
    parser.add_argument("command", nargs="?", choices=list(COMMANDS), metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    # Split global options from the subcommand and its own arguments.
    idx = next((i for i, a in enumerate(argv) if a in COMMANDS), None)
    if idx is None:
        top.parse_args(argv)
        top.print_help()
        return 2
    global_args = top.parse_args([*argv[:idx], argv[idx]])
    module_name, help_text = COMMANDS[argv[idx]]
    module = importlib.import_module(module_name)
    sub = argparse.ArgumentParser(prog=f"fleetpulse {argv[idx]}", description=help_text)
    module.add_arguments(sub)
    args = sub.parse_args(argv[idx + 1 :])
    _configure_logging(global_args.log_level)
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
