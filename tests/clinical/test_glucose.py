"""Glucose and HbA1c rules (clinical-rules.md §4) with the reference's boundaries."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.clinical.cases import ago, evaluate, glu, profile, raised, reading

H = timedelta(hours=1)
DM = profile(age=60, diagnoses=["diabetes_t2"], medications=["metformin"])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (53, ("GLU-HYPO-L2", "critical")),
        (54, ("GLU-HYPO-L1", "urgent")),  # level 1 is 54-69
        (69, ("GLU-HYPO-L1", "urgent")),
        (70, None),  # < 70 (current ADA/KDA, §11 #9)
        (299, None),
        (300, ("GLU-HYPER-SEVERE", "urgent")),
        (399, ("GLU-HYPER-SEVERE", "urgent")),
        (400, ("GLU-HYPER-CRITICAL", "critical")),
    ],
)
def test_single_reading_thresholds(value, expected):
    result = raised(evaluate([glu(ago(hours=1), value, "preprandial")]))
    acute = {r: s for r, s in result.items() if r.startswith(("GLU-HYPO", "GLU-HYPER"))}
    assert acute == (dict([expected]) if expected else {})


@pytest.mark.parametrize("prof", [profile(), DM])
def test_hypo_and_hyper_apply_with_or_without_diabetes(prof):
    result = raised(evaluate([glu(ago(hours=5), 50), glu(ago(hours=1), 420)], prof))
    assert result["GLU-HYPO-L2"] == "critical"
    assert result["GLU-HYPER-CRITICAL"] == "critical"


def test_level3_event_needs_no_value():
    result = raised(
        evaluate([reading(ago(hours=1), "symptom", symptoms=["hypoglycemia_needed_assistance"])])
    )
    assert result["GLU-HYPO-L3"] == "critical"


@pytest.mark.parametrize(
    ("days", "expected"),
    [((1, 3), True), ((1, 1), False), ((1, 15), False), ((0, 13), True)],
)
def test_recurrent_hypoglycaemia(days, expected):
    readings = [glu(ago(days=d, hours=2 + i), 65) for i, d in enumerate(days)]
    result = raised(evaluate(readings))
    assert ("GLU-HYPO-RECURRENT" in result) is expected


@pytest.mark.parametrize(
    ("value", "symptom", "hours", "expected"),
    [
        (200, "vomiting", 23, True),
        (200, "vomiting", -23, True),  # two-sided window
        (200, "vomiting", 25, False),
        (199, "vomiting", 1, False),
        (250, "confusion", 2, True),
        (250, "polyuria", 2, False),  # not a DKA-type symptom
    ],
)
def test_hyper_symptomatic(value, symptom, hours, expected):
    t0 = ago(days=2)
    result = raised(
        evaluate([glu(t0, value), reading(t0 + hours * H, "symptom", symptoms=[symptom])])
    )
    assert (result.get("GLU-HYPER-SYMPTOMATIC") == "critical") is expected


@pytest.mark.parametrize(
    ("values", "meal", "expected"),
    [
        ((126, 126), "fasting", {"GLU-FPG-DM-RANGE"}),
        ((125, 126), "fasting", {"GLU-FPG-IFG"}),  # ≥ 126 on one date only; ≥ 100 on two
        ((100, 100), "fasting", {"GLU-FPG-IFG"}),
        ((99, 126), "fasting", set()),
        ((126, 126), "preprandial", set()),  # only `fasting` feeds fasting rules
        ((126, 126), None, set()),  # missing context is never fasting
    ],
)
def test_fasting_diagnostic_ranges(values, meal, expected):
    readings = [glu(ago(days=d), v, meal) for d, v in zip((2, 9), values, strict=True)]
    result = raised(evaluate(readings))
    assert {r for r in result if r.startswith("GLU-FPG")} == expected
    for r in expected:
        assert result[r] == "routine"


def test_fasting_dates_must_be_within_thirty_days():
    readings = [glu(ago(days=2), 130, "fasting"), glu(ago(days=31), 130, "fasting")]
    assert "GLU-FPG-DM-RANGE" not in raised(evaluate(readings))


def test_fasting_diagnostic_rules_skip_diagnosed_diabetes():
    readings = [glu(ago(days=d), 140, "fasting") for d in (2, 5)]
    assert "GLU-FPG-DM-RANGE" not in raised(evaluate(readings, DM))


@pytest.mark.parametrize("meal", ["casual", "postprandial", "bedtime", "preprandial", None])
def test_random_diabetes_range_on_two_dates(meal):
    readings = [glu(ago(days=d), 200, meal) for d in (3, 10)]
    assert raised(evaluate(readings))["GLU-RANDOM-DM-RANGE"] == "routine"


def test_random_single_high_needs_classic_symptoms():
    t0 = ago(days=3)
    alone = raised(evaluate([glu(t0, 250, "casual")]))
    assert "GLU-RANDOM-DM-RANGE" not in alone
    assert alone["GLU-RECHECK"] == "info"
    with_symptom = raised(
        evaluate(
            [
                glu(t0, 250, "casual"),
                reading(t0 - timedelta(days=6), "symptom", symptoms=["polydipsia"]),
            ]
        )
    )
    assert with_symptom["GLU-RANDOM-DM-RANGE"] == "urgent"
    too_far = raised(
        evaluate(
            [
                glu(t0, 250, "casual"),
                reading(t0 - timedelta(days=8), "symptom", symptoms=["polyuria"]),
            ]
        )
    )
    assert "GLU-RANDOM-DM-RANGE" not in too_far


def test_recheck_for_a_single_fasting_value():
    result = raised(evaluate([glu(ago(days=1), 126, "fasting")]))
    assert result["GLU-RECHECK"] == "info"
    assert "GLU-FPG-DM-RANGE" not in result
    assert "GLU-RECHECK" not in raised(evaluate([glu(ago(days=1), 125, "fasting")]))


@pytest.mark.parametrize(
    ("prof", "values", "expected"),
    [
        (DM, (131, 131, 131), "GLU-FASTING-ABOVE-TARGET"),  # < 65: upper 130
        (DM, (130, 130, 130), None),
        (DM, (79, 79, 79), "GLU-FASTING-BELOW-TARGET"),  # lower 80
        (DM, (80, 80, 80), None),
        (DM, (131, 131), None),  # ≥ 3 readings needed
        (
            profile(age=72, diagnoses=["diabetes_t2"], older_adult_health="complex"),
            (151, 151, 151),
            "GLU-FASTING-ABOVE-TARGET",
        ),  # Table 13.1 complex: 90-150
        (
            profile(age=72, diagnoses=["diabetes_t2"], older_adult_health="complex"),
            (150, 150, 150),
            None,
        ),
        (
            profile(age=72, diagnoses=["diabetes_t2"], older_adult_health="complex"),
            (89, 89, 89),
            "GLU-FASTING-BELOW-TARGET",
        ),
        (
            profile(age=80, diagnoses=["diabetes_t2"], older_adult_health="very_complex"),
            (181, 170, 190),
            "GLU-FASTING-ABOVE-TARGET",
        ),  # 100-180, mean 180.3
        (
            profile(age=80, diagnoses=["diabetes_t2"], older_adult_health="very_complex"),
            (99, 99, 99),
            "GLU-FASTING-BELOW-TARGET",
        ),
        (profile(age=60), (140, 140, 140), None),  # no diabetes: target rules do not apply
    ],
)
def test_fasting_targets(prof, values, expected):
    readings = [
        glu(ago(days=d), v, "fasting" if d % 2 else "preprandial")
        for d, v in zip((1, 4, 7), values, strict=False)
    ]
    result = raised(evaluate(readings, prof))
    found = {r for r in result if r.startswith("GLU-FASTING")}
    assert found == ({expected} if expected else set())


def test_target_readings_need_three_dates():
    readings = [glu(ago(days=1, hours=h), 150, "fasting") for h in (1, 2)]
    readings.append(glu(ago(days=4), 150, "fasting"))
    assert "GLU-FASTING-ABOVE-TARGET" not in raised(evaluate(readings, DM))


@pytest.mark.parametrize(
    ("prof", "value", "expected"),
    [
        (DM, 181, True),
        (DM, 180, False),  # mean > 180
        (profile(age=70, diagnoses=["diabetes_t2"]), 181, True),  # healthy older adult
        (profile(age=70, diagnoses=["diabetes_t2"], older_adult_health="complex"), 250, False),
    ],
)
def test_postprandial_target(prof, value, expected):
    readings = [glu(ago(days=d), value, "postprandial") for d in (1, 3, 5)]
    assert ("GLU-PP-ABOVE-TARGET" in raised(evaluate(readings, prof))) is expected


@pytest.mark.parametrize(
    ("prof", "value", "expected"),
    [
        (profile(age=70, diagnoses=["diabetes_t2"], medications=["insulin"]), 79, True),
        (profile(age=70, diagnoses=["diabetes_t2"], medications=["insulin"]), 80, False),
        (profile(age=70, diagnoses=["diabetes_t2"], medications=["metformin"]), 75, False),
        (profile(age=60, diagnoses=["diabetes_t2"], medications=["insulin"]), 75, False),
        (
            profile(
                age=70,
                diagnoses=["diabetes_t2"],
                medications=["sulfonylurea"],
                older_adult_health="complex",
            ),
            99,
            True,
        ),  # bedtime 100-180
        (
            profile(
                age=80,
                diagnoses=["diabetes_t2"],
                medications=["insulin"],
                older_adult_health="very_complex",
            ),
            109,
            True,
        ),  # bedtime 110-200
    ],
)
def test_bedtime_below_target(prof, value, expected):
    readings = [glu(ago(days=d), value, "bedtime") for d in (1, 3, 5)]
    assert ("GLU-BEDTIME-BELOW-TARGET" in raised(evaluate(readings, prof))) is expected


def test_context_missing_prompts_the_resident():
    result = evaluate([glu(ago(hours=1), 110, None)])
    (f,) = [f for f in result.findings if f.rule == "GLU-CONTEXT-MISSING"]
    assert [r.value for r in f.recipients] == ["resident"]
    assert "GLU-CONTEXT-MISSING" not in raised(evaluate([glu(ago(hours=1), 110, "fasting")]))


@pytest.mark.parametrize(
    ("pct", "days", "expected"),
    [
        (6.5, 10, "A1C-DM-RANGE"),  # one A1C ≥ 6.5 raises it (clarification 3)
        (6.4, 10, "A1C-PREDM"),
        (5.7, 10, "A1C-PREDM"),
        (5.6, 10, None),
        # DM-RANGE needs an A1C ≤ 180 days old, and 6.5 % is outside the 5.7-6.4 band
        (6.5, 181, None),
        (6.0, 300, "A1C-PREDM"),
    ],
)
def test_a1c_without_diabetes(pct, days, expected):
    result = raised(evaluate([reading(ago(days=days), "a1c", value=pct, unit="%")]))
    found = {r for r in result if r.startswith("A1C")}
    assert found == ({expected} if expected else set())


@pytest.mark.parametrize(
    ("prof", "pct", "expected"),
    [
        (DM, 7.0, True),  # < 65: target < 7.0 %
        (DM, 6.9, False),
        (profile(age=70, diagnoses=["diabetes_t2"]), 7.4, False),  # healthy older: 7.5 %
        (profile(age=70, diagnoses=["diabetes_t2"]), 7.5, True),
        (profile(age=70, diagnoses=["diabetes_t2"], older_adult_health="complex"), 7.9, False),
        (profile(age=70, diagnoses=["diabetes_t2"], older_adult_health="complex"), 8.0, True),
        (profile(age=70, diagnoses=["diabetes_t2"], older_adult_health="very_complex"), 10, False),
        (profile(age=55, diagnoses=["diabetes_t2"], a1c_target=6.5), 6.5, True),  # clinician
    ],
)
def test_a1c_above_target(prof, pct, expected):
    result = raised(evaluate([reading(ago(days=30), "a1c", value=pct)], prof))
    assert ("A1C-ABOVE-TARGET" in result) is expected
    assert "A1C-DM-RANGE" not in result  # diagnosed: no diagnostic-range flag
