"""Blood-pressure rules (clinical-rules.md §3): single readings, home and office means.

Single readings act only at crisis, grade 3, hypotension and orthostatic levels; everything
about hypertension itself needs a valid mean (§2 "never flag from one reading"). The home mean
(§3.2) uses the 7 local dates ending on the latest valid sitting home reading, drops each
episode's first date (ESH "discard day 1") and needs ≥ 12 readings on ≥ 3 dates; the office mean
averages occasions (readings within 60 min; ≥ 3 readings drop the first) over 90 days and needs
occasions on ≥ 2 dates. The governing mean is the home mean when valid, else the office mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clinical import _seg
from clinical._events import events_near
from clinical._seg import DAY, MINUTE, BoolArray, FloatArray, IntArray
from clinical.evaluation import Evaluation, State, state_from
from clinical.flags import Severity
from clinical.model import BP_IRREGULAR, BpTable, Position, Setting
from clinical.quality import OK, Q04
from clinical.ruleset import HYPOTENSION_SYMPTOMS, BpThresholds


def bp_stage(sys: FloatArray, dia: FloatArray) -> IntArray:
    """KSH display class by the higher category (§3.1, §11 #4): 0 normal, 1 주의 (elevated
    120-129/<80), 2 전단계 (130-139 or 80-89), 3 1기 (140-159 or 90-99), 4 2기 (≥160 or ≥100).
    Display only, never a flag."""
    s = np.asarray(sys, dtype=np.float64)
    d = np.asarray(dia, dtype=np.float64)
    by_sys = np.select([s >= 160, s >= 140, s >= 130, s >= 120], [4, 3, 2, 1], 0)
    by_dia = np.select([d >= 100, d >= 90, d >= 80], [4, 3, 2], 0)
    stage: IntArray = np.maximum(by_sys, by_dia).astype(np.int64)
    return stage


@dataclass(frozen=True, slots=True, eq=False)
class Mean:
    valid: BoolArray
    sys: FloatArray
    dia: FloatArray
    n: IntArray
    dates: IntArray


class _Home:
    """Valid sitting home readings with the episode first dates removed, ready for windows."""

    def __init__(self, bp: BpTable, valid: BoolArray, th: BpThresholds) -> None:
        self.th = th
        h = valid & (bp.setting == int(Setting.HOME)) & (bp.position == int(Position.SITTING))
        self.rows_all = np.flatnonzero(h)
        r, t = bp.resident[self.rows_all], bp.t[self.rows_all]
        day = _seg.local_day(t)
        gap = np.zeros(r.size, dtype=bool)
        gap[1:] = (t[1:] - t[:-1]) > th.home_episode_gap_days * DAY
        episode = _seg.segment_ids(r, gap)
        first_day = np.zeros(0, dtype=np.int64)
        if r.size:
            starts = np.flatnonzero(np.diff(np.concatenate(([-1], episode))) != 0)
            first_day = day[starts]
        excluded = day == first_day[episode] if r.size else np.zeros(0, dtype=bool)
        self.keys_all = _seg.key(r, t)
        self.t_all = t
        self.day_all = day
        keep = ~excluded
        self.rows = self.rows_all[keep]  # bp rows that may enter a mean
        self.r = r[keep]
        self.t = t[keep]
        self.day = day[keep]
        self.keys = self.keys_all[keep]
        self.day_keys = _seg.day_key(self.r, self.day)
        self.sys = bp.sys[self.rows]
        self.dia = bp.dia[self.rows]

    def mean_at(self, resident: IntArray, t: IntArray) -> tuple[Mean, IntArray, IntArray]:
        """The valid home mean as of (resident, t), and each query's [start, end) in self.rows."""
        th = self.th
        q = _seg.key(resident, t)
        last = np.searchsorted(self.keys_all, q, side="right") - 1
        has = last >= 0
        last_c = np.maximum(last, 0)
        if self.keys_all.size:
            has &= (self.keys_all[last_c] >> 34) == resident
            t_last = np.where(has, self.t_all[last_c], 0)
            d_last = np.where(has, self.day_all[last_c], 0)
        else:
            t_last = np.zeros(resident.size, dtype=np.int64)
            d_last = np.zeros(resident.size, dtype=np.int64)
        recent = has & (t - t_last <= th.home_latest_max_days * DAY)
        lo_key = _seg.day_key(resident, d_last - (th.home_window_dates - 1))
        start = np.searchsorted(self.day_keys, lo_key, side="left").astype(np.int64)
        end = np.searchsorted(self.keys, _seg.key(resident, t_last), side="right").astype(np.int64)
        end = np.where(has, np.maximum(end, start), start)
        n = end - start
        dates = _seg.distinct_days_in_ranges(self.r, self.day, start, end)
        with np.errstate(invalid="ignore", divide="ignore"):
            ms = _seg.range_sum(self.sys, start, end) / n
            md = _seg.range_sum(self.dia, start, end) / n
        valid = recent & (n >= th.home_min_readings) & (dates >= th.home_min_dates)
        return Mean(valid, ms, md, n, dates), start, end


class _Office:
    """Sitting centre/visit readings grouped into occasions (§3.2)."""

    def __init__(self, bp: BpTable, valid: BoolArray, th: BpThresholds) -> None:
        self.th = th
        o = valid & (bp.setting != int(Setting.HOME)) & (bp.position == int(Position.SITTING))
        rows = np.flatnonzero(o)
        self.rows = rows
        r, t = bp.resident[rows], bp.t[rows]
        occ = _occasions(r, t, th.office_occasion_min * MINUTE)
        self.occasion_of_row = occ
        m = int(occ.max()) + 1 if occ.size else 0
        cnt = np.bincount(occ, minlength=m).astype(np.int64)
        s_sum = np.bincount(occ, weights=bp.sys[rows], minlength=m)
        d_sum = np.bincount(occ, weights=bp.dia[rows], minlength=m)
        first = np.flatnonzero(np.diff(np.concatenate(([-1], occ))) != 0) if occ.size else occ
        s_first = bp.sys[rows][first] if occ.size else np.zeros(0)
        d_first = bp.dia[rows][first] if occ.size else np.zeros(0)
        drop = cnt >= 3  # ≥ 3 readings: discard the first and average the rest (ESH)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.occ_sys = np.where(drop, (s_sum - s_first) / (cnt - 1), s_sum / cnt)
            self.occ_dia = np.where(drop, (d_sum - d_first) / (cnt - 1), d_sum / cnt)
        self.occ_r = r[first] if occ.size else np.zeros(0, dtype=np.int64)
        self.occ_t = t[first] if occ.size else np.zeros(0, dtype=np.int64)
        self.occ_day = _seg.local_day(self.occ_t)
        self.occ_keys = _seg.key(self.occ_r, self.occ_t)

    def mean_at(self, resident: IntArray, t: IntArray) -> tuple[Mean, IntArray, IntArray]:
        th = self.th
        q = _seg.key(resident, t)
        start, end = _seg.in_window(self.occ_keys, q, -(th.office_window_days * DAY) + 1, 0)
        n = end - start
        dates = _seg.distinct_days_in_ranges(self.occ_r, self.occ_day, start, end)
        with np.errstate(invalid="ignore", divide="ignore"):
            ms = _seg.range_sum(self.occ_sys, start, end) / n
            md = _seg.range_sum(self.occ_dia, start, end) / n
        valid = dates >= th.office_min_dates
        return Mean(valid, ms, md, n, dates), start, end

    def latest_occasion(
        self, resident: IntArray, t: IntArray, days: int
    ) -> tuple[BoolArray, FloatArray, FloatArray]:
        """The latest occasion mean within ``days`` (metabolic-syndrome BP component, §6)."""
        q = _seg.key(resident, t)
        start, end = _seg.in_window(self.occ_keys, q, -(days * DAY) + 1, 0)
        has = end > start
        last = np.maximum(end - 1, 0)
        if self.occ_keys.size == 0:
            z = np.full(resident.size, np.nan)
            return has, z, z
        return (
            has,
            np.where(has, self.occ_sys[last], np.nan),
            np.where(has, self.occ_dia[last], np.nan),
        )


def _occasions(r: IntArray, t: IntArray, span: float) -> IntArray:
    """Occasion id per row: a reading plus any further readings within ``span`` s of it.

    Consecutive readings closer than ``span`` form a chain; a chain longer than ``span`` is
    split in order (rare), which keeps the common case vectorized and the result exact.
    """
    if r.size == 0:
        return np.zeros(0, dtype=np.int64)
    gap = np.zeros(r.size, dtype=bool)
    gap[1:] = (t[1:] - t[:-1]) > span
    chain = _seg.segment_ids(r, gap)
    starts = np.flatnonzero(np.diff(np.concatenate(([-1], chain))) != 0)
    ends = np.concatenate((starts[1:], [r.size]))
    long_chains = np.flatnonzero(t[ends - 1] - t[starts] > span)
    if long_chains.size == 0:
        return chain
    boundary = np.zeros(r.size, dtype=bool)
    boundary[starts] = True
    for c in long_chains.tolist():
        t0 = int(t[starts[c]])
        for row in range(int(starts[c]) + 1, int(ends[c])):
            if t[row] - t0 > span:
                boundary[row] = True
                t0 = int(t[row])
    return _seg.segment_ids(r, boundary)


def evaluate(ev: Evaluation) -> None:
    th = ev.thresholds.bp
    bp = ev.readings.bp
    code = ev.codes["bp"]
    n = ev.n
    now = ev.now
    now_row = now[bp.resident]
    valid = code == OK
    sitting = bp.position == int(Position.SITTING)
    supine = bp.position == int(Position.SUPINE)
    standing = bp.position == int(Position.STANDING)
    s, d = bp.sys, bp.dia

    # -- single readings --------------------------------------------------------------
    crisis = valid & ((s > th.crisis_sys) | (d > th.crisis_dia))
    _single(ev, "BP-CRISIS", np.flatnonzero(crisis), Severity.CRITICAL)
    grade3 = valid & ~crisis & ((s >= th.grade3_sys) | (d >= th.grade3_dia))
    _single(ev, "BP-GRADE3", np.flatnonzero(grade3), Severity.URGENT)

    # BP-UNRELIABLE-HIGH: a Q-04 reading at crisis level, no valid BP within 30 min after;
    # pending (not raised) until the 30 minutes have passed.
    unreliable = np.flatnonzero((code == Q04) & ((s > th.crisis_sys) | (d > th.crisis_dia)))
    if unreliable.size:
        wait = int(th.unreliable_wait_min * MINUTE)
        vrows = np.flatnonzero(valid)
        vkeys = _seg.key(bp.resident[vrows], bp.t[vrows])
        start, end = _seg.in_window(
            vkeys, _seg.key(bp.resident[unreliable], bp.t[unreliable]), 1, wait
        )
        due = now_row[unreliable] >= bp.t[unreliable] + wait
        fire = unreliable[(end == start) & due]
        _single(ev, "BP-UNRELIABLE-HIGH", fire, Severity.URGENT, t=bp.t[fire] + wait)

    sit_sup = valid & (sitting | supine)
    low_severe = sit_sup & (s < th.low_severe_sys)
    _single(ev, "BP-LOW-SEVERE", np.flatnonzero(low_severe), Severity.URGENT)

    low = np.flatnonzero(sit_sup & ((s < th.low_sys) | (d < th.low_dia)))
    win = th.symptom_window_min * MINUTE
    near = events_near(
        ev, bp.resident[low], bp.t[low], HYPOTENSION_SYMPTOMS, before_s=win, after_s=win, falls=True
    )
    rows = low[near.found]
    _single(
        ev,
        "BP-LOW-SYMPTOMATIC",
        rows,
        Severity.URGENT,
        t=np.maximum(bp.t[rows], near.t[near.found]),
        event=near.row[near.found],
    )

    _orthostatic(ev, bp, valid, sitting | supine, standing, th)

    # -- sustained low (aggregate) -----------------------------------------------------
    week = (bp.t > now_row - th.low_sustained_days * DAY) & (bp.t <= now_row)
    low_sit = valid & sitting & (s < th.low_sys) & week
    low_dates = _seg.distinct_days(bp.resident, _seg.local_day(bp.t), low_sit, n)
    res_all = np.arange(n, dtype=np.int64)
    sym = events_near(
        ev,
        res_all,
        now,
        HYPOTENSION_SYMPTOMS,
        before_s=th.low_sustained_days * DAY,
        after_s=0,
        falls=True,
    )
    ev.evidence_set("bp-low-week", "bp", low_sit)
    ev.agg(
        "BP-LOW-SUSTAINED",
        state_from(
            (low_dates >= th.low_sustained_dates) & ~sym.found,
            hold=_seg.count(bp.resident, valid & sitting & week, n) == 0,  # nothing to judge
        ),
        details={"dates": low_dates.astype(np.float64)},
        evidence=["bp-low-week"],
    )

    # -- irregular pulse ---------------------------------------------------------------
    fortnight = (bp.t > now_row - th.irregular_window_days * DAY) & (bp.t <= now_row)
    irregular = valid & ((bp.status & BP_IRREGULAR) != 0) & fortnight
    irr_n = _seg.count(bp.resident, irregular, n)
    ev.evidence_set("bp-irregular", "bp", irregular)
    ev.agg(
        "BP-IRREG-PULSE",
        state_from(
            irr_n >= th.irregular_min_count, hold=_seg.count(bp.resident, valid & fortnight, n) == 0
        ),
        details={"n": irr_n.astype(np.float64)},
        evidence=["bp-irregular"],
    )

    # -- means ---------------------------------------------------------------------------
    home = _Home(bp, valid, th)
    office = _Office(bp, valid, th)
    hm, h_start, h_end = home.mean_at(res_all, now)
    om, o_start, o_end = office.mean_at(res_all, now)

    home_rows = np.zeros(bp.size, dtype=bool)
    if home.rows.size:
        pos = np.arange(home.rows.size)
        in_range = (pos >= h_start[home.r]) & (pos < h_end[home.r])
        home_rows[home.rows[in_range]] = True
    office_rows = np.zeros(bp.size, dtype=bool)
    if office.rows.size:
        occ = office.occasion_of_row
        in_range = (occ >= o_start[office.occ_r[occ]]) & (occ < o_end[office.occ_r[occ]])
        office_rows[office.rows[in_range]] = True
    ev.evidence_set("bp-home-mean", "bp", home_rows)
    ev.evidence_set("bp-office-mean", "bp", office_rows)

    home_high = hm.valid & ((hm.sys >= th.home_sys) | (hm.dia >= th.home_dia))
    home_clear = hm.valid & (hm.sys < th.home_clear_sys) & (hm.dia < th.home_clear_dia)
    office_high = om.valid & ((om.sys >= th.office_sys) | (om.dia >= th.office_dia))
    office_clear = om.valid & (om.sys < th.office_clear_sys) & (om.dia < th.office_clear_dia)
    home_details = {
        "mean_sys": hm.sys,
        "mean_dia": hm.dia,
        "n": hm.n.astype(np.float64),
        "dates": hm.dates.astype(np.float64),
    }
    office_details = {"office_sys": om.sys, "office_dia": om.dia}

    ev.agg(
        "BP-HOME-HTN",
        state_from(home_high, clear=home_clear, hold=~home_clear),
        details=home_details,
        evidence=["bp-home-mean"],
    )
    # BP-OFFICE-HTN applies only without a valid home mean; a home mean supersedes it.
    office_state = state_from(
        office_high & ~hm.valid, clear=office_clear & ~hm.valid, hold=~office_clear & ~hm.valid
    )
    ev.agg("BP-OFFICE-HTN", office_state, details=office_details, evidence=["bp-office-mean"])
    both = hm.valid & om.valid
    home_low = (hm.sys < th.home_sys) & (hm.dia < th.home_dia)
    office_low = (om.sys < th.office_sys) & (om.dia < th.office_dia)
    ev.agg(
        "BP-WHITECOAT",
        state_from(both & office_high & home_low, hold=~both),
        details={**home_details, **office_details},
        evidence=["bp-home-mean", "bp-office-mean"],
    )
    ev.agg(
        "BP-MASKED",
        state_from(both & office_low & home_high, hold=~both),
        details={**home_details, **office_details},
        evidence=["bp-home-mean", "bp-office-mean"],
    )

    gov_home = hm.valid
    gov_office = ~hm.valid & om.valid
    g_sys = np.where(gov_home, hm.sys, np.where(gov_office, om.sys, np.nan))
    g_dia = np.where(gov_home, hm.dia, np.where(gov_office, om.dia, np.nan))
    gov_details = {"mean_sys": g_sys, "mean_dia": g_dia}
    gov_evidence = np.where(gov_home, 0, 1)
    ish = (gov_home & (hm.sys >= th.home_sys) & (hm.dia < th.home_dia)) | (
        gov_office & (om.sys >= th.office_sys) & (om.dia < th.office_dia)
    )
    ev.evidence_set(
        "bp-governing", "bp", np.where(gov_evidence[bp.resident] == 0, home_rows, office_rows)
    )
    no_mean = ~(gov_home | gov_office)
    ev.agg("BP-ISH", state_from(ish, hold=no_mean), details=gov_details, evidence=["bp-governing"])

    treated = ev.cohort.hypertension | ev.cohort.antihypertensive
    target_hit = (g_sys >= th.target_high_risk_sys) | (g_dia >= th.target_high_risk_dia)
    below_threshold = np.where(
        gov_home,
        (g_sys < th.home_sys) & (g_dia < th.home_dia),
        (g_sys < th.office_sys) & (g_dia < th.office_dia),
    )
    above_target = (
        treated & ev.cohort.bp_high_risk & (gov_home | gov_office) & target_hit & below_threshold
    )
    ev.agg(
        "BP-ABOVE-TARGET",
        state_from(above_target, hold=no_mean),
        details=gov_details,
        evidence=["bp-governing"],
    )

    # -- BP-RECHECK: a single high sitting home/centre reading with no confirming mean as of
    # that reading (the prompt a running service would have sent at the time).
    cand = np.flatnonzero(
        valid
        & sitting
        & (bp.setting != int(Setting.VISIT))
        & ((s >= th.recheck_sys) | (d >= th.recheck_dia))
    )
    if cand.size:
        cr, ct = bp.resident[cand], bp.t[cand]
        hq, _, _ = home.mean_at(cr, ct)
        oq, _, _ = office.mean_at(cr, ct)
        h_conf = hq.valid & ((hq.sys >= th.home_sys) | (hq.dia >= th.home_dia))
        o_conf = ~hq.valid & oq.valid & ((oq.sys >= th.office_sys) | (oq.dia >= th.office_dia))
        rows = cand[~(h_conf | o_conf)]
        _single(ev, "BP-RECHECK", rows, Severity.INFO)

    # latest valid home BP, for ADH-NO-DATA
    ev.latest_valid["bp_home"] = _latest_time(
        bp.resident, bp.t, valid & (bp.setting == int(Setting.HOME)), n
    )


def _latest_time(resident: IntArray, t: IntArray, mask: BoolArray, n: int) -> IntArray:
    last = _seg.last_row(resident, mask, n)
    return np.where(last >= 0, t[np.maximum(last, 0)] if t.size else -1, -1).astype(np.int64)


def _single(
    ev: Evaluation,
    rule: str,
    rows: IntArray,
    severity: Severity | IntArray,
    *,
    t: IntArray | None = None,
    event: IntArray | None = None,
    extra: tuple[tuple[str, IntArray], ...] = (),
) -> None:
    bp = ev.readings.bp
    evidence: list[tuple[str, IntArray]] = [("bp", rows)]
    evidence.extend(extra)
    if event is not None:
        evidence.append(("event", event))
    ev.hit(
        rule,
        bp.resident[rows],
        bp.t[rows] if t is None else t,
        severity,
        evidence,
        value=bp.sys[rows],
        symptom=None if event is None else event >= 0,
        details={"sys": bp.sys[rows], "dia": bp.dia[rows]},
    )


def _orthostatic(
    ev: Evaluation,
    bp: BpTable,
    valid: BoolArray,
    base: BoolArray,
    standing: BoolArray,
    th: BpThresholds,
) -> None:
    """BP-ORTHO: standing ≤ 3 min after standing vs the last sitting/supine ≤ 10 min before."""
    with np.errstate(invalid="ignore"):
        in_protocol = np.isnan(bp.minutes_standing) | (
            bp.minutes_standing <= th.ortho_standing_max_min
        )
    stand = np.flatnonzero(valid & standing & in_protocol)
    if stand.size == 0:
        return
    brow = np.flatnonzero(valid & base)
    if brow.size == 0:
        return
    bkeys = _seg.key(bp.resident[brow], bp.t[brow])
    skeys = _seg.key(bp.resident[stand], bp.t[stand])
    pos = np.searchsorted(bkeys, skeys, side="right") - 1
    ok = pos >= 0
    b = brow[np.maximum(pos, 0)]
    ok &= (bp.resident[b] == bp.resident[stand]) & (
        bp.t[stand] - bp.t[b] <= th.ortho_baseline_max_min * MINUTE
    )
    drop_s = bp.sys[b] - bp.sys[stand]
    drop_d = bp.dia[b] - bp.dia[stand]
    hit = ok & (
        (drop_s >= th.ortho_sys_drop)
        | (drop_d >= th.ortho_dia_drop)
        | (bp.sys[stand] < th.ortho_standing_sys)
    )
    rows, base_rows = stand[hit], b[hit]
    win = th.ortho_symptom_min * MINUTE
    near = events_near(
        ev,
        bp.resident[rows],
        bp.t[rows],
        HYPOTENSION_SYMPTOMS,
        before_s=win,
        after_s=win,
        falls=True,
    )
    severity = np.where(near.found, Severity.URGENT.rank, Severity.ROUTINE.rank).astype(np.int64)
    ev.hit(
        "BP-ORTHO",
        bp.resident[rows],
        np.maximum(bp.t[rows], np.where(near.found, near.t, 0)),
        severity,
        [("bp", rows), ("bp:baseline", base_rows), ("event", near.row)],
        value=bp.sys[rows],
        symptom=near.found,
        details={
            "sys": bp.sys[rows],
            "dia": bp.dia[rows],
            "drop_sys": drop_s[hit],
            "drop_dia": drop_d[hit],
        },
    )


__all__ = ["Mean", "State", "bp_stage", "evaluate"]
