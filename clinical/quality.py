"""Measurement-quality filters Q-01…Q-09 (clinical-rules.md §2), vectorized per table.

Each function returns one code per row: 0 for a valid reading, otherwise ``10 × Q number``
(plus a sub-reason for Q-09). When a reading fails several rules the lowest-numbered one is
recorded (clarification 7), which is why the conditions are applied from the highest code down.
Rejected readings never feed a rule, mean or count; Q-04 readings feed only the
BP-UNRELIABLE-HIGH safety net. Q-10 (position) is not a rejection: the BP rules apply it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clinical import _seg
from clinical._seg import BoolArray, FloatArray, IntArray
from clinical.limits import QualityLimits
from clinical.model import (
    BP_Q04_MASK,
    A1cTable,
    BpTable,
    GlucoseTable,
    Readings,
    Table,
    WaistTable,
    WeightTable,
)

OK = 0
Q01, Q02, Q03, Q04, Q05, Q06, Q07, Q08 = 10, 20, 30, 40, 50, 60, 70, 80
Q09_FUTURE, Q09_DUPLICATE, Q09_UNIT = 90, 91, 92

#: code → (rule id, reason: Korean / English)
REASONS: dict[int, tuple[str, str]] = {
    Q01: ("Q-01", "생리적으로 불가능한 값 / value outside physiological limits"),
    Q02: ("Q-02", "이완기 ≥ 수축기 / diastolic not below systolic"),
    Q03: ("Q-03", "맥압 < 10 mmHg (커프 오류 의심) / pulse pressure < 10 mmHg, cuff artefact"),
    Q04: ("Q-04", "움직임·커프·자세 오류 표시 / device reported movement, loose cuff or position"),
    Q05: ("Q-05", "혈당계 측정 범위 밖 / glucose outside the meter's range without HI/LO"),
    Q06: ("Q-06", "대조액 또는 측정 오류 / control solution or meter fault"),
    Q07: ("Q-07", "측정 범위 밖 / value outside plausible limits"),
    Q08: (
        "Q-08",
        "24시간 내 5 kg 초과 변화 (다른 사람 측정 의심) / > 5 kg from the previous "
        "weight within 24 h, shared scale?",
    ),
    Q09_FUTURE: ("Q-09", "미래 시각 / timestamp in the future"),
    Q09_DUPLICATE: ("Q-09", "60초 내 중복 / duplicate within 60 s"),
    Q09_UNIT: ("Q-09", "알 수 없는 단위 / unknown unit"),
}
#: Codes that count as the resident's measurement problems for ADH-QUALITY (not duplicates or
#: readings that simply are not due yet).
COUNTS_FOR_ADH_QUALITY = frozenset({Q01, Q02, Q03, Q04, Q05, Q06, Q07, Q08, Q09_UNIT})
#: Codes after which the resident is prompted to measure again (§2: Q-01…Q-06).
REMEASURE = frozenset({Q01, Q02, Q03, Q04, Q05, Q06})

_NONE = np.int64(10_000)


def _apply(conditions: Sequence[tuple[BoolArray, int]], size: int) -> IntArray:
    code = np.full(size, _NONE, dtype=np.int64)
    for cond, value in sorted(conditions, key=lambda cv: -cv[1]):
        code = np.where(cond, np.int64(value), code)
    return np.where(code == _NONE, np.int64(OK), code).astype(np.int64)


def _same_as_previous(tbl: Table, columns: Sequence[FloatArray], seconds: int) -> BoolArray:
    """Row repeats the previous row of the same resident within ``seconds`` (Q-09)."""
    dup = np.zeros(tbl.size, dtype=bool)
    if tbl.size < 2:
        return dup
    same = (tbl.resident[1:] == tbl.resident[:-1]) & (tbl.t[1:] - tbl.t[:-1] <= seconds)
    for col in columns:
        a, b = col[1:], col[:-1]
        same &= (a == b) | (np.isnan(a) & np.isnan(b))
    dup[1:] = same
    return dup


def _future(tbl: Table, now: IntArray, tolerance_s: int) -> BoolArray:
    """Later than the evaluation time, or (when known) than its own receipt + tolerance."""
    now_row = now[tbl.resident]
    limit = np.where(tbl.received >= 0, np.minimum(tbl.received + tolerance_s, now_row), now_row)
    return np.asarray(tbl.t > limit, dtype=bool)


def bp_codes(tbl: BpTable, now: IntArray, q: QualityLimits) -> IntArray:
    s, d, p = tbl.sys, tbl.dia, tbl.pulse
    known = tbl.unit_ok
    with np.errstate(invalid="ignore"):
        q01 = known & (
            np.isnan(s)
            | np.isnan(d)
            | (s < q.sys_min)
            | (s > q.sys_max)
            | (d < q.dia_min)
            | (d > q.dia_max)
            | (~np.isnan(p) & ((p < q.pulse_min) | (p > q.pulse_max)))
        )
        q02 = known & (d >= s)
        q03 = known & (s - d < q.min_pulse_pressure)
    q04 = (tbl.status & BP_Q04_MASK) != 0
    return _apply(
        [
            (q01, Q01),
            (q02, Q02),
            (q03, Q03),
            (q04, Q04),
            (_future(tbl, now, q.future_tolerance_s), Q09_FUTURE),
            (_same_as_previous(tbl, [s, d, p], q.duplicate_seconds), Q09_DUPLICATE),
            (~tbl.unit_ok, Q09_UNIT),
        ],
        tbl.size,
    )


def glucose_codes(tbl: GlucoseTable, now: IntArray, q: QualityLimits) -> IntArray:
    v = tbl.mg_dl
    flagged = tbl.hi | tbl.lo
    with np.errstate(invalid="ignore"):
        q05 = tbl.unit_ok & ~flagged & (np.isnan(v) | (v < q.glucose_min) | (v > q.glucose_max))
    q06 = tbl.control | tbl.fault
    dup_key = np.where(tbl.hi, np.inf, np.where(tbl.lo, -np.inf, v))
    return _apply(
        [
            (q05, Q05),
            (q06, Q06),
            (_future(tbl, now, q.future_tolerance_s), Q09_FUTURE),
            (
                _same_as_previous(tbl, [dup_key, tbl.meal.astype(np.float64)], q.duplicate_seconds),
                Q09_DUPLICATE,
            ),
            (~tbl.unit_ok, Q09_UNIT),
        ],
        tbl.size,
    )


def _range(values: FloatArray, lo: float, hi: float) -> BoolArray:
    with np.errstate(invalid="ignore"):
        return np.asarray(np.isnan(values) | (values < lo) | (values > hi), dtype=bool)


def weight_codes(tbl: WeightTable, now: IntArray, q: QualityLimits) -> IntArray:
    base = _apply(
        [
            (tbl.unit_ok & _range(tbl.kg, q.weight_min, q.weight_max), Q07),
            (_future(tbl, now, q.future_tolerance_s), Q09_FUTURE),
            (_same_as_previous(tbl, [tbl.kg], q.duplicate_seconds), Q09_DUPLICATE),
            (~tbl.unit_ok, Q09_UNIT),
        ],
        tbl.size,
    )
    quarantined = _weight_quarantine(tbl, base == OK, q)
    return np.where(quarantined & (base == OK), np.int64(Q08), base).astype(np.int64)


def _weight_quarantine(tbl: WeightTable, valid: BoolArray, q: QualityLimits) -> BoolArray:
    """Q-08: a weight > 5 kg from the previous *valid* weight taken ≤ 24 h earlier.

    "Previous valid" excludes earlier quarantined weights, which makes the rule sequential.
    Without any quarantine the previous valid weight is simply the previous weight, so the
    vectorized pass is exact for every resident it finds clean; only residents with a candidate
    are rescanned in order.
    """
    out = np.zeros(tbl.size, dtype=bool)
    idx = np.flatnonzero(valid)
    if idx.size < 2:
        return out
    r, t = tbl.resident[idx], tbl.t[idx]
    w10 = np.rint(tbl.kg[idx] * 10).astype(np.int64)  # compare in exact tenths of a kg
    limit10 = round(q.weight_jump_kg * 10)
    window = q.weight_jump_hours * _seg.HOUR
    cand = np.zeros(idx.size, dtype=bool)
    cand[1:] = (
        (r[1:] == r[:-1]) & (t[1:] - t[:-1] <= window) & (np.abs(w10[1:] - w10[:-1]) > limit10)
    )
    for resident in np.unique(r[cand]).tolist():
        lo = int(np.searchsorted(r, resident, side="left"))
        hi = int(np.searchsorted(r, resident, side="right"))
        last_t: int | None = None
        last_w = 0
        for row in range(lo, hi):
            if (
                last_t is not None
                and t[row] - last_t <= window
                and abs(w10[row] - last_w) > limit10
            ):
                out[idx[row]] = True
                continue
            last_t, last_w = int(t[row]), int(w10[row])
    return out


def waist_codes(tbl: WaistTable, now: IntArray, q: QualityLimits) -> IntArray:
    return _apply(
        [
            (tbl.unit_ok & _range(tbl.cm, q.waist_min, q.waist_max), Q07),
            (_future(tbl, now, q.future_tolerance_s), Q09_FUTURE),
            (~tbl.unit_ok, Q09_UNIT),
        ],
        tbl.size,
    )


def a1c_codes(tbl: A1cTable, now: IntArray, q: QualityLimits) -> IntArray:
    return _apply(
        [
            (tbl.unit_ok & _range(tbl.pct, q.a1c_min, q.a1c_max), Q07),
            (_future(tbl, now, q.future_tolerance_s), Q09_FUTURE),
            (~tbl.unit_ok, Q09_UNIT),
        ],
        tbl.size,
    )


def generic_codes(tbl: Table, now: IntArray, q: QualityLimits) -> IntArray:
    conditions = [(_future(tbl, now, q.future_tolerance_s), Q09_FUTURE)]
    unit_ok = getattr(tbl, "unit_ok", None)
    if unit_ok is not None:
        conditions.append((~unit_ok, Q09_UNIT))
    return _apply(conditions, tbl.size)


def all_codes(readings: Readings, now: IntArray, q: QualityLimits) -> dict[str, IntArray]:
    """Quality code per row for every table of ``readings``."""
    codes: dict[str, IntArray] = {}
    for name, tbl in readings.tables().items():
        if isinstance(tbl, BpTable):
            codes[name] = bp_codes(tbl, now, q)
        elif isinstance(tbl, GlucoseTable):
            codes[name] = glucose_codes(tbl, now, q)
        elif isinstance(tbl, WeightTable):
            codes[name] = weight_codes(tbl, now, q)
        elif isinstance(tbl, WaistTable):
            codes[name] = waist_codes(tbl, now, q)
        elif isinstance(tbl, A1cTable):
            codes[name] = a1c_codes(tbl, now, q)
        else:
            codes[name] = generic_codes(tbl, now, q)
    return codes
