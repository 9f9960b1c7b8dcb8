"""`fleetpulse agent --once` through the real CLI: on the fixture trees, and on this machine."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import run_agent_once

FIXTURES = Path(__file__).parent / "fixtures"


def run_agent(*flags: str) -> tuple[int, list[dict], str]:
    return run_agent_once(*flags, timeout=60)


def points(records: list[dict], name: str, **attributes: str) -> list[float]:
    return [r["value"] for r in records if r.get("name") == name and attributes.items() <= r["attributes"].items()]


def test_once_on_fixture_trees() -> None:
    code, records, stderr = run_agent(
        "--sysfs",
        str(FIXTURES / "sysfs"),
        "--procfs",
        str(FIXTURES / "procfs"),
        "--kmsg",
        str(FIXTURES / "kmsg/xid.log"),
        "--sources",
        "host,fabric,errors",
    )
    assert code == 0, stderr
    assert "resource" in records[0]
    # host
    assert points(records, "system.cpu.load_average.1m") == [1.25]
    assert points(records, "system.network.tcp.retransmits") == [4321]
    assert points(records, "system.memory.limit") == [16_384_000 * 1024]
    assert points(records, "system.disk.io", **{"system.device": "nvme0n1", "disk.io.direction": "read"}) == [
        987_654 * 512
    ]
    # fabric: port_rcv_data words x 4 = bytes
    assert points(
        records, "hw.network.ib.io", **{"ib.device": "mlx5_0", "ib.port": "1", "network.io.direction": "receive"}
    ) == [5_000_000_000]
    assert points(records, "hw.network.ib.port.state", **{"ib.device": "mlx5_0", "ib.port": "2"}) == [1]
    assert points(records, "hw.network.ib.port.rate", **{"ib.device": "mlx5_0", "ib.port": "1"}) == [400e9]
    # errors
    assert points(
        records, "hw.memory.edac.errors", **{"edac.mc": "0", "edac.csrow": "unknown", "hw.error.type": "corrected"}
    ) == [2]
    assert points(
        records,
        "hw.pcie.aer.errors",
        **{"hw.pci.bus_id": "0000:18:00.0", "hw.pcie.aer.type": "total", "hw.pcie.aer.severity": "correctable"},
    ) == [4]
    counter = [r for r in records if r.get("name") == "hw.gpu.xid.errors"]
    assert all(r["type"] == "counter" and r["start_time_unix_nano"] <= r["time_unix_nano"] for r in counter)
    xids = [r for r in records if r.get("event") == "gpu.xid"]
    assert [x["attributes"]["hw.gpu.xid"] for x in xids] == ["13", "13", "79", "48", "119", "154"]
    assert xids[2]["severity"] == "FATAL"
    assert xids[2]["attributes"]["hw.pci.bus_id"] == "0000:18:00.0"
    # every odd case in the fixtures is counted per source, none crashed the cycle
    errors = records[-1]["source_errors"]
    assert errors["fabric/not_available"] == 5
    assert errors["fabric/missing_file"] == 1
    assert errors["fabric/unreadable_file"] == 1
    assert errors["errors/malformed_xid_line"] == 1
    assert errors["host/malformed_value"] >= 3
    assert not [key for key in errors if key.endswith("collect_failed")]


def test_once_on_this_machine_without_root_flags() -> None:
    code, records, stderr = run_agent("--sources", "host,fabric,errors")
    assert code == 0, stderr
    names = {r.get("name") for r in records}
    assert {"system.cpu.time", "system.memory.usage", "system.uptime", "system.filesystem.usage"} <= names
    assert points(records, "system.memory.limit")[0] > 0


def test_kernel_log_xid_mapped_to_the_simulated_gpu_at_that_address() -> None:
    code, records, stderr = run_agent(
        "--simulate",
        "8:h100-sxm",
        "--seed",
        "1",
        "--sources",
        "nvml,errors",
        "--sysfs",
        str(FIXTURES / "sysfs"),
        "--kmsg",
        str(FIXTURES / "kmsg/xid.log"),
    )
    assert code == 0, stderr
    gpu_at_18 = [
        r["attributes"]
        for r in records
        if r.get("name") == "hw.gpu.info" and r["attributes"]["hw.pci.bus_id"].lower().endswith(":18:00.0")
    ]
    assert len(gpu_at_18) == 1
    fallen = [r for r in records if r.get("event") == "gpu.xid" and r["attributes"]["hw.gpu.xid"] == "79"]
    assert len(fallen) == 1
    assert fallen[0]["attributes"]["hw.id"] == gpu_at_18[0]["hw.id"]
    assert fallen[0]["attributes"]["gpu.index"] == gpu_at_18[0]["gpu.index"]
    kernel_counter = [
        r for r in records if r.get("name") == "hw.gpu.xid.errors" and r["attributes"].get("xid.source") == "kernel_log"
    ]
    assert {r["attributes"].get("hw.id") for r in kernel_counter} >= {gpu_at_18[0]["hw.id"]}
