"""Prometheus side of the alert spec: promtool check + unit tests for every rule, burn-rate thresholds
as DESIGN §10 states them, staleness of the generated files, and precise spec errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from collector.alerting.generate import render_all, stale
from collector.alerting.spec import load_default, load_spec
from collector.alerting.yamlio import SpecError
from tests.conftest import REPO, require_tool

PROM_DIR = REPO / "alerts" / "generated" / "prometheus"
TEST_DIR = REPO / "alerts" / "tests"


def _rules() -> list[dict]:
    return [
        r for f in sorted(PROM_DIR.glob("*.yaml")) for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]
    ]


def _tests() -> list[dict]:
    return [t for f in sorted(TEST_DIR.glob("*_test.yaml")) for t in yaml.safe_load(f.read_text())["tests"]]


def test_promtool_check_rules() -> None:
    promtool = require_tool("promtool")
    files = sorted(str(p) for p in PROM_DIR.glob("*.yaml"))
    assert len(files) == 3
    out = subprocess.run([promtool, "check", "rules", *files], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_unit_tests_pass() -> None:
    promtool = require_tool("promtool")
    files = sorted(p.name for p in TEST_DIR.glob("*_test.yaml"))
    out = subprocess.run([promtool, "test", "rules", *files], cwd=TEST_DIR, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]


def test_every_alert_rule_has_a_firing_and_a_silent_case() -> None:
    firing: set[tuple] = set()
    silent: set[str] = set()
    for test in _tests():
        for case in test.get("alert_rule_test", []):
            if case["exp_alerts"]:
                for exp in case["exp_alerts"]:
                    labels = exp["exp_labels"]
                    firing.add((case["alertname"], labels["severity"], labels.get("long_window", "")))
            else:
                silent.add(case["alertname"])
    for rule in _rules():
        if "alert" not in rule:
            continue
        key = (rule["alert"], rule["labels"]["severity"], rule["labels"].get("long_window", ""))
        assert key in firing, f"no promtool test where {key} fires"
        assert rule["alert"] in silent, f"no promtool test where {rule['alert']} stays silent"


def test_every_recording_rule_is_checked_with_and_without_fault() -> None:
    checked: dict[str, set[float]] = {}
    for test in _tests():
        for case in test.get("promql_expr_test", []):
            name = case["expr"].split("{", 1)[0]
            for sample in case["exp_samples"]:
                slo = sample["labels"].split('slo="', 1)[1].split('"', 1)[0] if 'slo="' in sample["labels"] else ""
                checked.setdefault(f"{name}/{slo}", set()).add(float(sample["value"]))
    for rule in _rules():
        if "record" not in rule:
            continue
        key = f"{rule['record']}/{rule.get('labels', {}).get('slo', '')}"
        assert key in checked, f"no promtool test reads {key}"
        if rule["record"].startswith("slo:"):
            assert 0.0 in checked[key] and any(v > 0 for v in checked[key]), f"{key}: needs a fault and a no-fault case"


# DESIGN §10, written out independently of the spec: (severity, factor, long, short).
DESIGN_PAIRS = [
    ("page", 14.4, "1h", "5m"),
    ("page", 6, "6h", "30m"),
    ("ticket", 3, "1d", "2h"),
    ("ticket", 1, "3d", "6h"),
]


def test_burn_rate_pairs_follow_design() -> None:
    spec = load_default()
    rules = [r for r in _rules() if r.get("alert") == "GpuAvailabilityBudgetBurn"]
    assert len(rules) == 4
    budget = 1 - 0.999
    for (severity, factor, long, short), rule in zip(DESIGN_PAIRS, rules, strict=True):
        assert rule["labels"]["severity"] == severity
        threshold = f"({factor:g} * {budget:.3g})"
        assert rule["expr"] == (
            f'slo:sli_error:ratio_rate{long}{{slo="gpu_availability"}} > {threshold}\nand\n'
            f'slo:sli_error:ratio_rate{short}{{slo="gpu_availability"}} > {threshold}'
        )
    assert [str(w) for w in spec.windows] == ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]


def test_every_alert_has_severity_summary_runbook_and_dashboard() -> None:
    for rule in _rules():
        if "alert" not in rule:
            continue
        ann = rule["annotations"]
        assert rule["labels"]["severity"] in ("page", "ticket")
        assert ann["runbook_url"].endswith(f"/docs/runbooks/{rule['alert']}.md")
        assert (REPO / "docs" / "runbooks" / f"{rule['alert']}.md").exists()
        assert "/d/fleetpulse-" in ann["dashboard_url"]
        if "hw_id" in rule["expr"] or "hw_gpu" in rule["expr"]:
            assert "$labels.hw_id" in ann["summary"] and "$labels.instance" in ann["summary"], ann["summary"]


def test_generated_files_are_up_to_date() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "agent.cli", "alerts", "generate", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr


def test_check_reports_a_stale_and_an_orphan_file(tmp_path: Path) -> None:
    files = render_all(load_default(), root=tmp_path)
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert stale(files) == []
    victim = next(p for p in files if p.name == "resources.yaml" and "prometheus" in str(p))
    victim.write_text(victim.read_text().replace("> 0.05", "> 0.5"))
    orphan = tmp_path / "docs" / "runbooks" / "OldAlert.md"
    orphan.write_text("# OldAlert\n\nGenerated by `fleetpulse alerts generate` from ...\n")
    assert stale(files) == sorted([victim, orphan])


# ---------------------------------------------------------------- spec errors


def _spec_with(tmp_path: Path, slos_edit: tuple[str, str] | None = None, res_edit: tuple[str, str] | None = None):
    slos = (REPO / "alerts" / "slos.yaml").read_text()
    res = (REPO / "alerts" / "resources.yaml").read_text()
    if slos_edit:
        assert slos_edit[0] in slos
        slos = slos.replace(slos_edit[0], slos_edit[1], 1)
    if res_edit:
        assert res_edit[0] in res
        res = res.replace(res_edit[0], res_edit[1], 1)
    (tmp_path / "slos.yaml").write_text(slos)
    (tmp_path / "resources.yaml").write_text(res)
    return lambda: load_spec(tmp_path / "slos.yaml", tmp_path / "resources.yaml")


@pytest.mark.parametrize(
    ("slos_edit", "res_edit", "expected"),
    [
        (
            ("  tenant: default", "  tenent: default"),
            None,
            r"slos.yaml:\d+: settings.tenent: unknown key; did you mean 'tenant'\?",
        ),
        (("factor: 14.4", "factor: -1"), None, r"burn_rates\[0\].factor: expected a number in \(0"),
        (
            ("long: 1h, short: 5m", "long: 5m, short: 1h"),
            None,
            r"burn_rates\[0\].short: the short window must be shorter",
        ),
        (("short: 5m", "short: 5min"), None, r"burn_rates\[0\].short: expected a duration like 5m"),
        (
            ("objective: 0.999", "objective: 99.9"),
            None,
            r"slos.yaml:\d+: slos\[0\].objective: expected a number in \(0, 1\), got 99.9",
        ),
        (
            ("hw.gpu.lost, hw.gpu.row_remap.failure", "hw.gpu.los"),
            None,
            r"slos\[0\].sli.bad_when_any\[0\]|'hw.gpu.los' is not in agent/catalog.py; did you mean 'hw.gpu.lost'\?",
        ),
        (
            ("$harmful_throttle_reasons", "$harmful"),
            None,
            r"slos\[1\].sli.match.hw.gpu.throttle.reason: unknown symbol",
        ),
        (
            None,
            ("metric: fleetpulse.collector.wal.size", "metric: fleetpulse.collector.wal.sise"),
            r"alerts\[15\].metric: 'fleetpulse.collector.wal.sise' is not a collector self-metric "
            r"\(collector/telemetry.py\); did you mean 'fleetpulse.collector.wal.size'\?",
        ),
        (
            None,
            ("labels: [reason]", "labels: [tenant]"),
            r"alerts\[14\].labels\[0\]: fleetpulse.collector.points.rejected has no label 'tenant'; it has: reason",
        ),
        (
            None,
            ("denominator: fleetpulse.collector.points.received", "denominator: fleetpulse.collector.wal.size"),
            r"alerts\[14\].params.denominator: needs a counter; fleetpulse.collector.wal.size is a gauge",
        ),
        (
            None,
            ("metric: hw.gpu.ecc.errors", "metric: hw.gpu.ecc.error"),
            r"resources.yaml:\d+: alerts\[1\].metric: 'hw.gpu.ecc.error' is not in agent/catalog.py; did you mean 'hw.gpu.ecc.errors'\?",
        ),
        (
            None,
            ("match: {hw.gpu.ecc.type: uncorrected", "match: {hw.gpu.ecc.kind: uncorrected"),
            r"alerts\[1\].match.hw.gpu.ecc.kind: hw.gpu.ecc.errors has no attribute 'hw.gpu.ecc.kind'",
        ),
        (None, ("kind: gauge\n", "kind: gage\n"), r"alerts\[2\].kind: expected one of .*did you mean 'gauge'\?"),
        (
            None,
            ("    threshold: 0.5 ", '    op: ">="\n    threshold: 0.5 '),
            r"alerts\[6\].op: Grafana threshold expressions compare with > or < only",
        ),
        (
            None,
            ("alert: GpuLost\n", "alert: GpuRowRemapFailure\n"),
            r"alerts\[4\].alert: 'GpuRowRemapFailure' is defined twice",
        ),
        (
            None,
            (
                '{node} GPU {gpu}"\n    dashboard: fleetpulse-gpu\n    runbook:\n      explain: The driver',
                '{nod} GPU {gpu}"\n    dashboard: fleetpulse-gpu\n    runbook:\n      explain: The driver',
            ),
            r"alerts\[0\].summary: unknown placeholder \{nod\}",
        ),
        (
            None,
            ("dashboard: fleetpulse-gpu", "dashboard: fleetpulse-gpus"),
            r"alerts\[0\].dashboard: expected one of .*did you mean 'fleetpulse-gpu'\?",
        ),
        (
            None,
            ("kind: counter_rate\n", "kind: gauge\n"),
            r"alerts\[7\].metric: kind gauge needs a gauge; hw.gpu.nvlink.errors is a counter",
        ),
        (None, ("version: 1\n", "version: 1\nalerts: [\n"), r"resources.yaml:\d+: not valid YAML|duplicate key"),
    ],
)
def test_spec_errors_name_file_line_and_key(tmp_path: Path, slos_edit, res_edit, expected: str) -> None:
    load = _spec_with(tmp_path, slos_edit, res_edit)
    with pytest.raises(SpecError, match=expected):
        load()


def test_cli_reports_spec_error_and_exits_2(tmp_path: Path) -> None:
    _spec_with(tmp_path, None, ("window: 10m", "window: ten minutes"))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "alerts",
            "generate",
            "--check",
            "--slos",
            str(tmp_path / "slos.yaml"),
            "--resources",
            str(tmp_path / "resources.yaml"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "resources.yaml:" in out.stderr and "alerts[0].window: expected a duration" in out.stderr
