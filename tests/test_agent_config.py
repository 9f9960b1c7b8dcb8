"""Agent YAML config: valid files map onto AgentConfig; every bad input gets a precise error."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from agent.commands.agent_cmd import add_arguments, build_config
from agent.config import AgentConfig
from agent.config_schema import ConfigError, load_config, parse_config

FULL = """
interval_s: 5
slow_interval_s: 30
sources: [nvml, host]
resource: {k8s.cluster.name: prod, rack: r12}
otlp:
  endpoint: https://collector:4317
  protocol: http/protobuf
  headers: {x-tenant: a}
  token_file: /run/secrets/token
  ca_file: /etc/ca.pem
  compression: none
  timeout_s: 3
buffer: {dir: /var/lib/fleetpulse/buffer, max_bytes: 1000000, max_age_s: 3600, drain_batches_per_cycle: 5, fsync: false}
prometheus_listen: ":9999"
cardinality:
  max_value_length: 64
  series_budget: {hw.gpu.temperature: 10}
redaction: {drop: [k8s.pod.name], hash: [hw.id], salt: pepper}
diagnostic_burst_s: 30
placement: {enabled: false}
nvml: {nvlink_link_io: fast}
"""


def test_full_config_maps_onto_dataclasses(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(FULL)
    c = load_config(path)
    assert c.interval_s == 5.0 and c.slow_interval_s == 30.0
    assert c.sources == ["nvml", "host"]
    assert c.resource == {"k8s.cluster.name": "prod", "rack": "r12"}
    assert c.otlp.protocol == "http/protobuf" and c.otlp.headers == {"x-tenant": "a"} and c.otlp.timeout_s == 3.0
    assert c.buffer.max_bytes == 1_000_000 and c.buffer.fsync is False
    assert c.cardinality.series_budget == {"hw.gpu.temperature": 10}
    assert c.redaction.hash == ["hw.id"] and c.placement.enabled is False
    assert c.prometheus_listen == ":9999"
    assert c.nvml.nvlink_link_io == "fast"


def test_empty_file_gives_defaults() -> None:
    assert parse_config("", "agent.yaml") == AgentConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "otlp:\n  endpoint: x\n  protocl: grpc\n",
            "agent.yaml:3: otlp.protocl: unknown key; did you mean 'protocol'?",
        ),
        ("intervall_s: 3\n", "agent.yaml:1: intervall_s: unknown key; did you mean 'interval_s'?"),
        ("interval_s: -1\n", "agent.yaml:1: interval_s: expected a number > 0, got -1"),
        ("interval_s: fast\n", "agent.yaml:1: interval_s: expected a number, got 'fast'"),
        ("buffer: [1]\n", "agent.yaml:1: buffer: expected a mapping of key: value, got list [1]"),
        ("buffer:\n  max_bytes: 1.5\n", "agent.yaml:2: buffer.max_bytes: expected an integer, got 1.5"),
        ("buffer:\n  fsync: yes please\n", "agent.yaml:2: buffer.fsync: expected true or false, got 'yes please'"),
        ("otlp: {protocol: thrift}\n", "otlp.protocol: expected one of 'grpc', 'http/protobuf', got 'thrift'"),
        ("sources: [nvml, gpu]\n", "sources: expected a list drawn from nvml, host, fabric, errors"),
        ("redaction: {drop: [1, [2]]}\n", "redaction.drop[1]: expected a string, got list [2]"),
        ("prometheus_listen: localhost\n", "prometheus_listen: expected HOST:PORT"),
        ("interval_s: 10\nslow_interval_s: 5\n", "agent.yaml:2: slow_interval_s: expected a number >= interval_s"),
        ("otlp: {cert_file: /c.pem}\n", "otlp: expected cert_file and key_file together"),
        ("interval_s: [\n", "agent.yaml:2: not valid YAML"),
        ("- 1\n- 2\n", "agent.yaml:1: (top level): expected a mapping of key: value, got list"),
        (
            "nvml:\n  nvlink_link_io: always\n",
            "agent.yaml:2: nvml.nvlink_link_io: expected one of 'off', 'slow', 'fast', got 'always'",
        ),
        (  # YAML 1.1 reads a bare off as false: the error says to quote it
            "nvml:\n  nvlink_link_io: off\n",
            "agent.yaml:2: nvml.nvlink_link_io: expected a string, got False (quote it: 'off', 'on', ...)",
        ),
    ],
)
def test_bad_config_errors_are_precise(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text, "agent.yaml")
    assert message in str(err.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read config"):
        load_config(tmp_path / "nope.yaml")


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("interval_s: 5\notlp: {endpoint: http://a:4317}\nprometheus_listen: ':9410'\n")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--config", str(path), "--interval", "0.5", "--otlp-endpoint", "http://b:4318", "--prometheus-listen", "off"]
    )
    config = build_config(args)
    assert config.interval_s == 0.5
    assert config.otlp.endpoint == "http://b:4318"
    assert config.prometheus_listen is None
