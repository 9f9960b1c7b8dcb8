"""Fabric source: InfiniBand ports (state, rate, data, packets, error and hw counters) and NIC errors.

Reads ``<sysfs>/class/infiniband/<dev>/ports/<n>/{state,phys_state,rate,counters/*,hw_counters/*}``
and ``<sysfs>/class/net/<if>/statistics/*`` for interfaces backed by a device. NVLink comes from
the NVML source.

``port_rcv_data``/``port_xmit_data`` count 4-byte words: they are multiplied by 4. Counters are
exported as the kernel gives them (legacy 32-bit PMA counters saturate or wrap; a drop shows as a
counter reset). A port leaving ACTIVE between two cycles emits an ``ib.port.down`` event.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

from agent.catalog import IB_ERROR_COUNTERS
from agent.config import AgentConfig
from agent.snapshot import Severity, SnapshotBuilder
from agent.sources.sysfs_read import MALFORMED, MISSING, FileReader, ResetTracker, list_dir

log = logging.getLogger(__name__)

NAME = "fabric"

IB_ACTIVE = 4
_WORD_BYTES = 4
_DATA_COUNTERS = (("port_rcv_data", "receive"), ("port_xmit_data", "transmit"))
_PACKET_COUNTERS = (("port_rcv_packets", "receive"), ("port_xmit_packets", "transmit"))
# Detailed NIC counters; the rx/tx totals and drops are already system.network.* in the host source.
NIC_ERROR_COUNTERS = (
    "rx_crc_errors",
    "rx_frame_errors",
    "rx_fifo_errors",
    "rx_missed_errors",
    "rx_over_errors",
    "rx_length_errors",
    "rx_nohandler",
    "tx_aborted_errors",
    "tx_carrier_errors",
    "tx_fifo_errors",
    "tx_heartbeat_errors",
    "tx_window_errors",
    "collisions",
)


@dataclass(slots=True)
class IbPort:
    device: str
    port: str
    path: str
    counters: list[str] | None  # files present in counters/, None when the directory is missing
    hw_counters: list[str] = field(default_factory=list)

    @property
    def attributes(self) -> dict[str, str]:
        return {"ib.device": self.device, "ib.port": self.port}


def parse_state(text: str) -> tuple[int, str] | None:
    """``"4: ACTIVE"`` → ``(4, "ACTIVE")``."""
    number, _, label = text.partition(":")
    try:
        return int(number), label.strip()
    except ValueError:
        return None


def parse_rate(text: str) -> float | None:
    """``"100 Gb/sec (4X EDR)"`` → 1e11 bit/s."""
    parts = text.split()
    if len(parts) < 2:
        return None
    scale = {"Gb/sec": 1e9, "Mb/sec": 1e6}.get(parts[1])
    try:
        return float(parts[0]) * scale if scale else None
    except ValueError:
        return None


class FabricSource:
    name = NAME

    def __init__(self, config: AgentConfig) -> None:
        self.sys = config.roots.sysfs.rstrip("/") or "/"
        self.reader = FileReader(NAME)
        self._resets = ResetTracker(time.time_ns())
        self._ports: list[IbPort] | None = None
        self._nics: list[tuple[str, list[str]]] | None = None  # (interface, present counter files)
        self._last_state: dict[tuple[str, str], tuple[int, str]] = {}

    # ------------------------------------------------------------------ protocol
    def collect(self, builder: SnapshotBuilder, tier: str) -> None:
        self.reader.begin(builder)
        try:
            if tier == "slow":
                self.reader.release()
                self._discover()
                self._ib_rates(builder)
                self._resets.expire(builder.time_unix_nano - 3600 * 1_000_000_000)
                return
            if self._ports is None or self._nics is None:
                self._discover()
            self._ib_ports(builder)
            self._nic_errors(builder)
        except Exception as exc:  # a parser bug must not take the cycle down
            log.debug("fabric source failed: %r", exc, exc_info=True)
            builder.count_error(NAME, "collect_failed")

    def close(self) -> None:
        self.reader.release()
        self._last_state.clear()

    # ------------------------------------------------------------------ discovery (slow tier)
    def _discover(self) -> None:
        ports: list[IbPort] = []
        ib_root = f"{self.sys}/class/infiniband"
        for device in list_dir(ib_root):
            for port in list_dir(f"{ib_root}/{device}/ports"):
                path = f"{ib_root}/{device}/ports/{port}"
                counters = list_dir(f"{path}/counters") or None
                ports.append(IbPort(device, port, path, counters, list_dir(f"{path}/hw_counters")))
        self._ports = ports
        nics: list[tuple[str, list[str]]] = []
        net_root = f"{self.sys}/class/net"
        for interface in list_dir(net_root):
            # Only interfaces backed by hardware: lo, bridges, veths and tunnels have no device link.
            if not os.path.exists(f"{net_root}/{interface}/device"):
                continue
            present = set(list_dir(f"{net_root}/{interface}/statistics"))
            nics.append((interface, [c for c in NIC_ERROR_COUNTERS if c in present]))
        self._nics = nics

    # ------------------------------------------------------------------ InfiniBand
    def _counter(self, builder: SnapshotBuilder, name: str, value: float, attributes: dict[str, str]) -> None:
        key = (name, *attributes.values())
        builder.add(
            name, value, attributes, start_time_unix_nano=self._resets.start_for(key, value, builder.time_unix_nano)
        )

    def _ib_ports(self, builder: SnapshotBuilder) -> None:
        for port in self._ports or ():
            attributes = port.attributes
            state = self._state(builder, port, "state")
            phys = self._state(builder, port, "phys_state")
            if state is not None:
                builder.add("hw.network.ib.port.state", state[0], attributes)
                self._port_transition(builder, port, state, phys)
            if phys is not None:
                builder.add("hw.network.ib.port.phys_state", phys[0], attributes)
            if port.counters is None:
                self.reader.skip(f"{port.path}/counters", MISSING, "no counters directory")
            else:
                self._ib_counters(builder, port, attributes)
            for counter in port.hw_counters:
                value = self.reader.integer(f"{port.path}/hw_counters/{counter}")
                if value is not None:
                    self._counter(builder, "hw.network.ib.hw_counters", value, {**attributes, "ib.counter": counter})

    def _state(self, builder: SnapshotBuilder, port: IbPort, file: str) -> tuple[int, str] | None:
        path = f"{port.path}/{file}"
        text = self.reader.text(path)
        if text is None:
            return None
        parsed = parse_state(text)
        if parsed is None:
            self.reader.skip(path, MALFORMED, text[:40])
        return parsed

    def _port_transition(
        self, builder: SnapshotBuilder, port: IbPort, state: tuple[int, str], phys: tuple[int, str] | None
    ) -> None:
        key = (port.device, port.port)
        previous = self._last_state.get(key)
        self._last_state[key] = state
        if previous is None or previous[0] != IB_ACTIVE or state[0] == IB_ACTIVE:
            return
        phys_text = f"{phys[0]}: {phys[1]}" if phys else "unknown"
        builder.event(
            "ib.port.down",
            Severity.ERROR,
            f"InfiniBand {port.device} port {port.port} left ACTIVE: now {state[0]}: {state[1]} "
            f"(physical state {phys_text})",
            {
                **port.attributes,
                "ib.port.state": state[1] or str(state[0]),
                "ib.port.previous_state": previous[1] or str(previous[0]),
                "ib.port.phys_state": phys[1] if phys else "",
            },
        )

    def _ib_counters(self, builder: SnapshotBuilder, port: IbPort, attributes: dict[str, str]) -> None:
        base = f"{port.path}/counters"
        present = port.counters or ()
        for file, direction in _DATA_COUNTERS:
            if file in present:
                words = self.reader.integer(f"{base}/{file}")
                if words is not None:
                    self._counter(
                        builder,
                        "hw.network.ib.io",
                        words * _WORD_BYTES,
                        {**attributes, "network.io.direction": direction},
                    )
        for file, direction in _PACKET_COUNTERS:
            if file in present:
                packets = self.reader.integer(f"{base}/{file}")
                if packets is not None:
                    self._counter(
                        builder, "hw.network.ib.packets", packets, {**attributes, "network.io.direction": direction}
                    )
        for file in IB_ERROR_COUNTERS:
            if file in present:
                errors = self.reader.integer(f"{base}/{file}")
                if errors is not None:
                    self._counter(builder, "hw.network.ib.errors", errors, {**attributes, "ib.counter": file})

    def _ib_rates(self, builder: SnapshotBuilder) -> None:
        for port in self._ports or ():
            path = f"{port.path}/rate"
            text = self.reader.text(path)
            if text is None:
                continue
            rate = parse_rate(text)
            if rate is None:
                self.reader.skip(path, MALFORMED, text[:40])
            else:
                builder.add("hw.network.ib.port.rate", rate, port.attributes)

    # ------------------------------------------------------------------ NICs
    def _nic_errors(self, builder: SnapshotBuilder) -> None:
        for interface, counters in self._nics or ():
            base = f"{self.sys}/class/net/{interface}/statistics"
            for counter in counters:
                value = self.reader.integer(f"{base}/{counter}")
                if value is not None:
                    self._counter(
                        builder,
                        "hw.network.nic.errors",
                        value,
                        {"network.interface.name": interface, "hw.error.type": counter},
                    )
