"""Migration 3 (samples.value -> value_m/value_s + ALIAS) on a store created at version 2, against chDB."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from collector.store import client as client_registry
from collector.store.schema import LATEST_VERSION, MIGRATIONS, live_columns, migrate, migration_steps
from collector.store.settings import StorageSettings, chdb_dsn
from collector.store.writer import Store

NS = 1_000_000_000
OLD_VALUES = [40.5, 1 / 3, math.nan, -0.0, math.inf, 5e-324, 1e16 + 2, 0.1 + 0.2, -7.0, 2.2e-308]


def _bits(values: list[float] | np.ndarray) -> list[int]:
    return np.asarray(values, dtype=np.float64).view(np.int64).tolist()


def _v2_block(start_ms: int) -> pa.Table:
    """Rows in the version-2 layout (physical Float64 ``value``), one series, 10 s apart."""
    n = len(OLD_VALUES)
    return pa.table(
        {
            "tenant": ["t1"] * n,
            "metric": ["hw.gpu.power"] * n,
            "cluster": ["c1"] * n,
            "node": ["n1"] * n,
            "gpu": ["GPU-a"] * n,
            "attributes": pa.array([[]] * n, pa.map_(pa.string(), pa.string())),
            "series_id": pa.array([42] * n, pa.uint64()),
            "ts": pa.array([start_ms + i * 10_000 for i in range(n)], pa.timestamp("ms", tz="UTC")),
            "value": pa.array(OLD_VALUES, pa.float64()),
            "start_ts": pa.array([0] * n, pa.timestamp("ms", tz="UTC")),
            "kind": ["gauge"] * n,
        }
    )


def _hour_start_ms() -> int:
    return (int(time.time()) // 3600 * 3600 - 3600) * 1000


def test_version_2_store_upgrades_in_place_losing_nothing(tmp_path: Path) -> None:
    settings = StorageSettings(dsn=chdb_dsn(tmp_path / "ch"))
    client = client_registry.connect(settings)
    try:
        assert migrate(client, settings, up_to=2) == [1, 2]
        assert live_columns(client, "fleetpulse", "samples")["value"] == ""  # physical Float64
        start_ms = _hour_start_ms()
        block = _v2_block(start_ms)
        names = ", ".join(block.column_names)
        client.command(f"INSERT INTO fleetpulse.samples ({names}) SELECT {names} FROM Python(block)")
        assert migrate(client, settings) == [3]
        live = live_columns(client, "fleetpulse", "samples")
        assert live["value_m"] == live["value_s"] == "" and live["value"] == "ALIAS"
        rows = client.query("SELECT value, value_s FROM fleetpulse.samples ORDER BY ts").result_rows
        assert _bits([r[0] for r in rows]) == _bits(OLD_VALUES), "old rows must read back bit-exact"
        assert {r[1] for r in rows} == {-1}, "old rows are carried over as fallback rows"
        assert migrate(client, settings) == []
    finally:
        client_registry.release(settings)

    # New inserts through the Store: decimal encoding, rollups and dedup still right.
    with Store(settings) as store:
        t0 = (start_ms // 60_000 + 2) * 60 * NS
        batch_values = [300.25, 301.5, 299.75, 302.0, 1 / 3, 305.0]
        from collector.store.rows import Batch

        batch = Batch()
        for i, v in enumerate(batch_values):
            batch.samples.append("t1", "hw.gpu.power", "c1", "n1", "GPU-b", {}, t0 + i * 10 * NS, v)
        store.insert(batch, "after-v3")
        store.insert(batch, "after-v3")  # replay: stored once, everywhere
        rows = store.query("SELECT value, value_m, value_s FROM samples WHERE gpu = 'GPU-b' ORDER BY ts").result_rows
        assert _bits([r[0] for r in rows]) == _bits(batch_values)
        assert [(r[1], r[2]) for r in rows if r[2] >= 0] == [(30025, 2), (30150, 2), (29975, 2), (30200, 2), (30500, 2)]
        assert rows[4][2] == -1  # 1/3 (exact only at k = 16) is a float: it keeps its bit pattern
        minute = store.query(
            "SELECT min(min), max(max), sum(sum), sum(count), argMaxMerge(last) FROM samples_1m WHERE gpu = 'GPU-b'"
        ).result_rows
        assert minute == [(1 / 3, 305.0, pytest.approx(sum(batch_values)), 6, 305.0)]
        hour = store.query("SELECT sum(count), max(max) FROM samples_1h WHERE gpu = 'GPU-b'").result_rows
        assert hour == [(6, 305.0)]
        assert store.query("SELECT count() FROM samples").result_rows == [(len(OLD_VALUES) + 6,)]


@pytest.mark.parametrize("stop_after", range(1, 10))
def test_interrupted_migration_reruns_cleanly(tmp_path: Path, stop_after: int) -> None:
    """Run only the first ``stop_after`` steps of migration 3 (a crash), then migrate again."""
    settings = StorageSettings(dsn=chdb_dsn(tmp_path / "ch"))
    client = client_registry.connect(settings)
    try:
        migrate(client, settings, up_to=2)
        block = _v2_block(_hour_start_ms())
        names = ", ".join(block.column_names)
        client.command(f"INSERT INTO fleetpulse.samples ({names}) SELECT {names} FROM Python(block)")
        v3 = next(m for m in MIGRATIONS if m.version == 3)
        for statement, alter, target in migration_steps(v3, settings)[:stop_after]:
            if alter is None or alter.needed(live_columns(client, "fleetpulse", target)):
                client.command(statement)
        assert migrate(client, settings) == [3]
        rows = client.query("SELECT value FROM fleetpulse.samples ORDER BY ts").result_rows
        assert _bits([r[0] for r in rows]) == _bits(OLD_VALUES)
        views = client.query("SELECT name FROM system.tables WHERE database = 'fleetpulse' AND name LIKE '%_mv'")
        assert {r[0] for r in views.result_rows} >= {"samples_1m_mv", "samples_1h_mv"}
    finally:
        client_registry.release(settings)


def test_fresh_install_runs_every_version_and_select_star_has_no_alias(tmp_path: Path) -> None:
    settings = StorageSettings(dsn=chdb_dsn(tmp_path / "ch"))
    client = client_registry.connect(settings)
    try:
        assert migrate(client, settings) == list(range(1, LATEST_VERSION + 1))
        columns = client.query("SELECT * FROM fleetpulse.samples LIMIT 0").column_names
        assert "value_m" in columns and "value_s" in columns and "value" not in columns
        codecs = dict(
            client.query(
                "SELECT name, compression_codec FROM system.columns WHERE database = 'fleetpulse' AND table = 'samples'"
            ).result_rows
        )
        assert codecs["value_m"] == "CODEC(Delta(8), T64, ZSTD(6))" and codecs["value_s"] == "CODEC(ZSTD(1))"
    finally:
        client_registry.release(settings)
