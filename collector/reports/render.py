"""Render a :class:`ReportResult`: a table for people (units in the headers), JSON, CSV, or a
self-contained HTML page with inline SVG plots (no external assets, opens offline)."""

from __future__ import annotations

import csv
import html
import io
import json
from datetime import UTC, datetime
from typing import Any

from collector.reports.result import Plot, ReportResult

FORMATS = ("table", "json", "csv")
CONTENT_TYPES = {
    "table": "text/plain; charset=utf-8",
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "html": "text/html; charset=utf-8",
}
MAX_CELL = 60


def render(result: ReportResult, fmt: str = "table") -> str:
    if fmt == "json":
        return json.dumps(result.to_dict(), indent=2, default=str) + "\n"
    if fmt == "csv":
        return render_csv(result)
    if fmt == "table":
        return render_table(result)
    if fmt == "html":
        return render_html(result)
    raise ValueError(f"unknown format {fmt!r}: expected table, json, csv or html")


def _header(column: str, unit: str) -> str:
    # Counts ({error}, {event}) read fine without a unit; physical units and time spans are shown.
    shown = unit and unit != "UTC" and not unit.startswith("{")
    return f"{column.upper()} [{unit}]" if shown else column.upper()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:,.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value):,}"
    elif isinstance(value, int) and not isinstance(value, bool):
        text = f"{value:,}" if abs(value) >= 10000 else str(value)
    else:
        text = str(value)
        if len(text) == 20 and text.endswith("Z") and "T" in text:  # ISO time: readable, still UTC
            text = text.replace("T", " ")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _table(result: ReportResult) -> list[str]:
    headers = [_header(c, u) for c, u in zip(result.columns, result.units, strict=True)]
    cells = [[_cell(v) for v in row] for row in result.rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [
        bool(cells) and all(_is_number(row[i]) for row in result.rows if row[i] is not None)
        for i in range(len(headers))
    ]

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    out = [line(headers)]
    out += [line(r) for r in cells]
    if not cells:
        out.append("(none)")
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def render_table(result: ReportResult) -> str:
    window = result.params
    head = f"{result.title}"
    if window.get("since"):
        head += f"  —  {window['since']} .. {window['until']} UTC ({window.get('resolution', '')})"
    out = [head, ""]
    out += _table(result)
    for note in result.notes:
        out.append(f"# {note}")
    for section in result.sections:
        out += ["", f"{section.title}:"]
        out += _table(section)
        out += [f"# {n}" for n in section.notes]
    return "\n".join(out) + "\n"


def render_csv(result: ReportResult) -> str:
    """The main table as CSV; units go in the header (``throttled_s``) so the file stands alone."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        [f"{c}_{_unit_slug(u)}" if u and u != "UTC" else c for c, u in zip(result.columns, result.units, strict=True)]
    )
    writer.writerows(result.rows)
    return buf.getvalue()


def _unit_slug(unit: str) -> str:
    return {"%": "pct", "s": "s", "Cel": "celsius", "W": "watts"}.get(unit, unit.strip("{}").replace("/", "_per_"))


# ---------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1d2330;max-width:1100px}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left}
th{background:#f3f5f8}.muted{color:#6b7280;font-size:.85rem}.plot{margin:1rem 0}
.verdict-unhealthy{color:#b91c1c;font-weight:bold}.verdict-degraded{color:#b45309;font-weight:bold}.verdict-healthy{color:#047857}
"""


def render_html(result: ReportResult) -> str:
    esc = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(result.title)} — fleetpulse</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{esc(result.title)}</h1>",
        f'<p class="muted">Window {esc(str(result.params.get("since")))} .. {esc(str(result.params.get("until")))} UTC · '
        f"tenant {esc(str(result.params.get('tenant', '')))} · generated by fleetpulse {esc(_now())}</p>",
        _html_table(result),
    ]
    parts += [f'<p class="muted">{esc(n)}</p>' for n in result.notes]
    if result.plots:
        parts.append("<h2>Over time</h2>")
        parts += [f'<div class="plot">{svg_plot(p)}</div>' for p in result.plots]
    for section in result.sections:
        parts += [f"<h2>{esc(section.title)}</h2>", _html_table(section)]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _html_table(result: ReportResult) -> str:
    esc = html.escape
    if not result.rows:
        return '<p class="muted">(none)</p>'
    head = "".join(f"<th>{esc(_header(c, u))}</th>" for c, u in zip(result.columns, result.units, strict=True))
    body = []
    for row in result.rows:
        cells = []
        for value in row:
            text = "-" if value is None else str(value)
            cls = f' class="verdict-{esc(text)}"' if text in ("healthy", "degraded", "unhealthy") else ""
            cells.append(f"<td{cls}>{esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def svg_plot(plot: Plot, width: int = 960, height: int = 180) -> str:
    """A line chart as inline SVG: axes with min/max labels, shaded spans, the series as a polyline."""
    esc = html.escape
    pad_l, pad_r, pad_t, pad_b = 70, 10, 22, 28
    title = f"{plot.title} [{plot.unit}]" if plot.unit else plot.title
    if not plot.points:
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="40" role="img"><text x="0" y="20">{esc(title)}: no data</text></svg>'
    xs = [p[0] for p in plot.points]
    ys = [p[1] for p in plot.points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1
    w, h = width - pad_l - pad_r, height - pad_t - pad_b

    def sx(x: float) -> float:
        return pad_l + (x - x0) / (x1 - x0) * w

    def sy(y: float) -> float:
        return pad_t + h - (y - y0) / (y1 - y0) * h

    spans = "".join(
        f'<rect x="{sx(max(a, x0)):.1f}" y="{pad_t}" width="{max(1.0, sx(min(b, x1)) - sx(max(a, x0))):.1f}" height="{h}" fill="#fde68a" opacity="0.6"><title>{esc(label)}</title></rect>'
        for a, b, label in plot.spans
        if b >= x0 and a <= x1
    )
    line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in plot.points)

    def label_time(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%m-%d %H:%M")

    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="{esc(title)}">'
        f'<text x="{pad_l}" y="14" font-size="13" font-weight="bold">{esc(title)}</text>'
        f"{spans}"
        f'<line x1="{pad_l}" y1="{pad_t + h}" x2="{pad_l + w}" y2="{pad_t + h}" stroke="#999"/>'
        f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{pad_t + h}" stroke="#999"/>'
        f'<text x="{pad_l - 6}" y="{pad_t + 10}" font-size="11" text-anchor="end">{_num(y1)}</text>'
        f'<text x="{pad_l - 6}" y="{pad_t + h}" font-size="11" text-anchor="end">{_num(y0)}</text>'
        f'<text x="{pad_l}" y="{height - 8}" font-size="11">{label_time(x0)}</text>'
        f'<text x="{pad_l + w}" y="{height - 8}" font-size="11" text-anchor="end">{label_time(x1)} UTC</text>'
        f'<polyline fill="none" stroke="#2563eb" stroke-width="1.5" points="{line}"/>'
        "</svg>"
    )


def _num(v: float) -> str:
    a = abs(v)
    if a >= 1e9:
        return f"{v / 1e9:.3g}G"
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e3:
        return f"{v / 1e3:.3g}k"
    return f"{v:.3g}"
