"""Tick schedules: wall-clock aligned, so every agent samples at :00, :10, :20... (DESIGN §7).

A tier whose work overran a tick skips the missed ticks (counted) instead of bursting to catch up:
a late sample is worth less than an on-time next one.
"""

from __future__ import annotations

import time


class TickSchedule:
    def __init__(self, interval_s: float, now_ns: int | None = None) -> None:
        self.step = max(1, int(interval_s * 1e9))
        now = time.time_ns() if now_ns is None else now_ns
        self.next_ns = now - now % self.step + self.step
        self.missed = 0

    def due(self, now_ns: int) -> bool:
        return now_ns >= self.next_ns

    def take(self, now_ns: int) -> int:
        """The tick to stamp this run with (the latest one due), and advance past it."""
        behind = (now_ns - self.next_ns) // self.step
        if behind > 0:
            self.missed += behind
        tick = self.next_ns + behind * self.step
        self.next_ns = tick + self.step
        return tick

    def seconds_until(self, now_ns: int) -> float:
        return max(0.0, (self.next_ns - now_ns) / 1e9)
