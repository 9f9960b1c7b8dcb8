"""`Store`: insert batches (deduplicated by token), run queries, answer health checks.

Each table of a :class:`Batch` goes in as one Arrow insert (samples with ``value`` encoded as
``value_m``/``value_s``, collector/store/value_codec.py) with
``insert_deduplication_token = "<token>:<table>"``: replaying the same batch with the same token
(after a crash, or a timeout whose insert actually landed) stores nothing twice, in the raw tables
and in the rollups. Failures are classified for the caller: :class:`StoreUnavailable` (retry the
same batch and token later) or :class:`StoreRejected` (the content cannot be stored; retrying will
not help).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import TYPE_CHECKING, Any

from collector.store import client as client_registry
from collector.store.errors import StoreError, StoreRejected, StoreUnavailable
from collector.store.rows import Batch, EventColumns, InventoryColumns, PlacementColumns, SampleColumns
from collector.store.schema import migrate
from collector.store.settings import StorageSettings
from collector.store.value_codec import encode_samples

if TYPE_CHECKING:
    import pyarrow as pa
    from clickhouse_connect.driver.query import QueryResult

log = logging.getLogger(__name__)

# ClickHouse error codes that mean "this data can never be stored as sent" (not worth retrying).
_REJECT_CODES = {
    6,  # CANNOT_PARSE_TEXT
    27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    53,  # TYPE_MISMATCH
    69,  # ARGUMENT_OUT_OF_BOUND
    70,  # CANNOT_CONVERT_TYPE
    117,  # INCORRECT_DATA
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    1001,  # STD_EXCEPTION (e.g. Arrow conversion of malformed columns)
}
_CODE = re.compile(r"Code: (\d+)\.")


def _error_code(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    match = _CODE.search(str(exc))
    return int(match.group(1)) if match else None


def classify(exc: BaseException, what: str) -> StoreError:
    """The StoreError a clickhouse-connect failure stands for (retryable unless the data is at fault)."""
    code = _error_code(exc)
    if code in _REJECT_CODES:
        return StoreRejected(f"{what}: ClickHouse rejected the data (code {code}): {exc}")
    return StoreUnavailable(f"{what}: {exc}")


class Store:
    """One collector's handle on the store; thread-safe (inserts are serialised per Store)."""

    def __init__(self, settings: StorageSettings, *, run_migrations: bool = True) -> None:
        self.settings = settings
        self._client = client_registry.connect(settings)
        self._closed = False
        self._insert_lock = threading.Lock()
        # A cluster insert must reach the shards before it counts as stored (and deduplicated there).
        self._insert_settings: dict[str, Any] = {"distributed_foreground_insert": 1} if settings.cluster else {}
        self._embedded = settings.dsn.startswith("chdb:")
        if run_migrations:
            from clickhouse_connect.driver.exceptions import OperationalError

            where = f"migrating {client_registry.masked(settings.dsn)} database {settings.database}"
            try:
                applied = migrate(self._client, settings)
            except OperationalError as exc:
                self.close()
                raise StoreUnavailable(f"{where}: {exc}") from exc
            except Exception as exc:
                self.close()
                raise StoreError(f"{where}: {exc}") from exc
            if applied:
                log.info("schema migrations applied: %s", applied)

    @property
    def client(self) -> Any:
        """The underlying clickhouse-connect client (shared within the process; do not close it)."""
        return self._client

    def insert(self, batch: Batch, dedup_token: str) -> None:
        """Store ``batch``; the same ``dedup_token`` inserted again stores nothing new."""
        if not dedup_token:
            raise ValueError("dedup_token must be non-empty: it is what makes a replay safe")
        from clickhouse_connect.driver.exceptions import ClickHouseError

        converters = (
            (batch.samples, samples_arrow),
            (batch.events, events_arrow),
            (batch.inventory, inventory_arrow),
            (batch.placements, placements_arrow),
        )
        with self._insert_lock:
            for columns, convert in converters:
                extra = batch.arrow_samples if columns is batch.samples else None
                rows = len(columns) + (0 if extra is None else extra.num_rows)
                if not rows:
                    continue
                table = columns.TABLE
                try:
                    data = convert(columns) if len(columns) else None
                    if extra is not None:
                        data = extra if data is None else _concat(data, extra)
                    if table == "samples":
                        # Stored as value_m/value_s (schema migration 3): encoded once, for every path.
                        data = encode_samples(data)
                except (ValueError, TypeError, OverflowError) as exc:
                    raise StoreRejected(f"{table}: cannot convert batch rows ({exc})") from exc
                except Exception as exc:  # pyarrow.ArrowInvalid and friends derive from ValueError too
                    raise StoreRejected(f"{table}: cannot convert batch rows ({exc!r})") from exc
                settings = {**self._insert_settings, "insert_deduplication_token": f"{dedup_token}:{table}"}
                if table == "samples":
                    # The rollup views already GROUP BY the full key, so each block they write holds one
                    # row per key: merging it again at insert (optimize_on_insert) finds nothing to
                    # collapse and cost ~1 us per row (bench/bench_ingest.py). Readers aggregate anyway.
                    settings["optimize_on_insert"] = 0
                try:
                    self._insert_table(table, data, settings)
                except ClickHouseError as exc:
                    raise classify(exc, f"insert into {table} ({rows} rows)") from exc
                except OSError as exc:
                    raise StoreUnavailable(f"insert into {table}: {exc}") from exc

    def _insert_table(self, table: str, data: pa.Table, settings: dict[str, Any]) -> None:
        """One Arrow block into ``table``, deduplicated by the token in ``settings``.

        Embedded chDB reads the Arrow table in place through its ``Python()`` table function, which
        measured about twice as fast as clickhouse-connect's ``insert_arrow`` (an Arrow IPC stream
        it parses again); a server gets ``insert_arrow``.
        """
        target = f"{self.settings.database}.{table}"
        if not self._embedded:
            self._client.insert_arrow(target, data, settings=settings)
            return
        names = ", ".join(f"`{name}`" for name in data.column_names)
        # chDB resolves Python(<name>) by looking the name up in the calling frames: this local.
        fleetpulse_insert_block = data  # noqa: F841
        self._client.command(
            f"INSERT INTO {target} ({names}) SELECT {names} FROM Python(fleetpulse_insert_block)", settings=settings
        )

    def query(
        self, sql: str, parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None
    ) -> QueryResult:
        """Run SQL in the store's database. Connection failures raise StoreUnavailable; SQL errors
        raise clickhouse-connect's DatabaseError with ClickHouse's message (show it to the user)."""
        from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

        try:
            return self._client.query(sql, parameters=parameters, settings=settings)
        except OperationalError as exc:
            raise StoreUnavailable(f"query: {exc}") from exc
        except DatabaseError:
            raise
        except OSError as exc:
            raise StoreUnavailable(f"query: {exc}") from exc

    def command(
        self, sql: str, parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None
    ) -> Any:
        """Run a statement (OPTIMIZE, SYSTEM ...) in the store's database."""
        from clickhouse_connect.driver.exceptions import OperationalError

        try:
            return self._client.command(sql, parameters=parameters, settings=settings)
        except OperationalError as exc:
            raise StoreUnavailable(f"command: {exc}") from exc

    def ping(self) -> bool:
        """True when the store answers a trivial query."""
        if self._closed:
            return False
        try:
            return self._client.command("SELECT 1") == 1
        except Exception:
            return False

    def close(self) -> None:
        """Release this Store's share of the client (the last user closes it). Idempotent."""
        if not self._closed:
            self._closed = True
            client_registry.release(self.settings)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- Batch columns → Arrow


def _concat(first: pa.Table, second: pa.Table) -> pa.Table:
    import pyarrow as pa

    return pa.concat_tables([first, second.select(first.column_names).cast(first.schema)])


def _map_type() -> pa.DataType:
    import pyarrow as pa

    return pa.map_(pa.string(), pa.string())


def _maps(values: list[dict[str, str]]) -> pa.Array:
    import pyarrow as pa

    return pa.array([list(d.items()) for d in values], type=_map_type())


def _ms(values: list[int]) -> pa.Array:
    """Int nanoseconds → Arrow millisecond timestamps (what DateTime64(3) stores)."""
    import numpy as np
    import pyarrow as pa

    return pa.array(np.asarray(values, dtype=np.int64) // 1_000_000, type=pa.timestamp("ms", tz="UTC"))


def _low_cardinality(values: list[str]) -> pa.Array:
    import pyarrow as pa

    return pa.array(values, type=pa.string()).dictionary_encode()


def samples_arrow(cols: SampleColumns) -> pa.Table:
    """Samples as Arrow, converting per-series columns once per distinct series_id."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    cols.check()
    sid = pa.array(np.asarray(cols.series_id, dtype=np.uint64), type=pa.uint64())
    encoded = pc.dictionary_encode(sid)
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    # Dictionary codes are 0..k-1, so return_index lists each series' first row in code order.
    _, first = np.unique(indices, return_index=True)
    first_list = first.tolist()
    idx = pa.array(indices, type=pa.int32())

    def per_series(values: list[str]) -> pa.Array:
        # Arrow dictionaries must hold distinct values: encode the per-series values, then compose.
        per = pa.array([values[i] for i in first_list], type=pa.string()).dictionary_encode()
        return pa.DictionaryArray.from_arrays(pc.take(per.indices, idx), per.dictionary)

    attributes = pc.take(_maps([cols.attributes[i] for i in first_list]), idx)
    return pa.table(
        {
            "tenant": per_series(cols.tenant),
            "metric": per_series(cols.metric),
            "cluster": per_series(cols.cluster),
            "node": per_series(cols.node),
            "gpu": per_series(cols.gpu),
            "attributes": attributes,
            "series_id": sid,
            "ts": _ms(cols.ts),
            "value": pa.array(np.asarray(cols.value, dtype=np.float64), type=pa.float64()),
            "start_ts": _ms(cols.start_ts),
            "kind": _low_cardinality(cols.kind),
        }
    )


def events_arrow(cols: EventColumns) -> pa.Table:
    import pyarrow as pa

    cols.check()
    return pa.table(
        {
            "tenant": _low_cardinality(cols.tenant),
            "ts": _ms(cols.ts),
            "cluster": _low_cardinality(cols.cluster),
            "node": _low_cardinality(cols.node),
            "gpu": _low_cardinality(cols.gpu),
            "event": _low_cardinality(cols.event),
            "severity": pa.array(cols.severity, type=pa.uint8()),
            "severity_text": _low_cardinality(cols.severity_text),
            "code": pa.array(cols.code, type=pa.int32()),
            "body": pa.array(cols.body, type=pa.string()),
            "attributes": _maps(cols.attributes),
            "event_id": pa.array(cols.event_id, type=pa.string()),
        }
    )


def inventory_arrow(cols: InventoryColumns) -> pa.Table:
    import pyarrow as pa

    cols.check()
    return pa.table(
        {
            "tenant": _low_cardinality(cols.tenant),
            "gpu": pa.array(cols.gpu, type=pa.string()),
            "node": _low_cardinality(cols.node),
            "cluster": _low_cardinality(cols.cluster),
            "gpu_index": pa.array(cols.gpu_index, type=pa.int16()),
            "serial": pa.array(cols.serial, type=pa.string()),
            "model": _low_cardinality(cols.model),
            "pci_bus_id": _low_cardinality(cols.pci_bus_id),
            "driver": _low_cardinality(cols.driver),
            "vbios": _low_cardinality(cols.vbios),
            "first_seen": _ms(cols.first_seen),
            "last_seen": _ms(cols.last_seen),
        }
    )


def placements_arrow(cols: PlacementColumns) -> pa.Table:
    import pyarrow as pa

    cols.check()
    return pa.table(
        {
            "tenant": _low_cardinality(cols.tenant),
            "cluster": _low_cardinality(cols.cluster),
            "node": _low_cardinality(cols.node),
            "gpu": _low_cardinality(cols.gpu),
            "pod_uid": pa.array(cols.pod_uid, type=pa.string()),
            "start": _ms(cols.start),
            "stop": _ms(cols.stop),
            "pod_name": pa.array(cols.pod_name, type=pa.string()),
            "namespace": _low_cardinality(cols.namespace),
            "job_id": pa.array(cols.job_id, type=pa.string()),
            "updated": _ms(cols.updated),
        }
    )
