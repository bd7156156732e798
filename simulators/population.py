"""A synthetic population of Seoul Jung-gu, with ground truth and a year of readings.

``generate(seed)`` gives every resident of the district's 15 neighbourhoods (60,149 people,
sized per neighbourhood from the 2014 planning table in ../shared/reference/junggu-district.md),
with age, sex, height, benefit status, chronic conditions (ground truth), visiting nurse, liaison
officer, consent, centre card and device ownership, and then physiological time series
(:mod:`simulators.population_physiology` documents that model). Everything is synthetic and
deterministic for a seed; names come from syllable lists (:mod:`simulators.population_names`).

Sources and assumptions (approximate published values, rounded; cited as such):

Scope and age/sex structure (ASSUMPTION). The programme serves adults, so residents are aged
20-99. Jung-gu is older than Seoul on average (resident registration statistics, KOSIS/Seoul
Open Data, 주민등록인구 by 5-year age, 2023: about 22 % of Jung-gu residents are 65 or older against
about 18 % for Seoul). We use, for adults: 20-29 17 %, 30-39 17 %, 40-49 15 %, 50-59 17 %,
60-69 16 %, 70-79 11 %, 80+ 7 % (≈26 % of adults aged 65+), with the female share rising from
50 % below 60 to 53 %, 57 % and 66 % in the 60s, 70s and 80s (women's longer life expectancy).

Prevalence by sex and age band (percent, men / women), KNHANES:

======  =============  =============  ==============  ==============
band    hypertension   diabetes       obesity         dyslipidemia
======  =============  =============  ==============  ==============
20-29    8.0 /  2.0     1.5 /  1.0    39.0 / 19.0     22.0 /  8.0
30-39   14.0 /  4.0     4.0 /  2.0    56.0 / 27.0     42.0 / 12.0
40-49   27.0 / 11.0    11.0 /  5.0    53.0 / 27.0     52.0 / 20.0
50-59   40.0 / 25.0    20.0 / 11.0    48.0 / 30.0     56.0 / 40.0
60-69   53.0 / 45.0    29.0 / 20.0    44.0 / 35.0     55.0 / 56.0
70+     64.0 / 69.0    31.0 / 30.0    37.0 / 38.0     48.0 / 58.0
======  =============  =============  ==============  ==============

- Hypertension (SBP ≥140 or DBP ≥90 or antihypertensive use): Korea Health Statistics 2021,
  KNHANES VIII-3 (KDCA 2022), prevalence by sex and age group; consistent with the Korea
  Hypertension Fact Sheet 2023 (Kim HC et al., Clin Hypertens 2024;30:7: 28.0 % of adults ≥20
  in 2021; men higher before 60, similar in the 60s, women higher after 70). Approximate.
- Diabetes (FPG ≥126, HbA1c ≥6.5 %, diagnosis or treatment): Diabetes Fact Sheet in Korea 2021
  (Bae JH et al., Diabetes Metab J 2022;46:417-426; KNHANES 2019-2020, 16.7 % of adults ≥30),
  prevalence by age and sex, approximate; the 20-29 band is our extrapolation (≥30 only there).
- Obesity (BMI ≥25 kg/m², KSSO): Korea Health Statistics 2021 (KNHANES VIII-3) by sex and age;
  the shape matches KSSO "Obesity in numbers" 2024 (men peak in their 30s, women in their 70s).
  Approximate.
- Dyslipidemia (LDL-C ≥160 or lipid-lowering drug, TG ≥200, or HDL-C <40): Dyslipidemia Fact
  Sheet in South Korea 2022 (Jin ES et al., J Lipid Atheroscler 2023;12:237-251; KNHANES
  2016-2020, crude 40.2 % of adults ≥20), by age and sex, approximate.
- Uncontrolled: 44 % of residents with hypertension (control rate 56.0 % among all people with
  hypertension in 2021, Hypertension Fact Sheet 2023); 45 % of residents with diabetes (about
  half reach HbA1c <7.0 %, Diabetes Fact Sheet 2021 reports 24.5 % reaching <6.5 %).

How the marginals are hit: within each (age band, sex) cell exactly ``round(p × n)`` residents
get a condition, chosen by a latent metabolic-risk score shared between conditions (so obesity,
hypertension, diabetes and dyslipidemia cluster, and benefit recipients carry more risk), hence
the generated prevalence equals the table up to rounding (tests allow ±1 percentage point).

Benefit status: exactly the table's basic-livelihood (2,568) and near-poor (1,522) counts per
neighbourhood, drawn with weights favouring older residents (age ≥65 ×3, 50-64 ×1.5: most
recipients are older; OPERATIONAL).

Staff (junggu-district.md): 12 visiting nurses, each covering a contiguous run of neighbourhoods
with balanced caseloads (about 5,000 residents each; large neighbourhoods are shared). Liaison
officers are community-centre staff (the table's per-neighbourhood staff counts), each
looking after 30-50 priority residents (benefit recipients first, then the oldest aged ≥65);
other residents have no liaison officer (``liaison == ''``).

OPERATIONAL choices: consent to share with the liaison officer 75 % of liaison-covered
residents, 40 % of others; home BP cuff 35 % of residents with hypertension, 6 % of others;
home glucose meter 55 % with diabetes, 2 % of others; home scale 18 % (28 % if obese), 40 % of
those a body-composition (BIA) scale; U-health centre users 10 % base, +15 % with a condition,
+10 % aged ≥65, +15 % with a liaison officer, +10 % living in a centre's neighbourhood, visiting
4-26 times a year. Centre card numbers are 12 digits starting ``9410`` with a Luhn check digit.
Contact details (phones that reach nobody, addresses on invented roads in the real 동, emergency
contacts, living alone) are :mod:`simulators.population_contacts`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from simulators.population_contacts import Contacts, synthetic_contacts
from simulators.population_names import synthetic_names
from simulators.population_physiology import (
    MEAL_CONTEXTS,
    SETTINGS,
    Behaviour,
    BloodPressure,
    BodyComposition,
    Glucose,
    Weight,
    draw_physiology,
    simulate_series,
)

__all__ = [
    "AGE_STRUCTURE",
    "CENTRE_OF_NEIGHBOURHOOD",
    "MEAL_CONTEXTS",
    "NEIGHBOURHOODS",
    "PREVALENCE",
    "PREVALENCE_BANDS",
    "SETTINGS",
    "TOTAL_RESIDENTS",
    "BloodPressure",
    "BodyComposition",
    "Contacts",
    "Glucose",
    "Liaison",
    "Neighbourhood",
    "Nurse",
    "Population",
    "Residents",
    "Weight",
    "generate",
    "luhn_valid",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
StrArray = npt.NDArray[np.str_]

SEOUL = ZoneInfo("Asia/Seoul")


@dataclass(frozen=True, slots=True)
class Neighbourhood:
    """One 동 row of the district table (junggu-district.md, as of 2014-10-31)."""

    number: int
    name: str
    residents: int
    basic: int  # 기초수급
    near_poor: int  # 차상위
    staff: int  # community-centre employees, each a liaison officer


NEIGHBOURHOODS: tuple[Neighbourhood, ...] = (
    Neighbourhood(1, "소공동", 658, 8, 1, 12),
    Neighbourhood(2, "회현동", 3559, 415, 69, 13),
    Neighbourhood(3, "명동", 1518, 46, 21, 11),
    Neighbourhood(4, "필동", 2422, 71, 34, 12),
    Neighbourhood(5, "장충동", 2904, 50, 34, 12),
    Neighbourhood(6, "광희동", 2890, 85, 44, 12),
    Neighbourhood(7, "을지로동", 1280, 68, 32, 13),
    Neighbourhood(8, "신당동", 3880, 158, 131, 13),
    Neighbourhood(9, "다산동", 7033, 182, 208, 13),
    Neighbourhood(10, "약수동", 7922, 383, 298, 14),
    Neighbourhood(11, "청구동", 6480, 301, 176, 13),
    Neighbourhood(12, "신당5동", 4677, 197, 136, 13),
    Neighbourhood(13, "동화동", 4335, 79, 65, 12),
    Neighbourhood(14, "황학동", 6054, 238, 137, 13),
    Neighbourhood(15, "중림동", 4537, 287, 136, 13),
)
TOTAL_RESIDENTS = sum(nb.residents for nb in NEIGHBOURHOODS)  # 60,149

#: Nearest U-health centre (약수 yaksu, 황학 hwanghak, 필동 pil) per 동 (OPERATIONAL geography).
CENTRE_OF_NEIGHBOURHOOD: dict[str, str] = {
    "소공동": "pil", "회현동": "pil", "명동": "pil", "필동": "pil", "장충동": "pil",
    "광희동": "pil", "을지로동": "pil", "중림동": "pil",
    "약수동": "yaksu", "다산동": "yaksu", "청구동": "yaksu", "동화동": "yaksu",
    "황학동": "hwanghak", "신당동": "hwanghak", "신당5동": "hwanghak",
}  # fmt: skip
_CENTRE_NEIGHBOURHOODS = frozenset({"필동", "약수동", "황학동"})

#: Adult age structure (ASSUMPTION, module docstring): (first age, last age, share, female share).
AGE_STRUCTURE: tuple[tuple[int, int, float, float], ...] = (
    (20, 29, 0.17, 0.50),
    (30, 39, 0.17, 0.49),
    (40, 49, 0.15, 0.50),
    (50, 59, 0.17, 0.51),
    (60, 69, 0.16, 0.53),
    (70, 79, 0.11, 0.57),
    (80, 99, 0.07, 0.66),
)

#: KNHANES reporting bands: (first age, last age); the last band is open (70+).
PREVALENCE_BANDS: tuple[tuple[int, int], ...] = (
    (20, 29),
    (30, 39),
    (40, 49),
    (50, 59),
    (60, 69),
    (70, 120),
)

#: Percent by band, (men, women); sources in the module docstring.
PREVALENCE: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "hypertension": ((8.0, 14.0, 27.0, 40.0, 53.0, 64.0), (2.0, 4.0, 11.0, 25.0, 45.0, 69.0)),
    "diabetes": ((1.5, 4.0, 11.0, 20.0, 29.0, 31.0), (1.0, 2.0, 5.0, 11.0, 20.0, 30.0)),
    "obesity": ((39.0, 56.0, 53.0, 48.0, 44.0, 37.0), (19.0, 27.0, 27.0, 30.0, 35.0, 38.0)),
    "dyslipidemia": ((22.0, 42.0, 52.0, 56.0, 55.0, 48.0), (8.0, 12.0, 20.0, 40.0, 56.0, 58.0)),
}
UNCONTROLLED_SHARE = {"hypertension": 0.44, "diabetes": 0.45}

N_NURSES = 12
LIAISON_MIN, LIAISON_TARGET, LIAISON_MAX = 30, 45, 50


@dataclass(frozen=True, slots=True)
class Nurse:
    """A visiting nurse (방문간호사) and the neighbourhoods she covers, in table order."""

    id: str  # "N01" .. "N12"
    name: str
    neighbourhoods: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Liaison:
    """A liaison officer (현장소통담당관) of one neighbourhood's community centre."""

    id: str  # "L10-03": neighbourhood number 10, officer 3
    name: str
    neighbourhood: str
    residents: int  # how many residents she looks after (30-50)


@dataclass(frozen=True, slots=True)
class Residents:
    """One row per resident, as numpy columns (all of length ``len(self)``).

    Contract columns: ``id`` ('R0000001'), ``name`` (synthetic), ``neighbourhood`` (동 name),
    ``age`` (int64), ``sex`` ('M'/'F'), ``height_cm``, ``benefit`` ('basic'|'near_poor'|'general'),
    ground truth ``hypertension``, ``diabetes``, ``obesity``, ``dyslipidemia``,
    ``uncontrolled_hypertension``, ``uncontrolled_diabetes``, ``nurse`` ('N01'..),
    ``liaison`` ('' when none), ``consent``, ``card_number`` (12 digits, Luhn), device ownership
    ``home_bp``, ``home_glucose``, ``home_scale``.

    Extra ground truth for benchmarks of the risk engine: ``bmi`` (start of the period), true
    means ``true_home_sys``/``true_home_dia``/``true_office_sys``/``true_office_dia``/
    ``true_fasting_glucose``, ``white_coat`` (office ≥140/90 but home <135/85), ``masked``
    (office <140/90 but home ≥135/85), ``hypo_prone``, ``weight_loss``, ``home_body_comp``,
    ``centre`` (U-health centre id the resident uses, '' if none) and ``centre_visits_per_year``.
    """

    id: StrArray
    name: StrArray
    neighbourhood: StrArray
    age: IntArray
    sex: StrArray
    height_cm: FloatArray
    benefit: StrArray
    hypertension: BoolArray
    diabetes: BoolArray
    obesity: BoolArray
    dyslipidemia: BoolArray
    uncontrolled_hypertension: BoolArray
    uncontrolled_diabetes: BoolArray
    nurse: StrArray
    liaison: StrArray
    consent: BoolArray
    card_number: StrArray
    home_bp: BoolArray
    home_glucose: BoolArray
    home_scale: BoolArray
    bmi: FloatArray
    true_home_sys: FloatArray
    true_home_dia: FloatArray
    true_office_sys: FloatArray
    true_office_dia: FloatArray
    true_fasting_glucose: FloatArray
    white_coat: BoolArray
    masked: BoolArray
    hypo_prone: BoolArray
    weight_loss: BoolArray
    home_body_comp: BoolArray
    centre: StrArray
    centre_visits_per_year: FloatArray

    def __post_init__(self) -> None:
        for name in self.__slots__:
            array = getattr(self, name)
            array.flags.writeable = False

    def __len__(self) -> int:
        return len(self.id)

    def index_of(self, resident_id: str) -> int:
        """Row index of ``resident_id`` ('R0000042' → 41); raises KeyError if absent."""
        index = (
            int(resident_id[1:]) - 1 if resident_id[:1] == "R" and resident_id[1:].isdigit() else -1
        )
        if not 0 <= index < len(self) or self.id[index] != resident_id:
            raise KeyError(resident_id)
        return index


@dataclass(frozen=True, slots=True)
class Population:
    """The generated world: residents, their readings, and the staff who look after them."""

    seed: int
    start: dt.date  # first local date of the readings (Asia/Seoul)
    end: dt.date  # last local date, inclusive
    residents: Residents
    bp: BloodPressure
    glucose: Glucose
    weight: Weight
    body_comp: BodyComposition
    nurses: tuple[Nurse, ...]
    liaisons: tuple[Liaison, ...]
    contacts: Contacts  # aligned with residents (simulators.population_contacts)


# --- helpers ----------------------------------------------------------------------------------


def _apportion(total: int, weights: npt.NDArray[np.float64]) -> IntArray:
    """Split ``total`` in proportion to ``weights`` by largest remainder (exact when scale is 1)."""
    if weights.sum() <= 0:
        return np.zeros(len(weights), np.int64)
    quota = total * weights / weights.sum()
    counts = np.floor(quota).astype(np.int64)
    short = total - int(counts.sum())
    if short > 0:
        order = np.argsort(-(quota - counts), kind="stable")
        counts[order[:short]] += 1
    result: IntArray = counts
    return result


def _rank_within(groups: IntArray, score: FloatArray) -> IntArray:
    """0-based rank of each element within its group, by descending score (ties by position)."""
    order = np.lexsort((-score, groups))
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order)) - group_start
    return rank


def _top_share_per_cell(cells: IntArray, score: FloatArray, share: FloatArray) -> BoolArray:
    """In each cell, exactly round(share × cell size) members with the highest score."""
    size = np.bincount(cells, minlength=len(share))
    quota = np.rint(share * size).astype(np.int64)
    result: BoolArray = _rank_within(cells, score) < quota[cells]
    return result


def _luhn_check_digit(body: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Luhn check digit for rows of digits (most significant first)."""
    digits = body[:, ::-1].copy()
    doubled = digits[:, 0::2] * 2
    digits[:, 0::2] = np.where(doubled > 9, doubled - 9, doubled)
    total = digits.sum(axis=1)
    check: npt.NDArray[np.int64] = (10 - total % 10) % 10
    return check


def luhn_valid(number: str) -> bool:
    """True when ``number`` is all digits and passes the Luhn check (our card numbers do)."""
    if not number.isdigit() or len(number) < 2:
        return False
    digits = np.array([int(c) for c in number], dtype=np.int64)
    return bool(_luhn_check_digit(digits[None, :-1])[0] == digits[-1])


def _card_numbers(rng: np.random.Generator, n: int) -> StrArray:
    serial = rng.choice(10_000_000, n, replace=False).astype(np.int64)  # unique 7-digit serials
    powers = 10 ** np.arange(6, -1, -1, dtype=np.int64)
    body = np.concatenate(
        [np.tile(np.array([9, 4, 1, 0], np.int64), (n, 1)), (serial[:, None] // powers) % 10],
        axis=1,
    )
    full = np.concatenate([body, _luhn_check_digit(body)[:, None]], axis=1)
    as_int = (full * 10 ** np.arange(11, -1, -1, dtype=np.int64)).sum(axis=1)
    cards: StrArray = as_int.astype("<U12")
    return cards


def _ages_and_sexes(rng: np.random.Generator, n: int) -> tuple[IntArray, BoolArray]:
    shares = np.array([row[2] for row in AGE_STRUCTURE])
    counts = _apportion(n, shares)
    band = np.repeat(np.arange(len(AGE_STRUCTURE)), counts)
    rng.shuffle(band)
    first = np.array([row[0] for row in AGE_STRUCTURE])[band]
    last = np.array([row[1] for row in AGE_STRUCTURE])[band]
    uniform_age = first + (rng.random(n) * (last - first + 1)).astype(np.int64)
    oldest = first + rng.geometric(0.2, n) - 1  # 80+: numbers fall with each year of age
    age = np.where(last >= 99, np.minimum(oldest, last), uniform_age).astype(np.int64)
    female_share = np.array([row[3] for row in AGE_STRUCTURE])[band]
    male = rng.random(n) >= female_share
    return age, male


def _prevalence_band(age: IntArray) -> IntArray:
    lows = np.array([lo for lo, _ in PREVALENCE_BANDS])
    band: IntArray = np.searchsorted(lows, age, side="right") - 1
    return band


def _scaled_counts(n_residents: int) -> tuple[IntArray, IntArray, IntArray]:
    """Residents, basic and near-poor per neighbourhood for a population of ``n_residents``."""
    sizes = np.array([nb.residents for nb in NEIGHBOURHOODS], dtype=np.float64)
    basic = np.array([nb.basic for nb in NEIGHBOURHOODS], dtype=np.float64)
    near = np.array([nb.near_poor for nb in NEIGHBOURHOODS], dtype=np.float64)
    per_nb = _apportion(n_residents, sizes)
    scale = n_residents / TOTAL_RESIDENTS
    per_basic = np.minimum(_apportion(round(basic.sum() * scale), basic), per_nb)
    per_near = np.minimum(_apportion(round(near.sum() * scale), near), per_nb - per_basic)
    return per_nb, per_basic, per_near


def _nurses(rng: np.random.Generator) -> tuple[tuple[Nurse, ...], npt.NDArray[np.float64]]:
    """Nurses over the district table's cumulative population; also the neighbourhood starts."""
    sizes = np.array([nb.residents for nb in NEIGHBOURHOODS], dtype=np.float64)
    starts = np.r_[0.0, np.cumsum(sizes)[:-1]]
    ends = starts + sizes
    names = synthetic_names(rng, N_NURSES)
    nurses = []
    for k in range(N_NURSES):
        lo, hi = k * TOTAL_RESIDENTS / N_NURSES, (k + 1) * TOTAL_RESIDENTS / N_NURSES
        covered = tuple(
            nb.name
            for nb, s, e in zip(NEIGHBOURHOODS, starts, ends, strict=True)
            if s < hi and e > lo
        )
        nurses.append(Nurse(id=f"N{k + 1:02d}", name=str(names[k]), neighbourhoods=covered))
    return tuple(nurses), starts


def _liaisons(
    rng: np.random.Generator, nb_index: IntArray, benefit_rank: IntArray, age: IntArray
) -> tuple[tuple[Liaison, ...], StrArray]:
    """Liaison officers per neighbourhood and each resident's officer ('' when none)."""
    n = len(nb_index)
    assigned = np.full(n, "", dtype="<U6")
    # Priority: basic (2) > near-poor (1) > aged ≥65; older first within a class.
    priority = np.where(benefit_rank > 0, 10.0 * benefit_rank, 0.0) + np.where(age >= 65, 1.0, 0.0)
    candidate = priority > 0
    score = priority + age / 1000.0 + rng.random(n) * 1e-4
    rank = _rank_within(nb_index, np.where(candidate, score, -1.0))
    officers: list[Liaison] = []
    for d, nb in enumerate(NEIGHBOURHOODS):
        in_nb = nb_index == d
        n_candidates = int((candidate & in_nb).sum())
        covered = min(n_candidates, nb.staff * LIAISON_TARGET)
        n_officers = int(np.clip(covered // LIAISON_MIN, 1, nb.staff)) if covered else 0
        covered = min(covered, n_officers * LIAISON_MAX)
        if n_officers == 0:
            continue
        members = np.flatnonzero(in_nb & candidate & (rank < covered))
        members = members[rng.permutation(len(members))]
        officer_of = np.arange(len(members)) % n_officers
        ids = np.array([f"L{nb.number:02d}-{k + 1:02d}" for k in range(n_officers)])
        assigned[members] = ids[officer_of]
        names = synthetic_names(rng, n_officers)
        sizes = np.bincount(officer_of, minlength=n_officers)
        officers.extend(
            Liaison(
                id=str(ids[k]), name=str(names[k]), neighbourhood=nb.name, residents=int(sizes[k])
            )
            for k in range(n_officers)
        )
    return tuple(officers), assigned


# --- the generator ----------------------------------------------------------------------------


def generate(
    seed: int,
    *,
    n_residents: int | None = None,
    days: int = 365,
    end: dt.date | None = None,
) -> Population:
    """Generate the population and ``days`` local dates of readings ending on ``end``.

    ``n_residents`` defaults to the district's 60,149; a smaller number keeps the neighbourhood
    and benefit proportions (largest remainder). ``end`` defaults to today in Asia/Seoul. The
    residents depend only on ``seed`` and ``n_residents``; the readings on those, ``days`` and
    the calendar (weekdays for centre visits, the season for BP): moving ``end`` by whole weeks
    moves every reading by exactly that much. Same arguments, same arrays.
    """
    if n_residents is None:
        n_residents = TOTAL_RESIDENTS
    if n_residents < 1:
        raise ValueError(f"n_residents must be at least 1, not {n_residents}")
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    if end is None:
        end = dt.datetime.now(SEOUL).date()
    start = end - dt.timedelta(days=days - 1)
    n = n_residents

    root = np.random.SeedSequence(seed)
    demo_ss, cond_ss, staff_ss, phys_ss, behave_ss, series_ss, contact_ss = root.spawn(7)
    rng = np.random.default_rng(demo_ss)

    # Neighbourhoods, in table order; residents are numbered in that order.
    per_nb, per_basic, per_near = _scaled_counts(n)
    nb_index = np.repeat(np.arange(len(NEIGHBOURHOODS)), per_nb)
    nb_names = np.array([nb.name for nb in NEIGHBOURHOODS])
    age, male = _ages_and_sexes(rng, n)
    height = np.where(
        male, rng.normal(172.0 - 0.15 * (age - 30), 6.0), rng.normal(159.0 - 0.15 * (age - 30), 5.5)
    )
    height = np.round(np.clip(height, 135.0, 200.0), 1)

    # Benefit: exact counts per neighbourhood, weighted towards older residents.
    weight = np.where(age >= 65, 3.0, np.where(age >= 50, 1.5, 1.0))
    key = rng.random(n) ** (1.0 / weight)  # Efraimidis-Spirakis weighted sampling keys
    benefit_order = _rank_within(nb_index, key)
    benefit_rank = np.where(
        benefit_order < per_basic[nb_index],
        2,
        np.where(benefit_order < (per_basic + per_near)[nb_index], 1, 0),
    )
    benefit = np.array(["general", "near_poor", "basic"], dtype="<U9")[benefit_rank]

    # Conditions: exact counts per (band, sex) cell, chosen by correlated latent risk.
    crng = np.random.default_rng(cond_ss)
    band = _prevalence_band(age)
    cell = band * 2 + (~male).astype(np.int64)
    shared = crng.normal(0.0, 1.0, n) + np.where(benefit_rank > 0, 0.3, 0.0)
    conditions: dict[str, BoolArray] = {}
    for condition in ("obesity", "hypertension", "diabetes", "dyslipidemia"):
        men, women = PREVALENCE[condition]
        share = np.empty(2 * len(PREVALENCE_BANDS))
        share[0::2] = np.array(men) / 100.0
        share[1::2] = np.array(women) / 100.0
        latent = 0.55 * shared + 0.835 * crng.normal(0.0, 1.0, n)
        if condition in ("hypertension", "diabetes"):
            latent += 0.4 * conditions["obesity"]
        conditions[condition] = _top_share_per_cell(cell, latent, share)
    uncontrolled: dict[str, BoolArray] = {}
    for condition, share_unc in UNCONTROLLED_SHARE.items():
        has = conditions[condition]
        latent = crng.normal(0.0, 1.0, n) + 0.02 * (60 - age) + 0.2 * shared
        quota = round(share_unc * int(has.sum()))
        ranked = _rank_within(np.zeros(n, np.int64), np.where(has, latent, -np.inf))
        uncontrolled[condition] = has & (ranked < quota)

    # Staff.
    srng = np.random.default_rng(staff_ss)
    nurses, nb_starts = _nurses(srng)
    within = _rank_within(nb_index, srng.random(n))
    table_sizes = np.array([nb.residents for nb in NEIGHBOURHOODS], dtype=np.float64)
    position = nb_starts[nb_index] + (within + 0.5) / per_nb[nb_index] * table_sizes[nb_index]
    nurse_ids = np.array([nurse.id for nurse in nurses])
    nurse = nurse_ids[np.minimum((position * N_NURSES / TOTAL_RESIDENTS).astype(np.int64), 11)]
    liaisons, liaison = _liaisons(srng, nb_index, benefit_rank, age)
    has_liaison = liaison != ""

    # Physiology (ground truth).
    phys = draw_physiology(
        np.random.default_rng(phys_ss),
        age=age,
        male=male,
        hypertension=conditions["hypertension"],
        uncontrolled_hypertension=uncontrolled["hypertension"],
        diabetes=conditions["diabetes"],
        uncontrolled_diabetes=uncontrolled["diabetes"],
        obesity=conditions["obesity"],
    )

    # Behaviour: consent, devices, centre use.
    brng = np.random.default_rng(behave_ss)
    consent = brng.random(n) < np.where(has_liaison, 0.75, 0.40)
    home_bp = brng.random(n) < np.where(conditions["hypertension"], 0.35, 0.06)
    home_glucose = brng.random(n) < np.where(conditions["diabetes"], 0.55, 0.02)
    home_scale = brng.random(n) < np.where(conditions["obesity"], 0.28, 0.18)
    home_body_comp = home_scale & (brng.random(n) < 0.40)
    any_condition = (
        conditions["hypertension"]
        | conditions["diabetes"]
        | conditions["obesity"]
        | conditions["dyslipidemia"]
    )
    names_of_nb = nb_names[nb_index]
    in_centre_nb = np.isin(names_of_nb, list(_CENTRE_NEIGHBOURHOODS))
    p_centre = (
        0.10 + 0.15 * any_condition + 0.10 * (age >= 65) + 0.15 * has_liaison + 0.10 * in_centre_nb
    )
    centre_user = brng.random(n) < p_centre
    visits_per_year = np.where(centre_user, brng.uniform(4.0, 26.0, n), 0.0)
    centre_lookup = np.array([CENTRE_OF_NEIGHBOURHOOD[nb.name] for nb in NEIGHBOURHOODS])
    centre = np.where(centre_user, centre_lookup[nb_index], "").astype("<U8")
    behaviour = Behaviour(
        home_bp=home_bp,
        home_glucose=home_glucose,
        home_scale=home_scale,
        home_body_comp=home_body_comp,
        centre_visits_per_year=visits_per_year,
    )

    ids = np.char.add("R", np.char.zfill(np.arange(1, n + 1).astype("<U7"), 7))
    office_sys, office_dia = phys.office_sys, phys.office_dia
    home_high = (phys.home_sys >= 135) | (phys.home_dia >= 85)
    office_high = (office_sys >= 140) | (office_dia >= 90)
    residents = Residents(
        id=ids,
        name=synthetic_names(rng, n),
        neighbourhood=names_of_nb,
        age=age,
        sex=np.where(male, "M", "F"),
        height_cm=height,
        benefit=benefit,
        hypertension=conditions["hypertension"],
        diabetes=conditions["diabetes"],
        obesity=conditions["obesity"],
        dyslipidemia=conditions["dyslipidemia"],
        uncontrolled_hypertension=uncontrolled["hypertension"],
        uncontrolled_diabetes=uncontrolled["diabetes"],
        nurse=nurse,
        liaison=liaison,
        consent=consent,
        card_number=_card_numbers(rng, n),
        home_bp=home_bp,
        home_glucose=home_glucose,
        home_scale=home_scale,
        bmi=np.round(phys.bmi, 1),
        true_home_sys=phys.home_sys,
        true_home_dia=phys.home_dia,
        true_office_sys=office_sys,
        true_office_dia=office_dia,
        true_fasting_glucose=phys.fasting_glucose,
        white_coat=office_high & ~home_high,
        masked=~office_high & home_high,
        hypo_prone=phys.hypo_prone,
        weight_loss=phys.weight_loss,
        home_body_comp=home_body_comp,
        centre=centre,
        centre_visits_per_year=visits_per_year,
    )

    bp, glucose, weight_table, body_comp = simulate_series(
        series_ss,
        phys,
        behaviour,
        age=age,
        male=male,
        height_cm=height,
        diabetes=conditions["diabetes"],
        start=start,
        days=days,
    )
    return Population(
        seed=seed,
        start=start,
        end=end,
        residents=residents,
        bp=bp,
        glucose=glucose,
        weight=weight_table,
        body_comp=body_comp,
        nurses=nurses,
        liaisons=liaisons,
        contacts=synthetic_contacts(
            np.random.default_rng(contact_ss),
            neighbourhood=names_of_nb,
            age=age,
            benefit=benefit,
        ),
    )
