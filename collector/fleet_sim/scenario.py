"""Fleet fault scenarios: YAML → validated :class:`FaultSpec` list.

A bad file gets an error naming the file, line, field and what was expected, e.g.
``faults.yaml:12: faults[3].code: expected an integer Xid code, got 'abc'``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_SCENARIO = Path(__file__).parent / "scenarios" / "default_fleet.yaml"

# kind -> (required fields, optional fields with defaults)
_KINDS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "sbe_rising": (("node", "gpu", "start"), {"every": "5%", "count": 4, "delta": 1, "remap_pending_at": None}),
    "xid": (("node", "gpu", "code", "at"), {}),
    "thermal_throttle": (("rack", "start", "end"), {}),
    "ib_symbol_errors": (("node", "start", "end"), {"device": "mlx5_0", "port": 1, "per_tick": 3}),
    "nvlink_crc": (("node", "gpu", "link", "start", "end"), {"per_tick": 40}),
    "move": (("node", "gpu", "to_node", "to_gpu", "at"), {}),
    "node_silent": (("node", "start"), {}),
    "nvml_timeout": (("node", "gpu", "start"), {"every": "15%", "count": 3}),
}
_INT_FIELDS = {"node", "gpu", "rack", "code", "count", "delta", "port", "link", "to_node", "to_gpu", "per_tick"}
_TIME_FIELDS = {"start", "end", "at", "every", "remap_pending_at"}
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


class ScenarioError(ValueError):
    """A scenario file is malformed; the message names file, line, field and the fix."""


@dataclass(frozen=True, slots=True)
class FaultSpec:
    kind: str
    params: dict[str, Any]
    line: int = 0
    index: int = 0


@dataclass(frozen=True, slots=True)
class TimeRef:
    """A point in the simulated window: a fraction of it, or seconds from its start or end."""

    fraction: float | None = None
    offset_s: float | None = None
    from_end: bool = False

    def resolve(self, start_s: float, duration_s: float) -> float:
        if self.fraction is not None:
            return start_s + self.fraction * duration_s
        assert self.offset_s is not None
        return start_s + duration_s - self.offset_s if self.from_end else start_s + self.offset_s

    def span_s(self, duration_s: float) -> float:
        """As a length (for `every`)."""
        return self.fraction * duration_s if self.fraction is not None else float(self.offset_s or 0.0)


def parse_duration(text: str) -> float:
    """'90s', '10m', '2h30m', '7d', or a plain number of seconds → seconds."""
    text = str(text).strip()
    try:
        return float(text)
    except ValueError:
        pass
    m = _DURATION.match(text)
    if not text or not m or not any(m.groups()):
        raise ValueError(f"expected a duration like 90s, 10m, 2h30m or 7d, got {text!r}")
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s


def parse_time_ref(value: Any) -> TimeRef:
    text = str(value).strip()
    if text.endswith("%"):
        frac = float(text[:-1]) / 100.0
        if not 0.0 <= frac <= 1.0:
            raise ValueError(f"expected a percentage between 0% and 100%, got {text!r}")
        return TimeRef(fraction=frac)
    if text.startswith("-"):
        return TimeRef(offset_s=parse_duration(text[1:]), from_end=True)
    return TimeRef(offset_s=parse_duration(text))


def load_scenario(path: str | Path | None = None) -> list[FaultSpec]:
    path = Path(path) if path else DEFAULT_SCENARIO
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read fault scenario: {exc.strerror}") from None
    return parse_scenario(text, str(path))


def parse_scenario(text: str, filename: str = "<scenario>") -> list[FaultSpec]:
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{mark.line + 1}" if mark else "?"
        raise ScenarioError(f"{filename}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if root is None:
        return []
    if not isinstance(root, yaml.MappingNode):
        raise ScenarioError(f"{filename}:{root.start_mark.line + 1}: expected a mapping with a `faults:` list")
    keys = {k.value: v for k, v in root.value}
    unknown = set(keys) - {"faults"}
    if unknown:
        raise ScenarioError(f"{filename}:1: unknown top-level key(s) {sorted(unknown)}: expected only `faults`")
    faults_node = keys.get("faults")
    if faults_node is None or (isinstance(faults_node, yaml.ScalarNode) and faults_node.value in ("", "null", "~")):
        return []
    if not isinstance(faults_node, yaml.SequenceNode):
        raise ScenarioError(f"{filename}:{faults_node.start_mark.line + 1}: faults: expected a list of faults")
    specs = []
    for i, item in enumerate(faults_node.value):
        line = item.start_mark.line + 1
        where = f"{filename}:{line}: faults[{i}]"
        if not isinstance(item, yaml.MappingNode):
            raise ScenarioError(f"{where}: expected a mapping with `kind:` and its fields")
        raw = yaml.safe_load(yaml.serialize(item))
        specs.append(_validate(raw, where, line, i))
    return specs


def _validate(raw: dict[str, Any], where: str, line: int, index: int) -> FaultSpec:
    kind = raw.get("kind")
    if kind not in _KINDS:
        raise ScenarioError(f"{where}.kind: expected one of {sorted(_KINDS)}, got {kind!r}")
    required, optional = _KINDS[kind]
    missing = [f for f in required if f not in raw]
    if missing:
        raise ScenarioError(f"{where}: {kind} needs field(s) {missing}")
    unknown = set(raw) - {"kind", *required, *optional}
    if unknown:
        allowed = sorted({*required, *optional})
        raise ScenarioError(f"{where}: unknown field(s) {sorted(unknown)} for {kind}; allowed: {allowed}")
    params: dict[str, Any] = {**optional, **{k: v for k, v in raw.items() if k != "kind"}}
    for name, value in list(params.items()):
        if value is None:
            continue
        if name in _INT_FIELDS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ScenarioError(f"{where}.{name}: expected a non-negative integer, got {value!r}")
        elif name in _TIME_FIELDS:
            try:
                params[name] = parse_time_ref(value)
            except ValueError as exc:
                raise ScenarioError(
                    f"{where}.{name}: {exc} (or a percentage such as 40%, or -30m from the end)"
                ) from None
        elif name == "device" and not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", str(value)):
            raise ScenarioError(f"{where}.device: expected an IB device name like mlx5_0, got {value!r}")
    if kind == "sbe_rising" and params["count"] < 1:
        raise ScenarioError(f"{where}.count: expected at least 1 increase")
    return FaultSpec(kind=kind, params=params, line=line, index=index)
