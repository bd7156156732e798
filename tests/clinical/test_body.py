"""Weight, obesity, body composition and sarcopenia (clinical-rules.md §5)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.clinical.cases import ago, evaluate, profile, raised, reading, weight

H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("kg", "expected"),
    # height 200 cm: BMI = kg / 4 (KSSO: < 18.5 under, 23-24.9 pre-obese, ≥ 25 obese)
    [
        (73.6, "OB-BMI-UNDER"),
        (74.0, None),
        (91.6, None),
        (92.0, "OB-BMI-PREOBESE"),
        (99.6, "OB-BMI-PREOBESE"),
        (100.0, "OB-BMI-OBESE"),
        (120.0, "OB-BMI-OBESE"),
    ],
)
def test_bmi_classes(kg, expected):
    result = evaluate([weight(ago(days=2), kg)], profile(height_cm=200.0))
    found = {f.rule: f for f in result.findings if f.rule.startswith("OB-BMI")}
    assert set(found) == ({expected} if expected else set())
    if expected == "OB-BMI-UNDER":
        assert {r.value for r in found[expected].recipients} == {"nurse", "liaison"}


@pytest.mark.parametrize(("kg", "cls"), [(100.0, 1.0), (120.0, 2.0), (140.0, 3.0), (119.6, 1.0)])
def test_obesity_class_attribute(kg, cls):
    # class I 25-29.9, II 30-34.9, III ≥ 35
    result = evaluate([weight(ago(days=2), kg)], profile(height_cm=200.0))
    (f,) = [f for f in result.findings if f.rule == "OB-BMI-OBESE"]
    assert dict(f.details)["class"] == cls


def test_bmi_uses_the_latest_weight_within_a_year():
    old = weight(ago(days=366), 110.0)
    assert "OB-BMI-OBESE" not in raised(evaluate([old], profile(height_cm=200.0)))


def test_no_bmi_without_height():
    assert not any(
        r.startswith("OB-BMI")
        for r in raised(evaluate([weight(ago(days=2), 120.0)], profile(height_cm=None)))
    )


@pytest.mark.parametrize(
    ("sex", "cm", "expected"),
    [("M", 90.0, True), ("M", 89.9, False), ("F", 85.0, True), ("F", 84.9, False)],
)
def test_waist(sex, cm, expected):
    result = raised(evaluate([reading(ago(days=3), "waist", cm=cm)], profile(sex=sex)))
    assert (result.get("OB-WAIST") == "info") is expected


@pytest.mark.parametrize(
    ("sex", "pct", "expected"),
    [("M", 25.0, True), ("M", 24.9, False), ("F", 35.0, True), ("F", 34.9, False)],
)
def test_body_fat(sex, pct, expected):
    result = raised(evaluate([reading(ago(days=3), "body_comp", fat_pct=pct)], profile(sex=sex)))
    assert (result.get("BC-FAT-HIGH") == "info") is expected


@pytest.mark.parametrize(
    ("second", "hours", "diagnoses", "expected"),
    [
        (72.0, 48, [], None),  # a 2.0 kg gain is not > 2.0
        (72.1, 48, [], "routine"),
        (72.1, 72, [], "routine"),  # ≤ 72 h apart
        (72.1, 73, [], None),
        (72.1, 48, ["heart_failure"], "urgent"),
        (72.1, 48, ["ckd"], "urgent"),
    ],
)
def test_rapid_weight_gain(second, hours, diagnoses, expected):
    t0 = ago(days=5)
    result = raised(
        evaluate([weight(t0, 70.0), weight(t0 + hours * H, second)], profile(diagnoses=diagnoses))
    )
    assert result.get("WT-GAIN-RAPID") == expected


def test_rapid_gain_against_any_earlier_weight_in_72_hours():
    t0 = ago(days=5)
    readings = [weight(t0, 70.0), weight(t0 + 24 * H, 71.5), weight(t0 + 70 * H, 72.1)]
    assert "WT-GAIN-RAPID" in raised(evaluate(readings))


@pytest.mark.parametrize(
    ("current", "intentional", "expected"),
    [
        ((66.4, 66.4), False, True),  # (70 − 66.4) / 70 = 5.14 % > 5 %
        ((66.5, 66.5), False, False),  # exactly 5 %
        ((66.0, 66.0), True, False),  # intentional weight-loss programme
        ((66.0,), False, False),  # current needs ≥ 2 weights on different dates
    ],
)
def test_weight_loss(current, intentional, expected):
    readings = [weight(ago(days=60), 70.0)]
    readings += [weight(ago(days=2 + 3 * i), kg) for i, kg in enumerate(current)]
    result = evaluate(readings, profile(intentional_weight_loss=intentional))
    assert ("WT-LOSS" in raised(result)) is expected
    if expected:
        (f,) = [f for f in result.findings if f.rule == "WT-LOSS"]
        assert {r.value for r in f.recipients} == {"nurse", "liaison", "rehab"}


def test_weight_loss_baseline_window():
    # the baseline is the mean of weights 30-183 days ago: 20 and 200 days ago do not count
    readings = [
        weight(ago(days=20), 70.0),
        weight(ago(days=200), 70.0),
        weight(ago(days=2), 60.0),
        weight(ago(days=5), 60.0),
    ]
    assert "WT-LOSS" not in raised(evaluate(readings))


# --------------------------------------------------------------------------- sarcopenia

# height 170 cm: ASMI = ASM / 2.89; BIA cut-offs 7.0 (M) / 5.7 (F) → 20.23 kg / 16.47 kg
LOW_ASM_M, NORMAL_ASM_M = 20.0, 20.3
OLD_M = profile(age=70, sex="M", height_cm=170.0)


def _sar(asm=None, grip=None, gait=None, chair=None, sppb=None, prof=OLD_M, dxa=False):
    readings = []
    if asm is not None:
        readings.append(
            reading(ago(days=10), "body_comp", asm_kg=asm, method="DXA" if dxa else "BIA")
        )
    if grip is not None:
        readings.append(reading(ago(days=9), "grip", kg=grip))
    if gait is not None:
        readings.append(reading(ago(days=9), "gait_speed", m_per_s=gait))
    if chair is not None:
        readings.append(reading(ago(days=9), "chair_stand", seconds=chair))
    if sppb is not None:
        readings.append(reading(ago(days=9), "sppb", score=sppb))
    result = raised(evaluate(readings, prof))
    return {r for r in result if r.startswith(("SAR-", "BC-LOW"))}


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"asm": LOW_ASM_M, "grip": 27.9, "gait": 0.9}, {"SAR-SEVERE"}),
        ({"asm": LOW_ASM_M, "grip": 27.9, "gait": 1.0}, {"SAR-CONFIRMED"}),
        ({"asm": LOW_ASM_M, "grip": 28.0, "gait": 0.99}, {"SAR-CONFIRMED"}),
        ({"asm": LOW_ASM_M, "grip": 28.0, "gait": 1.0}, {"BC-LOW-MUSCLE-MASS"}),
        ({"asm": NORMAL_ASM_M, "grip": 27.9, "gait": 0.9}, {"SAR-POSSIBLE"}),  # functional
        ({"asm": NORMAL_ASM_M, "grip": 27.9, "gait": 1.2}, set()),
        ({"grip": 27.9}, {"SAR-POSSIBLE"}),  # no mass measured
        ({"chair": 12.0}, {"SAR-POSSIBLE"}),  # 5× chair stand ≥ 12 s
        ({"chair": 11.9}, set()),
        ({"sppb": 9}, {"SAR-POSSIBLE"}),  # SPPB ≤ 9
        ({"sppb": 10}, set()),
        ({"asm": LOW_ASM_M}, set()),  # mass alone: no function measured
        ({"asm": LOW_ASM_M, "grip": 27.9, "gait": 0.9, "prof": profile(age=59)}, set()),
        # women, 160 cm: 15.0 / 2.56 = 5.86 kg/m² is normal (BIA < 5.7), grip < 18 is low
        (
            {
                "asm": 15.0,
                "grip": 17.9,
                "gait": 0.8,
                "prof": profile(age=75, sex="F", height_cm=160.0),
            },
            {"SAR-POSSIBLE"},
        ),
        (
            {
                "asm": 14.0,
                "grip": 18.0,
                "gait": 1.0,
                "prof": profile(age=75, sex="F", height_cm=160.0),
            },
            {"BC-LOW-MUSCLE-MASS"},
        ),
    ],
)
def test_sarcopenia_grades(kwargs, expected):
    assert _sar(**kwargs) == expected


def test_dxa_cut_off_for_women():
    # 14.0 / 2.56 = 5.47 kg/m²: low by BIA (< 5.7) but not by DXA (< 5.4)
    woman = profile(age=75, sex="F", height_cm=160.0)
    assert _sar(asm=14.0, grip=17.0, gait=0.8, prof=woman) == {"SAR-SEVERE"}
    assert _sar(asm=14.0, grip=17.0, gait=0.8, prof=woman, dxa=True) == {"SAR-POSSIBLE"}
