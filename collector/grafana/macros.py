"""Expand the Grafana ClickHouse datasource's SQL macros, as the plugin does before it sends a query.

Used wherever generated Grafana SQL is executed outside Grafana: the alert-rule tests run each rule's
query on chDB, and the dashboards tests run each panel's query the same way. Macros (DESIGN §9;
grafana-clickhouse-datasource ``macros.go``)::

    $__timeFilter(c)        c >= toDateTime(FROM) AND c <= toDateTime(TO)
    $__timeFilter_ms(c)     c >= fromUnixTimestamp64Milli(FROM_MS) AND c <= fromUnixTimestamp64Milli(TO_MS)
    $__dateFilter(c)        c >= toDate(FROM) AND c <= toDate(TO)
    $__timeInterval(c)      toStartOfInterval(toDateTime(c), INTERVAL N second)
    $__timeInterval_ms(c)   toStartOfInterval(toDateTime64(c, 3), INTERVAL N millisecond)
    $__interval_s           N
    $__fromTime / $__toTime          toDateTime(FROM) / toDateTime(TO)
    $__fromTime_ms / $__toTime_ms    fromUnixTimestamp64Milli(FROM_MS) / ...(TO_MS)
    $__conditionalAll(cond, $var)    cond, or 1=1 when $var is All (or empty)

Dashboard variables ``$var`` / ``${var}`` / ``${var:singlequote}`` / ``${var:csv}`` are replaced
too: a multi-value variable becomes ``'a','b'``. An unknown ``$__`` macro or variable is an error,
not a silent pass-through.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

ALL = "$__all"
VarValue = str | Sequence[str]


class MacroError(ValueError):
    """A macro or variable the expander cannot resolve; the message names it and the query."""


@dataclass(frozen=True, slots=True)
class TimeRange:
    from_ms: int
    to_ms: int

    @classmethod
    def last(cls, seconds: float, now_s: float) -> TimeRange:
        return cls(int((now_s - seconds) * 1000), int(now_s * 1000))

    @property
    def from_s(self) -> int:
        return self.from_ms // 1000

    @property
    def to_s(self) -> int:
        return self.to_ms // 1000


@dataclass(slots=True)
class Context:
    time_range: TimeRange
    interval_ms: int = 60_000
    variables: Mapping[str, VarValue] = field(default_factory=dict)


_MACRO = re.compile(r"\$__([A-Za-z_]+)")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _arguments(sql: str, start: int, name: str) -> tuple[list[str], int]:
    """The comma-separated arguments of a macro call whose '(' is at `start`, and the index after ')'."""
    if start >= len(sql) or sql[start] != "(":
        raise MacroError(f"$__{name} needs arguments in parentheses: {sql[max(0, start - 40) : start + 40]!r}")
    depth, args, current, quote = 0, [], [], ""
    for i in range(start, len(sql)):
        ch = sql[i]
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"`":
            quote = ch
            current.append(ch)
        elif ch == "(":
            depth += 1
            if depth > 1:
                current.append(ch)
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append("".join(current).strip())
                return args, i + 1
            current.append(ch)
        elif ch == "," and depth == 1:
            args.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    raise MacroError(f"$__{name}( is never closed in: {sql[start : start + 80]!r}")


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _format_variable(name: str, value: VarValue, fmt: str | None) -> str:
    values = [value] if isinstance(value, str) else list(value)
    if fmt in (None, "singlequote", "sqlstring"):
        if isinstance(value, str) and fmt is None:
            return value
        return ",".join(_quote(v) for v in values)
    if fmt == "csv":
        return ",".join(values)
    if fmt == "raw":
        return ",".join(values)
    raise MacroError(f"${{{name}:{fmt}}}: unsupported variable format {fmt!r} (use singlequote, csv or raw)")


def _is_all(value: VarValue | None) -> bool:
    if value is None:
        return True
    values = [value] if isinstance(value, str) else list(value)
    return not values or ALL in values or values == [""]


def _expand_variables(sql: str, ctx: Context) -> str:
    def replace(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3)
        if name.startswith("__"):
            return m.group(0)  # a macro, handled separately
        if name not in ctx.variables:
            raise MacroError(f"query uses ${name}, which is not defined; defined: {', '.join(ctx.variables) or 'none'}")
        return _format_variable(name, ctx.variables[name], m.group(2))

    return _VARIABLE.sub(replace, sql)


def expand(sql: str, ctx: Context) -> str:
    """The SQL Grafana would send to ClickHouse for this time range, interval and variables."""
    tr = ctx.time_range
    out: list[str] = []
    pos = 0
    for m in _MACRO.finditer(sql):
        if m.start() < pos:
            continue
        name = m.group(1)
        out.append(sql[pos : m.start()])
        pos = m.end()
        if name in ("interval_s", "fromTime", "toTime", "fromTime_ms", "toTime_ms"):
            out.append(
                {
                    "interval_s": str(max(1, ctx.interval_ms // 1000)),
                    "fromTime": f"toDateTime({tr.from_s})",
                    "toTime": f"toDateTime({tr.to_s})",
                    "fromTime_ms": f"fromUnixTimestamp64Milli({tr.from_ms})",
                    "toTime_ms": f"fromUnixTimestamp64Milli({tr.to_ms})",
                }[name]
            )
            continue
        args, pos = _arguments(sql, m.end(), name)
        if name == "timeFilter":
            c = args[0]
            out.append(f"{c} >= toDateTime({tr.from_s}) AND {c} <= toDateTime({tr.to_s})")
        elif name == "timeFilter_ms":
            c = args[0]
            out.append(f"{c} >= fromUnixTimestamp64Milli({tr.from_ms}) AND {c} <= fromUnixTimestamp64Milli({tr.to_ms})")
        elif name == "dateFilter":
            c = args[0]
            out.append(f"{c} >= toDate({tr.from_s}) AND {c} <= toDate({tr.to_s})")
        elif name == "timeInterval":
            out.append(f"toStartOfInterval(toDateTime({args[0]}), INTERVAL {max(1, ctx.interval_ms // 1000)} second)")
        elif name == "timeInterval_ms":
            out.append(f"toStartOfInterval(toDateTime64({args[0]}, 3), INTERVAL {ctx.interval_ms} millisecond)")
        elif name == "conditionalAll":
            if len(args) != 2:
                raise MacroError(f"$__conditionalAll takes (condition, $variable), got {len(args)} arguments")
            var = args[1].lstrip("$").strip("{}")
            out.append("1=1" if _is_all(ctx.variables.get(var)) else expand(args[0], ctx))
        else:
            raise MacroError(
                f"unknown macro $__{name} (known: timeFilter, timeFilter_ms, dateFilter, "
                "timeInterval, timeInterval_ms, interval_s, fromTime, toTime, conditionalAll)"
            )
    out.append(sql[pos:])
    return _expand_variables("".join(out), ctx)
