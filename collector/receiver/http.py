"""OTLP/HTTP receiver: ``POST /v1/metrics`` and ``/v1/logs``, protobuf or JSON, optional gzip."""

from __future__ import annotations

import zlib

from google.protobuf import json_format
from google.rpc import status_pb2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from collector.auth import Authenticator
from collector.convert import DecodeError, json_to_protobuf
from collector.receiver.core import (
    BAD_REQUEST,
    RATE_LIMITED,
    TOO_LARGE,
    UNAVAILABLE,
    Ingest,
    Rejected,
    export_response,
)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_STATUS = {BAD_REQUEST: 400, TOO_LARGE: 413, RATE_LIMITED: 429, UNAVAILABLE: 503}
_GRPC_CODE = {400: 3, 401: 16, 413: 3, 415: 3, 429: 8, 503: 14}


def _response(message, content_type: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    if content_type == JSON:
        body = json_format.MessageToJson(message, indent=None).encode()
    else:
        body = message.SerializeToString()
    return Response(body, status_code=status, media_type=content_type, headers=headers)


def _error(status: int, message: str, content_type: str, retry_after: str | None = None) -> Response:
    headers = {"Retry-After": retry_after} if retry_after else None
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": 'Bearer realm="fleetpulse"'}
    return _response(status_pb2.Status(code=_GRPC_CODE.get(status, 2), message=message), content_type, status, headers)


async def _read_body(request: Request, limit: int) -> tuple[bytes, bytes | None]:
    """The (decompressed) body, refusing to read or inflate past ``limit`` bytes, and the gzip body as
    sent when it was one whole gzip member (the WAL keeps that; None otherwise)."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise Rejected(TOO_LARGE, f"request of {length} bytes exceeds limits.max_request_bytes={limit}")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(TOO_LARGE, f"request exceeds limits.max_request_bytes={limit}")
        chunks.append(chunk)
    body = b"".join(chunks)
    wire = None
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding == "gzip":
        wire = body
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(body, limit + 1)
        except zlib.error as exc:
            raise Rejected(BAD_REQUEST, f"Content-Encoding gzip: body is not valid gzip ({exc})") from None
        if len(body) > limit or inflater.unconsumed_tail:
            raise Rejected(TOO_LARGE, f"decompressed request exceeds limits.max_request_bytes={limit}")
        if not inflater.eof:
            raise Rejected(BAD_REQUEST, "Content-Encoding gzip: body is a truncated gzip stream")
        if inflater.unused_data:
            wire = None  # more than one member: keep the inflated body, as read here
    elif encoding not in ("identity", ""):
        raise Rejected(BAD_REQUEST, f"Content-Encoding {encoding!r} is not supported; use gzip or none")
    return body, wire


def create_app(ingest: Ingest, auth: Authenticator) -> Starlette:
    telemetry = ingest.telemetry

    async def export(request: Request, signal: str) -> Response:
        raw_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        reply_type = JSON if raw_type == JSON else PROTOBUF

        def done(status: int) -> None:
            telemetry.requests.labels("http", str(status)).inc()

        tenant = auth.tenant_for(request.headers.get("authorization"))
        if tenant is None:
            done(401)
            return _error(401, "missing or invalid bearer token (Authorization: Bearer <token>)", reply_type)
        if raw_type not in (PROTOBUF, JSON):
            done(415)
            return _error(
                415, f"Content-Type {raw_type or '(none)'!r} is not supported; use {PROTOBUF} or {JSON}", PROTOBUF
            )
        try:
            ingest.check_memory()
            body, wire_gzip = await _read_body(request, ingest.limits.max_request_bytes)
            if raw_type == JSON:
                wire_gzip = None  # the WAL keeps protobuf
                try:
                    body = json_to_protobuf(body, signal)
                except DecodeError as exc:
                    raise Rejected(BAD_REQUEST, str(exc)) from None
            converted = await run_in_threadpool(ingest.export, signal, tenant, body, "http", wire_gzip)
        except Rejected as exc:
            status = _STATUS[exc.kind]
            done(status)
            retry = exc.retry_after_header if status in (429, 503) else None
            return _error(status, exc.message, reply_type, retry)
        except ClientDisconnect:
            done(499)
            return Response(status_code=400)
        reply = export_response(signal, converted)
        done(200)
        return _response(reply, reply_type)

    async def metrics(request: Request) -> Response:
        return await export(request, "metrics")

    async def logs(request: Request) -> Response:
        return await export(request, "logs")

    return Starlette(
        routes=[Route("/v1/metrics", metrics, methods=["POST"]), Route("/v1/logs", logs, methods=["POST"])]
    )
