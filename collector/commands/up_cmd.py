"""`fleetpulse up`: collector + local agent + embedded store, supervised, in one command.

The collector runs in this process (embedded chDB under <data-dir>/clickhouse, WAL under
<data-dir>/wal, loopback only, auth none); the agent runs as a child process exporting OTLP to it —
real NVML when the driver answers, otherwise 8 simulated H100s with the default fault scenario.
With simulated GPUs on a data directory without history, a background thread backfills the last
24 h (``--backfill``) of a small simulated fleet through the collector's OTLP/HTTP port
(collector/fleet_sim/backfill.py), so throttle, ECC and Xid reports have something to show at once.
Ctrl-C (SIGINT) or SIGTERM stops the backfill and the agent, drains the collector into the store,
and exits 0. Running it again reuses the data directory (and does not backfill again).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger("fleetpulse.up")

PORT_FLAGS = (
    ("otlp_grpc_listen", "--otlp-grpc-listen", "OTLP/gRPC", "127.0.0.1:4317"),
    ("otlp_http_listen", "--otlp-http-listen", "OTLP/HTTP", "127.0.0.1:4318"),
    ("api_listen", "--api-listen", "read API", "127.0.0.1:4319"),
    ("prometheus_listen", "--prometheus-listen", "agent Prometheus endpoint", "127.0.0.1:9410"),
)
AGENT_RESTARTS = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", default="./fleetpulse-data", help="store, WAL and agent buffer (default ./fleetpulse-data)"
    )
    for dest, flag, what, default in PORT_FLAGS:
        parser.add_argument(
            flag, dest=dest, default=default, metavar="HOST:PORT", help=f"{what} (default {default}; loopback only)"
        )
    parser.add_argument(
        "--simulate",
        type=int,
        metavar="N",
        help="simulate N GPUs even when NVML is present (default: 8 when it is not)",
    )
    parser.add_argument(
        "--faults", metavar="FILE", help="fault scenario for simulated GPUs (default agent/sim/scenarios/default.yaml)"
    )
    parser.add_argument(
        "--interval", type=float, default=10.0, metavar="SECONDS", help="agent fast-tier interval (default 10)"
    )
    parser.add_argument("--seed", type=int, default=0, help="simulator seed (default 0)")
    parser.add_argument(
        "--backfill",
        default="24h",
        metavar="DURATION",
        help="with simulated GPUs and no history in the store yet, write this much past history of 4 simulated "
        "nodes (default faults) in the background, ending now: 30m, 24h, 7d; 0 turns it off (default 24h; "
        "ignored with real GPUs; never repeated on the same data dir)",
    )


def _port_problem(listen: str, flag: str, what: str) -> str | None:
    host, _, port = listen.rpartition(":")
    try:
        port_no = int(port)
    except ValueError:
        return f"{flag} {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:{port or '4318'}"
    if host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
        return f"{flag} {listen}: `fleetpulse up` runs with auth none and binds loopback only; use 127.0.0.1:{port_no} (or run `fleetpulse collector` with auth tokens)"
    with socket.socket() as s:
        # As the servers do: connections of a just-stopped `up` in TIME_WAIT must not count as "in use";
        # a socket still listening on the port does (Linux refuses the bind then, SO_REUSEADDR or not).
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host.strip("[]"), port_no))
        except OSError:
            return (
                f"port {port_no} ({what}) is already in use on {host}: another `fleetpulse up` or collector may be running. "
                f"Stop it, or choose another port with {flag} {host}:{port_no + 10000 if port_no < 55535 else port_no - 10000}"
            )
    return None


def nvml_present() -> bool:
    """True when the NVIDIA driver answers (then the agent reads real GPUs)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        return True
    except Exception:
        return False


def agent_command(args: argparse.Namespace, simulate: int) -> list[str]:
    cmd = [
        sys.executable, "-m", "agent.cli", "agent",
        "--otlp-endpoint", f"http://{args.otlp_http_listen}",
        "--otlp-protocol", "http/protobuf",
        "--interval", str(args.interval),
        "--buffer-dir", str(Path(args.data_dir) / "agent-buffer"),
        "--prometheus-listen", args.prometheus_listen,
    ]  # fmt: skip
    if simulate:
        faults = args.faults or str(
            Path(__file__).resolve().parents[2] / "agent" / "sim" / "scenarios" / "default.yaml"
        )
        cmd += ["--simulate", f"{simulate}:h100-sxm", "--faults", faults, "--seed", str(args.seed)]
    return cmd


def backfill_seconds(text: str) -> float:
    """--backfill DURATION → seconds (0: off); ValueError names the flag and the accepted range."""
    from collector.fleet_sim.backfill import INTERVAL_S, MAX_DURATION_S
    from collector.fleet_sim.scenario import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise ValueError(f"--backfill {text!r}: {exc}; 0 turns it off") from None
    if seconds != 0 and not INTERVAL_S * 2 <= seconds <= MAX_DURATION_S:
        raise ValueError(
            f"--backfill {text!r}: expected 0 (off) or between {INTERVAL_S * 2:g}s and 7d "
            "(the collector refuses points older than its limits.max_past_s, 7d)"
        )
    return seconds


def run(args: argparse.Namespace) -> int:
    problems = [p for dest, flag, what, _ in PORT_FLAGS if (p := _port_problem(getattr(args, dest), flag, what))]
    try:
        backfill_s = backfill_seconds(args.backfill)
    except ValueError as exc:
        problems.append(str(exc))
    if problems:
        for p in problems:
            print(f"fleetpulse up: {p}", file=sys.stderr)
        return 1
    from collector.config import CollectorConfig, ConfigError, validate
    from collector.server import Collector

    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    config = CollectorConfig(data_dir=str(data_dir))
    config.otlp.grpc_listen = args.otlp_grpc_listen
    config.otlp.http_listen = args.otlp_http_listen
    config.api.listen = args.api_listen
    config.auth.mode = "none"
    try:
        validate(config, "fleetpulse up")
    except ConfigError as exc:
        print(f"fleetpulse up: {exc}", file=sys.stderr)
        return 1
    simulate = args.simulate if args.simulate is not None else (0 if nvml_present() else 8)
    reused = (data_dir / "clickhouse").is_dir()
    from collector.fleet_sim.backfill import read_marker

    marker = read_marker(data_dir) if simulate and backfill_s else None

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    collector = Collector(config)
    try:
        collector.start()
    except OSError as exc:
        print(f"fleetpulse up: collector could not start: {exc}", file=sys.stderr)
        return 1
    api = f"http://{args.api_listen}"
    backfill = None
    if simulate and backfill_s:
        from collector.fleet_sim.backfill import Backfill

        try:
            backfill = Backfill(
                data_dir,
                f"http://{args.otlp_http_listen}",
                api,
                backfill_s,
                stop,
                sys.stdout,
                live_node=socket.gethostname(),
                seed=args.seed,
                marker=marker,
                query_suffix=_collector_flag(args),
            )
        except ValueError as exc:  # an unreadable backfill.json: history stays as it is, no simulated nodes
            log.warning("%s; the simulated nodes stay off", exc)
    history = _history_line(simulate, backfill_s, marker, backfill, reused)
    gpus = (
        f"{simulate} simulated H100 GPUs (fault scenario {args.faults or 'agent/sim/scenarios/default.yaml'})"
        if simulate
        else "the GPUs NVML reports"
    )
    print(
        f"""fleetpulse is up{" (reusing the data in " + str(data_dir) + ")" if reused else ""}:
  collector  OTLP gRPC {args.otlp_grpc_listen}, OTLP HTTP {args.otlp_http_listen}, read API {api}  (in this process, auth none)
  store      embedded ClickHouse (chDB) in {data_dir / "clickhouse"}, WAL in {data_dir / "wal"}
  agent      {gpus} + host/fabric sources, every {args.interval:g} s -> OTLP HTTP; Prometheus on {args.prometheus_listen}
  history    {history}

Next, in another terminal (the live agent's data appears within a minute):
  fleetpulse query throttle --since 24h{_collector_flag(args)}
  fleetpulse query ecc --since 24h{_collector_flag(args)}
  fleetpulse query xid --since 24h{_collector_flag(args)}
  fleetpulse query health{_collector_flag(args)}
  fleetpulse query gpu <UUID from health> --html gpu.html{_collector_flag(args)}
  curl -s '{api}/api/v1/query?sql=SELECT+metric,count()+FROM+samples+GROUP+BY+metric'
Ctrl-C stops everything.""",
        flush=True,
    )
    if backfill is not None:
        backfill.start()
    code = _supervise(args, simulate, stop)
    stop.set()  # also when the supervisor gave up on the agent: the backfill ends too
    if backfill is not None and not backfill.join(120):
        log.warning("the backfill thread did not stop within 120 s")
    log.info("draining the collector into the store")
    collector.stop()
    print("fleetpulse up: stopped cleanly", file=sys.stderr, flush=True)
    return code


def _history_line(simulate: int, backfill_s: float, marker: dict | None, backfill, reused: bool) -> str:
    if not simulate:
        return "no backfill: real GPUs report their own history"
    if not backfill_s:
        return "no backfill (--backfill 0)"
    if marker is not None:
        was = (
            f"backfilled before ({marker.get('status')}, {marker.get('window_start', '?')} .. "
            f"{marker.get('window_end', '?')}; see backfill.json in the data dir), not again"
        )
        if backfill is None:
            return was
        return f"{was}; its {backfill.nodes_text} resume from {backfill.last_time}"
    from collector.fleet_sim.backfill import human_duration

    check = " unless the store already holds older samples" if reused else ""
    return (
        f"backfilling {human_duration(backfill_s)} of past history for {backfill.nodes_text} "
        f"in the background{check}, then they keep reporting; progress below (--backfill 0 turns it off)"
    )


def _collector_flag(args: argparse.Namespace) -> str:
    return "" if args.api_listen == "127.0.0.1:4319" else f" --collector http://{args.api_listen}"


def _supervise(args: argparse.Namespace, simulate: int, stop: threading.Event) -> int:
    """Run the agent child until `stop`; restart it (with backoff) when it dies on its own."""
    restarts = 0
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    while not stop.is_set():
        child = subprocess.Popen(agent_command(args, simulate), env=env, start_new_session=True)
        started = time.monotonic()
        while child.poll() is None and not stop.wait(0.2):
            pass
        if child.poll() is None:  # we are stopping
            _stop_child(child)
            return 0
        if time.monotonic() - started > 60:
            restarts = 0
        restarts += 1
        if restarts > AGENT_RESTARTS:
            log.error(
                "the agent exited %d times in a row (last code %s); giving up — see its log above",
                restarts,
                child.returncode,
            )
            return 1
        delay = min(2**restarts, 30)
        log.warning("the agent exited with code %s; restarting in %d s", child.returncode, delay)
        stop.wait(delay)
    return 0


def _stop_child(child: subprocess.Popen) -> None:
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(15)
    except subprocess.TimeoutExpired:
        log.warning("agent did not stop within 15 s; killing it")
        child.kill()
        child.wait(5)
