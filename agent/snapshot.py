"""The agent's in-memory data model: what one sampling cycle produced.

Sources write into a :class:`SnapshotBuilder`; exporters (JSON lines, OTLP, Prometheus) read the
finished :class:`Snapshot`. Points carry only the metric name: type, unit and description come from
the catalog, so every exporter renders the same metric the same way.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from agent.catalog import CATALOG

Attributes = tuple[tuple[str, str], ...]


def freeze_attributes(attributes: Mapping[str, object] | Iterable[tuple[str, object]] | None) -> Attributes:
    """Attributes as a sorted tuple of string pairs: hashable, and equal for equal label sets."""
    if not attributes:
        return ()
    items = attributes.items() if isinstance(attributes, Mapping) else attributes
    return tuple(sorted((str(k), str(v)) for k, v in items))


class Severity(IntEnum):
    """OTLP log severity numbers (the first of each range)."""

    DEBUG = 5
    INFO = 9
    WARN = 13
    ERROR = 17
    FATAL = 21


@dataclass(slots=True, frozen=True)
class Point:
    name: str
    value: float
    attributes: Attributes
    time_unix_nano: int
    # Set for cumulative counters: when the counter last started from zero (driver load, boot).
    start_time_unix_nano: int | None = None


@dataclass(slots=True, frozen=True)
class Event:
    """A discrete happening (Xid, ECC increment, throttle onset...), exported as an OTLP log record."""

    name: str
    severity: Severity
    body: str
    attributes: Attributes
    time_unix_nano: int
    event_id: str = ""


@dataclass(slots=True)
class Snapshot:
    time_unix_nano: int
    resource: dict[str, str]
    points: list[Point] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    # Per-source problems this cycle, e.g. {("host", "unreadable_file"): 3}.
    source_errors: Counter[tuple[str, str]] = field(default_factory=Counter)

    def by_name(self, name: str) -> list[Point]:
        return [p for p in self.points if p.name == name]

    def value(self, name: str, **attributes: str) -> float:
        """The single point of ``name`` whose attributes include ``attributes`` (test and report helper)."""
        wanted = {k.replace("__", "."): str(v) for k, v in attributes.items()}
        matches = [p for p in self.by_name(name) if wanted.items() <= dict(p.attributes).items()]
        if len(matches) != 1:
            raise LookupError(f"{name} {wanted}: expected exactly one point, found {len(matches)}")
        return matches[0].value


class SnapshotBuilder:
    """Collects one cycle's points and events; every point is stamped with the cycle's aligned tick."""

    def __init__(self, resource: Mapping[str, str], tick_unix_nano: int | None = None) -> None:
        self.snapshot = Snapshot(
            time_unix_nano=tick_unix_nano if tick_unix_nano is not None else time.time_ns(),
            resource=dict(resource),
        )

    @property
    def time_unix_nano(self) -> int:
        return self.snapshot.time_unix_nano

    def add(
        self,
        name: str,
        value: float,
        attributes: Mapping[str, object] | None = None,
        *,
        start_time_unix_nano: int | None = None,
    ) -> None:
        if name not in CATALOG:
            raise KeyError(f"metric {name!r} is not in the catalog (agent/catalog.py)")
        value = float(value)
        if not math.isfinite(value):
            # NaN/Inf never leave the node: a sensor glitch must not poison min/max rollups.
            self.count_error(CATALOG[name].source, "non_finite_value")
            return
        self.snapshot.points.append(
            Point(name, value, freeze_attributes(attributes), self.snapshot.time_unix_nano, start_time_unix_nano)
        )

    def event(
        self,
        name: str,
        severity: Severity,
        body: str,
        attributes: Mapping[str, object] | None = None,
        *,
        time_unix_nano: int | None = None,
        event_id: str = "",
    ) -> Event:
        ev = Event(
            name,
            severity,
            body,
            freeze_attributes(attributes),
            time_unix_nano if time_unix_nano is not None else self.snapshot.time_unix_nano,
            event_id,
        )
        self.snapshot.events.append(ev)
        return ev

    def count_error(self, source: str, reason: str, n: int = 1) -> None:
        self.snapshot.source_errors[(source, reason)] += n

    def build(self) -> Snapshot:
        return self.snapshot


def align_to_tick(now_unix_nano: int, interval_seconds: float) -> int:
    """Floor a timestamp to the collection tick, so series compress well (DESIGN §7)."""
    step = int(interval_seconds * 1_000_000_000)
    return now_unix_nano - (now_unix_nano % step) if step > 0 else now_unix_nano
