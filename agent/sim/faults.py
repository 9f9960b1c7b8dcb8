"""Fault scenarios: YAML files that say what goes wrong, on which GPU, and when.

    name: thermal-and-ecc
    description: one GPU overheats, another starts throwing single-bit errors
    faults:
      - {at: 2m, gpu: 3, kind: thermal_throttle, duration: 5m}
      - {at: 600, gpu: 5, kind: sbe_rate, per_minute: 4, duration: 30m}

``at`` and ``duration`` are seconds of simulated time (a number, or a string like ``90s``, ``5m``,
``1h``). A bad file gets a :class:`ScenarioError` naming the file, the line, the field and what
was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names file, line, field and expectation."""


@dataclass(frozen=True, slots=True)
class Param:
    kind: str  # "int", "number", "duration", "str", "choice"
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    minimum: float | None = None


_DUR = Param("duration", required=True)
KINDS: dict[str, dict[str, Param]] = {
    "xid": {"code": Param("int", required=True, minimum=1)},
    "thermal_throttle": {
        "duration": _DUR,
        "reason": Param("choice", default="sw", choices=("sw", "hw")),
        "temperature_rise": Param("number", default=18.0, minimum=0),
    },
    "power_brake": {"duration": _DUR},
    "sbe_rate": {"per_minute": Param("number", required=True, minimum=0), "duration": _DUR},
    "dbe": {"count": Param("int", default=1, minimum=1)},
    "row_remap_pending": {},
    "row_remap_failure": {},
    "nvlink_crc_burst": {
        "link": Param("int", required=True, minimum=0),
        "count": Param("int", default=1000, minimum=1),
        "duration": Param("duration", default=60.0),
    },
    "nvlink_down": {"link": Param("int", required=True, minimum=0), "duration": Param("duration")},
    "pcie_replay_burst": {"count": Param("int", default=200, minimum=1), "duration": Param("duration", default=30.0)},
    "fall_off_bus": {},
    # Not a fault: a process running on the GPU from `at` (for `duration`, else to the end), listed by
    # nvmlDeviceGet{Compute,Graphics}RunningProcesses. The agent maps its pid to a pod / SLURM job
    # through /proc/<pid>/cgroup and environ under `roots.procfs` (placement).
    "process": {
        "pid": Param("int", required=True, minimum=1),
        "type": Param("choice", default="compute", choices=("compute", "graphics")),
        "used_memory_mib": Param("int", minimum=0),  # absent: NVML reports it as not available (None)
        "duration": Param("duration"),
    },
    # Not a hardware fault: makes the next `calls` calls of an NVML function on that GPU block for
    # `seconds` of real time, to exercise the agent's call watchdog. Library-wide functions
    # (nvmlInit, nvmlInitWithFlags, nvmlSystemGetDriverVersion, nvmlDeviceGetCount) hang whatever
    # the `gpu`; arm them `at: 0` to hang start-up.
    "hang": {
        "function": Param("str", required=True),
        "seconds": Param("number", required=True, minimum=0),
        "calls": Param("int", default=1, minimum=1),
    },
}
_COMMON = ("at", "gpu", "kind")


@dataclass(frozen=True, slots=True)
class Fault:
    at: float
    gpu: int
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    source: str = "<inline>"
    line: int = 0

    @property
    def duration(self) -> float | None:
        return self.params.get("duration")

    def where(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    faults: tuple[Fault, ...]
    source: str = "<inline>"

    def check_gpus(self, gpus: int) -> None:
        """Every fault must name a GPU that exists in the simulation."""
        for f in self.faults:
            if f.gpu >= gpus:
                raise ScenarioError(
                    f"{f.where()}: gpu: expected a GPU index below {gpus} (the simulation has {gpus} GPUs), got {f.gpu}"
                )


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float | None:
    """Seconds from 90, 1.5, '90s', '5m', '1h'; None when it is not a duration."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value >= 0 else None
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m:
            return float(m.group(1)) * _UNIT_S[m.group(2)]
    return None


class _Reader:
    def __init__(self, source: str, loader: yaml.SafeLoader) -> None:
        self.source = source
        self.loader = loader

    def fail(self, node: yaml.Node, path: str, expected: str, got: object) -> ScenarioError:
        return ScenarioError(f"{self.source}:{node.start_mark.line + 1}: {path}: expected {expected}, got {got!r}")

    def value(self, node: yaml.Node) -> Any:
        return self.loader.construct_object(node, deep=True)

    def mapping(self, node: yaml.Node, path: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, path, "a mapping", self.value(node))
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = self.value(key_node)
            if not isinstance(key, str):
                raise self.fail(key_node, path, "string keys", key)
            if key in out:
                raise self.fail(key_node, f"{path}.{key}" if path else key, "each key once", f"duplicate {key!r}")
            out[key] = (key_node, value_node)
        return out

    def param(self, node: yaml.Node, path: str, spec: Param) -> Any:
        raw = self.value(node)
        if spec.kind == "duration":
            seconds = parse_duration(raw)
            if seconds is None:
                raise self.fail(node, path, "a duration >= 0 in seconds (e.g. 90, '90s', '5m', '1h')", raw)
            return seconds
        if spec.kind == "int":
            if isinstance(raw, bool) or not isinstance(raw, int) or (spec.minimum is not None and raw < spec.minimum):
                low = f" >= {spec.minimum:g}" if spec.minimum is not None else ""
                raise self.fail(node, path, f"an integer{low}", raw)
            return raw
        if spec.kind == "number":
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                raise self.fail(node, path, "a number", raw)
            if spec.minimum is not None and raw < spec.minimum:
                raise self.fail(node, path, f"a number >= {spec.minimum:g}", raw)
            return float(raw)
        if spec.kind == "choice":
            if raw not in spec.choices:
                raise self.fail(node, path, f"one of {', '.join(spec.choices)}", raw)
            return raw
        if not isinstance(raw, str) or not raw:
            raise self.fail(node, path, "a non-empty string", raw)
        return raw


def _fault(reader: _Reader, node: yaml.Node, i: int) -> Fault:
    path = f"faults[{i}]"
    fields = reader.mapping(node, path)
    if "kind" not in fields:
        raise reader.fail(node, f"{path}.kind", f"one of {', '.join(KINDS)}", None)
    kind = reader.value(fields["kind"][1])
    if kind not in KINDS:
        raise reader.fail(fields["kind"][1], f"{path}.kind", f"one of {', '.join(KINDS)}", kind)
    spec = KINDS[kind]
    for name, (key_node, _) in fields.items():
        if name not in _COMMON and name not in spec:
            allowed = ", ".join((*_COMMON, *spec))
            raise reader.fail(key_node, f"{path}.{name}", f"a field of a {kind} fault ({allowed})", name)
    for name in ("at", "gpu"):
        if name not in fields:
            raise reader.fail(node, f"{path}.{name}", "this field (every fault needs at and gpu)", None)
    at = reader.param(fields["at"][1], f"{path}.at", Param("duration"))
    gpu = reader.param(fields["gpu"][1], f"{path}.gpu", Param("int", minimum=0))
    params: dict[str, Any] = {}
    for name, p in spec.items():
        if name in fields:
            params[name] = reader.param(fields[name][1], f"{path}.{name}", p)
        elif p.required:
            raise reader.fail(node, f"{path}.{name}", f"this field (required for a {kind} fault)", None)
        else:
            params[name] = p.default
    return Fault(at, gpu, kind, params, reader.source, node.start_mark.line + 1)


def parse_scenario(text: str, source: str = "<inline>") -> Scenario:
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 0
            raise ScenarioError(f"{source}:{line}: not valid YAML: {exc.problem or exc}") from None
        reader = _Reader(source, loader)
        if root is None:
            raise ScenarioError(f"{source}:1: expected a mapping with a 'faults' list, got an empty file")
        top = reader.mapping(root, "scenario")
        for key, (key_node, _) in top.items():
            if key not in ("name", "description", "faults"):
                raise reader.fail(key_node, key, "one of name, description, faults", key)
        if "faults" not in top:
            raise reader.fail(root, "faults", "a list of faults", None)
        faults_node = top["faults"][1]
        if not isinstance(faults_node, yaml.SequenceNode):
            raise reader.fail(faults_node, "faults", "a list of faults", reader.value(faults_node))
        faults = tuple(_fault(reader, n, i) for i, n in enumerate(faults_node.value))
        name = str(reader.value(top["name"][1])) if "name" in top else Path(source).stem
        description = str(reader.value(top["description"][1])) if "description" in top else ""
        return Scenario(name, description, tuple(sorted(faults, key=lambda f: (f.at, f.line))), source)
    finally:
        loader.dispose()


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario file; a bare name like ``default`` means ``agent/sim/scenarios/default.yaml``."""
    p = Path(path)
    if not p.exists() and not p.suffix and (SCENARIOS_DIR / f"{p.name}.yaml").exists():
        p = SCENARIOS_DIR / f"{p.name}.yaml"
    try:
        text = p.read_text()
    except OSError as exc:
        raise ScenarioError(f"{p}: cannot read fault scenario: {exc.strerror or exc}") from None
    return parse_scenario(text, str(p))


SCENARIOS_DIR = Path(__file__).resolve().parent / "scenarios"
