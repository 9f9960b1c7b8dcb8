"""`fleetpulse alerts generate [--check]`: Prometheus rules, Grafana rules and runbooks from the SLO spec."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["generate"], help="generate the rule files and runbooks")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when generated files are stale")
    parser.add_argument("--slos", metavar="FILE", help="SLO spec (default alerts/slos.yaml)")
    parser.add_argument("--resources", metavar="FILE", help="resource alert spec (default alerts/resources.yaml)")


def run(args: argparse.Namespace) -> int:
    from collector.alerting.generate import REPO, render_all, stale, write
    from collector.alerting.spec import DEFAULT_RESOURCES, DEFAULT_SLOS, load_spec
    from collector.alerting.yamlio import SpecError

    try:
        spec = load_spec(Path(args.slos or DEFAULT_SLOS), Path(args.resources or DEFAULT_RESOURCES))
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    files = render_all(spec)
    if args.check:
        out_of_date = stale(files)
        for path in out_of_date:
            print(f"stale: {path.relative_to(REPO)}", file=sys.stderr)
        if out_of_date:
            print("run `fleetpulse alerts generate` and commit the result", file=sys.stderr)
            return 1
        print(f"{len(files)} generated files up to date")
        return 0
    changed = write(files)
    for path in changed:
        print(f"wrote {path.relative_to(REPO)}" if path.exists() else f"removed {path.relative_to(REPO)}")
    print(f"{len(files)} files, {len(changed)} changed")
    return 0
