from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=["table", "json", "markdown"], default="table")


def run(args: argparse.Namespace) -> int:
    from agent.catalog import render

    sys.stdout.write(render(args.format))
    return 0
