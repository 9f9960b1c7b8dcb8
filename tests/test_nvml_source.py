"""The production NVML source, driven through the pynvml-level simulator: every profile, every fault."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pynvml
import pytest

from agent.catalog import CATALOG, EVENTS, HARMFUL_THROTTLE_REASONS
from agent.config import AgentConfig
from agent.sim import PROFILES, installed
from agent.snapshot import Snapshot, SnapshotBuilder
from agent.sources.nvml import NvmlSource, parse_pci
from tests.helpers import count_calls, make_nvml_source, skip_if_real_nvml


@pytest.fixture
def sources() -> Iterator[list[NvmlSource]]:
    made: list[NvmlSource] = []
    yield made
    for s in made:
        s.close()
    assert installed() is None, "a test left the simulator installed"


def cycle(source: NvmlSource, advance: float = 10.0, tiers: tuple[str, ...] = ("fast", "slow")) -> Snapshot:
    if advance:
        source.simulator.advance(advance)
    builder = SnapshotBuilder({"host.name": "test"}, 0)
    for tier in tiers:
        source.collect(builder, tier)
    return builder.build()


def gpu_points(snap: Snapshot, name: str, gpu: int) -> list:
    return [p for p in snap.by_name(name) if dict(p.attributes)["gpu.index"] == str(gpu)]


def value(snap: Snapshot, name: str, gpu: int, **attrs: str) -> float:
    return snap.value(name, gpu__index=str(gpu), **attrs)


def events(snap: Snapshot, name: str, gpu: int | None = None) -> list:
    return [e for e in snap.events if e.name == name and (gpu is None or dict(e.attributes)["gpu.index"] == str(gpu))]


def unsupported(snap: Snapshot) -> dict[str, float]:
    return {dict(p.attributes)["nvml.function"]: p.value for p in snap.by_name("fleetpulse.agent.nvml.unsupported")}


def assert_catalog_conform(snap: Snapshot) -> None:
    for p in snap.points:
        spec = CATALOG[p.name]
        keys = {k for k, _ in p.attributes}
        assert keys <= set(spec.attributes), f"{p.name}: attributes {keys - set(spec.attributes)} not allowed"
    for e in snap.events:
        assert e.name in EVENTS


# ---------------------------------------------------------------------------- profiles
def test_h100_sxm_full_field_set(tmp_path: Path, sources: list) -> None:
    src = make_nvml_source(tmp_path)
    sources.append(src)
    snap = cycle(src)
    assert_catalog_conform(snap)
    uuids = {dict(p.attributes)["hw.id"] for p in snap.by_name("hw.gpu.power.usage")}
    assert len(uuids) == 8 and all(u.startswith("GPU-") for u in uuids)
    for gpu in range(8):
        assert len(gpu_points(snap, "hw.gpu.nvlink.state", gpu)) == 18
        assert len(gpu_points(snap, "hw.gpu.nvlink.errors", gpu)) == 18 * 4
        assert len(gpu_points(snap, "hw.gpu.nvlink.io", gpu)) == 2  # per GPU total, each direction
        assert len(gpu_points(snap, "hw.gpu.nvlink.link.io", gpu)) == 18 * 2  # slow tier, per link
        for name in ("hw.gpu.sm.activity", "hw.gpu.sm.occupancy", "hw.gpu.tensor.activity", "hw.gpu.dram.activity"):
            assert 0.0 <= value(snap, name, gpu) <= 1.0
            assert value(snap, name, gpu) == round(value(snap, name, gpu), 4), "GPM fractions are kept to 1e-4"
        assert len(gpu_points(snap, "hw.gpu.row_remap.rows", gpu)) == 2
        assert gpu_points(snap, "hw.gpu.retired_pages", gpu) == []
        assert len(gpu_points(snap, "hw.gpu.throttle.active", gpu)) == 9
        assert value(snap, "hw.gpu.throttle.time", gpu, hw__gpu__throttle__reason="hw_power_brake_slowdown") >= 0
        assert value(snap, "hw.gpu.memory.limit", gpu) == 80 * 1024**3
        used, free = value(snap, "hw.gpu.memory.usage", gpu), value(snap, "hw.gpu.memory.free", gpu)
        assert used + free == 80 * 1024**3
        assert value(snap, "hw.gpu.power.limit", gpu) == 700.0
        assert value(snap, "hw.gpu.clock.max", gpu, hw__gpu__clock="sm") == 1980e6
        assert value(snap, "hw.gpu.pcie.link.generation", gpu, hw__pcie__link__state="max") == 5
        assert value(snap, "hw.gpu.lost", gpu) == 0
        assert value(snap, "hw.gpu.recovery_action", gpu) == 0
        info = dict(gpu_points(snap, "hw.gpu.info", gpu)[0].attributes)
        assert info["hw.gpu.driver_version"] and info["hw.pci.bus_id"].startswith("00000000:")
    # Retired pages are NotSupported on Hopper (per-value nvmlReturn in the field batch); no fans.
    assert unsupported(snap) == {
        "nvmlDeviceGetFieldValues[29]": 8,
        "nvmlDeviceGetFieldValues[30]": 8,
        "nvmlDeviceGetFieldValues[31]": 8,
        "nvmlDeviceGetNumFans": 8,
    }
    assert snap.source_errors == {}


def test_a100_pcie_has_no_nvlink_and_no_gpm(tmp_path: Path, sources: list) -> None:
    src = make_nvml_source(tmp_path, profile="a100-pcie", gpus=4)
    sources.append(src)
    snap = cycle(src)
    assert_catalog_conform(snap)
    assert len(snap.by_name("hw.gpu.power.usage")) == 4
    for name in (
        "hw.gpu.nvlink.state",
        "hw.gpu.nvlink.errors",
        "hw.gpu.nvlink.io",
        "hw.gpu.nvlink.link.io",
        "hw.gpu.sm.activity",
    ):
        assert snap.by_name(name) == [], name
    assert len(snap.by_name("hw.gpu.row_remap.pending")) == 4
    assert unsupported(snap)["nvmlDeviceGetFieldValues[91]"] == 4  # NVLink link count
    assert unsupported(snap)["nvmlDeviceGetFieldValues[230]"] == 4  # recovery action


def test_t4_retires_pages_instead_of_remapping_rows(tmp_path: Path, sources: list) -> None:
    src = make_nvml_source(tmp_path, profile="t4", gpus=2)
    sources.append(src)
    snap = cycle(src)
    assert_catalog_conform(snap)
    assert value(snap, "hw.gpu.retired_pages", 0, hw__gpu__retirement__cause="single_bit") == 0
    assert value(snap, "hw.gpu.retired_pages", 0, hw__gpu__retirement__cause="double_bit") == 0
    assert value(snap, "hw.gpu.retired_pages.pending", 1) == 0
    assert snap.by_name("hw.gpu.row_remap.rows") == []
    assert snap.by_name("hw.gpu.sm.activity") == []
    assert snap.by_name("hw.gpu.mig.mode") == []
    assert [
        p for p in snap.by_name("hw.gpu.throttle.time") if "thermal" in dict(p.attributes)["hw.gpu.throttle.reason"]
    ] == []
    gone = unsupported(snap)
    assert gone["nvmlDeviceGetRemappedRows"] == 2
    assert gone["nvmlDeviceGetMigMode"] == 2
    assert gone["nvmlDeviceGetFieldValues[269]"] == 2


def test_not_supported_is_asked_once_and_counted_once(tmp_path: Path, sources: list, monkeypatch) -> None:
    src = make_nvml_source(tmp_path, profile="t4", gpus=2)
    sources.append(src)
    calls = count_calls(monkeypatch, "nvmlDeviceGetRemappedRows")
    snaps = [cycle(src) for _ in range(3)]
    assert len(calls) == 2  # one per GPU, then never again
    assert [unsupported(s)["nvmlDeviceGetRemappedRows"] for s in snaps] == [2, 2, 2]


def test_fans_and_mig_where_present(tmp_path: Path, sources: list, monkeypatch) -> None:
    variant = PROFILES["h100-sxm"].replace(name="h100-mig", fans=2, mig_instances=3, unsupported_functions=frozenset())
    monkeypatch.setitem(PROFILES, "h100-mig", variant)
    src = make_nvml_source(tmp_path, profile="h100-mig", gpus=2)
    sources.append(src)
    snap = cycle(src)
    assert_catalog_conform(snap)
    assert {dict(p.attributes)["hw.fan"] for p in gpu_points(snap, "hw.gpu.fan.speed", 1)} == {"0", "1"}
    assert value(snap, "hw.gpu.mig.mode", 0) == 1
    mig = gpu_points(snap, "hw.gpu.mig.memory.usage", 0)
    assert {dict(p.attributes)["hw.gpu.mig.instance"] for p in mig} == {"1", "2", "3"}
    assert all(0 < p.value < 80 * 1024**3 / 3 for p in mig)


# ---------------------------------------------------------------------------- dynamics
def test_values_evolve_and_counters_only_grow(tmp_path: Path, sources: list) -> None:
    src = make_nvml_source(tmp_path, gpus=2)
    sources.append(src)
    counters = [n for n, s in CATALOG.items() if s.source == "nvml" and s.is_counter and n != "hw.gpu.xid.errors"]
    previous: dict = {}
    utils = []
    for _ in range(30):
        snap = cycle(src, 10.0)
        for p in snap.points:
            if p.name in counters:
                key = (p.name, p.attributes)
                assert p.value >= previous.get(key, 0), f"{key} went backwards"
                previous[key] = p.value
        utils.append(value(snap, "hw.gpu.utilization", 0, hw__gpu__task="general"))
        assert value(snap, "hw.gpu.power.usage", 0) <= 700.0 * 1.02
    assert len(set(utils)) > 5  # a random walk, not a constant
    energy = [v for (n, _), v in previous.items() if n == "hw.gpu.energy"]
    assert energy and all(e > 0 for e in energy)


def test_same_seed_same_values(tmp_path: Path, sources: list) -> None:
    def run(seed: int) -> list[tuple]:
        src = make_nvml_source(tmp_path, gpus=2, seed=seed)
        try:
            cycle(src)
            snap = cycle(src, 30.0)
            return sorted((p.name, p.attributes, p.value) for p in snap.points)
        finally:
            src.close()

    assert run(5) == run(5)
    assert run(5) != run(6)


# ---------------------------------------------------------------------------- faults
def test_xid_any_code_is_an_event_and_a_counter(tmp_path: Path, sources: list) -> None:
    src = make_nvml_source(
        tmp_path,
        faults="faults:\n"
        "  - {at: 5, gpu: 2, kind: xid, code: 119}\n"
        "  - {at: 6, gpu: 2, kind: xid, code: 119}\n"
        "  - {at: 7, gpu: 4, kind: xid, code: 4242}\n",
    )
    sources.append(src)
    snap = cycle(src, 10.0)
    xids = events(snap, "gpu.xid")
    assert [(dict(e.attributes)["gpu.index"], dict(e.attributes)["hw.gpu.xid"]) for e in xids] == [
        ("2", "119"),
        ("2", "119"),
        ("4", "4242"),
    ]
    first = dict(xids[0].attributes)
    assert first["xid.severity"] == "critical" and first["xid.action"] == "reset GPU"
    assert first["xid.source"] == "nvml"
    assert first["hw.id"] == dict(gpu_points(snap, "hw.gpu.lost", 2)[0].attributes)["hw.id"]
    assert dict(xids[2].attributes)["xid.severity"] == "unknown"
    assert value(snap, "hw.gpu.xid.errors", 2, hw__gpu__xid="119") == 2
    assert value(snap, "hw.gpu.xid.errors", 4, hw__gpu__xid="4242") == 1
    later = cycle(src, 10.0)
    assert events(later, "gpu.xid") == []
    assert value(later, "hw.gpu.xid.errors", 2, hw__gpu__xid="119") == 2  # cumulative


def test_thermal_throttle_for_a_duration(tmp_path: Path, sources: list) -> None:
    src = make_nvml_source(
        tmp_path, faults="faults:\n  - {at: 60, gpu: 3, kind: thermal_throttle, duration: 120, temperature_rise: 20}\n"
    )
    sources.append(src)
    before = cycle(src, 50.0)
    reason = {"hw__gpu__throttle__reason": "sw_thermal_slowdown"}
    assert value(before, "hw.gpu.throttle.active", 3, **reason) == 0
    sm_before = value(before, "hw.gpu.clock.frequency", 3, hw__gpu__clock="sm")
    temp_before = value(before, "hw.gpu.temperature", 3, hw__sensor="gpu")
    time_before = value(before, "hw.gpu.throttle.time", 3, **reason)
    during = cycle(src, 20.0)  # t = 70
    assert value(during, "hw.gpu.throttle.active", 3, **reason) == 1
    assert [dict(e.attributes)["hw.gpu.throttle.reason"] for e in events(during, "gpu.throttle.onset", 3)] == [
        "sw_thermal_slowdown"
    ]
    assert value(during, "hw.gpu.clock.frequency", 3, hw__gpu__clock="sm") < sm_before * 0.8
    hot = cycle(src, 100.0)  # t = 170: temperature has followed, with lag
    assert value(hot, "hw.gpu.temperature", 3, hw__sensor="gpu") > temp_before + 5
    after = cycle(src, 30.0)  # t = 200: over
    assert value(after, "hw.gpu.throttle.active", 3, **reason) == 0
    assert len(events(after, "gpu.throttle.clear", 3)) == 1
    spent = value(after, "hw.gpu.throttle.time", 3, **reason) - time_before
    assert 110 <= spent <= 130
    assert all(value(after, "hw.gpu.throttle.active", g, **reason) == 0 for g in (0, 1, 2, 4))


def test_power_brake(tmp_path: Path, sources: list) -> None:
    src = make_nvml_source(tmp_path, faults="faults:\n  - {at: 15, gpu: 1, kind: power_brake, duration: 30}\n")
    sources.append(src)
    cycle(src, 10.0)
    snap = cycle(src, 10.0)
    brake = {"hw__gpu__throttle__reason": "hw_power_brake_slowdown"}
    assert value(snap, "hw.gpu.throttle.active", 1, **brake) == 1
    assert value(snap, "hw.gpu.throttle.active", 1, hw__gpu__throttle__reason="hw_slowdown") == 1
    onsets = {dict(e.attributes)["hw.gpu.throttle.reason"] for e in events(snap, "gpu.throttle.onset", 1)}
    assert onsets == {"hw_power_brake_slowdown", "hw_slowdown"}
    assert value(snap, "hw.gpu.clock.frequency", 1, hw__gpu__clock="sm") <= 1980e6 * 0.31
    assert 4 <= value(snap, "hw.gpu.throttle.time", 1, **brake) <= 6
    after = cycle(src, 40.0)
    assert value(after, "hw.gpu.throttle.active", 1, **brake) == 0
    assert 29 <= value(after, "hw.gpu.throttle.time", 1, **brake) <= 31


def test_sbe_rate_raises_corrected_ecc_with_increase_events(tmp_path: Path, sources: list) -> None:
    src = make_nvml_source(
        tmp_path, faults="faults:\n  - {at: 5, gpu: 5, kind: sbe_rate, per_minute: 60, duration: 10m}\n"
    )
    sources.append(src)
    first = cycle(src, 1.0)
    assert events(first, "gpu.ecc.increase") == []  # the first cycle is the baseline
    snap = cycle(src, 120.0)
    vol = value(snap, "hw.gpu.ecc.errors", 5, hw__gpu__ecc__type="corrected", hw__gpu__ecc__scope="volatile")
    assert 80 <= vol <= 170
    increases = events(snap, "gpu.ecc.increase", 5)
    scopes = {dict(e.attributes)["hw.gpu.ecc.scope"]: int(dict(e.attributes)["delta"]) for e in increases}
    assert scopes["volatile"] == vol
    assert {dict(e.attributes)["hw.gpu.ecc.type"] for e in increases} == {"corrected"}
    assert [dict(e.attributes)["hw.gpu.xid"] for e in events(snap, "gpu.xid", 5)] == ["92"]


def test_dbe(tmp_path: Path, sources: list) -> None:
    src = make_nvml_source(tmp_path, faults="faults:\n  - {at: 15, gpu: 0, kind: dbe, count: 2}\n")
    sources.append(src)
    cycle(src, 10.0)
    snap = cycle(src, 10.0)
    assert value(snap, "hw.gpu.ecc.errors", 0, hw__gpu__ecc__type="uncorrected", hw__gpu__ecc__scope="volatile") == 2
    increase = [
        e for e in events(snap, "gpu.ecc.increase", 0) if dict(e.attributes)["hw.gpu.ecc.type"] == "uncorrected"
    ]
    assert increase and increase[0].severity.name == "ERROR"
    assert [dict(e.attributes)["hw.gpu.xid"] for e in events(snap, "gpu.xid", 0)] == ["48", "63"]
    assert value(snap, "hw.gpu.row_remap.rows", 0, hw__gpu__ecc__type="uncorrected") == 2
    assert len(events(snap, "gpu.row_remap.pending", 0)) == 1
    assert value(snap, "hw.gpu.recovery_action", 0) == 1


def test_row_remap_pending_and_failure(tmp_path: Path, sources: list) -> None:
    src = make_nvml_source(
        tmp_path,
        faults="faults:\n  - {at: 15, gpu: 6, kind: row_remap_pending}\n  - {at: 25, gpu: 6, kind: row_remap_failure}\n",
    )
    sources.append(src)
    cycle(src, 10.0)
    pending = cycle(src, 10.0)
    assert value(pending, "hw.gpu.row_remap.pending", 6) == 1
    assert len(events(pending, "gpu.row_remap.pending", 6)) == 1
    failed = cycle(src, 10.0)
    assert events(failed, "gpu.row_remap.pending") == []  # still pending: no repeat
    assert value(failed, "hw.gpu.row_remap.failure", 6) == 1
    assert len(events(failed, "gpu.row_remap.failure", 6)) == 1
    assert [dict(e.attributes)["hw.gpu.xid"] for e in events(failed, "gpu.xid", 6)] == ["64"]


def test_row_remap_pending_on_t4_is_a_pending_page_retirement(tmp_path: Path, sources: list) -> None:
    src = make_nvml_source(
        tmp_path, profile="t4", gpus=2, faults="faults:\n  - {at: 5, gpu: 1, kind: row_remap_pending}\n"
    )
    sources.append(src)
    snap = cycle(src, 10.0)
    assert value(snap, "hw.gpu.retired_pages.pending", 1) == 1
    assert value(snap, "hw.gpu.retired_pages", 1, hw__gpu__retirement__cause="single_bit") == 1


def test_nvlink_crc_burst_on_one_link(tmp_path: Path, sources: list) -> None:
    src = make_nvml_source(
        tmp_path, faults="faults:\n  - {at: 5, gpu: 6, kind: nvlink_crc_burst, link: 3, count: 600, duration: 60}\n"
    )
    sources.append(src)
    snap = cycle(src, 70.0)
    crc = {
        dict(p.attributes)["hw.nvlink.link"]: p.value
        for p in gpu_points(snap, "hw.gpu.nvlink.errors", 6)
        if dict(p.attributes)["hw.error.type"] == "crc_flit"
    }
    assert 450 <= crc.pop("3") <= 750
    assert set(crc.values()) == {0}
    assert value(snap, "hw.gpu.nvlink.errors", 6, hw__nvlink__link="3", hw__error__type="recovery") == 1
    assert value(snap, "hw.gpu.nvlink.state", 6, hw__nvlink__link="3") == 1


def link_io(snap: Snapshot, gpu: int, direction: str) -> dict[str, float]:
    """hw.gpu.nvlink.link.io of one GPU and direction: link -> bytes."""
    return {
        dict(p.attributes)["hw.nvlink.link"]: p.value
        for p in gpu_points(snap, "hw.gpu.nvlink.link.io", gpu)
        if dict(p.attributes)["network.io.direction"] == direction
    }


def test_nvlink_total_is_the_sum_of_the_links_in_the_same_cycle(tmp_path: Path, sources: list) -> None:
    src = make_nvml_source(tmp_path, gpus=2)
    sources.append(src)
    for _ in range(3):
        snap = cycle(src, 60.0)
        assert_catalog_conform(snap)
        for gpu in range(2):
            for direction in ("transmit", "receive"):
                links = link_io(snap, gpu, direction)
                assert sorted(links, key=int) == [str(k) for k in range(18)]
                total = value(snap, "hw.gpu.nvlink.io", gpu, network__io__direction=direction)
                assert total > 0 and total == sum(links.values())
                assert all(v % 1024 == 0 for v in links.values()), "NVML counts KiB"
    assert {dict(p.attributes).get("hw.nvlink.link") for p in snap.by_name("hw.gpu.nvlink.io")} == {None}


@pytest.mark.parametrize(
    ("mode", "in_fast", "in_slow", "in_burst"),
    [("slow", 0, 36, 0), ("fast", 36, 36, 36), ("off", 0, 0, 0)],
)
def test_per_link_io_tier_follows_the_config(
    tmp_path: Path, sources: list, mode: str, in_fast: int, in_slow: int, in_burst: int
) -> None:
    src = make_nvml_source(tmp_path, gpus=2)
    sources.append(src)
    src.config.nvml.nvlink_link_io = mode
    for _ in range(2):
        fast_only = cycle(src, 10.0, ("fast",))
        both = cycle(src, 10.0)
        for snap, expected in ((fast_only, in_fast), (both, in_slow)):
            assert len(gpu_points(snap, "hw.gpu.nvlink.link.io", 1)) == expected
            assert len(gpu_points(snap, "hw.gpu.nvlink.io", 1)) == 2  # the total: every fast cycle, any mode
    builder = SnapshotBuilder({}, 1)
    src.collect_burst(builder, 1)
    assert len(builder.build().by_name("hw.gpu.nvlink.link.io")) == in_burst
    # A slow pass without this cycle's fast pass sends no stale per-link readings.
    later = SnapshotBuilder({}, 2)
    src.collect(later, "slow")
    assert later.build().by_name("hw.gpu.nvlink.link.io") == []


def test_a_link_not_supported_is_left_out_of_the_total(tmp_path: Path, sources: list, monkeypatch) -> None:
    src = make_nvml_source(tmp_path, gpus=1)
    sources.append(src)
    real = pynvml.nvmlDeviceGetFieldValues
    asked: list[list] = []

    def link_3_transmit_not_supported(handle, field_ids):
        asked.append(list(field_ids))
        values = real(handle, field_ids)
        for v in values:
            if v.fieldId == pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX and v.scopeId == 3:
                v.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
        return values

    monkeypatch.setattr(pynvml, "nvmlDeviceGetFieldValues", link_3_transmit_not_supported)
    for _ in range(2):
        snap = cycle(src, 60.0)
        transmit = link_io(snap, 0, "transmit")
        assert "3" not in transmit and len(transmit) == 17  # the other links still count
        assert value(snap, "hw.gpu.nvlink.io", 0, network__io__direction="transmit") == sum(transmit.values())
        receive = link_io(snap, 0, "receive")
        assert len(receive) == 18
        assert value(snap, "hw.gpu.nvlink.io", 0, network__io__direction="receive") == sum(receive.values())
        assert unsupported(snap)[f"nvmlDeviceGetFieldValues[{pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX}]"] == 1
    # Asked once, then never again: only that link's transmit field leaves the fast batch.
    fast_batches = [ids for ids in asked if (pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX, 3) in ids]
    assert len(fast_batches) == 2
    assert (pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, 3) in fast_batches[0]
    assert (pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, 3) not in fast_batches[1]
    assert (pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, 4) in fast_batches[1]


def test_no_nvlink_total_when_no_link_answers(tmp_path: Path, sources: list, monkeypatch) -> None:
    src = make_nvml_source(tmp_path, gpus=1)
    sources.append(src)
    real = pynvml.nvmlDeviceGetFieldValues
    nvlink = {pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX}

    def nvlink_unknown_error(handle, field_ids):
        values = real(handle, field_ids)
        for v in values:
            if v.fieldId in nvlink:
                v.nvmlReturn = pynvml.NVML_ERROR_UNKNOWN
        return values

    monkeypatch.setattr(pynvml, "nvmlDeviceGetFieldValues", nvlink_unknown_error)
    snap = cycle(src, 10.0)
    assert snap.by_name("hw.gpu.nvlink.io") == [] and snap.by_name("hw.gpu.nvlink.link.io") == []
    assert value(snap, "hw.gpu.power.usage", 0) > 0  # the rest of the cycle is unaffected
    assert snap.source_errors, "the failed link reads are counted"


def test_a_link_failing_one_cycle_skips_that_cycles_total(tmp_path: Path, sources: list, monkeypatch) -> None:
    """A partial sum would dip below the last total and read as a counter reset: no total that cycle."""
    src = make_nvml_source(tmp_path, gpus=1)
    sources.append(src)
    real = pynvml.nvmlDeviceGetFieldValues
    failing = {"on": False}

    def link_5_receive_flaky(handle, field_ids):
        values = real(handle, field_ids)
        for v in values:
            if failing["on"] and v.fieldId == pynvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX and v.scopeId == 5:
                v.nvmlReturn = pynvml.NVML_ERROR_UNKNOWN
        return values

    monkeypatch.setattr(pynvml, "nvmlDeviceGetFieldValues", link_5_receive_flaky)
    before = value(cycle(src, 10.0), "hw.gpu.nvlink.io", 0, network__io__direction="receive")
    failing["on"] = True
    snap = cycle(src, 20.0)
    assert [
        p for p in snap.by_name("hw.gpu.nvlink.io") if dict(p.attributes)["network.io.direction"] == "receive"
    ] == []
    assert value(snap, "hw.gpu.nvlink.io", 0, network__io__direction="transmit") > 0  # the other direction is whole
    failing["on"] = False
    after = value(cycle(src, 30.0), "hw.gpu.nvlink.io", 0, network__io__direction="receive")
    assert after >= before  # link 5 is still asked for and counted once it answers again


def test_nvlink_down_event(tmp_path: Path, sources: list) -> None:
    src = make_nvml_source(tmp_path, faults="faults:\n  - {at: 15, gpu: 2, kind: nvlink_down, link: 7, duration: 30}\n")
    sources.append(src)
    cycle(src, 10.0)
    snap = cycle(src, 10.0)
    assert value(snap, "hw.gpu.nvlink.state", 2, hw__nvlink__link="7") == 0
    down = events(snap, "gpu.nvlink.down", 2)
    assert [dict(e.attributes)["hw.nvlink.link"] for e in down] == ["7"]
    assert value(cycle(src, 40.0), "hw.gpu.nvlink.state", 2, hw__nvlink__link="7") == 1


def test_pcie_replay_burst(tmp_path: Path, sources: list) -> None:
    src = make_nvml_source(
        tmp_path, faults="faults:\n  - {at: 5, gpu: 1, kind: pcie_replay_burst, count: 400, duration: 20}\n"
    )
    sources.append(src)
    snap = cycle(src, 30.0)
    assert 300 <= value(snap, "hw.gpu.pcie.replays", 1) <= 500
    assert value(snap, "hw.gpu.pcie.replays", 0) == 0


def test_fall_off_the_bus(tmp_path: Path, sources: list) -> None:
    src = make_nvml_source(tmp_path, faults="faults:\n  - {at: 15, gpu: 3, kind: fall_off_bus}\n")
    sources.append(src)
    cycle(src, 10.0)
    handle = pynvml.nvmlDeviceGetHandleByIndex(2)  # healthy neighbour still answers
    assert pynvml.nvmlDeviceGetPowerUsage(handle) > 0
    snap = cycle(src, 10.0)
    assert value(snap, "hw.gpu.lost", 3) == 1
    lost = events(snap, "gpu.lost", 3)
    assert len(lost) == 1 and lost[0].severity.name == "FATAL"
    assert [dict(e.attributes)["hw.gpu.xid"] for e in events(snap, "gpu.xid", 3)] == ["79"]
    assert gpu_points(snap, "hw.gpu.utilization", 3) == []
    assert all(value(snap, "hw.gpu.lost", g) == 0 for g in (0, 1, 2, 4, 5, 6, 7))
    assert len(snap.by_name("hw.gpu.power.usage")) == 7
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        pynvml.nvmlDeviceGetPowerUsage(src.gpus[3].handle)
    again = cycle(src, 10.0)
    assert value(again, "hw.gpu.lost", 3) == 1
    assert events(again, "gpu.lost") == []  # reported once, on the transition
    assert len(gpu_points(again, "hw.gpu.lost", 3)) == 1


# ---------------------------------------------------------------------------- watchdog
def _workers(index: int) -> int:
    return sum(1 for t in threading.enumerate() if t.name == f"nvml-{index}")


def test_hung_call_is_abandoned_counted_and_does_not_pile_up(tmp_path: Path, sources: list, caplog) -> None:
    src = make_nvml_source(
        tmp_path,
        gpus=3,
        timeout_s=0.2,
        faults="faults:\n  - {at: 5, gpu: 0, kind: hang, function: nvmlDeviceGetPowerUsage, seconds: 1.5}\n",
    )
    sources.append(src)
    with caplog.at_level(logging.WARNING, logger="agent.sources.nvml"):
        started = time.monotonic()
        hung = cycle(src, 10.0, tiers=("fast",))
        assert time.monotonic() - started < 1.2  # abandoned after ~0.2 s, not after the 1.5 s hang
    assert hung.source_errors[("nvml", "timeout:nvmlDeviceGetPowerUsage")] == 1
    assert "nvmlDeviceGetPowerUsage did not return within 0.2 s" in caplog.text
    assert gpu_points(hung, "hw.gpu.power.usage", 0) == []
    assert len(gpu_points(hung, "hw.gpu.utilization", 0)) == 4  # what came before the hang is kept
    assert len(hung.by_name("hw.gpu.power.usage")) == 2  # the other GPUs are unaffected
    stuck = cycle(src, 10.0, tiers=("fast",))
    assert stuck.source_errors[("nvml", "gpu_call_still_hung")] == 1
    assert gpu_points(stuck, "hw.gpu.utilization", 0) == []
    assert len(stuck.by_name("hw.gpu.power.usage")) == 2
    assert _workers(0) == 1  # no second thread stuck behind the first
    deadline = time.monotonic() + 5
    while src.watchdog.stuck_keys() and time.monotonic() < deadline:
        time.sleep(0.05)
    recovered = cycle(src, 10.0, tiers=("fast",))
    assert len(recovered.by_name("hw.gpu.power.usage")) == 3
    assert src.timeouts == {"nvmlDeviceGetPowerUsage": 1}


# ---------------------------------------------------------------------------- interfaces
def test_one_nvml_init_per_source(tmp_path: Path, sources: list) -> None:
    src = make_nvml_source(tmp_path, gpus=2)
    sources.append(src)
    for _ in range(3):
        cycle(src)
    assert src.simulator.nvml_init_calls == 1


def test_gpu_by_pci_accepts_kernel_and_nvml_spellings(tmp_path: Path, sources: list) -> None:
    src = make_nvml_source(tmp_path)
    sources.append(src)
    g = src.gpus[1]
    bus = int(g.info["hw.pci.bus_id"].split(":")[1], 16)
    expected = {"hw.id": g.uuid, "gpu.index": "1", "hw.model": "NVIDIA H100 80GB HBM3"}
    for spelling in (f"00000000:{bus:02X}:00.0", f"0000:{bus:02x}:00.0", f"PCI:0000:{bus:02x}:00", f"{bus:02x}:00.0"):
        assert src.gpu_by_pci(spelling) == expected, spelling
    assert src.gpu_by_pci("0000:01:00.0") is None
    assert src.gpu_by_pci("not a bus id") is None
    assert parse_pci("PCI:0000:1B:00") == (0, 0x1B, 0)


def test_collect_burst_reads_one_gpus_fast_fields(tmp_path: Path, sources: list) -> None:
    src = make_nvml_source(tmp_path)
    sources.append(src)
    cycle(src)
    src.simulator.advance(1.0)
    builder = SnapshotBuilder({}, 0)
    src.collect_burst(builder, 5)
    snap = builder.build()
    assert {dict(p.attributes)["gpu.index"] for p in snap.points} == {"5"}
    assert value(snap, "hw.gpu.power.usage", 5) > 0
    assert snap.by_name("hw.gpu.ecc.errors") == []  # slow tier not included
    src.collect_burst(builder, 99)  # out of range: ignored, no crash


def test_harmful_reasons_are_the_catalogs() -> None:
    assert set(HARMFUL_THROTTLE_REASONS) == {
        "hw_slowdown",
        "sw_thermal_slowdown",
        "hw_thermal_slowdown",
        "hw_power_brake_slowdown",
    }


def test_without_nvml_one_line_and_no_points(caplog) -> None:
    skip_if_real_nvml()
    config = AgentConfig(sources=["nvml"])
    with caplog.at_level(logging.INFO, logger="agent.sources.nvml"):
        src = NvmlSource.create(config)
    try:
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 1
        assert lines[0].startswith("NVML not available: ") and lines[0].endswith("; GPU metrics disabled")
        builder = SnapshotBuilder({}, 0)
        src.collect(builder, "fast")
        src.collect(builder, "slow")
        assert builder.build().points == []
        assert src.gpu_by_pci("0000:1b:00.0") is None
    finally:
        src.close()
