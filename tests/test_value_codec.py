"""collector/store/value_codec.py: lossless scaled-decimal encoding of sample values (numpy and SQL)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.store import client as client_registry
from collector.store.settings import StorageSettings, chdb_dsn
from collector.store.value_codec import FALLBACK, SQL_DECODE, decode, encode, encode_samples, row_scales

SPECIAL = [0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308]
SPECIAL += [2.0**53 + 2, 9.2e18, -9.3e18, 1e16 + 2, 1 / 3, 0.1, 0.30000000000000004, 123456.789, -0.001]


def _bits(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float64).view(np.int64)


def _roundtrip(values: list[float], series: list[int]) -> tuple[np.ndarray, np.ndarray]:
    v = np.array(values, dtype=np.float64)
    m, s = encode(v, np.array(series, dtype=np.uint64))
    assert m.dtype == np.int64 and s.dtype == np.int8
    assert (_bits(decode(m, s)) == _bits(v)).all(), "decode(encode(v)) must give v back bit for bit"
    return m, s


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True), st.integers(0, 4)),
        min_size=1,
        max_size=60,
    )
)
def test_any_float_round_trips_bit_exact(rows: list[tuple[float, int]]) -> None:
    _roundtrip([v for v, _ in rows], [s for _, s in rows])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=-1e9, max_value=1e9), min_size=1, max_size=40), st.integers(0, 6))
def test_decimals_get_their_scale_and_no_fallback(raw: list[float], decimals: int) -> None:
    values = [round(x, decimals) + 0.0 for x in raw]  # + 0.0: -0.0 is no decimal (it falls back, by design)
    _m, s = _roundtrip(values, [7] * len(values))
    assert (s >= 0).all(), f"decimal values fell back: {[v for v, k in zip(values, s, strict=True) if k < 0]}"
    assert (s <= decimals).all()
    assert len(set(s.tolist())) == 1, "one scale per series within a block"


def test_special_values_round_trip_and_fall_back_only_when_needed() -> None:
    m, s = _roundtrip(SPECIAL, list(range(len(SPECIAL))))
    scale = dict(zip(map(repr, SPECIAL), s.tolist(), strict=True))
    assert scale["0.0"] == 0 and scale["-0.0"] == FALLBACK
    assert scale["nan"] == scale["inf"] == scale["-inf"] == scale["5e-324"] == FALLBACK
    assert scale[repr(1e16 + 2)] == 0 and m[SPECIAL.index(1e16 + 2)] == 10_000_000_000_000_002
    assert scale["0.1"] == 1 and scale["-0.001"] == 3 and scale["123456.789"] == 3
    assert scale["9.2e+18"] == 0 and scale["-9.3e+18"] == FALLBACK  # |m| >= 2**63 does not fit Int64


def test_series_share_the_largest_scale_within_a_block() -> None:
    m, s = _roundtrip([40.0, 40.5, 40.25, 7.0, 1.0, math.nan], [1, 1, 1, 2, 3, 3])
    assert s.tolist() == [2, 2, 2, 0, 0, FALLBACK]
    assert m[:4].tolist() == [4000, 4050, 4025, 7]
    # A row that cannot be held at its series' scale (here 1e300 * 10**2 overflows) falls back alone.
    m, s = _roundtrip([0.25, 1e300, 3.0], [9, 9, 9])
    assert s.tolist() == [2, FALLBACK, 2]
    # A float needing more than SERIES_SCALE_CAP decimals does not lift its series' scale.
    m, s = _roundtrip([300.25, 1 / 3, 0.1 + 0.2, 301.0], [5, 5, 5, 5])
    assert s.tolist() == [2, FALLBACK, FALLBACK, 2] and m[[0, 3]].tolist() == [30025, 30100]
    m, s = _roundtrip([1 / 3, 2 / 3], [6, 6])
    assert s.tolist() == [FALLBACK, FALLBACK]


def test_row_scales_and_empty_block() -> None:
    m, s = row_scales(np.array([3.0, 0.5, 0.05]))
    assert s.tolist() == [0, 1, 2] and m.tolist() == [3, 5, 5]
    m, s = encode(np.array([], dtype=np.float64), np.array([], dtype=np.uint64))
    assert len(m) == len(s) == 0
    with pytest.raises(ValueError, match="series_id"):
        encode(np.zeros(3), np.zeros(2, dtype=np.uint64))


def test_encode_samples_replaces_value_in_place() -> None:
    table = pa.table({"series_id": pa.array([1, 1], pa.uint64()), "value": [0.5, 2.0], "kind": ["gauge"] * 2})
    out = encode_samples(table)
    assert out.column_names == ["series_id", "value_m", "value_s", "kind"]
    assert out.column("value_m").to_pylist() == [5, 20] and out.column("value_s").to_pylist() == [1, 1]
    assert encode_samples(out) is out
    with pytest.raises(ValueError, match="nulls"):
        encode_samples(pa.table({"series_id": pa.array([1], pa.uint64()), "value": pa.array([None], pa.float64())}))
    with pytest.raises(ValueError, match="value_m"):
        encode_samples(pa.table({"series_id": pa.array([1], pa.uint64())}))


def test_sql_decode_equals_numpy_decode_bit_for_bit(tmp_path: Path) -> None:
    """The ALIAS expression (ClickHouse) and decode (numpy) agree on every bit, fallbacks included."""
    rng = np.random.default_rng(7)
    chunks = [
        np.array(SPECIAL),
        *(np.round(rng.normal(0, 1e4, 400), d) for d in range(9)),
        rng.normal(0, 1e6, 1000),
        rng.integers(-(2**62), 2**62, 1000).astype(np.float64),
        np.round(rng.random(1000), 15),
        rng.random(500) * 1e-300,
    ]
    values = np.concatenate(chunks)
    # A few series per chunk: each chunk has its own resolution, as a metric does.
    series = np.concatenate([i * 10 + rng.integers(0, 3, len(c)) for i, c in enumerate(chunks)]).astype(np.uint64)
    m, s = encode(values, series)
    assert set(np.unique(s).tolist()) >= {FALLBACK, 0, 1, 5, 8}, "the sample must exercise many scales"
    settings = StorageSettings(dsn=chdb_dsn(tmp_path / "ch"))
    client = client_registry.connect(settings)
    try:
        client.command("CREATE DATABASE IF NOT EXISTS vc")
        client.command(
            "CREATE TABLE vc.t (i UInt32, value_m Int64, value_s Int8, "
            f"value Float64 ALIAS {SQL_DECODE}) ENGINE = MergeTree ORDER BY i"
        )
        block = pa.table({"i": pa.array(np.arange(len(values)), pa.uint32()), "value_m": m, "value_s": s})  # noqa: F841
        client.command("INSERT INTO vc.t (i, value_m, value_s) SELECT i, value_m, value_s FROM Python(block)")
        got = client.query("SELECT reinterpretAsInt64(value) FROM vc.t ORDER BY i").result_rows
    finally:
        client_registry.release(settings)
    sql_bits = np.array([r[0] for r in got], dtype=np.int64)
    assert len(sql_bits) == len(values)
    bad = np.flatnonzero(sql_bits != _bits(decode(m, s)))
    assert not len(bad), f"SQL decode differs at {values[bad[:5]]}"
    assert (sql_bits == _bits(values)).all()
