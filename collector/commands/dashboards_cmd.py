"""`fleetpulse dashboards generate [--check] [--out DIR]`: Grafana dashboards and provisioning as code."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "dashboards"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    gen = sub.add_parser("generate", help="write dashboards/*.json and dashboards/provisioning/*")
    gen.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    gen.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when the files in --out are stale or missing"
    )


def run(args: argparse.Namespace) -> int:
    if getattr(args, "action", None) != "generate":
        print("usage: fleetpulse dashboards generate [--check] [--out DIR]", file=sys.stderr)
        return 2
    from collector.grafana.generate import render, stale, write

    files = render()
    out: Path = args.out
    if args.check:
        problems = stale(out, files)
        if problems:
            print(
                f"{out}: {len(problems)} dashboard file(s) stale, missing or left over: {', '.join(problems)}; "
                "run `make dashboards` (fleetpulse dashboards generate) and commit the result",
                file=sys.stderr,
            )
            return 1
        print(f"{out}: {len(files)} dashboard files up to date")
        return 0
    written = write(out, files)
    print(f"wrote {len(written)} files under {out}: {', '.join(written)}")
    print("copy them into the Helm chart with helm/sync-dashboards.sh")
    return 0
