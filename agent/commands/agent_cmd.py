"""`fleetpulse agent`: the node agent daemon, or one snapshot with --once."""

from __future__ import annotations

import argparse


def _simulate(value: str) -> tuple[int, str]:
    count, _, profile = value.partition(":")
    try:
        n = int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--simulate expects N[:PROFILE], e.g. 8:h100-sxm; got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"--simulate needs at least 1 GPU, got {n}")
    return n, profile or "h100-sxm"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="agent YAML config (flags below override it)")
    parser.add_argument("--once", action="store_true", help="print one snapshot and exit")
    parser.add_argument("--format", choices=["json"], default="json", help="--once output format")
    sim = parser.add_argument_group("simulation (no GPU needed)")
    sim.add_argument(
        "--simulate",
        type=_simulate,
        metavar="N[:PROFILE]",
        help="simulate N GPUs at the pynvml level; profiles: h100-sxm, a100-pcie, t4",
    )
    sim.add_argument("--faults", metavar="FILE", help="fault scenario YAML for the simulator")
    sim.add_argument("--seed", type=int, help="simulator seed (deterministic values)")
    roots = parser.add_argument_group("roots (for fixture trees and containers)")
    roots.add_argument("--sysfs", metavar="DIR", help="sysfs root (default /sys)")
    roots.add_argument("--procfs", metavar="DIR", help="procfs root (default /proc)")
    roots.add_argument("--kmsg", metavar="FILE", help="kernel log to read Xid lines from (default /dev/kmsg)")
    daemon = parser.add_argument_group("daemon")
    daemon.add_argument("--interval", type=float, metavar="SECONDS", help="fast-tier interval (default 10)")
    daemon.add_argument("--otlp-endpoint", metavar="URL", help="collector OTLP endpoint")
    daemon.add_argument("--otlp-protocol", choices=["grpc", "http/protobuf"], help="default grpc")
    daemon.add_argument("--buffer-dir", metavar="DIR", help="on-disk buffer for when the collector is away")
    daemon.add_argument(
        "--prometheus-listen",
        metavar="HOST:PORT",
        help="Prometheus endpoint (default 0.0.0.0:9410; 'off' disables)",
    )
    parser.add_argument("--sources", metavar="LIST", help="comma-separated: nvml,host,fabric,errors")


def build_config(args: argparse.Namespace):  # -> AgentConfig
    from agent.config import AgentConfig

    if args.config:
        from agent.config_schema import load_config

        config = load_config(args.config)
    else:
        config = AgentConfig()
    apply_flags(config, args)
    return config


def apply_flags(config, args: argparse.Namespace) -> None:
    if args.simulate:
        config.simulate.gpus, config.simulate.profile = args.simulate
    if args.faults:
        config.simulate.faults = args.faults
    if args.seed is not None:
        config.simulate.seed = args.seed
    for key in ("sysfs", "procfs", "kmsg"):
        if getattr(args, key):
            setattr(config.roots, key, getattr(args, key))
    if args.interval:
        config.interval_s = args.interval
    if args.otlp_endpoint:
        config.otlp.endpoint = args.otlp_endpoint
    if args.otlp_protocol:
        config.otlp.protocol = args.otlp_protocol
    if args.buffer_dir:
        config.buffer.dir = args.buffer_dir
    if args.prometheus_listen:
        config.prometheus_listen = None if args.prometheus_listen == "off" else args.prometheus_listen
    if args.sources:
        config.sources = [s.strip() for s in args.sources.split(",") if s.strip()]


def run(args: argparse.Namespace) -> int:
    config = build_config(args)
    if args.once:
        from agent.runtime.once import run_once

        return run_once(config)
    from agent.runtime.daemon import run_daemon

    return run_daemon(config, config_path=args.config, args=args)
