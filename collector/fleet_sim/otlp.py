"""Node chunks → OTLP protobuf requests (opentelemetry-proto classes), the way an agent sends them.

One ResourceMetrics per node (resource attributes once), one Metric per name with all its points
(gauges as Gauge, counters as monotonic cumulative Sum keeping ``start_time_unix_nano``), events as
LogRecords. The small messages (resource, scope, metric header, a series' attributes) are built with
the opentelemetry-proto classes; the data points of a series are laid out with numpy in the bytes
protobuf itself writes (fields in number order: start time, time, as_double, attributes), so a
request costs a few hundred nanoseconds per point and decodes to the same message.
"""

from __future__ import annotations

import gzip
import struct

import numpy as np
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric, NumberDataPoint
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from agent.catalog import CATALOG
from collector.fleet_sim.series import Attrs, NodeChunk

SCOPE = InstrumentationScope(name="fleetpulse.fleet_sim", version="1")


def _kv(attrs: Attrs | dict[str, str]) -> list[KeyValue]:
    items = attrs.items() if isinstance(attrs, dict) else attrs
    return [KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in items]


class TemplateCache:
    """Serialized NumberDataPoint carrying a series' attributes (and counter start), reused per point."""

    def __init__(self) -> None:
        self._cache: dict[tuple[Attrs, int | None], bytes] = {}

    def get(self, attrs: Attrs, start_ns: int | None) -> bytes:
        key = (attrs, start_ns)
        blob = self._cache.get(key)
        if blob is None:
            dp = NumberDataPoint(attributes=_kv(attrs))
            if start_ns is not None:
                dp.start_time_unix_nano = start_ns
            blob = dp.SerializeToString()
            if len(self._cache) > 200_000:
                self._cache.clear()
            self._cache[key] = blob
        return blob


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field (``tag`` is the key byte: field number << 3 | 2)."""
    return bytes((tag,)) + _varint(len(payload)) + payload


_SUM_TAIL = bytes((0x10, AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE, 0x18, 1))
_SCOPE = _field(0x0A, SCOPE.SerializeToString())


class _PointLayout:
    """The serialized ``data_points`` entries of one series, built for all its points at once."""

    def __init__(self, attributes: bytes, start_ns: int | None) -> None:
        start = b"\x11" + struct.pack("<Q", start_ns) if start_ns is not None else b""
        body_len = len(start) + 18 + len(attributes)
        self.head = b"\x0a" + _varint(body_len) + start
        self.tail = attributes
        self.width = len(self.head) + 18 + len(attributes)
        row = np.frombuffer(self.head + b"\x19" + bytes(8) + b"\x21" + bytes(8) + attributes, dtype=np.uint8)
        self.row = row
        self.ts_at = len(self.head) + 1
        self.value_at = self.ts_at + 9

    def encode(self, times: list[int], values: list[float]) -> bytes:
        n = len(times)
        rows = np.empty((n, self.width), dtype=np.uint8)
        rows[:] = self.row
        rows[:, self.ts_at : self.ts_at + 8] = np.asarray(times, dtype="<u8").view(np.uint8).reshape(n, 8)
        rows[:, self.value_at : self.value_at + 8] = np.asarray(values, dtype="<f8").view(np.uint8).reshape(n, 8)
        return rows.tobytes()


class LayoutCache:
    """Point layouts per (series attributes, counter start), reused across requests."""

    def __init__(self) -> None:
        self._cache: dict[tuple[Attrs, int | None], _PointLayout] = {}
        self._attributes: dict[Attrs, bytes] = {}
        self._metrics: dict[str, tuple[bytes, bool]] = {}

    def layout(self, attrs: Attrs, start_ns: int | None) -> _PointLayout:
        key = (attrs, start_ns)
        layout = self._cache.get(key)
        if layout is None:
            encoded = self._attributes.get(attrs)
            if encoded is None:
                encoded = NumberDataPoint(attributes=_kv(attrs)).SerializeToString()
                self._attributes[attrs] = encoded
            if len(self._cache) > 200_000:
                self._cache.clear()
                self._attributes.clear()
            layout = self._cache[key] = _PointLayout(encoded, start_ns)
        return layout

    def metric_head(self, name: str) -> tuple[bytes, bool]:
        """(serialized name/description/unit, is a counter) of a catalog metric."""
        head = self._metrics.get(name)
        if head is None:
            spec = CATALOG[name]
            encoded = Metric(name=spec.name, unit=spec.unit, description=spec.description).SerializeToString()
            head = self._metrics[name] = (encoded, spec.is_counter)
        return head


def metrics_request_bytes(chunks: list[NodeChunk], layouts: LayoutCache) -> bytes:
    """The serialized ExportMetricsServiceRequest for ``chunks`` (what ``metrics_request`` builds)."""
    out = []
    for chunk in chunks:
        if not chunk.series:
            continue
        by_name: dict[str, list[bytes]] = {}
        for series in chunk.series:
            points = layouts.layout(series.attributes, series.start_ns).encode(series.times, series.values)
            by_name.setdefault(series.metric, []).append(points)
        metrics = []
        for name, parts in by_name.items():
            head, is_counter = layouts.metric_head(name)
            points = b"".join(parts)
            data = _field(0x3A, points + _SUM_TAIL) if is_counter else _field(0x2A, points)
            metrics.append(_field(0x12, head + data))
        resource = _field(0x0A, Resource(attributes=_kv(chunk.resource)).SerializeToString())
        scope_metrics = _field(0x12, _SCOPE + b"".join(metrics))
        out.append(_field(0x0A, resource + scope_metrics))
    return b"".join(out)


def metrics_request(chunks: list[NodeChunk], templates: TemplateCache) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    for chunk in chunks:
        if not chunk.series:
            continue
        rm = req.resource_metrics.add()
        rm.resource.CopyFrom(Resource(attributes=_kv(chunk.resource)))
        sm = rm.scope_metrics.add()
        sm.scope.CopyFrom(SCOPE)
        by_name = {}
        for series in chunk.series:
            points = by_name.get(series.metric)
            if points is None:
                spec = CATALOG[series.metric]
                metric = sm.metrics.add(name=spec.name, unit=spec.unit, description=spec.description)
                if spec.is_counter:
                    metric.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
                    metric.sum.is_monotonic = True
                    points = metric.sum.data_points
                else:
                    points = metric.gauge.data_points
                by_name[series.metric] = points
            template = templates.get(series.attributes, series.start_ns)
            for ts, value in zip(series.times, series.values, strict=True):
                dp = points.add()
                dp.MergeFromString(template)
                dp.time_unix_nano = ts
                dp.as_double = value
    return req


def logs_request(chunks: list[NodeChunk]) -> ExportLogsServiceRequest | None:
    req = ExportLogsServiceRequest()
    for chunk in chunks:
        if not chunk.events:
            continue
        rl = req.resource_logs.add()
        rl.resource.CopyFrom(Resource(attributes=_kv(chunk.resource)))
        sl = rl.scope_logs.add()
        sl.scope.CopyFrom(SCOPE)
        for ev in chunk.events:
            attrs = [
                KeyValue(key=k, value=AnyValue(int_value=int(v)))
                if k == "hw.gpu.xid"
                else KeyValue(key=k, value=AnyValue(string_value=v))
                for k, v in ev.attributes
            ]
            sl.log_records.add(
                time_unix_nano=ev.time_ns,
                observed_time_unix_nano=ev.time_ns,
                severity_number=ev.severity,
                severity_text=ev.severity_text,
                body=AnyValue(string_value=ev.body),
                attributes=attrs,
            )
    return req if req.resource_logs else None


def encode(message: ExportMetricsServiceRequest | ExportLogsServiceRequest | bytes) -> bytes:
    """Serialized and gzip-compressed (level 1: the sender's CPU matters more than the bytes)."""
    raw = message if isinstance(message, bytes) else message.SerializeToString()
    return gzip.compress(raw, compresslevel=1, mtime=0)
