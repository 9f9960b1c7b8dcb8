"""The read API (port 4319): /api/v1/query, /api/v1/reports/<name>, /api/v1/audit, /healthz, /readyz, /metrics.

Every query, report and audit read leaves an audit record (collector/api/audit.py), refused ones included.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import math
import time
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from collector.api.audit import AuditLog
from collector.api.sql_guard import QueryRejected, check, tenant_settings
from collector.auth import Authenticator
from collector.telemetry import Telemetry


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, int) and abs(value) >= 2**53:
        return str(value)
    return value


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(
    store,
    auth: Authenticator,
    telemetry: Telemetry,
    database: str,
    ready: Callable[[], tuple[bool, str]],
    max_rows: int = 100_000,
    max_execution_s: float = 30.0,
    audit: AuditLog | None = None,
) -> Starlette:
    def tenant_of(request: Request) -> str | None:
        return auth.tenant_for(request.headers.get("authorization"))

    def audited(endpoint: str, text_of):
        """Wrap a tenant handler so each call leaves an audit record (rows from ``request.state``)."""

        async def handler(request: Request) -> Response:
            started = time.perf_counter()
            request.state.rows = 0
            response = await endpoint_fn[endpoint](request)
            tenant = tenant_of(request)
            if audit is not None and tenant is not None:
                error = None
                if response.status_code >= 400:
                    try:
                        error = json.loads(response.body).get("error")
                    except (ValueError, AttributeError):
                        error = None
                await run_in_threadpool(
                    lambda: audit.record(
                        tenant=tenant,
                        authorization=request.headers.get("authorization"),
                        endpoint=text_of(request)[0],
                        sql=text_of(request)[1],
                        rows=request.state.rows,
                        duration_s=time.perf_counter() - started,
                        status=response.status_code,
                        error=error,
                    )
                )
            return response

        return handler

    async def query(request: Request) -> Response:
        tenant = tenant_of(request)
        if tenant is None:
            return _error(401, "missing or invalid bearer token (Authorization: Bearer <token>)")
        sql = request.query_params.get("sql", "")
        fmt = request.query_params.get("format", "json")
        if fmt not in ("json", "csv"):
            return _error(400, f"format must be json or csv, got {fmt!r}")
        try:
            rows_limit = min(int(request.query_params.get("max_rows", max_rows)), max_rows)
        except ValueError:
            return _error(400, "max_rows must be an integer")
        try:
            admitted = check(sql, database)
        except QueryRejected as exc:
            return _error(400, f"query rejected: {exc}")
        wrapped = f"SELECT * FROM ({admitted}\n) LIMIT {rows_limit + 1}"  # newline: a trailing -- comment ends there
        settings = tenant_settings(database, tenant, rows_limit, max_execution_s)
        from collector.store.errors import StoreUnavailable

        try:
            result = await run_in_threadpool(store.query, wrapped, None, settings)
        except StoreUnavailable as exc:
            return _error(503, f"store unavailable: {exc}")
        except Exception as exc:  # ClickHouse's own message: syntax errors, unknown columns, timeouts
            return _error(400, f"query failed: {exc}")
        rows = result.result_rows
        truncated = len(rows) > rows_limit
        rows = rows[:rows_limit]
        request.state.rows = len(rows)
        columns = list(result.column_names)
        if fmt == "csv":
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(columns)
            for row in rows:
                writer.writerow(
                    [json.dumps(_jsonable(v)) if isinstance(v, dict | list | tuple) else _jsonable(v) for v in row]
                )
            headers = {"X-Truncated": "true"} if truncated else None
            return Response(out.getvalue(), media_type="text/csv", headers=headers)
        return JSONResponse(
            {
                "columns": columns,
                "types": [t.name for t in result.column_types],
                "rows": [[_jsonable(v) for v in row] for row in rows],
                "row_count": len(rows),
                "truncated": truncated,
            }
        )

    async def report(request: Request) -> Response:
        tenant = tenant_of(request)
        if tenant is None:
            return _error(401, "missing or invalid bearer token (Authorization: Bearer <token>)")
        name = request.path_params["name"]
        try:
            reports = importlib.import_module("collector.reports")
            run_report = reports.run_report
        except (ImportError, AttributeError):
            return _error(404, "reports are not available in this build (collector.reports.run_report is missing)")
        params = dict(request.query_params)
        report_error = getattr(reports, "ReportError", ValueError)
        known = getattr(reports, "REPORTS", None)
        if known is not None and name not in known:
            return _error(404, f"unknown report {name!r}; reports: {', '.join(known)}")
        from collector.store.errors import StoreUnavailable

        try:
            result = await run_in_threadpool(run_report, name, store, tenant, params)
        except KeyError as exc:
            return _error(404, f"unknown report {name!r}: {exc}")
        except StoreUnavailable as exc:
            return _error(503, f"store unavailable: {exc}")
        except (report_error, ValueError) as exc:
            return _error(400, f"report {name}: {exc}")
        if hasattr(result, "to_dict"):
            result = result.to_dict()
        if isinstance(result, dict) and isinstance(result.get("rows"), list):
            request.state.rows = len(result["rows"])
        return JSONResponse(_jsonable(result))

    async def audit_log(request: Request) -> Response:
        tenant = tenant_of(request)
        if tenant is None:
            return _error(401, "missing or invalid bearer token (Authorization: Bearer <token>)")
        if audit is None:
            return _error(404, "the audit log is not enabled in this collector")
        try:
            limit = min(int(request.query_params.get("limit", 1000)), 10_000)
        except ValueError:
            return _error(400, "limit must be an integer")
        records = await run_in_threadpool(audit.read, tenant, limit, request.query_params.get("since"))
        request.state.rows = len(records)
        return JSONResponse({"records": records, "row_count": len(records)})

    endpoint_fn = {"query": query, "report": report, "audit": audit_log}

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        ok, why = await run_in_threadpool(ready)
        return PlainTextResponse(("ready: " if ok else "not ready: ") + why + "\n", status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(telemetry.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route(
                "/api/v1/query",
                audited("query", lambda r: ("query", r.query_params.get("sql", ""))),
                methods=["GET", "POST"],
            ),
            Route(
                "/api/v1/reports/{name}",
                audited("report", lambda r: (f"report:{r.path_params['name']}", "")),
                methods=["GET"],
            ),
            Route("/api/v1/audit", audited("audit", lambda r: ("audit", "")), methods=["GET"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
        ]
    )
