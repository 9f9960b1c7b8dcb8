"""Fabric source against the fixture sysfs tree: InfiniBand ports and NIC error counters."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from agent.catalog import IB_ERROR_COUNTERS
from agent.config import AgentConfig
from agent.snapshot import Severity, Snapshot
from agent.sources.fabric import FabricSource, parse_rate, parse_state
from tests.helpers import snapshot_cycle

FIXTURES = Path(__file__).parent / "fixtures"
TICK = 1_800_000_000_000_000_000
PORT1 = "class/infiniband/mlx5_0/ports/1"


def source_for(sysfs: Path) -> FabricSource:
    config = AgentConfig()
    config.roots.sysfs = str(sysfs)
    return FabricSource(config)


def cycle(source: FabricSource, tick: int = TICK, tiers: tuple[str, ...] = ("fast", "slow")) -> Snapshot:
    return snapshot_cycle(source, tick, tiers)


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURES / "sysfs", tmp_path / "sysfs")
    return tmp_path / "sysfs"


def ib(snap: Snapshot, name: str, device: str, port: str, **extra: str) -> float:
    return snap.value(name, ib__device=device, ib__port=port, **extra)


def test_parsers() -> None:
    assert parse_state("4: ACTIVE") == (4, "ACTIVE")
    assert parse_state("garbage") is None
    assert parse_rate("400 Gb/sec (4X NDR)") == 400e9
    assert parse_rate("2.5 Gb/sec (1X SDR)") == 2.5e9
    assert parse_rate("fast") is None


def test_port_state_rate_and_data_bytes_exact() -> None:
    snap = cycle(source_for(FIXTURES / "sysfs"))
    assert ib(snap, "hw.network.ib.port.state", "mlx5_0", "1") == 4
    assert ib(snap, "hw.network.ib.port.phys_state", "mlx5_0", "1") == 5
    assert ib(snap, "hw.network.ib.port.rate", "mlx5_0", "1") == 400e9
    # port_*_data count 4-byte words.
    assert ib(snap, "hw.network.ib.io", "mlx5_0", "1", network__io__direction="receive") == 1_250_000_000 * 4
    # A legacy 32-bit counter pinned at its maximum is reported as the kernel gives it.
    assert ib(snap, "hw.network.ib.io", "mlx5_0", "1", network__io__direction="transmit") == 4294967295 * 4
    assert ib(snap, "hw.network.ib.packets", "mlx5_0", "1", network__io__direction="receive") == 9_876_543
    assert ib(snap, "hw.network.ib.packets", "mlx5_0", "1", network__io__direction="transmit") == 8_765_432


def test_every_design_error_counter_is_exported() -> None:
    snap = cycle(source_for(FIXTURES / "sysfs"), tiers=("fast",))
    port2 = {
        dict(p.attributes)["ib.counter"]
        for p in snap.by_name("hw.network.ib.errors")
        if ("ib.port", "2") in p.attributes
    }
    assert port2 == set(IB_ERROR_COUNTERS)
    port1 = {
        dict(p.attributes)["ib.counter"]: p.value
        for p in snap.by_name("hw.network.ib.errors")
        if dict(p.attributes)["ib.device"] == "mlx5_0" and dict(p.attributes)["ib.port"] == "1"
    }
    assert port1 == {
        "symbol_error": 12,
        "link_downed": 1,
        "link_error_recovery": 2,
        "local_link_integrity_errors": 0,
        "excessive_buffer_overrun_errors": 0,
        "port_rcv_errors": 5,
        "port_rcv_remote_physical_errors": 0,
        "port_xmit_discards": 3,
        "port_xmit_wait": 1_234_567,
        "VL15_dropped": 0,
        # port_rcv_switch_relay_errors is a directory in the fixture: unreadable, skipped
    }


def test_hw_counters_exact_and_malformed_skipped() -> None:
    snap = cycle(source_for(FIXTURES / "sysfs"), tiers=("fast",))
    hw = {
        dict(p.attributes)["ib.counter"]: p.value
        for p in snap.by_name("hw.network.ib.hw_counters")
        if dict(p.attributes)["ib.device"] == "mlx5_0"
    }
    assert hw == {
        "out_of_buffer": 7,
        "out_of_sequence": 3,
        "local_ack_timeout_err": 2,
        "rnr_nak_retry_err": 0,
        "np_cnp_sent": 118,
        "rp_cnp_handled": 116,
        "lifespan": 10,
    }  # req_cqe_error reads "0x1f": malformed, skipped
    assert ib(snap, "hw.network.ib.hw_counters", "mlx5_2", "1", ib__counter="out_of_buffer") == 9


def test_odd_ports_counted_per_reason() -> None:
    snap = cycle(source_for(FIXTURES / "sysfs"), tiers=("fast",))
    # mlx5_1: data/packet counters and VL15_dropped read "N/A (no PMA)".
    assert [p for p in snap.by_name("hw.network.ib.io") if ("ib.device", "mlx5_1") in p.attributes] == []
    assert ib(snap, "hw.network.ib.errors", "mlx5_1", "1", ib__counter="symbol_error") == 0
    assert snap.source_errors[("fabric", "not_available")] == 5
    # mlx5_2 has no counters directory; its state still reports.
    assert ib(snap, "hw.network.ib.port.state", "mlx5_2", "1") == 4
    assert snap.source_errors[("fabric", "missing_file")] == 1
    assert snap.source_errors[("fabric", "unreadable_file")] == 1  # the directory-as-counter
    # req_cqe_error "0x1f" and ib0's empty tx_fifo_errors.
    assert snap.source_errors[("fabric", "malformed_value")] == 2


def test_port_down_reported_and_ib_port_down_event_on_transition(sysfs: Path) -> None:
    source = source_for(sysfs)
    first = cycle(source)
    assert ib(first, "hw.network.ib.port.state", "mlx5_0", "2") == 1  # already down: no event
    assert ib(first, "hw.network.ib.port.phys_state", "mlx5_0", "2") == 3
    assert first.events == []
    (sysfs / PORT1 / "state").write_text("1: DOWN\n")
    (sysfs / PORT1 / "phys_state").write_text("2: Polling\n")
    second = cycle(source, TICK + 10**10, ("fast",))
    assert ib(second, "hw.network.ib.port.state", "mlx5_0", "1") == 1
    [event] = second.events
    assert event.name == "ib.port.down"
    assert event.severity == Severity.ERROR
    attributes = dict(event.attributes)
    assert attributes["ib.device"] == "mlx5_0" and attributes["ib.port"] == "1"
    assert attributes["ib.port.state"] == "DOWN" and attributes["ib.port.previous_state"] == "ACTIVE"
    assert attributes["ib.port.phys_state"] == "Polling"
    assert "mlx5_0 port 1 left ACTIVE" in event.body
    third = cycle(source, TICK + 2 * 10**10, ("fast",))
    assert third.events == []  # still down: one event per transition


def test_wrapped_counter_is_raw_with_visible_reset(sysfs: Path) -> None:
    source = source_for(sysfs)
    first = cycle(source, TICK, ("fast",))
    original_start = next(
        p.start_time_unix_nano
        for p in first.by_name("hw.network.ib.io")
        if dict(p.attributes) == {"ib.device": "mlx5_0", "ib.port": "1", "network.io.direction": "transmit"}
    )
    (sysfs / PORT1 / "counters/port_xmit_data").write_text("25\n")  # wrapped past 2^32 words
    (sysfs / PORT1 / "counters/symbol_error").write_text("13\n")
    second = cycle(source, TICK + 10**10, ("fast",))
    [xmit] = [
        p
        for p in second.by_name("hw.network.ib.io")
        if dict(p.attributes) == {"ib.device": "mlx5_0", "ib.port": "1", "network.io.direction": "transmit"}
    ]
    assert xmit.value == 100  # 25 words, raw: no unwrapping, no negative delta
    assert original_start < TICK
    assert xmit.start_time_unix_nano == TICK  # a reset after the previous reading
    [symbols] = [
        p
        for p in second.by_name("hw.network.ib.errors")
        if dict(p.attributes) == {"ib.device": "mlx5_0", "ib.port": "1", "ib.counter": "symbol_error"}
    ]
    assert symbols.value == 13 and symbols.start_time_unix_nano == original_start


def test_nic_errors_exact_physical_interfaces_only() -> None:
    snap = cycle(source_for(FIXTURES / "sysfs"), tiers=("fast",))
    interfaces = {dict(p.attributes)["network.interface.name"] for p in snap.by_name("hw.network.nic.errors")}
    assert interfaces == {"eth0", "ib0"}  # lo and the veth have no device link
    assert snap.value("hw.network.nic.errors", network__interface__name="eth0", hw__error__type="rx_crc_errors") == 5
    assert (
        snap.value("hw.network.nic.errors", network__interface__name="eth0", hw__error__type="rx_missed_errors") == 17
    )
    assert (
        snap.value("hw.network.nic.errors", network__interface__name="eth0", hw__error__type="tx_carrier_errors") == 1
    )
    ib0 = {
        dict(p.attributes)["hw.error.type"]
        for p in snap.by_name("hw.network.nic.errors")
        if ("network.interface.name", "ib0") in p.attributes
    }
    assert "tx_fifo_errors" not in ib0  # empty file, skipped


def test_fifo_counter_does_not_block(sysfs: Path) -> None:
    counter = sysfs / PORT1 / "counters/symbol_error"
    counter.unlink()
    os.mkfifo(counter)
    snap = cycle(source_for(sysfs), tiers=("fast",))
    assert snap.source_errors[("fabric", "unreadable_file")] == 2
    assert ib(snap, "hw.network.ib.errors", "mlx5_0", "1", ib__counter="link_downed") == 1


def test_device_list_is_cached_until_the_slow_tier(sysfs: Path) -> None:
    source = source_for(sysfs)
    cycle(source, TICK, ("fast",))
    shutil.copytree(sysfs / "class/infiniband/mlx5_2", sysfs / "class/infiniband/mlx5_3")
    fast = cycle(source, TICK + 10**10, ("fast",))
    assert not [p for p in fast.by_name("hw.network.ib.port.state") if ("ib.device", "mlx5_3") in p.attributes]
    cycle(source, TICK + 2 * 10**10, ("slow",))
    after = cycle(source, TICK + 3 * 10**10, ("fast",))
    assert ib(after, "hw.network.ib.port.state", "mlx5_3", "1") == 4


def test_no_infiniband_no_points_no_errors(tmp_path: Path) -> None:
    snap = cycle(source_for(tmp_path))
    assert snap.points == [] and not snap.source_errors


def test_kept_open_counters_reread_each_cycle_and_reopened_on_slow_tier(sysfs: Path) -> None:
    source = source_for(sysfs)
    cycle(source, TICK, ("fast",))
    counter = sysfs / PORT1 / "counters/link_downed"
    counter.write_text("2\n")  # rewritten in place, as the kernel regenerates an attribute
    second = cycle(source, TICK + 10**10, ("fast",))
    assert ib(second, "hw.network.ib.errors", "mlx5_0", "1", ib__counter="link_downed") == 2
    assert source.reader._open  # hot files stay open between fast cycles
    counter.unlink()
    counter.write_text("3\n")  # a new inode: a re-created device
    cycle(source, TICK + 2 * 10**10, ("slow",))
    third = cycle(source, TICK + 3 * 10**10, ("fast",))
    assert ib(third, "hw.network.ib.errors", "mlx5_0", "1", ib__counter="link_downed") == 3
    source.close()
    assert source.reader._open == {}
