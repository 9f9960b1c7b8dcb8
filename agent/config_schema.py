"""Load and validate the agent's YAML config into :class:`agent.config.AgentConfig`.

The schema is the dataclasses in ``agent/config.py`` (field names and type hints), plus a few value
rules below. Every error names the file, the line, the key path, what was expected and what was
found, and unknown keys get a did-you-mean, e.g.::

    agent.yaml:7: otlp.protocl: unknown key; did you mean 'protocol'?
    agent.yaml:3: interval_s: expected a number > 0, got -1
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from agent.config import AgentConfig

KNOWN_SOURCES = ("nvml", "host", "fabric", "errors")
# nvml.nvlink_link_io: the tier of the per-link NVLink byte counters.
NVLINK_LINK_IO = ("off", "slow", "fast")


class ConfigError(ValueError):
    """A config file problem; the message names file, line, key path, expected and got."""


def _positive(v: Any) -> str | None:
    return None if v > 0 else "a number > 0"


def _non_negative(v: Any) -> str | None:
    return None if v >= 0 else "a number >= 0"


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v in choices else "one of " + ", ".join(repr(c) for c in choices)

    return check


def _host_port(v: Any) -> str | None:
    if v is None or v == "off":
        return None
    _host, sep, port = str(v).rpartition(":")
    ok = sep and port.isdigit() and 0 < int(port) < 65536
    return None if ok else "HOST:PORT (e.g. 0.0.0.0:9410, :9410) or 'off'"


def _sources(v: Any) -> str | None:
    bad = [s for s in v if s not in KNOWN_SOURCES]
    return "a list drawn from " + ", ".join(KNOWN_SOURCES) if bad else None


# Extra value rules by key path (types come from the dataclass hints).
RULES: dict[str, Callable[[Any], str | None]] = {
    "interval_s": _positive,
    "slow_interval_s": _positive,
    "sources": _sources,
    "prometheus_listen": _host_port,
    "diagnostic_burst_s": _non_negative,
    "diagnostic_burst_max_gpus": _non_negative,
    "nvml.call_timeout_s": _positive,
    "nvml.init_timeout_s": _positive,
    "nvml.xid_poll_ms": _non_negative,
    "nvml.nvlink_link_io": _one_of(*NVLINK_LINK_IO),
    "simulate.gpus": _non_negative,
    "otlp.protocol": _one_of("grpc", "http/protobuf"),
    "otlp.compression": _one_of("gzip", "none"),
    "otlp.timeout_s": _positive,
    "buffer.max_bytes": _positive,
    "buffer.max_age_s": _positive,
    "buffer.drain_batches_per_cycle": _positive,
    "cardinality.max_value_length": _positive,
    "cardinality.default_series_budget": _positive,
    "placement.interval_s": _positive,
}


class _Context:
    def __init__(self, filename: str, root: yaml.Node | None) -> None:
        self.filename = filename
        self.root = root

    def line(self, path: tuple[str, ...]) -> int | None:
        node = self.root
        line = node.start_mark.line + 1 if node is not None else None
        for key in path:
            if not isinstance(node, yaml.MappingNode):
                break
            for k, v in node.value:
                if k.value == key:
                    node, line = v, k.start_mark.line + 1
                    break
            else:
                break
        return line

    def error(self, path: tuple[str, ...], message: str) -> ConfigError:
        line = self.line(path)
        where = f"{self.filename}:{line}" if line else self.filename
        key = ".".join(path) or "(top level)"
        return ConfigError(f"{where}: {key}: {message}")


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}" if not isinstance(value, str | int | float) else text


def _convert(value: Any, hint: Any, path: tuple[str, ...], ctx: _Context) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(hint)):
            return None
        return _convert(value, args[0], path, ctx)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path, ctx)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ctx.error(path, f"expected true or false, got {_describe(value)}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ctx.error(path, f"expected an integer, got {_describe(value)}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ctx.error(path, f"expected a number, got {_describe(value)}")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)  # ports, zone numbers...
        if isinstance(value, bool):  # YAML 1.1 reads bare off/on/no/yes as booleans
            raise ctx.error(path, f"expected a string, got {_describe(value)} (quote it: 'off', 'on', ...)")
        raise ctx.error(path, f"expected a string, got {_describe(value)}")
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ctx.error(path, f"expected a list, got {_describe(value)}")
        return [_convert(v, item, (*path[:-1], f"{path[-1]}[{i}]"), ctx) for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ctx.error(path, f"expected a mapping of key: value, got {_describe(value)}")
        return {str(k): _convert(v, item, (*path, str(k)), ctx) for k, v in value.items()}
    raise ctx.error(path, f"unsupported schema type {hint!r}")  # pragma: no cover - schema bug


def _build(cls: type, data: Any, path: tuple[str, ...], ctx: _Context) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ctx.error(path, f"expected a mapping of key: value, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        key = str(key)
        sub = (*path, key)
        if key not in hints:
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else "expected one of " + ", ".join(names)
            raise ctx.error(sub, f"unknown key; {hint}")
        converted = _convert(value, hints[key], sub, ctx)
        rule = RULES.get(".".join(sub))
        if rule is not None and converted is not None:
            expected = rule(converted)
            if expected:
                raise ctx.error(sub, f"expected {expected}, got {_describe(value)}")
        kwargs[key] = converted
    return cls(**kwargs)


def parse_config(text: str, filename: str = "<config>") -> AgentConfig:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark else filename
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    ctx = _Context(filename, root)
    config = _build(AgentConfig, data, (), ctx)
    if config.prometheus_listen == "off":
        config.prometheus_listen = None
    if config.slow_interval_s < config.interval_s:
        raise ctx.error(
            ("slow_interval_s",),
            f"expected a number >= interval_s ({config.interval_s}), got {config.slow_interval_s}",
        )
    if (config.otlp.cert_file is None) != (config.otlp.key_file is None):
        raise ctx.error(("otlp",), "expected cert_file and key_file together (client TLS), got only one")
    return config


def load_config(path: str | Path) -> AgentConfig:
    """Read and validate ``path``; raises :class:`ConfigError` with a precise message."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from None
    return parse_config(text, str(path))
