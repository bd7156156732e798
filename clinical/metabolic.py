"""Metabolic syndrome and mobile-healthcare eligibility (clinical-rules.md §6).

Korean-modified NCEP: three of five components (waist 90/85 cm, BP ≥ 130/85 or treated, fasting
glucose ≥ 100 or treated, TG ≥ 150 or TG-lowering drug, HDL < 40/50). Each component is
*present*, *absent* or *unknown*, resolved from the latest values within 365 days as §6 lists;
MS-INCOMPLETE asks for the missing measurements instead of labelling anyone.
"""

from __future__ import annotations

import numpy as np

from clinical import _seg
from clinical._seg import DAY, BoolArray, FloatArray, IntArray
from clinical.bp import _Office
from clinical.evaluation import Evaluation, state_from
from clinical.glucose import effective_mg_dl
from clinical.model import Meal, Position, Setting
from clinical.quality import OK

PRESENT, ABSENT, UNKNOWN = 1, 0, -1


def _latest(ev: Evaluation, table: str, mask: BoolArray, days: int) -> IntArray:
    tbl = ev.readings.tables()[table]
    now_row = ev.now[tbl.resident]
    m = mask & (tbl.t > now_row - days * DAY) & (tbl.t <= now_row)
    return _seg.last_row(tbl.resident, m, ev.n)


def _component(known: BoolArray, present: BoolArray) -> IntArray:
    return np.where(known, np.where(present, PRESENT, ABSENT), UNKNOWN).astype(np.int64)


def evaluate(ev: Evaluation) -> None:
    m = ev.thresholds.metabolic
    c = ev.cohort
    n = ev.n
    res = np.arange(n, dtype=np.int64)
    female = c.female

    # waist
    wa = ev.readings.waist
    last = _latest(ev, "waist", ev.codes["waist"] == OK, m.window_days)
    waist = _seg.gather(wa.cm, last, np.nan)
    waist_limit = np.where(female, ev.thresholds.body.waist_f, ev.thresholds.body.waist_m)
    with np.errstate(invalid="ignore"):
        waist_c = _component(~np.isnan(waist), waist >= waist_limit)

    # BP: treated → present; else latest office occasion; else ≥ 2 home sitting readings in 7 d
    bp = ev.readings.bp
    valid_bp = ev.codes["bp"] == OK
    office = _Office(bp, valid_bp, ev.thresholds.bp)
    has_occ, occ_s, occ_d = office.latest_occasion(res, ev.now, m.window_days)
    now_row = ev.now[bp.resident]
    home7 = (
        valid_bp
        & (bp.setting == int(Setting.HOME))
        & (bp.position == int(Position.SITTING))
        & (bp.t > now_row - m.home_days * DAY)
        & (bp.t <= now_row)
    )
    h_n = _seg.count(bp.resident, home7, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        h_s = _seg.total(bp.resident, bp.sys, home7, n) / h_n
        h_d = _seg.total(bp.resident, bp.dia, home7, n) / h_n
    has_home = h_n >= m.home_min_readings
    bp_s = np.where(has_occ, occ_s, np.where(has_home, h_s, np.nan))
    bp_d = np.where(has_occ, occ_d, np.where(has_home, h_d, np.nan))
    bp_treated = c.hypertension | c.antihypertensive
    with np.errstate(invalid="ignore"):
        bp_high = (bp_s >= m.bp_sys) | (bp_d >= m.bp_dia)
    bp_c = np.where(bp_treated, PRESENT, _component(~np.isnan(bp_s), bp_high))

    # fasting glucose: treated/diagnosed → present; else the latest fasting reading
    gl = ev.readings.glucose
    q = ev.thresholds.quality
    fasting_ok = (ev.codes["glucose"] == OK) & (gl.meal == int(Meal.FASTING))
    last = _latest(ev, "glucose", fasting_ok, m.window_days)
    gv = effective_mg_dl(gl.mg_dl, gl.hi, gl.lo, q.glucose_hi_value, q.glucose_lo_value)
    fpg = _seg.gather(gv, last, np.nan)
    fpg_treated = c.diabetes | c.glucose_lowering
    with np.errstate(invalid="ignore"):
        fpg_c = np.where(fpg_treated, PRESENT, _component(~np.isnan(fpg), fpg >= m.fpg))

    # lipids: the latest panel
    lp = ev.readings.lipid
    lp_ok = ev.codes["lipid"] == OK
    tg = _seg.gather(lp.tg, _latest(ev, "lipid", lp_ok & ~np.isnan(lp.tg), m.window_days), np.nan)
    hdl = _seg.gather(
        lp.hdl, _latest(ev, "lipid", lp_ok & ~np.isnan(lp.hdl), m.window_days), np.nan
    )
    hdl_limit = np.where(female, m.hdl_f, m.hdl_m)
    with np.errstate(invalid="ignore"):
        tg_c = np.where(c.tg_lowering, PRESENT, _component(~np.isnan(tg), tg >= m.tg))
        hdl_c = _component(~np.isnan(hdl), hdl < hdl_limit)

    comps = np.stack([waist_c, bp_c, fpg_c, tg_c, hdl_c])
    present = (comps == PRESENT).sum(axis=0)
    unknown = (comps == UNKNOWN).sum(axis=0)
    details: dict[str, FloatArray] = {
        "present": present.astype(np.float64),
        "unknown": unknown.astype(np.float64),
    }
    some = (present >= 1) & (present < m.metsyn_components)
    # unknown components: an open flag stays open while the data could still confirm it
    possible = present + unknown >= m.metsyn_components
    ev.agg(
        "MS-METSYN",
        state_from(present >= m.metsyn_components, hold=possible & (unknown > 0)),
        details=details,
    )
    ev.agg(
        "MS-INCOMPLETE",
        state_from(some & (present + unknown >= m.metsyn_components)),
        details=details,
    )
    ev.agg("MS-RISK", state_from(some), details=details)

    # MH-ELIGIBLE: 19-64, untreated and undiagnosed, ≥ 1 pre-disease factor, none in disease range
    untreated = ~(
        c.hypertension
        | c.diabetes
        | c.dyslipidemia
        | c.antihypertensive
        | c.glucose_lowering
        | c.lipid_lowering
    )
    with np.errstate(invalid="ignore"):
        bp_disease = (bp_s >= m.mh_disease_sys) | (bp_d >= m.mh_disease_dia)
        bp_pre = ~bp_disease & bp_high
        fpg_disease = fpg >= m.mh_disease_fpg
        fpg_pre = (fpg >= m.fpg) & ~fpg_disease
        tg_disease = tg >= m.mh_disease_tg
        tg_pre = (tg >= m.tg) & ~tg_disease
        waist_pre = waist >= waist_limit
        hdl_pre = hdl < hdl_limit
    pre = bp_pre | fpg_pre | tg_pre | waist_pre | hdl_pre
    disease = bp_disease | fpg_disease | tg_disease
    eligible = (c.age >= m.mh_age_min) & (c.age <= m.mh_age_max) & untreated & pre & ~disease
    ev.agg("MH-ELIGIBLE", state_from(eligible), details=details)
