"""The source protocol: one collector of readings per file, node_exporter style.

A source reads one domain (NVML, host, fabric, errors) and writes points and events into the
cycle's SnapshotBuilder. It must never raise out of ``collect``: a missing file, an unsupported
NVML call or a malformed line is skipped and counted with ``builder.count_error(source, reason)``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from agent.snapshot import SnapshotBuilder


@runtime_checkable
class Source(Protocol):
    #: Short, stable name used in self-telemetry (``fleetpulse.source`` attribute) and config.
    name: str

    def collect(self, builder: SnapshotBuilder, tier: str) -> None:
        """Add this source's readings for ``tier`` ("fast" or "slow") to ``builder``."""

    def close(self) -> None:
        """Release handles (NVML shutdown, open files)."""
