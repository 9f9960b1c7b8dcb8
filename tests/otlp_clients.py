"""Helpers for collector tests: OTLP requests built with the official classes, SDK exporters, a
collector subprocess, and HTTP posting with a tiny stdlib client."""

from __future__ import annotations

import gzip as gzip_module
import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

REPO = Path(__file__).resolve().parent.parent


def _kv(container, key: str, value) -> None:
    kv = container.add()
    kv.key = key
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    else:
        kv.value.string_value = str(value)


def metrics_request(
    nodes: int = 1,
    gpus: int = 2,
    metrics: int = 3,
    ts_ns: int | None = None,
    value: float = 1.5,
    cluster: str = "c1",
    node_prefix: str = "node",
    extra_point_attrs: dict | None = None,
) -> ExportMetricsServiceRequest:
    """Gauges: nodes x gpus x metrics points, one per series."""
    ts = ts_ns or time.time_ns()
    req = ExportMetricsServiceRequest()
    for n in range(nodes):
        rm = req.resource_metrics.add()
        _kv(rm.resource.attributes, "host.name", f"{node_prefix}{n}")
        _kv(rm.resource.attributes, "k8s.cluster.name", cluster)
        _kv(rm.resource.attributes, "service.name", "test")
        _kv(rm.resource.attributes, "rack", "r1")
        sm = rm.scope_metrics.add()
        for m in range(metrics):
            metric = sm.metrics.add()
            metric.name = f"hw.gpu.test{m}"
            for g in range(gpus):
                dp = metric.gauge.data_points.add()
                dp.time_unix_nano = ts
                dp.as_double = value
                _kv(dp.attributes, "hw.id", f"GPU-{n}-{g}")
                _kv(dp.attributes, "gpu.index", str(g))
                for k, v in (extra_point_attrs or {}).items():
                    _kv(dp.attributes, k, v)
    return req


def logs_request(records: list[dict], node: str = "node0", cluster: str = "c1") -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    _kv(rl.resource.attributes, "host.name", node)
    _kv(rl.resource.attributes, "k8s.cluster.name", cluster)
    sl = rl.scope_logs.add()
    for r in records:
        rec = sl.log_records.add()
        rec.time_unix_nano = r.get("ts", time.time_ns())
        rec.severity_number = r.get("severity", 9)
        rec.severity_text = r.get("severity_text", "INFO")
        rec.body.string_value = r.get("body", "")
        for k, v in r.get("attributes", {}).items():
            _kv(rec.attributes, k, v)
    return req


def post(
    port: int,
    path: str,
    body: bytes,
    content_type: str = "application/x-protobuf",
    token: str | None = None,
    gzip: bool = False,
    headers: dict | None = None,
    timeout: float = 10,
    method: str = "POST",
) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = {"Content-Type": content_type, **(headers or {})}
    if token:
        h["Authorization"] = f"Bearer {token}"
    if gzip:
        body = gzip_module.compress(body)
        h["Content-Encoding"] = "gzip"
    try:
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def get(port: int, path: str, token: str | None = None, timeout: float = 10) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        conn.request("GET", path, headers=h)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def query(port: int, sql: str, token: str | None = None, fmt: str = "json") -> tuple[int, dict | str]:
    status, _, body = get(port, f"/api/v1/query?format={fmt}&sql={quote(sql)}", token)
    if fmt == "json":
        return status, json.loads(body)
    return status, body.decode()


def wait_http(port: int, path: str = "/healthz", timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, _, _ = get(port, path, timeout=1)
            if status < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"nothing answered on 127.0.0.1:{port}{path} within {timeout} s")


def start_collector_process(config_path: Path, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = open(log_path, "ab")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "--log-level", "info", "collector", "--config", str(config_path)],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )


class RunningCollector:
    """A started in-process collector's ports, with read-API counting helpers."""

    default_token = "tok-alpha"
    default_timeout = 20.0

    def __init__(self, collector) -> None:  # collector.server.Collector
        self.c = collector
        cfg = collector.config
        self.grpc = int(cfg.otlp.grpc_listen.rsplit(":", 1)[1])
        self.http = int(cfg.otlp.http_listen.rsplit(":", 1)[1])
        self.api = int(cfg.api.listen.rsplit(":", 1)[1])

    def count(self, sql: str, token: str | None = None) -> int:
        status, body = query(self.api, sql, token or self.default_token)
        assert status == 200, body
        return body["rows"][0][0]

    def wait_count(self, sql: str, expected: int, token: str | None = None, timeout: float | None = None) -> int:
        deadline = time.monotonic() + (timeout or self.default_timeout)
        n = -1
        while time.monotonic() < deadline:
            n = self.count(sql, token)
            if n >= expected:
                return n
            time.sleep(0.1)
        return n
