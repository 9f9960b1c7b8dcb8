"""The standard simulated fleet as pytest fixtures (reports, dashboards and alerts tests reuse it).

Use it in a test module with::

    from tests import fleet_fixture

    fleet_dataset = fleet_fixture.fleet_dataset  # pytest fixtures used by this module
    fleet = fleet_fixture.fleet

    def test_something(fleet):
        store, manifest, (since, until) = fleet

``fleet_dataset`` (session): 6 nodes x 8 H100s x 6 h at 60 s with the default fault scenario,
written by ``fleetpulse simulate-fleet --store`` in a child process (the real write path:
OTLP/HTTP → WAL → writer → chDB) into a temporary chDB directory; gives its DSN, path and the
manifest of injected faults. ``fleet`` (module): a :class:`Store` opened on it, closed at the end
of the module, because chDB allows one data path per process and other modules open their own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.conftest import REPO

FLEET_ARGS = [
    "--nodes",
    "6",
    "--gpus-per-node",
    "8",
    "--duration",
    "6h",
    "--interval",
    "60s",
    "--nvlinks",
    "8",
    "--seed",
    "7",
]


@dataclass(frozen=True)
class FleetDataset:
    dsn: str
    path: Path
    manifest: dict[str, Any]

    @property
    def since(self) -> datetime:
        return datetime.fromtimestamp(self.manifest["fleet"]["start_ns"] / 1e9, UTC)

    @property
    def until(self) -> datetime:
        return datetime.fromtimestamp(self.manifest["fleet"]["end_ns"] / 1e9, UTC)

    def window(self) -> dict[str, str]:
        """Report params covering exactly the simulated history."""
        return {"since": self.manifest["fleet"]["start"], "until": self.manifest["fleet"]["end"]}


class Fleet(NamedTuple):
    store: Any  # collector.store.writer.Store
    manifest: dict[str, Any]
    time_range: tuple[datetime, datetime]


def generate_fleet(path: Path, extra_args: list[str] | None = None, timeout_s: float = 240) -> FleetDataset:
    manifest_file = path.parent / f"{path.name}-manifest.json"
    dsn = f"chdb://{path.resolve()}"
    cmd = [
        sys.executable,
        "-m",
        "agent.cli",
        "simulate-fleet",
        *FLEET_ARGS,
        *(extra_args or []),
        "--store",
        dsn,
        "--workers",
        "1",
        "--quiet",
        "--manifest",
        str(manifest_file),
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"simulate-fleet failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return FleetDataset(dsn, path, json.loads(manifest_file.read_text()))


@pytest.fixture(scope="session")
def fleet_dataset(tmp_path_factory: pytest.TempPathFactory) -> FleetDataset:
    return generate_fleet(tmp_path_factory.mktemp("fleet") / "clickhouse")


@pytest.fixture(scope="module")
def fleet(fleet_dataset: FleetDataset):
    from collector.store.settings import StorageSettings
    from collector.store.writer import Store

    store = Store(StorageSettings(dsn=fleet_dataset.dsn))
    try:
        yield Fleet(store, fleet_dataset.manifest, (fleet_dataset.since, fleet_dataset.until))
    finally:
        store.close()
