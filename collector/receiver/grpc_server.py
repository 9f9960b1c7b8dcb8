"""OTLP/gRPC receiver on grpcio: MetricsService/Export and LogsService/Export.

Requests are taken as raw bytes (no deserializer) so the WAL stores exactly what arrived and the
converter decodes it once with its own message classes.
"""

from __future__ import annotations

from concurrent import futures

import grpc

from collector.auth import Authenticator
from collector.receiver.core import (
    BAD_REQUEST,
    RATE_LIMITED,
    TOO_LARGE,
    UNAVAILABLE,
    Ingest,
    Rejected,
    export_response,
)

_CODES = {
    BAD_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    TOO_LARGE: grpc.StatusCode.INVALID_ARGUMENT,
    RATE_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}


def _handler(ingest: Ingest, auth: Authenticator, signal: str):
    telemetry = ingest.telemetry

    def export(body: bytes, context: grpc.ServicerContext):
        metadata = dict(context.invocation_metadata())
        tenant = auth.tenant_for(metadata.get("authorization"))
        if tenant is None:
            telemetry.requests.labels("grpc", "UNAUTHENTICATED").inc()
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token (authorization: Bearer <token>)"
            )
        try:
            converted = ingest.export(signal, tenant, body, "grpc")
        except Rejected as exc:
            code = _CODES[exc.kind]
            telemetry.requests.labels("grpc", code.name).inc()
            if exc.retry_after_s:
                context.set_trailing_metadata((("retry-after", exc.retry_after_header),))
            context.abort(code, exc.message)
        telemetry.requests.labels("grpc", "OK").inc()
        reply = export_response(signal, converted)
        return reply

    return grpc.unary_unary_rpc_method_handler(
        export, request_deserializer=None, response_serializer=lambda m: m.SerializeToString()
    )


def create_server(ingest: Ingest, auth: Authenticator, listen: str, credentials=None, workers: int = 8) -> grpc.Server:
    limit = ingest.limits.max_request_bytes
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="otlp-grpc"),
        options=[("grpc.max_receive_message_length", limit + 1024 * 1024)],
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "opentelemetry.proto.collector.metrics.v1.MetricsService", {"Export": _handler(ingest, auth, "metrics")}
            ),
            grpc.method_handlers_generic_handler(
                "opentelemetry.proto.collector.logs.v1.LogsService", {"Export": _handler(ingest, auth, "logs")}
            ),
        )
    )
    bound = server.add_secure_port(listen, credentials) if credentials is not None else server.add_insecure_port(listen)
    if not bound:
        raise OSError(f"otlp.grpc_listen {listen}: cannot bind")
    return server
