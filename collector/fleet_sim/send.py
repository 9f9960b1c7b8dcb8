"""POST OTLP/HTTP protobuf requests to a collector, with the retry rules of the OTLP spec.

Retryable: 429, 502, 503, 504 (honouring Retry-After) and connection failures, until a deadline.
Final: any other 4xx (the message says why: 401 → check --token-file, 413 → smaller requests).
Partial success (HTTP 200 with rejected points) is counted, never retried.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import requests
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

RETRYABLE = {429, 502, 503, 504}


class SendError(RuntimeError):
    """The collector refused a request for good (or stayed unreachable past the deadline)."""


@dataclass(slots=True)
class SendStats:
    requests: int = 0
    retries: int = 0
    rejected_points: int = 0
    rejected_logs: int = 0
    bytes_sent: int = 0


class OtlpHttpSender:
    def __init__(
        self, endpoint: str, token: str | None = None, timeout_s: float = 30.0, retry_deadline_s: float = 120.0
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.timeout_s = timeout_s
        self.retry_deadline_s = retry_deadline_s
        self.headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.stats = SendStats()
        self._lock = threading.Lock()
        self._local = threading.local()  # one keep-alive session per sending thread

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def send_metrics(self, body: bytes) -> None:
        reply = self._post("/v1/metrics", body)
        if reply:
            msg = ExportMetricsServiceResponse.FromString(reply)
            with self._lock:
                self.stats.rejected_points += msg.partial_success.rejected_data_points

    def send_logs(self, body: bytes) -> None:
        reply = self._post("/v1/logs", body)
        if reply:
            msg = ExportLogsServiceResponse.FromString(reply)
            with self._lock:
                self.stats.rejected_logs += msg.partial_success.rejected_log_records

    def _post(self, path: str, body: bytes) -> bytes:
        url = self.endpoint + path
        deadline = time.monotonic() + self.retry_deadline_s
        delay = 0.2
        while True:
            try:
                resp = self._session().post(url, data=body, headers=self.headers, timeout=self.timeout_s)
            except requests.RequestException as exc:
                if time.monotonic() + delay > deadline:
                    raise SendError(
                        f"collector at {self.endpoint} unreachable for {self.retry_deadline_s:.0f}s ({exc.__class__.__name__}); "
                        "is it running? start one with `fleetpulse collector` or `fleetpulse up`, or pass --store DSN"
                    ) from None
                self._retry_wait(delay)
                delay = min(delay * 2, 5.0)
                continue
            if resp.status_code == 200:
                with self._lock:
                    self.stats.requests += 1
                    self.stats.bytes_sent += len(body)
                return resp.content
            if resp.status_code in RETRYABLE and time.monotonic() < deadline:
                wait = _retry_after(resp.headers.get("Retry-After"), delay)
                self._retry_wait(min(wait, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 5.0)
                continue
            hint = {
                401: " (check --token-file: the collector wants a bearer token)",
                403: " (the token is not allowed to write)",
                413: " (request too large for the collector's limits.max_request_bytes)",
            }.get(resp.status_code, "")
            raise SendError(f"collector {url} answered HTTP {resp.status_code}{hint}: {resp.text[:300]}")

    def _retry_wait(self, seconds: float) -> None:
        with self._lock:
            self.stats.retries += 1
        time.sleep(seconds)


def _retry_after(value: str | None, default: float) -> float:
    try:
        return max(0.0, min(float(value), 30.0)) if value else default
    except ValueError:
        return default
