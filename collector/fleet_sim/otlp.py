"""Node chunks → OTLP protobuf requests (opentelemetry-proto classes), the way an agent sends them.

One ResourceMetrics per node (resource attributes once), one Metric per name with all its points
(gauges as Gauge, counters as monotonic cumulative Sum keeping ``start_time_unix_nano``), events as
LogRecords. Each series' attributes are encoded once into a template data point that every point of
the series copies, which keeps generation near a million points per second per core.
"""

from __future__ import annotations

import gzip

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, NumberDataPoint
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


def encode(message: ExportMetricsServiceRequest | ExportLogsServiceRequest) -> bytes:
    """Serialized and gzip-compressed (level 1: the sender's CPU matters more than the bytes)."""
    return gzip.compress(message.SerializeToString(), compresslevel=1, mtime=0)
