"""Report parameters (bad input gets a clear error) and rendering (table with units, csv, json, html)."""

from __future__ import annotations

import json
import re

import pytest

from collector.reports import ReportError, run_report
from collector.reports.base import window
from collector.reports.render import render
from collector.reports.result import Plot, ReportResult

NOW = 1_700_000_000.0


class NoStore:
    def query(self, *a, **k):  # pragma: no cover - parameter errors must come before any query
        raise AssertionError("a bad parameter reached the store")


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("nope", {}, "unknown report 'nope'"),
        ("throttle", {"since": "yesterday-ish"}, "since: expected a duration ago"),
        ("throttle", {"since": "2023-11-14T06:00:00Z", "until": "2023-11-14T00:00:00Z"}, "must be before until"),
        ("throttle", {"resolution": "5m"}, "resolution: expected one of"),
        ("throttle", {"colour": "red"}, "unknown report parameter(s) ['colour']"),
        ("throttle", {"node": "a b;DROP"}, "node: 'a b;DROP' has characters"),
        ("throttle", {"reasons": "too_hot"}, "reasons: unknown ['too_hot']"),
        ("gpu", {}, "gpu: which GPU?"),
        ("freshness", {"late": "soon"}, "late: expected a duration"),
        ("cardinality", {"limit": "many"}, "limit: expected a whole number"),
    ],
)
def test_bad_parameters_are_rejected_with_the_reason(name, params, message):
    with pytest.raises(ReportError) as exc:
        run_report(name, NoStore(), "default", params, now=NOW)
    assert message in str(exc.value)


def test_tenant_is_required():
    with pytest.raises(ReportError, match="tenant"):
        run_report("xid", NoStore(), "", {}, now=NOW)


def test_window_parsing_and_resolution_choice():
    w = window({"since": "6h"}, "24h", now=NOW)
    assert (w.since, w.until, w.resolution, w.table) == (NOW - 6 * 3600, NOW, "raw", "samples")
    assert window({}, "24h", now=NOW).resolution == "1m"
    assert window({"since": "30d"}, "24h", now=NOW).resolution == "1h"
    w = window({"since": "2023-11-14T00:00:00Z", "until": "2023-11-14T06:00:00+00:00"}, "24h", now=NOW)
    assert (w.since, w.until) == (1699920000.0, 1699941600.0)
    # a relative since counts back from until
    assert window({"since": "1h", "until": "2023-11-14T06:00:00Z"}, "24h", now=NOW).since == 1699941600.0 - 3600


def sample() -> ReportResult:
    return ReportResult(
        name="throttle",
        title="GPU throttling",
        columns=["gpu", "reason", "throttled", "share", "first_active", "onsets"],
        units=["", "", "s", "%", "UTC", "{event}"],
        rows=[
            ["GPU-1", "hw_thermal_slowdown", 1920.0, 8.9, "2024-05-01T12:00:00Z", 1],
            ["GPU-2", "sw_power_cap", 60.5, 0.28, None, 0],
        ],
        notes=["2 GPU(s) throttled"],
        params={
            "since": "2024-05-01T00:00:00Z",
            "until": "2024-05-02T00:00:00Z",
            "resolution": "1m",
            "tenant": "default",
        },
        sections=[ReportResult("detail", "Detail", ["gpu"], [""], [["GPU-1"]])],
        plots=[
            Plot(
                "Temperature",
                "Cel",
                [(1714564800.0, 60.0), (1714564860.0, 91.0)],
                [(1714564800.0, 1714564860.0, "hw_thermal_slowdown")],
            )
        ],
    )


def test_table_shows_units_and_sections():
    text = render(sample(), "table")
    assert "THROTTLED [s]" in text and "SHARE [%]" in text
    assert "ONSETS [" not in text  # counts need no unit
    assert "1,920" in text and "2024-05-01 12:00:00Z" in text
    assert "Detail:" in text and "# 2 GPU(s) throttled" in text


def test_csv_header_carries_units_and_json_round_trips():
    lines = render(sample(), "csv").splitlines()
    assert lines[0] == "gpu,reason,throttled_s,share_pct,first_active,onsets_event"
    assert lines[1].startswith("GPU-1,hw_thermal_slowdown,1920.0,8.9")
    data = json.loads(render(sample(), "json"))
    back = ReportResult.from_dict(data)
    assert back.records() == sample().records()
    assert back.section("detail").rows == [["GPU-1"]]
    assert back.plots[0].spans[0][2] == "hw_thermal_slowdown"


def test_html_is_self_contained_with_svg_plots():
    page = render(sample(), "html")
    assert page.startswith("<!doctype html>") and "<svg" in page and "<polyline" in page
    # no external assets: the only URL is the SVG namespace
    urls = set(re.findall(r"https?://[^\s\"'<>]+", page))
    assert urls == {"http://www.w3.org/2000/svg"}
    assert not re.search(r"<(script|link|img)\b", page)


def test_units_must_match_columns():
    with pytest.raises(ValueError, match="2 columns but 1 units"):
        ReportResult("x", "x", ["a", "b"], [""], [])
