"""An in-process OTLP receiver for tests: real gRPC services and a real HTTP endpoint.

Built from the opentelemetry-proto service definitions (``metrics_service_pb2_grpc`` /
``logs_service_pb2_grpc``) and the standard library's HTTP server. It records every request it
accepts (decoded), and can be taken down (the port refuses connections) and brought back on the
same port, or told to answer with a given failure (HTTP status / gRPC code) or a partial success.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

from tests.conftest import free_port


@dataclass
class Received:
    signal: str  # "metrics" | "logs"
    request: object  # ExportMetricsServiceRequest | ExportLogsServiceRequest
    headers: dict[str, str]
    transport: str  # "grpc" | "http"


def _attrs(kvs) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in kvs}


class OtlpReceiver:
    def __init__(self) -> None:
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.received: list[Received] = []
        self.lock = threading.Lock()
        # Failure injection: None = accept. For HTTP an int status, for gRPC a grpc.StatusCode.
        self.http_status: int | None = None
        self.http_retry_after: str | None = None
        self.grpc_status: grpc.StatusCode | None = None
        self.reject_points = 0  # answer with partial_success rejecting this many
        self._grpc_server: grpc.Server | None = None
        self._http_server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> OtlpReceiver:
        self._start_grpc()
        self._start_http()
        return self

    def stop(self) -> None:
        if self._grpc_server is not None:
            self._grpc_server.stop(grace=0).wait(5)
            self._grpc_server = None
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.server_close()
            self._http_server = None

    down = stop
    up = start

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start_grpc(self) -> None:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        receiver = self

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request, context):
                return receiver._grpc_handle("metrics", request, context)

        class Logs(logs_service_pb2_grpc.LogsServiceServicer):
            def Export(self, request, context):
                return receiver._grpc_handle("logs", request, context)

        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), server)
        server.add_insecure_port(f"127.0.0.1:{self.grpc_port}")
        server.start()
        self._grpc_server = server

    def _start_http(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                encoding = (self.headers.get("content-encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                signal = {"/v1/metrics": "metrics", "/v1/logs": "logs"}.get(self.path)
                if signal is None:
                    self._reply(404, b"")
                    return
                if receiver.http_status is not None:
                    headers = {"Retry-After": receiver.http_retry_after} if receiver.http_retry_after else {}
                    self._reply(receiver.http_status, b"", headers)
                    return
                cls = _REQUESTS[signal]
                try:
                    request = cls.FromString(body)
                except Exception:
                    self._reply(400, b"bad protobuf")
                    return
                receiver._record(signal, request, {k.lower(): v for k, v in self.headers.items()}, "http")
                self._reply(200, receiver._response(signal).SerializeToString())

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        server = ThreadingHTTPServer(("127.0.0.1", self.http_port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True, name="otlp-http-receiver").start()
        self._http_server = server

    # ------------------------------------------------------------------ handling
    def _grpc_handle(self, signal: str, request, context):
        if self.grpc_status is not None:
            context.abort(self.grpc_status, "injected failure")
        self._record(signal, request, dict(context.invocation_metadata()), "grpc")
        return self._response(signal)

    def _record(self, signal: str, request, headers: dict[str, str], transport: str) -> None:
        with self.lock:
            self.received.append(Received(signal, request, headers, transport))

    def _response(self, signal: str):
        response = _RESPONSES[signal]()
        if self.reject_points:
            if signal == "metrics":
                response.partial_success.rejected_data_points = self.reject_points
            else:
                response.partial_success.rejected_log_records = self.reject_points
            response.partial_success.error_message = "injected partial success"
        return response

    # ------------------------------------------------------------------ inspection
    def requests(self, signal: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.signal == signal]

    def points(self) -> list[tuple[str, dict[str, str], int, float]]:
        """Every received data point as (metric, attributes, time_unix_nano, value), in arrival order."""
        out = []
        for r in self.requests("metrics"):
            for rm in r.request.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        dps = m.gauge.data_points if m.WhichOneof("data") == "gauge" else m.sum.data_points
                        for dp in dps:
                            out.append((m.name, _attrs(dp.attributes), dp.time_unix_nano, dp.as_double))
        return out

    def resources(self) -> list[dict[str, str]]:
        out = []
        for r in self.requests("metrics"):
            out += [_attrs(rm.resource.attributes) for rm in r.request.resource_metrics]
        for r in self.requests("logs"):
            out += [_attrs(rl.resource.attributes) for rl in r.request.resource_logs]
        return out

    def log_records(self) -> list[dict]:
        out = []
        for r in self.requests("logs"):
            for rl in r.request.resource_logs:
                for sl in rl.scope_logs:
                    for lr in sl.log_records:
                        out.append(
                            {
                                "time_unix_nano": lr.time_unix_nano,
                                "severity_number": lr.severity_number,
                                "severity_text": lr.severity_text,
                                "body": lr.body.string_value,
                                "attributes": _attrs(lr.attributes),
                            }
                        )
        return out


_REQUESTS = {
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
    "logs": logs_service_pb2.ExportLogsServiceRequest,
}
_RESPONSES = {
    "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
    "logs": logs_service_pb2.ExportLogsServiceResponse,
}
