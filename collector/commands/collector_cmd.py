"""`fleetpulse collector`: run the OTLP collector; `fleetpulse collector migrate`: apply schema migrations."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=["run", "migrate"], default="run", help="run (default) or migrate")
    parser.add_argument("--config", metavar="FILE", help="collector.yaml (flags below override it)")
    parser.add_argument("--data-dir", metavar="DIR", help="WAL and embedded store location (default ./fleetpulse-data)")
    parser.add_argument("--storage-dsn", metavar="DSN", help="chdb:///PATH or http(s)://user:pass@host:8123")
    parser.add_argument("--otlp-grpc-listen", metavar="HOST:PORT", help="default 127.0.0.1:4317")
    parser.add_argument("--otlp-http-listen", metavar="HOST:PORT", help="default 127.0.0.1:4318")
    parser.add_argument("--api-listen", metavar="HOST:PORT", help="default 127.0.0.1:4319")
    parser.add_argument("--auth", choices=["none", "tokens"], help="none (loopback only) or tokens")
    parser.add_argument("--tokens-file", metavar="FILE", help="'token: tenant' lines")


def build_config(args: argparse.Namespace):
    from collector.config import load_config, validate

    config = load_config(args.config)
    flags = {
        "data_dir": ("data_dir",),
        "storage_dsn": ("storage", "dsn"),
        "otlp_grpc_listen": ("otlp", "grpc_listen"),
        "otlp_http_listen": ("otlp", "http_listen"),
        "api_listen": ("api", "listen"),
        "auth": ("auth", "mode"),
        "tokens_file": ("auth", "tokens_file"),
    }
    for flag, path in flags.items():
        value = getattr(args, flag, None)
        if value is not None:
            target = config
            for part in path[:-1]:
                target = getattr(target, part)
            setattr(target, path[-1], value)
    return validate(config, "command line")


def run(args: argparse.Namespace) -> int:
    from collector.auth import AuthConfigError
    from collector.config import ConfigError

    try:
        config = build_config(args)
    except ConfigError as exc:
        print(f"fleetpulse collector: {exc}", file=sys.stderr)
        return 2
    if args.action == "migrate":
        from collector.config import storage_settings
        from collector.store.client import connect
        from collector.store.schema import migrate

        settings = storage_settings(config)
        applied = migrate(connect(settings), settings)
        print(f"migrations applied: {applied or 'none (up to date)'}")
        return 0
    from collector.server import Collector

    try:
        collector = Collector(config)
    except (AuthConfigError, OSError) as exc:
        print(f"fleetpulse collector: {exc}", file=sys.stderr)
        return 2
    return collector.run_forever()
