"""Validation limits, the per-tenant rate limit and the per-tenant active-series budget.

Outcomes (docs/COLLECTOR.md "Limits"): request too big → 413; too many points → 413; a point with
too many / too long attributes, a non-finite value or a timestamp outside the window → dropped and
reported in ``partial_success``; rate over budget → 429 / RESOURCE_EXHAUSTED with Retry-After; a new
series beyond the tenant's active-series budget → its points fold into one overflow series per
metric (attributes ``{"otel.metric.overflow": "true"}``, node and gpu empty) and are counted.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from collector.config import LimitsConfig

if TYPE_CHECKING:
    import numpy as np

    from collector.convert import SampleArrays

OVERFLOW_ATTRIBUTES = {"otel.metric.overflow": "true"}
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


_DEFAULTS = LimitsConfig()  # one set of defaults: collector.yaml's


@dataclass(slots=True)
class Limits:
    max_request_bytes: int = _DEFAULTS.max_request_bytes
    max_points_per_request: int = _DEFAULTS.max_points_per_request
    max_attributes: int = _DEFAULTS.max_attributes
    max_attribute_length: int = _DEFAULTS.max_attribute_length
    max_past_s: int = _DEFAULTS.max_past_s
    max_future_s: int = _DEFAULTS.max_future_s
    max_body_length: int = 16384  # log bodies are truncated beyond this (not rejected)

    @classmethod
    def from_config(cls, config: LimitsConfig) -> Limits:
        return cls(
            max_request_bytes=config.max_request_bytes,
            max_points_per_request=config.max_points_per_request,
            max_attributes=config.max_attributes,
            max_attribute_length=config.max_attribute_length,
            max_past_s=config.max_past_s,
            max_future_s=config.max_future_s,
        )

    def check_attributes(self, attributes: dict[str, str], gpu: str) -> str | None:
        """The rejection reason for this attribute set, or None when it is within limits."""
        if len(attributes) > self.max_attributes:
            return "attribute_count"
        limit = self.max_attribute_length
        if len(gpu) > limit:
            return "attribute_length"
        for key, value in attributes.items():
            if len(key) > limit or len(value) > limit:
                return "attribute_length"
        return None


class RateLimiter:
    """Points per second per tenant (token bucket, one second of burst; 0 = unlimited).

    A request is admitted while the bucket is positive and may take it negative, so a request
    larger than one second's budget still gets through, and the debt delays the next ones.
    """

    def __init__(self, points_per_s: float, clock=time.monotonic) -> None:
        self.rate = float(points_per_s)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, tenant: str, points: int) -> float:
        """0 when admitted, else the seconds to wait before retrying (for Retry-After)."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(tenant, (self.rate, now))
            tokens = min(self.rate, tokens + (now - last) * self.rate)
            if tokens <= 0:
                self._buckets[tenant] = (tokens, now)
                return max(0.001, -tokens / self.rate)
            self._buckets[tenant] = (tokens - points, now)
            return 0.0


class _TenantSeries:
    """One tenant's active series: ids sorted ascending, with when each last received a point."""

    __slots__ = ("ids", "seen")

    def __init__(self) -> None:
        import numpy as np

        self.ids = np.empty(0, dtype=np.uint64)
        self.seen = np.empty(0, dtype=np.float64)


class SeriesBudget:
    """Per-tenant active-series budget; a series is active if it received a point within ``window_s``.

    Vectorised over a batch's distinct series (numpy ``searchsorted`` into each tenant's sorted ids):
    every series in the batch is marked seen first, then, only if the new ones do not fit, series
    idle for longer than the window are let go, and the new ones are admitted in id order while room
    remains; the rest fold into their metric's overflow series.
    """

    def __init__(self, budget: int, window_s: float = 3600.0, clock=time.monotonic) -> None:
        self.budget = budget
        self.window_s = window_s
        self._clock = clock
        self._active: dict[str, _TenantSeries] = {}
        self._overflow_ids: dict[tuple[str, str, str], int] = {}

    def active(self, tenant: str) -> int:
        state = self._active.get(tenant)
        return 0 if state is None else len(state.ids)

    def tenants(self) -> list[str]:
        return list(self._active)

    def _admit(self, tenant: str, ids: np.ndarray, now: float) -> np.ndarray:
        """Mark ``ids`` (sorted, distinct) seen; returns those over the budget."""
        import numpy as np

        state = self._active.get(tenant)
        if state is None:
            state = self._active[tenant] = _TenantSeries()
        at = np.searchsorted(state.ids, ids)
        known = at < len(state.ids)
        known[known] = state.ids[at[known]] == ids[known]
        state.seen[at[known]] = now
        new = ids[~known]
        if not len(new):
            return new
        if len(state.ids) + len(new) > self.budget:
            keep = state.seen >= now - self.window_s
            if not keep.all():
                state.ids, state.seen = state.ids[keep], state.seen[keep]
        room = max(0, self.budget - len(state.ids))
        admitted, over = new[:room], new[room:]
        if len(admitted):
            where = np.searchsorted(state.ids, admitted)
            state.ids = np.insert(state.ids, where, admitted)
            state.seen = np.insert(state.seen, where, now)
        return over

    def apply(self, samples: SampleArrays) -> tuple[SampleArrays, dict[str, int]]:
        """Fold points of series beyond each tenant's budget into overflow series.

        Returns the samples (the same object when nothing overflowed) and folded point counts per tenant.
        """
        import numpy as np

        now = self._clock()
        over_ids = [self._admit(tenant, ids, now) for tenant, ids in samples.distinct_series()]
        over_ids = [ids for ids in over_ids if len(ids)]
        if not over_ids:
            return samples, {}
        mask = np.isin(samples.series_id, np.concatenate(over_ids))
        rows = np.flatnonzero(mask)
        tenants = samples.tenant[rows]
        folded = dict(Counter(tenants.tolist()))
        keys = zip(tenants.tolist(), samples.metric[rows].tolist(), samples.cluster[rows].tolist(), strict=True)
        samples.series_id[rows] = np.array([self._overflow_id(*key) for key in keys], dtype=np.uint64)
        samples.node[rows] = ""
        samples.gpu[rows] = ""
        overflow = np.empty(len(rows), dtype=object)
        overflow.fill(dict(OVERFLOW_ATTRIBUTES))
        samples.attributes[rows] = overflow
        return samples, folded

    def _overflow_id(self, tenant: str, metric: str, cluster: str) -> int:
        key = (tenant, metric, cluster)
        sid = self._overflow_ids.get(key)
        if sid is None:
            from collector.store.rows import series_id

            sid = self._overflow_ids[key] = series_id(tenant, metric, cluster, "", "", OVERFLOW_ATTRIBUTES)
        return sid


def _malloc_trim() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def process_rss_bytes() -> int:
    """Resident set size of this process (Linux /proc/self/statm; 0 where unavailable)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return 0


class MemoryGuard:
    """Load shedding before memory runs out (the OTel Collector's memory_limiter idea).

    Two bounds, both answered with 503 / UNAVAILABLE + Retry-After (retryable, nothing is lost):
    - ``max_inflight_bytes``: request bytes being decoded/converted/written at once; a request that
      would take the total past it is refused (one request alone is always admitted, so a single
      request up to ``max_request_bytes`` never starves);
    - ``max_memory_bytes`` (0 = off): new requests are refused while the process RSS is at or above
      ``soft_fraction`` of it, leaving the rest as headroom for requests already admitted.
    RSS is read at most every ``check_interval_s`` (it is a syscall and a parse).
    """

    retry_after_s = 1.0

    def __init__(
        self,
        max_inflight_bytes: int,
        max_memory_bytes: int = 0,
        soft_fraction: float = 0.8,
        check_interval_s: float = 0.05,
        rss=process_rss_bytes,
        clock=time.monotonic,
    ) -> None:
        self.max_inflight_bytes = max_inflight_bytes
        self.max_memory_bytes = max_memory_bytes
        self.soft_limit = int(max_memory_bytes * soft_fraction)
        self.check_interval_s = check_interval_s
        self._rss = rss
        self._clock = clock
        self._lock = threading.Lock()
        self.inflight_bytes = 0
        self._rss_value = 0
        self._rss_at = float("-inf")
        self._reclaimed_at = float("-inf")

    def rss(self) -> int:
        now = self._clock()
        if now - self._rss_at >= self.check_interval_s:
            self._rss_value = self._rss()
            self._rss_at = now
        return self._rss_value

    def memory_refusal(self) -> str | None:
        """Why a new request must wait (memory over the soft limit), else None."""
        if self.max_memory_bytes <= 0:
            return None
        rss = self.rss()
        if rss >= self.soft_limit and self._clock() - self._reclaimed_at >= 1.0:
            # Over the soft limit: free what is garbage and hand freed heap back to the OS (glibc keeps
            # it otherwise, and RSS would stay high after the load that caused it is gone).
            self._reclaimed_at = self._clock()
            gc.collect()
            _malloc_trim()
            self._rss_at = float("-inf")
            rss = self.rss()
        if rss >= self.soft_limit:
            return (
                f"collector memory {rss // 2**20} MiB is over {self.soft_limit // 2**20} MiB "
                f"({self.soft_limit / self.max_memory_bytes:.0%} of limits.max_memory_bytes); retry later"
            )
        return None

    def acquire(self, size: int) -> str | None:
        """Reserve ``size`` bytes for one request; None when admitted (call :meth:`release`), else why not."""
        refusal = self.memory_refusal()
        if refusal:
            return refusal
        with self._lock:
            if self.inflight_bytes and self.inflight_bytes + size > self.max_inflight_bytes:
                return (
                    f"{self.inflight_bytes} request bytes in flight, limits.max_inflight_bytes="
                    f"{self.max_inflight_bytes}; retry later"
                )
            self.inflight_bytes += size
        return None

    def release(self, size: int) -> None:
        with self._lock:
            self.inflight_bytes -= size
