"""Columnar rows on their way into the store, and the series id.

A :class:`Batch` holds one list per column for each table (``samples``, ``events``, ``inventory``,
``placements``), columns exactly as docs/ARCHITECTURE.md "Storage contract". Timestamps are int
nanoseconds since the Unix epoch (UTC); the store keeps milliseconds. Appending to plain lists is
the cheapest thing a decoder can do per point; the writer turns the lists into Arrow columns in bulk.

Within ``samples``, ``tenant, metric, cluster, node, gpu, attributes`` are functions of
``series_id`` (that is how :func:`series_id` is built): the writer converts those columns once per
distinct series, not once per row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

# Sample kinds (the `kind` column).
GAUGE = "gauge"
SUM = "sum"  # monotonic counter; start_ts marks its start, a change means a reset
SUM_NONMONOTONIC = "sum_nonmonotonic"
HISTOGRAM = "histogram"
KINDS = (GAUGE, SUM, SUM_NONMONOTONIC, HISTOGRAM)


_FRAGMENTS: dict[str, bytes] = {}  # string -> its encoded "<len>:<string>" (names, nodes, GPUs recur)
_MAX_FRAGMENTS = 500_000


def _fragment(part: str) -> bytes:
    fragment = _FRAGMENTS.get(part)
    if fragment is None:
        fragment = f"{len(part)}:{part}".encode()
        if len(_FRAGMENTS) < _MAX_FRAGMENTS:
            _FRAGMENTS[part] = fragment
    return fragment


def series_id(tenant: str, metric: str, cluster: str, node: str, gpu: str, attributes: dict[str, str]) -> int:
    """Stable unsigned 64-bit id of one series (blake2b of its identity; attribute order is irrelevant)."""
    prefix, suffix = series_id_parts(tenant, cluster, node, gpu, attributes)
    return series_id_of(prefix, metric, suffix)


def series_id_parts(tenant: str, cluster: str, node: str, gpu: str, attributes: dict[str, str]) -> tuple[bytes, bytes]:
    """The encoded identity around the metric name: many series share it (one per metric of a GPU)."""
    parts = [cluster, node, gpu]
    for key in sorted(attributes):
        parts.append(key)
        parts.append(attributes[key])
    # \x1f (unit separator) cannot be confused with content: attribute values have no control characters
    # after ingest validation, and even if they did the length prefix keeps the encoding unambiguous.
    return _fragment(tenant) + b"\x1f", b"\x1f" + b"\x1f".join([_fragment(p) for p in parts])


def series_id_of(prefix: bytes, metric: str, suffix: bytes) -> int:
    """:func:`series_id` from :func:`series_id_parts` and the metric name."""
    payload = prefix + _fragment(metric) + suffix
    return int.from_bytes(hashlib.blake2b(payload, digest_size=8).digest(), "little")


class _Columns:
    """Shared behaviour of the per-table column sets: length, extend, row append."""

    TABLE: ClassVar[str]

    def __len__(self) -> int:
        return len(getattr(self, fields(self)[0].name))  # type: ignore[arg-type]

    def extend(self, other: _Columns) -> None:
        if type(other) is not type(self):
            raise TypeError(f"cannot extend {type(self).__name__} with {type(other).__name__}")
        for f in fields(self):  # type: ignore[arg-type]
            getattr(self, f.name).extend(getattr(other, f.name))

    def check(self) -> None:
        """Raise ValueError naming the table and column when the columns have different lengths."""
        lengths = {f.name: len(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]
        if len(set(lengths.values())) > 1:
            raise ValueError(f"{self.TABLE}: columns have different lengths {lengths}")

    def rows(self) -> list[dict[str, Any]]:
        """Row dicts (for tests and debugging; the writer stays columnar)."""
        names = [f.name for f in fields(self)]  # type: ignore[arg-type]
        return [
            dict(zip(names, values, strict=True)) for values in zip(*(getattr(self, n) for n in names), strict=True)
        ]


@dataclass
class SampleColumns(_Columns):
    TABLE: ClassVar[str] = "samples"
    tenant: list[str] = field(default_factory=list)
    metric: list[str] = field(default_factory=list)
    cluster: list[str] = field(default_factory=list)
    node: list[str] = field(default_factory=list)
    gpu: list[str] = field(default_factory=list)
    attributes: list[dict[str, str]] = field(default_factory=list)
    series_id: list[int] = field(default_factory=list)
    ts: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    start_ts: list[int] = field(default_factory=list)  # 0 for gauges
    kind: list[str] = field(default_factory=list)

    def append(
        self,
        tenant: str,
        metric: str,
        cluster: str,
        node: str,
        gpu: str,
        attributes: dict[str, str],
        ts: int,
        value: float,
        start_ts: int = 0,
        kind: str = GAUGE,
        sid: int | None = None,
    ) -> None:
        """One point; pass ``sid`` when the caller already knows the series id (cache it per series)."""
        self.tenant.append(tenant)
        self.metric.append(metric)
        self.cluster.append(cluster)
        self.node.append(node)
        self.gpu.append(gpu)
        self.attributes.append(attributes)
        self.series_id.append(sid if sid is not None else series_id(tenant, metric, cluster, node, gpu, attributes))
        self.ts.append(ts)
        self.value.append(value)
        self.start_ts.append(start_ts)
        self.kind.append(kind)


@dataclass
class EventColumns(_Columns):
    TABLE: ClassVar[str] = "events"
    tenant: list[str] = field(default_factory=list)
    ts: list[int] = field(default_factory=list)
    cluster: list[str] = field(default_factory=list)
    node: list[str] = field(default_factory=list)
    gpu: list[str] = field(default_factory=list)
    event: list[str] = field(default_factory=list)
    severity: list[int] = field(default_factory=list)  # OTLP severity number 0..24
    severity_text: list[str] = field(default_factory=list)
    code: list[int] = field(default_factory=list)  # Xid code, else 0
    body: list[str] = field(default_factory=list)
    attributes: list[dict[str, str]] = field(default_factory=list)
    event_id: list[str] = field(default_factory=list)

    def append(
        self,
        tenant: str,
        ts: int,
        cluster: str,
        node: str,
        gpu: str,
        event: str,
        severity: int = 9,
        severity_text: str = "INFO",
        code: int = 0,
        body: str = "",
        attributes: dict[str, str] | None = None,
        event_id: str = "",
    ) -> None:
        self.tenant.append(tenant)
        self.ts.append(ts)
        self.cluster.append(cluster)
        self.node.append(node)
        self.gpu.append(gpu)
        self.event.append(event)
        self.severity.append(severity)
        self.severity_text.append(severity_text)
        self.code.append(code)
        self.body.append(body)
        self.attributes.append(attributes or {})
        self.event_id.append(event_id)


@dataclass
class InventoryColumns(_Columns):
    TABLE: ClassVar[str] = "inventory"
    tenant: list[str] = field(default_factory=list)
    gpu: list[str] = field(default_factory=list)  # UUID
    node: list[str] = field(default_factory=list)
    cluster: list[str] = field(default_factory=list)
    gpu_index: list[int] = field(default_factory=list)  # -1 when unknown
    serial: list[str] = field(default_factory=list)
    model: list[str] = field(default_factory=list)
    pci_bus_id: list[str] = field(default_factory=list)
    driver: list[str] = field(default_factory=list)
    vbios: list[str] = field(default_factory=list)
    first_seen: list[int] = field(default_factory=list)
    last_seen: list[int] = field(default_factory=list)

    def append(
        self,
        tenant: str,
        gpu: str,
        node: str,
        cluster: str,
        seen: int,
        gpu_index: int = -1,
        serial: str = "",
        model: str = "",
        pci_bus_id: str = "",
        driver: str = "",
        vbios: str = "",
    ) -> None:
        """One sighting of a GPU (from an ``hw.gpu.info`` point at time ``seen``)."""
        self.tenant.append(tenant)
        self.gpu.append(gpu)
        self.node.append(node)
        self.cluster.append(cluster)
        self.gpu_index.append(gpu_index)
        self.serial.append(serial)
        self.model.append(model)
        self.pci_bus_id.append(pci_bus_id)
        self.driver.append(driver)
        self.vbios.append(vbios)
        self.first_seen.append(seen)
        self.last_seen.append(seen)


@dataclass
class PlacementColumns(_Columns):
    TABLE: ClassVar[str] = "placements"
    tenant: list[str] = field(default_factory=list)
    cluster: list[str] = field(default_factory=list)
    node: list[str] = field(default_factory=list)
    gpu: list[str] = field(default_factory=list)
    pod_uid: list[str] = field(default_factory=list)
    start: list[int] = field(default_factory=list)
    stop: list[int] = field(default_factory=list)  # 0 while the placement is open
    pod_name: list[str] = field(default_factory=list)
    namespace: list[str] = field(default_factory=list)
    job_id: list[str] = field(default_factory=list)  # slurm.job.id, else ''
    updated: list[int] = field(default_factory=list)  # record time: the newest record of a placement wins

    def append(
        self,
        tenant: str,
        cluster: str,
        node: str,
        gpu: str,
        pod_uid: str,
        start: int,
        stop: int = 0,
        pod_name: str = "",
        namespace: str = "",
        job_id: str = "",
        updated: int | None = None,
    ) -> None:
        self.tenant.append(tenant)
        self.cluster.append(cluster)
        self.node.append(node)
        self.gpu.append(gpu)
        self.pod_uid.append(pod_uid)
        self.start.append(start)
        self.stop.append(stop)
        self.pod_name.append(pod_name)
        self.namespace.append(namespace)
        self.job_id.append(job_id)
        self.updated.append(updated if updated is not None else max(start, stop))


@dataclass
class Batch:
    """Rows for every table, flushed together under one dedup token."""

    samples: SampleColumns = field(default_factory=SampleColumns)
    events: EventColumns = field(default_factory=EventColumns)
    inventory: InventoryColumns = field(default_factory=InventoryColumns)
    placements: PlacementColumns = field(default_factory=PlacementColumns)
    # More samples, already as an Arrow table in the samples column layout (what the ingest pipeline
    # builds straight from its series registry); stored together with ``samples`` as one block.
    arrow_samples: Any = None

    def tables(self) -> list[_Columns]:
        return [self.samples, self.events, self.inventory, self.placements]

    def extend(self, other: Batch) -> None:
        for mine, theirs in zip(self.tables(), other.tables(), strict=True):
            mine.extend(theirs)
        if other.arrow_samples is not None:
            if self.arrow_samples is None:
                self.arrow_samples = other.arrow_samples
            else:
                import pyarrow as pa

                self.arrow_samples = pa.concat_tables([self.arrow_samples, other.arrow_samples])

    @property
    def sample_rows(self) -> int:
        return len(self.samples) + (0 if self.arrow_samples is None else self.arrow_samples.num_rows)

    def __len__(self) -> int:
        return sum(len(t) for t in self.tables()) + (0 if self.arrow_samples is None else self.arrow_samples.num_rows)
