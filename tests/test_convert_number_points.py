"""The converter's bulk read of gauge/sum points agrees with protobuf decoding on every layout.

Gauge and sum points are read in place (collector/convert.py ``split_number_points``): leading
fixed-width fields in bulk, the rest used as the series key. These tests build points the way
other encoders might (zero fields omitted, as_int, flags, exemplars, attributes first, unknown
fields) and check the rows against what the official protobuf classes decode.
"""

from __future__ import annotations

import math
import time

import pytest
from google.protobuf.internal.encoder import _VarintBytes
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import NumberDataPoint

from collector.convert import Converter, decode_metrics, split_number_points
from collector.limits import Limits

NOW = time.time_ns() // 10**9 * 10**9


def _kv(key: str, value: str) -> bytes:
    kv = KeyValue(key=key)
    kv.value.string_value = value
    return kv.SerializeToString()


def _field(number: int, wire: int, payload: bytes) -> bytes:
    return _VarintBytes(number << 3 | wire) + payload


def _len_field(number: int, payload: bytes) -> bytes:
    return _field(number, 2, _VarintBytes(len(payload)) + payload)


def _request(points: list[bytes], kind: str = "gauge") -> bytes:
    """A metrics request, built at the wire level, whose one metric carries ``points`` exactly as given."""
    data = b"".join(_len_field(1, p) for p in points)  # Gauge/Sum.data_points
    if kind == "gauge":
        metric = _len_field(1, b"hw.gpu.test") + _len_field(5, data)
    else:  # cumulative (2), monotonic
        metric = _len_field(1, b"hw.gpu.test") + _len_field(7, data + _field(2, 0, b"\x02") + _field(3, 0, b"\x01"))
    resource = _len_field(1, _kv("host.name", "node-1"))
    resource_metrics = _len_field(1, resource) + _len_field(2, _len_field(2, metric))
    return _len_field(1, resource_metrics)


def _rows(body: bytes) -> list[tuple]:
    out = Converter(Limits()).metrics("t", decode_metrics(body), NOW)
    if out.samples is None:
        return []
    cols = out.samples.to_columns()
    return sorted(
        (cols.gpu[i], tuple(sorted(cols.attributes[i].items())), int(cols.ts[i]), int(cols.start_ts[i]), cols.value[i])
        for i in range(len(cols.ts))
    )


def _expected(points: list[bytes]) -> list[tuple]:
    rows = []
    for raw in points:
        dp = NumberDataPoint.FromString(raw)
        if dp.flags & 1:
            continue
        attrs = {kv.key: kv.value.string_value for kv in dp.attributes}
        gpu = attrs.pop("hw.id", "")
        value = dp.as_double if dp.HasField("as_double") else float(dp.as_int)
        rows.append((gpu, tuple(sorted(attrs.items())), dp.time_unix_nano, dp.start_time_unix_nano, value))
    return sorted(rows)


def _point(**fields) -> bytes:
    dp = NumberDataPoint(**{k: v for k, v in fields.items() if k != "attrs"})
    for key, value in fields.get("attrs", {}).items():
        kv = dp.attributes.add()
        kv.key, kv.value.string_value = key, value
    return dp.SerializeToString()


LAYOUTS = {
    "full": [_point(start_time_unix_nano=NOW - 10**12, time_unix_nano=NOW, as_double=1.5, attrs={"hw.id": "GPU-a"})],
    "no start, zero value": [_point(time_unix_nano=NOW, as_double=0.0, attrs={"hw.id": "GPU-a", "x": "1"})],
    "as_int": [_point(time_unix_nano=NOW, as_int=-7, attrs={"hw.id": "GPU-b"}), _point(time_unix_nano=NOW, as_int=9)],
    "no attributes": [_point(time_unix_nano=NOW, as_double=2.0)],
    "flags: no recorded value": [
        _point(time_unix_nano=NOW, as_double=3.0, attrs={"hw.id": "GPU-a"}, flags=1),
        _point(time_unix_nano=NOW + 10**9, as_double=4.0, attrs={"hw.id": "GPU-a"}),
    ],
    "exemplar before as_int": [
        _field(3, 1, NOW.to_bytes(8, "little"))
        + _len_field(5, b"")
        + _field(6, 1, (5).to_bytes(8, "little"))
        + _len_field(7, _kv("hw.id", "GPU-c"))
    ],
    "attributes first": [
        _len_field(7, _kv("hw.id", "GPU-d"))
        + _field(3, 1, NOW.to_bytes(8, "little"))
        + _field(4, 1, b"\0" * 7 + b"\x40")
    ],
    "unknown field after attributes": [
        _field(3, 1, NOW.to_bytes(8, "little")) + _len_field(7, _kv("hw.id", "GPU-e")) + _field(99, 0, b"\x05")
    ],
    "non-finite value": [_point(time_unix_nano=NOW, as_double=math.inf, attrs={"hw.id": "GPU-f"})],
}


@pytest.mark.parametrize("kind", ["gauge", "sum"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_bulk_read_matches_protobuf(layout: str, kind: str) -> None:
    points = LAYOUTS[layout]
    body = _request(points, kind)
    assert ExportMetricsServiceRequest.FromString(body).resource_metrics[0].scope_metrics[0].metrics[0].name
    expected = [r for r in _expected(points) if math.isfinite(r[4])]
    assert _rows(body) == expected
    # Twice through the same converter: the second pass hits the series cache and must agree.
    converter = Converter(Limits())
    first = converter.metrics("t", decode_metrics(body), NOW)
    second = converter.metrics("t", decode_metrics(body), NOW)
    assert first.rejected == second.rejected
    if first.samples is not None:
        assert list(first.samples.series_id) == list(second.samples.series_id)


def test_split_reads_fixed_fields_and_points_at_attributes() -> None:
    raw = _point(start_time_unix_nano=5, time_unix_nano=NOW, as_double=2.5, attrs={"k": "v"})
    start, ts, value, rest = split_number_points([raw, _point(as_int=3)])
    assert start.tolist() == [5, 0] and ts.tolist() == [NOW, 0] and value.tolist() == [2.5, 3.0]
    assert raw[rest[0] :] == _len_field(7, _kv("k", "v"))
    assert rest[1] == 9


def test_truncated_point_is_a_decode_error() -> None:
    from google.protobuf.message import DecodeError

    bad = _field(3, 1, NOW.to_bytes(8, "little")) + b"\x3a\x10abc"  # attributes field longer than the point
    with pytest.raises(DecodeError):
        Converter(Limits()).metrics("t", decode_metrics(_request([bad])), NOW)
