"""Prometheus rule groups from the spec: SLI recording rules, burn-rate alerts, resource alerts."""

from __future__ import annotations

from typing import Any

from agent.catalog import CATALOG
from collector.alerting.spec import COLLECTOR_METRICS, Alert, Slo, Spec
from collector.alerting.xid_severity import severity_variants

GPU_LABELS = ("hw_id", "gpu_index", "hw_model")
# The node's name: the topology resource attributes when the exporter or relabelling sets them, else
# the scrape target.
NODE_TEMPLATE = "{{ or $labels.k8s_node_name $labels.host_name $labels.node $labels.instance }}"
GPU_TEMPLATE = "{{ $labels.gpu_index }} ({{ $labels.hw_id }})"
SLI_RECORD = "slo:sli_error:ratio_rate{window}"
GPU_BAD_RECORD = "slo:gpu_bad:max"
NODE_GPUS_RECORD = "fleetpulse:node_gpus:count"


def label(attribute: str) -> str:
    return attribute.replace(".", "_").replace("-", "_")


def selector(metric: str, match: dict[str, tuple[str, ...]], extra: str = "") -> str:
    parts = [extra] if extra else []
    for key, values in match.items():
        if len(values) == 1:
            parts.append(f'{label(key)}="{values[0]}"')
        else:
            parts.append(f'{label(key)}=~"{"|".join(values)}"')
    return f"{metric}{{{', '.join(parts)}}}" if parts else metric


def collapsed(metrics: tuple[str, ...], keep: tuple[str, ...]) -> str:
    """Prometheus labels to sum away: the metrics' attributes that are neither GPU identity nor kept."""
    drop: list[str] = []
    for metric in metrics:
        for attr in CATALOG[metric].attributes:
            name = label(attr)
            if attr not in keep and name not in GPU_LABELS and name not in drop:
                drop.append(name)
    return ", ".join(drop)


def threshold_literal(value: float) -> str:
    return repr(round(value, 12)).removesuffix(".0") if value == int(value) else repr(round(value, 12))


# ---------------------------------------------------------------- SLOs


def sli_window_expr(slo: Slo, spec: Spec, window: str) -> str:
    """The SLO's error ratio over `window` (0 = all good, 1 = all bad)."""
    s = spec.settings
    if slo.sli_kind == "gpu_state":
        rec = f'{GPU_BAD_RECORD}{{slo="{slo.name}"}}'
        return f"sum(sum_over_time({rec}[{window}]))\n/\nsum(count_over_time({rec}[{window}]))"
    if slo.sli_kind == "node_freshness":
        up = f'up{{job="{s.agent_job}"}}'
        return f"1 - (\n  sum(sum_over_time({up}[{window}]))\n  /\n  sum(count_over_time({up}[{window}]))\n)"
    if slo.sli_kind == "ingest_rejections":
        job = f'job="{s.collector_job}"'
        return (
            f"sum(rate(fleetpulse_collector_points_rejected_total{{{job}}}[{window}]))\n/\n"
            f"sum(rate(fleetpulse_collector_points_received_total{{{job}}}[{window}]))"
        )
    raise AssertionError(slo.sli_kind)


def gpu_bad_expr(slo: Slo) -> str:
    """Per GPU and evaluation: 1 when any of the SLO's bad-state gauges is 1."""
    metrics = tuple(slo.sli["bad_when_any"])
    names = [CATALOG[m].prometheus_name for m in metrics]
    match = slo.sli.get("match") or {}
    inner = selector(names[0], match) if len(names) == 1 else selector("", match, f'__name__=~"{"|".join(names)}"')
    return f"max without ({collapsed(metrics, ())}) ({inner})"


def worst_offenders(slo: Slo, spec: Spec, window: str) -> str:
    """A template listing the three worst GPUs / nodes, so the page names where to look."""
    if slo.sli_kind == "gpu_state":
        query = f'topk(3, avg_over_time({GPU_BAD_RECORD}{{slo="{slo.name}"}}[{window}]) > 0)'
        item = "{{ or .Labels.k8s_node_name .Labels.host_name .Labels.instance }} GPU {{ .Labels.gpu_index }} ({{ .Labels.hw_id }})"
    elif slo.sli_kind == "node_freshness":
        query = f'topk(3, 1 - avg_over_time(up{{job="{spec.settings.agent_job}"}}[{window}]) > 0)'
        item = "{{ or .Labels.k8s_node_name .Labels.host_name .Labels.instance }}"
    else:
        query = f'topk(3, sum by (instance, reason) (rate(fleetpulse_collector_points_rejected_total{{job="{spec.settings.collector_job}"}}[{window}])) > 0)'
        item = "{{ .Labels.instance }} ({{ .Labels.reason }})"
    quoted = query.replace('"', '\\"')
    return f'{{{{ with query "{quoted}" }}}}{{{{ range . }}}}{item}; {{{{ end }}}}{{{{ else }}}}none found{{{{ end }}}}'


def slo_recording_groups(spec: Spec) -> list[dict[str, Any]]:
    interval = str(spec.settings.eval_interval)
    base: list[dict[str, Any]] = []
    for slo in spec.slos:
        if "prometheus" in slo.backends and slo.sli_kind == "gpu_state":
            base.append({"record": GPU_BAD_RECORD, "expr": gpu_bad_expr(slo), "labels": {"slo": slo.name}})
    groups: list[dict[str, Any]] = []
    if base:
        groups.append({"name": "fleetpulse-slo-gpu-state", "interval": interval, "rules": base})
    windows: list[dict[str, Any]] = []
    for window in spec.windows:
        for slo in spec.slos:
            if "prometheus" not in slo.backends:
                continue
            windows.append(
                {
                    "record": SLI_RECORD.format(window=window),
                    "expr": sli_window_expr(slo, spec, str(window)),
                    "labels": {"slo": slo.name},
                }
            )
    groups.append({"name": "fleetpulse-slo-sli", "interval": interval, "rules": windows})
    return groups


def slo_alert_groups(spec: Spec) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for slo in spec.slos:
        if "prometheus" not in slo.backends:
            continue
        for br in spec.burn_rates:
            threshold = f"({threshold_literal(br.factor)} * {threshold_literal(slo.budget)})"
            long_rec = f'{SLI_RECORD.format(window=br.long)}{{slo="{slo.name}"}}'
            short_rec = f'{SLI_RECORD.format(window=br.short)}{{slo="{slo.name}"}}'
            rules.append(
                {
                    "alert": slo.alert,
                    "expr": f"{long_rec} > {threshold}\nand\n{short_rec} > {threshold}",
                    "labels": {
                        "severity": br.severity,
                        "slo": slo.name,
                        "burn_rate": threshold_literal(br.factor),
                        "long_window": str(br.long),
                        "short_window": str(br.short),
                    },
                    "annotations": {
                        "summary": (
                            f"{slo.title} below {slo.objective:.4g} objective: error budget burning "
                            f"{threshold_literal(br.factor)}x over {br.long} and {br.short}; worst: "
                            f"{worst_offenders(slo, spec, str(br.short))}"
                        ),
                        "description": slo.runbook.explain,
                        "runbook_url": f"{spec.settings.runbook_url}/{slo.alert}.md",
                        "dashboard_url": f"{spec.settings.grafana_url}/d/{slo.dashboard}",
                    },
                }
            )
    return [{"name": "fleetpulse-slo-alerts", "interval": str(spec.settings.eval_interval), "rules": rules}]


# ---------------------------------------------------------------- resource alerts


def render_summary(summary: str, node: str, gpu: str, value: str, label_fmt: str) -> str:
    out = summary.replace("{node}", node).replace("{gpu}", gpu).replace("{value}", value)
    out = out.replace("{cluster}", label_fmt.format("k8s_cluster_name"))
    while "{label:" in out:
        start = out.index("{label:")
        end = out.index("}", start)
        out = out[:start] + label_fmt.format(label(out[start + 7 : end])) + out[end + 1 :]
    return out


def has_gpu(alert: Alert) -> bool:
    return alert.metric in CATALOG and "hw.id" in CATALOG[alert.metric].attributes


def collector_expr(alert: Alert, spec: Spec) -> str:
    """The collector_* kinds over /metrics, per scrape target (job, instance)."""
    job = f'{{job="{spec.settings.collector_job}"}}'
    metric = COLLECTOR_METRICS[alert.metric].prometheus_name
    t = threshold_literal(alert.threshold)
    if alert.kind == "collector_gauge":
        return f"{metric}{job} {alert.op} {t}"
    denominator = COLLECTOR_METRICS[alert.params["denominator"]].prometheus_name
    by = ", ".join(("job", "instance", *(label(x) for x in alert.labels)))
    return (
        f"sum by ({by}) (rate({metric}{job}[{alert.window}]))\n"
        "  / on (job, instance) group_left\n"
        f"sum by (job, instance) (rate({denominator}{job}[{alert.window}]))\n"
        f"  {alert.op} {t}"
    )


def dashboard_url(spec: Spec, uid: str, node: str, gpu: str | None) -> str:
    url = f"{spec.settings.grafana_url}/d/{uid}?var-node={node}"
    return f"{url}&var-gpu={gpu}" if gpu else url


def resource_expr(alert: Alert, spec: Spec, match: dict[str, tuple[str, ...]] | None = None) -> str:
    if alert.kind in ("collector_gauge", "collector_ratio"):
        return collector_expr(alert, spec)
    match = alert.match if match is None else match
    s = spec.settings
    metric = CATALOG[alert.metric].prometheus_name if alert.metric else ""
    keep = alert.labels
    drop = collapsed((alert.metric,), keep) if alert.metric else ""
    t = threshold_literal(alert.threshold)
    sel = selector(metric, match) if metric else ""
    if alert.kind == "counter_increase":
        return (
            f"sum without ({drop}) (increase({sel}[{alert.window}])) {alert.op} {t}\n"
            f"or\n(\n  sum without ({drop}) ({sel}) {alert.op} {t}\n"
            f"  unless\n  sum without ({drop}) ({sel} offset {alert.window})\n)"
        )
    if alert.kind == "counter_rate":
        return f"sum without ({drop}) (rate({sel}[{alert.window}])) {alert.op} {t}"
    if alert.kind == "gauge":
        return f"max without ({drop}) ({sel}) {alert.op} {t}" if drop else f"{sel} {alert.op} {t}"
    if alert.kind == "gauge_avg":
        return f"max without ({drop}) (avg_over_time({sel}[{alert.window}])) {alert.op} {t}"
    if alert.kind == "gpu_count_drop":
        return f"max_over_time({NODE_GPUS_RECORD}[{alert.window}]) - {NODE_GPUS_RECORD} > 0"
    if alert.kind == "agent_down":
        return f'up{{job="{s.agent_job}"}} == 0'
    if alert.kind == "promql":
        return alert.expr.replace("${collector_job}", s.collector_job).replace("${agent_job}", s.agent_job)
    raise AssertionError(alert.kind)


def resource_rules(alert: Alert, spec: Spec) -> list[dict[str, Any]]:
    gpu = has_gpu(alert)
    summary = render_summary(
        alert.summary, NODE_TEMPLATE, GPU_TEMPLATE, "{{ $value | humanize }}", "{{{{ $labels.{} }}}}"
    )
    annotations = {
        "summary": summary,
        "description": alert.runbook.explain,
        "runbook_url": f"{spec.settings.runbook_url}/{alert.alert}.md",
        "dashboard_url": dashboard_url(spec, alert.dashboard, NODE_TEMPLATE, "{{ $labels.hw_id }}" if gpu else None),
    }
    variants = severity_variants(alert.severity, alert.match)
    rules = []
    for severity, match in variants:
        rule: dict[str, Any] = {"alert": alert.alert, "expr": resource_expr(alert, spec, match)}
        if alert.for_:
            rule["for"] = str(alert.for_)
        rule["labels"] = {"severity": severity}
        rule["annotations"] = annotations
        rules.append(rule)
    return rules


def resource_groups(spec: Spec) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    if any(a.kind == "gpu_count_drop" and "prometheus" in a.backends for a in spec.alerts):
        info = CATALOG["hw.gpu.info"]
        drop = ", ".join(label(a) for a in info.attributes)
        rules.append({"record": NODE_GPUS_RECORD, "expr": f"count without ({drop}) ({info.prometheus_name})"})
    for alert in spec.alerts:
        if "prometheus" in alert.backends:
            rules.extend(resource_rules(alert, spec))
    return [{"name": "fleetpulse-resources", "interval": str(spec.settings.eval_interval), "rules": rules}]


def prometheus_files(spec: Spec) -> dict[str, dict[str, Any]]:
    """File name → rule file content."""
    return {
        "slo-recording.yaml": {"groups": slo_recording_groups(spec)},
        "slo-alerts.yaml": {"groups": slo_alert_groups(spec)},
        "resources.yaml": {"groups": resource_groups(spec)},
    }
