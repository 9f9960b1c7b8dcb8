"""What a node chunk holds: series of (time, value) points with their attributes, and log events."""

from __future__ import annotations

from dataclasses import dataclass, field

Attrs = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Series:
    metric: str
    attributes: Attrs
    times: list[int]
    values: list[float]
    start_ns: int | None = None  # counters only


@dataclass(slots=True)
class LogEvent:
    name: str
    severity: int  # OTLP severity number
    severity_text: str
    body: str
    attributes: Attrs
    time_ns: int


@dataclass(slots=True)
class NodeChunk:
    node: int
    resource: dict[str, str]
    series: list[Series] = field(default_factory=list)
    events: list[LogEvent] = field(default_factory=list)

    @property
    def points(self) -> int:
        return sum(len(s.values) for s in self.series)
