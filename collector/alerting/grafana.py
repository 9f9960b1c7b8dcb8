"""Grafana alert-rule provisioning (apiVersion 1) from the spec: ClickHouse SQL + reduce + threshold.

Each rule has three steps: A, the ClickHouse query (datasource ``grafana-clickhouse-datasource``,
SQL editor, time-series format); B, reduce A to its last value per series; C, threshold on B. The
condition is C. Tests execute A on chDB (macros expanded by collector/grafana/macros.py) and apply B
and C as written here (``evaluate``), so what is tested is what Grafana gets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from collector.alerting import sql
from collector.alerting.promql import has_gpu, render_summary, threshold_literal
from collector.alerting.spec import Alert, Slo, Spec
from collector.alerting.xid_severity import severity_variants

PLUGIN = "grafana-clickhouse-datasource"
FORMAT_TIME_SERIES = 0
EVALUATOR = {">": "gt", "<": "lt"}
_UID_SAFE = re.compile(r"[^a-z0-9-]")


def rule_uid(*parts: str) -> str:
    """Stable uid (Grafana allows 40 characters): kebab-case of the parts."""
    text = "-".join(re.sub(r"(?<!^)(?=[A-Z])", "-", p).lower() for p in parts)
    return _UID_SAFE.sub("-", f"fp-{text}")[:40].rstrip("-")


def _query(spec: Spec, raw_sql: str, range_s: int) -> dict[str, Any]:
    ds = {"type": PLUGIN, "uid": spec.settings.datasource_uid}
    return {
        "refId": "A",
        "relativeTimeRange": {"from": range_s, "to": 0},
        "datasourceUid": spec.settings.datasource_uid,
        "model": {
            "refId": "A",
            "datasource": ds,
            "editorType": "sql",
            "queryType": "timeseries",
            "format": FORMAT_TIME_SERIES,
            "rawSql": raw_sql,
            "intervalMs": spec.settings.eval_interval.seconds * 1000,
            "maxDataPoints": 43200,
        },
    }


def _expressions(op: str, threshold: float) -> list[dict[str, Any]]:
    expr_ds = {"type": "__expr__", "uid": "__expr__"}
    return [
        {
            "refId": "B",
            "relativeTimeRange": {"from": 0, "to": 0},
            "datasourceUid": "__expr__",
            "model": {
                "refId": "B",
                "datasource": expr_ds,
                "type": "reduce",
                "expression": "A",
                "reducer": "last",
                "settings": {"mode": "dropNN"},
            },
        },
        {
            "refId": "C",
            "relativeTimeRange": {"from": 0, "to": 0},
            "datasourceUid": "__expr__",
            "model": {
                "refId": "C",
                "datasource": expr_ds,
                "type": "threshold",
                "expression": "B",
                "conditions": [{"evaluator": {"type": EVALUATOR[op], "params": [threshold]}}],
            },
        },
    ]


def _rule(
    uid: str,
    title: str,
    query: dict[str, Any],
    op: str,
    threshold: float,
    for_: str,
    labels: dict[str, str],
    annotations: dict[str, str],
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "condition": "C",
        "data": [query, *_expressions(op, threshold)],
        "noDataState": "OK",  # no rows = nothing is in the bad state
        "execErrState": "Error",
        "for": for_,
        "labels": labels,
        "annotations": annotations,
        "isPaused": False,
    }


NODE = "{{ $labels.node }}"
GPU = "{{ $labels.gpu_index }} ({{ $labels.gpu }})"
VALUE = "{{ humanize $values.B.Value }}"


def resource_rules(alert: Alert, spec: Spec) -> list[dict[str, Any]]:
    gpu = has_gpu(alert)
    url = f"{spec.settings.grafana_url}/d/{alert.dashboard}?var-node={NODE}"
    if gpu:
        url += "&var-gpu={{ $labels.gpu }}"
    annotations = {
        "summary": render_summary(alert.summary, NODE, GPU, VALUE, "{{{{ $labels.{} }}}}"),
        "description": alert.runbook.explain,
        "runbook_url": f"{spec.settings.runbook_url}/{alert.alert}.md",
        "dashboard_url": url,
    }
    variants = severity_variants(alert.severity, alert.match)
    window_s = alert.window.seconds if alert.window else sql.GAUGE_LOOKBACK_S
    threshold = float(sql.STALE_AFTER_S) if alert.kind == "agent_stale" else alert.threshold
    rules = []
    for severity, match in variants:
        suffix = (severity,) if len(variants) > 1 else ()
        rules.append(
            _rule(
                uid=rule_uid(alert.alert, *suffix),
                title=f"{alert.alert} ({severity})" if suffix else alert.alert,
                query=_query(spec, sql.resource_sql(alert, spec, match), 2 * window_s),
                op=alert.op,
                threshold=threshold,
                for_=str(alert.for_) if alert.for_ else "0s",
                labels={"severity": severity},
                annotations=annotations,
            )
        )
    return rules


def slo_rules(slo: Slo, spec: Spec) -> list[dict[str, Any]]:
    rules = []
    for br in spec.burn_rates:
        title = f"{slo.alert} {threshold_literal(br.factor)}x {br.long}/{br.short}"
        rules.append(
            _rule(
                uid=rule_uid(slo.alert, str(br.long), str(br.short)),
                title=title,
                query=_query(spec, sql.slo_sql(slo, spec, br.long.seconds, br.short.seconds), br.long.seconds + 60),
                op=">",
                threshold=br.factor,
                for_="0s",
                labels={
                    "severity": br.severity,
                    "slo": slo.name,
                    "burn_rate": threshold_literal(br.factor),
                    "long_window": str(br.long),
                    "short_window": str(br.short),
                },
                annotations={
                    "summary": (
                        f"{slo.title} below {slo.objective:.4g} objective: error budget burning {VALUE}x "
                        f"(alert at {threshold_literal(br.factor)}x over {br.long} and {br.short}); "
                        "the dashboard lists the nodes and GPUs"
                    ),
                    "description": slo.runbook.explain,
                    "runbook_url": f"{spec.settings.runbook_url}/{slo.alert}.md",
                    "dashboard_url": f"{spec.settings.grafana_url}/d/{slo.dashboard}",
                },
            )
        )
    return rules


def grafana_files(spec: Spec) -> dict[str, dict[str, Any]]:
    s = spec.settings
    slo = [r for x in spec.slos if "grafana" in x.backends for r in slo_rules(x, spec)]
    res = [r for a in spec.alerts if "grafana" in a.backends for r in resource_rules(a, spec)]

    def group(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
        return {"orgId": 1, "name": name, "folder": s.grafana_folder, "interval": str(s.eval_interval), "rules": rules}

    return {
        "slo-alerts.yaml": {"apiVersion": 1, "groups": [group("fleetpulse-slo", slo)]},
        "resources.yaml": {"apiVersion": 1, "groups": [group("fleetpulse-resources", res)]},
    }


# ---------------------------------------------------------------- evaluation (tests, `alerts eval`)


def evaluate(rule: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Apply the rule's reduce (B) and threshold (C) to query A's rows, as Grafana does.

    Rows are grouped into series by their string columns (Grafana's long-to-wide conversion); returns
    the firing instances as ``{"labels": {...}, "value": float}``.
    """
    steps = {d["refId"]: d["model"] for d in rule["data"]}
    reduce_model, threshold_model = steps["B"], steps["C"]
    if reduce_model["reducer"] != "last" or reduce_model["type"] != "reduce":
        raise ValueError(f"{rule['uid']}: evaluate() knows reduce=last only")
    evaluator = threshold_model["conditions"][0]["evaluator"]
    series: dict[tuple[tuple[str, str], ...], list[tuple[Any, float]]] = {}
    for row in rows:
        labels = tuple(sorted((k, v) for k, v in row.items() if isinstance(v, str)))
        series.setdefault(labels, []).append((row["time"], float(row["value"])))
    firing = []
    for labels, points in series.items():
        values = [v for _, v in sorted(points, key=lambda p: p[0]) if not math.isnan(v)]  # dropNN
        if not values:
            continue
        last = values[-1]
        bound = float(evaluator["params"][0])
        if (evaluator["type"] == "gt" and last > bound) or (evaluator["type"] == "lt" and last < bound):
            firing.append({"labels": dict(labels), "value": last})
    return firing
