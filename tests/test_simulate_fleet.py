"""The fleet simulator: scenario validation, determinism, the manifest, and the send path's errors."""

from __future__ import annotations

import dataclasses
import gzip
import itertools
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


def _shape(items) -> dict[str, tuple[int, set[tuple[str, ...]]]]:
    """metric -> (series count, attribute key sets)."""
    out: dict[str, tuple[int, set[tuple[str, ...]]]] = {}
    for name, attrs in items:
        count, keys = out.get(name, (0, set()))
        keys.add(tuple(sorted(k for k, _ in attrs)))
        out[name] = (count + 1, keys)
    return out


def test_a_node_sends_what_the_real_agent_sends():
    """Same metric names and attribute keys as `fleetpulse agent` on 8 simulated H100s (the fixture /proc and /sys
    for host, fabric and errors), the same number of series per GPU, and the daemon's self-telemetry."""
    from agent.catalog import CATALOG
    from agent.config import AgentConfig
    from agent.runtime.once import collect_once
    from bench.common import FIXTURES
    from collector.fleet_sim.model import NodeModel

    config = AgentConfig()
    config.simulate.gpus, config.simulate.seed = 8, 1
    config.roots.sysfs, config.roots.procfs = str(FIXTURES / "sysfs"), str(FIXTURES / "procfs")
    config.roots.kmsg = str(FIXTURES / "no-kmsg")
    agent = _shape((p.name, p.attributes) for p in collect_once(config).points)
    plan = build_plan(dataclasses.replace(SMALL, nvlinks=18, interval_s=10), load_scenario(), now_s=NOW)
    k = next(k for k in range(plan.n_ticks) if plan.is_slow(k))
    chunk = NodeModel(plan).chunk(0, k, k + 1)  # a tick of both tiers
    sim = _shape((s.metric, s.attributes) for s in chunk.series)
    assert chunk.series[0].times[0] % plan.slow_ns == 0
    for name, (count, keys) in agent.items():
        assert name in sim, f"the simulator does not send {name}"
        assert sim[name][1] == keys, (name, sim[name][1], keys)
        if name.startswith("hw.gpu."):
            assert sim[name][0] == count, (name, sim[name][0], count)
    # What only the daemon adds: CPU utilization (from the second cycle) and the agent's own health.
    daemon_only = set(sim) - set(agent)
    assert daemon_only == {"system.cpu.utilization"} | {
        n for n in sim if n.startswith("fleetpulse.agent.") and n != "fleetpulse.agent.nvml.unsupported"
    }
    assert {
        "fleetpulse.agent.cycle.duration",
        "fleetpulse.agent.points.buffered",
        "fleetpulse.agent.memory.rss",
    } <= set(sim)
    for s in chunk.series:  # tiers as in the catalog: a fast-only tick has no slow metric
        assert CATALOG[s.metric].tier in ("fast", "slow", "event")
    fast_only = NodeModel(plan).chunk(0, k + 1, k + 2)
    assert fast_only.series and all(CATALOG[s.metric].tier != "slow" for s in fast_only.series)


def test_values_have_the_sources_resolution():
    plan = build_plan(dataclasses.replace(SMALL, interval_s=10), load_scenario(), now_s=NOW)
    chunk = Builder(plan).model.chunk(1, 0, 200)

    def values(metric: str, **attrs: str) -> list[float]:
        want = {k.replace("__", "."): v for k, v in attrs.items()}
        out = [
            v
            for s in chunk.series
            if s.metric == metric and want.items() <= dict(s.attributes).items()
            for v in s.values
        ]
        assert out, metric
        return out

    def on_grid(vs: list[float], step: float) -> bool:
        return all(abs(v / step - round(v / step)) < max(1e-6, abs(v / step) * 1e-12) for v in vs)

    assert on_grid(values("hw.gpu.utilization"), 0.01)  # NVML: whole percent
    assert on_grid(values("hw.gpu.temperature"), 1.0)  # °C
    assert on_grid(values("hw.gpu.power.usage"), 0.001)  # mW
    assert on_grid(values("hw.gpu.energy"), 0.001)  # mJ
    assert on_grid(values("hw.gpu.clock.frequency"), 1e6)  # MHz
    assert on_grid(values("hw.gpu.nvlink.io"), 1024.0)  # KiB
    assert on_grid(values("hw.gpu.nvlink.link.io"), 1024.0)
    assert on_grid(values("hw.gpu.sm.activity"), 1e-4)  # GPM
    assert on_grid(values("system.cpu.time"), 0.01)  # jiffies
    assert on_grid(values("system.disk.io"), 512.0)  # sectors
    assert on_grid(values("hw.network.ib.io"), 4.0)  # 4-byte words
    for metric, link in (("hw.gpu.nvlink.io", {}), ("hw.gpu.nvlink.link.io", {"hw__nvlink__link": "3"})):
        nvlink = values(metric, gpu__index="0", network__io__direction="transmit", **link)
        steps = [b - a for a, b in itertools.pairwise(nvlink)]
        assert min(steps) > 0 and len(set(steps)) > len(steps) // 2  # traffic flows, and not at a constant rate
    shares = values("system.cpu.utilization", cpu__mode="idle")
    assert all(0.5 < v < 1.0 for v in shares)
    assert set(values("fleetpulse.agent.points.buffered")) == {0.0}
    durations = values("fleetpulse.agent.cycle.duration", fleetpulse__source="nvml")
    assert all(0.001 < d < 0.1 for d in durations)  # milliseconds, no timeout on this node


def test_nvlink_totals_every_tick_links_at_slow_ticks_and_they_agree():
    """As the agent's default (nvml.nvlink_link_io: slow): the GPU's NVLink byte total on every tick, the
    per-link counters on slow ticks only, and at a slow tick the total is the sum of the links."""
    plan = build_plan(dataclasses.replace(SMALL, interval_s=10, duration_s=3600), load_scenario(), now_s=NOW)
    chunk = Builder(plan).model.chunk(2, 0, 60)
    gpu0 = [
        s for s in chunk.series if s.metric.startswith("hw.gpu.nvlink.") and dict(s.attributes).get("gpu.index") == "0"
    ]
    for direction in ("transmit", "receive"):
        (total,) = [
            s
            for s in gpu0
            if s.metric == "hw.gpu.nvlink.io" and dict(s.attributes)["network.io.direction"] == direction
        ]
        assert "hw.nvlink.link" not in dict(total.attributes)
        assert len(total.times) == 60  # every tick
        links = [
            s
            for s in gpu0
            if s.metric == "hw.gpu.nvlink.link.io" and dict(s.attributes)["network.io.direction"] == direction
        ]
        assert sorted(dict(s.attributes)["hw.nvlink.link"] for s in links) == [str(k) for k in range(plan.spec.nvlinks)]
        slow_times = [t for t in total.times if t % plan.slow_ns == 0]
        assert len(slow_times) == 10
        at = dict(zip(total.times, total.values, strict=True))
        for s in links:
            assert s.times == slow_times and s.start_ns == total.start_ns
        for i, t in enumerate(slow_times):
            assert at[t] == sum(s.values[i] for s in links)


def test_counters_do_not_depend_on_how_the_history_is_cut():
    plan = build_plan(dataclasses.replace(SMALL, interval_s=10, duration_s=2 * 3600), load_scenario(), now_s=NOW)
    model = Builder(plan).model
    node = 3  # the node with the RMA move (counters restart) and the NVML timeouts

    def counters(cuts: list[int]) -> dict:
        out: dict = {}
        for ka, kb in itertools.pairwise(cuts):
            for s in model.chunk(node, ka, kb).series:
                if s.start_ns is not None:
                    out.setdefault((s.metric, s.attributes, s.start_ns), []).extend(zip(s.times, s.values, strict=True))
        return out

    whole = counters([0, plan.n_ticks])
    cut = counters([0, 7, 300, 301, plan.n_ticks])
    assert whole == cut


def test_nvml_timeouts_cost_the_gpu_its_gpm_points_and_are_counted():
    plan = build_plan(dataclasses.replace(SMALL, interval_s=60), load_scenario(), now_s=NOW)
    (fault,) = [f for f in plan.manifest()["faults"] if f["kind"] == "nvml_timeout"]
    assert fault["count"] == 3 and fault["node"] == plan.node_name(3)
    hung = plan.nvml_timeouts[3]
    chunk = Builder(plan).model.chunk(3, 0, plan.n_ticks)
    ticks = {plan.tick_ns(k) for k, _ in hung}
    seen: dict[tuple[str, str], set[int]] = {}
    for s in chunk.series:
        if s.metric in ("hw.gpu.energy", "hw.gpu.sm.activity"):
            seen.setdefault((s.metric, dict(s.attributes)["hw.id"]), set()).update(s.times)
    for (metric, gpu), times in seen.items():
        if metric == "hw.gpu.energy":  # read every cycle: GPM is missing exactly on the hung cycles of that GPU
            assert times - seen[("hw.gpu.sm.activity", gpu)] == (ticks if gpu == fault["gpu"] else set())
    (timeouts,) = [s for s in chunk.series if s.metric == "fleetpulse.agent.nvml.timeouts"]
    assert timeouts.values[0] == 1.0 and timeouts.values[-1] == 3.0 and timeouts.times[0] == min(ticks)
    (nvml,) = [
        s for s in chunk.series if s.metric == "fleetpulse.agent.cycle.duration" and s.attributes[0][1] == "nvml"
    ]
    assert sum(v > 2.0 for v in nvml.values) == 3


def test_hand_laid_requests_are_the_protobuf_built_ones():
    """The numpy point layout is exactly what opentelemetry-proto serializes (the receiver's fast path sees it)."""
    from collector.fleet_sim.otlp import LayoutCache, TemplateCache, metrics_request, metrics_request_bytes

    plan = build_plan(SMALL, load_scenario(), now_s=NOW)
    builder = Builder(plan)
    layouts, templates = LayoutCache(), TemplateCache()
    for task in tasks(plan)[:3]:
        chunk = builder.model.chunk(task.node, task.ka, task.kb)
        assert metrics_request_bytes([chunk], layouts) == metrics_request([chunk], templates).SerializeToString()
