"""Cardinality control (DESIGN §4): allow-list, value length cap, per-metric series budget.

- Attribute keys a metric's catalog entry does not allow are dropped and counted per metric
  (``fleetpulse.agent.attributes.dropped``).
- Values longer than ``max_value_length`` are cut to it (counted as truncations).
- Each metric may hold at most its series budget of distinct attribute sets (catalog
  ``series_budget``, overridden by ``cardinality.default_series_budget`` and
  ``cardinality.series_budget[metric]``). A point of a new series past the budget folds into the
  metric's overflow series ``{otel.metric.overflow="true"}`` (the OpenTelemetry SDK's convention);
  points folded in one cycle are merged (counters summed, gauges keep the last value) and counted
  (``fleetpulse.agent.cardinality.overflow``). Series unseen for ``stale_after_s`` free their slot.
- Diagnostic-burst points (attribute ``fleetpulse.burst.event_id``) are allowed that extra key and
  are exempt from the budget, but each burst may hold at most ``burst_series_cap`` series per metric.

Redaction runs after the allow-list and before the budget, so the budget counts what leaves the node.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from agent.catalog import CATALOG
from agent.config import CardinalityConfig
from agent.processing.redaction import Redactor
from agent.snapshot import Attributes, Point

BURST_KEY = "fleetpulse.burst.event_id"
OVERFLOW_ATTRIBUTES: Attributes = (("otel.metric.overflow", "true"),)


class CardinalityPolicy:
    def __init__(
        self,
        config: CardinalityConfig,
        redactor: Redactor | None = None,
        *,
        stale_after_s: float = 3600.0,
        burst_series_cap: int = 64,
    ) -> None:
        self.config = config
        self.redactor = redactor
        self.stale_after_ns = int(stale_after_s * 1e9)
        self.burst_series_cap = burst_series_cap
        self._allowed = {name: frozenset(spec.attributes) for name, spec in CATALOG.items()}
        self._series: dict[str, dict[Attributes, int]] = {}
        self._burst_series: dict[tuple[str, str], set[Attributes]] = {}
        self._last_sweep_ns = 0
        # Cumulative counts since start, read by self-telemetry.
        self.attributes_dropped: Counter[str] = Counter()
        self.overflow: Counter[str] = Counter()
        self.values_truncated = 0
        self.burst_points_capped = 0

    def budget(self, name: str) -> int:
        if name in self.config.series_budget:
            return self.config.series_budget[name]
        if self.config.default_series_budget is not None:
            return self.config.default_series_budget
        return CATALOG[name].series_budget

    def active_series(self, name: str) -> int:
        return len(self._series.get(name, ()))

    def _clean(self, point: Point) -> tuple[Attributes, str | None]:
        allowed = self._allowed[point.name]
        cap = self.config.max_value_length
        burst_id = None
        out = []
        for key, value in point.attributes:
            if key == BURST_KEY:
                burst_id = value
            elif key not in allowed:
                self.attributes_dropped[point.name] += 1
                continue
            if len(value) > cap:
                value = value[:cap]
                self.values_truncated += 1
            out.append((key, value))
        attrs = tuple(out)
        if self.redactor is not None:
            attrs = self.redactor.attributes(attrs)
        return attrs, burst_id

    def process(self, points: list[Point]) -> list[Point]:
        """The points as they may leave the node, in input order (overflow merged at first position)."""
        out: list[Point | None] = []
        overflow_at: dict[tuple[str, int], int] = {}
        now = 0
        for point in points:
            now = max(now, point.time_unix_nano)
            attrs, burst_id = self._clean(point)
            if burst_id is not None:
                seen = self._burst_series.setdefault((point.name, burst_id), set())
                if attrs not in seen and len(seen) >= self.burst_series_cap:
                    self.burst_points_capped += 1
                    continue
                seen.add(attrs)
                out.append(replace(point, attributes=attrs) if attrs != point.attributes else point)
                continue
            series = self._series.setdefault(point.name, {})
            if attrs in series or len(series) < self.budget(point.name):
                series[attrs] = point.time_unix_nano
                out.append(replace(point, attributes=attrs) if attrs != point.attributes else point)
                continue
            self.overflow[point.name] += 1
            key = (point.name, point.time_unix_nano)
            folded = replace(point, attributes=OVERFLOW_ATTRIBUTES)
            if key in overflow_at:
                prev = out[overflow_at[key]]
                assert prev is not None
                if CATALOG[point.name].is_counter:
                    starts = [t for t in (prev.start_time_unix_nano, point.start_time_unix_nano) if t]
                    folded = replace(
                        folded, value=prev.value + point.value, start_time_unix_nano=min(starts, default=None)
                    )
                out[overflow_at[key]] = folded
            else:
                overflow_at[key] = len(out)
                out.append(folded)
        self._sweep(now)
        return [p for p in out if p is not None]

    def end_burst(self, event_id: str) -> None:
        for key in [k for k in self._burst_series if k[1] == event_id]:
            del self._burst_series[key]

    def _sweep(self, now_ns: int) -> None:
        if now_ns - self._last_sweep_ns < min(self.stale_after_ns, 60_000_000_000):
            return
        self._last_sweep_ns = now_ns
        horizon = now_ns - self.stale_after_ns
        for series in self._series.values():
            for attrs in [a for a, seen in series.items() if seen < horizon]:
                del series[attrs]
