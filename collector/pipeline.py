"""The writer thread: WAL records → converted rows → ``Store.insert``, then the WAL lets them go.

Requests converted on the receive path are handed over in memory (in WAL-id order, under the WAL
lock). When memory is short (store down, queue over its row cap) only a placeholder is queued and
the writer re-reads that record from the WAL. A batch covers a contiguous WAL id range
``first..last`` and is inserted with dedup token ``wal-<WAL identity>-<first>-<last>``; the range is written to the
WAL's ``inflight`` file first, so after a crash the very same range is replayed under the same token
and the store stores it once. Store outage → the same batch is retried with backoff while the WAL
grows; nothing is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from collector.convert import Converted, Converter, SampleArrays, decode_logs, decode_metrics
from collector.limits import SeriesBudget
from collector.spool.wal import KIND_METRICS, Wal
from collector.store.errors import StoreRejected
from collector.store.rows import Batch
from collector.telemetry import Telemetry

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Item:
    id: int
    converted: Converted | None  # None: read it back from the WAL


class Pipeline:
    def __init__(
        self,
        wal: Wal,
        store,  # collector.store.writer.Store (or anything with insert(batch, dedup_token))
        converter: Converter,
        budget: SeriesBudget,
        telemetry: Telemetry,
        batch_max_rows: int = 500_000,
        flush_interval_s: float = 1.0,
        max_queued_rows: int | None = None,
        backoff_max_s: float = 5.0,
    ) -> None:
        self.wal = wal
        self.store = store
        self.converter = converter
        self.budget = budget
        self.telemetry = telemetry
        self.batch_max_rows = batch_max_rows
        self.flush_interval_s = flush_interval_s
        self.max_queued_rows = max_queued_rows or 4 * batch_max_rows
        self.backoff_max_s = backoff_max_s
        self._queue: deque[_Item] = deque()
        self._queued_rows = 0
        self._cond = threading.Condition()
        self._stop_at: float | None = None  # monotonic deadline once draining
        self._thread: threading.Thread | None = None
        self.store_ok = True
        self.last_error = ""

    # ---------------------------------------------------------------- producer side

    def submit(self, rid: int, converted: Converted | None) -> None:
        """Called under the WAL lock right after record ``rid`` was written."""
        with self._cond:
            if converted is not None and self._queued_rows + converted.rows > self.max_queued_rows:
                converted = None
            if converted is not None:
                self._queued_rows += converted.rows
            self._queue.append(_Item(rid, converted))
            self._cond.notify()

    def enqueue_replay(self, ids: list[int]) -> None:
        with self._cond:
            for rid in ids:
                self._queue.append(_Item(rid, None))
            self._cond.notify()

    @property
    def backlog(self) -> int:
        return len(self._queue)

    # ---------------------------------------------------------------- writer thread

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fleetpulse-writer", daemon=True)
        self._thread.start()

    def stop(self, deadline_s: float) -> bool:
        """Drain what is durable to the store within ``deadline_s``; True when the queue emptied."""
        with self._cond:
            self._stop_at = time.monotonic() + deadline_s
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(deadline_s + 5)
        return not self._queue

    def _draining(self) -> bool:
        return self._stop_at is not None

    def _expired(self) -> bool:
        return self._stop_at is not None and time.monotonic() >= self._stop_at

    def _take_batch(self) -> list[_Item]:
        """Wait for durable items, then take up to batch_max_rows of them (or the replay range)."""
        inflight = self.wal.inflight
        with self._cond:
            first_seen = None
            while True:
                if self._expired():
                    return []
                ready = [i for i in self._take_view() if i.id <= self.wal.synced_id]
                if inflight is not None and ready:
                    # Replay after a crash: exactly the range that was in flight, same token.
                    if any(i.id >= inflight[1] for i in self._queue) or self._draining():
                        return self._pop(lambda it: it.id <= inflight[1])
                elif ready:
                    rows = sum(i.converted.rows if i.converted else self.batch_max_rows // 8 for i in ready)
                    now = time.monotonic()
                    first_seen = first_seen or now
                    if rows >= self.batch_max_rows or now - first_seen >= self.flush_interval_s or self._draining():
                        return self._pop_rows()
                elif self._draining():
                    return []
                self._cond.wait(0.05 if ready or self._queue else self.flush_interval_s)

    def _take_view(self) -> list[_Item]:
        return list(self._queue)

    def _pop(self, predicate) -> list[_Item]:
        out = []
        while self._queue and predicate(self._queue[0]) and self._queue[0].id <= self.wal.synced_id:
            item = self._queue.popleft()
            if item.converted is not None:
                self._queued_rows -= item.converted.rows
            out.append(item)
        return out

    def _pop_rows(self) -> list[_Item]:
        rows = 0
        out = []
        while self._queue and self._queue[0].id <= self.wal.synced_id and (not out or rows < self.batch_max_rows):
            item = self._queue.popleft()
            if item.converted is not None:
                self._queued_rows -= item.converted.rows
                rows += item.converted.rows
            else:
                rows += self.batch_max_rows // 8  # unknown until read back: keep replay batches moderate
            out.append(item)
        return out

    def _materialize(self, item: _Item) -> Converted:
        if item.converted is not None:
            return item.converted
        record = self.wal.read(item.id)
        message = record.message()
        if record.kind == KIND_METRICS:
            return self.converter.metrics(record.tenant, decode_metrics(message), record.received_ns)
        return self.converter.logs(record.tenant, decode_logs(message), record.received_ns)

    def build_batch(self, items: list[_Item]) -> Batch:
        batch = Batch()
        samples: list[SampleArrays] = []
        for item in items:
            converted = self._materialize(item)
            if converted.samples is not None and len(converted.samples):
                samples.append(converted.samples)
            batch.events.extend(converted.events)
            batch.inventory.extend(converted.inventory)
            batch.placements.extend(converted.placements)
        if samples:
            merged, folded = self.budget.apply(SampleArrays.concat(samples))
            if folded:
                merged.dirty = True  # overflow rewrote rows: build from the rewritten columns
            for tenant, count in folded.items():
                self.telemetry.series_overflow.labels(tenant).inc(count)
            for tenant in self.budget.tenants():
                self.telemetry.tenant_active_series.labels(tenant).set(self.budget.active(tenant))
            batch.arrow_samples = merged.to_arrow()
        return batch

    def _run(self) -> None:
        while True:
            items = self._take_batch()
            if not items:
                if self._draining():
                    return
                continue
            first, last = items[0].id, items[-1].id
            try:
                batch = self.build_batch(items)
            except Exception:
                log.exception("WAL records %d..%d cannot be converted; they stay in the WAL", first, last)
                self._requeue(items)
                if not self._sleep(self.backoff_max_s):
                    return
                continue
            token = f"wal-{self.wal.identity}-{first}-{last}"
            self.wal.set_inflight(first, last)
            if not self._insert(batch, token):
                self._requeue(items)
                return  # deadline passed: the records stay in the WAL for the next start
            self.wal.confirm(last)
            self.wal.inflight = None
            self.telemetry.rows_stored.inc(len(batch))
            self.telemetry.wal_bytes.set(self.wal.bytes)
            self.telemetry.wal_segments.set(self.wal.segments)

    def _requeue(self, items: list[_Item]) -> None:
        with self._cond:
            self._queue.extendleft(_Item(i.id, None) for i in reversed(items))

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless draining past the deadline; False when the writer must stop now."""
        with self._cond:
            if self._expired():
                return False
            limit = seconds if self._stop_at is None else min(seconds, max(0.0, self._stop_at - time.monotonic()))
            self._cond.wait(limit)
        return not self._expired()

    def _insert(self, batch: Batch, token: str) -> bool:
        backoff = 0.2
        while True:
            started = time.perf_counter()
            try:
                self.store.insert(batch, token)
                self.telemetry.flush_duration.observe(time.perf_counter() - started)
                if not self.store_ok:
                    log.info("store is back; WAL draining")
                self.store_ok = True
                self.last_error = ""
                return True
            except Exception as exc:  # StoreUnavailable, and anything unexpected: keep the data, retry
                self.telemetry.insert_errors.inc()
                self.store_ok = False
                self.last_error = str(exc)
                level = logging.ERROR if isinstance(exc, StoreRejected) else logging.WARNING
                log.log(
                    level,
                    "insert %s failed (%s); retrying in %.1f s, WAL holds %d bytes",
                    token,
                    exc,
                    backoff,
                    self.wal.bytes,
                )
            if not self._sleep(backoff):
                return False
            backoff = min(self.backoff_max_s, backoff * 2)
