"""The fleet simulator: scenario validation, determinism, the manifest, and the send path's errors."""

from __future__ import annotations

import dataclasses
import gzip
import subprocess
import sys

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from collector.fleet_sim import FleetSpec, OtlpHttpSender, ScenarioError, SendError, build_plan, load_scenario
from collector.fleet_sim.generate import Builder, payloads, tasks
from collector.fleet_sim.scenario import parse_scenario
from tests.conftest import REPO, free_port

NOW = 1_700_000_000.0
SMALL = FleetSpec(nodes=6, gpus_per_node=8, duration_s=3 * 3600, interval_s=60, nvlinks=8, seed=3)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("faults: [{kind: meteor}]", "<s>:1: faults[0].kind: expected one of"),
        ("faults:\n  - kind: xid\n    node: 1\n    gpu: 0\n    at: 10%\n", "xid needs field(s) ['code']"),
        (
            "faults:\n  - kind: xid\n    node: 1\n    gpu: 0\n    code: abc\n    at: 10%\n",
            "<s>:2: faults[0].code: expected a non-negative integer",
        ),
        (
            "faults:\n  - kind: thermal_throttle\n    rack: 0\n    start: 150%\n    end: 20%\n",
            "faults[0].start: expected a percentage between",
        ),
        ("faults:\n  - kind: node_silent\n    node: 0\n    start: soon\n", "faults[0].start: expected a duration"),
        (
            "faults:\n  - kind: node_silent\n    node: 0\n    start: 1h\n    colour: red\n",
            "unknown field(s) ['colour']",
        ),
        ("faults: {kind: xid}", "faults: expected a list"),
        ("faults: [\n", "not valid YAML"),
        ("other: 1", "unknown top-level key(s) ['other']"),
    ],
)
def test_bad_scenarios_name_file_line_and_field(text, message):
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(text, "<s>")
    assert message in str(exc.value)


def test_nvlink_index_checked_against_the_fleet():
    with pytest.raises(ScenarioError, match=r"link: expected 0\.\.3, got 7"):
        build_plan(FleetSpec(nodes=6, nvlinks=4, duration_s=3600, interval_s=60), load_scenario(), now_s=NOW)


def test_spec_limits_are_explained():
    with pytest.raises(ValueError, match="--duration must be at most 15d"):
        build_plan(FleetSpec(duration_s=20 * 86400), [], now_s=NOW)
    with pytest.raises(ValueError, match="--nodes must be at least 1"):
        build_plan(FleetSpec(nodes=0), [], now_s=NOW)


def test_manifest_is_deterministic_and_scaled_to_the_duration():
    a = build_plan(SMALL, load_scenario(), now_s=NOW).manifest()
    b = build_plan(SMALL, load_scenario(), now_s=NOW).manifest()
    assert a == b
    kinds = [f["kind"] for f in a["faults"]]
    assert kinds.count("thermal_throttle") == 16  # rack 1 = nodes 4 and 5, 8 GPUs each
    long = build_plan(dataclasses.replace(SMALL, duration_s=12 * 3600), load_scenario(), now_s=NOW).manifest()
    (t_short,) = {f["start"] for f in a["faults"] if f["kind"] == "thermal_throttle"}
    (t_long,) = {f["start"] for f in long["faults"] if f["kind"] == "thermal_throttle"}
    assert t_short != t_long  # 58% of 3 h vs 58% of 12 h
    assert a["fleet"]["end_ns"] % int(60e9) == 0  # tick-aligned


def test_payloads_are_identical_for_a_seed_and_carry_the_catalog_metrics():
    plan = build_plan(SMALL, load_scenario(), now_s=NOW)
    task_list = tasks(plan)[:3]
    one = [p.metrics for p in payloads(plan, task_list)]
    two = [p.metrics for p in payloads(plan, task_list)]
    assert one == two
    req = ExportMetricsServiceRequest.FromString(gzip.decompress(one[0]))
    names = {m.name for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert {
        "hw.gpu.temperature",
        "hw.gpu.throttle.time",
        "hw.gpu.ecc.errors",
        "hw.gpu.info",
        "hw.network.ib.errors",
        "hw.memory.edac.errors",
    } <= names
    resource = {kv.key: kv.value.string_value for kv in req.resource_metrics[0].resource.attributes}
    assert {"k8s.node.name", "k8s.cluster.name", "rack", "host.name"} <= set(resource)
    energy = next(m for sm in req.resource_metrics[0].scope_metrics for m in sm.metrics if m.name == "hw.gpu.energy")
    assert energy.sum.is_monotonic and energy.sum.data_points[0].start_time_unix_nano > 0
    times = sorted({dp.time_unix_nano for dp in energy.sum.data_points})
    assert all(t % int(60e9) == 0 for t in times)


def test_counters_never_decrease_within_a_lifetime():
    plan = build_plan(SMALL, load_scenario(), now_s=NOW)
    builder = Builder(plan)
    for node in range(plan.spec.nodes):
        chunk = builder.model.chunk(node, 0, plan.n_ticks)
        for s in chunk.series:
            if s.start_ns is not None:
                assert all(b >= a for a, b in zip(s.values, s.values[1:], strict=False)), (s.metric, s.attributes)


def test_worker_processes_build_the_same_payloads():
    plan = build_plan(SMALL, load_scenario(), now_s=NOW)
    task_list = tasks(plan)[:4]
    assert [p.metrics for p in payloads(plan, task_list, workers=1)] == [p.metrics for p in payloads(plan, task_list)]


def test_unreachable_collector_is_a_clear_error():
    sender = OtlpHttpSender(f"http://127.0.0.1:{free_port()}", retry_deadline_s=0.5)
    with pytest.raises(SendError, match=r"unreachable.*fleetpulse up"):
        sender.send_metrics(gzip.compress(ExportMetricsServiceRequest().SerializeToString()))


def test_cli_rejects_a_bad_scenario_file(tmp_path):
    bad = tmp_path / "faults.yaml"
    bad.write_text("faults:\n  - kind: xid\n    node: 0\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "simulate-fleet",
            "--faults",
            str(bad),
            "--collector",
            "http://127.0.0.1:1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert f"{bad}:2: faults[0]: xid needs field(s)" in proc.stderr
