"""Writes the malformed-OTLP corpus (``*.bin``) next to this file; ``manifest.yaml`` says what each
file is and the collector's defined answer to it. Run from the repo root after changing a case:

    .venv/bin/python -m tests.reliability.corpus.make_corpus

Timestamps are the sentinel ``TS`` (a fixed64 on the wire, so its 8 little-endian bytes are unique in
a file); the test swaps in the current time before sending, so files never age out of
``limits.max_past_s`` or the store's TTL. Generated, not hand-edited: each file is deterministic.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

HERE = Path(__file__).resolve().parent
TS = 0x17F0_0000_0000_0A5A  # sentinel, replaced by now() at send time
TS_BYTES = struct.pack("<Q", TS)


def _kv(container, key: str, value) -> None:
    kv = container.add()
    kv.key = key
    if isinstance(value, float):
        kv.value.double_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    else:
        kv.value.string_value = value


def request(case: str, points: list[dict] | None = None, *, kind: str = "gauge") -> ExportMetricsServiceRequest:
    """One resource (cluster ``corpus-<case>``), one metric ``corpus.metric`` with the given points."""
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    _kv(rm.resource.attributes, "host.name", "corpus-node")
    _kv(rm.resource.attributes, "k8s.cluster.name", f"corpus-{case}")
    metric = rm.scope_metrics.add().metrics.add()
    metric.name = "corpus.metric"
    if kind == "sum":
        metric.sum.is_monotonic = True
        metric.sum.aggregation_temporality = 2
        container = metric.sum.data_points
    else:
        container = metric.gauge.data_points
    for p in points or [{}]:
        dp = container.add()
        dp.time_unix_nano = p.get("ts", TS)
        if kind == "sum":
            dp.start_time_unix_nano = TS - 10**9
        if isinstance(p.get("value", 1.0), int):
            dp.as_int = p["value"]
        else:
            dp.as_double = p.get("value", 1.0)
        _kv(dp.attributes, "hw.id", p.get("gpu", "GPU-0"))
        for k, v in p.get("attrs", {}).items():
            _kv(dp.attributes, k, v)
    return req


def nested(depth: int):
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    value = AnyValue(string_value="leaf")
    for _ in range(depth):
        outer = AnyValue()
        kv = outer.kvlist_value.values.add()
        kv.key = "n"
        kv.value.CopyFrom(value)
        value = outer
    return value


def build() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    good = request("good", [{"value": 1.0}, {"value": 2.0, "gpu": "GPU-1"}]).SerializeToString()
    files["truncated.bin"] = good[: len(good) // 2]
    files["wrong_content_type.bin"] = request("wrong-content-type").SerializeToString()
    files["empty.bin"] = b""
    files["garbage.bin"] = bytes((i * 37 + 11) % 256 for i in range(512))
    files["huge_attribute_value.bin"] = request(
        "huge-attribute-value", [{"attrs": {"note": "x" * 100_000}}, {"gpu": "GPU-1"}]
    ).SerializeToString()
    files["many_attributes.bin"] = request(
        "many-attributes", [{"attrs": {f"k{i}": "v" for i in range(1000)}}, {"gpu": "GPU-1"}]
    ).SerializeToString()
    deep = request("deep-point", [{}])
    kv = deep.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0].attributes.add()
    kv.key = "deep"
    kv.value.CopyFrom(nested(300))
    files["deep_nesting_point_attribute.bin"] = deep.SerializeToString()
    deep = request("deep-resource", [{}])
    kv = deep.resource_metrics[0].resource.attributes.add()
    kv.key = "deep"
    kv.value.CopyFrom(nested(300))
    files["deep_nesting_resource_attribute.bin"] = deep.SerializeToString()
    shallow = request("nested-ok", [{}])
    kv = shallow.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0].attributes.add()
    kv.key = "nested"
    kv.value.CopyFrom(nested(3))
    files["nesting_within_limits.bin"] = shallow.SerializeToString()
    files["invalid_utf8_point_attribute.bin"] = (
        request("utf8-point", [{"attrs": {"k": "MARKER"}}]).SerializeToString().replace(b"MARKER", b"MA\xff\xfeER")
    )
    files["invalid_utf8_metric_name.bin"] = (
        request("utf8-name").SerializeToString().replace(b"corpus.metric", b"corpus.m\xc3\x28tric")
    )
    files["invalid_utf8.json"] = (
        b'{"resourceMetrics":[{"resource":{"attributes":[{"key":"a","value":{"stringValue":"\xff\xfe"}}]}}]}'
    )
    files["nan_inf.bin"] = request(
        "nan-inf",
        [
            {"value": float("nan")},
            {"value": float("inf"), "gpu": "GPU-1"},
            {"value": float("-inf"), "gpu": "GPU-2"},
            {"value": 3.5, "gpu": "GPU-3"},
        ],
    ).SerializeToString()
    files["negative_counter.bin"] = request(
        "negative-counter", [{"value": -5.0}, {"value": -(2**40), "gpu": "GPU-1"}], kind="sum"
    ).SerializeToString()
    files["duplicate_points.bin"] = request(
        "duplicate-points", [{"value": 7.0}, {"value": 7.0}, {"value": 8.0}]
    ).SerializeToString()
    no_name = request("no-name", [{}, {"gpu": "GPU-1"}])
    no_name.resource_metrics[0].scope_metrics[0].metrics[0].name = ""
    files["missing_metric_name.bin"] = no_name.SerializeToString()
    files["timestamp_zero.bin"] = request("ts-zero", [{"ts": 0}, {"gpu": "GPU-1"}]).SerializeToString()
    files["extreme_int.bin"] = request(
        "extreme-int", [{"value": 2**63 - 1}, {"value": -(2**63), "gpu": "GPU-1"}]
    ).SerializeToString()
    empty_metric = request("no-data")
    empty_metric.resource_metrics[0].scope_metrics[0].metrics[0].ClearField("gauge")
    files["metric_without_data.bin"] = empty_metric.SerializeToString()
    files["bad_gzip.bin"] = b"\x1f\x8b\x08\x00not really gzip at all"
    files["truncated_gzip.bin"] = gzip.compress(good, mtime=0)[:-12]
    files["json_wrong_shape.json"] = b'{"resourceMetrics": 5}'
    logs = ExportLogsServiceRequest()
    rl = logs.resource_logs.add()
    _kv(rl.resource.attributes, "host.name", "corpus-node")
    _kv(rl.resource.attributes, "k8s.cluster.name", "corpus-huge-log-body")
    rec = rl.scope_logs.add().log_records.add()
    rec.time_unix_nano = TS
    rec.body.string_value = "B" * 200_000
    _kv(rec.attributes, "event.name", "corpus.log")
    files["huge_log_body.bin"] = logs.SerializeToString()
    files["truncated_logs.bin"] = logs.SerializeToString()[:200]
    return files


def main() -> None:
    for name, data in build().items():
        (HERE / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
