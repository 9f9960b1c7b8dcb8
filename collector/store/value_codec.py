"""``samples.value`` as a lossless scaled decimal integer: ``value == mantissa / 10**scale`` exactly.

A decimal such as 0.37 has a float64 bit pattern with a long non-repeating mantissa, so deltas of
decimal gauges barely compress as floats; the same values as integers (37 at scale 2) pack like the
integer gauges. Each row gets the smallest scale ``k`` in 0..18 at which ``round(v * 10**k)`` fits an
Int64 and ``float64(m) / 10**k`` gives ``v`` back bit for bit. Within one block, every row of a series
then uses the series' largest scale, so consecutive mantissas of a series stay comparable and Delta
keeps working; a row needing more than :data:`SERIES_SCALE_CAP` decimals (1/3 is exact at k = 16) is
a float, not a decimal reading, and does not lift the scale. A row that does not round-trip at its
series' scale (NaN, inf, -0.0, such floats) is stored as a fallback: scale ``FALLBACK`` (-1) and the float's own bit pattern as the mantissa.

Decoding is one IEEE division, the same in numpy (:func:`decode`) and in ClickHouse (the ``value``
ALIAS in collector/store/schema.py, :data:`SQL_DECODE`), so reads are bit-exact.
Everything is vectorised: the scale search touches only rows still unresolved (most values are
integers and settle at k = 0), and the per-series step looks up only the series that need k > 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

MAX_SCALE = 18  # 10**18 < 2**63, and every 10**k up to 10**22 is exact in float64
FALLBACK = -1  # scale of a row stored as its float64 bit pattern
# A row needing more decimals than this is a float, not a decimal reading (1/3 is exact at k = 16):
# it does not lift its series' scale (that would inflate every mantissa of the series) and is
# stored as a fallback unless it fits the series' scale. 12 keeps ns-resolution seconds (k = 9).
SERIES_SCALE_CAP = 12
_POW10 = 10.0 ** np.arange(MAX_SCALE + 1)
_INT64_LIMIT = 2.0**63  # |m| must stay below this (exactly representable)

# The decode in ClickHouse SQL, over the stored columns (the ALIAS expression of samples.value).
SQL_DECODE = "if(value_s < 0, reinterpretAsFloat64(value_m), value_m / intExp10(greatest(value_s, 0)))"


def _mantissa_at(values: np.ndarray, power: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """``round(values * power)`` as int64, and whether it decodes back to ``values`` bit for bit."""
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = np.round(values * power)
        in_range = np.abs(scaled) < _INT64_LIMIT  # False for NaN and inf too
        mantissa = np.where(in_range, scaled, 0.0).astype(np.int64)
        decoded = mantissa.astype(np.float64) / power
    # Bit patterns, not ==: keeps -0.0 (== 0.0) and NaN (!= NaN) out of the decimal path.
    exact = in_range & (decoded.view(np.int64) == values.view(np.int64))
    return mantissa, exact


def row_scales(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's smallest exact scale (``FALLBACK`` when none) and its mantissa at that scale."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    scale = np.full(values.shape, FALLBACK, dtype=np.int8)
    mantissa = values.view(np.int64).copy()
    pending = np.arange(len(values))
    for k in range(MAX_SCALE + 1):
        if not len(pending):
            break
        m, exact = _mantissa_at(values[pending], _POW10[k])
        done = pending[exact]
        scale[done] = k
        mantissa[done] = m[exact]
        pending = pending[~exact]
    return mantissa, scale


def encode(values: np.ndarray, series_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mantissa int64, scale int8)`` per row, one scale per series within the block (see module doc)."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    series_id = np.asarray(series_id)
    if values.shape != series_id.shape or values.ndim != 1:
        raise ValueError(
            f"value_codec.encode: values {values.shape} and series_id {series_id.shape} must be 1-d, equal"
        )
    mantissa, scale = row_scales(values)
    # Series with a decimal row (k in 1..SERIES_SCALE_CAP; few, compared with the rows): their largest k.
    decimal_rows = np.flatnonzero((scale > 0) & (scale <= SERIES_SCALE_CAP))
    if len(decimal_rows):
        series, inverse = np.unique(series_id[decimal_rows], return_inverse=True)
        series_scale = np.zeros(len(series), dtype=np.int8)
        np.maximum.at(series_scale, inverse, scale[decimal_rows])
        at = np.minimum(np.searchsorted(series, series_id), len(series) - 1)
        target = np.where(series[at] == series_id, series_scale[at], 0).astype(np.int8)
    else:
        target = np.zeros(len(scale), dtype=np.int8)
    # Rows whose own k is above their series' scale cannot be held at it (k is minimal): fallback.
    above = (scale > target) & (scale >= 0)
    if above.any():
        mantissa[above] = values[above].view(np.int64)
        scale[above] = FALLBACK
    # Decimal rows below their series' scale move up to it; a row that cannot becomes a fallback.
    move = np.flatnonzero((scale >= 0) & (scale < target))
    if len(move):
        m, exact = _mantissa_at(values[move], _POW10[target[move]])
        mantissa[move] = np.where(exact, m, values[move].view(np.int64))
        scale[move] = np.where(exact, target[move], FALLBACK)
    return mantissa, scale


def decode(mantissa: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The float64 values back (bit-exact inverse of :func:`encode`)."""
    mantissa = np.ascontiguousarray(mantissa, dtype=np.int64)
    scale = np.asarray(scale, dtype=np.int8)
    fallback = scale < 0
    out = mantissa.astype(np.float64) / _POW10[np.where(fallback, 0, scale)]
    out[fallback] = mantissa[fallback].view(np.float64)
    return out


def encode_samples(table: pa.Table) -> pa.Table:
    """A ``samples`` Arrow block with ``value`` (float64) replaced by the stored ``value_m``/``value_s``.

    A block that already carries ``value_m`` is returned as is. This is what every insert into
    ``samples`` goes through (``Store.insert``; benches that insert directly call it too).
    """
    import pyarrow as pa

    if "value" not in table.column_names:
        if "value_m" not in table.column_names or "value_s" not in table.column_names:
            raise ValueError("samples block: neither `value` nor `value_m`/`value_s` columns")
        return table
    at = table.column_names.index("value")
    values = _numpy(table.column("value"), np.float64)
    mantissa, scale = encode(values, _numpy(table.column("series_id"), np.uint64))
    table = table.remove_column(at)
    table = table.add_column(at, "value_m", pa.array(mantissa, type=pa.int64()))
    return table.add_column(at + 1, "value_s", pa.array(scale, type=pa.int8()))


def _numpy(column: Any, dtype: type) -> np.ndarray:
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if column.null_count:
        raise ValueError(f"samples block: column of type {column.type} has {column.null_count} nulls")
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=dtype)
