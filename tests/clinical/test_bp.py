"""Blood-pressure rules (clinical-rules.md §3), with the boundaries the rule table writes."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from clinical.bp import bp_stage
from tests.clinical.cases import (
    NOW,
    ago,
    bp,
    evaluate,
    evidence,
    home_week,
    profile,
    raised,
    reading,
)

M = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("sys", "dia", "expected"),
    [
        (180, 120, "BP-GRADE3"),  # crisis is > 180 or > 120; grade 3 is ≥ 180 or ≥ 110
        (181, 121, "BP-CRISIS"),
        (181, 80, "BP-CRISIS"),
        (150, 121, "BP-CRISIS"),
        (179, 110, "BP-GRADE3"),
        (179, 109, None),
        (180, 90, "BP-GRADE3"),
    ],
)
def test_crisis_and_grade3(sys, dia, expected):
    result = raised(evaluate([bp(ago(hours=1), sys, dia)]))
    found = {r for r in ("BP-CRISIS", "BP-GRADE3") if r in result}
    assert found == ({expected} if expected else set())
    if expected == "BP-CRISIS":
        assert result["BP-CRISIS"] == "critical"
    if expected == "BP-GRADE3":
        assert result["BP-GRADE3"] == "urgent"


@pytest.mark.parametrize("position", ["sitting", "standing", "supine"])
@pytest.mark.parametrize("setting", ["home", "centre", "visit"])
def test_crisis_from_any_setting_or_position(position, setting):
    result = evaluate([bp(ago(hours=1), 190, 100, position=position, setting=setting)])
    assert raised(result)["BP-CRISIS"] == "critical"


def test_a_normal_repeat_does_not_cancel_a_crisis():
    result = evaluate([bp(ago(hours=2), 190, 100), bp(ago(hours=2) + 5 * M, 130, 80)])
    assert "BP-CRISIS" in raised(result)


@pytest.mark.parametrize(
    ("minutes_since", "repeat_after", "expected"),
    [
        (29, None, False),  # pending: 30 minutes have not passed
        (31, None, True),
        (120, 10, False),  # a valid BP followed within 30 min
        (120, 31, True),  # the repeat came too late to prevent it (it then clears the flag)
    ],
)
def test_unreliable_high(minutes_since, repeat_after, expected):
    t0 = NOW - minutes_since * M
    readings = [bp(t0, 195, 100, device_status=["cuff_too_loose"])]
    if repeat_after is not None:
        readings.append(bp(t0 + repeat_after * M, 150, 90))
    assert ("BP-UNRELIABLE-HIGH" in raised(evaluate(readings))) is expected


def test_unreliable_high_needs_crisis_thresholds():
    result = evaluate([bp(ago(hours=2), 180, 120, device_status=["body_movement"])])
    assert "BP-UNRELIABLE-HIGH" not in raised(result)


@pytest.mark.parametrize(
    ("sys", "position", "expected"),
    [(79, "sitting", True), (80, "sitting", False), (79, "supine", True), (75, "standing", False)],
)
def test_low_severe(sys, position, expected):
    result = raised(evaluate([bp(ago(hours=1), sys, 50, position=position)]))
    assert ("BP-LOW-SEVERE" in result) is expected
    if expected:
        assert result["BP-LOW-SEVERE"] == "urgent"


@pytest.mark.parametrize(
    ("sys", "dia", "symptom", "offset_min", "expected"),
    [
        (88, 58, "dizziness", 30, True),
        (88, 58, "dizziness", -45, True),  # the symptom may come first (clarification 5)
        (88, 58, "dizziness", 60, True),
        (88, 58, "dizziness", 61, False),
        (90, 60, "dizziness", 10, False),  # < 90/60 is hypotension; 90/60 is not
        (95, 59, "syncope", 10, True),
        (89, 70, "blurred_vision", 10, True),
        (88, 58, "nausea", 10, False),  # not a hypotension symptom
    ],
)
def test_low_symptomatic(sys, dia, symptom, offset_min, expected):
    t0 = ago(hours=3)
    result = raised(
        evaluate([bp(t0, sys, dia), reading(t0 + offset_min * M, "symptom", symptoms=[symptom])])
    )
    assert ("BP-LOW-SYMPTOMATIC" in result) is expected


def test_low_symptomatic_with_a_fall():
    t0 = ago(hours=3)
    result = raised(evaluate([bp(t0, 85, 55), reading(t0 + 20 * M, "fall", injury=False)]))
    assert result["BP-LOW-SYMPTOMATIC"] == "urgent"


@pytest.mark.parametrize(
    ("days", "symptom", "expected"),
    [
        ((1, 3), False, True),  # SBP < 90 on ≥ 2 different dates in 7 days
        ((1, 1), False, False),  # same date twice
        ((1, 8), False, False),  # one of them outside the 7 days
        ((1, 3), True, False),  # symptomatic: BP-LOW-SYMPTOMATIC, not "no symptoms"
    ],
)
def test_low_sustained(days, symptom, expected):
    readings = [bp(ago(days=d, hours=2 if i else 1), 86, 62) for i, d in enumerate(days)]
    if symptom:
        readings.append(
            reading(ago(days=days[0], hours=1) + 10 * M, "symptom", symptoms=["dizziness"])
        )
    result = raised(evaluate(readings))
    assert ("BP-LOW-SUSTAINED" in result) is expected


@pytest.mark.parametrize(
    ("base", "standing", "minutes", "after_min", "symptom", "expected"),
    [
        ((130, 80), (110, 78), 2, 5, False, "routine"),  # SBP fall 20
        ((130, 80), (111, 78), 2, 5, False, None),  # 19
        ((130, 80), (125, 70), 2, 5, False, "routine"),  # DBP fall 10
        ((130, 80), (125, 71), 2, 5, False, None),
        ((95, 70), (89, 66), 2, 5, False, "routine"),  # standing SBP < 90
        ((130, 80), (105, 70), 4, 5, False, None),  # > 3 min after standing
        ((130, 80), (105, 70), 2, 11, False, None),  # baseline > 10 min before
        ((130, 80), (105, 70), 2, 10, False, "routine"),
        ((130, 80), (105, 70), 2, 5, True, "urgent"),  # symptoms within 15 min
    ],
)
def test_orthostatic(base, standing, minutes, after_min, symptom, expected):
    t0 = ago(hours=4)
    readings = [
        bp(t0, *base, setting="visit"),
        bp(
            t0 + after_min * M,
            *standing,
            setting="visit",
            position="standing",
            minutes_after_standing=minutes,
        ),
    ]
    if symptom:
        readings.append(reading(t0 + (after_min + 3) * M, "symptom", symptoms=["dizziness"]))
    result = evaluate(readings)
    assert raised(result).get("BP-ORTHO") == expected
    if expected:
        (f,) = [f for f in result.findings if f.rule == "BP-ORTHO"]
        assert {r.value for r in f.recipients} == {"nurse", "rehab"}


# --------------------------------------------------------------------------- home mean


@pytest.mark.parametrize(
    ("sys", "dia", "expected"),
    [(136, 80, True), (135, 80, True), (134, 84, False), (130, 85, True), (134.9, 84.9, False)],
)
def test_home_htn_threshold(sys, dia, expected):
    # 7 dates × 2 readings; the first date is discarded → 12 readings on 6 dates: valid
    result = raised(evaluate(home_week(sys, dia)))
    assert ("BP-HOME-HTN" in result) is expected
    if expected:
        assert result["BP-HOME-HTN"] == "routine"


def test_home_mean_needs_twelve_readings():
    # 6 dates after the discarded first day, 2 readings each = 12; drop one → 11: no mean
    week = home_week(150, 95)
    assert "BP-HOME-HTN" in raised(evaluate(week))
    assert "BP-HOME-HTN" not in raised(evaluate(week[:-1]))


def test_home_mean_needs_three_dates():
    # 3 dates × 7, the first discarded: 14 readings on only 2 dates → no valid mean
    assert "BP-HOME-HTN" not in raised(evaluate(home_week(150, 95, dates=3, per_day=7)))
    # 4 dates × 4, the first discarded: 12 readings on 3 dates → valid
    assert "BP-HOME-HTN" in raised(evaluate(home_week(150, 95, dates=4, per_day=4)))


def test_first_day_of_an_episode_is_discarded():
    # day 1 at 170/95 would lift the mean of 133/80 to 138.3 if it counted (ESH "discard day 1")
    result = raised(evaluate(home_week(133, 80, first_day=(170, 95))))
    assert "BP-HOME-HTN" not in result


def test_new_episode_after_a_gap_discards_its_first_day_again():
    # an old week, a 20-day gap, then a new week: the new episode's first date is discarded
    old = home_week(120, 75, end_days_ago=30)
    new = home_week(133, 80, first_day=(175, 100))
    assert "BP-HOME-HTN" not in raised(evaluate(old + new))


def test_home_mean_window_is_seven_dates_ending_on_the_latest_reading():
    # high readings 8-12 days ago fall outside the 7 dates that end on the latest reading
    old_high = [bp(ago(days=d, hours=12), 170, 100) for d in range(8, 13)]
    week = home_week(128, 78)
    assert "BP-HOME-HTN" not in raised(evaluate(old_high + week))


def test_home_mean_expires_fourteen_days_after_the_latest_reading():
    week = home_week(150, 95, end_days_ago=20)
    latest = max(datetime.fromisoformat(r["t"]) for r in week)
    at_14_days = latest + timedelta(days=14)
    assert "BP-HOME-HTN" in raised(evaluate(week, now=at_14_days))
    assert "BP-HOME-HTN" not in raised(evaluate(week, now=at_14_days + M))


def test_home_mean_evidence_is_the_readings_averaged():
    week = home_week(150, 95)
    result = evaluate(week)
    assert evidence(result, "BP-HOME-HTN") == set(range(2, 14))  # not the discarded day


# --------------------------------------------------------------------------- office mean


def _office(day: float, *values: tuple[float, float], setting: str = "centre") -> list[dict]:
    t0 = ago(days=day, hours=8)
    return [bp(t0 + 5 * i * M, s, d, setting=setting) for i, (s, d) in enumerate(values)]


def test_office_htn_from_two_occasions_on_two_dates():
    result = raised(evaluate(_office(20, (142, 88)) + _office(5, (140, 86), setting="visit")))
    assert result["BP-OFFICE-HTN"] == "routine"


def test_office_mean_below_threshold():
    result = raised(evaluate(_office(20, (141, 88)) + _office(5, (138, 86))))
    assert "BP-OFFICE-HTN" not in result  # mean 139.5/87


def test_office_needs_two_dates():
    result = raised(
        evaluate([*_office(5, (160, 100)), bp(ago(days=5, hours=5), 160, 100, setting="centre")])
    )
    assert "BP-OFFICE-HTN" not in result


def test_office_occasion_with_three_readings_discards_the_first():
    # occasion 1: 170, 138, 138 → 138 (first discarded); occasion 2: 141 → mean 139.5: no flag.
    # Averaging all three would give 148.7 and a mean of 144.8.
    readings = _office(20, (170, 80), (138, 80), (138, 80)) + _office(5, (141, 80))
    assert "BP-OFFICE-HTN" not in raised(evaluate(readings))


def test_office_occasion_of_two_readings_averages_both():
    readings = _office(20, (170, 80), (138, 80)) + _office(5, (141, 80))
    assert "BP-OFFICE-HTN" in raised(evaluate(readings))  # (154 + 141) / 2 = 147.5


def test_office_window_is_ninety_days():
    readings = _office(91, (160, 100)) + _office(5, (160, 100))
    assert "BP-OFFICE-HTN" not in raised(evaluate(readings))


def test_whitecoat():
    readings = _office(20, (148, 92)) + _office(10, (146, 90)) + home_week(128, 78)
    result = raised(evaluate(readings))
    assert result["BP-WHITECOAT"] == "routine"
    assert "BP-HOME-HTN" not in result
    assert "BP-OFFICE-HTN" not in result  # a valid home mean governs


def test_masked():
    readings = _office(20, (130, 80)) + _office(10, (132, 80)) + home_week(140, 84)
    result = raised(evaluate(readings))
    assert result["BP-MASKED"] == "routine"
    assert result["BP-HOME-HTN"] == "routine"  # raised together


def test_isolated_systolic():
    result = raised(evaluate(home_week(142, 78)))
    assert result["BP-ISH"] == "info"
    assert "BP-ISH" not in raised(evaluate(home_week(142, 86)))


@pytest.mark.parametrize(
    ("prof", "expected"),
    [
        (profile(diagnoses=["hypertension", "diabetes_t2"], age=60), True),  # KSH high risk
        (profile(diagnoses=["hypertension", "heart_failure"], age=60), True),
        (profile(diagnoses=["hypertension"], age=40), False),  # target < 135/85 at home
    ],
)
def test_above_target(prof, expected):
    result = raised(evaluate(home_week(132, 78), prof))
    assert ("BP-ABOVE-TARGET" in result) is expected
    assert "BP-HOME-HTN" not in result


def test_irregular_pulse():
    three = [bp(ago(days=d), 128, 80, device_status=["irregular_pulse"]) for d in (1, 5, 13)]
    assert raised(evaluate(three))["BP-IRREG-PULSE"] == "routine"
    assert "BP-IRREG-PULSE" not in raised(evaluate(three[:2]))
    old = [*three[:2], bp(ago(days=15), 128, 80, device_status=["irregular_pulse"])]
    assert "BP-IRREG-PULSE" not in raised(evaluate(old))


@pytest.mark.parametrize(
    ("sys", "dia", "setting", "expected"),
    [
        (140, 85, "home", True),
        (139, 89, "home", False),
        (130, 90, "centre", True),
        (150, 95, "visit", False),
    ],
)
def test_recheck_prompt(sys, dia, setting, expected):
    result = evaluate([bp(ago(hours=1), sys, dia, setting=setting)])
    assert ("BP-RECHECK" in raised(result)) is expected
    if expected:
        (f,) = [f for f in result.findings if f.rule == "BP-RECHECK"]
        assert [r.value for r in f.recipients] == ["resident"]
        # one high home reading is a recheck, never a hypertension flag (§2)
        assert not {"BP-HOME-HTN", "BP-OFFICE-HTN"} & set(raised(result))


def test_no_recheck_once_a_mean_confirms_hypertension():
    week = home_week(150, 95)
    later = bp(NOW - 10 * M, 150, 95)
    result = evaluate([*week, later])
    assert len(week) not in evidence(result, "BP-RECHECK")


@pytest.mark.parametrize(
    ("sys", "dia", "stage"),
    # KSH display classes (§3.1): by the higher of the two categories
    [
        (119, 79, 0),
        (120, 79, 1),
        (129, 79, 1),
        (130, 70, 2),
        (120, 80, 2),
        (140, 70, 3),
        (125, 90, 3),
        (159, 99, 3),
        (160, 70, 4),
        (110, 100, 4),
    ],
)
def test_ksh_stage(sys, dia, stage):
    assert int(bp_stage(sys, dia)) == stage
