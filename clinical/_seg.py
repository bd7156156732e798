"""Segmented numpy helpers: per-resident reductions over rows sorted by (resident, time).

Every table the engine sees is sorted by resident, then time. A boolean mask keeps that order,
so "per resident" reductions are ``bincount`` calls and "latest row" lookups are segment ends.
Windows over time are ``searchsorted`` on a combined key ``resident << 34 | epoch seconds``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

SECOND = 1
MINUTE = 60
HOUR = 3600
DAY = 86400
LOCAL_OFFSET = 9 * HOUR  # Asia/Seoul, no daylight saving time
_SHIFT = 34  # epoch seconds < 2**34 until the year 2514
NONE = np.int64(-1)


def key(resident: IntArray, t: IntArray) -> IntArray:
    """A sortable key combining resident and epoch seconds (both non-negative)."""
    return (resident.astype(np.int64) << _SHIFT) + t.astype(np.int64)


def day_key(resident: IntArray, day: IntArray) -> IntArray:
    """A sortable key combining resident and local day number."""
    return (resident.astype(np.int64) << _SHIFT) + day.astype(np.int64)


def local_day(t: IntArray) -> IntArray:
    """Asia/Seoul calendar day number (days since 1970-01-01 local) of epoch seconds."""
    return (t.astype(np.int64) + LOCAL_OFFSET) // DAY


def count(resident: IntArray, mask: BoolArray, n: int) -> IntArray:
    return np.bincount(resident[mask], minlength=n).astype(np.int64)


def total(resident: IntArray, values: FloatArray, mask: BoolArray, n: int) -> FloatArray:
    return np.bincount(resident[mask], weights=values[mask], minlength=n).astype(np.float64)


def distinct_days(resident: IntArray, day: IntArray, mask: BoolArray, n: int) -> IntArray:
    """Number of distinct local days per resident among masked rows (rows sorted by time)."""
    r = resident[mask]
    d = day[mask]
    if r.size == 0:
        return np.zeros(n, dtype=np.int64)
    new = np.ones(r.size, dtype=bool)
    new[1:] = (r[1:] != r[:-1]) | (d[1:] != d[:-1])
    return np.bincount(r[new], minlength=n).astype(np.int64)


def last_row(resident: IntArray, mask: BoolArray, n: int) -> IntArray:
    """Row index of the latest masked row per resident, or -1."""
    idx = np.flatnonzero(mask)
    out = np.full(n, NONE, dtype=np.int64)
    if idx.size == 0:
        return out
    r = resident[idx]
    end = np.ones(idx.size, dtype=bool)
    end[:-1] = r[:-1] != r[1:]
    out[r[end]] = idx[end]
    return out


def first_row(resident: IntArray, mask: BoolArray, n: int) -> IntArray:
    """Row index of the earliest masked row per resident, or -1."""
    idx = np.flatnonzero(mask)
    out = np.full(n, NONE, dtype=np.int64)
    if idx.size == 0:
        return out
    r = resident[idx]
    start = np.ones(idx.size, dtype=bool)
    start[1:] = r[1:] != r[:-1]
    out[r[start]] = idx[start]
    return out


def gather(values: npt.NDArray[np.generic], rows: IntArray, fill: float) -> FloatArray:
    """``values[rows]`` as float, with ``fill`` where ``rows`` is -1."""
    out = np.full(rows.shape, fill, dtype=np.float64)
    ok = rows >= 0
    out[ok] = values[rows[ok]]
    return out


def in_window(
    event_keys: IntArray, query_keys: IntArray, lo: int, hi: int
) -> tuple[IntArray, IntArray]:
    """For each query, the range [start, end) of sorted ``event_keys`` within [q+lo, q+hi].

    Keys must combine resident and time (:func:`key`) and the offsets must be small enough
    not to cross into another resident (always true for windows of a few years).
    """
    start = np.searchsorted(event_keys, query_keys + lo, side="left").astype(np.int64)
    end = np.searchsorted(event_keys, query_keys + hi, side="right").astype(np.int64)
    return start, end


def distinct_days_in_ranges(
    resident: IntArray, day: IntArray, start: IntArray, end: IntArray
) -> IntArray:
    """Distinct days among rows [start, end) of a table sorted by (resident, time)."""
    if resident.size == 0:
        return np.zeros(start.shape, dtype=np.int64)
    new = np.ones(resident.size, dtype=np.int64)
    new[1:] = ((resident[1:] != resident[:-1]) | (day[1:] != day[:-1])).astype(np.int64)
    cum = np.concatenate(([0], np.cumsum(new)))
    nonempty = end > start
    s1 = np.minimum(start + 1, resident.size)
    out = np.where(nonempty, cum[end] - cum[s1] + 1, 0)
    return out.astype(np.int64)


def range_sum(values: FloatArray, start: IntArray, end: IntArray) -> FloatArray:
    """Sum of ``values[start:end]`` for each range, via a prefix sum."""
    cum = np.concatenate(([0.0], np.cumsum(values, dtype=np.float64)))
    return np.asarray(cum[end] - cum[start], dtype=np.float64)


def segment_ids(resident: IntArray, boundary: BoolArray) -> IntArray:
    """Group id per row: a new group starts at a resident change or where ``boundary`` is set."""
    if resident.size == 0:
        return np.zeros(0, dtype=np.int64)
    start = boundary.copy()
    start[0] = True
    start[1:] |= resident[1:] != resident[:-1]
    return np.cumsum(start).astype(np.int64) - 1
