"""Glucose and HbA1c rules (clinical-rules.md §4).

Values are plasma-equivalent mg/dL rounded once (§1). Meter "HI" counts as ≥ 600 and "LO" as
< 20 (Q-05). Only the ``fasting`` meal context feeds fasting rules; missing context is random
(clarification 4). Diagnostic-range rules need readings on ≥ 2 different days (clarification 3)
and are referrals for laboratory confirmation, never diagnoses. Hypo- and hyperglycaemia rules
apply whether or not diabetes is diagnosed.
"""

from __future__ import annotations

import numpy as np

from clinical import _seg
from clinical._events import events_near
from clinical._seg import DAY, HOUR, BoolArray, FloatArray, IntArray
from clinical.evaluation import Evaluation, state_from
from clinical.flags import Severity
from clinical.model import Meal, symptom_mask
from clinical.quality import OK
from clinical.ruleset import (
    CLASSIC_DIABETES_SYMPTOMS,
    DKA_SYMPTOMS,
    HYPO_L3_SYMPTOM,
    GlucoseTargets,
    GlucoseThresholds,
)


def effective_mg_dl(
    mg_dl: FloatArray, hi: BoolArray, lo: BoolArray, hi_value: float, lo_value: float
) -> FloatArray:
    """HI → at least the meter maximum, LO → at most the meter minimum (Q-05)."""
    v = np.where(hi, np.fmax(mg_dl, hi_value), mg_dl)
    return np.asarray(np.where(lo, np.fmin(v, lo_value), v), dtype=np.float64)


def targets(ev: Evaluation) -> dict[str, FloatArray]:
    """Per-resident §4.2 targets: the < 65 row, or the ADA Table 13.1 row for ≥ 65."""
    g = ev.thresholds.glucose
    c = ev.cohort
    older = c.age >= g.older_age
    rows: list[GlucoseTargets] = [g.healthy, g.complex, g.very_complex]

    def pick(attr: str) -> FloatArray:
        by_cat = np.array(
            [np.nan if getattr(r, attr) is None else float(getattr(r, attr)) for r in rows]
        )
        young = getattr(g.under_65, attr)
        return np.where(older, by_cat[c.older_health], np.nan if young is None else float(young))

    a1c = pick("a1c_target")
    a1c = np.where(np.isnan(c.a1c_target), a1c, c.a1c_target)
    pp = np.where(
        older,
        np.array([r.postprandial_rule for r in rows])[c.older_health],
        g.under_65.postprandial_rule,
    )
    return {
        "fasting_low": pick("fasting_low"),
        "fasting_high": pick("fasting_high"),
        "bedtime_low": pick("bedtime_low"),
        "a1c": a1c,
        "pp_rule": pp.astype(np.float64),
    }


def evaluate(ev: Evaluation) -> None:
    g = ev.thresholds.glucose
    q = ev.thresholds.quality
    tbl = ev.readings.glucose
    code = ev.codes["glucose"]
    n = ev.n
    c = ev.cohort
    now_row = ev.now[tbl.resident]
    valid = code == OK
    v = effective_mg_dl(tbl.mg_dl, tbl.hi, tbl.lo, q.glucose_hi_value, q.glucose_lo_value)
    day = _seg.local_day(tbl.t)
    fasting = tbl.meal == int(Meal.FASTING)
    dx_row = (c.diabetes)[tbl.resident]
    no_dx_row = ~dx_row

    def single(
        rule: str,
        mask: BoolArray,
        severity: Severity | IntArray,
        *,
        t: IntArray | None = None,
        event: IntArray | None = None,
    ) -> None:
        rows = np.flatnonzero(mask)
        sev = severity if isinstance(severity, Severity) else severity[rows]
        ev_rows = None if event is None else event[rows]
        evidence = [("glucose", rows)] + ([] if ev_rows is None else [("event", ev_rows)])
        ev.hit(
            rule,
            tbl.resident[rows],
            tbl.t[rows] if t is None else t[rows],
            sev,
            evidence,
            value=v[rows],
            symptom=None if ev_rows is None else ev_rows >= 0,
            details={"mg_dl": v[rows]},
        )

    # -- hypoglycaemia ------------------------------------------------------------------
    _hypo_l3(ev)
    with np.errstate(invalid="ignore"):
        l2 = valid & (tbl.lo | (v < g.hypo_l2))
        l1 = valid & ~tbl.lo & (v >= g.hypo_l2) & (v < g.hypo_l1)
        below70 = valid & (tbl.lo | (v < g.hypo_l1))
        hyper_crit = valid & (tbl.hi | (v >= g.hyper_critical))
        hyper_sev = valid & ~tbl.hi & (v >= g.hyper_severe) & (v < g.hyper_critical)
        ge200 = valid & (tbl.hi | (v >= g.random_dm))
        ge_sympt = valid & (tbl.hi | (v >= g.hyper_symptomatic))
        fasting_dm = valid & fasting & (v >= g.fpg_dm)
        fasting_ifg = valid & fasting & (v >= g.fpg_ifg)
        random_dm = valid & ~fasting & ge200
    single("GLU-HYPO-L2", l2, Severity.CRITICAL)
    single("GLU-HYPO-L1", l1, Severity.URGENT)
    single("GLU-HYPER-CRITICAL", hyper_crit, Severity.CRITICAL)
    single("GLU-HYPER-SEVERE", hyper_sev, Severity.URGENT)

    # GLU-HYPER-SYMPTOMATIC: ≥ 200 with a DKA-type symptom within ± 24 h (fires at the later)
    rows = np.flatnonzero(ge_sympt)
    win = g.hyper_symptom_hours * HOUR
    near = events_near(ev, tbl.resident[rows], tbl.t[rows], DKA_SYMPTOMS, before_s=win, after_s=win)
    ev_row = np.full(tbl.size, -1, np.int64)
    fire_t = tbl.t.copy()
    ev_row[rows[near.found]] = near.row[near.found]
    fire_t[rows[near.found]] = np.maximum(tbl.t[rows[near.found]], near.t[near.found])
    found = np.zeros(tbl.size, dtype=bool)
    found[rows[near.found]] = True
    single("GLU-HYPER-SYMPTOMATIC", found, Severity.CRITICAL, t=fire_t, event=ev_row)

    # GLU-RANDOM-DM-RANGE symptomatic form: one random ≥ 200 + classic symptom within ± 7 d
    rows = np.flatnonzero(random_dm & no_dx_row)
    win = g.classic_symptom_days * DAY
    near = events_near(
        ev, tbl.resident[rows], tbl.t[rows], CLASSIC_DIABETES_SYMPTOMS, before_s=win, after_s=win
    )
    ev_row = np.full(tbl.size, -1, np.int64)
    fire_t = tbl.t.copy()
    ev_row[rows[near.found]] = near.row[near.found]
    fire_t[rows[near.found]] = np.maximum(tbl.t[rows[near.found]], near.t[near.found])
    found = np.zeros(tbl.size, dtype=bool)
    found[rows[near.found]] = True
    single("GLU-RANDOM-DM-RANGE", found, Severity.URGENT, t=fire_t, event=ev_row)

    single("GLU-CONTEXT-MISSING", valid & (tbl.meal == int(Meal.MISSING)), Severity.INFO)

    # GLU-RECHECK: a diagnostic-range single reading not (yet) confirmed on another day
    recheck = np.zeros(tbl.size, dtype=bool)
    for crit in (fasting_dm & no_dx_row, random_dm & no_dx_row):
        rows = np.flatnonzero(crit)
        if rows.size == 0:
            continue
        keys = _seg.key(tbl.resident[rows], tbl.t[rows])
        start, end = _seg.in_window(keys, keys, -(g.diagnosis_window_days * DAY) + 1, 0)
        confirm_days = _seg.distinct_days_in_ranges(tbl.resident[rows], day[rows], start, end)
        recheck[rows[confirm_days < g.diagnosis_min_dates]] = True
    single("GLU-RECHECK", recheck, Severity.INFO)

    # -- aggregates over windows ending now ----------------------------------------------
    def window(days: int) -> BoolArray:
        return np.asarray((tbl.t > now_row - days * DAY) & (tbl.t <= now_row), dtype=bool)

    def dates(mask: BoolArray) -> IntArray:
        return _seg.distinct_days(tbl.resident, day, mask, n)

    w14 = window(g.recurrent_window_days)
    recurrent = below70 & w14
    ev.evidence_set("glu-hypo-14d", "glucose", recurrent)
    rec_dates = dates(recurrent)
    ev.agg(
        "GLU-HYPO-RECURRENT",
        state_from(rec_dates >= g.recurrent_min_dates, hold=dates(valid & w14) == 0),
        details={"dates": rec_dates.astype(np.float64)},
        evidence=["glu-hypo-14d"],
    )

    w30 = window(g.diagnosis_window_days) & no_dx_row
    dm_days = dates(fasting_dm & w30)
    ifg_days = dates(fasting_ifg & w30)
    rnd_days = dates(random_dm & w30)
    dm = dm_days >= g.diagnosis_min_dates
    # without readings in the window there is nothing to judge: an open flag stays open
    no_fasting = dates(valid & fasting & w30) == 0
    no_random = dates(valid & ~fasting & w30) == 0
    ev.evidence_set("glu-fpg-dm", "glucose", fasting_dm & w30)
    ev.evidence_set("glu-fpg-ifg", "glucose", fasting_ifg & w30)
    ev.evidence_set("glu-random-dm", "glucose", random_dm & w30)
    ev.agg(
        "GLU-FPG-DM-RANGE",
        state_from(dm, hold=no_fasting),
        details={"dates": dm_days.astype(np.float64)},
        evidence=["glu-fpg-dm"],
    )
    ev.agg(
        "GLU-FPG-IFG",
        state_from(~dm & (ifg_days >= g.diagnosis_min_dates), hold=no_fasting),
        details={"dates": ifg_days.astype(np.float64)},
        evidence=["glu-fpg-ifg"],
    )
    ev.agg(
        "GLU-RANDOM-DM-RANGE",
        state_from(rnd_days >= g.diagnosis_min_dates, hold=no_random),
        details={"dates": rnd_days.astype(np.float64)},
        evidence=["glu-random-dm"],
    )

    tg = targets(ev)
    dx = c.diabetes
    wt = window(g.target_window_days) & valid

    def mean_of(mask: BoolArray) -> tuple[FloatArray, IntArray, IntArray]:
        cnt = _seg.count(tbl.resident, mask, n)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = _seg.total(tbl.resident, v, mask, n) / cnt
        return mean, cnt, dates(mask)

    fp = wt & ((tbl.meal == int(Meal.FASTING)) | (tbl.meal == int(Meal.PREPRANDIAL)))
    f_mean, f_n, f_dates = mean_of(fp)
    enough = dx & (f_n >= g.target_min_readings) & (f_dates >= g.target_min_dates)
    f_details = {
        "mean_mg_dl": f_mean,
        "n": f_n.astype(np.float64),
        "dates": f_dates.astype(np.float64),
    }
    ev.evidence_set("glu-fasting-14d", "glucose", fp)
    above = enough & (f_mean > tg["fasting_high"])
    clear = enough & (f_mean <= tg["fasting_high"] - g.fasting_clear_margin)
    ev.agg(
        "GLU-FASTING-ABOVE-TARGET",
        state_from(above, clear=clear, hold=~clear & dx),
        details=f_details,
        evidence=["glu-fasting-14d"],
    )
    ev.agg(
        "GLU-FASTING-BELOW-TARGET",
        state_from(enough & (f_mean < tg["fasting_low"]), hold=~enough),
        details=f_details,
        evidence=["glu-fasting-14d"],
    )

    pp = wt & (tbl.meal == int(Meal.POSTPRANDIAL))
    p_mean, p_n, p_dates = mean_of(pp)
    pp_applies = dx & (tg["pp_rule"] > 0)
    ev.evidence_set("glu-pp-14d", "glucose", pp)
    ev.agg(
        "GLU-PP-ABOVE-TARGET",
        state_from(
            pp_applies
            & (p_n >= g.target_min_readings)
            & (p_dates >= g.target_min_dates)
            & (p_mean > g.postprandial_high),
            hold=pp_applies & ((p_n < g.target_min_readings) | (p_dates < g.target_min_dates)),
        ),
        details={
            "mean_mg_dl": p_mean,
            "n": p_n.astype(np.float64),
            "dates": p_dates.astype(np.float64),
        },
        evidence=["glu-pp-14d"],
    )

    bed = wt & (tbl.meal == int(Meal.BEDTIME))
    b_mean, b_n, b_dates = mean_of(bed)
    bed_applies = dx & (c.age >= g.older_age) & c.hypo_risk_drug
    ev.evidence_set("glu-bedtime-14d", "glucose", bed)
    ev.agg(
        "GLU-BEDTIME-BELOW-TARGET",
        state_from(
            bed_applies
            & (b_n >= g.target_min_readings)
            & (b_dates >= g.target_min_dates)
            & (b_mean < tg["bedtime_low"]),
            hold=bed_applies & ((b_n < g.target_min_readings) | (b_dates < g.target_min_dates)),
        ),
        details={
            "mean_mg_dl": b_mean,
            "n": b_n.astype(np.float64),
            "dates": b_dates.astype(np.float64),
        },
        evidence=["glu-bedtime-14d"],
    )

    _a1c(ev, g, tg["a1c"])

    ev.latest_valid["glucose_home"] = _latest(tbl.resident, tbl.t, valid & tbl.home, n)


def _latest(resident: IntArray, t: IntArray, mask: BoolArray, n: int) -> IntArray:
    last = _seg.last_row(resident, mask, n)
    out = np.full(n, -1, dtype=np.int64)
    ok = last >= 0
    out[ok] = t[last[ok]]
    return out


def _hypo_l3(ev: Evaluation) -> None:
    tbl = ev.readings.event
    bit = symptom_mask([HYPO_L3_SYMPTOM])
    rows = np.flatnonzero((ev.codes["event"] == OK) & ((tbl.symptoms & bit) != 0))
    ev.hit(
        "GLU-HYPO-L3",
        tbl.resident[rows],
        tbl.t[rows],
        Severity.CRITICAL,
        [("event", rows)],
        symptom=np.ones(rows.size, dtype=bool),
    )


def _a1c(ev: Evaluation, g: GlucoseThresholds, target: FloatArray) -> None:
    tbl = ev.readings.a1c
    n = ev.n
    c = ev.cohort
    now_row = ev.now[tbl.resident]
    valid = ev.codes["a1c"] == OK

    def latest(days: int) -> tuple[IntArray, FloatArray]:
        mask = valid & (tbl.t > now_row - days * DAY) & (tbl.t <= now_row)
        last = _seg.last_row(tbl.resident, mask, n)
        ev.evidence_set(f"a1c-latest-{days}", "a1c", _only_rows(tbl.size, last))
        return last, _seg.gather(tbl.pct, last, np.nan)

    _, pct180 = latest(g.a1c_window_days)
    _, pct365 = latest(g.a1c_predm_window_days)
    no_dx = ~c.diabetes
    with np.errstate(invalid="ignore"):
        dm = no_dx & (pct180 >= g.a1c_dm)
        predm = no_dx & (pct365 >= g.a1c_predm) & (pct365 < g.a1c_dm)
        above = c.diabetes & ~np.isnan(target) & (pct180 >= target)
    ev.agg(
        "A1C-DM-RANGE",
        state_from(dm, hold=np.isnan(pct180)),
        details={"pct": pct180},
        evidence=[f"a1c-latest-{g.a1c_window_days}"],
    )
    ev.agg(
        "A1C-PREDM",
        state_from(predm, hold=np.isnan(pct365)),
        details={"pct": pct365},
        evidence=[f"a1c-latest-{g.a1c_predm_window_days}"],
    )
    ev.agg(
        "A1C-ABOVE-TARGET",
        state_from(above, hold=np.isnan(pct180)),
        details={"pct": pct180, "target": target},
        evidence=[f"a1c-latest-{g.a1c_window_days}"],
    )


def _only_rows(size: int, rows: IntArray) -> BoolArray:
    mask = np.zeros(size, dtype=bool)
    mask[rows[rows >= 0]] = True
    return mask
