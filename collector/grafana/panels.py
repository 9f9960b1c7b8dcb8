"""Panel, variable and annotation helpers shared by the five dashboards (grafana-foundation-sdk builders)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grafana_foundation_sdk.builders import bargauge, dashboard, piechart, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.piechart import PieChartType

from collector.grafana.clickhouse import (
    DATASOURCE_UID,
    DATASOURCE_VAR,
    PLUGIN_ID,
    ClickHouseAnnotationTarget,
    ClickHouseTarget,
    Format,
    clickhouse_ref,
)
from collector.grafana.sql import DATABASE

Steps = Sequence[tuple[float | None, str]]
OK_WARN_BAD: Steps = ((None, "green"),)


def thresholds(steps: Steps) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


def _common(panel: Any, title: str, description: str, unit: str, steps: Steps | None, w: int, h: int) -> Any:
    panel = panel.title(title).description(description).span(w).height(h).datasource(clickhouse_ref())
    if unit:
        panel = panel.unit(unit)
    if steps:
        panel = panel.thresholds(thresholds(steps))
    return panel


def ts_panel(
    title: str,
    sql: str,
    unit: str,
    description: str,
    steps: Steps | None = None,
    w: int = 12,
    h: int = 8,
    stacked: bool = False,
    bars: bool = False,
    min_val: float | None = None,
) -> timeseries.Panel:
    p = _common(timeseries.Panel(), title, description, unit, steps, w, h).with_target(
        ClickHouseTarget(sql, Format.TIME_SERIES)
    )
    if steps and len(steps) > 1:
        p = p.thresholds_style(common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.LINE))
    if stacked:
        p = p.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL)).fill_opacity(40)
    if bars:
        p = p.draw_style(common.GraphDrawStyle.BARS).fill_opacity(80)
    if min_val is not None:
        p = p.min(min_val)
    return p


def table_panel(
    title: str,
    sql: str,
    description: str,
    unit: str = "",
    steps: Steps | None = None,
    w: int = 12,
    h: int = 8,
    links: Sequence[tuple[str, str]] = (),
    overrides: Sequence[tuple[str, str, Steps | None]] = (),
) -> table.Panel:
    """A table; ``links`` are (title, url) data links; ``overrides`` set (column, unit, thresholds)."""
    p = _common(table.Panel(), title, description, unit, steps, w, h).with_target(ClickHouseTarget(sql, Format.TABLE))
    if links:
        p = p.data_links([dashboard.DashboardLink(t).url(u).type(dm.DashboardLinkType.LINK) for t, u in links])
    for column, col_unit, col_steps in overrides:
        props = [dm.DynamicConfigValue(id_val="unit", value=col_unit)]
        if col_steps:
            props.append(dm.DynamicConfigValue(id_val="thresholds", value=thresholds(col_steps).build()))
            props.append(
                dm.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background", "mode": "basic"})
            )
        p = p.override_by_name(column, props)
    return p


def stat_panel(
    title: str, sql: str, description: str, unit: str = "none", steps: Steps | None = None, w: int = 4, h: int = 4
) -> stat.Panel:
    return (
        _common(stat.Panel(), title, description, unit, steps, w, h)
        .with_target(ClickHouseTarget(sql, Format.TABLE))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def pie_panel(title: str, sql: str, description: str, w: int = 6, h: int = 8) -> piechart.Panel:
    return (
        _common(piechart.Panel(), title, description, "none", None, w, h)
        .with_target(ClickHouseTarget(sql, Format.TABLE))
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(True))
        .pie_type(PieChartType.DONUT)
    )


def bar_panel(
    title: str, sql: str, description: str, unit: str, steps: Steps | None = None, w: int = 12, h: int = 8
) -> bargauge.Panel:
    return (
        _common(bargauge.Panel(), title, description, unit, steps, w, h)
        .with_target(ClickHouseTarget(sql, Format.TABLE))
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(True))
        .orientation(common.VizOrientation.HORIZONTAL)
    )


# ---------------------------------------------------------------- variables and annotations

_SCOPED = "tenant = '${tenant}'"
CLUSTER_FILTER = "$__conditionalAll(cluster IN (${cluster:singlequote}), $cluster)"
NODE_FILTER = "$__conditionalAll(node IN (${node:singlequote}), $node)"


def variable_queries() -> dict[str, str]:
    """The SQL of the cluster, node and gpu variables (from the inventory: small, and follows moves)."""
    inv = f"{DATABASE}.inventory"
    return {
        "cluster": f"SELECT DISTINCT cluster FROM {inv} WHERE {_SCOPED} AND cluster != '' ORDER BY cluster",
        "node": f"SELECT DISTINCT node FROM {inv} WHERE {_SCOPED} AND {CLUSTER_FILTER} ORDER BY node",
        # Two columns: the plugin takes the first as the value (UUID, what alert links pass) and the
        # second as the text shown in the picker.
        "gpu": (
            "SELECT gpu, concat(node, ' gpu', toString(gpu_index), ' (', gpu, ')') AS text\n"
            f"FROM {inv} FINAL WHERE {_SCOPED} AND {CLUSTER_FILTER} AND {NODE_FILTER}\nORDER BY node, gpu_index"
        ),
    }


def variables(names: Sequence[str] = ("cluster", "node", "gpu")) -> list[Any]:
    out: list[Any] = [
        dashboard.DatasourceVariable(DATASOURCE_VAR)
        .label("ClickHouse")
        .type(PLUGIN_ID)
        .current(dm.VariableOption(selected=True, text=DATASOURCE_UID, value=DATASOURCE_UID)),
    ]
    out.append(
        dashboard.ConstantVariable("tenant")
        .value("default")
        .description("Tenant whose rows are shown (the collector's auth tenant; `default` without auth).")
    )
    queries = variable_queries()
    for name in names:
        out.append(
            dashboard.QueryVariable(name)
            .label(name.capitalize())
            .datasource(clickhouse_ref())
            .query(queries[name])
            .multi(True)
            .include_all(True)
            .current(dm.VariableOption(selected=True, text="All", value="$__all"))
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
        )
    return out


EVENT_ANNOTATIONS = (
    "gpu.xid",
    "gpu.lost",
    "gpu.throttle.onset",
    "gpu.throttle.clear",
    "gpu.ecc.increase",
    "gpu.row_remap.pending",
    "gpu.row_remap.failure",
    "gpu.nvlink.down",
    "ib.port.down",
)


def annotation_sql(gpu_filter: bool = True) -> str:
    gpu = " AND $__conditionalAll(gpu IN (${gpu:singlequote}), $gpu)" if gpu_filter else ""
    events = ", ".join(f"'{e}'" for e in EVENT_ANNOTATIONS)
    return (
        "SELECT ts AS time, concat(event, ' on ', node, if(gpu = '', '', concat(' gpu', attributes['gpu.index'])))"
        " AS title,\n  body AS text, concat(event, ',', node) AS tags\n"
        f"FROM {DATABASE}.events FINAL\n"
        f"WHERE {_SCOPED} AND $__timeFilter(ts) AND event IN ({events})\n"
        f"  AND {CLUSTER_FILTER} AND {NODE_FILTER}{gpu}\nORDER BY time"
    )


def annotations(gpu_filter: bool = True) -> list[Any]:
    builtin = (
        dashboard.AnnotationQuery()
        .name("Annotations & Alerts")
        .datasource(common.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
        .enable(True)
        .hide(True)
        .icon_color("rgba(0, 211, 255, 1)")
        .type("dashboard")
        .built_in(1)
    )
    events = (
        dashboard.AnnotationQuery().name("Hardware events").datasource(clickhouse_ref()).enable(True).icon_color("red")
    )
    events._internal.target = ClickHouseAnnotationTarget(annotation_sql(gpu_filter))
    return [builtin, events]


def gpu_link(title: str = "GPU health and history") -> tuple[str, str]:
    return (
        title,
        "/d/fleetpulse-gpu?var-node=${__data.fields.node}&var-gpu=${__data.fields.gpu}&${__url_time_range}",
    )


def node_link(title: str = "Node drill-down") -> tuple[str, str]:
    return (title, "/d/fleetpulse-node?var-node=${__data.fields.node}&${__url_time_range}")
