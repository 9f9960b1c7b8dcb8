"""Bad input: the malformed-OTLP corpus (tests/reliability/corpus/manifest.yaml) gets its defined answer
over HTTP and gRPC, a million points in one request is refused as too large, and bounded hypothesis
fuzzing of both decode paths only ever yields the defined answers while the collector stays up."""

from __future__ import annotations

import gzip
import struct
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from tests.otlp_clients import get, metrics_request, post, query
from tests.reliability.corpus.make_corpus import TS_BYTES
from tests.reliability.helpers import ALPHA, InProcess, inprocess_config, wait_for

pytestmark = pytest.mark.timeout(240)

CORPUS = Path(__file__).resolve().parent / "corpus"
MANIFEST = yaml.safe_load((CORPUS / "manifest.yaml").read_text())["cases"]
PATHS = {
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
RESPONSES = {"metrics": ExportMetricsServiceResponse, "logs": ExportLogsServiceResponse}
HTTP_DEFINED = {200, 400, 413, 415}
GRPC_DEFINED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    from collector.store.settings import StorageSettings
    from collector.store.writer import Store

    tmp = tmp_path_factory.mktemp("bad-input")
    store = Store(StorageSettings(dsn=f"chdb://{tmp / 'chdb'}"))
    config = inprocess_config(tmp)
    config.limits.max_request_bytes = 64 * 2**20  # so a million points hits max_points_per_request
    c = InProcess(config, store=store)
    channel = grpc.insecure_channel(f"127.0.0.1:{c.grpc}")
    c.channel = channel
    yield c
    channel.close()
    c.stop()
    store.close()


def grpc_call(c: InProcess, signal: str, body: bytes):
    """(code, reply bytes or None)."""
    try:
        reply = c.channel.unary_unary(PATHS[signal])(body, metadata=(("authorization", f"Bearer {ALPHA}"),), timeout=30)
        return grpc.StatusCode.OK, reply
    except grpc.RpcError as exc:
        return exc.code(), None


def with_now(data: bytes) -> bytes:
    return data.replace(TS_BYTES, struct.pack("<Q", time.time_ns() - 5 * 10**9))


def rejected_in(signal: str, reply: bytes, content_type: str = "application/x-protobuf") -> int:
    if content_type == "application/json":
        return 0
    message = RESPONSES[signal].FromString(reply)
    ps = message.partial_success
    return ps.rejected_data_points if signal == "metrics" else ps.rejected_log_records


def test_corpus_cases_get_their_defined_answer(collector: InProcess) -> None:
    expected_rows: Counter = Counter()
    for case in MANIFEST:
        signal = case.get("signal", "metrics")
        body = with_now((CORPUS / case["file"]).read_bytes())
        ctype = case.get("content_type", "application/x-protobuf")
        headers = {"Content-Encoding": case["encoding"]} if "encoding" in case else None
        status, _, reply = post(collector.http, f"/v1/{signal}", body, ctype, ALPHA, headers=headers)
        assert status == case["http"], (case["file"], reply[:300])
        deliveries = 1
        if status == 200:
            assert rejected_in(signal, reply) == case["rejected"], case["file"]
            if case.get("reason"):
                assert case["reason"] in RESPONSES[signal].FromString(reply).partial_success.error_message
        if "grpc" in case:
            code, greply = grpc_call(collector, signal, body)
            assert code.name == case["grpc"], case["file"]
            if code == grpc.StatusCode.OK:
                deliveries += 1
                assert rejected_in(signal, greply) == case["rejected"], case["file"]
        if status == 200:
            expected_rows[(case.get("table", "samples"), case["cluster"])] += case["stored"] * (
                1 if case.get("dedup") else deliveries
            )
    for (table, cluster), rows in expected_rows.items():
        sql = f"SELECT count() FROM {table} WHERE cluster = 'corpus-{cluster}'"
        assert collector.wait_count(sql, rows, timeout=20) == rows, (table, cluster)
    time.sleep(0.5)  # nothing more arrives later
    for (table, cluster), rows in expected_rows.items():
        assert collector.count(f"SELECT count() FROM {table} WHERE cluster = 'corpus-{cluster}'") == rows
    # stored as sent: negative counters keep their value and kind; duplicates are all kept
    _, body = query(
        collector.api,
        "SELECT DISTINCT value, kind FROM samples WHERE cluster = 'corpus-negative-counter' ORDER BY value",
        ALPHA,
    )
    assert body["rows"] == [[-(2.0**40), "sum"], [-5.0, "sum"]]
    _, body = query(
        collector.api,
        "SELECT groupArray(value) FROM (SELECT value FROM samples WHERE cluster = 'corpus-duplicate-points' ORDER BY value)",
        ALPHA,
    )
    assert body["rows"][0][0] == [7.0, 7.0, 7.0, 7.0, 8.0, 8.0]  # two deliveries of [7, 7, 8]
    _, body = query(
        collector.api, "SELECT length(body) FROM events WHERE cluster = 'corpus-huge-log-body' LIMIT 1", ALPHA
    )
    assert body["rows"] == [[16384]]  # log bodies are cut at 16 KiB, the record is kept
    _, body = query(
        collector.api, "SELECT attributes['nested'] FROM samples WHERE cluster = 'corpus-nested-ok' LIMIT 1", ALPHA
    )
    assert body["rows"][0][0].startswith('{"n": ')  # nested values are stored as JSON text


def test_a_million_points_in_one_request_is_refused_whole(collector: InProcess) -> None:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    metric = rm.scope_metrics.add().metrics.add()
    metric.name = "corpus.million"
    now = time.time_ns()
    points = metric.gauge.data_points
    for _ in range(1_000_000):
        points.add(time_unix_nano=now, as_double=1.0)
    body = req.SerializeToString()
    del req, points
    assert len(body) < collector.c.limits.max_request_bytes
    status, _, reply = post(collector.http, "/v1/metrics", body, token=ALPHA, timeout=60)
    assert status == 413 and b"max_points_per_request" in reply
    code, _ = grpc_call(collector, "metrics", body)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    status, _, reply = post(
        collector.http,
        "/v1/metrics",
        gzip.compress(body, 1),
        token=ALPHA,
        gzip=False,
        headers={"Content-Encoding": "gzip"},
        timeout=60,
    )
    assert status == 413
    assert collector.count("SELECT count() FROM samples WHERE metric = 'corpus.million'") == 0
    assert get(collector.api, "/healthz")[0] == 200


# ------------------------------------------------------------------------------------------- fuzzing

FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
VALID = metrics_request(nodes=1, gpus=2, metrics=2, cluster="fuzz").SerializeToString()


def _http_ok(collector: InProcess, signal: str, body: bytes, ctype: str) -> None:
    status, _, reply = post(collector.http, f"/v1/{signal}", body, ctype, ALPHA)
    assert status in HTTP_DEFINED, (status, reply[:200])
    if status == 200 and ctype == "application/x-protobuf":
        RESPONSES[signal].FromString(reply)  # a well-formed OTLP answer


@FUZZ
@given(body=st.binary(max_size=2048), signal=st.sampled_from(["metrics", "logs"]), json=st.booleans())
def test_fuzz_http_random_bodies(collector: InProcess, body: bytes, signal: str, json: bool) -> None:
    _http_ok(collector, signal, body, "application/json" if json else "application/x-protobuf")


@FUZZ
@given(
    cut=st.integers(0, len(VALID)),
    flips=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(1, 255)), max_size=6),
)
def test_fuzz_http_mutated_valid_requests(collector: InProcess, cut: int, flips: list[tuple[int, int]]) -> None:
    data = bytearray(VALID)
    for pos, mask in flips:
        data[pos] ^= mask
    _http_ok(collector, "metrics", bytes(data[:cut] if cut % 3 == 0 else data), "application/x-protobuf")


attribute_text = st.text(max_size=40)
point = st.fixed_dictionaries(
    {
        "value": st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**63), 2**63 - 1),
        "ts": st.integers(0, 2**64 - 1),
        "attrs": st.dictionaries(attribute_text, attribute_text | st.integers(-(2**63), 2**63 - 1), max_size=5),
    }
)


@FUZZ
@given(name=st.text(max_size=30), points=st.lists(point, min_size=1, max_size=8))
def test_fuzz_structured_requests_are_accepted_or_partially_rejected(
    collector: InProcess, name: str, points: list[dict]
) -> None:
    """Well-formed protobuf with hostile content (any unicode, NaN, huge ints, any timestamp) is never
    a 4xx/5xx: it is stored or counted in partial_success."""
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    kv = rm.resource.attributes.add()
    kv.key, kv.value.string_value = "k8s.cluster.name", "fuzz-structured"
    metric = rm.scope_metrics.add().metrics.add()
    metric.name = name
    for p in points:
        dp = metric.gauge.data_points.add()
        dp.time_unix_nano = p["ts"]
        if isinstance(p["value"], float):
            dp.as_double = p["value"]
        else:
            dp.as_int = p["value"]
        for k, v in p["attrs"].items():
            a = dp.attributes.add()
            a.key = k
            if isinstance(v, int):
                a.value.int_value = v
            else:
                a.value.string_value = v
    body = req.SerializeToString()
    status, _, reply = post(collector.http, "/v1/metrics", body, token=ALPHA)
    assert status == 200, reply[:300]
    answer = ExportMetricsServiceResponse.FromString(reply)
    assert 0 <= answer.partial_success.rejected_data_points <= len(points)


@FUZZ
@given(body=st.binary(max_size=2048), signal=st.sampled_from(["metrics", "logs"]))
def test_fuzz_grpc_random_bodies(collector: InProcess, body: bytes, signal: str) -> None:
    code, reply = grpc_call(collector, signal, body)
    assert code in GRPC_DEFINED, code
    if code == grpc.StatusCode.OK:
        RESPONSES[signal].FromString(reply)


def test_collector_is_up_and_answered_nothing_undefined_after_fuzzing(collector: InProcess) -> None:
    assert get(collector.api, "/healthz")[0] == 200
    body = metrics_request(nodes=1, gpus=1, metrics=1, cluster="after-fuzz").SerializeToString()
    assert post(collector.http, "/v1/metrics", body, token=ALPHA)[0] == 200
    assert collector.wait_count("SELECT count() FROM samples WHERE cluster = 'after-fuzz'", 1) == 1
    text = get(collector.api, "/metrics")[2].decode()
    codes = {
        line.split('code="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("fleetpulse_collector_requests_total{")
    }
    assert codes <= {"200", "400", "413", "415", "OK", "INVALID_ARGUMENT"}, codes
    wait_for(lambda: get(collector.api, "/readyz")[0] == 200, what="ready")
