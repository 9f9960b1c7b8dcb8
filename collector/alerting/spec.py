"""The alert spec: `alerts/slos.yaml` (SLOs) and `alerts/resources.yaml` (resource alerts).

Both files are validated here before anything is generated; every error names the file, line, key
path, what was expected and what was found, e.g.::

    alerts/resources.yaml:41: alerts[3].metric: 'hw.gpu.ecc.error' is not in agent/catalog.py; did you mean 'hw.gpu.ecc.errors'?

The SLI kinds and resource-alert kinds are small, closed sets (see ``SLI_KINDS`` and ``ALERT_KINDS``):
each kind has one PromQL template and one ClickHouse SQL template, filled from the same spec fields,
so the Prometheus and Grafana rules cannot drift apart.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.catalog import CATALOG, HARMFUL_THROTTLE_REASONS
from collector.alerting.yamlio import LineDict, SpecError, load_yaml
from collector.telemetry import SelfMetric, self_metrics

# The collector's own metrics (collector/telemetry.py): on its /metrics for Prometheus and, written by
# collector/selfmon.py, in ClickHouse under these OTel names for the Grafana rules.
COLLECTOR_METRICS: dict[str, SelfMetric] = self_metrics()

SEVERITIES = ("page", "ticket", "info")
BACKENDS = ("prometheus", "grafana")
DASHBOARDS = ("fleetpulse-overview", "fleetpulse-gpu", "fleetpulse-node", "fleetpulse-fabric", "fleetpulse-pipeline")
# SLI kinds: how the error ratio of a window is computed (templates in promql.py and sql.py).
SLI_KINDS = ("gpu_state", "node_freshness", "ingest_rejections")
# Resource alert kinds (templates in promql.py and sql.py); 'promql' is Prometheus-only raw PromQL;
# collector_* kinds read the collector's own metrics (COLLECTOR_METRICS).
ALERT_KINDS = (
    "counter_increase",
    "counter_rate",
    "gauge",
    "gauge_avg",
    "gpu_count_drop",
    "agent_down",
    "agent_stale",
    "promql",
    "collector_gauge",
    "collector_ratio",
)
COLLECTOR_KINDS = ("collector_gauge", "collector_ratio")
OPS = (">", ">=", "<", "<=", "==", "!=")
GRAFANA_OPS = (">", "<")
# Symbolic values a `match` list may use, expanded from the catalog (single source of truth).
SYMBOLS: dict[str, tuple[str, ...]] = {"$harmful_throttle_reasons": HARMFUL_THROTTLE_REASONS}

_DURATION = re.compile(r"^(\d+)(s|m|h|d|w)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_ALERT_NAME = re.compile(r"^[A-Z][A-Za-z0-9]+$")
_SLO_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Duration:
    text: str  # as Prometheus writes it: 5m, 1h, 3d
    seconds: int

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class BurnRate:
    severity: str
    factor: float
    long: Duration
    short: Duration


@dataclass(frozen=True, slots=True)
class Runbook:
    explain: str
    counters: tuple[str, ...]
    actions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Slo:
    name: str
    alert: str
    title: str
    objective: float
    sli_kind: str
    sli: dict[str, Any]
    dashboard: str
    runbook: Runbook
    backends: tuple[str, ...]

    @property
    def budget(self) -> float:
        return round(1.0 - self.objective, 12)


@dataclass(frozen=True, slots=True)
class Alert:
    alert: str
    kind: str
    severity: str  # or 'xid' when severity comes from the Xid catalog
    summary: str
    dashboard: str
    runbook: Runbook
    backends: tuple[str, ...]
    metric: str = ""
    match: dict[str, tuple[str, ...]] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    window: Duration | None = None
    threshold: float = 0.0
    op: str = ">"
    for_: Duration | None = None
    expr: str = ""  # kind promql only
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Settings:
    period: Duration
    tenant: str
    agent_job: str
    collector_job: str
    grafana_url: str
    runbook_url: str
    eval_interval: Duration
    grafana_folder: str
    datasource_uid: str


@dataclass(frozen=True, slots=True)
class Spec:
    settings: Settings
    burn_rates: tuple[BurnRate, ...]
    slos: tuple[Slo, ...]
    alerts: tuple[Alert, ...]

    @property
    def windows(self) -> tuple[Duration, ...]:
        """Every window a burn-rate pair reads, shortest first (one recording rule each)."""
        seen = {w.text: w for b in self.burn_rates for w in (b.long, b.short)}
        return tuple(sorted(seen.values(), key=lambda d: d.seconds))

    def alert_names(self) -> list[str]:
        return [s.alert for s in self.slos] + [a.alert for a in self.alerts]


class _Node:
    """A cursor into the loaded YAML: knows its file, key path and line, and checks types."""

    def __init__(self, file: Path, value: Any, path: str, line: int) -> None:
        self.file, self.value, self.path, self.line = file, value, path, line

    def fail(self, problem: str) -> SpecError:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return SpecError(f"{where}: {self.path or '(top level)'}: {problem}")

    def mapping(self, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> _Node:
        if not isinstance(self.value, dict):
            raise self.fail(f"expected a mapping, got {_kind(self.value)}")
        for key in self.value:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(allowed)}"
                raise self.child(str(key)).fail(f"unknown key{hint}")
        for key in required:
            if key not in self.value:
                raise self.fail(f"missing required key {key!r}")
        return self

    def child(self, key: str | int) -> _Node:
        if isinstance(key, int):
            value = self.value[key]
            line = value.line if isinstance(value, LineDict) else self.line
            return _Node(self.file, value, f"{self.path}[{key}]", line)
        value = self.value.get(key) if isinstance(self.value, dict) else None
        line = self.value.key_lines.get(key, self.line) if isinstance(self.value, LineDict) else self.line
        return _Node(self.file, value, f"{self.path}.{key}" if self.path else key, line)

    def has(self, key: str) -> bool:
        return isinstance(self.value, dict) and key in self.value

    def items(self) -> list[_Node]:
        if not isinstance(self.value, list):
            raise self.fail(f"expected a list, got {_kind(self.value)}")
        return [self.child(i) for i in range(len(self.value))]

    def string(self, pattern: re.Pattern[str] | None = None, what: str = "") -> str:
        if not isinstance(self.value, str) or not self.value.strip():
            raise self.fail(f"expected a non-empty string, got {_kind(self.value)}")
        if pattern and not pattern.match(self.value):
            raise self.fail(f"expected {what or pattern.pattern}, got {self.value!r}")
        return self.value

    def choice(self, choices: tuple[str, ...]) -> str:
        if self.value not in choices:
            close = difflib.get_close_matches(str(self.value), choices, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise self.fail(f"expected one of {', '.join(choices)}, got {self.value!r}{hint}")
        return self.value

    def number(self, low: float | None = None, high: float | None = None, strict: bool = False) -> float:
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise self.fail(f"expected a number, got {_kind(self.value)}")
        v = float(self.value)
        if (low is not None and (v <= low if strict else v < low)) or (
            high is not None and (v >= high if strict else v > high)
        ):
            bounds = f"{'(' if strict else '['}{low}, {high}{')' if strict else ']'}"
            raise self.fail(f"expected a number in {bounds}, got {self.value!r}")
        return v

    def duration(self) -> Duration:
        m = _DURATION.match(str(self.value)) if isinstance(self.value, str) else None
        if not m or int(m.group(1)) == 0:
            raise self.fail(f"expected a duration like 5m, 1h, 3d (s, m, h, d, w), got {self.value!r}")
        return Duration(self.value, int(m.group(1)) * _UNIT_S[m.group(2)])

    def strings(self) -> tuple[str, ...]:
        if isinstance(self.value, str):
            return (self.value,)
        items = self.items()
        return tuple(str(i.value) if isinstance(i.value, int) else i.string() for i in items)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", LineDict: "a mapping", list: "a list", str: f"the string {value!r}"}.get(
        type(value), f"{type(value).__name__} {value!r}"
    )


def _runbook(node: _Node) -> Runbook:
    node.mapping(("explain", "counters", "actions"), ("explain", "counters", "actions"))
    counters = node.child("counters").strings()
    for i, name in enumerate(counters):
        metric = name.split("{", 1)[0]
        known = metric in CATALOG or metric in COLLECTOR_METRICS
        if not known and not metric.startswith(("fleetpulse_collector_", "up")):
            raise node.child("counters").child(i).fail(_unknown_metric(metric))
    return Runbook(node.child("explain").string(), counters, node.child("actions").strings())


def _unknown_metric(name: str) -> str:
    close = difflib.get_close_matches(name, list(CATALOG), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{name!r} is not in agent/catalog.py{hint}"


def _backends(node: _Node) -> tuple[str, ...]:
    if node.value is None:
        return BACKENDS
    values = node.strings()
    for i, v in enumerate(values):
        if v not in BACKENDS:
            raise node.child(i).fail(f"expected one of {', '.join(BACKENDS)}, got {v!r}")
    return values


def _settings(node: _Node) -> Settings:
    keys = (
        "period",
        "tenant",
        "agent_job",
        "collector_job",
        "grafana_url",
        "runbook_url",
        "eval_interval",
        "grafana_folder",
        "datasource_uid",
    )
    node.mapping(keys, keys)
    return Settings(
        period=node.child("period").duration(),
        tenant=node.child("tenant").string(),
        agent_job=node.child("agent_job").string(),
        collector_job=node.child("collector_job").string(),
        grafana_url=node.child("grafana_url").string().rstrip("/"),
        runbook_url=node.child("runbook_url").string().rstrip("/"),
        eval_interval=node.child("eval_interval").duration(),
        grafana_folder=node.child("grafana_folder").string(),
        datasource_uid=node.child("datasource_uid").string(),
    )


def _burn_rate(node: _Node) -> BurnRate:
    node.mapping(("severity", "factor", "long", "short"), ("severity", "factor", "long", "short"))
    br = BurnRate(
        severity=node.child("severity").choice(SEVERITIES),
        factor=node.child("factor").number(0, None, strict=True),
        long=node.child("long").duration(),
        short=node.child("short").duration(),
    )
    if br.short.seconds >= br.long.seconds:
        raise node.child("short").fail(f"the short window must be shorter than the long one ({br.long})")
    return br


def _gpu_metric(node: _Node) -> str:
    name = node.string()
    if name not in CATALOG:
        raise node.fail(_unknown_metric(name))
    return name


def _match(node: _Node, metric: str) -> dict[str, tuple[str, ...]]:
    if node.value is None:
        return {}
    if not isinstance(node.value, dict):
        raise node.fail(f"expected a mapping of attribute → value or list of values, got {_kind(node.value)}")
    out: dict[str, tuple[str, ...]] = {}
    allowed = CATALOG[metric].attributes
    for key in node.value:
        child = node.child(key)
        if key not in allowed:
            raise child.fail(f"{metric} has no attribute {key!r}; it has: {', '.join(allowed)}")
        if isinstance(child.value, str) and child.value.startswith("$"):
            if child.value not in SYMBOLS:
                raise child.fail(f"unknown symbol {child.value!r}; known: {', '.join(SYMBOLS)}")
            out[key] = SYMBOLS[child.value]
        else:
            out[key] = child.strings()
    return out


def _labels(node: _Node, metric: str) -> tuple[str, ...]:
    if node.value is None:
        return ()
    labels = node.strings()
    for i, label in enumerate(labels):
        if metric and label not in CATALOG[metric].attributes:
            raise node.child(i).fail(
                f"{metric} has no attribute {label!r}; it has: {', '.join(CATALOG[metric].attributes)}"
            )
    return labels


def _slo(node: _Node, names: set[str]) -> Slo:
    keys = ("name", "alert", "title", "objective", "sli", "dashboard", "runbook", "backends")
    node.mapping(keys, ("name", "alert", "title", "objective", "sli", "dashboard", "runbook"))
    name = node.child("name").string(_SLO_NAME, "snake_case, e.g. gpu_availability")
    alert = node.child("alert").string(_ALERT_NAME, "CamelCase, e.g. GpuAvailabilityBudgetBurn")
    for n in (name, alert):
        if n in names:
            raise node.fail(f"{n!r} is defined twice")
        names.add(n)
    sli_node = node.child("sli")
    sli_node.mapping(("kind", "bad_when_any", "match"), ("kind",))
    kind = sli_node.child("kind").choice(SLI_KINDS)
    sli: dict[str, Any] = {}
    if kind == "gpu_state":
        metrics_node = sli_node.child("bad_when_any")
        metrics = metrics_node.strings()
        for i in range(len(metrics)):
            _gpu_metric(metrics_node.child(i))
        sli["bad_when_any"] = metrics
        # The match must make sense for every metric listed.
        sli["match"] = {}
        for metric in metrics:
            sli["match"] = _match(sli_node.child("match"), metric)
    elif sli_node.has("bad_when_any") or sli_node.has("match"):
        raise sli_node.fail(f"kind {kind} takes no bad_when_any or match")
    backends = _backends(node.child("backends"))
    return Slo(
        name=name,
        alert=alert,
        title=node.child("title").string(),
        objective=node.child("objective").number(0, 1, strict=True),
        sli_kind=kind,
        sli=sli,
        dashboard=node.child("dashboard").choice(DASHBOARDS),
        runbook=_runbook(node.child("runbook")),
        backends=backends,
    )


_ALERT_KEYS = (
    "alert",
    "kind",
    "severity",
    "summary",
    "dashboard",
    "runbook",
    "backends",
    "metric",
    "match",
    "labels",
    "window",
    "threshold",
    "op",
    "for",
    "expr",
    "params",
)
# Which keys each kind needs beyond the common ones.
_KIND_NEEDS: dict[str, tuple[str, ...]] = {
    "counter_increase": ("metric", "window"),
    "counter_rate": ("metric", "window", "threshold"),
    "gauge": ("metric", "threshold"),
    "gauge_avg": ("metric", "window", "threshold"),
    "gpu_count_drop": ("window",),
    "agent_down": (),
    "agent_stale": ("window",),
    "promql": ("expr",),
    "collector_gauge": ("metric", "threshold"),
    "collector_ratio": ("metric", "window", "threshold", "params"),
}


# Where a kind's data lives decides its default backends.
_DEFAULT_BACKENDS: dict[str, tuple[str, ...]] = {
    "promql": ("prometheus",),
    "agent_down": ("prometheus",),
    "agent_stale": ("grafana",),
}


def _alert(node: _Node, names: set[str]) -> Alert:
    node.mapping(_ALERT_KEYS, ("alert", "kind", "severity", "summary", "dashboard", "runbook"))
    name = node.child("alert").string(_ALERT_NAME, "CamelCase, e.g. GpuRowRemapFailure")
    if name in names:
        raise node.child("alert").fail(f"{name!r} is defined twice")
    names.add(name)
    kind = node.child("kind").choice(ALERT_KINDS)
    for key in _KIND_NEEDS[kind]:
        if not node.has(key):
            raise node.fail(f"kind {kind} needs {key!r}")
    if kind in COLLECTOR_KINDS:
        return _collector_alert(node, name, kind)
    metric = _gpu_metric(node.child("metric")) if node.has("metric") else ""
    if metric and kind.startswith("counter") and not CATALOG[metric].is_counter:
        raise node.child("metric").fail(f"kind {kind} needs a counter; {metric} is a {CATALOG[metric].instrument}")
    if metric and kind.startswith("gauge") and CATALOG[metric].is_counter:
        raise node.child("metric").fail(f"kind {kind} needs a gauge; {metric} is a counter")
    severity = node.child("severity").choice((*SEVERITIES, "xid"))
    if severity == "xid" and metric != "hw.gpu.xid.errors":
        raise node.child("severity").fail("severity 'xid' (from agent/xid.py) only applies to metric hw.gpu.xid.errors")
    backends = _backends(node.child("backends"))
    if not node.has("backends"):
        backends = _DEFAULT_BACKENDS.get(kind, BACKENDS)
    if kind == "promql" and "grafana" in backends:
        raise node.child("backends").fail("kind promql is Prometheus-only: use backends: [prometheus]")
    if kind == "agent_down" and "grafana" in backends:
        raise node.child("backends").fail(
            "agent_down reads Prometheus' `up`; ClickHouse cannot tell down from stale (use agent_stale)"
        )
    if kind == "agent_stale" and "prometheus" in backends:
        raise node.child("backends").fail(
            "agent_stale reads stored data in ClickHouse; Prometheus sees a stopped agent as down (use agent_down)"
        )
    op = node.child("op").choice(OPS) if node.has("op") else ">"
    if "grafana" in backends and op not in GRAFANA_OPS:
        raise node.child("op").fail(
            f"Grafana threshold expressions compare with > or < only; got {op!r} (e.g. use > 0 for a 0/1 gauge)"
        )
    summary = node.child("summary").string()
    for placeholder in re.findall(r"\{([^}]*)\}", summary):
        if placeholder not in ("node", "gpu", "value", "cluster") and not placeholder.startswith("label:"):
            raise node.child("summary").fail(
                f"unknown placeholder {{{placeholder}}}; use {{node}}, {{gpu}}, {{value}}, {{cluster}} or {{label:ATTR}}"
            )
    params_node = node.child("params")
    params = dict(params_node.value) if isinstance(params_node.value, dict) else {}
    return Alert(
        alert=name,
        kind=kind,
        severity=severity,
        summary=summary,
        dashboard=node.child("dashboard").choice(DASHBOARDS),
        runbook=_runbook(node.child("runbook")),
        backends=backends,
        metric=metric,
        match=_match(node.child("match"), metric) if metric else {},
        labels=_labels(node.child("labels"), metric),
        window=node.child("window").duration() if node.has("window") else None,
        threshold=node.child("threshold").number() if node.has("threshold") else 0.0,
        op=op,
        for_=node.child("for").duration() if node.has("for") else None,
        expr=node.child("expr").string() if node.has("expr") else "",
        params=params,
    )


def _collector_metric(node: _Node, instrument: str) -> str:
    name = node.string()
    spec = COLLECTOR_METRICS.get(name)
    if spec is None:
        close = difflib.get_close_matches(name, list(COLLECTOR_METRICS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(COLLECTOR_METRICS)}"
        raise node.fail(f"{name!r} is not a collector self-metric (collector/telemetry.py){hint}")
    if spec.instrument != instrument:
        raise node.fail(f"needs a {instrument}; {name} is a {spec.instrument}")
    return name


def _collector_alert(node: _Node, name: str, kind: str) -> Alert:
    """collector_gauge: a self-metric gauge against a threshold, per collector instance.
    collector_ratio: increase of one self-metric counter (per instance and its `labels`) over that of
    `params.denominator` (per instance) within `window`, against a threshold."""
    for key in ("match", "expr"):
        if node.has(key):
            raise node.child(key).fail(f"kind {kind} takes no {key}")
    instrument = "gauge" if kind == "collector_gauge" else "counter"
    metric = _collector_metric(node.child("metric"), instrument)
    labels = node.child("labels").strings() if node.has("labels") else ()
    for i, label_name in enumerate(labels):
        if label_name not in COLLECTOR_METRICS[metric].labels:
            raise (
                node.child("labels")
                .child(i)
                .fail(
                    f"{metric} has no label {label_name!r}; it has: {', '.join(COLLECTOR_METRICS[metric].labels) or 'none'}"
                )
            )
    params: dict[str, Any] = {}
    if kind == "collector_ratio":
        params_node = node.child("params")
        params_node.mapping(("denominator",), ("denominator",))
        params["denominator"] = _collector_metric(params_node.child("denominator"), "counter")
    elif node.has("params"):
        raise node.child("params").fail(f"kind {kind} takes no params")
    backends = _backends(node.child("backends"))
    op = node.child("op").choice(GRAFANA_OPS) if node.has("op") else ">"
    summary = node.child("summary").string()
    for placeholder in re.findall(r"\{([^}]*)\}", summary):
        if placeholder not in ("node", "value") and placeholder.removeprefix("label:") not in labels:
            raise node.child("summary").fail(
                f"unknown placeholder {{{placeholder}}}; use {{node}}, {{value}} or {{label:X}} with X in labels"
            )
    window = node.child("window").duration() if node.has("window") else None
    return Alert(
        alert=name,
        kind=kind,
        severity=node.child("severity").choice(SEVERITIES),
        summary=summary,
        dashboard=node.child("dashboard").choice(DASHBOARDS),
        runbook=_runbook(node.child("runbook")),
        backends=backends,
        metric=metric,
        labels=labels,
        window=window,
        threshold=node.child("threshold").number(),
        op=op,
        for_=node.child("for").duration() if node.has("for") else None,
        params=params,
    )


def load_spec(slos_path: Path, resources_path: Path) -> Spec:
    """Load and validate both spec files; raises SpecError naming file, line and key path."""
    slo_root = _Node(slos_path, load_yaml(slos_path), "", 1)
    slo_root.mapping(("version", "settings", "burn_rates", "slos"), ("version", "settings", "burn_rates", "slos"))
    if slo_root.child("version").value != 1:
        raise slo_root.child("version").fail(f"expected 1, got {slo_root.child('version').value!r}")
    settings = _settings(slo_root.child("settings"))
    burn_rates = tuple(_burn_rate(n) for n in slo_root.child("burn_rates").items())
    if not burn_rates:
        raise slo_root.child("burn_rates").fail("expected at least one burn-rate pair")
    names: set[str] = set()
    slos = tuple(_slo(n, names) for n in slo_root.child("slos").items())

    res_root = _Node(resources_path, load_yaml(resources_path), "", 1)
    res_root.mapping(("version", "alerts"), ("version", "alerts"))
    if res_root.child("version").value != 1:
        raise res_root.child("version").fail(f"expected 1, got {res_root.child('version').value!r}")
    alerts = tuple(_alert(n, names) for n in res_root.child("alerts").items())
    return Spec(settings, burn_rates, slos, alerts)


REPO = Path(__file__).resolve().parents[2]
DEFAULT_SLOS = REPO / "alerts" / "slos.yaml"
DEFAULT_RESOURCES = REPO / "alerts" / "resources.yaml"


def load_default() -> Spec:
    return load_spec(DEFAULT_SLOS, DEFAULT_RESOURCES)
