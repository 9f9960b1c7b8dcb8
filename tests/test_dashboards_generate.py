"""The generated dashboards and provisioning: committed copies fresh, shape Grafana and the plugin expect,
variables, units and thresholds, alert links, collector panels on the collector's stored self-metrics."""

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
from collector.grafana.clickhouse import DATASOURCE_UID, PLUGIN_ID

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
    assert names == expected
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            assert var["multi"] and var["includeAll"] and var["datasource"]["uid"] == "${datasource}"
    sqls = [t["rawSql"] for p in _panels(board) for t in p.get("targets", []) if "rawSql" in t]
    assert sqls
    for sql in sqls:
        assert "tenant = '${tenant}'" in sql
        if _collector_only(sql):
            continue  # collectors are not fleet nodes: their panels ignore the cluster/node variables
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
                raise AssertionError(f"{uid} / {panel['title']}: a target that is not ClickHouse SQL: {target}")
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


def _collector_only(sql: str) -> bool:
    metrics = set(re.findall(r"'((?:fleetpulse|hw|system)\.[\w.]+)'", sql))
    return bool(metrics) and all(m.startswith("fleetpulse.collector.") for m in metrics)


def test_collector_panels_read_the_stored_self_metrics_and_no_prometheus() -> None:
    """The Pipeline board's collector row reads fleetpulse.collector.* rows that collector/selfmon.py
    writes; every name is one the collector stores; no dashboard needs a Prometheus datasource."""
    from collector.telemetry import self_metrics

    stored = {name for m in self_metrics().values() for name in m.stored_metrics()}
    board = BOARDS["fleetpulse-pipeline"]
    collector_panels = [
        p for p in _panels(board) if any("fleetpulse.collector." in t.get("rawSql", "") for t in p["targets"])
    ]
    assert len(collector_panels) >= 6
    for panel in collector_panels:
        for target in panel["targets"]:
            names = set(re.findall(r"'(fleetpulse\.collector\.[\w.]+)'", target["rawSql"]))
            assert names and names <= stored, (panel["title"], names - stored)
            assert _collector_only(target["rawSql"])
    quantiles = next(p for p in collector_panels if p["title"] == "Store insert latency")
    assert "fleetpulse.collector.flush.duration_bucket" in quantiles["targets"][0]["rawSql"]
    for uid, b in BOARDS.items():
        text = str(b)
        assert "prometheus" not in text.lower(), f"{uid} still refers to Prometheus"
