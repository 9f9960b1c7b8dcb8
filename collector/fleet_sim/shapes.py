"""Closed-form building blocks for simulated values: waves, their integrals, and counters.

A counter is the integral of a rate since the counter started plus a bounded per-tick jitter, floored
to the source's resolution. The jitter's amplitude stays below the smallest increment the rate can
produce between two ticks, so the counter never decreases whichever chunk (and whichever random
draw) produced a tick, and no state is carried from one chunk to the next.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

TWO_PI = 2 * math.pi


def wave(base: float | np.ndarray, amp: float | np.ndarray, period: float | np.ndarray, phase, t: np.ndarray):
    return base + amp * np.sin(TWO_PI * t / period + phase)


def wave_integral(base, amp, period, phase, t: np.ndarray, t0) -> np.ndarray:
    """∫ wave dt from t0 to t (elementwise; t0 broadcasts)."""
    w = TWO_PI / period
    return base * (t - t0) - amp / w * (np.cos(w * t + phase) - np.cos(w * t0 + phase))


def counter(integral: np.ndarray, jitter: np.ndarray, amplitude, resolution: float = 1.0) -> np.ndarray:
    """Monotonic counter readings: ``floor((integral + amplitude * jitter) / resolution) * resolution``.

    ``jitter`` is uniform in [0, 1); ``amplitude`` must not exceed the smallest per-tick increment of
    ``integral`` (callers pass half of it).
    """
    return np.floor((integral + amplitude * jitter) / resolution) * resolution


def unit_hash(*parts: object) -> float:
    """A stable number in [0, 1) for a key (per-node constants that must not depend on chunking)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest) / 2**64


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def tick_uniform(ks: np.ndarray, columns: int, *key: object) -> np.ndarray:
    """Uniform [0, 1) draws of shape (len(ks), columns), a pure function of (key, tick, column).

    Counters use these instead of a chunk's generator so that a reading, and the delta an agent
    computes from the previous one, do not depend on how the history was cut into chunks.
    """
    base = np.uint64(int(unit_hash(*key) * 2**63))
    x = ks.astype(np.uint64)[:, None] * np.uint64(columns) + np.arange(columns, dtype=np.uint64)[None, :] + base
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53
