"""Agent configuration: defaults, YAML file, command-line flags (flags win).

The YAML schema and its validation live in ``agent/config_schema.py``; this module holds the typed
result every other part of the agent reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Roots:
    sysfs: str = "/sys"
    procfs: str = "/proc"
    kmsg: str = "/dev/kmsg"


@dataclass(slots=True)
class NvmlConfig:
    call_timeout_s: float = 2.0  # a hung driver call is abandoned after this
    init_timeout_s: float = 10.0
    xid_poll_ms: int = 0  # nvmlEventSetWait timeout; 0 = non-blocking poll each cycle
    # Per-link NVLink byte counters (hw.gpu.nvlink.link.io): 'slow' (default, each slow_interval_s),
    # 'fast' (each interval_s, 36 series per H100) or 'off'. The per-GPU total is always sent.
    nvlink_link_io: str = "slow"


@dataclass(slots=True)
class SimulateConfig:
    gpus: int = 0  # 0 = use real NVML
    profile: str = "h100-sxm"
    faults: str | None = None  # scenario YAML
    seed: int = 0


@dataclass(slots=True)
class OtlpConfig:
    endpoint: str | None = None  # None = no OTLP export (OTEL_EXPORTER_OTLP_ENDPOINT also works)
    protocol: str = "grpc"  # grpc | http/protobuf
    headers: dict[str, str] = field(default_factory=dict)
    token_file: str | None = None  # bearer token, sent as "authorization: Bearer ..."
    insecure: bool | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    compression: str = "gzip"
    timeout_s: float = 10.0


@dataclass(slots=True)
class BufferConfig:
    dir: str | None = None  # None = memory only
    max_bytes: int = 256 * 1024 * 1024
    max_age_s: float = 24 * 3600.0
    drain_batches_per_cycle: int = 20
    fsync: bool = True  # fsync each appended batch (power-loss safety); kill -9 is safe either way


@dataclass(slots=True)
class CardinalityConfig:
    max_value_length: int = 128
    default_series_budget: int | None = None  # None = each metric's catalog budget
    series_budget: dict[str, int] = field(default_factory=dict)  # per metric override


@dataclass(slots=True)
class RedactionConfig:
    drop: list[str] = field(default_factory=list)  # attribute keys removed before export
    hash: list[str] = field(default_factory=list)  # attribute keys replaced by a salted hash
    salt: str = ""


@dataclass(slots=True)
class PlacementConfig:
    enabled: bool = True
    interval_s: float = 60.0  # how often GPU -> pod/job placement is re-read; records go out on change
    kubelet_socket: str = "/var/lib/kubelet/pod-resources/kubelet.sock"


@dataclass(slots=True)
class AgentConfig:
    interval_s: float = 10.0  # fast tier
    slow_interval_s: float = 60.0  # slow tier
    sources: list[str] = field(default_factory=lambda: ["nvml", "host", "fabric", "errors"])
    roots: Roots = field(default_factory=Roots)
    nvml: NvmlConfig = field(default_factory=NvmlConfig)
    simulate: SimulateConfig = field(default_factory=SimulateConfig)
    resource: dict[str, str] = field(default_factory=dict)  # k8s.cluster.name, rack, zone...
    host_per_cpu: bool = False
    otlp: OtlpConfig = field(default_factory=OtlpConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    prometheus_listen: str | None = "0.0.0.0:9410"
    cardinality: CardinalityConfig = field(default_factory=CardinalityConfig)
    redaction: RedactionConfig = field(default_factory=RedactionConfig)
    diagnostic_burst_s: float = 60.0
    diagnostic_burst_max_gpus: int = 4  # concurrent bursts; further fault events start none (counted)
    prometheus_resource_labels: list[str] = field(default_factory=list)  # resource attrs copied onto samples
    placement: PlacementConfig = field(default_factory=PlacementConfig)
