"""The generated dashboards and provisioning: committed copies fresh, shape Grafana and the plugin expect,
variables, units and thresholds, alert links, Prometheus panels valid PromQL on real promtool."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.alerting.spec import DASHBOARDS
from collector.grafana import generate
from collector.grafana.boards.pipeline import PROMETHEUS_PANELS
from collector.grafana.clickhouse import DATASOURCE_UID, PLUGIN_ID
from tests.conftest import require_tool

REPO = Path(__file__).resolve().parent.parent
BOARDS = generate.all_dashboards()


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def test_committed_dashboards_are_not_stale() -> None:
    problems = generate.stale(REPO / "dashboards")
    assert not problems, f"dashboards/ is stale ({problems}); run `make dashboards` and commit"


def test_helm_chart_copies_match() -> None:
    chart = REPO / "helm" / "fleetpulse" / "files" / "dashboards"
    for name, text in generate.render().items():
        if name.endswith(".json"):
            assert (chart / name).read_text() == text, f"{chart / name} is stale; run helm/sync-dashboards.sh"


def test_check_flag_exits_1_when_stale_and_0_after_generate(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "agent", "dashboards", "generate", "--out", str(tmp_path)]
    missing = subprocess.run([*cmd, "--check"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert missing.returncode == 1 and "make dashboards" in missing.stderr
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO).returncode == 0
    assert subprocess.run([*cmd, "--check"], capture_output=True, text=True, timeout=120, cwd=REPO).returncode == 0
    (tmp_path / "fleetpulse-gpu.json").write_text("{}")
    (tmp_path / "old-board.json").write_text("{}")
    stale = subprocess.run([*cmd, "--check"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert stale.returncode == 1 and "fleetpulse-gpu.json" in stale.stderr and "old-board.json" in stale.stderr


def test_the_five_uids_the_alerts_link_to() -> None:
    assert set(BOARDS) == set(DASHBOARDS)
    for uid, board in BOARDS.items():
        assert board["uid"] == uid and board["title"].startswith("FleetPulse / ")


@pytest.mark.parametrize("uid", sorted(BOARDS))
def test_variables_and_conditional_all(uid: str) -> None:
    board = BOARDS[uid]
    names = [v["name"] for v in board["templating"]["list"]]
    expected = ["datasource", "tenant", "cluster", "node"] + ([] if uid == "fleetpulse-pipeline" else ["gpu"])
    assert [n for n in names if n != "prometheus"] == expected
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            assert var["multi"] and var["includeAll"] and var["datasource"]["uid"] == "${datasource}"
    sqls = [t["rawSql"] for p in _panels(board) for t in p.get("targets", []) if "rawSql" in t]
    assert sqls
    for sql in sqls:
        assert "tenant = '${tenant}'" in sql
        # Each filter uses the plugin's conditionalAll with a plain $var second argument (the plugin's
        # regex does not recognise ${var:format} there).
        for var in re.findall(r"\$\{(cluster|node|gpu):singlequote\}\), \$(\w+)\)", sql):
            assert var[0] == var[1]
        assert "$__conditionalAll(cluster IN (${cluster:singlequote}), $cluster)" in sql


@pytest.mark.parametrize("uid", sorted(BOARDS))
def test_panels_have_units_thresholds_and_the_clickhouse_plugin(uid: str) -> None:
    for panel in _panels(BOARDS[uid]):
        assert panel.get("id") and panel.get("description"), panel["title"]
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        if panel["type"] in ("timeseries", "stat"):
            assert defaults.get("unit"), f"{uid} / {panel['title']} has no unit"
        for target in panel["targets"]:
            if "rawSql" in target:
                assert target["datasource"] == {"type": PLUGIN_ID, "uid": "${datasource}"}
                assert target["editorType"] == "sql"
                assert (target["format"], target["queryType"]) in ((0, "timeseries"), (1, "table"))
                if panel["type"] == "timeseries":
                    assert target["format"] == 0
            else:
                assert panel["title"].endswith("(Prometheus)") and target["expr"]
    with_thresholds = [
        p
        for p in _panels(BOARDS[uid])
        if len(p.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])) > 1
        or p.get("fieldConfig", {}).get("overrides")
    ]
    assert with_thresholds, f"{uid} sets no thresholds"


def test_long_ranges_read_rollups() -> None:
    series = [
        t["rawSql"]
        for board in BOARDS.values()
        for p in _panels(board)
        for t in p["targets"]
        if "rawSql" in t and "FROM fleetpulse.samples\n" in t["rawSql"] and "$__timeInterval" in t["rawSql"]
    ]
    assert len(series) > 20
    for sql in series:
        assert "fleetpulse.samples_1m" in sql and "fleetpulse.samples_1h" in sql


def test_annotations_and_alert_links_fill_variables() -> None:
    for uid, board in BOARDS.items():
        names = {v["name"] for v in board["templating"]["list"]}
        anns = board["annotations"]["list"]
        assert any(a.get("builtIn") == 1 and a.get("type") == "dashboard" for a in anns), uid
        events = [a for a in anns if a["name"] == "Hardware events"]
        assert events and "fleetpulse.events" in events[0]["target"]["rawSql"]
        for panel in _panels(board):
            for link in panel.get("fieldConfig", {}).get("defaults", {}).get("links", []):
                target_uid = re.match(r"/d/([\w-]+)\?", link["url"]).group(1)
                target_vars = {v["name"] for v in BOARDS[target_uid]["templating"]["list"]}
                assert set(re.findall(r"var-(\w+)=", link["url"])) <= target_vars
        assert names
    # Alert rules generated by collector/alerting link here with variables the target dashboard has.
    urls = re.findall(r"dashboard_url: (\S+)", (REPO / "alerts/generated/grafana/resources.yaml").read_text())
    assert urls
    for url in urls:
        uid = re.search(r"/d/([\w-]+)", url).group(1)
        names = {v["name"] for v in BOARDS[uid]["templating"]["list"]}
        assert set(re.findall(r"var-(\w+)=", url)) <= names, url


def test_provisioning_files() -> None:
    files = generate.render()
    ds = yaml.safe_load(files["provisioning/datasources/fleetpulse.yaml"])
    ch = next(d for d in ds["datasources"] if d["type"] == PLUGIN_ID)
    assert ch["uid"] == DATASOURCE_UID
    assert {"host", "port", "protocol", "defaultDatabase"} <= set(ch["jsonData"])
    assert ch["jsonData"]["defaultDatabase"] == "fleetpulse" and ch["jsonData"]["protocol"] in ("http", "native")
    dash = yaml.safe_load(files["provisioning/dashboards/fleetpulse.yaml"])
    provider = dash["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"]


def test_prometheus_panels_are_valid_promql_on_collector_metrics(tmp_path: Path) -> None:
    """promtool parses every expression; every metric it names is one the collector exports."""
    from collector.telemetry import Telemetry

    promtool = require_tool("promtool")
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    exported = {
        family.name + suffix for family in Telemetry().registry.collect() for suffix in suffixes.get(family.type, ("",))
    }
    rules = []
    for i, (_, exprs, _, _) in enumerate(PROMETHEUS_PANELS):
        for j, (expr, _) in enumerate(exprs):
            concrete = expr.replace("$__rate_interval", "5m")
            rules.append({"record": f"fleetpulse:dashboard_check_{i}_{j}", "expr": concrete})
            names = set(re.findall(r"\b(fleetpulse_collector_\w+)", concrete))
            assert names and names <= exported, names - exported
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
