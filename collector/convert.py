"""OTLP export requests → columnar rows for the store (the ingest mapping in docs/COLLECTOR.md).

The hot path is metrics: one pass over the protobuf, a handful of attribute reads per data point,
and everything after that (validation, series lookup, column building) done on Arrow arrays.
The trick that keeps it cheap: requests are decoded with *shadow* message classes, wire-identical
to the OTLP ones except that a data point's ``attributes`` are declared ``repeated bytes``. A
point's attribute set then arrives as a tuple of raw encoded ``KeyValue`` messages: hashable,
usable directly as a series-cache key, and decoded into strings only the first time a series is
seen (the cache lives across requests, so a steady fleet decodes no attributes at all).

Validation here is deterministic given the receive time (stored with each WAL record), so a WAL
replay after a crash produces the same rows as the first attempt.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from collector.limits import Limits
from collector.store.rows import (
    EventColumns,
    InventoryColumns,
    PlacementColumns,
    SampleColumns,
    series_id_of,
    series_id_parts,
)

NS_PER_S = 1_000_000_000
NO_RECORDED_VALUE = 1  # DataPointFlags.FLAG_NO_RECORDED_VALUE

# Resource attributes that describe the sender, not the hardware: not stored per sample.
_SKIPPED_RESOURCE_PREFIXES = ("service.", "telemetry.")

# Rejection reasons (also the `reason` label of points_rejected_total).
R_ATTR_COUNT = "attribute_count"
R_ATTR_LENGTH = "attribute_length"
R_NON_FINITE = "non_finite"
R_TOO_OLD = "timestamp_too_old"
R_TOO_NEW = "timestamp_in_future"
R_NO_NAME = "missing_metric_name"
_REASON_CODES = {R_ATTR_COUNT: -2, R_ATTR_LENGTH: -3}
_CODE_REASONS = {v: k for k, v in _REASON_CODES.items()}


# Only these metrics carry the GPU in `hw.id`; other metrics keep `hw.id` as an attribute (host sensors).
GPU_METRIC_PREFIX = "hw.gpu."
_SERIES_STRINGS = ("tenant", "metric", "cluster", "node", "gpu", "kind")


class SampleArrays:
    """One request's (or batch's) samples, columnar.

    Normally compact: numpy ``ts``/``value``/``start_ts`` plus ``index``, each row's position in
    the :class:`SeriesRegistry` that holds the per-series columns (tenant, metric, ..., attributes,
    series_id). :meth:`to_arrow` builds the store's Arrow table from the registry's pre-encoded
    dictionaries with numpy takes only: no Python object per row. The per-row object columns
    (``tenant``, ``node``, ``attributes``, ``series_id``...) are materialized on first access
    (the series budget reads and may rewrite them); once rewritten, set ``dirty`` so the batch is
    built from those columns instead of the registry.
    """

    _LAZY = ("tenant", "metric", "cluster", "node", "gpu", "attributes", "series_id", "kind")
    # The lazy per-row columns are slots too: unset until first read (then __getattr__ fills them), so a
    # read after that is a plain attribute lookup (the series budget reads one per distinct series).
    __slots__ = ("dirty", "index", "registry", "start_ts", "ts", "value", *_LAZY)
    COLUMNS = (
        "tenant",
        "metric",
        "cluster",
        "node",
        "gpu",
        "attributes",
        "series_id",
        "ts",
        "value",
        "start_ts",
        "kind",
    )

    def __init__(
        self,
        ts: np.ndarray,
        value: np.ndarray,
        start_ts: np.ndarray,
        *,
        registry: SeriesRegistry | None = None,
        index: np.ndarray | None = None,
        columns: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.ts = ts  # int64 unix ns
        self.value = value  # float64
        self.start_ts = start_ts  # int64 unix ns; 0 = none
        self.registry = registry
        self.index = index
        for name, column in (columns or {}).items():
            setattr(self, name, column)
        self.dirty = registry is None

    def __getattr__(self, name: str) -> np.ndarray:
        # Only called for a lazy column not read yet (tenant, metric, ..., attributes dicts, series_id uint64).
        if name not in SampleArrays._LAZY or self.registry is None:
            raise AttributeError(name)
        column = self.registry.column(name)[self.index]
        setattr(self, name, column)
        return column

    def _column(self, name: str) -> np.ndarray:
        return getattr(self, name)

    def __len__(self) -> int:
        return len(self.ts)

    def _materialized(self) -> dict[str, np.ndarray]:
        return {
            name: self._column(name)
            for name in ("tenant", "metric", "cluster", "node", "gpu", "attributes", "series_id", "kind")
        }

    @classmethod
    def concat(cls, parts: list[SampleArrays]) -> SampleArrays:
        if len(parts) == 1:
            return parts[0]
        numeric = [np.concatenate([getattr(p, f) for p in parts]) for f in ("ts", "value", "start_ts")]
        registry = parts[0].registry
        if registry is not None and all(p.registry is registry and not p.dirty for p in parts):
            return cls(*numeric, registry=registry, index=np.concatenate([p.index for p in parts]))
        # Mixed registries (the cache was reset) or rewritten rows: fall back to object columns.
        columns = {name: np.concatenate([p._materialized()[name] for p in parts]) for name in parts[0]._materialized()}
        return cls(*numeric, columns=columns)

    def filter(self, mask: np.ndarray) -> SampleArrays:
        numeric = (self.ts[mask], self.value[mask], self.start_ts[mask])
        if not self.dirty:
            return SampleArrays(*numeric, registry=self.registry, index=self.index[mask])
        return SampleArrays(*numeric, columns={k: v[mask] for k, v in self._materialized().items()})

    def distinct_series(self) -> list[tuple[str, np.ndarray]]:
        """Each tenant of these rows with the sorted distinct series ids of its rows (no sort of the rows)."""
        if self.dirty:
            ids, first = np.unique(self.series_id, return_index=True)
            tenants = self.tenant[first]
            return [(tenant, ids[tenants == tenant]) for tenant in dict.fromkeys(tenants.tolist())]
        encoded = self.registry.encoded()
        present = np.zeros(len(encoded["series_id"]), dtype=bool)
        present[self.index] = True
        series = np.flatnonzero(present)
        ids = encoded["series_id"][series]
        codes = encoded["tenant"][0][series]
        names = self.registry.tenants()
        if len(codes) and (codes == codes[0]).all():
            return [(names[codes[0]], np.unique(ids))]
        return [(names[code], np.unique(ids[codes == code])) for code in np.unique(codes).tolist()]

    def to_columns(self) -> SampleColumns:
        return SampleColumns(**{f: getattr(self, f) for f in self.COLUMNS})

    def to_arrow(self) -> Any:
        """The rows as the store's ``samples`` Arrow table (column order of the table)."""
        if self.dirty:
            from collector.store.writer import samples_arrow

            return samples_arrow(self.to_columns())
        import pyarrow as pa

        encoded = self.registry.encoded()
        index = self.index
        columns: dict[str, Any] = {}
        for name in ("tenant", "metric", "cluster", "node", "gpu"):
            codes, dictionary = encoded[name]
            columns[name] = pa.DictionaryArray.from_arrays(pa.array(codes[index]), dictionary)
        codes, maps = encoded["attributes"]
        columns["attributes"] = maps.take(pa.array(codes[index]))
        columns["series_id"] = pa.array(encoded["series_id"][index], type=pa.uint64())
        columns["ts"] = pa.array(self.ts // 1_000_000, type=pa.timestamp("ms", tz="UTC"))
        columns["value"] = pa.array(self.value, type=pa.float64())
        columns["start_ts"] = pa.array(self.start_ts // 1_000_000, type=pa.timestamp("ms", tz="UTC"))
        codes, dictionary = encoded["kind"]
        columns["kind"] = pa.DictionaryArray.from_arrays(pa.array(codes[index]), dictionary)
        return pa.table(columns)


# ---------------------------------------------------------------- shadow message classes


def _shadow_classes() -> tuple[type, type, type]:
    pool = descriptor_pool.DescriptorPool()
    for module in (common_pb2, resource_pb2):
        fdp = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(fdp)
        pool.Add(fdp)
    fdp = descriptor_pb2.FileDescriptorProto()
    metrics_pb2.DESCRIPTOR.CopyToProto(fdp)
    for message in fdp.message_type:
        for f in message.field:
            # A data point's attributes, and the number points of gauges and sums, stay raw bytes.
            raw = (message.name.endswith("DataPoint") and f.name == "attributes") or (
                message.name in ("Gauge", "Sum") and f.name == "data_points"
            )
            if raw:
                f.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                f.ClearField("type_name")
    pool.Add(fdp)
    fdp = descriptor_pb2.FileDescriptorProto()
    metrics_service_pb2.DESCRIPTOR.CopyToProto(fdp)
    pool.Add(fdp)
    request = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest")
    )
    key_value = message_factory.GetMessageClass(pool.FindMessageTypeByName("opentelemetry.proto.common.v1.KeyValue"))
    number_point = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("opentelemetry.proto.metrics.v1.NumberDataPoint")
    )
    return request, key_value, number_point


ShadowMetricsRequest, ShadowKeyValue, ShadowNumberDataPoint = _shadow_classes()

# NumberDataPoint wire tags (field number << 3 | wire type) that the fast path reads in place.
_TAG_START = 0x11  # start_time_unix_nano, fixed64
_TAG_TIME = 0x19  # time_unix_nano, fixed64
_TAG_DOUBLE = 0x21  # as_double, double
_TAG_INT = 0x31  # as_int, sfixed64
_BYTE_OFFSETS = np.arange(8)


def _fixed64(buf: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The little-endian 8-byte words starting at each offset in ``at``."""
    return np.ascontiguousarray(buf[at[:, None] + _BYTE_OFFSETS]).view("<u8").ravel()


def split_number_points(points: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """Read the leading fixed-width fields of serialized NumberDataPoints in bulk.

    Encoders write fields in field-number order (every protobuf runtime does), so a point is
    ``[start_time] [time] [as_double | as_int] attributes... [flags]``, any leading field absent
    when zero. Returns start, time (uint64 as int64) and value per point, and where in each point
    the rest begins: that rest is then just the encoded attributes, a stable series key. A point
    laid out otherwise keeps its fields in the rest, and the caller decodes it whole.
    """
    return _split_number_points(points)[:4]


def _split_number_points(
    points: list[bytes],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int], NumberFields]:
    lengths = np.fromiter(map(len, points), dtype=np.int64, count=len(points))
    ends = np.cumsum(lengths)
    starts = ends - lengths
    buf = np.frombuffer(b"".join(points) + b"\0" * 9, dtype=np.uint8)  # padded: reads past the end stay inside
    pos = starts.copy()
    words = []
    offsets = []
    for tags in ((_TAG_START,), (_TAG_TIME,), (_TAG_DOUBLE, _TAG_INT)):
        tag = buf[pos]
        present = (pos + 9 <= ends) & (tag == tags[0] if len(tags) == 1 else (tag == tags[0]) | (tag == tags[1]))
        word = np.where(present, _fixed64(buf, pos + 1), 0)
        words.append((word, tag))
        offsets.append(np.where(present, pos + 1 - starts, -1))
        pos = pos + 9 * present
    start = words[0][0].view(np.int64)
    time_ns = words[1][0].view(np.int64)
    raw_value, value_tag = words[2]
    value_is_int = value_tag == _TAG_INT
    value = np.where(value_is_int, raw_value.view(np.int64).astype(np.float64), raw_value.view(np.float64))
    fields = NumberFields(lengths, offsets[0], offsets[1], offsets[2], value_is_int & (offsets[2] >= 0))
    return start, time_ns, value, (pos - starts).tolist(), fields


@dataclass(slots=True)
class NumberFields:
    """Where a request's gauge/sum points keep their fixed fields (offsets within each point, -1: absent)."""

    lengths: np.ndarray
    start_at: np.ndarray
    time_at: np.ndarray
    value_at: np.ndarray
    value_is_int: np.ndarray


@dataclass(slots=True)
class NumberRows:
    """How a request made only of plain gauge/sum points was converted: enough to convert the next
    request of the same layout without protobuf (collector/receiver/layouts.py)."""

    registry: SeriesRegistry
    index: np.ndarray  # registry index per point (negative: the attribute set was rejected)
    fields: NumberFields


def any_value_str(value: Any) -> str:
    """An OTLP AnyValue as the string stored in a Map(String, String)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return repr(value.double_value)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    if kind == "array_value":
        return json.dumps([any_value_str(v) for v in value.array_value.values])
    if kind == "kvlist_value":
        return json.dumps({kv.key: any_value_str(kv.value) for kv in value.kvlist_value.values})
    return ""


def attributes_dict(key_values: Any) -> dict[str, str]:
    return {kv.key: any_value_str(kv.value) for kv in key_values}


# ---------------------------------------------------------------- series registry


@dataclass(slots=True)
class ResourceInfo:
    cluster: str
    node: str
    extra: dict[str, str]  # stored in `attributes` of every point
    all_attributes: dict[str, str]


def resource_info(attrs: dict[str, str]) -> ResourceInfo:
    node = attrs.get("k8s.node.name") or attrs.get("host.name", "")
    cluster = attrs.get("k8s.cluster.name", "")
    extra = {
        k: v
        for k, v in attrs.items()
        if k not in ("k8s.node.name", "host.name", "k8s.cluster.name") and not k.startswith(_SKIPPED_RESOURCE_PREFIXES)
    }
    return ResourceInfo(cluster, node, extra, attrs)


class _Interned:
    """Distinct values of one per-series column, each with a small integer code."""

    __slots__ = ("codes", "values")

    def __init__(self) -> None:
        self.codes: dict[Any, int] = {}
        self.values: list[Any] = []

    def code(self, value: Any) -> int:
        code = self.codes.get(value)
        if code is None:
            code = self.codes[value] = len(self.values)
            self.values.append(value)
        return code


class SeriesRegistry:
    """Series key → index into per-series columns; shared across requests, reset when it grows too big.

    Every per-series string is interned (tenant, metric, cluster, node, gpu, kind, and the
    attribute set as a whole), so the writer builds Arrow dictionary columns from integer codes;
    there are far fewer distinct attribute sets than series (the GPU and node are dimensions).
    """

    def __init__(self) -> None:
        self.cache: dict[tuple, int] = {}  # distribution rows: (metric key, attributes, extra) -> index
        self.metric_caches: dict[tuple, dict[bytes | tuple, int]] = {}  # gauge/sum: metric key -> attributes -> index
        self.resource_ids: dict[tuple, int] = {}  # (tenant, resource attributes) -> small id for metric keys
        self._key_values: dict[bytes, tuple[str, str]] = {}  # raw KeyValue -> decoded (key, value)
        # (resource id, raw attributes, extra) -> what its series share (see add), or a rejection code
        self._attribute_entries: dict[tuple, tuple | int] = {}
        # the rest of a serialized number point -> its raw attributes (None: not attributes only)
        self.point_attributes: dict[bytes, tuple[bytes, ...] | None] = {}
        self.entries = 0
        self.attributes: list[dict[str, str]] = []
        self.series_id: list[int] = []
        self._strings = {name: _Interned() for name in _SERIES_STRINGS}
        self._string_codes: dict[str, list[int]] = {name: [] for name in _SERIES_STRINGS}
        self._attribute_sets = _Interned()
        self._attribute_codes: list[int] = []
        self._encoded: tuple[int, dict[str, Any]] | None = None
        self._columns: dict[str, tuple[int, np.ndarray]] = {}
        self.lock = threading.Lock()

    def add(
        self,
        key: tuple,
        metric_key: tuple,
        raw_attributes: tuple[bytes, ...],
        limits: Limits,
        extra: tuple[str, str] | None,
    ) -> int:
        """A new series: its index (or a negative rejection code); the caller caches it under ``key``.

        ``metric_key`` is (tenant, metric, kind, resource, resource id). Everything that does not
        depend on the metric (decoded attributes, limits, interned codes, the encoded series identity)
        is kept per attribute set, which every metric of a GPU shares.
        """
        tenant, metric, kind, resource, resource_id = metric_key
        gpu_metric = metric.startswith(GPU_METRIC_PREFIX)
        set_key = (resource_id, raw_attributes, extra, gpu_metric)
        entry = self._attribute_entries.get(set_key)
        if entry is None:
            entry = self._attribute_entry(tenant, resource, raw_attributes, limits, extra, gpu_metric)
            if len(self._attribute_entries) < 1_000_000:
                self._attribute_entries[set_key] = entry
        self.entries += 1
        if type(entry) is int:
            return entry
        codes, attributes, attribute_code, prefix, suffix = entry
        sid = series_id_of(prefix, metric, suffix)
        strings, string_codes = self._strings, self._string_codes
        with self.lock:
            index = len(self.series_id)
            string_codes["tenant"].append(codes[0])
            string_codes["cluster"].append(codes[1])
            string_codes["node"].append(codes[2])
            string_codes["gpu"].append(codes[3])
            string_codes["metric"].append(strings["metric"].code(metric))
            string_codes["kind"].append(strings["kind"].code(kind))
            self._attribute_codes.append(attribute_code)
            self.attributes.append(attributes)
            self.series_id.append(sid)
        return index

    def _attribute_entry(
        self,
        tenant: str,
        resource: ResourceInfo,
        raw_attributes: tuple[bytes, ...],
        limits: Limits,
        extra: tuple[str, str] | None,
        gpu_metric: bool,
    ) -> tuple | int:
        """Per attribute set: interned codes, the attributes dict and series-id parts, or a rejection code.

        ``hw.id`` names the GPU only on ``hw.gpu.*`` metrics; elsewhere (host temperature sensors such
        as ``hwmon1/temp1``) it is an ordinary attribute and the ``gpu`` column stays empty.
        """
        point_attrs = {}
        decoded = self._key_values
        for raw in raw_attributes:
            pair = decoded.get(raw)
            if pair is None:
                kv = ShadowKeyValue.FromString(raw)
                pair = (kv.key, any_value_str(kv.value))
                if len(decoded) < 1_000_000:  # the same few key/value pairs recur across series
                    decoded[raw] = pair
            point_attrs[pair[0]] = pair[1]
        gpu = point_attrs.pop("hw.id", "") if gpu_metric else ""
        attrs = {**resource.extra, **point_attrs}
        if extra is not None:
            attrs[extra[0]] = extra[1]
        code = limits.check_attributes(attrs, gpu)
        if code is not None:
            return _REASON_CODES[code]
        items = tuple(sorted(attrs.items()))
        strings = self._strings
        with self.lock:
            codes = (
                strings["tenant"].code(tenant),
                strings["cluster"].code(resource.cluster),
                strings["node"].code(resource.node),
                strings["gpu"].code(gpu),
            )
            attribute_code = self._attribute_sets.code(items)
        # One dict per attribute set, shared by its series (nothing mutates it; overflow replaces it).
        prefix, suffix = series_id_parts(tenant, resource.cluster, resource.node, gpu, attrs)
        return codes, dict(items), attribute_code, prefix, suffix

    def __len__(self) -> int:
        return self.entries

    def tenants(self) -> list[str]:
        """Tenant names by their code (the ``tenant`` codes of :meth:`encoded`)."""
        with self.lock:
            return list(self._strings["tenant"].values)

    def column(self, name: str) -> np.ndarray:
        """One per-series column as a numpy array (object for strings and dicts, uint64 for series_id)."""
        with self.lock:
            n = len(self.series_id)
            cached = self._columns.get(name)
            if cached is not None and cached[0] == n:
                return cached[1]
            if name == "series_id":
                column = np.array(self.series_id, dtype=np.uint64)
            else:
                if name == "attributes":
                    column = np.empty(n, dtype=object)
                    column[:] = self.attributes
                else:
                    distinct = self._strings[name].values
                    values = np.empty(len(distinct), dtype=object)
                    values[:] = distinct
                    column = values[np.array(self._string_codes[name], dtype=np.int64)]
            self._columns[name] = (n, column)
            return column

    def encoded(self) -> dict[str, Any]:
        """Per-series codes (numpy) and their Arrow dictionaries; rebuilt only after new series arrived."""
        import pyarrow as pa

        with self.lock:
            n = len(self.series_id)
            if self._encoded is not None and self._encoded[0] == n:
                return self._encoded[1]
            out: dict[str, Any] = {}
            for name in _SERIES_STRINGS:
                out[name] = (
                    np.array(self._string_codes[name], dtype=np.int32),
                    pa.array(self._strings[name].values, type=pa.string()),
                )
            maps = pa.array(
                [list(items) for items in self._attribute_sets.values], type=pa.map_(pa.string(), pa.string())
            )
            out["attributes"] = (np.array(self._attribute_codes, dtype=np.int32), maps)
            out["series_id"] = np.array(self.series_id, dtype=np.uint64)
            self._encoded = (n, out)
            return out


# ---------------------------------------------------------------- results


@dataclass
class Converted:
    """One request's rows, ready for the store, and what was rejected (for partial_success)."""

    tenant: str
    samples: SampleArrays | None = None
    events: EventColumns = field(default_factory=EventColumns)
    inventory: InventoryColumns = field(default_factory=InventoryColumns)
    placements: PlacementColumns = field(default_factory=PlacementColumns)
    received: int = 0  # data points or log records in the request
    rejected: Counter = field(default_factory=Counter)  # reason -> count
    number_rows: NumberRows | None = None  # set when the request held nothing but plain gauge/sum points

    @property
    def accepted(self) -> int:
        return self.received - sum(self.rejected.values())

    @property
    def rows(self) -> int:
        return (0 if self.samples is None else len(self.samples)) + len(self.events)

    def error_message(self) -> str:
        if not self.rejected:
            return ""
        parts = ", ".join(f"{n} {reason}" for reason, n in sorted(self.rejected.items()))
        return f"rejected {sum(self.rejected.values())} of {self.received}: {parts}"


_UNSEEN = object()


def _attributes_only(key: bytes) -> tuple[bytes, ...] | None:
    """The raw attributes when ``key`` (the rest of a serialized point) holds nothing but attributes."""
    attrs = tuple(ShadowNumberDataPoint.FromString(key).attributes)
    if ShadowNumberDataPoint(attributes=attrs).SerializeToString() != key:
        return None  # flags, exemplars, fields out of order or unknown: not a series key
    return attrs


def count_metric_points(request: Any) -> int:
    """Data points in a (shadow or official) metrics request, without touching the points."""
    total = 0
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                which = m.WhichOneof("data")
                if which is not None:
                    total += len(getattr(m, which).data_points)
    return total


def count_log_records(request: Any) -> int:
    return sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)


# ---------------------------------------------------------------- metrics


class Converter:
    """Turns decoded OTLP requests into :class:`Converted` rows; holds the cross-request series cache."""

    def __init__(self, limits: Limits, max_cached_series: int = 4_000_000) -> None:
        self.limits = limits
        self.max_cached_series = max_cached_series
        self._registry = SeriesRegistry()

    # -- metrics

    def metrics(self, tenant: str, request: Any, received_ns: int) -> Converted:
        """``request`` is a :data:`ShadowMetricsRequest` (see :func:`decode_metrics`)."""
        reg = self._registry
        if len(reg) > self.max_cached_series:
            reg = self._registry = SeriesRegistry()
        metric_caches = reg.metric_caches
        sidx: list[int] = []
        tsl: list[int] = []
        stl: list[int] = []
        vals: list[float] = []
        silent: list[int] = []  # rows flagged "no recorded value"
        out = Converted(tenant)
        # Gauge and sum points, still serialized: read in bulk after the walk (see split_number_points).
        number_points: list[bytes] = []
        segments: list[tuple[dict, tuple, tuple, int]] = []
        plain = True  # only gauge/sum points (no distributions, inventory or nameless metrics)
        for rm in request.resource_metrics:
            resource = resource_info(attributes_dict(rm.resource.attributes))
            rkey = tuple(sorted(resource.all_attributes.items()))
            # One small int per (tenant, resource): the per-metric cache key then hashes cheaply.
            resource_id = reg.resource_ids.get((tenant, rkey))
            if resource_id is None:
                resource_id = reg.resource_ids[(tenant, rkey)] = len(reg.resource_ids)
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    which = m.WhichOneof("data")
                    if which is None:
                        plain = False
                        continue
                    data = getattr(m, which)
                    name = m.name
                    if not name:
                        plain = False
                        out.rejected[R_NO_NAME] += len(data.data_points)
                        out.received += len(data.data_points)
                        continue
                    if which in ("gauge", "sum"):
                        if which == "gauge":
                            kind = "gauge"
                        else:
                            kind = "sum" if data.is_monotonic else "sum_nonmonotonic"
                            if data.aggregation_temporality == metrics_pb2.AGGREGATION_TEMPORALITY_DELTA:
                                kind += "_delta"
                        mk = (resource_id, name, kind)
                        series = metric_caches.get(mk)
                        if series is None:
                            series = metric_caches[mk] = {}
                        count = len(data.data_points)
                        number_points.extend(data.data_points)
                        segments.append((series, mk, (tenant, name, kind, resource, resource_id), count))
                        if name == "hw.gpu.info":
                            plain = False
                            points = [ShadowNumberDataPoint.FromString(raw) for raw in data.data_points]
                            self._inventory(out.inventory, tenant, resource, points)
                    else:
                        plain = False
                        self._distribution(
                            reg, tenant, name, which, data, resource, rkey, resource_id, sidx, tsl, stl, vals, silent
                        )
        bulk = None
        if number_points:
            bulk = self._number_points(out, reg, number_points, segments, len(sidx), silent)
        if not plain:
            out.number_rows = None
        self._finish_samples(out, reg, sidx, tsl, stl, vals, silent, received_ns, bulk)
        return out

    @property
    def registry(self) -> SeriesRegistry:
        return self._registry

    def number_rows(
        self,
        tenant: str,
        rows: NumberRows,
        time_ns: np.ndarray,
        start: np.ndarray,
        value: np.ndarray,
        received_ns: int,
    ) -> Converted:
        """A request laid out like the one ``rows`` came from, with these times and values: validated
        exactly as :meth:`metrics` validates (limits, non-finite values, the time window)."""
        out = Converted(tenant)
        self._finish_samples(out, rows.registry, [], [], [], [], [], received_ns, (rows.index, time_ns, start, value))
        return out

    def _number_points(
        self,
        out: Converted,
        reg: SeriesRegistry,
        points: list[bytes],
        segments: list[tuple[dict, tuple, tuple, int]],
        base: int,
        silent: list[int],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Gauge and sum points: fixed fields read in bulk, the series found by the attributes' raw bytes.

        A point whose rest is not only attributes (flags, exemplars, unusual field order) is decoded
        whole by protobuf instead; such keys are never cached.
        """
        start, time_ns, value, rest_at, fields = _split_number_points(points)
        keys = [raw[at:] for raw, at in zip(points, rest_at, strict=True)]
        index: list[int] = []
        slow: list[int] = []
        limits = self.limits
        point_attributes = reg.point_attributes
        first = 0
        for series, mk, metric_key, count in segments:
            get = series.get
            found = [get(key) for key in keys[first : first + count]]
            if None not in found:
                index += found
                first += count
                continue
            for i, s in enumerate(found):
                if s is None:
                    key = keys[first + i]
                    attrs = point_attributes.get(key, _UNSEEN)
                    if attrs is _UNSEEN:
                        attrs = _attributes_only(key)
                        if len(point_attributes) < 1_000_000:  # a GPU's attributes recur in every metric
                            point_attributes[key] = attrs
                    if attrs is None:
                        found[i] = -1
                        slow.append(first + i)
                        continue
                    s = found[i] = series[key] = reg.add((mk, key), metric_key, attrs, limits, None)
            index += found
            first += count
        if slow:
            start, time_ns, value = start.copy(), time_ns.copy(), value.copy()
            row_series = [segment for segment in segments for _ in range(segment[3])]
            for row in slow:
                dp = ShadowNumberDataPoint.FromString(points[row])
                series, mk, metric_key, _ = row_series[row]
                attrs = tuple(dp.attributes)
                s = series.get(attrs)
                if s is None:
                    s = series[attrs] = reg.add((mk, attrs), metric_key, attrs, limits, None)
                index[row] = s
                start.view(np.uint64)[row] = dp.start_time_unix_nano
                time_ns.view(np.uint64)[row] = dp.time_unix_nano
                value[row] = dp.as_double or dp.as_int
                if dp.flags & NO_RECORDED_VALUE:
                    silent.append(base + row)
        rows = np.array(index, dtype=np.int64)
        if not slow:
            out.number_rows = NumberRows(reg, rows, fields)
        return rows, time_ns, start, value

    def _distribution(
        self,
        reg: SeriesRegistry,
        tenant: str,
        name: str,
        which: str,
        data: Any,
        resource: ResourceInfo,
        rkey: tuple,
        resource_id: int,
        sidx: list[int],
        tsl: list[int],
        stl: list[int],
        vals: list[float],
        silent: list[int],
    ) -> None:
        """Histogram, exponential histogram and summary points → `_count`, `_sum`, `_bucket`/quantile rows."""
        kind = "histogram" if which != "summary" else "summary"
        if getattr(data, "aggregation_temporality", 0) == metrics_pb2.AGGREGATION_TEMPORALITY_DELTA:
            kind += "_delta"

        def emit(metric: str, attrs: tuple[bytes, ...], extra: tuple[str, str] | None, dp: Any, value: float) -> None:
            metric_key = (tenant, metric, kind, resource, resource_id)
            key = ((tenant, metric, kind, rkey), attrs, extra)
            s = reg.cache.get(key)
            if s is None:
                s = reg.cache[key] = reg.add(key, metric_key, attrs, self.limits, extra)
            sidx.append(s)
            tsl.append(dp.time_unix_nano)
            stl.append(dp.start_time_unix_nano)
            vals.append(value)
            if dp.flags & NO_RECORDED_VALUE:
                silent.append(len(sidx) - 1)

        for dp in data.data_points:
            attrs = tuple(dp.attributes)
            emit(f"{name}_count", attrs, None, dp, float(dp.count))
            if which == "summary" or dp.HasField("sum"):
                emit(f"{name}_sum", attrs, None, dp, dp.sum)
            if which == "histogram":
                cumulative = 0
                bounds = list(dp.explicit_bounds)
                for i, count in enumerate(dp.bucket_counts):
                    cumulative += count
                    le = repr(bounds[i]) if i < len(bounds) else "+Inf"
                    emit(f"{name}_bucket", attrs, ("le", le), dp, float(cumulative))
            elif which == "summary":
                for q in dp.quantile_values:
                    emit(name, attrs, ("quantile", repr(q.quantile)), dp, q.value)

    def _inventory(self, rows: InventoryColumns, tenant: str, resource: ResourceInfo, points: Any) -> None:
        for dp in points:
            attrs = {}
            for raw in dp.attributes:
                kv = ShadowKeyValue.FromString(raw)
                attrs[kv.key] = any_value_str(kv.value)
            gpu = attrs.get("hw.id", "")
            if not gpu:
                continue
            try:
                index = int(attrs.get("gpu.index", "-1"))
            except ValueError:
                index = -1
            rows.append(
                tenant,
                gpu,
                resource.node,
                resource.cluster,
                dp.time_unix_nano,
                gpu_index=index if -32768 <= index < 32768 else -1,
                serial=attrs.get("hw.serial_number", ""),
                model=attrs.get("hw.model", ""),
                pci_bus_id=attrs.get("hw.pci.bus_id", ""),
                driver=attrs.get("hw.gpu.driver_version", ""),
                vbios=attrs.get("hw.gpu.vbios_version", ""),
            )

    def _finish_samples(
        self,
        out: Converted,
        reg: SeriesRegistry,
        sidx: list[int],
        tsl: list[int],
        stl: list[int],
        vals: list[float],
        silent_rows: list[int],
        received_ns: int,
        bulk: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Validate the rows (distribution rows from the lists, then gauge/sum rows in ``bulk``)."""
        sid = np.array(sidx, dtype=np.int64)
        ts = np.array(tsl, dtype=np.uint64).view(np.int64)
        value = np.array(vals, dtype=np.float64)
        start = np.array(stl, dtype=np.uint64).view(np.int64)
        if bulk is not None:
            sid, ts, start, value = (np.concatenate(pair) for pair in zip((sid, ts, start, value), bulk, strict=True))
        n = len(sid)
        out.received += n
        if n == 0:
            return
        limits = self.limits
        keep = sid >= 0
        if not keep.all():
            for code, reason in _CODE_REASONS.items():
                bad = int(np.count_nonzero(sid == code))
                if bad:
                    out.rejected[reason] += bad
        with np.errstate(invalid="ignore"):
            checks = (
                (R_NON_FINITE, ~np.isfinite(value)),
                (R_TOO_OLD, ts < received_ns - limits.max_past_s * NS_PER_S),
                (R_TOO_NEW, ts > received_ns + limits.max_future_s * NS_PER_S),
            )
        for reason, bad in checks:
            bad &= keep
            count = int(np.count_nonzero(bad))
            if count:
                out.rejected[reason] += count
                keep &= ~bad
        # Points flagged "no recorded value" are staleness markers, not data: neither stored nor errors.
        silent = np.zeros(n, dtype=bool)
        silent[silent_rows] = True
        silent &= keep
        dropped_silently = int(np.count_nonzero(silent))
        if dropped_silently:
            keep &= ~silent
            out.received -= dropped_silently
        if not keep.all():
            sid, ts, value, start = sid[keep], ts[keep], value[keep], start[keep]
        if len(sid) == 0:
            return
        out.samples = SampleArrays(ts, value, start, registry=reg, index=sid)

    # -- logs

    def logs(self, tenant: str, request: logs_service_pb2.ExportLogsServiceRequest, received_ns: int) -> Converted:
        out = Converted(tenant)
        limits = self.limits
        oldest = received_ns - limits.max_past_s * NS_PER_S
        newest = received_ns + limits.max_future_s * NS_PER_S
        for rl in request.resource_logs:
            resource = resource_info(attributes_dict(rl.resource.attributes))
            for sl in rl.scope_logs:
                for record in sl.log_records:
                    out.received += 1
                    ts = record.time_unix_nano or record.observed_time_unix_nano
                    if ts < oldest:
                        out.rejected[R_TOO_OLD] += 1
                        continue
                    if ts > newest:
                        out.rejected[R_TOO_NEW] += 1
                        continue
                    attrs = attributes_dict(record.attributes)
                    gpu = attrs.pop("hw.id", "")
                    all_attrs = {**resource.extra, **attrs}
                    code = limits.check_attributes(all_attrs, gpu)
                    if code is not None:
                        out.rejected[code] += 1
                        continue
                    event = attrs.get("event.name") or record.event_name or "log"
                    body = any_value_str(record.body) if record.HasField("body") else ""
                    if len(body) > limits.max_body_length:
                        body = body[: limits.max_body_length]
                    try:
                        xid = int(attrs.get("hw.gpu.xid", "0"))
                    except ValueError:
                        xid = 0
                    event_id = attrs.get("event.id") or _event_id(tenant, ts, resource, gpu, event, body, all_attrs)
                    if event == "placement":
                        _placement(out.placements, tenant, resource, gpu, attrs, ts)
                    out.events.append(
                        tenant,
                        ts,
                        resource.cluster,
                        resource.node,
                        gpu,
                        event,
                        severity=min(max(int(record.severity_number), 0), 255),
                        severity_text=record.severity_text,
                        code=xid if -(2**31) <= xid < 2**31 else 0,
                        body=body,
                        attributes=all_attrs,
                        event_id=event_id,
                    )
        return out


def _event_id(tenant: str, ts: int, resource: ResourceInfo, gpu: str, event: str, body: str, attrs: dict) -> str:
    h = hashlib.blake2b(digest_size=12)
    for part in (tenant, str(ts), resource.cluster, resource.node, gpu, event, body, json.dumps(attrs, sort_keys=True)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _placement_ts(value: str | None, default: int) -> int:
    """``placement.start``/``.end``: unix ns, unix seconds or RFC 3339; missing → default."""
    if not value:
        return default
    if value.isdigit():
        number_int = int(value)
        return number_int if number_int > 10**15 else number_int * NS_PER_S
    try:
        number = float(value)
    except ValueError:
        from datetime import datetime

        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * NS_PER_S)
        except ValueError:
            return default
    if not math.isfinite(number):
        return default
    return int(number) if number > 1e15 else int(number * NS_PER_S)


def _placement(
    rows: PlacementColumns, tenant: str, resource: ResourceInfo, gpu: str, attrs: dict[str, str], ts: int
) -> None:
    rows.append(
        tenant,
        resource.cluster,
        resource.node,
        gpu,
        attrs.get("k8s.pod.uid", ""),
        _placement_ts(attrs.get("placement.start"), ts),
        _placement_ts(attrs.get("placement.end"), 0),
        pod_name=attrs.get("k8s.pod.name", ""),
        namespace=attrs.get("k8s.namespace.name", ""),
        job_id=attrs.get("slurm.job.id", ""),
        updated=ts,
    )


# ---------------------------------------------------------------- decoding


class DecodeError(ValueError):
    """The body is not a valid OTLP request of the expected type."""


def decode_metrics(body: bytes) -> Any:
    try:
        return ShadowMetricsRequest.FromString(body)
    except Exception as exc:  # protobuf raises DecodeError, but upb can raise others on garbage
        raise DecodeError(f"not a valid OTLP ExportMetricsServiceRequest protobuf: {exc}") from None


def decode_logs(body: bytes) -> logs_service_pb2.ExportLogsServiceRequest:
    try:
        return logs_service_pb2.ExportLogsServiceRequest.FromString(body)
    except Exception as exc:
        raise DecodeError(f"not a valid OTLP ExportLogsServiceRequest protobuf: {exc}") from None


def json_to_protobuf(body: bytes, signal: str) -> bytes:
    """OTLP/JSON → protobuf bytes (what the WAL stores)."""
    from google.protobuf import json_format

    cls = (
        metrics_service_pb2.ExportMetricsServiceRequest
        if signal == "metrics"
        else logs_service_pb2.ExportLogsServiceRequest
    )
    try:
        message = json_format.Parse(body, cls(), ignore_unknown_fields=True)
    except (json_format.ParseError, UnicodeDecodeError, ValueError) as exc:
        raise DecodeError(f"not a valid OTLP/JSON {cls.__name__}: {exc}") from None
    return message.SerializeToString()
