"""Collector configuration: defaults, `collector.yaml`, environment, then command-line flags (flags win).

Validation is strict: an unknown key, a wrong type or an out-of-range value stops the start with an
error naming the file, the key path, what was expected and what was found.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A collector.yaml problem; the message names file, key path, expected and got."""


@dataclass(slots=True)
class TtlConfig:
    raw: int = 15
    rollup_1m: int = 90
    rollup_1h: int = 730
    events: int = 1825


@dataclass(slots=True)
class StorageConfig:
    dsn: str | None = None  # None = chdb:///<data_dir>/clickhouse
    database: str = "fleetpulse"
    cluster: str = ""
    ttl_days: TtlConfig = field(default_factory=TtlConfig)


@dataclass(slots=True)
class OtlpConfig:
    grpc_listen: str = "127.0.0.1:4317"
    http_listen: str = "127.0.0.1:4318"


@dataclass(slots=True)
class ApiConfig:
    listen: str = "127.0.0.1:4319"
    max_rows: int = 100000
    max_execution_s: float = 30.0


@dataclass(slots=True)
class AuthConfig:
    mode: str = "none"  # none | tokens
    tokens_file: str | None = None


@dataclass(slots=True)
class TlsConfig:
    cert_file: str | None = None
    key_file: str | None = None
    client_ca_file: str | None = None


@dataclass(slots=True)
class LimitsConfig:
    max_request_bytes: int = 16 * 1024 * 1024
    max_points_per_request: int = 200_000
    max_attributes: int = 64
    max_attribute_length: int = 256
    max_past_s: int = 7 * 24 * 3600
    max_future_s: int = 300
    tenant_active_series: int = 2_000_000
    rate_points_per_s: float = 0
    max_inflight_bytes: int = 128 * 1024 * 1024  # request bytes in decode/convert/WAL at once → 503
    max_memory_bytes: int = 0  # process RSS limit (0 = off); new requests → 503 above 80% of it


@dataclass(slots=True)
class WalConfig:
    max_bytes: int = 1024 * 1024 * 1024
    segment_bytes: int = 16 * 1024 * 1024
    fsync: bool = True
    ready_fraction: float = 0.8  # /readyz fails when the WAL is fuller than this


@dataclass(slots=True)
class WriterConfig:
    batch_max_rows: int = 500_000
    flush_interval_s: float = 1.0


@dataclass(slots=True)
class SelfTelemetryConfig:
    """The collector's own metrics, written into the store like any telemetry (collector/selfmon.py)."""

    enabled: bool = True
    interval_s: float = 10.0
    tenant: str = "default"


@dataclass(slots=True)
class CollectorConfig:
    data_dir: str = "./fleetpulse-data"
    storage: StorageConfig = field(default_factory=StorageConfig)
    otlp: OtlpConfig = field(default_factory=OtlpConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    wal: WalConfig = field(default_factory=WalConfig)
    writer: WriterConfig = field(default_factory=WriterConfig)
    self_telemetry: SelfTelemetryConfig = field(default_factory=SelfTelemetryConfig)
    shutdown_deadline_s: float = 20.0

    @property
    def wal_dir(self) -> Path:
        return Path(self.data_dir) / "wal"

    @property
    def storage_dsn(self) -> str:
        if self.storage.dsn:
            return self.storage.dsn
        return f"chdb://{(Path(self.data_dir) / 'clickhouse').resolve()}"


_CHOICES: dict[str, tuple[str, ...]] = {"auth.mode": ("none", "tokens")}
_LISTEN_KEYS = ("otlp.grpc_listen", "otlp.http_listen", "api.listen")
_POSITIVE = {
    "limits.max_request_bytes",
    "limits.max_points_per_request",
    "limits.max_attributes",
    "limits.max_attribute_length",
    "limits.tenant_active_series",
    "limits.max_inflight_bytes",
    "wal.max_bytes",
    "wal.segment_bytes",
    "writer.batch_max_rows",
    "writer.flush_interval_s",
    "api.max_rows",
    "api.max_execution_s",
}


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false"}.get(
            tp.__name__, tp.__name__
        )
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return " or ".join(_type_name(a) for a in args) + " (or null)"


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        inner = next(a for a in typing.get_args(tp) if a is not type(None))
        return _coerce(value, inner, where)
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if (
        (tp is bool and isinstance(value, bool))
        or (tp is int and isinstance(value, int) and not isinstance(value, bool))
        or (tp is str and isinstance(value, str))
    ):
        return value
    if tp is float and is_number:
        return float(value)
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")


def _fill(obj: Any, data: Any, path: str, source: str) -> None:
    where = f"{source}: {path or '<top level>'}"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r} ({type(data).__name__})")
    hints = typing.get_type_hints(type(obj))
    fields = {f.name for f in dataclasses.fields(obj)}
    for key, value in data.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in fields:
            raise ConfigError(f"{source}: {key_path}: unknown key; expected one of {sorted(fields)}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            _fill(getattr(obj, key), value, key_path, source)
        else:
            setattr(obj, key, _coerce(value, tp, f"{source}: {key_path}"))


def _get(config: CollectorConfig, key_path: str) -> Any:
    obj: Any = config
    for part in key_path.split("."):
        obj = getattr(obj, part)
    return obj


def parse_listen(value: str, where: str = "listen") -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[::1]:PORT``) → (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
        raise ConfigError(f"{where}: expected HOST:PORT (e.g. 127.0.0.1:4317), got {value!r}")
    return host.strip("[]"), int(port)


def validate(config: CollectorConfig, source: str = "collector config") -> CollectorConfig:
    for key_path, choices in _CHOICES.items():
        value = _get(config, key_path)
        if value not in choices:
            raise ConfigError(f"{source}: {key_path}: expected one of {list(choices)}, got {value!r}")
    for key_path in _POSITIVE:
        value = _get(config, key_path)
        if value <= 0:
            raise ConfigError(f"{source}: {key_path}: expected a value > 0, got {value!r}")
    for key_path in (
        "limits.max_past_s",
        "limits.max_future_s",
        "limits.rate_points_per_s",
        "limits.max_memory_bytes",
        "shutdown_deadline_s",
    ):
        if _get(config, key_path) < 0:
            raise ConfigError(f"{source}: {key_path}: expected a value >= 0, got {_get(config, key_path)!r}")
    for key_path in _LISTEN_KEYS:
        parse_listen(_get(config, key_path), f"{source}: {key_path}")
    if config.wal.segment_bytes > config.wal.max_bytes:
        raise ConfigError(
            f"{source}: wal.segment_bytes: expected <= wal.max_bytes ({config.wal.max_bytes}), got {config.wal.segment_bytes}"
        )
    if not 0 < config.wal.ready_fraction <= 1:
        raise ConfigError(f"{source}: wal.ready_fraction: expected 0 < x <= 1, got {config.wal.ready_fraction!r}")
    if config.auth.mode == "tokens" and not config.auth.tokens_file and not os.environ.get("FLEETPULSE_TOKENS"):
        raise ConfigError(
            f"{source}: auth.tokens_file: auth.mode is 'tokens' but no tokens_file is set and FLEETPULSE_TOKENS is empty"
        )
    tls = config.tls
    if bool(tls.cert_file) != bool(tls.key_file):
        raise ConfigError(f"{source}: tls: cert_file and key_file must be set together, got {tls!r}")
    if tls.client_ca_file and not tls.cert_file:
        raise ConfigError(f"{source}: tls.client_ca_file: needs tls.cert_file and tls.key_file")
    self_tel = config.self_telemetry
    if not 1 <= self_tel.interval_s <= 3600:
        raise ConfigError(
            f"{source}: self_telemetry.interval_s: expected seconds between 1 and 3600, got {self_tel.interval_s!r}"
        )
    if not self_tel.tenant.strip() or len(self_tel.tenant) > config.limits.max_attribute_length:
        raise ConfigError(
            f"{source}: self_telemetry.tenant: expected a non-empty tenant name of at most "
            f"limits.max_attribute_length={config.limits.max_attribute_length} characters, got {self_tel.tenant!r}"
        )
    dsn = config.storage.dsn
    if dsn and not dsn.startswith(("chdb://", "http://", "https://")):
        raise ConfigError(f"{source}: storage.dsn: expected chdb:///PATH or http(s)://HOST:PORT, got {dsn!r}")
    return config


def load_config(path: str | os.PathLike[str] | None = None) -> CollectorConfig:
    """Defaults, then the YAML file (if any), then ``FLEETPULSE_STORAGE_DSN``; validated."""
    config = CollectorConfig()
    source = "collector config (defaults)"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {exc}") from None
        if data is not None:
            _fill(config, data, "", source)
    env_dsn = os.environ.get("FLEETPULSE_STORAGE_DSN")
    if env_dsn:
        config.storage.dsn = env_dsn
    return validate(config, source)


def storage_settings(config: CollectorConfig):  # -> collector.store.settings.StorageSettings
    from collector.store.settings import StorageSettings

    ttl = config.storage.ttl_days
    return StorageSettings(
        dsn=config.storage_dsn,
        database=config.storage.database,
        cluster=config.storage.cluster,
        ttl_raw_days=ttl.raw,
        ttl_1m_days=ttl.rollup_1m,
        ttl_1h_days=ttl.rollup_1h,
        ttl_events_days=ttl.events,
    )
