"""A typed ClickHouse target for grafana-foundation-sdk panels (the SDK ships no ClickHouse query type).

The JSON matches what the grafana-clickhouse-datasource (v4) query editor saves for a raw-SQL query::

    {"refId": "A", "datasource": {...}, "editorType": "sql", "queryType": "timeseries",
     "format": 0, "rawSql": "SELECT ..."}

``format`` is the plugin's Format enum (0 time series, 1 table, 2 logs); ``queryType`` is the editor's
matching tab.
"""

from __future__ import annotations

import enum
from typing import Any, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm

PLUGIN_ID = "grafana-clickhouse-datasource"
DATASOURCE_UID = "fleetpulse-clickhouse"
# Panels point at the dashboard's datasource variable so an imported dashboard follows the picker.
DATASOURCE_VAR = "datasource"


class Format(enum.IntEnum):
    TIME_SERIES = 0
    TABLE = 1
    LOGS = 2


_QUERY_TYPE = {Format.TIME_SERIES: "timeseries", Format.TABLE: "table", Format.LOGS: "logs"}


def clickhouse_ref() -> common.DataSourceRef:
    return common.DataSourceRef(type_val=PLUGIN_ID, uid="${" + DATASOURCE_VAR + "}")


class ClickHouseQuery(cogvariants.Dataquery):
    """One raw-SQL target of the ClickHouse datasource."""

    def __init__(self, raw_sql: str = "", fmt: Format = Format.TABLE, ref_id: str = "A") -> None:
        self.raw_sql = raw_sql
        self.format = fmt
        self.ref_id = ref_id
        self.datasource = clickhouse_ref()

    def to_json(self) -> dict[str, Any]:
        return {
            "refId": self.ref_id,
            "datasource": self.datasource.to_json(),
            "editorType": "sql",
            "queryType": _QUERY_TYPE[self.format],
            "format": int(self.format),
            "rawSql": self.raw_sql,
        }


class ClickHouseTarget(cogbuilder.Builder[ClickHouseQuery]):
    """Builder so targets plug into ``Panel.with_target`` like the SDK's own query builders."""

    def __init__(self, raw_sql: str, fmt: Format = Format.TABLE) -> None:
        if not raw_sql.strip():
            raise ValueError("a ClickHouse target needs SQL")
        self._internal = ClickHouseQuery(raw_sql.strip(), fmt)

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def build(self) -> ClickHouseQuery:
        return self._internal


class ClickHouseAnnotationTarget(dm.AnnotationTarget):
    """An annotation query's target in the plugin's shape (the SDK's type only knows Grafana's own)."""

    def __init__(self, raw_sql: str) -> None:
        super().__init__()
        self.raw_sql = raw_sql.strip()

    def to_json(self) -> dict[str, object]:
        return {"refId": "annotation", "editorType": "sql", "format": int(Format.TABLE), "rawSql": self.raw_sql}
