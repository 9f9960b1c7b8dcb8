"""Agent offline for an hour, time-compressed: 360 ten-second cycles go into the agent's bounded disk
buffer while the receiver is down; the buffer never exceeds max_bytes, what it drops is the oldest
and is counted, and when the receiver returns the rest drains in order, each cycle once.

Real parts: the agent's Delivery, DiskBuffer and SDK transports against the in-process OTLP receiver
(tests/otlp_receiver.py, real gRPC and HTTP servers). Only the clock is compressed (the Delivery's
backoff clock advances 10 s per cycle)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import OtlpConfig
from agent.exporters.buffer import Batch, DiskBuffer
from agent.exporters.delivery import Delivery
from agent.exporters.otlp import build_transport, encode_metrics
from agent.snapshot import Point, freeze_attributes
from tests.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.timeout(120)

HOUR_OF_CYCLES = 360  # 10 s interval
POINTS = 8  # per cycle: 8 GPUs' temperature
T0 = 1_700_000_000 * 10**9


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def cycle(i: int) -> Batch:
    t = T0 + i * 10 * 10**9
    points = [
        Point("hw.gpu.temperature", float(i), freeze_attributes({"hw.id": f"GPU-{g}", "gpu.index": g}), t)
        for g in range(POINTS)
    ]
    return Batch("metrics", encode_metrics(points, {"host.name": "node-offline"}), POINTS)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_hour_offline_buffer_is_bounded_counts_drops_and_drains_in_order(tmp_path: Path, protocol: str) -> None:
    one = cycle(0).size
    keep = 100  # the buffer holds ~100 cycles (~17 minutes): an hour must overflow it
    max_bytes = one * keep + one // 2
    with OtlpReceiver() as receiver:
        endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_endpoint
        transport = build_transport(OtlpConfig(endpoint=endpoint, protocol=protocol, timeout_s=2))
        clock = Clock()
        delivery = Delivery(
            transport,
            DiskBuffer(tmp_path, max_bytes, 7 * 86400),
            drain_batches_per_cycle=20,
            retry_cap_s=10,
            clock=clock,
        )
        receiver.down()
        peak = 0
        for i in range(HOUR_OF_CYCLES):
            clock.t += 10
            delivery.submit([cycle(i)])
            delivery.drain()
            peak = max(peak, delivery.buffer.bytes)
            assert delivery.buffer.bytes <= max_bytes, f"buffer at {delivery.buffer.bytes} > max_bytes {max_bytes}"
        assert len(receiver.received) == 0
        assert peak > max_bytes - one, "the hour should have filled the buffer"
        held = len(delivery.buffer)
        dropped = delivery.buffer.stats.dropped_overflow_points
        assert held == keep and dropped == (HOUR_OF_CYCLES - keep) * POINTS, (held, dropped)
        assert delivery.buffer.points == held * POINTS

        receiver.up()
        for _ in range(200):  # the agent keeps cycling; 20 buffered requests go per cycle
            clock.t += 10
            delivery.drain()
            if not len(delivery.buffer):
                break
        assert len(delivery.buffer) == 0
        got = [int(v) for name, attrs, _, v in receiver.points() if attrs.get("gpu.index") == "0"]
        assert got == list(range(HOUR_OF_CYCLES - keep, HOUR_OF_CYCLES)), "not the newest cycles, in order, once"
        assert delivery.points_exported == keep * POINTS
        assert not delivery.points_dropped  # buffer drops are the buffer's counter, not refusals
        delivery.close()
