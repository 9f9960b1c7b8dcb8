"""Steady-state fast path: a sender's next metrics request, converted without protobuf.

An agent sends the same request every interval except for the times and values: the same resource,
metrics, points and attributes, in the same order. Gauge and sum points keep those in fixed-width
(fixed64/double) fields, so such a request is, byte for byte, the previous one with some 8-byte
windows rewritten. Once a sender's request has been converted the ordinary way (only plain
gauge/sum points; see ``Converted.number_rows``), its *layout* is kept: the body with every such
window zeroed, where the windows are, and each point's series (registry index). The next request
of the same length from the same resource is checked against it: zero the same windows in a copy
and compare the whole body. Equal means protobuf would decode it to exactly the same messages with
only those fields different (a fixed-width field's bytes never change how anything else parses),
so the times and values are read straight from the windows and validated as usual. Anything else
(another length, another metric, a new attribute, flags, a histogram) compares unequal or has no
layout, and takes the ordinary path.

Layouts are learnt on a sender's second ordinary request of the same key (a one-off sender pays no
wire walk), at most ``max_builds`` times per key (a sender whose layout changes every time stops
being learnt), and within ``max_bytes`` in all (about one request body per sender).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from collector.convert import Converted, Converter, NumberRows

_BYTES = np.arange(8)
_LEN = 2  # wire type of length-delimited fields


@dataclass(slots=True)
class Layout:
    masked: np.ndarray  # the body with every fixed-field window zeroed
    windows: np.ndarray  # byte positions of every window (flattened 8 per field)
    start_at: np.ndarray  # absolute offset of each point's start_time payload, -1 when absent
    time_at: np.ndarray
    value_at: np.ndarray
    rows: NumberRows
    nbytes: int

    @property
    def count(self) -> int:
        return len(self.time_at)


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: bytes, pos: int, end: int, wanted: tuple[int, ...]):
    """(number, start, end) of each length-delimited field numbered in ``wanted`` within buf[pos:end]."""
    while pos < end:
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == _LEN:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise ValueError("field runs past its message")
            if number in wanted:
                yield number, pos, pos + length
            pos += length
        elif number in wanted:
            raise ValueError(f"field {number} has wire type {wire}")
        elif wire == 0:
            _, pos = _varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"wire type {wire}")
    if pos != end:
        raise ValueError("field runs past its message")


def number_point_spans(body: bytes) -> list[tuple[int, int]] | None:
    """Where each gauge/sum data point lies in an ExportMetricsServiceRequest, in decoding order."""
    spans = []
    try:
        for _, rs, re in _fields(body, 0, len(body), (1,)):  # resource_metrics
            for _, ss, se in _fields(body, rs, re, (2,)):  # scope_metrics
                for _, ms, me in _fields(body, ss, se, (2,)):  # metrics
                    for _, ds, de in _fields(body, ms, me, (5, 7)):  # gauge, sum
                        spans.extend((ps, pe) for _, ps, pe in _fields(body, ds, de, (1,)))  # data_points
    except (IndexError, ValueError):
        return None
    return spans


def _key(tenant: str, body: bytes) -> tuple | None:
    """(tenant, body length, the first resource's bytes): whose layout a body could be."""
    try:
        if body[0] != 0x0A:
            return None
        _, pos = _varint(body, 1)
        if body[pos] != 0x0A:
            return None
        length, pos = _varint(body, pos + 1)
    except (IndexError, ValueError):
        return None
    return tenant, len(body), body[pos : pos + length]


def _windows(at: np.ndarray) -> np.ndarray:
    return (at[at >= 0][:, None] + _BYTES).ravel()


def _words(buf: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The uint64 at each offset (0 where the offset is -1)."""
    present = at >= 0
    words = np.ascontiguousarray(buf[np.where(present, at, 0)[:, None] + _BYTES]).view("<u8").ravel()
    return words if present.all() else np.where(present, words, 0)


class LayoutCache:
    def __init__(self, converter: Converter, max_bytes: int = 64 * 2**20, max_builds: int = 8) -> None:
        self.converter = converter
        self.max_bytes = max_bytes
        self.max_builds = max_builds
        self._layouts: dict[tuple, Layout] = {}
        self._builds: dict[tuple, int] = {}  # key -> layouts built (0: seen once)
        self._registry = converter.registry  # the series cache every layout's indices point into
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = 0

    def match(self, tenant: str, body: bytes) -> Layout | None:
        """The layout ``body`` has (verified byte for byte), or None."""
        if self.converter.registry is not self._registry:
            self._reset()
        key = _key(tenant, body)
        layout = self._layouts.get(key) if key is not None else None
        if layout is None or layout.rows.registry is not self._registry:
            return None
        masked = np.frombuffer(body, dtype=np.uint8).copy()
        masked[layout.windows] = 0
        if not np.array_equal(masked, layout.masked):
            return None
        self.hits += 1
        return layout

    def convert(self, tenant: str, layout: Layout, body: bytes, received_ns: int) -> Converted:
        buf = np.frombuffer(body, dtype=np.uint8)
        time_ns = _words(buf, layout.time_at).view(np.int64)
        start = _words(buf, layout.start_at).view(np.int64)
        raw = _words(buf, layout.value_at)
        fields = layout.rows.fields
        value = np.where(fields.value_is_int, raw.view(np.int64).astype(np.float64), raw.view(np.float64))
        return self.converter.number_rows(tenant, layout.rows, time_ns, start, value, received_ns)

    def learn(self, tenant: str, body: bytes, converted: Converted) -> None:
        """Keep the layout of a request converted the ordinary way, when it is worth keeping."""
        rows = converted.number_rows
        key = _key(tenant, body) if rows is not None else None
        if key is None:
            return
        if rows.registry is not self._registry:
            self._reset()
        builds = self._builds.get(key)
        if builds is None:  # first sighting: learn on the second
            if len(self._builds) >= 100_000:  # forget old sightings (the layouts stay)
                self._builds.clear()
            self._builds[key] = 0
            return
        if builds >= self.max_builds or self.bytes + len(body) > self.max_bytes:
            return
        self._builds[key] = builds + 1
        layout = self._build(body, rows)
        if layout is None:
            self._builds[key] = self.max_builds  # not walkable as expected: never try again
            return
        with self._lock:
            old = self._layouts.get(key)
            self.bytes += layout.nbytes - (old.nbytes if old is not None else 0)
            self._layouts[key] = layout

    def _reset(self) -> None:
        """The converter started a new series cache: every layout points into the old one."""
        with self._lock:
            self._layouts.clear()
            self._builds.clear()
            self.bytes = 0
            self._registry = self.converter.registry

    @staticmethod
    def _build(body: bytes, rows: NumberRows) -> Layout | None:
        spans = number_point_spans(body)
        fields = rows.fields
        if spans is None or len(spans) != len(fields.lengths):
            return None
        starts = np.array([s for s, _ in spans], dtype=np.int64)
        lengths = np.array([e - s for s, e in spans], dtype=np.int64)
        if not np.array_equal(lengths, fields.lengths) or (fields.time_at < 0).any():
            return None
        absolute = [np.where(at >= 0, starts + at, -1) for at in (fields.start_at, fields.time_at, fields.value_at)]
        windows = np.concatenate([_windows(at) for at in absolute])
        masked = np.frombuffer(body, dtype=np.uint8).copy()
        masked[windows] = 0
        nbytes = masked.nbytes + windows.nbytes + sum(a.nbytes for a in absolute) + rows.index.nbytes
        return Layout(masked, windows, *absolute, rows, nbytes)
