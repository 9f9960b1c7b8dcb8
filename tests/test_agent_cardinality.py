"""Cardinality policy and redaction (DESIGN §4): allow-list, budget with overflow, length cap, hashing."""

from __future__ import annotations

from agent.config import CardinalityConfig, RedactionConfig
from agent.processing.cardinality import BURST_KEY, OVERFLOW_ATTRIBUTES, CardinalityPolicy
from agent.processing.redaction import Redactor
from agent.snapshot import Point, freeze_attributes

T = 1_000_000_000


def temp(i: int, t: int = T, **extra: str) -> Point:
    attrs = {"hw.id": f"GPU-{i}", "gpu.index": str(i), "hw.model": "H100", "hw.sensor": "gpu", **extra}
    return Point("hw.gpu.temperature", 40.0 + i, freeze_attributes(attrs), t)


def energy(i: int, value: float) -> Point:
    return Point("hw.gpu.energy", value, freeze_attributes({"hw.id": f"GPU-{i}"}), T, start_time_unix_nano=5)


def test_unlisted_attributes_are_dropped_and_counted() -> None:
    policy = CardinalityPolicy(CardinalityConfig())
    (out,) = policy.process([temp(0, **{"k8s.pod.name": "p", "note": "x"})])
    assert dict(out.attributes).keys() == {"hw.id", "gpu.index", "hw.model", "hw.sensor"}
    assert policy.attributes_dropped["hw.gpu.temperature"] == 2


def test_budget_overflow_folds_into_one_series_and_counts() -> None:
    policy = CardinalityPolicy(CardinalityConfig(series_budget={"hw.gpu.temperature": 3, "hw.gpu.energy": 1}))
    out = policy.process([temp(i) for i in range(6)] + [energy(0, 10), energy(1, 20), energy(2, 30)])
    temps = [p for p in out if p.name == "hw.gpu.temperature"]
    assert len(temps) == 4
    assert temps[-1].attributes == OVERFLOW_ATTRIBUTES and temps[-1].value == 45.0  # gauge: last value
    energies = [p for p in out if p.name == "hw.gpu.energy"]
    assert energies[1].attributes == OVERFLOW_ATTRIBUTES and energies[1].value == 50.0  # counter: summed
    assert energies[1].start_time_unix_nano == 5
    assert policy.overflow == {"hw.gpu.temperature": 3, "hw.gpu.energy": 2}
    # Known series keep their own identity next cycle; new ones still overflow.
    again = policy.process([temp(0, 2 * T), temp(9, 2 * T)])
    assert again[0].attributes == temp(0).attributes and again[1].attributes == OVERFLOW_ATTRIBUTES


def test_stale_series_free_their_budget() -> None:
    policy = CardinalityPolicy(CardinalityConfig(default_series_budget=1), stale_after_s=10)
    policy.process([temp(0, T)])
    out = policy.process([temp(1, 100 * T)])  # GPU-0 not seen for 99 s
    out = policy.process([temp(1, 101 * T)])
    assert out[0].attributes == temp(1).attributes


def test_value_length_cap() -> None:
    policy = CardinalityPolicy(CardinalityConfig(max_value_length=8))
    (out,) = policy.process([temp(0, **{"hw.model": "NVIDIA H100 80GB HBM3"})])
    assert dict(out.attributes)["hw.model"] == "NVIDIA H"
    assert policy.values_truncated == 1


def test_burst_points_are_exempt_from_budget_but_capped() -> None:
    policy = CardinalityPolicy(CardinalityConfig(default_series_budget=1), burst_series_cap=2)
    points = [temp(i, **{BURST_KEY: "ev1"}) for i in range(4)]
    out = policy.process(points)
    assert len(out) == 2 and all(dict(p.attributes)[BURST_KEY] == "ev1" for p in out)
    assert policy.burst_points_capped == 2 and not policy.overflow


def test_redaction_drops_and_hashes_before_budget() -> None:
    redactor = Redactor(RedactionConfig(drop=["hw.model"], hash=["hw.id"], salt="s1"))
    policy = CardinalityPolicy(CardinalityConfig(), redactor)
    (out,) = policy.process([temp(3)])
    attrs = dict(out.attributes)
    assert "hw.model" not in attrs
    assert attrs["hw.id"].startswith("sha256:") and "GPU-3" not in attrs["hw.id"]
    assert attrs["hw.id"] == Redactor(RedactionConfig(hash=["hw.id"], salt="s1")).hashed("GPU-3")
    assert attrs["hw.id"] != Redactor(RedactionConfig(hash=["hw.id"], salt="s2")).hashed("GPU-3")
    assert redactor.mapping({"hw.model": "x", "host.name": "n"}) == {"host.name": "n"}
