"""Metabolic syndrome (§6), screening, frailty and falls (§7), adherence (§8)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.clinical.cases import NOW, ago, bp, evaluate, glu, profile, raised, reading

H = timedelta(hours=1)


def waist(cm: float, days: float = 5) -> dict:
    return reading(ago(days=days), "waist", cm=cm)


def lipids(tg: float | None, hdl: float | None, days: float = 20) -> dict:
    return reading(ago(days=days), "lipid", tg=tg, hdl=hdl, unit="mg/dL")


def office(sys: float, dia: float, days: float = 7) -> dict:
    return bp(ago(days=days), sys, dia, setting="centre")


@pytest.mark.parametrize(
    ("readings", "prof", "expected"),
    [
        # three of five present → MS-METSYN
        ([waist(90), lipids(150, 39)], profile(age=50), {"MS-METSYN"}),
        # HDL < 50 for women, waist ≥ 85
        (
            [waist(85), lipids(100, 49)],
            profile(age=50, sex="F"),
            {"MS-RISK", "MS-INCOMPLETE"},
        ),  # 2 present, BP and FPG unknown
        (
            [waist(85), lipids(100, 49), office(120, 70), glu(ago(days=3), 95, "fasting")],
            profile(age=50, sex="F"),
            {"MS-RISK"},
        ),  # 2 present, 0 unknown
        # a hypertension diagnosis makes the BP component present
        (
            [waist(91), lipids(120, 55), glu(ago(days=3), 92, "fasting")],
            profile(age=50, diagnoses=["hypertension"]),
            {"MS-RISK"},
        ),
        (
            [waist(91), lipids(150, 55), glu(ago(days=3), 92, "fasting")],
            profile(age=50, diagnoses=["hypertension"]),
            {"MS-METSYN"},
        ),
        # a diuretic for heart failure counts as antihypertensive (clarification 8)
        ([waist(91), lipids(150, 55)], profile(age=50, medications=["diuretic"]), {"MS-METSYN"}),
        # glucose: diabetes diagnosis → present; fasting 100 → present; 99 → absent
        (
            [office(120, 80), glu(ago(days=3), 100, "fasting"), lipids(149, 41), waist(89)],
            profile(age=50),
            {"MS-RISK"},
        ),
        (
            [office(130, 80), glu(ago(days=3), 100, "fasting"), lipids(150, 41), waist(89)],
            profile(age=50),
            {"MS-METSYN"},
        ),
        # BP component from the office occasion: 129/84 absent, 130 present
        (
            [office(129, 84), glu(ago(days=3), 99, "fasting"), lipids(149, 40), waist(89.9)],
            profile(age=50),
            set(),
        ),
        # nothing known → no flag (0 present)
        ([], profile(age=50), set()),
        # lipid values older than 365 days are unknown
        ([waist(95), lipids(200, 30, days=400)], profile(age=50), {"MS-RISK", "MS-INCOMPLETE"}),
    ],
)
def test_metabolic_syndrome(readings, prof, expected):
    result = raised(evaluate(readings, prof))
    assert {r for r in result if r.startswith("MS-")} == expected
    if "MS-METSYN" in expected:
        assert result["MS-METSYN"] == "routine"


def test_home_readings_feed_the_bp_component():
    # no office reading: the mean of ≥ 2 home sitting readings in 7 days (130/80 → present)
    homes = [bp(ago(days=d), 130, 80) for d in (1, 2)]
    result = raised(
        evaluate(
            [*homes, waist(91), lipids(100, 60), glu(ago(days=2), 90, "fasting")], profile(age=50)
        )
    )
    assert result["MS-RISK"] == "info"
    assert "MS-METSYN" not in result


@pytest.mark.parametrize(
    ("readings", "prof", "expected"),
    [
        ([waist(91)], profile(age=50), True),
        ([waist(91)], profile(age=65), False),  # 19-64
        ([waist(91)], profile(age=19), True),
        ([waist(80), office(132, 80)], profile(age=40), True),  # BP 130-139
        ([waist(80), office(140, 80)], profile(age=40), False),  # disease range
        ([waist(91), glu(ago(days=2), 126, "fasting")], profile(age=50), False),
        ([waist(80), glu(ago(days=2), 110, "fasting")], profile(age=50), True),
        ([waist(80), lipids(199, 60)], profile(age=50), True),
        ([waist(80), lipids(200, 60)], profile(age=50), False),
        ([waist(91)], profile(age=50, medications=["statin"]), False),
        ([waist(91)], profile(age=50, diagnoses=["dyslipidemia"]), False),
        ([waist(80), lipids(120, 60)], profile(age=50), False),  # no risk factor
    ],
)
def test_mobile_healthcare_eligibility(readings, prof, expected):
    result = evaluate(readings, prof)
    assert ("MH-ELIGIBLE" in raised(result)) is expected
    if expected:
        (f,) = [f for f in result.findings if f.rule == "MH-ELIGIBLE"]
        assert [r.value for r in f.recipients] == ["liaison"]


def screen(instrument: str, days: float = 3, **fields) -> dict:
    return reading(ago(days=days), "screen", instrument=instrument, **fields)


@pytest.mark.parametrize(
    ("reading_", "expected"),
    [
        (screen("PHQ-9", total=10, item9=0), {"SCR-DEP": "routine"}),
        (screen("PHQ-9", total=9, item9=0), {}),
        (screen("PHQ-9", total=4, item9=1), {"SCR-DEP-SUICIDE": "urgent"}),
        (screen("PHQ-9", total=15, item9=2), {"SCR-DEP": "routine", "SCR-DEP-SUICIDE": "urgent"}),
        (screen("BMD", t_score=-2.5), {"SCR-BMD-OSTEO": "routine"}),
        (screen("BMD", t_score=-2.4), {"SCR-BMD-OSTEOPENIA": "info"}),
        (screen("BMD", t_score=-1.1), {"SCR-BMD-OSTEOPENIA": "info"}),
        (screen("BMD", t_score=-1.0), {}),
        (screen("CIST", result="decline"), {"SCR-COG": "routine"}),
        (screen("CIST", result="normal"), {}),
        (screen("frailty_kr", score=4), {"FR-FRAIL": "routine"}),
        (screen("frailty_kr", score=3), {}),
        (screen("frailty_kr", score=6, days=366), {}),  # ≤ 365 days
        (reading(ago(days=10), "fall", injury=False), {"FR-FALL": "routine"}),
        (reading(ago(days=10), "fall", injury=True), {"FR-FALL": "urgent"}),
        (reading(ago(days=10), "fall", head_strike=True), {"FR-FALL": "urgent"}),
    ],
)
def test_screening_frailty_falls(reading_, expected):
    result = raised(evaluate([reading_]))
    found = {r: s for r, s in result.items() if r.startswith(("SCR-", "FR-"))}
    assert found == expected


def test_suicide_item_reaches_nurse_and_liaison():
    result = evaluate([screen("PHQ-9", total=3, item9=1)])
    (f,) = [f for f in result.findings if f.rule == "SCR-DEP-SUICIDE"]
    assert {r.value for r in f.recipients} == {"nurse", "liaison"}


@pytest.mark.parametrize(
    ("hours_ago", "alone", "enrolled", "expected"),
    [
        (167, False, True, False),  # ≥ 168 h since the last valid home reading
        (168, False, True, True),
        (71, True, True, False),  # ≥ 72 h when living alone
        (72, True, True, True),
        (500, False, False, False),  # not enrolled in home monitoring
    ],
)
def test_no_data(hours_ago, alone, enrolled, expected):
    readings = [bp(NOW - hours_ago * H, 128, 80)]
    result = evaluate(readings, profile(lives_alone=alone, home_monitoring=enrolled))
    assert ("ADH-NO-DATA" in raised(result)) is expected
    if expected:
        (f,) = [f for f in result.findings if f.rule == "ADH-NO-DATA"]
        assert [r.value for r in f.recipients] == ["liaison"]


def test_no_data_ignores_centre_and_rejected_readings():
    readings = [
        bp(NOW - 200 * H, 128, 80),
        bp(NOW - 2 * H, 128, 80, setting="centre"),
        bp(NOW - 1 * H, 128, 128),
    ]
    assert "ADH-NO-DATA" in raised(evaluate(readings, profile(home_monitoring=True)))
    # glucose and weight from home count as home data
    readings.append(glu(NOW - 3 * H, 100, "fasting"))
    assert "ADH-NO-DATA" not in raised(evaluate(readings, profile(home_monitoring=True)))
