"""What a report returns: named columns with units, rows, notes, and optional sub-tables and plots."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Plot:
    """One time series for the HTML page: ``points`` are (unix seconds, value)."""

    title: str
    unit: str
    points: list[tuple[float, float]] = field(default_factory=list)
    # Shaded spans (unix seconds start, end) with a label, e.g. throttle windows.
    spans: list[tuple[float, float, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "unit": self.unit, "points": self.points, "spans": self.spans}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plot:
        return cls(
            data["title"],
            data.get("unit", ""),
            [tuple(p) for p in data.get("points", [])],
            [tuple(s) for s in data.get("spans", [])],
        )


@dataclass
class ReportResult:
    name: str
    title: str
    columns: list[str]
    units: list[str]  # one per column; "" when the column has no unit
    rows: list[list[Any]]
    notes: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)  # the resolved window, filters, resolution
    sections: list[ReportResult] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.units) != len(self.columns):
            raise ValueError(f"report {self.name}: {len(self.columns)} columns but {len(self.units)} units")

    def records(self) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name (what tests and JSON consumers read)."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def section(self, name: str) -> ReportResult:
        for s in self.sections:
            if s.name == name:
                return s
        raise KeyError(f"report {self.name} has no section {name!r}; has {[s.name for s in self.sections]}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "report": self.name,
            "title": self.title,
            "columns": self.columns,
            "units": self.units,
            "rows": self.rows,
            "notes": self.notes,
            "params": self.params,
            "sections": [s.to_dict() for s in self.sections],
            "plots": [p.to_dict() for p in self.plots],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReportResult:
        return cls(
            name=data["report"],
            title=data.get("title", data["report"]),
            columns=list(data["columns"]),
            units=list(data.get("units") or [""] * len(data["columns"])),
            rows=[list(r) for r in data["rows"]],
            notes=list(data.get("notes", [])),
            params=dict(data.get("params", {})),
            sections=[cls.from_dict(s) for s in data.get("sections", [])],
            plots=[Plot.from_dict(p) for p in data.get("plots", [])],
        )
