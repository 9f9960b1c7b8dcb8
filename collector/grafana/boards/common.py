"""Dashboard skeleton shared by the five boards: time settings, variables, annotations, links, panel ids."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.models import dashboard as dm

from collector.grafana import panels

HARMFUL_REASONS = ("hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown")


def board(
    uid: str,
    title: str,
    description: str,
    rows: Sequence[tuple[str, Iterable[Any]]],
    variables: Sequence[str] = ("cluster", "node", "gpu"),
    gpu_annotations: bool = True,
    time_from: str = "now-6h",
) -> dashboard.Dashboard:
    d = (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["fleetpulse", "gpu"])
        .editable()
        .timezone("utc")
        .time(time_from, "now")
        .refresh("1m")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .variables(panels.variables(variables))
        .annotations(panels.annotations(gpu_filter=gpu_annotations))
        .link(
            dashboard.DashboardLink("fleetpulse")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(["fleetpulse"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    panel_id = 1
    for row_title, row_panels in rows:
        d = d.with_row(dashboard.Row(row_title).id(panel_id))
        panel_id += 1
        for p in row_panels:
            d = d.with_panel(p.id(panel_id))
            panel_id += 1
    return d
