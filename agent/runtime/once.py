"""`fleetpulse agent --once`: one full cycle (fast and slow tiers), printed as JSON lines."""

from __future__ import annotations

import logging
import sys
import time

from agent.config import AgentConfig
from agent.exporters.jsonl import write_snapshot
from agent.runtime.sources import build_sources, resource_attributes
from agent.snapshot import Snapshot, SnapshotBuilder, align_to_tick

log = logging.getLogger(__name__)


def collect_once(config: AgentConfig) -> Snapshot:
    sources = build_sources(config)
    try:
        builder = SnapshotBuilder(resource_attributes(config), align_to_tick(time.time_ns(), config.interval_s))
        for source in sources:
            for tier in ("fast", "slow"):
                try:
                    source.collect(builder, tier)
                except Exception:  # sources must not raise; if one does, the others still report
                    log.exception("source %s raised in its %s tier", source.name, tier)
                    builder.count_error(source.name, "exception")
        _add_nvml_timeouts(builder)
        return builder.build()
    finally:
        for source in sources:
            source.close()


def _add_nvml_timeouts(builder: SnapshotBuilder) -> None:
    """The daemon's self-telemetry does this for every cycle; --once has no daemon, so do it here."""
    for (source, reason), n in sorted(builder.snapshot.source_errors.items()):
        if source == "nvml" and reason.startswith("timeout:"):
            builder.add("fleetpulse.agent.nvml.timeouts", n, {"nvml.function": reason.partition(":")[2]})


def run_once(config: AgentConfig) -> int:
    from agent.sim.faults import ScenarioError

    try:
        snapshot = collect_once(config)
    except ScenarioError as exc:
        print(f"fleetpulse agent: bad fault scenario: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # unknown profile or source: a usage error, not a crash
        print(f"fleetpulse agent: {exc}", file=sys.stderr)
        return 2
    write_snapshot(snapshot, sys.stdout)
    return 0
