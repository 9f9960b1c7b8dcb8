"""The steady-state layout path (collector/receiver/layouts.py) gives exactly the ordinary path's rows.

Each case converts a sender's requests both ways: the ordinary converter on a fresh body every
time, and the layout cache (which learns on the second request and then reads times and values
straight from the body). Rows, rejections and series must be identical; anything that changes the
layout (an attribute, the length, a histogram, flags) must fall back to the ordinary path.
"""

from __future__ import annotations

import math
import time

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from collector.convert import Converter, decode_metrics
from collector.limits import Limits
from collector.receiver.layouts import LayoutCache, number_point_spans

NOW = time.time_ns() // 10**9 * 10**9


def _request(tick: int, node: str = "node-1", gpu_ids: tuple[str, ...] = ("GPU-a", "GPU-b"), **changes) -> bytes:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    for key, value in (("host.name", node), ("k8s.cluster.name", "c1")):
        kv = rm.resource.attributes.add()
        kv.key, kv.value.string_value = key, value
    sm = rm.scope_metrics.add()
    for m in range(4):
        metric = sm.metrics.add()
        metric.name = f"hw.gpu.m{m}"
        for g, gpu in enumerate(gpu_ids):
            if m == 3:  # a cumulative counter: start time, int value
                metric.sum.is_monotonic = True
                metric.sum.aggregation_temporality = 2
                dp = metric.sum.data_points.add()
                dp.start_time_unix_nano = NOW - 3600 * 10**9
                dp.as_int = 1000 * tick + g
            else:
                dp = metric.gauge.data_points.add()
                dp.as_double = changes.get("value", tick + m / 10 + g)
            dp.time_unix_nano = changes.get("time", NOW + tick * 10**9)
            for key, value in (("hw.id", gpu), ("gpu.index", str(g))):
                kv = dp.attributes.add()
                kv.key, kv.value.string_value = key, value
            if changes.get("flags") and m == 0:
                dp.flags = 1
    if changes.get("host_sensor"):  # a host metric whose hw.id is a sensor, not a GPU
        metric = sm.metrics.add()
        metric.name = "hw.temperature"
        dp = metric.gauge.data_points.add()
        dp.as_double, dp.time_unix_nano = 40.0 + tick, NOW + tick * 10**9
        for key, value in (("hw.id", gpu_ids[0]), ("gpu.index", "0")):  # the same attributes as a GPU's points
            kv = dp.attributes.add()
            kv.key, kv.value.string_value = key, value
    if changes.get("histogram"):
        h = sm.metrics.add()
        h.name = "lat"
        hp = h.histogram.data_points.add()
        hp.count, hp.time_unix_nano = 1, NOW
    return req.SerializeToString()


def _rows(converted) -> tuple:
    if converted.samples is None:
        return (), dict(converted.rejected), converted.received
    c = converted.samples.to_columns()
    rows = sorted(
        (int(c.series_id[i]), c.metric[i], c.gpu[i], int(c.ts[i]), int(c.start_ts[i]), repr(float(c.value[i])))
        for i in range(len(c.ts))
    )
    return tuple(rows), dict(converted.rejected), converted.received


def _both(cache: LayoutCache, body: bytes, received_ns: int = NOW):
    """(layout path or None, ordinary path) for one body, learning like the receiver does."""
    layout = cache.match("t", body)
    fast = cache.convert("t", layout, body, received_ns) if layout is not None else None
    ordinary = Converter(Limits(max_past_s=600)).metrics("t", decode_metrics(body), received_ns)
    if layout is None:
        converted = cache.converter.metrics("t", decode_metrics(body), received_ns)
        cache.learn("t", body, converted)
    return fast, ordinary


def test_steady_sender_takes_the_layout_path_with_identical_rows() -> None:
    cache = LayoutCache(Converter(Limits(max_past_s=600)))
    results = [_both(cache, _request(tick)) for tick in range(6)]
    assert [fast is None for fast, _ in results] == [True, True, False, False, False, False]  # learnt on the 2nd
    for fast, ordinary in results[2:]:
        assert _rows(fast) == _rows(ordinary)
        assert len(_rows(fast)[0]) == 8
    assert cache.hits == 4


def test_layout_path_files_hw_id_under_gpu_only_for_gpu_metrics() -> None:
    cache = LayoutCache(Converter(Limits(max_past_s=600)))
    results = [_both(cache, _request(tick, host_sensor=True)) for tick in range(3)]
    fast, ordinary = results[2]
    assert fast is not None and _rows(fast) == _rows(ordinary)
    gpus = {(metric, gpu) for _, metric, gpu, *_ in _rows(fast)[0]}
    assert ("hw.temperature", "") in gpus and ("hw.gpu.m0", "GPU-a") in gpus
    assert {gpu for metric, gpu in gpus if metric == "hw.temperature"} == {""}


def test_values_that_fail_validation_are_rejected_the_same_way() -> None:
    cache = LayoutCache(Converter(Limits(max_past_s=600)))
    for tick in range(2):
        _both(cache, _request(tick))
    for changes in ({"value": math.nan}, {"value": math.inf}, {"time": NOW - 7200 * 10**9}, {"time": NOW + 10**12}):
        fast, ordinary = _both(cache, _request(3, **changes))
        assert fast is not None, changes
        assert _rows(fast) == _rows(ordinary) and fast.rejected, changes


def test_a_changed_layout_takes_the_ordinary_path() -> None:
    cache = LayoutCache(Converter(Limits(max_past_s=600)))
    for tick in range(2):
        _both(cache, _request(tick))
    assert cache.match("t", _request(5)) is not None
    same_length_other_gpu = _request(5, gpu_ids=("GPU-a", "GPU-c"))
    assert len(same_length_other_gpu) == len(_request(5))
    for body in (same_length_other_gpu, _request(5, gpu_ids=("GPU-a",)), _request(5, flags=True)):
        assert cache.match("t", body) is None
        fast, ordinary = _both(cache, body)
        assert fast is None and ordinary.received
    assert cache.match("other-tenant", _request(5)) is None  # the tenant is part of the key


def test_requests_with_more_than_plain_points_are_never_learnt() -> None:
    cache = LayoutCache(Converter(Limits(max_past_s=600)))
    for tick in range(4):
        for body in (_request(tick, histogram=True), _request(tick, node="n2", flags=True)):
            fast, _ = _both(cache, body)
            assert fast is None
    assert cache.bytes == 0


def test_series_cache_reset_drops_the_layout_and_byte_cap_holds() -> None:
    converter = Converter(Limits(max_past_s=600), max_cached_series=20)  # two senders' 16 series fit
    cache = LayoutCache(converter)
    for tick in range(2):
        _both(cache, _request(tick))
        _both(cache, _request(tick, node="n2"))
    assert cache.match("t", _request(2)) is not None and cache.match("t", _request(2, node="n2")) is not None
    registry = converter.registry
    for node in ("n3", "n4"):  # 24 series: the next conversion starts a new series cache
        converter.metrics("t", decode_metrics(_request(0, node=node)), NOW)
    assert converter.registry is not registry
    assert cache.match("t", _request(3)) is None and cache.bytes == 0  # every layout let go, not just this one
    assert cache.match("t", _request(3, node="n2")) is None

    small = LayoutCache(Converter(Limits(max_past_s=600)), max_bytes=100)
    for tick in range(3):
        _both(small, _request(tick))
    assert small.bytes == 0 and small.match("t", _request(4)) is None


def test_number_point_spans_find_every_point_in_decoding_order() -> None:
    body = _request(1)
    spans = number_point_spans(body)
    decoded = decode_metrics(body)
    points = [
        p
        for rm in decoded.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        for p in getattr(m, m.WhichOneof("data")).data_points
    ]
    assert [body[s:e] for s, e in spans] == points
    assert number_point_spans(body[:-3]) is None  # truncated
    assert number_point_spans(b"\x0b") is None  # a group wire type
