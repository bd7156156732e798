"""Weight, obesity, body composition and sarcopenia rules (clinical-rules.md §5).

BMI is computed from the latest valid weight and the profile height and rounded half-up to one
decimal *before* classification (§1), so 24.95 is 25.0 and obese. Weight comparisons are done in
exact tenths of a kilogram: WT-GAIN-RAPID needs a gain of *more than* 2.0 kg, and 2.0 is not.
Sarcopenia grades follow AWGS 2019 and are exclusive (clarification 1).
"""

from __future__ import annotations

import numpy as np

from clinical import _seg, units
from clinical._seg import DAY, HOUR, BoolArray, IntArray
from clinical.evaluation import Evaluation, State, state_from
from clinical.flags import Severity
from clinical.quality import OK


def _latest_in(ev: Evaluation, table: str, mask: BoolArray, days: int) -> IntArray:
    tbl = ev.readings.tables()[table]
    now_row = ev.now[tbl.resident]
    m = mask & (tbl.t > now_row - days * DAY) & (tbl.t <= now_row)
    return _seg.last_row(tbl.resident, m, ev.n)


def _mark(size: int, rows: IntArray) -> BoolArray:
    out = np.zeros(size, dtype=bool)
    out[rows[rows >= 0]] = True
    return out


def evaluate(ev: Evaluation) -> None:
    b = ev.thresholds.body
    c = ev.cohort
    n = ev.n
    w = ev.readings.weight
    w_valid = ev.codes["weight"] == OK

    # -- BMI -----------------------------------------------------------------------------
    last_w = _latest_in(ev, "weight", w_valid, b.weight_window_days)
    kg = _seg.gather(w.kg, last_w, np.nan)
    h = c.height_cm
    with np.errstate(invalid="ignore"):
        h_ok = (h >= ev.thresholds.quality.height_min) & (h <= ev.thresholds.quality.height_max)
    bmi = np.where(h_ok, units.bmi(kg, h), np.nan)
    obesity_class = np.select(
        [bmi >= b.bmi_class3, bmi >= b.bmi_class2, bmi >= b.bmi_obese], [3.0, 2.0, 1.0], np.nan
    )
    ev.evidence_set("weight-latest", "weight", _mark(w.size, last_w))
    bmi_details = {"bmi": bmi, "kg": kg}
    with np.errstate(invalid="ignore"):
        ev.agg(
            "OB-BMI-UNDER",
            state_from(bmi < b.bmi_under, hold=np.isnan(bmi)),
            details=bmi_details,
            evidence=["weight-latest"],
        )
        ev.agg(
            "OB-BMI-PREOBESE",
            state_from((bmi >= b.bmi_preobese) & (bmi < b.bmi_obese), hold=np.isnan(bmi)),
            details=bmi_details,
            evidence=["weight-latest"],
        )
        ev.agg(
            "OB-BMI-OBESE",
            state_from(bmi >= b.bmi_obese, hold=np.isnan(bmi)),
            details={**bmi_details, "class": obesity_class},
            evidence=["weight-latest"],
        )

    # -- waist -----------------------------------------------------------------------------
    wa = ev.readings.waist
    last_waist = _latest_in(ev, "waist", ev.codes["waist"] == OK, b.waist_window_days)
    waist = _seg.gather(wa.cm, last_waist, np.nan)
    waist_limit = np.where(c.female, b.waist_f, b.waist_m)
    ev.evidence_set("waist-latest", "waist", _mark(wa.size, last_waist))
    with np.errstate(invalid="ignore"):
        ev.agg(
            "OB-WAIST",
            state_from(waist >= waist_limit, hold=np.isnan(waist)),
            details={"waist_cm": waist},
            evidence=["waist-latest"],
        )

    # -- body composition --------------------------------------------------------------------
    bc = ev.readings.body_comp
    bc_ok = ev.codes["body_comp"] == OK
    last_fat = _latest_in(ev, "body_comp", bc_ok & ~np.isnan(bc.fat_pct), b.body_comp_window_days)
    fat = _seg.gather(bc.fat_pct, last_fat, np.nan)
    ev.evidence_set("fat-latest", "body_comp", _mark(bc.size, last_fat))
    with np.errstate(invalid="ignore"):
        ev.agg(
            "BC-FAT-HIGH",
            state_from(fat >= np.where(c.female, b.fat_f, b.fat_m), hold=np.isnan(fat)),
            details={"fat_pct": fat},
            evidence=["fat-latest"],
        )

    last_asm = _latest_in(ev, "body_comp", bc_ok & ~np.isnan(bc.asm_kg), b.body_comp_window_days)
    asm = _seg.gather(bc.asm_kg, last_asm, np.nan)
    dxa = _seg.gather(bc.dxa.astype(np.float64), last_asm, 0.0) > 0
    asmi = np.where(h_ok, units.asmi(asm, h), np.nan)
    asmi_limit = np.where(
        dxa,
        np.where(c.female, b.asmi_dxa_f, b.asmi_dxa_m),
        np.where(c.female, b.asmi_bia_f, b.asmi_bia_m),
    )
    mass_measured = ~np.isnan(asmi)
    with np.errstate(invalid="ignore"):
        low_mass = mass_measured & (asmi < asmi_limit)

    fn = ev.readings.function
    fn_ok = ev.codes["function"] == OK
    rows_grip = _latest_in(ev, "function", fn_ok & ~np.isnan(fn.grip_kg), b.function_window_days)
    rows_gait = _latest_in(ev, "function", fn_ok & ~np.isnan(fn.gait_m_s), b.function_window_days)
    rows_chair = _latest_in(ev, "function", fn_ok & ~np.isnan(fn.chair_s), b.function_window_days)
    rows_sppb = _latest_in(ev, "function", fn_ok & ~np.isnan(fn.sppb), b.function_window_days)
    grip = _seg.gather(fn.grip_kg, rows_grip, np.nan)
    gait = _seg.gather(fn.gait_m_s, rows_gait, np.nan)
    chair = _seg.gather(fn.chair_s, rows_chair, np.nan)
    sppb = _seg.gather(fn.sppb, rows_sppb, np.nan)
    with np.errstate(invalid="ignore"):
        low_grip = grip < np.where(c.female, b.grip_f, b.grip_m)
        low_perf = (gait < b.gait_speed) | (chair >= b.chair_stand_s) | (sppb <= b.sppb_max_low)
    grip_measured = ~np.isnan(grip)
    perf_measured = ~np.isnan(gait) | ~np.isnan(chair) | ~np.isnan(sppb)
    function_rows = (
        _mark(fn.size, rows_grip)
        | _mark(fn.size, rows_gait)
        | _mark(fn.size, rows_chair)
        | _mark(fn.size, rows_sppb)
    )
    ev.evidence_set("function-latest", "function", function_rows)
    ev.evidence_set("asm-latest", "body_comp", _mark(bc.size, last_asm))
    sar_details = {"asmi": asmi, "grip_kg": grip}

    old = c.age >= b.sarcopenia_min_age
    severe = old & low_mass & low_grip & low_perf
    confirmed = old & low_mass & (low_grip ^ low_perf)
    possible = old & (
        (~mass_measured & (low_grip | low_perf)) | (mass_measured & ~low_mass & low_grip & low_perf)
    )
    any_sar = severe | confirmed | possible
    assessed = mass_measured | grip_measured | perf_measured
    # §10.2.5: sarcopenia flags close when reassessed normal; another grade supersedes.
    for rule, met in (
        ("SAR-SEVERE", severe),
        ("SAR-CONFIRMED", confirmed),
        ("SAR-POSSIBLE", possible),
    ):
        st = state_from(met, clear=old & assessed & ~any_sar, hold=~assessed)
        st = np.where(~met & any_sar, int(State.GONE), st)
        ev.agg(rule, st, details=sar_details, evidence=["asm-latest", "function-latest"])
    low_muscle = low_mass & grip_measured & ~low_grip & perf_measured & ~low_perf
    ev.agg(
        "BC-LOW-MUSCLE-MASS",
        state_from(low_muscle, hold=~(mass_measured & grip_measured & perf_measured)),
        details=sar_details,
        evidence=["asm-latest", "function-latest"],
    )

    _gain(ev, w_valid)
    _loss(ev, w_valid)
    last_home = _seg.last_row(w.resident, w_valid & w.home, n)
    ev.latest_valid["weight_home"] = np.where(
        last_home >= 0, _seg.gather(w.t.astype(np.float64), last_home, -1), -1
    ).astype(np.int64)


def _gain(ev: Evaluation, valid: BoolArray) -> None:
    """WT-GAIN-RAPID: any two valid weights ≤ 72 h apart, later − earlier > 2.0 kg."""
    b = ev.thresholds.body
    w = ev.readings.weight
    idx = np.flatnonzero(valid)
    if idx.size < 2:
        return
    r, t = w.resident[idx], w.t[idx]
    w10 = np.rint(w.kg[idx] * 10).astype(np.int64)
    window = b.gain_hours * HOUR
    keys = _seg.key(r, t)
    start = np.searchsorted(keys, keys - int(window), side="left")
    lag_max = int((np.arange(idx.size) - start).max())
    best_gain = np.zeros(idx.size, dtype=np.int64)
    best_prev = np.full(idx.size, -1, dtype=np.int64)
    pos = np.arange(idx.size)
    for lag in range(1, lag_max + 1):
        prev = pos - lag
        ok = prev >= start
        gain = np.where(ok, w10 - w10[np.maximum(prev, 0)], 0)
        better = ok & (gain > best_gain)
        best_gain = np.where(better, gain, best_gain)
        best_prev = np.where(better, prev, best_prev)
    hit = best_gain > round(b.gain_kg * 10)
    rows = idx[hit]
    prev_rows = idx[best_prev[hit]]
    severity = np.where(
        ev.cohort.hf_or_ckd[w.resident[rows]], Severity.URGENT.rank, Severity.ROUTINE.rank
    ).astype(np.int64)
    ev.hit(
        "WT-GAIN-RAPID",
        w.resident[rows],
        w.t[rows],
        severity,
        [("weight", rows), ("weight:earlier", prev_rows)],
        value=w.kg[rows],
        details={"gain_kg": best_gain[hit] / 10.0, "kg": w.kg[rows]},
    )


def _loss(ev: Evaluation, valid: BoolArray) -> None:
    """WT-LOSS: mean of the last 14 days (≥ 2 on different dates) vs mean 30-183 days ago."""
    b = ev.thresholds.body
    w = ev.readings.weight
    n = ev.n
    now_row = ev.now[w.resident]
    day = _seg.local_day(w.t)
    cur = valid & (w.t > now_row - b.loss_current_days * DAY) & (w.t <= now_row)
    base = (
        valid
        & (w.t >= now_row - b.loss_baseline_to_days * DAY)
        & (w.t <= now_row - b.loss_baseline_from_days * DAY)
    )
    c_n = _seg.count(w.resident, cur, n)
    c_dates = _seg.distinct_days(w.resident, day, cur, n)
    b_n = _seg.count(w.resident, base, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        c_mean = _seg.total(w.resident, w.kg, cur, n) / c_n
        b_mean = _seg.total(w.resident, w.kg, base, n) / b_n
        enough = (c_n >= b.loss_current_min) & (c_dates >= b.loss_current_min) & (b_n >= 1)
        drop = b_mean - c_mean
        # compare (baseline − current) / baseline with the percentage without dividing
        met = enough & (drop * 100.0 > b.loss_pct * b_mean)
        clear = enough & (drop * 100.0 < b.loss_clear_pct * b_mean)
        loss_pct = np.where(enough, drop / b_mean * 100.0, np.nan)
    intentional = ev.cohort.intentional_weight_loss
    ev.evidence_set("weight-loss", "weight", cur | base)
    st = state_from(met & ~intentional, clear=clear, hold=~clear)
    st = np.where(intentional, int(State.GONE), st)
    ev.agg("WT-LOSS", st, details={"loss_pct": loss_pct, "kg": c_mean}, evidence=["weight-loss"])
