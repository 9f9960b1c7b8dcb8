"""Store.insert / query / dedup / rollups / inventory against real chDB."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.store.errors import StoreRejected, StoreUnavailable
from collector.store.rows import SUM, Batch, series_id
from collector.store.settings import StorageSettings, chdb_dsn
from collector.store.writer import Store

NS = 1_000_000_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(StorageSettings(dsn=chdb_dsn(tmp_path / "ch")))
    yield s
    s.close()


def _minute_start() -> int:
    """A minute boundary a few minutes ago (recent: chDB drops rows whose TTL already expired)."""
    return (int(time.time()) // 3600 * 3600 - 3600) * NS


def _gauge_batch(tenant: str, start: int, values: list[float], gpu: str = "GPU-a") -> Batch:
    batch = Batch()
    for i, v in enumerate(values):
        batch.samples.append(
            tenant, "hw.gpu.temperature", "c1", "node-1", gpu, {"hw.sensor": "gpu"}, start + i * 10 * NS, v
        )
    return batch


def test_insert_then_query(store: Store) -> None:
    start = _minute_start()
    store.insert(_gauge_batch("t1", start, [40.0, 41.0, 42.0]), "tok-1")
    rows = store.query(
        "SELECT metric, node, gpu, attributes, value, toUnixTimestamp64Milli(ts), kind FROM samples "
        "WHERE tenant = {t:String} ORDER BY ts",
        parameters={"t": "t1"},
    ).result_rows
    assert rows == [
        ("hw.gpu.temperature", "node-1", "GPU-a", {"hw.sensor": "gpu"}, v, start // 1_000_000 + i * 10_000, "gauge")
        for i, v in enumerate([40.0, 41.0, 42.0])
    ]
    sid = store.query("SELECT DISTINCT series_id FROM samples").result_rows
    assert sid == [(series_id("t1", "hw.gpu.temperature", "c1", "node-1", "GPU-a", {"hw.sensor": "gpu"}),)]
    assert store.ping()


def test_same_token_stores_once_and_rollups_stay_right(store: Store) -> None:
    start = _minute_start()
    # 12 points = 2 minutes of 10 s ticks, deliberately not sorted in value.
    values = [50.0, 70.0, 60.0, 65.0, 55.0, 52.0, 10.0, 30.0, 20.0, 25.0, 15.0, 12.0]
    batch = _gauge_batch("t1", start, values)
    batch.events.append("t1", start, "c1", "node-1", "GPU-a", "gpu.xid", 12, "ERROR", 79, "fell off", {}, "ev-1")
    store.insert(batch, "seg-7")
    store.insert(batch, "seg-7")  # replay after a crash
    assert store.query("SELECT count() FROM samples").result_rows == [(12,)]
    assert store.query("SELECT count() FROM events").result_rows == [(1,)]
    minute = store.query(
        "SELECT toUnixTimestamp(ts), min(min), max(max), sum(sum) / sum(count), argMaxMerge(last), sum(count) "
        "FROM samples_1m GROUP BY ts ORDER BY ts"
    ).result_rows
    s0 = start // NS
    assert minute == [
        (s0, 50.0, 70.0, pytest.approx(sum(values[:6]) / 6), 52.0, 6),
        (s0 + 60, 10.0, 30.0, pytest.approx(sum(values[6:]) / 6), 12.0, 6),
    ]
    hour = store.query(
        "SELECT min(min), max(max), sum(sum) / sum(count), argMaxMerge(last), sum(count) FROM samples_1h"
    ).result_rows
    assert hour == [(10.0, 70.0, pytest.approx(sum(values) / 12), 12.0, 12)]
    # A different token is a different batch: stored again, rollups count it.
    store.insert(_gauge_batch("t1", start + 120 * NS, [5.0]), "seg-8")
    assert store.query("SELECT sum(count), min(min) FROM samples_1h").result_rows == [(13, 5.0)]


def test_rollups_after_merge(store: Store) -> None:
    start = _minute_start()
    store.insert(_gauge_batch("t1", start, [1.0, 2.0, 3.0]), "a")
    store.insert(_gauge_batch("t1", start + 30 * NS, [9.0, 0.5, 4.0]), "b")
    store.command("OPTIMIZE TABLE samples_1m FINAL")
    rows = store.query("SELECT min, max, sum, count, finalizeAggregation(last) FROM samples_1m FINAL").result_rows
    assert rows == [(0.5, 9.0, 19.5, 6, 4.0)]


def test_counter_keeps_start_and_kind(store: Store) -> None:
    start = _minute_start()
    batch = Batch()
    for i, (v, st) in enumerate([(100.0, start - 3600 * NS), (110.0, start - 3600 * NS), (3.0, start + 15 * NS)]):
        batch.samples.append("t1", "hw.gpu.energy", "c1", "n1", "GPU-a", {}, start + i * 10 * NS, v, st, SUM)
    store.insert(batch, "c")
    rows = store.query("SELECT value, toUnixTimestamp64Milli(start_ts), kind FROM samples ORDER BY ts").result_rows
    assert [r[1] for r in rows] == [(start - 3600 * NS) // 1_000_000] * 2 + [(start + 15 * NS) // 1_000_000]
    assert {r[2] for r in rows} == {"sum"}
    # The rollup keeps the newest start, so a reset inside the bucket is visible.
    assert store.query("SELECT toUnixTimestamp64Milli(max(start_ts)) FROM samples_1m").result_rows == [
        ((start + 15 * NS) // 1_000_000,)
    ]


def test_tenants_are_separate(store: Store) -> None:
    start = _minute_start()
    store.insert(_gauge_batch("a", start, [1.0]), "x")
    store.insert(_gauge_batch("b", start, [2.0, 3.0]), "y")
    rows = store.query("SELECT tenant, count(), uniqExact(series_id) FROM samples GROUP BY tenant ORDER BY tenant")
    assert rows.result_rows == [("a", 1, 1), ("b", 2, 1)]


def test_inventory_follows_gpu_across_nodes(store: Store) -> None:
    now = _minute_start()
    first = Batch()
    first.inventory.append(
        "t1", "GPU-uuid-1", "node-a", "c1", now, 0, "S123", "NVIDIA H100", "0000:17:00.0", "550.54", "96.00"
    )
    first.inventory.append(
        "t1", "GPU-uuid-1", "node-a", "c1", now + 60 * NS, 0, "S123", "NVIDIA H100", "0000:17:00.0", "550.54", "96.00"
    )
    store.insert(first, "inv-1")
    moved = Batch()  # the GPU was moved to another node, where it got index 3 and a newer driver
    moved.inventory.append(
        "t1", "GPU-uuid-1", "node-b", "c1", now + 3600 * NS, 3, "S123", "NVIDIA H100", "0000:9a:00.0", "560.28", "96.00"
    )
    store.insert(moved, "inv-2")
    store.insert(moved, "inv-2")
    rows = store.query(
        "SELECT node, gpu_index, driver, toUnixTimestamp(last_seen) FROM inventory FINAL "
        "WHERE gpu = 'GPU-uuid-1' ORDER BY last_seen"
    ).result_rows
    assert rows == [("node-a", 0, "550.54", now // NS + 60), ("node-b", 3, "560.28", now // NS + 3600)]
    spans = store.query(
        "SELECT node, toUnixTimestamp(min(first_seen)), toUnixTimestamp(max(last_seen)) FROM inventory_seen "
        "WHERE gpu = 'GPU-uuid-1' GROUP BY node ORDER BY 2"
    ).result_rows
    assert spans == [("node-a", now // NS, now // NS + 60), ("node-b", now // NS + 3600, now // NS + 3600)]


def test_placements_close_replaces_open(store: Store) -> None:
    start = _minute_start()
    opened = Batch()
    opened.placements.append("t1", "c1", "n1", "GPU-a", "pod-uid-1", start, 0, "train-0", "ml", "4711")
    store.insert(opened, "p1")
    closed = Batch()
    closed.placements.append("t1", "c1", "n1", "GPU-a", "pod-uid-1", start, start + 600 * NS, "train-0", "ml", "4711")
    store.insert(closed, "p2")
    rows = store.query("SELECT pod_uid, toUnixTimestamp(stop), job_id FROM placements FINAL").result_rows
    assert rows == [("pod-uid-1", (start + 600 * NS) // NS, "4711")]


def test_empty_batch_and_empty_token(store: Store) -> None:
    store.insert(Batch(), "nothing")  # no tables touched
    assert store.query("SELECT count() FROM samples").result_rows == [(0,)]
    with pytest.raises(ValueError, match="dedup_token"):
        store.insert(_gauge_batch("t", _minute_start(), [1.0]), "")


def test_malformed_batch_is_rejected_not_retried(store: Store) -> None:
    batch = _gauge_batch("t1", _minute_start(), [1.0, 2.0])
    batch.samples.value.pop()  # ragged columns
    with pytest.raises(StoreRejected, match=r"samples: .*different lengths"):
        store.insert(batch, "bad")
    batch = _gauge_batch("t1", _minute_start(), [1.0])
    batch.samples.value[0] = "hot"  # type: ignore[call-overload]
    with pytest.raises(StoreRejected, match="samples"):
        store.insert(batch, "bad2")
    assert store.query("SELECT count() FROM samples").result_rows == [(0,)]


def test_batch_extend_and_len() -> None:
    a = _gauge_batch("t", 0, [1.0, 2.0])
    b = _gauge_batch("t", 0, [3.0])
    b.events.append("t", 0, "c", "n", "g", "gpu.xid")
    a.extend(b)
    assert len(a) == 4 and len(a.samples) == 3 and a.samples.value == [1.0, 2.0, 3.0]


def test_series_id_is_stable_and_order_free() -> None:
    a = series_id("t", "m", "c", "n", "g", {"x": "1", "y": "2"})
    assert a == series_id("t", "m", "c", "n", "g", {"y": "2", "x": "1"})
    assert 0 <= a < 2**64
    assert a != series_id("t", "m", "c", "n", "g", {"x": "12"})
    # Field boundaries cannot be shifted into each other.
    assert series_id("ab", "c", "", "", "", {}) != series_id("a", "bc", "", "", "", {})


def test_series_id_pinned() -> None:
    # Changing the hash would split every stored series in two: this value must never change.
    assert series_id("default", "hw.gpu.temperature", "c1", "n1", "GPU-1", {"hw.sensor": "gpu"}) == PINNED_SID


PINNED_SID = 8974023957537935486


def test_unreachable_http_store_is_unavailable() -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:1"):
        Store(StorageSettings(dsn="http://127.0.0.1:1"))
    assert time.monotonic() - started < 30


def test_storage_doc_queries_run(store: Store) -> None:
    """The example queries in docs/STORAGE.md run against the real schema and find the data."""
    import re

    now = _minute_start()
    batch = Batch()
    for i in range(6):
        batch.samples.append(
            "t1",
            "hw.gpu.throttle.active",
            "c1",
            "n1",
            "GPU-a",
            {"hw.gpu.throttle.reason": "hw_slowdown"},
            now + i * 10 * NS,
            float(i % 2),
        )
        batch.samples.append(
            "t1",
            "hw.gpu.ecc.errors",
            "c1",
            "n1",
            "GPU-a",
            {"hw.gpu.ecc.type": "corrected", "hw.gpu.ecc.scope": "aggregate"},
            now + i * 10 * NS,
            float(i),
            1,
            SUM,
        )
    batch.inventory.append("t1", "GPU-a", "n1", "c1", now)
    batch.events.append("t1", now, "c1", "n1", "GPU-a", "gpu.xid", 17, "ERROR", 48, "", {}, "e1")
    store.insert(batch, "doc")
    doc = (Path(__file__).resolve().parent.parent / "docs" / "STORAGE.md").read_text()
    queries = re.findall(r"```sql\n(.*?)```", doc, re.S)
    assert len(queries) >= 3
    results = [store.query(q, parameters={"tenant": "t1", "gpu": "GPU-a"}).result_rows for q in queries]
    assert results[0][0][1:] == ("hw_slowdown", 1)
    assert results[1][0][1:4] == ("n1", "corrected", 5.0)
    assert results[2] == [("GPU-a", "n1", 48, 1, results[2][0][4], results[2][0][5])]
