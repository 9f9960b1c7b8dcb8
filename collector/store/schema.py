"""The ClickHouse schema as versioned migrations.

Each migration is a version number, a description and a function rendering its DDL statements for
given :class:`StorageSettings` (database, cluster, TTLs). :func:`migrate` applies the versions not
yet recorded in ``schema_migrations`` in order; every statement is ``IF NOT EXISTS`` so a migration
interrupted half-way re-runs cleanly, and a second ``migrate`` is a no-op. An ``ALTER`` step
(:class:`Alter`) runs only while the live columns (``system.columns``) still need it, so a re-run
after an interruption at any step picks up where it stopped.

Single node: MergeTree family engines. With ``cluster`` set: each table becomes
``<name>_local`` (Replicated*MergeTree) plus ``<name>`` (Distributed over the local tables), every
statement runs ON CLUSTER, and materialized views read and write the local tables, so a shard rolls
up its own series. Readers and the writer always use the plain names.

Why each key and codec: see docs/STORAGE.md (the codec choices come from bench/bench_storage.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from collector.store.settings import StorageSettings
from collector.store.value_codec import SQL_DECODE

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

# Tables that receive inserts (directly or through a view) keep the last N block tokens so a retried
# insert with the same insert_deduplication_token is stored once; the rollup targets need it too,
# because ClickHouse 24+ forwards a deduplicated source block to the views and lets each target
# deduplicate it with a token derived from the original.
DEDUP_WINDOW = 1000
MIGRATIONS_TABLE = "schema_migrations"

# Codecs (measured by bench/bench_storage.py; figures in docs/STORAGE.md).
TS_CODEC = "CODEC(DoubleDelta, ZSTD(1))"  # tick-aligned timestamps: ~0 bits per sample
VALUE_CODEC = "CODEC(Delta, ZSTD(6))"  # v1-v2 Float64 value: best of the float probe
# v3: value as a scaled decimal integer (collector/store/value_codec.py): mantissa and scale.
VALUE_M_CODEC = "CODEC(Delta, T64, ZSTD(6))"
VALUE_S_CODEC = "CODEC(ZSTD(1))"  # one scale per series and block: constant over long runs
# The map's offsets grow by the key count every row: ZSTD(1) barely compresses them (1.8 B/sample
# measured), ZSTD(6) finds the repeats (0.04 B/sample).
ATTRIBUTES_CODEC = "CODEC(ZSTD(6))"
SERIES_CODEC = "CODEC(ZSTD(1))"  # constant over a series' run
START_TS_CODEC = "CODEC(Delta, ZSTD(1))"  # constant per counter lifetime (0 for gauges)

# Sort key shared by samples and its rollups: one series' points sit together, in time order.
SAMPLES_KEY = "(tenant, metric, cluster, node, gpu, series_id, ts)"

_SAMPLE_DIMENSIONS = """\
    tenant LowCardinality(String),
    metric LowCardinality(String),
    cluster LowCardinality(String),
    node LowCardinality(String),
    gpu LowCardinality(String)"""


@dataclass(frozen=True)
class Table:
    """One logical table: its columns, engine, key and (on a cluster) how rows are sharded."""

    name: str
    columns: str
    engine: str  # MergeTree, AggregatingMergeTree, ReplacingMergeTree(...)
    order_by: str
    partition_by: str = ""
    ttl: str = ""
    dedup: bool = True
    shard_by: str = "rand()"
    extra_settings: tuple[str, ...] = ()


@dataclass(frozen=True)
class View:
    """A materialized view from one logical table into another."""

    name: str
    source: str
    target: str
    select: str  # uses {source} for the source table's physical name


@dataclass(frozen=True)
class DropView:
    """Remove a materialized view (a later migration re-creates it with a new query)."""

    name: str


@dataclass(frozen=True)
class Alter:
    """One ``ALTER TABLE <table> <action>``, run only while ``needed(live columns)`` says so.

    ``needed`` gets the altered table's live columns as ``{name: default_kind}`` (``''`` for a stored
    column, ``DEFAULT``, ``ALIAS``...). ``layer``: ``physical`` alters where rows live (``<name>_local``
    on a cluster); ``distributed`` alters the Distributed front of a cluster (skipped on one node).
    ``mutation``: the statement rewrites parts; it waits for them (``mutations_sync = 2``).
    """

    table: str
    action: str
    needed: Callable[[dict[str, str]], bool]
    layer: str = "physical"
    mutation: bool = False


ObjectList = list[Table | View | DropView | Alter]


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    objects: Callable[[StorageSettings], ObjectList]


def _ttl(column: str, days: int) -> str:
    return f"{column} + INTERVAL {days} DAY" if days > 0 else ""


def _v1_objects(s: StorageSettings) -> ObjectList:
    rollup_columns = f"""{_SAMPLE_DIMENSIONS},
    series_id UInt64 {SERIES_CODEC},
    ts DateTime64(3, 'UTC') {TS_CODEC},
    attributes SimpleAggregateFunction(any, Map(String, String)),
    kind SimpleAggregateFunction(any, String),
    min SimpleAggregateFunction(min, Float64),
    max SimpleAggregateFunction(max, Float64),
    sum SimpleAggregateFunction(sum, Float64),
    count SimpleAggregateFunction(sum, UInt64),
    last AggregateFunction(argMax, Float64, DateTime64(3, 'UTC')),
    start_ts SimpleAggregateFunction(max, DateTime64(3, 'UTC'))"""
    rollup_group = "tenant, metric, cluster, node, gpu, series_id, ts"
    return [
        Table(
            "samples",
            f"""{_SAMPLE_DIMENSIONS},
    attributes Map(LowCardinality(String), String) {ATTRIBUTES_CODEC},
    series_id UInt64 {SERIES_CODEC},
    ts DateTime64(3, 'UTC') {TS_CODEC},
    value Float64 {VALUE_CODEC},
    start_ts DateTime64(3, 'UTC') {START_TS_CODEC},
    kind LowCardinality(String)""",
            "MergeTree",
            SAMPLES_KEY,
            partition_by="toDate(ts)",
            ttl=_ttl("toDateTime(ts)", s.ttl_raw_days),
            shard_by="cityHash64(tenant, series_id)",
            extra_settings=("ttl_only_drop_parts = 1",),
        ),
        Table(
            "samples_1m",
            rollup_columns,
            "AggregatingMergeTree",
            SAMPLES_KEY,
            partition_by="toYYYYMM(ts)",
            ttl=_ttl("toDateTime(ts)", s.ttl_1m_days),
            shard_by="cityHash64(tenant, series_id)",
        ),
        Table(
            "samples_1h",
            rollup_columns,
            "AggregatingMergeTree",
            SAMPLES_KEY,
            partition_by="toYYYYMM(ts)",
            ttl=_ttl("toDateTime(ts)", s.ttl_1h_days),
            shard_by="cityHash64(tenant, series_id)",
        ),
        View(
            "samples_1m_mv",
            "samples",
            "samples_1m",
            f"""SELECT tenant, metric, cluster, node, gpu, series_id,
    toStartOfMinute(ts) AS ts,
    any(attributes) AS attributes, any(kind) AS kind,
    min(value) AS min, max(value) AS max, sum(value) AS sum, count() AS count,
    argMaxState(value, {{source}}.ts) AS last, max(start_ts) AS start_ts
FROM {{source}}
GROUP BY {rollup_group}""",
        ),
        # Hourly rollup cascades from the minute rollup: it aggregates ~1/6 of the raw rows.
        View(
            "samples_1h_mv",
            "samples_1m",
            "samples_1h",
            f"""SELECT tenant, metric, cluster, node, gpu, series_id,
    toStartOfHour(ts) AS ts,
    any(attributes) AS attributes, any(kind) AS kind,
    min(min) AS min, max(max) AS max, sum(sum) AS sum, sum(count) AS count,
    argMaxMergeState(last) AS last, max(start_ts) AS start_ts
FROM {{source}}
GROUP BY {rollup_group}""",
        ),
        Table(
            "events",
            """    tenant LowCardinality(String),
    ts DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    cluster LowCardinality(String),
    node LowCardinality(String),
    gpu LowCardinality(String),
    event LowCardinality(String),
    severity UInt8,
    severity_text LowCardinality(String),
    code Int32,
    body String CODEC(ZSTD(3)),
    attributes Map(LowCardinality(String), String) CODEC(ZSTD(3)),
    event_id String CODEC(ZSTD(3))""",
            # Replacing on the full key + event_id: an event re-sent by an agent's disk buffer
            # collapses into one row at merge time (read with FINAL for exact counts).
            "ReplacingMergeTree",
            "(tenant, event, cluster, node, gpu, ts, event_id)",
            partition_by="toYYYYMM(ts)",
            ttl=_ttl("toDateTime(ts)", s.ttl_events_days),
            shard_by="cityHash64(tenant, node, gpu)",
        ),
        Table(
            "inventory",
            """    tenant LowCardinality(String),
    gpu String,
    node LowCardinality(String),
    cluster LowCardinality(String),
    gpu_index Int16,
    serial String,
    model LowCardinality(String),
    pci_bus_id LowCardinality(String),
    driver LowCardinality(String),
    vbios LowCardinality(String),
    first_seen DateTime64(3, 'UTC'),
    last_seen DateTime64(3, 'UTC')""",
            # One row per (GPU, node): the newest report wins. first_seen of that row is when the
            # reporting agent first saw it; inventory_seen keeps the true first/last per (GPU, node).
            "ReplacingMergeTree(last_seen)",
            "(tenant, gpu, node)",
            shard_by="cityHash64(tenant, gpu)",
        ),
        Table(
            "inventory_seen",
            """    tenant LowCardinality(String),
    gpu String,
    node LowCardinality(String),
    cluster SimpleAggregateFunction(any, String),
    first_seen SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen SimpleAggregateFunction(max, DateTime64(3, 'UTC'))""",
            "AggregatingMergeTree",
            "(tenant, gpu, node)",
            shard_by="cityHash64(tenant, gpu)",
        ),
        View(
            "inventory_seen_mv",
            "inventory",
            "inventory_seen",
            """SELECT tenant, gpu, node, any(cluster) AS cluster,
    min(first_seen) AS first_seen, max(last_seen) AS last_seen
FROM {source}
GROUP BY tenant, gpu, node""",
        ),
        Table(
            "placements",
            """    tenant LowCardinality(String),
    cluster LowCardinality(String),
    node LowCardinality(String),
    gpu LowCardinality(String),
    pod_uid String,
    start DateTime64(3, 'UTC'),
    stop DateTime64(3, 'UTC'),
    pod_name String,
    namespace LowCardinality(String),
    job_id String,
    updated DateTime64(3, 'UTC')""",
            # An open placement (stop = 0) is replaced by its closing record (newer `updated`).
            "ReplacingMergeTree(updated)",
            "(tenant, cluster, node, gpu, pod_uid, start)",
            partition_by="toYYYYMM(start)",
            ttl=_ttl("toDateTime(start)", s.ttl_events_days),
            shard_by="cityHash64(tenant, node, gpu)",
        ),
    ]


_ROLLUP_GROUP = "tenant, metric, cluster, node, gpu, series_id, ts, attributes"


def _samples_1m_view() -> View:
    return View(
        "samples_1m_mv",
        "samples",
        "samples_1m",
        f"""SELECT tenant, metric, cluster, node, gpu, series_id,
    toStartOfMinute(ts) AS ts,
    attributes, any(kind) AS kind,
    min(value) AS min, max(value) AS max, sum(value) AS sum, count() AS count,
    argMaxState(value, {{source}}.ts) AS last, max(start_ts) AS start_ts
FROM {{source}}
GROUP BY {_ROLLUP_GROUP}""",
    )


def _v2_objects(s: StorageSettings) -> ObjectList:
    """Rollup views group by ``attributes`` instead of aggregating it with ``any()``.

    ``attributes`` is a function of ``series_id`` (it is hashed into it), so adding it to the GROUP BY
    changes no result; it only spares ClickHouse ``any()`` over a Map, which copies every map through
    a generic Field per row: measured on chDB 26 (bench/bench_ingest.py), the 1-minute view's cost per
    inserted row drops from ~2.4 to ~1.6 us. The view is dropped and re-created: a row inserted by
    another writer in between is not rolled up, so run migrations before ingest starts (the
    collector does).
    """
    return [
        DropView("samples_1m_mv"),
        _samples_1m_view(),
        DropView("samples_1h_mv"),
        View(
            "samples_1h_mv",
            "samples_1m",
            "samples_1h",
            f"""SELECT tenant, metric, cluster, node, gpu, series_id,
    toStartOfHour(ts) AS ts,
    attributes, any(kind) AS kind,
    min(min) AS min, max(max) AS max, sum(sum) AS sum, sum(count) AS count,
    argMaxMergeState(last) AS last, max(start_ts) AS start_ts
FROM {{source}}
GROUP BY {_ROLLUP_GROUP}""",
        ),
    ]


def _absent(column: str) -> Callable[[dict[str, str]], bool]:
    return lambda live: column not in live


def _has_default(column: str) -> Callable[[dict[str, str]], bool]:
    return lambda live: live.get(column) == "DEFAULT"


def _stored(column: str) -> Callable[[dict[str, str]], bool]:
    return lambda live: live.get(column) == ""


def _v3_objects(s: StorageSettings) -> ObjectList:
    """``samples.value`` becomes a scaled decimal integer: ``value_m`` (mantissa) + ``value_s`` (scale).

    ``value`` stays readable, as an ALIAS decoding the two (bit-exact, collector/store/value_codec.py),
    so every reader and the 1-minute view keep ``value``. Existing rows are carried over losslessly as
    fallback rows (scale -1, the float's bit pattern as the mantissa); new inserts carry the decimal
    encoding. Each step checks the live columns first, so a run interrupted anywhere re-runs cleanly.
    The 1-minute view is dropped first (it reads ``value``) and re-created last: rows inserted by
    another writer in between are not rolled up (see migration 2).
    """
    value_alias = f"ADD COLUMN value Float64 ALIAS {SQL_DECODE}"
    return [
        DropView("samples_1m_mv"),
        Alter(
            "samples",
            f"ADD COLUMN value_m Int64 DEFAULT reinterpretAsInt64(value) {VALUE_M_CODEC} AFTER ts",
            _absent("value_m"),
        ),
        Alter("samples", f"ADD COLUMN value_s Int8 DEFAULT -1 {VALUE_S_CODEC} AFTER value_m", _absent("value_s")),
        Alter("samples", "MATERIALIZE COLUMN value_m", _has_default("value_m"), mutation=True),
        Alter("samples", "MATERIALIZE COLUMN value_s", _has_default("value_s"), mutation=True),
        Alter("samples", "MODIFY COLUMN value_m REMOVE DEFAULT", _has_default("value_m")),
        Alter("samples", "MODIFY COLUMN value_s REMOVE DEFAULT", _has_default("value_s")),
        Alter("samples", "DROP COLUMN value", _stored("value")),
        Alter("samples", value_alias, _absent("value")),
        # The Distributed front of a cluster (skipped on one node): same columns, no data of its own.
        Alter("samples", "ADD COLUMN value_m Int64 AFTER ts", _absent("value_m"), layer="distributed"),
        Alter("samples", "ADD COLUMN value_s Int8 AFTER value_m", _absent("value_s"), layer="distributed"),
        Alter("samples", "DROP COLUMN value", _stored("value"), layer="distributed"),
        Alter("samples", value_alias, _absent("value"), layer="distributed"),
        _samples_1m_view(),
    ]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "samples with 1m/1h rollups, events, inventory, placements", _v1_objects),
    Migration(2, "rollup views group by attributes (cheaper than any() over a Map)", _v2_objects),
    Migration(3, "samples.value stored as a scaled decimal Int64 (value_m, value_s); value is an ALIAS", _v3_objects),
)
LATEST_VERSION = MIGRATIONS[-1].version


def _physical(name: str, settings: StorageSettings) -> str:
    """Where rows live: ``<name>_local`` on a cluster, ``<name>`` on one node."""
    return f"{name}_local" if settings.cluster else name


def _on_cluster(settings: StorageSettings) -> str:
    return f" ON CLUSTER {settings.cluster}" if settings.cluster else ""


def _engine(table: Table, settings: StorageSettings) -> str:
    if not settings.cluster:
        return table.engine if "(" in table.engine else f"{table.engine}()"
    family, _, args = table.engine.partition("(")
    args = args.rstrip(")")
    zk = f"'/clickhouse/tables/{{shard}}/{settings.database}/{_physical(table.name, settings)}', '{{replica}}'"
    return f"Replicated{family}({zk}{', ' + args if args else ''})"


def _table_ddl(table: Table, settings: StorageSettings) -> list[str]:
    db = settings.database
    physical = _physical(table.name, settings)
    clauses = [f"ENGINE = {_engine(table, settings)}"]
    if table.partition_by:
        clauses.append(f"PARTITION BY {table.partition_by}")
    clauses.append(f"ORDER BY {table.order_by}")
    if table.ttl:
        clauses.append(f"TTL {table.ttl}")
    table_settings = list(table.extra_settings)
    if table.dedup and not settings.cluster:  # replicated tables deduplicate by default
        table_settings.insert(0, f"non_replicated_deduplication_window = {DEDUP_WINDOW}")
    if table_settings:
        clauses.append("SETTINGS " + ", ".join(table_settings))
    body = "\n".join(clauses)
    statements = [f"CREATE TABLE IF NOT EXISTS {db}.{physical}{_on_cluster(settings)}\n(\n{table.columns}\n)\n{body}"]
    if settings.cluster:
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {db}.{table.name}{_on_cluster(settings)} AS {db}.{physical}\n"
            f"ENGINE = Distributed({settings.cluster}, {db}, {physical}, {table.shard_by})"
        )
    return statements


def _view_ddl(view: View, settings: StorageSettings) -> str:
    db = settings.database
    source = f"{db}.{_physical(view.source, settings)}"
    select = view.select.replace("{source}", source)
    return (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{view.name}{_on_cluster(settings)}\n"
        f"TO {db}.{_physical(view.target, settings)}\nAS {select}"
    )


def _bookkeeping_ddl(settings: StorageSettings) -> list[str]:
    db = settings.database
    if settings.cluster:
        # One replicated log shared by every node of the cluster (no {shard} in the path).
        engine = f"ReplicatedMergeTree('/clickhouse/tables/{db}/{MIGRATIONS_TABLE}', '{{replica}}')"
    else:
        engine = "MergeTree()"
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}{_on_cluster(settings)}",
        f"CREATE TABLE IF NOT EXISTS {db}.{MIGRATIONS_TABLE}{_on_cluster(settings)}\n(\n"
        "    version UInt32,\n    description String,\n    applied_at DateTime('UTC') DEFAULT now()\n)\n"
        f"ENGINE = {engine}\nORDER BY version",
    ]


def _alter_target(alter: Alter, settings: StorageSettings) -> str | None:
    """The table an Alter applies to here (None: a Distributed-front step on a single node)."""
    if alter.layer == "distributed":
        return alter.table if settings.cluster else None
    return _physical(alter.table, settings)


def _alter_ddl(alter: Alter, target: str, settings: StorageSettings) -> str:
    sql = f"ALTER TABLE {settings.database}.{target}{_on_cluster(settings)} {alter.action}"
    return sql + (" SETTINGS mutations_sync = 2" if alter.mutation else "")


def migration_steps(migration: Migration, settings: StorageSettings) -> list[tuple[str, Alter | None, str]]:
    """``(statement, alter, target table)`` for each step; ``alter`` is None for unconditional DDL."""
    steps: list[tuple[str, Alter | None, str]] = []
    for obj in migration.objects(settings):
        if isinstance(obj, Table):
            steps.extend((sql, None, "") for sql in _table_ddl(obj, settings))
        elif isinstance(obj, DropView):
            sql = f"DROP VIEW IF EXISTS {settings.database}.{obj.name}{_on_cluster(settings)}"
            steps.append((sql, None, ""))
        elif isinstance(obj, Alter):
            target = _alter_target(obj, settings)
            if target is not None:
                steps.append((_alter_ddl(obj, target, settings), obj, target))
        else:
            steps.append((_view_ddl(obj, settings), None, ""))
    return steps


def migration_statements(migration: Migration, settings: StorageSettings) -> list[str]:
    return [sql for sql, _, _ in migration_steps(migration, settings)]


def render_ddl(settings: StorageSettings) -> str:
    """Every statement ``migrate`` would run on an empty database, as one SQL script."""
    parts = [
        f"-- fleetpulse schema, version {LATEST_VERSION}; database {settings.database}"
        + (f", cluster {settings.cluster}" if settings.cluster else ", single node"),
        f"-- TTL days: raw {settings.ttl_raw_days}, 1m {settings.ttl_1m_days}, 1h {settings.ttl_1h_days}, "
        f"events {settings.ttl_events_days} (0 = keep forever)",
        "-- ALTER steps run only while the live columns still need them (schema.Alter): re-running is safe.",
    ]
    parts += [s + ";" for s in _bookkeeping_ddl(settings)]
    for migration in MIGRATIONS:
        parts.append(f"-- migration {migration.version}: {migration.description}")
        parts += [s + ";" for s in migration_statements(migration, settings)]
    return "\n\n".join(parts) + "\n"


def applied_versions(client: Client, settings: StorageSettings) -> set[int]:
    rows = client.query(f"SELECT version FROM {settings.database}.{MIGRATIONS_TABLE}").result_rows
    return {int(r[0]) for r in rows}


def live_columns(client: Client, database: str, table: str) -> dict[str, str]:
    """``{column: default_kind}`` of a table as it is now (``''`` for a stored column)."""
    rows = client.query(
        "SELECT name, default_kind FROM system.columns WHERE database = {db:String} AND table = {t:String}",
        parameters={"db": database, "t": table},
    ).result_rows
    return {str(name): str(kind) for name, kind in rows}


def migrate(client: Client, settings: StorageSettings, *, up_to: int | None = None) -> list[int]:
    """Apply pending migrations in order (up to version ``up_to``, default all); returns the versions
    applied now (empty when up to date)."""
    for statement in _bookkeeping_ddl(settings):
        client.command(statement)
    done = applied_versions(client, settings)
    applied: list[int] = []
    for migration in MIGRATIONS:
        if migration.version in done or (up_to is not None and migration.version > up_to):
            continue
        for statement, alter, target in migration_steps(migration, settings):
            if alter is not None and not alter.needed(live_columns(client, settings.database, target)):
                continue
            client.command(statement)
        client.insert(
            f"{settings.database}.{MIGRATIONS_TABLE}",
            [[migration.version, migration.description]],
            column_names=["version", "description"],
        )
        applied.append(migration.version)
    return applied
