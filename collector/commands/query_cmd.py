"""`fleetpulse query REPORT [ARG]`: run a report against a running collector or straight against a store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_COLLECTOR = "http://127.0.0.1:4319"
REPORT_NAMES = ("throttle", "ecc", "xid", "health", "gpu", "cardinality", "freshness")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run a report: throttle, ecc, xid, health, gpu UUID, cardinality, freshness. "
        "Asks a running collector's API (--collector, default http://127.0.0.1:4319) or reads a store directly (--store DSN)."
    )
    parser.add_argument("report", choices=REPORT_NAMES, metavar="REPORT", help=", ".join(REPORT_NAMES))
    parser.add_argument("arg", nargs="?", metavar="ARG", help="the GPU UUID for `gpu`")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--collector", metavar="URL", help=f"collector read API (default {DEFAULT_COLLECTOR})")
    where.add_argument("--store", metavar="DSN", help="read the store directly: chdb:///path or http(s)://host:8123")
    parser.add_argument(
        "--since", metavar="TIME", help="start: 30m, 24h, 7d (ago), ISO time or unix seconds (default per report)"
    )
    parser.add_argument("--until", metavar="TIME", help="end (default now)")
    parser.add_argument("--cluster", help="only this cluster")
    parser.add_argument("--node", help="only this node")
    parser.add_argument("--gpu", help="only this GPU UUID")
    parser.add_argument("--format", choices=["table", "json", "csv"], default="table", help="output (default table)")
    parser.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page (with plots for `gpu`)")
    parser.add_argument(
        "--resolution", choices=["auto", "raw", "1m", "1h"], help="samples table (default auto by range)"
    )
    parser.add_argument("--late", metavar="DURATION", help="freshness/missing threshold (default 5m)")
    parser.add_argument("--reasons", help="throttle reasons: all, or a comma list (default: all but idle/app clocks)")
    parser.add_argument("--limit", type=int, help="cardinality: rows of attribute keys (default 20)")
    parser.add_argument("--tenant", default="default", help="tenant for --store (default: default)")
    parser.add_argument("--token-file", metavar="FILE", help="bearer token for a collector with auth: tokens")
    parser.add_argument("--database", default="fleetpulse", help="database for --store (default fleetpulse)")


def report_params(args: argparse.Namespace) -> dict[str, str]:
    params = {}
    for key in ("since", "until", "cluster", "node", "gpu", "resolution", "late", "reasons", "limit", "arg"):
        value = getattr(args, key, None)
        if value not in (None, ""):
            params[key] = str(value)
    return params


def run(args: argparse.Namespace) -> int:
    if args.report == "gpu" and not (args.arg or args.gpu):
        print(
            "fleetpulse query gpu: give the GPU UUID, e.g. `fleetpulse query gpu GPU-8c2f...` (`fleetpulse query health` lists them)",
            file=sys.stderr,
        )
        return 2
    params = report_params(args)
    try:
        result = _from_store(args, params) if args.store else _from_collector(args, params)
    except QueryFailed as exc:
        print(f"fleetpulse query {args.report}: {exc}", file=sys.stderr)
        return 1
    from collector.reports.render import render

    sys.stdout.write(render(result, args.format))
    if args.html:
        Path(args.html).write_text(render(result, "html"))
        print(f"wrote {args.html}", file=sys.stderr)
    return 0


class QueryFailed(RuntimeError):
    pass


def _from_collector(args: argparse.Namespace, params: dict[str, str]):
    import requests

    from collector.reports.result import ReportResult

    base = (args.collector or DEFAULT_COLLECTOR).rstrip("/")
    headers = {}
    if args.token_file:
        try:
            headers["Authorization"] = "Bearer " + Path(args.token_file).read_text().strip()
        except OSError as exc:
            raise QueryFailed(f"--token-file {args.token_file}: {exc.strerror}") from None
    url = f"{base}/api/v1/reports/{args.report}"
    try:
        resp = requests.get(url, params={**params, "format": "json"}, headers=headers, timeout=300)
    except requests.ConnectionError:
        local = Path("fleetpulse-data/clickhouse")
        hint = (
            f"  or read a store directly: --store chdb://{local.resolve()}\n"
            if local.is_dir()
            else "  or read a store directly: --store chdb:///path/to/fleetpulse-data/clickhouse\n"
        )
        raise QueryFailed(
            f"no collector answers at {base}.\n"
            "  start one: `fleetpulse up` (collector + local agent) or `fleetpulse collector`,\n"
            "  or point at a running one: --collector http://HOST:4319,\n" + hint.rstrip("\n")
        ) from None
    except requests.RequestException as exc:
        raise QueryFailed(f"{url}: {exc}") from None
    if resp.status_code != 200:
        try:
            message = resp.json().get("error", resp.text)
        except ValueError:
            message = resp.text
        hint = " (pass --token-file with a token for this collector)" if resp.status_code == 401 else ""
        raise QueryFailed(f"{url} answered HTTP {resp.status_code}{hint}: {str(message)[:500]}")
    try:
        return ReportResult.from_dict(resp.json())
    except (ValueError, KeyError, TypeError) as exc:
        raise QueryFailed(
            f"{url}: unexpected answer ({exc!r}); is that a fleetpulse collector of this version?"
        ) from None


def _from_store(args: argparse.Namespace, params: dict[str, str]):
    from collector.reports import ReportError, run_report
    from collector.store.errors import StoreError
    from collector.store.settings import StorageSettings
    from collector.store.writer import Store

    try:
        settings = StorageSettings(dsn=args.store, database=args.database)
    except ValueError as exc:
        raise QueryFailed(f"--store: {exc}") from None
    try:
        store = Store(settings)
    except StoreError as exc:
        text = str(exc)
        if "lock" in text.lower():
            text += "\n  (a running collector holds this chDB path; query it with --collector instead)"
        raise QueryFailed(f"--store {args.store}: {text}") from None
    try:
        return run_report(args.report, store, args.tenant, params)
    except ReportError as exc:
        raise QueryFailed(str(exc)) from None
    finally:
        store.close()
