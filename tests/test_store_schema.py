"""Schema DDL and migrations, against real chDB (and rendered DDL for cluster mode)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from collector.store import client as client_registry
from collector.store.schema import LATEST_VERSION, MIGRATIONS_TABLE, migrate, render_ddl
from collector.store.settings import StorageSettings, chdb_dsn

TABLES = {"samples", "samples_1m", "samples_1h", "events", "inventory", "inventory_seen", "placements"}


def _settings(path: Path, **kw: object) -> StorageSettings:
    return StorageSettings(dsn=chdb_dsn(path / "ch"), **kw)  # type: ignore[arg-type]


def test_migrate_creates_schema_and_second_run_is_noop(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    client = client_registry.connect(settings)
    try:
        assert migrate(client, settings) == [m for m in range(1, LATEST_VERSION + 1)]
        assert migrate(client, settings) == []
        names = {r[0] for r in client.query("SELECT name FROM system.tables WHERE database = 'fleetpulse'").result_rows}
        assert names >= TABLES | {MIGRATIONS_TABLE, "samples_1m_mv", "samples_1h_mv"}
        versions = client.query(f"SELECT version FROM fleetpulse.{MIGRATIONS_TABLE} ORDER BY version").result_rows
        assert versions == [(v,) for v in range(1, LATEST_VERSION + 1)], "a second migrate must not re-record"
        engines = dict(client.query("SELECT name, engine FROM system.tables WHERE database = 'fleetpulse'").result_rows)
        assert engines["samples"] == "MergeTree"
        assert engines["samples_1m"] == engines["samples_1h"] == "AggregatingMergeTree"
        assert engines["inventory"] == "ReplacingMergeTree"
        sort_key = client.query(
            "SELECT sorting_key FROM system.tables WHERE database = 'fleetpulse' AND name = 'samples'"
        ).result_rows[0][0]
        assert sort_key == "tenant, metric, cluster, node, gpu, series_id, ts"
        for table in TABLES:
            cols = {r[0] for r in client.query(f"DESCRIBE TABLE fleetpulse.{table}").result_rows}
            assert "tenant" in cols, f"{table} has no tenant column"
    finally:
        client_registry.release(settings)


def test_ttls_follow_settings_in_ddl_and_on_chdb(tmp_path: Path) -> None:
    settings = _settings(tmp_path, ttl_raw_days=3, ttl_1m_days=40, ttl_1h_days=400, ttl_events_days=900)
    ddl = render_ddl(settings)
    for table, days in (("samples", 3), ("samples_1m", 40), ("samples_1h", 400), ("events", 900)):
        block = _create_block(ddl, f"fleetpulse.{table}")
        assert f"TTL toDateTime(ts) + INTERVAL {days} DAY" in block, table
    client = client_registry.connect(settings)
    try:
        migrate(client, settings)
        create = client.command("SHOW CREATE TABLE fleetpulse.samples")
        assert "toIntervalDay(3)" in create or "INTERVAL 3 DAY" in create
    finally:
        client_registry.release(settings)


def test_zero_ttl_means_keep_forever() -> None:
    ddl = render_ddl(StorageSettings(dsn="chdb:///x", ttl_raw_days=0))
    assert "TTL" not in _create_block(ddl, "fleetpulse.samples")
    assert "TTL" in _create_block(ddl, "fleetpulse.samples_1m")


def test_default_ttls() -> None:
    ddl = render_ddl(StorageSettings(dsn="chdb:///x"))
    assert "INTERVAL 15 DAY" in _create_block(ddl, "fleetpulse.samples")
    assert "INTERVAL 90 DAY" in _create_block(ddl, "fleetpulse.samples_1m")
    assert "INTERVAL 730 DAY" in _create_block(ddl, "fleetpulse.samples_1h")
    assert "INTERVAL 1825 DAY" in _create_block(ddl, "fleetpulse.events")


def test_single_node_ddl_deduplicates_inserts() -> None:
    ddl = render_ddl(StorageSettings(dsn="chdb:///x"))
    for table in ("samples", "samples_1m", "samples_1h", "events", "inventory", "placements"):
        assert "non_replicated_deduplication_window = 1000" in _create_block(ddl, f"fleetpulse.{table}"), table
    assert "ON CLUSTER" not in ddl and "Replicated" not in ddl and "Distributed" not in ddl


def test_cluster_ddl_is_replicated_distributed_on_cluster() -> None:
    settings = StorageSettings(dsn="http://ch:8123", cluster="prod", database="fp")
    ddl = render_ddl(settings)
    statements = [s for s in ddl.split(";") if "CREATE" in s]
    assert statements and all(" ON CLUSTER prod" in s for s in statements)
    for table in TABLES:
        local = _create_block(ddl, f"fp.{table}_local")
        assert re.search(
            r"ENGINE = Replicated\w*MergeTree\('/clickhouse/tables/\{shard\}/fp/" + table + "_local'", local
        )
        dist = _create_block(ddl, f"fp.{table}")
        assert f"ENGINE = Distributed(prod, fp, {table}_local," in dist, table
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fp/inventory_local', '{replica}', last_seen)" in ddl
    )
    # Views roll up the shard-local tables into shard-local targets.
    assert re.search(
        r"samples_1m_mv ON CLUSTER prod\nTO fp\.samples_1m_local\nAS SELECT[\s\S]*FROM fp\.samples_local", ddl
    )
    assert re.search(
        r"samples_1h_mv ON CLUSTER prod\nTO fp\.samples_1h_local\nAS SELECT[\s\S]*FROM fp\.samples_1m_local", ddl
    )
    assert "non_replicated_deduplication_window" not in ddl


def test_settings_reject_bad_values() -> None:
    with pytest.raises(ValueError, match=r"storage\.database"):
        StorageSettings(dsn="chdb:///x", database="bad-name; DROP")
    with pytest.raises(ValueError, match=r"storage\.dsn"):
        StorageSettings(dsn="mysql://x")
    with pytest.raises(ValueError, match=r"ttl_days\.raw"):
        StorageSettings(dsn="chdb:///x", ttl_raw_days=-1)


def test_schema_print_cli(capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli import main

    assert main(["schema", "print", "--cluster", "prod", "--ttl-raw-days", "7"]) == 0
    out = capsys.readouterr().out
    assert "ON CLUSTER prod" in out and "INTERVAL 7 DAY" in out
    assert main(["schema", "print", "--ttl-raw-days", "-3"]) == 2
    assert "ttl_days.raw" in capsys.readouterr().err


def _create_block(ddl: str, name: str) -> str:
    """The CREATE statement for exactly ``name`` (not a longer name sharing its prefix)."""
    for statement in ddl.split(";"):
        if re.search(
            rf"CREATE (TABLE|MATERIALIZED VIEW) IF NOT EXISTS {re.escape(name)}( ON CLUSTER \w+)?\s", statement
        ):
            return statement
    raise AssertionError(f"no CREATE for {name}")


def test_migration_3_alters_local_and_distributed_samples_on_cluster() -> None:
    ddl = render_ddl(StorageSettings(dsn="http://ch:8123", cluster="prod", database="fp"))
    v3 = ddl[ddl.index("-- migration 3") :]
    alters = [s.strip() for s in v3.split(";") if s.strip().startswith("ALTER")]
    local = [a for a in alters if a.startswith("ALTER TABLE fp.samples_local ON CLUSTER prod ")]
    dist = [a for a in alters if a.startswith("ALTER TABLE fp.samples ON CLUSTER prod ")]
    assert len(local) + len(dist) == len(alters) and len(local) == 8 and len(dist) == 4
    assert "ADD COLUMN value_m Int64 DEFAULT reinterpretAsInt64(value) CODEC(Delta, T64, ZSTD(6)) AFTER ts" in local[0]
    assert local[2].endswith("MATERIALIZE COLUMN value_m SETTINGS mutations_sync = 2")
    assert local[-2].endswith("DROP COLUMN value") and "value Float64 ALIAS if(value_s < 0" in local[-1]
    assert [d.split(" prod ", 1)[1].split(" ALIAS")[0] for d in dist] == [
        "ADD COLUMN value_m Int64 AFTER ts",
        "ADD COLUMN value_s Int8 AFTER value_m",
        "DROP COLUMN value",
        "ADD COLUMN value Float64",
    ]
    # The 1-minute view is dropped before the column change and re-created after, on the local tables.
    assert v3.index("DROP VIEW IF EXISTS fp.samples_1m_mv ON CLUSTER prod") < v3.index(local[0])
    assert re.search(
        r"samples_1m_mv ON CLUSTER prod\nTO fp\.samples_1m_local\nAS SELECT[\s\S]*FROM fp\.samples_local", v3
    )
    assert v3.index(dist[-1]) < v3.index("CREATE MATERIALIZED VIEW IF NOT EXISTS fp.samples_1m_mv")


def test_migration_3_single_node_alters_samples_only() -> None:
    ddl = render_ddl(StorageSettings(dsn="chdb:///x"))
    v3 = ddl[ddl.index("-- migration 3") :]
    alters = [s.strip() for s in v3.split(";") if s.strip().startswith("ALTER")]
    assert len(alters) == 8 and all(a.startswith("ALTER TABLE fleetpulse.samples ") for a in alters)
    assert "ON CLUSTER" not in v3
