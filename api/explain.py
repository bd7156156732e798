"""Plain-language explanations of one reading for the station screen (resident-facing).

Pure. Follows clinical-rules.md: a single reading never labels anyone hypertensive or
diabetic (§2 "never flag from one reading": the resident is asked to rest and measure again,
or to follow the 7-day home protocol); only the single-reading emergencies of §2 (BP >180 or
>120, glucose <54 / <70 / ≥300 / ≥400) tell the resident to get help now. Bands shown are the
Korean ones (KSH 2018/2022 BP categories, §3.1 and §11 #4; KSSO 2022 BMI, §5.1; ADA/KDA
glucose, §4). The risk engine, not this module, decides flags for staff.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

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
    meaning: str  # one plain sentence (Korean first, then English)
    next_step: str  # what to do now


def _fmt(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def blood_pressure(systolic: float, diastolic: float) -> Explanation:
    value = f"{_fmt(systolic)}/{_fmt(diastolic)}"
    title = "혈압 / Blood pressure"
    unit = "mmHg"
    if systolic > 180 or diastolic > 120:
        return Explanation(
            title,
            value,
            unit,
            Level.CRITICAL,
            "혈압이 매우 높습니다. / Your blood pressure is very high.",
            "5분 동안 앉아 쉬신 뒤 다시 재 주세요. 가슴 통증, 숨참, 마비, 심한 두통이 있으면 "
            "바로 직원에게 알리거나 119에 전화하세요. / Sit and rest 5 minutes, then measure "
            "again. If you have chest pain, breathlessness, weakness or a severe headache, tell "
            "staff now or call 119.",
        )
    if systolic >= 180 or diastolic >= 110:
        return Explanation(
            title,
            value,
            unit,
            Level.HIGH,
            "혈압이 많이 높습니다. / Your blood pressure is high.",
            "5분 쉬고 다시 재 주세요. 다시 재도 높으면 센터 간호사에게 오늘 알려 주세요. "
            "/ Rest 5 minutes and measure again; if it stays high, tell the centre nurse today.",
        )
    if systolic < 80:
        return Explanation(
            title,
            value,
            unit,
            Level.HIGH,
            "혈압이 많이 낮습니다. / Your blood pressure is very low.",
            "앉아서 쉬시고 바로 직원에게 알려 주세요. / Sit down and tell staff now.",
        )
    if systolic < 90 or diastolic < 60:
        return Explanation(
            title,
            value,
            unit,
            Level.WATCH,
            "혈압이 낮은 편입니다. / Your blood pressure is on the low side.",
            "어지럽거나 기운이 없으면 직원에게 알려 주세요. / If you feel dizzy or weak, "
            "tell staff.",
        )
    if systolic >= 140 or diastolic >= 90:
        return Explanation(
            title,
            value,
            unit,
            Level.HIGH,
            "이번 측정은 고혈압 범위입니다. 한 번의 측정으로 판단하지 않습니다. "
            "/ This reading is in the high range; one reading does not decide anything.",
            "5분 쉬고 한 번 더 재 주세요. 집에서 1주일 동안 아침·저녁으로 재면 정확합니다. "
            "/ Rest 5 minutes and measure once more. Measuring at home morning and evening "
            "for a week gives a reliable picture.",
        )
    if systolic >= 130 or diastolic >= 80:
        return Explanation(
            title,
            value,
            unit,
            Level.WATCH,
            "고혈압 전단계 범위입니다. / In the pre-hypertension range.",
            "싱겁게 드시고 꾸준히 걸으세요. 다음에 오시면 또 재 주세요. / Eat less salt, keep "
            "walking, and measure again on your next visit.",
        )
    if systolic >= 120:
        return Explanation(
            title,
            value,
            unit,
            Level.WATCH,
            "주의혈압 범위입니다. / In the elevated range.",
            "생활습관을 지키시고 다음에도 재 주세요. / Keep up healthy habits and measure "
            "again next time.",
        )
    return Explanation(
        title,
        value,
        unit,
        Level.OK,
        "정상 혈압입니다. / Normal blood pressure.",
        "지금처럼 지내세요. / Keep it up.",
    )


def glucose(value: float, unit: str | None, *, fasting: bool | None = None) -> Explanation:
    mgdl = value * MMOL_TO_MGDL if unit == "mmol/L" else value
    shown, shown_unit = _fmt(value), unit or "mg/dL"
    title = "혈당 / Blood sugar"
    if mgdl < 54:
        return Explanation(
            title,
            shown,
            shown_unit,
            Level.CRITICAL,
            "혈당이 매우 낮습니다. / Your blood sugar is very low.",
            "지금 주스나 사탕(당 15~20g)을 드시고 직원에게 알려 주세요. 15분 뒤 다시 재요. "
            "/ Take juice or sweets (15-20 g sugar) now and tell staff; measure again in 15 min.",
        )
    if mgdl < 70:
        return Explanation(
            title,
            shown,
            shown_unit,
            Level.HIGH,
            "혈당이 낮습니다. / Your blood sugar is low.",
            "주스나 사탕(당 15~20g)을 드시고 15분 뒤 다시 재 주세요. / Take 15-20 g of sugar "
            "and measure again in 15 minutes.",
        )
    if mgdl >= 400:
        return Explanation(
            title,
            shown,
            shown_unit,
            Level.CRITICAL,
            "혈당이 매우 높습니다. / Your blood sugar is very high.",
            "바로 직원에게 알려 주세요. 토하거나, 숨이 차거나, 정신이 흐리면 119에 전화하세요. "
            "/ Tell staff now; call 119 if you vomit, are breathless or confused.",
        )
    if mgdl >= 300:
        return Explanation(
            title,
            shown,
            shown_unit,
            Level.HIGH,
            "혈당이 많이 높습니다. / Your blood sugar is high.",
            "물을 드시고 오늘 센터 간호사와 상의해 주세요. / Drink water and talk to the centre "
            "nurse today.",
        )
    high = 126 if fasting else 200
    if mgdl >= high:
        return Explanation(
            title,
            shown,
            shown_unit,
            Level.HIGH,
            "이번 측정은 높은 편입니다. 한 번으로는 판단하지 않습니다. / This reading is high; "
            "one reading does not decide anything.",
            "다른 날 아침 공복(8시간 이상 금식)에 다시 재 주세요. / Measure again on another "
            "day, fasting (8 hours without food).",
        )
    if fasting and mgdl >= 100:
        return Explanation(
            title,
            shown,
            shown_unit,
            Level.WATCH,
            "공복혈당이 조금 높은 편입니다. / Fasting sugar is a little high.",
            "식사 조절과 운동이 도움이 됩니다. 간호사와 상의해 보세요. / Diet and exercise help; "
            "ask the nurse.",
        )
    return Explanation(
        title,
        shown,
        shown_unit,
        Level.OK,
        "혈당이 목표 범위에 있습니다. / Blood sugar is in range.",
        "지금처럼 지내세요. / Keep it up.",
    )


def bmi_band(bmi: float) -> tuple[Level, str]:
    """KSSO 2022 (WHO Asia-Pacific) BMI categories."""
    if bmi < 18.5:
        return Level.WATCH, "저체중 / underweight"
    if bmi < 23:
        return Level.OK, "정상 체중 / normal weight"
    if bmi < 25:
        return Level.WATCH, "비만 전단계 / pre-obese"
    return Level.HIGH, "비만 / obese"


def weight(kg: float, height_cm: float | None) -> Explanation:
    title = "체중 / Weight"
    if height_cm:
        bmi = round(kg / (height_cm / 100) ** 2, 1)
        level, band = bmi_band(bmi)
        return Explanation(
            title,
            _fmt(kg),
            "kg",
            level,
            f"체질량지수(BMI) {bmi:.1f}: {band}",
            "고르게 드시고 꾸준히 움직이세요. 궁금한 점은 직원에게 물어보세요. "
            "/ Eat a balanced diet, keep moving, and ask staff if unsure.",
        )
    return Explanation(
        title,
        _fmt(kg),
        "kg",
        Level.INFO,
        "체중을 기록했습니다. / Weight recorded.",
        "키를 알려 주시면 체질량지수를 계산해 드립니다. / Tell staff your height for a BMI.",
    )


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
    if code == PULSE:
        return Explanation(
            "맥박 / Pulse",
            _fmt(value),
            "/분 (/min)",
            Level.INFO,
            "맥박을 기록했습니다. / Pulse recorded.",
            "",
        )
    if code == BODY_FAT:
        return Explanation(
            "체지방률 / Body fat",
            _fmt(value),
            "%",
            Level.INFO,
            "체성분을 기록했습니다. 재활운동사가 함께 봅니다. / Recorded; the rehabilitation "
            "therapist will review it with you.",
            "",
        )
    if code == MUSCLE_MASS:
        return Explanation(
            "근육량 / Muscle mass",
            _fmt(value),
            "kg",
            Level.INFO,
            "근육량을 기록했습니다. / Muscle mass recorded.",
            "",
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


REMEASURE = Explanation(
    "",
    "",
    "",
    Level.INFO,
    "이번 측정은 올바르게 되지 않았습니다. / This measurement did not work properly.",
    "바른 자세로 앉아 5분 쉬신 뒤 다시 재 주세요. / Sit upright, rest 5 minutes and measure again.",
)


def _critical_step(rule: str) -> str:
    """§0 for the resident at once: what to do now (rest and re-measure; 119 with symptoms)."""
    if rule.startswith("GLU-HYPO"):
        return (
            "지금 주스나 사탕(당 15~20g)을 드시고 15분 뒤 다시 재 주세요. 어지럽거나 정신이 흐리면 "
            "119에 전화하세요. / Take juice or sweets (15-20 g sugar) now and measure again in "
            "15 minutes. If you feel faint or confused, call 119."
        )
    if rule.startswith("GLU-"):
        return (
            "물을 드시고 1~2시간 뒤 다시 재 주세요. 토하거나, 숨이 차거나, 정신이 흐리면 바로 "
            "119에 전화하세요. / Drink water and measure again in 1-2 hours. If you vomit, are "
            "breathless or confused, call 119 now."
        )
    if rule.startswith("BP-LOW"):
        return (
            "앉거나 누워서 쉬세요. 어지럽거나 쓰러질 것 같으면 바로 직원에게 알리거나 119에 "
            "전화하세요. / Sit or lie down and rest. If you feel faint, tell staff now or call 119."
        )
    return (
        "5분 동안 앉아 쉬신 뒤 다시 재 주세요. 가슴 통증, 숨참, 마비, 심한 두통이 있으면 바로 "
        "직원에게 알리거나 119에 전화하세요. / Sit and rest 5 minutes, then measure again. If you "
        "have chest pain, breathlessness, weakness or a severe headache, tell staff now or call "
        "119."
    )


def _who_was_told(told_after: datetime | None) -> str:
    if told_after is None:
        return (
            " 담당 간호사에게 지금 알렸습니다. 곧 연락드립니다. / Your nurse has been told and "
            "will call you."
        )
    when = told_after.astimezone(SEOUL).strftime("%m/%d %H:%M")
    return (
        f" 간호사는 {when} 이후에 연락드립니다. 그 전에 몸이 안 좋으면 119에 전화하세요. / "
        f"Your nurse will call after {when}; if you feel unwell before then, call 119."
    )


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
        meaning = (
            ex.meaning
            if ex.level is Level.CRITICAL
            else ("지금 확인이 필요한 수치입니다. / This reading needs attention now.")
        )
        return replace(
            ex,
            level=Level.CRITICAL,
            meaning=meaning,
            next_step=_critical_step(flag.rule) + _who_was_told(flag.nurse_told_after),
        )
    if evaluated and ex.level is Level.CRITICAL:
        return replace(
            ex,
            level=Level.HIGH,
            next_step=(
                "5분 쉬고 다시 재 주세요. 몸이 안 좋으면 직원에게 알리거나 119에 전화하세요. / "
                "Rest 5 minutes and measure again; if you feel unwell, tell staff or call 119."
            ),
        )
    return ex
