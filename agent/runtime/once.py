"""`fleetpulse agent --once`: one full cycle (fast and slow tiers), printed as JSON lines."""

from __future__ import annotations

import sys
import time

from agent.config import AgentConfig
from agent.exporters.jsonl import write_snapshot
from agent.runtime.sources import build_sources, resource_attributes
from agent.snapshot import Snapshot, SnapshotBuilder, align_to_tick


def collect_once(config: AgentConfig) -> Snapshot:
    sources = build_sources(config)
    try:
        builder = SnapshotBuilder(resource_attributes(config), align_to_tick(time.time_ns(), config.interval_s))
        for source in sources:
            for tier in ("fast", "slow"):
                source.collect(builder, tier)
        return builder.build()
    finally:
        for source in sources:
            source.close()


def run_once(config: AgentConfig) -> int:
    write_snapshot(collect_once(config), sys.stdout)
    return 0
