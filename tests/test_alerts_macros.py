"""collector/grafana/macros.py: the Grafana ClickHouse plugin's macros, as DESIGN §9 states them."""

from __future__ import annotations

import pytest

from collector.grafana.macros import ALL, Context, MacroError, TimeRange, expand

CTX = Context(TimeRange(1_700_000_000_123, 1_700_003_600_456), 30_000, {"node": ["a", "b'c"], "gpu": ALL, "one": "x"})


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("$__timeFilter(ts)", "ts >= toDateTime(1700000000) AND ts <= toDateTime(1700003600)"),
        (
            "$__timeFilter_ms(ts)",
            "ts >= fromUnixTimestamp64Milli(1700000000123) AND ts <= fromUnixTimestamp64Milli(1700003600456)",
        ),
        ("$__dateFilter(d)", "d >= toDate(1700000000) AND d <= toDate(1700003600)"),
        ("$__timeInterval(ts)", "toStartOfInterval(toDateTime(ts), INTERVAL 30 second)"),
        ("$__timeInterval_ms(ts)", "toStartOfInterval(toDateTime64(ts, 3), INTERVAL 30000 millisecond)"),
        ("x / $__interval_s", "x / 30"),
        ("$__fromTime, $__toTime", "toDateTime(1700000000), toDateTime(1700003600)"),
        ("$__fromTime_ms", "fromUnixTimestamp64Milli(1700000000123)"),
        ("$__conditionalAll(node IN ($node), $node)", "node IN ('a','b\\'c')"),
        ("$__conditionalAll(gpu IN (${gpu:singlequote}), $gpu)", "1=1"),
        (
            "$__timeFilter(toDateTime(ts, 'UTC'))",
            "toDateTime(ts, 'UTC') >= toDateTime(1700000000) AND toDateTime(ts, 'UTC') <= toDateTime(1700003600)",
        ),
        ("node = '${one}' AND n IN (${node:csv})", "node = 'x' AND n IN (a,b'c)"),
    ],
)
def test_expand(sql: str, expected: str) -> None:
    assert expand(sql, CTX) == expected


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("$__nope(ts)", "unknown macro \\$__nope"),
        ("$__timeFilter(ts", "never closed"),
        ("$__timeFilter ts", "needs arguments"),
        ("x = $missing", "\\$missing, which is not defined"),
        ("$__conditionalAll(a)", "takes \\(condition, \\$variable\\)"),
        ("${node:json}", "unsupported variable format"),
    ],
)
def test_errors_name_the_problem(sql: str, message: str) -> None:
    with pytest.raises(MacroError, match=message):
        expand(sql, CTX)


def test_expanded_sql_runs_on_chdb() -> None:
    chdb = pytest.importorskip("chdb")
    sql = expand(
        "SELECT count() FROM numbers(10) WHERE toDateTime(1700000100) >= $__fromTime AND $__timeFilter(toDateTime(1700000200))",
        CTX,
    )
    assert chdb.query(sql, "CSV").bytes().strip() == b"10"
    outside = expand("SELECT count() FROM numbers(10) WHERE $__timeFilter(toDateTime(1700009999))", CTX)
    assert chdb.query(outside, "CSV").bytes().strip() == b"0"
