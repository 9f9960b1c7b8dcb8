"""Shared plumbing of the reports: parameters, time windows, table choice and tenant-scoped SQL.

Every query is filtered by tenant and by the window, with values bound as ClickHouse query
parameters (never pasted into SQL). Ranges up to 6 h read raw ``samples``, up to 7 d the 1-minute
rollup, longer ones the 1-hour rollup (``resolution`` overrides).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from collector.fleet_sim.scenario import parse_duration

RAW_MAX_S = 6 * 3600
MINUTE_MAX_S = 7 * 86400
RESOLUTIONS = ("auto", "raw", "1m", "1h")
KNOWN_PARAMS = {
    "since",
    "until",
    "cluster",
    "node",
    "gpu",
    "arg",
    "uuid",
    "resolution",
    "late",
    "reasons",
    "limit",
    "format",
}
_UUID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class ReportError(ValueError):
    """Bad report parameters (HTTP 400 at the API); the message says which and what is expected."""


def parse_time(text: str, now: float, name: str) -> float:
    """'24h'/'7d'/'90m' (ago), 'now', an ISO time ('2024-05-01T12:00:00Z') or unix seconds → unix seconds."""
    text = str(text).strip()
    if text in ("", "now"):
        return now
    if re.fullmatch(r"\d{9,11}(\.\d+)?", text):
        return float(text)
    if re.fullmatch(r"[\d.]+[smhd]([\d.]+[smhd])*", text):
        try:
            return now - parse_duration(text)
        except ValueError:
            pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(
            f"{name}: expected a duration ago (30m, 24h, 7d), an ISO time (2024-05-01T12:00:00Z) or 'now', got {text!r}"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def iso(ts: float | datetime | None) -> str | None:
    """UTC ISO-8601 with a Z, to the second (milliseconds when present)."""
    if ts is None:
        return None
    if isinstance(ts, datetime):
        dt = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    else:
        dt = datetime.fromtimestamp(float(ts), UTC)
    dt = dt.astimezone(UTC)
    text = dt.isoformat(timespec="milliseconds" if dt.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def epoch(ts: datetime | float) -> float:
    if isinstance(ts, datetime):
        return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()
    return float(ts)


@dataclass(frozen=True)
class Window:
    since: float
    until: float
    cluster: str
    node: str
    gpu: str
    resolution: str  # raw | 1m | 1h (resolved)
    options: Mapping[str, str]

    @property
    def seconds(self) -> float:
        return self.until - self.since

    @property
    def table(self) -> str:
        return {"raw": "samples", "1m": "samples_1m", "1h": "samples_1h"}[self.resolution]

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"since": iso(self.since), "until": iso(self.until), "resolution": self.resolution}
        for key in ("cluster", "node", "gpu"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out


def window(params: Mapping[str, Any], default_since: str, now: float | None = None) -> Window:
    unknown = set(params) - KNOWN_PARAMS
    if unknown:
        raise ReportError(f"unknown report parameter(s) {sorted(unknown)}; known: {sorted(KNOWN_PARAMS)}")
    now = time.time() if now is None else now
    until = parse_time(params.get("until") or "now", now, "until")
    since = parse_time(
        params.get("since") or default_since,
        until if _is_duration(params.get("since") or default_since) else now,
        "since",
    )
    if since >= until:
        raise ReportError(f"since ({iso(since)}) must be before until ({iso(until)})")
    resolution = str(params.get("resolution") or "auto")
    if resolution not in RESOLUTIONS:
        raise ReportError(f"resolution: expected one of {', '.join(RESOLUTIONS)}, got {resolution!r}")
    if resolution == "auto":
        span = until - since
        resolution = "raw" if span <= RAW_MAX_S else "1m" if span <= MINUTE_MAX_S else "1h"
    filters = {}
    for key in ("cluster", "node", "gpu"):
        value = str(params.get(key) or "")
        if value and not _UUID.match(value):
            raise ReportError(f"{key}: {value!r} has characters a {key} name never has")
        filters[key] = value
    return Window(since, until, filters["cluster"], filters["node"], filters["gpu"], resolution, params)


def _is_duration(text: str) -> bool:
    """A relative `since` counts back from `until` (so --until X --since 6h means the 6 h before X)."""
    return bool(re.fullmatch(r"[\d.]+[smhd]([\d.]+[smhd])*", str(text).strip()))


class Query:
    """Tenant- and window-scoped SQL against the store."""

    def __init__(self, store: Any, tenant: str, win: Window) -> None:
        self.store = store
        self.tenant = tenant
        self.win = win

    def params(self, **extra: Any) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "since_ms": int(self.win.since * 1000),
            "until_ms": int(self.win.until * 1000),
            "f_cluster": self.win.cluster,
            "f_node": self.win.node,
            "f_gpu": self.win.gpu,
            **extra,
        }

    def where(self, ts: str = "ts", alias: str = "") -> str:
        """Tenant, window and --cluster/--node/--gpu filters for a table with those columns."""
        p = f"{alias}." if alias else ""
        parts = [
            f"{p}tenant = {{tenant:String}}",
            f"{p}{ts} >= fromUnixTimestamp64Milli({{since_ms:Int64}}, 'UTC')",
            f"{p}{ts} <= fromUnixTimestamp64Milli({{until_ms:Int64}}, 'UTC')",
        ]
        for key in ("cluster", "node", "gpu"):
            if getattr(self.win, key):
                parts.append(f"{p}{key} = {{f_{key}:String}}")
        return " AND ".join(parts)

    def rows(self, sql: str, **extra: Any) -> list[tuple]:
        return self.store.query(sql, parameters=self.params(**extra)).result_rows

    def points(self, metrics: list[str], extra_where: str = "") -> str:
        """A subquery of (metric, cluster, node, gpu, series_id, attributes, ts, value, vmin, vmax, start_ts)
        at the window's resolution; for rollups ``value`` is the bucket's last value."""
        metric_list = ", ".join(f"'{m}'" for m in metrics)  # catalog names only, never user input
        cond = f"{self.where()} AND metric IN ({metric_list})" + (f" AND {extra_where}" if extra_where else "")
        if self.win.resolution == "raw":
            return (
                "SELECT metric, cluster, node, gpu, series_id, attributes, ts, value, value AS vmin, value AS vmax, start_ts "
                f"FROM samples WHERE {cond}"
            )
        # The inner alias must not be `attributes`: ClickHouse would resolve the WHERE's attributes[...]
        # to the aggregate.
        return (
            "SELECT metric, cluster, node, gpu, series_id, attrs AS attributes, ts, value, vmin, vmax, start_ts FROM ("
            "SELECT metric, cluster, node, gpu, series_id, any(attributes) AS attrs, ts, "
            "argMaxMerge(last) AS value, min(min) AS vmin, max(max) AS vmax, max(start_ts) AS start_ts "
            f"FROM {self.win.table} WHERE {cond} GROUP BY tenant, metric, cluster, node, gpu, series_id, ts)"
        )

    def counter_increases(self, metrics: list[str], extra_where: str = "") -> list[tuple]:
        """Per series that grew in the window: (metric, cluster, node, gpu, attributes, increase, first_ts, last_ts).

        Increase is summed over counter lifetimes (a changed start_ts is a restart), so resets never
        show as negative; first/last are the first and last sample time of the series in the window.
        """
        sql = f"""
        SELECT metric, cluster, node, gpu, any(attributes), sum(inc), min(t0), max(t1)
        FROM (
            SELECT metric, cluster, node, gpu, series_id, start_ts, any(attributes) AS attributes,
                   max(vmax) - min(vmin) AS inc, min(ts) AS t0, max(ts) AS t1
            FROM ({self.points(metrics, extra_where)})
            GROUP BY metric, cluster, node, gpu, series_id, start_ts
        )
        GROUP BY metric, cluster, node, gpu, series_id
        HAVING sum(inc) > 0
        """
        return self.rows(sql)

    def increase_times(self, metrics: list[str], extra_where: str = "") -> list[tuple]:
        """Each sample (or bucket) where a counter grew: (metric, cluster, node, gpu, attributes, ts, delta).

        Only series that changed in the window are scanned by the window function.
        """
        pts = self.points(metrics, extra_where)
        sql = f"""
        SELECT metric, cluster, node, gpu, attributes, ts, delta FROM (
            SELECT metric, cluster, node, gpu, attributes, ts, vmax,
                   -- A series' first bucket has no predecessor: count the growth inside it (vmax - vmin),
                   -- or a counter that grew in the window's first rollup bucket would be dated an hour late.
                   vmax - lagInFrame(vmax, 1, vmin) OVER w AS step,
                   start_ts != lagInFrame(start_ts, 1, start_ts) OVER w AS restarted,
                   if(restarted, vmax, step) AS delta
            FROM ({pts}) AS p
            WHERE series_id IN (
                SELECT series_id FROM ({pts}) GROUP BY series_id HAVING max(vmax) > min(vmin)
            )
            WINDOW w AS (PARTITION BY series_id ORDER BY ts ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
        )
        WHERE delta > 0
        ORDER BY ts, gpu, metric
        """
        return self.rows(sql)


def attr(attributes: Mapping[str, str] | None, *keys: str, default: str = "") -> str:
    """First present attribute among ``keys``."""
    if not attributes:
        return default
    for key in keys:
        if key in attributes:
            return str(attributes[key])
    return default


def share(seconds: float, window_s: float) -> float:
    return round(100.0 * seconds / window_s, 2) if window_s > 0 else 0.0
