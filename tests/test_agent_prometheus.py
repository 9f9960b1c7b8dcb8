"""Prometheus endpoint: a real HTTP scrape of the snapshot collector, and /healthz liveness."""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from agent.exporters.prometheus import Liveness, PrometheusEndpoint, SnapshotCollector
from agent.processing.cardinality import BURST_KEY
from agent.snapshot import SnapshotBuilder


def scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def snapshot():
    b = SnapshotBuilder({"host.name": "node-1", "k8s.cluster.name": "prod"}, 10**18)
    gpu = {"hw.id": "GPU-0", "gpu.index": 0, "hw.model": "H100"}
    b.add("hw.gpu.temperature", 61, {**gpu, "hw.sensor": "gpu"})
    b.add("hw.gpu.energy", 1234.5, gpu, start_time_unix_nano=1)
    b.add("hw.gpu.power.usage", 300, gpu)
    b.add("hw.gpu.power.usage", 999, {**gpu, BURST_KEY: "ev1"})  # burst detail is OTLP-only
    return b.build()


def test_scrape_uses_otel_prometheus_names_and_target_info(port: int) -> None:
    collector = SnapshotCollector(resource_labels=["k8s.cluster.name"])
    collector.update(snapshot())
    liveness = Liveness(10.0)
    endpoint = PrometheusEndpoint(f"127.0.0.1:{port}", collector, liveness)
    try:
        status, text = scrape(port)
    finally:
        endpoint.close()
    assert status == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    gpu = (("gpu_index", "0"), ("hw_id", "GPU-0"), ("hw_model", "H100"), ("k8s_cluster_name", "prod"))
    assert samples[("hw_gpu_temperature_celsius", tuple(sorted((*gpu, ("hw_sensor", "gpu")))))] == 61
    assert samples[("hw_gpu_energy_joules_total", gpu)] == 1234.5
    assert samples[("hw_gpu_power_usage_watts", gpu)] == 300  # the burst point is not served
    assert samples[("target_info", (("host_name", "node-1"), ("k8s_cluster_name", "prod")))] == 1


def test_healthz_fails_when_sampling_stalls(port: int) -> None:
    now = [0.0]
    liveness = Liveness(2.0, clock=lambda: now[0])
    endpoint = PrometheusEndpoint(f"127.0.0.1:{port}", SnapshotCollector(), liveness)
    try:
        now[0] = 5.0  # within 3 intervals of start
        assert scrape(port, "/healthz")[0] == 200
        liveness.cycle_done()
        now[0] = 11.5  # 6.5 s without a completed cycle > 3 x 2 s
        status, body = scrape(port, "/healthz")
        assert status == 503 and "stalled" in body
        liveness.cycle_done()
        assert scrape(port, "/healthz")[0] == 200
    finally:
        endpoint.close()
