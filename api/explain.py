"""Plain-language explanations of one reading for the station screen (resident-facing).

Pure. This module decides which explanation applies; the sentences live in the glossary
(:data:`api.glossary.EXPLAIN`), Korean first. Follows clinical-rules.md: a single reading
never labels anyone hypertensive or diabetic (§2 "never flag from one reading": the resident
is asked to rest and measure again, or to follow the 7-day home protocol); only the
single-reading emergencies of §2 (BP >180 or >120, glucose <54 / <70 / ≥300 / ≥400) tell the
resident to get help now. Bands shown are the Korean ones (KSH 2018/2022 BP categories, §3.1
and §11 #4; KSSO 2022 BMI, §5.1; ADA/KDA glucose, §4). The risk engine, not this module,
decides flags for staff.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from api.glossary import EXPLAIN, Said, explained

BP_PANEL = "85354-9"
SYSTOLIC = "8480-6"
DIASTOLIC = "8462-4"
PULSE = "8867-4"
GLUCOSE_CODES = frozenset({"41653-7", "2339-0", "14743-9", "15074-8", "41604-0", "14770-2"})
WEIGHT = "29463-7"
BMI = "39156-5"
BODY_FAT = "41982-0"
MUSCLE_MASS = "73964-9"
MMOL_TO_MGDL = 18.016  # clinical-rules.md §1 (display conversion only)
SEOUL = ZoneInfo("Asia/Seoul")


class Level(StrEnum):
    OK = "ok"
    WATCH = "watch"
    HIGH = "high"
    CRITICAL = "critical"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Explanation:
    title: str  # what was measured
    value: str  # the number as shown, large
    unit: str
    level: Level
    meaning: str  # one plain sentence, "Korean / English" (from api.glossary.EXPLAIN)
    next_step: str  # what to do now, the same way


def _fmt(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _explanation(title: str, value: str, unit: str, level: Level, key: str) -> Explanation:
    """The explanation whose sentences are the glossary's ``key`` and ``key.next``."""
    return Explanation(
        explained(title), value, unit, level, explained(key), explained(f"{key}.next")
    )


def blood_pressure(systolic: float, diastolic: float) -> Explanation:
    value = f"{_fmt(systolic)}/{_fmt(diastolic)}"
    if systolic > 180 or diastolic > 120:
        level, key = Level.CRITICAL, "bp.crisis"
    elif systolic >= 180 or diastolic >= 110:
        level, key = Level.HIGH, "bp.very-high"
    elif systolic < 80:
        level, key = Level.HIGH, "bp.very-low"
    elif systolic < 90 or diastolic < 60:
        level, key = Level.WATCH, "bp.low"
    elif systolic >= 140 or diastolic >= 90:
        level, key = Level.HIGH, "bp.high"
    elif systolic >= 130 or diastolic >= 80:
        level, key = Level.WATCH, "bp.pre"
    elif systolic >= 120:
        level, key = Level.WATCH, "bp.elevated"
    else:
        level, key = Level.OK, "bp.normal"
    return _explanation("bp", value, "mmHg", level, key)


def glucose(value: float, unit: str | None, *, fasting: bool | None = None) -> Explanation:
    mgdl = value * MMOL_TO_MGDL if unit == "mmol/L" else value
    shown, shown_unit = _fmt(value), unit or "mg/dL"
    high = 126 if fasting else 200
    if mgdl < 54:
        level, key = Level.CRITICAL, "glucose.very-low"
    elif mgdl < 70:
        level, key = Level.HIGH, "glucose.low"
    elif mgdl >= 400:
        level, key = Level.CRITICAL, "glucose.very-high"
    elif mgdl >= 300:
        level, key = Level.HIGH, "glucose.high"
    elif mgdl >= high:
        level, key = Level.HIGH, "glucose.high-once"
    elif fasting and mgdl >= 100:
        level, key = Level.WATCH, "glucose.fasting-high"
    else:
        level, key = Level.OK, "glucose.ok"
    return _explanation("glucose", shown, shown_unit, level, key)


def bmi_band(bmi: float) -> tuple[Level, str]:
    """KSSO 2022 (WHO Asia-Pacific) BMI categories: the level and the glossary key."""
    if bmi < 18.5:
        return Level.WATCH, "bmi.underweight"
    if bmi < 23:
        return Level.OK, "bmi.normal"
    if bmi < 25:
        return Level.WATCH, "bmi.pre-obese"
    return Level.HIGH, "bmi.obese"


def _bmi_sentence(bmi: str, band: Said) -> Said:
    """The BMI sentence with the band's Korean in the Korean and its English in the English."""
    said = EXPLAIN["weight.bmi"]
    return Said(said.ko.format(bmi=bmi, band=band.ko), said.en.format(bmi=bmi, band=band.en))


def weight(kg: float, height_cm: float | None) -> Explanation:
    if height_cm:
        bmi = round(kg / (height_cm / 100) ** 2, 1)
        level, band = bmi_band(bmi)
        return Explanation(
            explained("weight"),
            _fmt(kg),
            "kg",
            level,
            str(_bmi_sentence(f"{bmi:.1f}", EXPLAIN[band])),
            explained("weight.bmi.next"),
        )
    return _explanation("weight", _fmt(kg), "kg", Level.INFO, "weight.recorded")


def explain(
    code: str,
    value: float | None,
    unit: str | None,
    components: dict[str, float],
    *,
    height_cm: float | None = None,
) -> Explanation | None:
    """The explanation for one stored reading, or None when the station shows nothing for it."""
    if code == BP_PANEL and SYSTOLIC in components and DIASTOLIC in components:
        return blood_pressure(components[SYSTOLIC], components[DIASTOLIC])
    if value is None:
        return None
    if code in GLUCOSE_CODES:
        return glucose(value, unit, fasting=True if code in ("41604-0", "14770-2") else None)
    if code == WEIGHT:
        return weight(value, height_cm)
    recorded = {
        PULSE: ("pulse", "회/분"),
        BODY_FAT: ("body-fat", "%"),
        MUSCLE_MASS: ("muscle", "kg"),
    }
    if code in recorded:
        key, shown_unit = recorded[code]
        return Explanation(
            explained(key), _fmt(value), shown_unit, Level.INFO, explained(f"{key}.recorded"), ""
        )
    return None


# --- the flag the risk engine raised (issue 11.3c) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class RaisedFlag:
    """A flag (or resident prompt) the risk engine raised from one reading, as the station
    needs it: which rule, how severe, and until when the nurse's notification waits (None:
    she was told at once; a time: nobody is on duty until then, §0)."""

    rule: str
    severity: str
    nurse_told_after: datetime | None = None


REMEASURE = Explanation("", "", "", Level.INFO, explained("remeasure"), explained("remeasure.next"))


def _critical_step(rule: str) -> Said:
    """§0 for the resident at once: what to do now (rest and re-measure; 119 with symptoms)."""
    if rule.startswith("GLU-HYPO"):
        return EXPLAIN["critical.glucose-low.next"]
    if rule.startswith("GLU-"):
        return EXPLAIN["critical.glucose-high.next"]
    if rule.startswith("BP-LOW"):
        return EXPLAIN["critical.bp-low.next"]
    return EXPLAIN["critical.next"]


def _who_was_told(told_after: datetime | None) -> Said:
    if told_after is None:
        return EXPLAIN["told.now"]
    when = told_after.astimezone(SEOUL).strftime("%m/%d %H:%M")
    return EXPLAIN["told.later"].format(when=when)


def with_flags(ex: Explanation, flags: Sequence[RaisedFlag], *, evaluated: bool) -> Explanation:
    """The screen's words made consistent with what the risk engine raised from this reading.

    Until the engine has looked at the reading (``evaluated`` False) the value's own band
    applies. Then the engine decides: a rejected measurement asks to measure again (never an
    emergency from an invalid reading); a critical flag shows the emergency instruction of §0
    and who was told, and when; without a critical flag the screen never shows one.
    """
    if any(f.rule == "Q-REMEASURE" for f in flags):
        return replace(
            ex, level=REMEASURE.level, meaning=REMEASURE.meaning, next_step=REMEASURE.next_step
        )
    critical = [f for f in flags if f.severity == "critical"]
    if critical:
        flag = critical[0]
        meaning = ex.meaning if ex.level is Level.CRITICAL else explained("attention-now")
        # one sentence pair: the Korean of both, then the English of both
        step = _critical_step(flag.rule) + _who_was_told(flag.nurse_told_after)
        return replace(ex, level=Level.CRITICAL, meaning=meaning, next_step=str(step))
    if evaluated and ex.level is Level.CRITICAL:
        return replace(ex, level=Level.HIGH, next_step=explained("evaluated.high.next"))
    return ex
