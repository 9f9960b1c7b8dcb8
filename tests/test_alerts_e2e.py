"""End to end: a real Prometheus scrapes a real agent (simulated GPUs, GPU 1 falls off the bus with
Xid 79), evaluates the generated rules (1 s intervals, for this test only), and the alerts arrive in
a real Alertmanager, read back from /api/v2/alerts. Bounded to well under 60 s."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, free_port, require_tool

SCENARIO = """\
name: e2e-gpu-lost
description: GPU 1 falls off the bus (Xid 79) two seconds in; GPU 0 stays healthy.
faults:
  - {at: 2s, gpu: 1, kind: fall_off_bus}
"""
DEADLINE_S = 45


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.read()


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, until: float) -> None:
    while time.monotonic() < until:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[0]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            _get(url)
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} not ready in time:\n{log.read_text()[-3000:]}")


class Processes:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, argv: list[str]) -> tuple[subprocess.Popen, Path]:
        log = self.tmp / f"{name}.log"
        proc = subprocess.Popen(argv, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=self.tmp)
        self.procs.append(proc)
        return proc, log

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    p = Processes(tmp_path)
    try:
        yield p
    finally:
        p.stop()


def _fast_rules(tmp: Path) -> list[str]:
    """The generated rule files with every group evaluated each second (test only)."""
    out = []
    for path in sorted((REPO / "alerts" / "generated" / "prometheus").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for group in doc["groups"]:
            group["interval"] = "1s"
        target = tmp / f"rules-{path.name}"
        target.write_text(yaml.safe_dump(doc, sort_keys=False))
        out.append(str(target))
    return out


@pytest.mark.timeout(60)
def test_gpu_lost_and_xid79_reach_alertmanager(tmp_path: Path, processes: Processes) -> None:
    prometheus = require_tool("prometheus")
    alertmanager = require_tool("prometheus-alertmanager", "alertmanager")
    until = time.monotonic() + DEADLINE_S
    agent_port, am_port, prom_port = free_port(), free_port(), free_port()

    (tmp_path / "faults.yaml").write_text(SCENARIO)
    agent, agent_log = processes.start(
        "agent",
        [
            sys.executable,
            "-m",
            "agent.cli",
            "agent",
            "--simulate",
            "2:h100-sxm",
            "--faults",
            "faults.yaml",
            "--sources",
            "nvml",
            "--interval",
            "1",
            "--prometheus-listen",
            f"127.0.0.1:{agent_port}",
        ],
    )
    (tmp_path / "am.yml").write_text(
        "route: {receiver: sink, group_wait: 1s, group_interval: 1s, repeat_interval: 1h}\nreceivers: [{name: sink}]\n"
    )
    am, am_log = processes.start(
        "alertmanager",
        [
            alertmanager,
            "--config.file=am.yml",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        ],
    )
    (tmp_path / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": _fast_rules(tmp_path),
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
                "scrape_configs": [
                    {"job_name": "fleetpulse-agent", "static_configs": [{"targets": [f"127.0.0.1:{agent_port}"]}]}
                ],
            }
        )
    )
    prom, prom_log = processes.start(
        "prometheus",
        [
            prometheus,
            "--config.file=prometheus.yml",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
    )
    _wait_ready(f"http://127.0.0.1:{am_port}/-/ready", am, am_log, until)
    _wait_ready(f"http://127.0.0.1:{prom_port}/-/ready", prom, prom_log, until)
    _wait_ready(f"http://127.0.0.1:{agent_port}/healthz", agent, agent_log, until)

    wanted = {"GpuLost", "GpuXidError"}
    alerts: list[dict] = []
    while time.monotonic() < until:
        alerts = json.loads(_get(f"http://127.0.0.1:{am_port}/api/v2/alerts"))
        if wanted <= {a["labels"]["alertname"] for a in alerts}:
            break
        time.sleep(0.5)
    names = {a["labels"]["alertname"] for a in alerts}
    assert wanted <= names, f"alertmanager has {sorted(names)}; prometheus log:\n{prom_log.read_text()[-2000:]}"

    by_name = {a["labels"]["alertname"]: a for a in alerts if a["labels"]["alertname"] in wanted}
    xid = by_name["GpuXidError"]
    assert xid["labels"]["hw_gpu_xid"] == "79" and xid["labels"]["severity"] == "page"
    assert xid["labels"]["gpu_index"] == "1"
    assert xid["annotations"]["summary"].startswith(f"Xid 79 on 127.0.0.1:{agent_port} GPU 1 (GPU-")
    assert xid["annotations"]["runbook_url"].endswith("/docs/runbooks/GpuXidError.md")
    assert "/d/fleetpulse-gpu?var-node=" in xid["annotations"]["dashboard_url"]
    lost = by_name["GpuLost"]
    assert lost["labels"]["severity"] == "page" and lost["labels"]["gpu_index"] == "1"
    # The healthy GPU 0 raised nothing, and nothing fired that this fault does not explain.
    assert all(a["labels"].get("gpu_index") != "0" for a in alerts), alerts
    assert names <= wanted | {"GpuCountBelowInventory", "GpuAvailabilityBudgetBurn"}, names
