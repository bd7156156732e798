"""Ground-truth physiology and measurement time series for the synthetic population.

Pure numpy: takes per-resident traits and a :class:`numpy.random.Generator`, returns columnar
tables. No per-reading Python objects, so 60,000 residents × 1 year takes seconds.

What is modelled, and why each number (approximate literature values; OPERATIONAL where marked):

Blood pressure (mmHg), per resident a *true* out-of-office (home) mean, then readings around it:

- Normotensive home mean: SBP ≈ 108 + 0.35·(age−20) (+4 men), SD 7, kept ≤131; DBP rises to mid-life
  and falls after 60 (the age pattern of KNHANES mean BP, Kim et al. Yonsei Med J 2018;59:356).
- Treated, controlled hypertension: home ≈ 125/77 (below the KSH home threshold 135/85).
- Uncontrolled hypertension: home SBP ≈ 147 (≥136), DBP falling with age, so older residents show
  isolated systolic hypertension (Kim & Kim, Korean Circ J 2015;45:492: ISH rises with age).
- Within-person reading-to-reading SD: SBP uniform 5-10 per resident, DBP 0.6× that (plus the
  surge and the season on top). Day-by-day
  home SBP SD is typically 6-11 mmHg (Ohasama, Kikuya et al. Hypertension 2008;52:1045).
- Morning surge: morning home SBP exceeds evening by ≈5 (≥60 y: ≈8) mmHg on average, per resident
  SD 5-6 (morning-evening difference in Asian home BP cohorts; J-HOME, Ishikawa et al. 2008).
- White-coat effect: centre minus home SBP ≈ N(+4, 6), plus a +15 mmHg responder group (12 %),
  so white-coat hypertension and (with negative offsets) masked hypertension both occur.
- Season: +3/+1.5 mmHg in mid-January, −3/−1.5 in mid-July (winter peak of BP in temperate
  climates). First reading of an occasion +2 mmHg (first-reading effect; ESH discards it).

Glucose (mg/dL, plasma-equivalent capillary):

- Fasting mean: non-diabetic ≈ 93 + 0.15·(age−20) (≤118, so impaired fasting glucose occurs);
  controlled diabetes ≈ 118; uncontrolled ≈ 170 (≥141).
- Context offsets above fasting: preprandial +10 (diabetes) / +5; postprandial per resident
  N(60, 20) / N(25, 8); bedtime +30 / +10; casual +25 / +12. Within-person CV 12 % (diabetes),
  SD 6 mg/dL otherwise.
- Hypoglycaemia: 35 % of residents with diabetes are on insulin or a sulfonylurea ("hypo-prone");
  3 % of their readings are 42-69 mg/dL; 0.2 % of everyone else's (technique or meter error). This
  gives a few level-1/2 events per hypo-prone resident-year, the order reported for
  sulfonylurea/insulin users (ADA Standards §6). OPERATIONAL rates.

Weight and body composition:

- Weight = BMI × height²; per resident slope N(0, 1.2) kg/year; 3 % of residents aged ≥65 lose
  6-12 % over the year (unintentional loss, GLIM >5 %/6 months), ground truth ``weight_loss``.
  Seasonal ±0.4 kg (winter gain); daily noise SD 0.35 kg; centre readings +0.8 kg (clothes).
- Body fat % from the Deurenberg formula (1.2·BMI + 0.23·age − 10.8·male − 5.4; Deurenberg et
  al., Br J Nutr 1991;65:105) with a per-resident offset SD 3; ASM from ASMI ≈ 7.4 (men) / 5.9
  (women) kg/m² falling 0.03/year after 60 (AWGS 2019 cut-offs 7.0/5.7 give a minority below).

Measurement behaviour (OPERATIONAL): home devices are used on a per-resident fraction of days,
with absences (Poisson 1.5 a year, 3-30 days long: travel, hospital stays, dead batteries);
morning and evening home BP occasions with duplicate readings as ESH/KSH advise; centre visits
on weekdays 09:00-17:30, 4-26 a year for centre users, each with 1-3 BP readings and usually a
weight. Times are UTC (``datetime64[s]``); local times are Asia/Seoul (UTC+9, no DST).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
TimeArray = npt.NDArray[np.datetime64]
StrArray = npt.NDArray[np.str_]

SEOUL_OFFSET_S = 9 * 3600
DAY_S = 86400
HOUR_S = 3600

MEAL_CONTEXTS: tuple[str, ...] = ("fasting", "preprandial", "postprandial", "casual", "bedtime")
SETTINGS: tuple[str, ...] = ("home", "centre")


def _freeze(*arrays: npt.NDArray[np.generic]) -> None:
    for array in arrays:
        array.flags.writeable = False


@dataclass(frozen=True, slots=True)
class BloodPressure:
    """Blood-pressure readings, sorted by (resident, t). Values are what a cuff shows (integers).

    ``resident``: int32 index into the residents table; ``t``: datetime64[s] UTC; ``sys``,
    ``dia``, ``pulse``: int16 (mmHg, mmHg, /min); ``setting``: ``'home'`` or ``'centre'``.
    """

    resident: npt.NDArray[np.int32]
    t: TimeArray
    sys: npt.NDArray[np.int16]
    dia: npt.NDArray[np.int16]
    pulse: npt.NDArray[np.int16]
    setting: StrArray

    def __post_init__(self) -> None:
        _freeze(self.resident, self.t, self.sys, self.dia, self.pulse, self.setting)

    def __len__(self) -> int:
        return len(self.resident)


@dataclass(frozen=True, slots=True)
class Glucose:
    """Capillary glucose readings (int16 mg/dL, plasma-equivalent) with their meal context."""

    resident: npt.NDArray[np.int32]
    t: TimeArray
    mg_dl: npt.NDArray[np.int16]
    meal: StrArray  # one of MEAL_CONTEXTS

    def __post_init__(self) -> None:
        _freeze(self.resident, self.t, self.mg_dl, self.meal)

    def __len__(self) -> int:
        return len(self.resident)


@dataclass(frozen=True, slots=True)
class Weight:
    """Body-weight readings (float64 kg, 0.1 kg resolution)."""

    resident: npt.NDArray[np.int32]
    t: TimeArray
    kg: FloatArray

    def __post_init__(self) -> None:
        _freeze(self.resident, self.t, self.kg)

    def __len__(self) -> int:
        return len(self.resident)


@dataclass(frozen=True, slots=True)
class BodyComposition:
    """Body-composition readings: body fat % and appendicular skeletal muscle mass (kg), 0.1."""

    resident: npt.NDArray[np.int32]
    t: TimeArray
    fat_pct: FloatArray
    asm_kg: FloatArray

    def __post_init__(self) -> None:
        _freeze(self.resident, self.t, self.fat_pct, self.asm_kg)

    def __len__(self) -> int:
        return len(self.resident)


@dataclass(frozen=True, slots=True)
class Physiology:
    """Per-resident ground truth the readings are drawn around (arrays of length n_residents)."""

    home_sys: FloatArray
    home_dia: FloatArray
    white_coat_sys: FloatArray  # centre minus home
    white_coat_dia: FloatArray
    surge_sys: FloatArray  # morning minus evening, home
    bp_sd: FloatArray  # within-person SBP SD
    pulse: FloatArray
    fasting_glucose: FloatArray
    postprandial_rise: FloatArray
    hypo_prone: BoolArray
    bmi: FloatArray  # at the start of the period
    weight_slope_kg_per_day: FloatArray
    weight_loss: BoolArray
    fat_offset: FloatArray
    asmi: FloatArray  # kg/m² at the start

    @property
    def office_sys(self) -> FloatArray:
        return self.home_sys + self.white_coat_sys

    @property
    def office_dia(self) -> FloatArray:
        return self.home_dia + self.white_coat_dia


@dataclass(frozen=True, slots=True)
class Behaviour:
    """Who measures what, and how often (per-resident arrays)."""

    home_bp: BoolArray
    home_glucose: BoolArray
    home_scale: BoolArray
    home_body_comp: BoolArray  # a subset of home_scale: the scale is a BIA scale
    centre_visits_per_year: FloatArray  # 0 = does not use a centre


def draw_physiology(
    rng: np.random.Generator,
    *,
    age: IntArray,
    male: BoolArray,
    hypertension: BoolArray,
    uncontrolled_hypertension: BoolArray,
    diabetes: BoolArray,
    uncontrolled_diabetes: BoolArray,
    obesity: BoolArray,
) -> Physiology:
    """Draw each resident's true parameters, consistent with their ground-truth conditions."""
    n = len(age)
    a = age.astype(np.float64)
    m = male.astype(np.float64)
    older = np.maximum(a - 60.0, 0.0)

    # Home (out-of-office) BP.
    normo_sys = np.clip(rng.normal(108 + 0.35 * (a - 20) + 4 * m, 7.0), 92, 131)
    normo_dia = np.clip(
        rng.normal(70 + 0.25 * np.minimum(a - 20, 35) - 0.2 * older + 3 * m, 5.0), 55, 83
    )
    ctrl_sys = np.clip(rng.normal(125.0, 5.0, n), 110, 132)
    ctrl_dia = np.clip(rng.normal(77 - 0.15 * older, 4.0), 60, 83)
    unc_sys = np.clip(rng.normal(147.0, 8.0, n), 136, 180)
    unc_dia = np.clip(rng.normal(90 - 0.3 * np.maximum(a - 50, 0), 6.0), 62, 110)
    controlled = hypertension & ~uncontrolled_hypertension
    home_sys = np.where(
        uncontrolled_hypertension, unc_sys, np.where(controlled, ctrl_sys, normo_sys)
    )
    home_dia = np.where(
        uncontrolled_hypertension, unc_dia, np.where(controlled, ctrl_dia, normo_dia)
    )
    home_dia = np.minimum(home_dia, home_sys - 25)

    responder = rng.random(n) < 0.12
    white_coat_sys = rng.normal(4.0, 6.0, n) + np.where(responder, rng.normal(15.0, 5.0, n), 0.0)
    white_coat_dia = 0.5 * white_coat_sys + rng.normal(0.0, 2.0, n)
    surge_sys = np.where(a >= 60, rng.normal(8.0, 6.0, n), rng.normal(5.0, 5.0, n))
    bp_sd = rng.uniform(5.0, 10.0, n)
    pulse = np.clip(rng.normal(72.0, 8.0, n), 50, 100)

    # Glucose.
    normo_fpg = np.clip(rng.normal(93 + 0.15 * (a - 20), 8.0), 75, 118)
    ctrl_fpg = np.clip(rng.normal(118.0, 12.0, n), 90, 140)
    unc_fpg = np.clip(rng.normal(170.0, 25.0, n), 141, 280)
    controlled_dm = diabetes & ~uncontrolled_diabetes
    fasting = np.where(uncontrolled_diabetes, unc_fpg, np.where(controlled_dm, ctrl_fpg, normo_fpg))
    pp_rise = np.where(
        diabetes,
        np.clip(rng.normal(60.0, 20.0, n), 15, 140),
        np.clip(rng.normal(25.0, 8.0, n), 5, 50),
    )
    hypo_prone = diabetes & (rng.random(n) < 0.35)

    # Anthropometry.
    obese_bmi = np.clip(25.0 + rng.exponential(2.8, n), 25.0, 42.0)
    lean_bmi = np.clip(rng.normal(22.0, 1.6, n), 17.0, 24.9)
    bmi = np.where(obesity, obese_bmi, lean_bmi)
    weight_loss = (a >= 65) & (rng.random(n) < 0.03)
    slope = rng.normal(0.0, 1.2, n) / 365.0
    fat_offset = rng.normal(0.0, 3.0, n)
    asmi = np.where(male, 7.4, 5.9) - 0.03 * older + 0.08 * (bmi - 23.0) + rng.normal(0.0, 0.6, n)
    asmi = np.clip(asmi, 3.5, 11.0)

    return Physiology(
        home_sys=home_sys,
        home_dia=home_dia,
        white_coat_sys=white_coat_sys,
        white_coat_dia=white_coat_dia,
        surge_sys=surge_sys,
        bp_sd=bp_sd,
        pulse=pulse,
        fasting_glucose=fasting,
        postprandial_rise=pp_rise,
        hypo_prone=hypo_prone,
        bmi=bmi,
        weight_slope_kg_per_day=slope,
        weight_loss=weight_loss,
        fat_offset=fat_offset,
        asmi=asmi,
    )


# --- calendar helpers -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Calendar:
    days: int
    midnight_utc: npt.NDArray[np.int64]  # epoch seconds of local midnight, per day
    weekday: IntArray  # 0 = Monday
    season: FloatArray  # cos of the day of year, +1 mid-January, -1 mid-July

    @staticmethod
    def build(start: dt.date, days: int) -> _Calendar:
        epoch_day = (start - dt.date(1970, 1, 1)).days
        day_numbers = epoch_day + np.arange(days, dtype=np.int64)
        midnight = day_numbers * DAY_S - SEOUL_OFFSET_S
        weekday = (day_numbers + 3) % 7  # 1970-01-01 was a Thursday
        dates = np.datetime64(start, "D") + np.arange(days)
        doy = (dates - dates.astype("datetime64[Y]")).astype(np.int64)
        season = np.cos(2 * np.pi * (doy - 15) / 365.25)
        return _Calendar(days=days, midnight_utc=midnight, weekday=weekday, season=season)


def _measuring_days(
    rng: np.random.Generator, who: IntArray, p_day: FloatArray, days: int
) -> tuple[IntArray, IntArray]:
    """(resident, day) pairs on which each resident in ``who`` uses a home device.

    A day is used with the resident's probability ``p_day``, except inside absences (Poisson 1.5
    a year, 3-30 days each), which is what makes the missed-day runs nurses see.
    """
    k = len(who)
    if k == 0 or days == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    used = rng.random((k, days), dtype=np.float32) < p_day[:, None].astype(np.float32)
    n_gaps = rng.poisson(1.5 * days / 365.0, k)
    gap_row = np.repeat(np.arange(k), n_gaps)
    gap_start = rng.integers(0, days, len(gap_row))
    gap_len = np.minimum(3 + rng.geometric(1 / 7, len(gap_row)), 30)
    diff = np.zeros((k, days + 1), np.int16)
    np.add.at(diff, (gap_row, gap_start), 1)
    np.add.at(diff, (gap_row, np.minimum(gap_start + gap_len, days)), -1)
    absent = np.cumsum(diff[:, :days], axis=1) > 0
    row, day = np.nonzero(used & ~absent)
    return who[row], day.astype(np.int64)


def _expand(counts: IntArray) -> tuple[IntArray, IntArray]:
    """For per-event counts, the event index of each item and its position within the event."""
    event = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    position = np.arange(len(event)) - starts[event]
    return event, position


def _to_time(cal: _Calendar, day: IntArray, local_seconds: FloatArray) -> TimeArray:
    seconds = cal.midnight_utc[day] + np.clip(local_seconds, 0, DAY_S - 1).astype(np.int64)
    return seconds.astype("datetime64[s]")


def _by_resident_then_time(resident: IntArray, t: TimeArray) -> IntArray:
    """The permutation sorting rows by (resident, t); one int64 key sorts faster than lexsort."""
    seconds = t.astype(np.int64)
    if len(seconds) == 0:
        return np.zeros(0, np.int64)
    span = int(seconds.max() - seconds.min()) + 1
    key = resident.astype(np.int64) * span + (seconds - seconds.min())
    order: IntArray = np.argsort(key, kind="stable")
    return order


# --- series -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Visits:
    resident: IntArray
    day: IntArray
    seconds: FloatArray  # local seconds after midnight


def _centre_visits(rng: np.random.Generator, cal: _Calendar, rate: FloatArray) -> _Visits:
    users = np.flatnonzero(rate > 0)
    weekdays = np.flatnonzero(cal.weekday < 5)
    if len(users) == 0 or len(weekdays) == 0:
        empty = np.zeros(0, np.int64)
        return _Visits(empty, empty, np.zeros(0))
    n_visits = rng.poisson(rate[users] * cal.days / 365.0)
    resident = np.repeat(users, n_visits)
    day = weekdays[rng.integers(0, len(weekdays), len(resident))]
    seconds = rng.uniform(9 * HOUR_S, 17.5 * HOUR_S, len(resident))
    return _Visits(resident, day, seconds)


def _bp_series(
    rng: np.random.Generator,
    cal: _Calendar,
    phys: Physiology,
    behaviour: Behaviour,
    visits: _Visits,
) -> BloodPressure:
    n = len(phys.home_sys)
    owners = np.flatnonzero(behaviour.home_bp)
    p_day = rng.uniform(0.25, 0.95, n)
    p_morning = rng.uniform(0.7, 0.98, n)
    p_evening = rng.uniform(0.2, 0.8, n)
    p_duplicate = rng.uniform(0.2, 0.9, n)
    wake = rng.normal(6.6 * HOUR_S, 0.6 * HOUR_S, n)
    bed = rng.normal(21.5 * HOUR_S, 0.7 * HOUR_S, n)

    res, day = _measuring_days(rng, owners, p_day[owners], cal.days)
    morning = rng.random(len(res)) < p_morning[res]
    evening = rng.random(len(res)) < p_evening[res]
    occ_res = np.concatenate([res[morning], res[evening]])
    occ_day = np.concatenate([day[morning], day[evening]])
    occ_is_morning = np.concatenate([np.ones(morning.sum(), bool), np.zeros(evening.sum(), bool)])
    occ_sec = np.where(occ_is_morning, wake[occ_res] + 900, bed[occ_res] - 1800) + rng.normal(
        0, 1200, len(occ_res)
    )
    occ_count = 1 + (rng.random(len(occ_res)) < p_duplicate[occ_res]).astype(np.int64)
    occ_count += rng.random(len(occ_res)) < 0.05
    ev, pos = _expand(occ_count)
    h_res = occ_res[ev]
    h_day = occ_day[ev]
    h_sec = occ_sec[ev] + pos * rng.integers(60, 150, len(ev))
    surge_half = np.where(occ_is_morning[ev], 0.5, -0.5) * phys.surge_sys[h_res]
    h_first = (pos == 0) & (occ_count[ev] > 1)
    h_sys_mean = phys.home_sys[h_res] + surge_half
    h_dia_mean = phys.home_dia[h_res] + 0.5 * surge_half

    # Centre readings: 1-3 per visit, about two minutes apart, on top of the white-coat effect.
    v_count = rng.choice(np.array([1, 2, 3]), size=len(visits.resident), p=[0.35, 0.45, 0.2])
    ev, pos = _expand(v_count)
    c_res = visits.resident[ev]
    c_day = visits.day[ev]
    c_sec = visits.seconds[ev] + 120 * pos + rng.integers(0, 40, len(ev))
    c_first = (pos == 0) & (v_count[ev] > 1)
    c_sys_mean = phys.office_sys[c_res]
    c_dia_mean = phys.office_dia[c_res]

    r = np.concatenate([h_res, c_res])
    d = np.concatenate([h_day, c_day])
    sec = np.concatenate([h_sec, c_sec])
    first_bump = 2.0 * np.concatenate([h_first, c_first])
    season = cal.season[d]
    sd = phys.bp_sd[r]
    sys = np.concatenate([h_sys_mean, c_sys_mean]) + 3.0 * season + first_bump
    sys += rng.normal(0.0, 1.0, len(r)) * sd
    dia = np.concatenate([h_dia_mean, c_dia_mean]) + 1.5 * season + 0.5 * first_bump
    dia += rng.normal(0.0, 1.0, len(r)) * 0.6 * sd
    sys = np.clip(np.rint(sys), 70, 250)
    dia = np.clip(np.rint(np.minimum(dia, sys - 15)), 40, 150)
    pulse = np.clip(np.rint(phys.pulse[r] + rng.normal(0.0, 5.0, len(r))), 40, 140)
    setting = np.concatenate(
        [np.full(len(h_res), "home", "<U6"), np.full(len(c_res), "centre", "<U6")]
    )
    t = _to_time(cal, d, sec)
    order = _by_resident_then_time(r, t)
    return BloodPressure(
        resident=r[order].astype(np.int32),
        t=t[order],
        sys=sys[order].astype(np.int16),
        dia=dia[order].astype(np.int16),
        pulse=pulse[order].astype(np.int16),
        setting=setting[order],
    )


def _glucose_series(
    rng: np.random.Generator,
    cal: _Calendar,
    phys: Physiology,
    behaviour: Behaviour,
    diabetes: BoolArray,
    visits: _Visits,
) -> Glucose:
    n = len(phys.fasting_glucose)
    owners = np.flatnonzero(behaviour.home_glucose)
    p_day = np.where(diabetes, rng.uniform(0.35, 0.9, n), rng.uniform(0.05, 0.25, n))
    wake = rng.normal(6.6 * HOUR_S, 0.6 * HOUR_S, n)
    res, day = _measuring_days(rng, owners, p_day[owners], cal.days)
    dm = diabetes[res]
    # (context, probability if diabetes, otherwise, local time in seconds)
    half_hour = 1800
    plans: list[tuple[str, float, float, FloatArray]] = [
        ("fasting", 0.8, 0.7, wake[res] + half_hour),
        ("preprandial", 0.12, 0.05, np.where(rng.random(len(res)) < 0.5, 11.75, 17.75) * HOUR_S),
        ("postprandial", 0.3, 0.15, np.where(rng.random(len(res)) < 0.5, 13.5, 19.5) * HOUR_S),
        ("casual", 0.08, 0.1, rng.uniform(10 * HOUR_S, 20 * HOUR_S, len(res))),
        ("bedtime", 0.15, 0.02, np.full(len(res), 22.5 * HOUR_S)),
    ]
    g_res: list[IntArray] = []
    g_day: list[IntArray] = []
    g_sec: list[FloatArray] = []
    g_meal: list[StrArray] = []
    for context, p_dm, p_other, seconds in plans:
        take = rng.random(len(res)) < np.where(dm, p_dm, p_other)
        g_res.append(res[take])
        g_day.append(day[take])
        g_sec.append(seconds[take] + rng.normal(0, 900, int(take.sum())))
        g_meal.append(np.full(int(take.sum()), context, "<U12"))

    # Centre: a capillary test at some visits; fasting in the early morning, else casual.
    test_p = np.where(diabetes[visits.resident], 0.6, 0.25)
    at_visit = rng.random(len(visits.resident)) < test_p
    v_res = visits.resident[at_visit]
    v_sec = visits.seconds[at_visit] + 300
    early = (v_sec < 10.5 * HOUR_S) & (rng.random(len(v_res)) < 0.6)
    pp = ~early & (rng.random(len(v_res)) < 0.25)
    v_meal = np.where(early, "fasting", np.where(pp, "postprandial", "casual")).astype("<U12")
    g_res.append(v_res)
    g_day.append(visits.day[at_visit])
    g_sec.append(v_sec)
    g_meal.append(v_meal)

    r = np.concatenate(g_res)
    d = np.concatenate(g_day)
    sec = np.concatenate(g_sec)
    meal = np.concatenate(g_meal)
    dm = diabetes[r]
    offset = np.zeros(len(r))
    offset += np.where(meal == "preprandial", np.where(dm, 10.0, 5.0), 0.0)
    offset += np.where(meal == "postprandial", phys.postprandial_rise[r], 0.0)
    offset += np.where(meal == "bedtime", np.where(dm, 30.0, 10.0), 0.0)
    offset += np.where(meal == "casual", np.where(dm, 25.0, 12.0), 0.0)
    mean = phys.fasting_glucose[r] + offset + 2.0 * cal.season[d]
    noise_sd = np.where(dm, 0.12 * mean, 6.0)
    value = mean + rng.normal(0.0, 1.0, len(r)) * noise_sd
    hypo_rate = np.where(phys.hypo_prone[r], 0.03, 0.002)
    hypo = rng.random(len(r)) < hypo_rate
    value = np.where(hypo, rng.uniform(42.0, 70.0, len(r)), value)
    value = np.clip(np.rint(value), 20, 600)
    t = _to_time(cal, d, sec)
    order = _by_resident_then_time(r, t)
    return Glucose(
        resident=r[order].astype(np.int32),
        t=t[order],
        mg_dl=value[order].astype(np.int16),
        meal=meal[order],
    )


def _weight_and_body_comp(
    rng: np.random.Generator,
    cal: _Calendar,
    phys: Physiology,
    behaviour: Behaviour,
    *,
    age: IntArray,
    male: BoolArray,
    height_cm: FloatArray,
    visits: _Visits,
) -> tuple[Weight, BodyComposition]:
    n = len(phys.bmi)
    owners = np.flatnonzero(behaviour.home_scale)
    p_day = rng.uniform(0.15, 0.8, n)
    wake = rng.normal(6.5 * HOUR_S, 0.6 * HOUR_S, n)
    res, day = _measuring_days(rng, owners, p_day[owners], cal.days)
    h_sec = wake[res] + 600 + rng.normal(0, 600, len(res))

    weighed = rng.random(len(visits.resident)) < 0.8
    c_res = visits.resident[weighed]
    c_day = visits.day[weighed]
    c_sec = visits.seconds[weighed] + 420
    c_bia = rng.random(len(c_res)) < 0.6  # the station's analyser is used for body composition

    r = np.concatenate([res, c_res])
    d = np.concatenate([day, c_day])
    sec = np.concatenate([h_sec, c_sec])
    at_centre = np.concatenate([np.zeros(len(res), bool), np.ones(len(c_res), bool)])
    height_m = height_cm / 100.0
    w0 = phys.bmi * height_m**2
    loss_per_day = np.where(phys.weight_loss, rng.uniform(0.06, 0.12, n) * w0 / 365.0, 0.0)
    slope = np.where(phys.weight_loss, -loss_per_day, phys.weight_slope_kg_per_day)
    true_kg = w0[r] + slope[r] * d + 0.4 * cal.season[d]
    kg = true_kg + rng.normal(0.0, 0.35, len(r)) + np.where(at_centre, 0.8, 0.0)
    kg = np.round(np.clip(kg, 25.0, 250.0), 1)
    t = _to_time(cal, d, sec)

    # Body composition: with every home weighing on a BIA scale, and at some centre visits.
    with_bc = np.concatenate([behaviour.home_body_comp[res], c_bia])
    b_r = r[with_bc]
    b_kg = true_kg[with_bc]
    bmi_now = b_kg / height_m[b_r] ** 2
    fat = (
        1.2 * bmi_now
        + 0.23 * age[b_r]
        - 10.8 * male[b_r]
        - 5.4
        + phys.fat_offset[b_r]
        + rng.normal(0.0, 0.8, len(b_r))
    )
    asm0 = phys.asmi[b_r] * height_m[b_r] ** 2
    asm = asm0 * (1 + 0.5 * (b_kg - w0[b_r]) / w0[b_r]) + rng.normal(0.0, 0.25, len(b_r))
    b_t = t[with_bc]

    w_order = _by_resident_then_time(r, t)
    b_order = _by_resident_then_time(b_r, b_t)
    weight = Weight(resident=r[w_order].astype(np.int32), t=t[w_order], kg=kg[w_order])
    body = BodyComposition(
        resident=b_r[b_order].astype(np.int32),
        t=b_t[b_order],
        fat_pct=np.round(np.clip(fat, 3.0, 65.0), 1)[b_order],
        asm_kg=np.round(np.clip(asm, 5.0, 45.0), 1)[b_order],
    )
    return weight, body


def simulate_series(
    seed_sequence: np.random.SeedSequence,
    phys: Physiology,
    behaviour: Behaviour,
    *,
    age: IntArray,
    male: BoolArray,
    height_cm: FloatArray,
    diabetes: BoolArray,
    start: dt.date,
    days: int,
) -> tuple[BloodPressure, Glucose, Weight, BodyComposition]:
    """All four reading tables for ``days`` local dates starting at ``start``.

    Each table draws from its own child stream of ``seed_sequence``, so changing one model does
    not reshuffle the others.
    """
    visits_ss, bp_ss, glu_ss, wt_ss = seed_sequence.spawn(4)
    cal = _Calendar.build(start, days)
    visits = _centre_visits(np.random.default_rng(visits_ss), cal, behaviour.centre_visits_per_year)
    bp = _bp_series(np.random.default_rng(bp_ss), cal, phys, behaviour, visits)
    glucose = _glucose_series(np.random.default_rng(glu_ss), cal, phys, behaviour, diabetes, visits)
    weight, body = _weight_and_body_comp(
        np.random.default_rng(wt_ss),
        cal,
        phys,
        behaviour,
        age=age,
        male=male,
        height_cm=height_cm,
        visits=visits,
    )
    return bp, glucose, weight, body
