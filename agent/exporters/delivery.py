"""In-order delivery of OTLP requests through the offline buffer.

One FIFO of requests (metrics and logs alike). While the buffer is empty and no retry is pending, a
live request is sent at once; the first retryable failure puts it, and everything after it, at the
buffer's tail. While the buffer holds anything, live requests join the tail too, and each cycle
sends at most ``drain_batches_per_cycle`` requests from the head, oldest first. Live data therefore
never overtakes buffered data, and a request leaves the FIFO only when the collector accepted it
(or refused it for good).

Outcomes (OTLP spec, DESIGN §8): ok → delivered (a partial_success's rejected points are counted,
not retried); retryable (gRPC UNAVAILABLE/RESOURCE_EXHAUSTED..., HTTP 429/502/503/504, connection
errors) → kept, next attempt after Retry-After/RetryInfo or an exponential backoff capped at
``retry_cap_s``; final (HTTP 400/413..., other gRPC codes) → dropped and counted.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

from agent.exporters.buffer import Batch, DiskBuffer, MemoryBuffer
from agent.exporters.otlp import SendResult

log = logging.getLogger(__name__)


class Delivery:
    def __init__(
        self,
        transport,
        buffer: DiskBuffer | MemoryBuffer,
        *,
        drain_batches_per_cycle: int = 20,
        retry_cap_s: float = 30.0,
        clock=time.monotonic,
    ) -> None:
        self.transport = transport
        self.buffer = buffer
        self.drain_batches_per_cycle = drain_batches_per_cycle
        self.retry_cap_s = retry_cap_s
        self.clock = clock
        self._next_attempt = 0.0
        self._failures = 0
        self.points_exported = 0
        self.points_dropped: Counter[str] = Counter()
        self.requests_sent = 0
        self._last_error = ""

    @property
    def backing_off(self) -> bool:
        return self.clock() < self._next_attempt

    def submit(self, batches: list[Batch]) -> None:
        """Hand over one cycle's live requests, in order."""
        pending: list[Batch] = []
        for batch in batches:
            if pending or len(self.buffer) or self.backing_off:
                pending.append(batch)
                continue
            if self._attempt(batch) == "retry":
                pending.append(batch)
        if pending:
            self.buffer.append(pending)

    def drain(self, max_batches: int | None = None) -> int:
        """Send up to ``max_batches`` buffered requests, oldest first; returns how many left the buffer."""
        limit = self.drain_batches_per_cycle if max_batches is None else max_batches
        done = 0
        while done < limit and not self.backing_off:
            batch = self.buffer.peek()
            if batch is None:
                break
            if self._attempt(batch) == "retry":
                break
            self.buffer.pop()
            done += 1
        return done

    def _attempt(self, batch: Batch) -> str:
        try:
            result: SendResult = self.transport.send(batch.signal, batch.payload)
        except Exception as exc:  # a transport bug must not lose the request
            log.exception("OTLP send raised; keeping the request for retry")
            result = SendResult("retry", detail=repr(exc))
        self.requests_sent += 1
        if result.outcome == "retry":
            delay = result.retry_after_s
            if delay is None:
                delay = min(self.retry_cap_s, 0.5 * 2**self._failures)
            self._failures += 1
            self._next_attempt = self.clock() + delay
            if result.detail != self._last_error:
                log.warning("OTLP export failed (%s); buffering, next attempt in %.1fs", result.detail, delay)
                self._last_error = result.detail
            return "retry"
        if self._failures:
            log.info("OTLP export recovered after %d failed attempts", self._failures)
        self._failures = 0
        self._last_error = ""
        if result.outcome == "final":
            self.points_dropped["rejected_by_collector"] += batch.points
            log.error("OTLP export refused for good (%s): %d points dropped", result.detail, batch.points)
            return "final"
        if result.rejected:
            self.points_dropped["partial_success_rejected"] += result.rejected
            log.warning("collector rejected %d of %d points: %s", result.rejected, batch.points, result.detail)
        self.points_exported += batch.points - result.rejected
        return "ok"

    def flush(self, deadline_s: float) -> bool:
        """At stop: drain the buffer until it is empty or ``deadline_s`` passes; True if empty."""
        end = self.clock() + deadline_s
        while len(self.buffer) and self.clock() < end:
            if self.backing_off:
                if self._next_attempt > end:
                    break
                time.sleep(max(0.0, min(self._next_attempt - self.clock(), 0.2)))
                continue
            self.drain(len(self.buffer))
        return not len(self.buffer)

    def close(self) -> None:
        self.buffer.close()
        self.transport.close()
