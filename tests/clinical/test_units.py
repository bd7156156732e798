"""Unit handling and rounding (clinical-rules.md §1): convert once, round half-up, then judge."""

from __future__ import annotations

import pytest

from clinical import units
from tests.clinical.cases import ago, bp, evaluate, glu, profile, raised, reading, weight


@pytest.mark.parametrize(
    ("x", "decimals", "expected"),
    [
        (125.5, 0, 126.0),
        (125.4999, 0, 125.0),
        (24.95, 1, 25.0),
        (24.94, 1, 24.9),
        (18.45, 1, 18.5),
        (0.5, 0, 1.0),
        (2.5, 0, 3.0),
    ],
)
def test_round_half_up(x, decimals, expected):
    assert units.round_half_up(x, decimals) == expected


@pytest.mark.parametrize(
    ("kpa", "mmhg"),
    # kPa × 7.50062, half-up: 24.0 → 180.01 → 180; 24.1 → 180.76 → 181; 16.0 → 120.01 → 120
    [(24.0, 180.0), (24.1, 181.0), (16.0, 120.0), (16.07, 121.0)],
)
def test_kpa_to_mmhg(kpa, mmhg):
    assert units.kpa_to_mmhg(kpa) == mmhg


def test_kpa_reading_is_judged_after_conversion():
    # 24.1 kPa = 181 mmHg → crisis (> 180); 24.0 kPa = 180 mmHg → grade 3 (≥ 180), not crisis
    crisis = evaluate([bp(ago(hours=1), 24.1, 12.0, unit="kPa")])
    grade3 = evaluate([bp(ago(hours=1), 24.0, 12.0, unit="kPa")])
    assert raised(crisis)["BP-CRISIS"] == "critical"
    assert "BP-CRISIS" not in raised(grade3)
    assert raised(grade3)["BP-GRADE3"] == "urgent"


@pytest.mark.parametrize(
    ("value", "unit", "whole_blood", "mg_dl"),
    [
        (7.0, "mmol/L", False, 126.0),  # 126.112
        (6.97, "mmol/L", False, 126.0),  # 125.57 → half-up
        (6.96, "mmol/L", False, 125.0),  # 125.39
        (3.0, "mmol/L", False, 54.0),  # 54.048
        (2.96, "mmol/L", False, 53.0),  # 53.327
        (114, "mg/dL", True, 127.0),  # 114 × 1.11 = 126.54
        (113, "mg/dL", True, 125.0),  # 125.43
        (0.00126, "kg/L", False, 126.0),  # BLE kg/L × 100000
        (0.007, "mol/L", False, 126.0),  # BLE mol/L × 1000 = 7.0 mmol/L
        (6.3, "mmol/L", True, 126.0),  # 6.3 × 18.016 × 1.11 = 125.99, rounded once
    ],
)
def test_glucose_conversion(value, unit, whole_blood, mg_dl):
    assert units.glucose_to_mg_dl(value, unit, whole_blood=whole_blood) == mg_dl


@pytest.mark.parametrize(
    ("value", "unit", "calibration", "expected"),
    [
        (3.0, "mmol/L", "plasma", "GLU-HYPO-L1"),  # 54 mg/dL
        (2.96, "mmol/L", "plasma", "GLU-HYPO-L2"),  # 53 mg/dL
        (63, "mg/dL", "whole_blood", None),  # 69.93 → 70: not hypoglycaemia
        (62, "mg/dL", "whole_blood", "GLU-HYPO-L1"),  # 68.82 → 69
    ],
)
def test_glucose_is_judged_after_conversion(value, unit, calibration, expected):
    result = raised(evaluate([glu(ago(hours=1), value, unit=unit, calibration=calibration)]))
    hypo = {r for r in result if r.startswith("GLU-HYPO")}
    assert hypo == ({expected} if expected else set())


def test_mmol_fasting_readings_reach_the_diabetes_range():
    # 7.0 mmol/L = 126 mg/dL on two days → GLU-FPG-DM-RANGE; 6.96 = 125 → only IFG
    dm = evaluate([glu(ago(days=d), 7.0, "fasting", unit="mmol/L") for d in (1, 3)])
    ifg = evaluate([glu(ago(days=d), 6.96, "fasting", unit="mmol/L") for d in (1, 3)])
    assert "GLU-FPG-DM-RANGE" in raised(dm)
    assert "GLU-FPG-DM-RANGE" not in raised(ifg)
    assert "GLU-FPG-IFG" in raised(ifg)


@pytest.mark.parametrize(("lb", "kg"), [(154.3, 70.0), (220.5, 100.0), (100.0, 45.4)])
def test_lb_to_kg(lb, kg):
    # × 0.45359237, half-up to 0.1 kg: 154.3 → 69.989 → 70.0; 100 → 45.359 → 45.4
    assert units.lb_to_kg(lb) == kg


def test_pounds_feed_weight_rules():
    # 154.3 lb = 70.0 kg and 158.9 lb = 72.1 kg (72.076): a gain of 2.1 kg in 48 h (> 2.0)
    result = evaluate(
        [weight(ago(days=3), 154.3, unit="lb"), weight(ago(days=1), 158.9, unit="lb")]
    )
    assert "WT-GAIN-RAPID" in raised(result)


@pytest.mark.parametrize(
    ("mmol_mol", "expected"),
    # NGSP % = IFCC × 0.09148 + 2.152: 48 → 6.543 (≥ 6.5), 47 → 6.452 (not rounded up)
    [(48, "A1C-DM-RANGE"), (47, "A1C-PREDM")],
)
def test_ifcc_a1c(mmol_mol, expected):
    result = raised(evaluate([reading(ago(days=2), "a1c", value=mmol_mol, unit="mmol/mol")]))
    assert expected in result
    assert ({"A1C-DM-RANGE", "A1C-PREDM"} - {expected}).isdisjoint(result)


@pytest.mark.parametrize(
    ("kg", "expected"),
    # height 200 cm (4 m²): BMI = kg / 4, rounded half-up to 1 decimal before classification
    [
        (73.6, "OB-BMI-UNDER"),  # 18.4
        (73.8, "normal"),  # 18.45 → 18.5
        (91.6, "normal"),  # 22.9
        (91.8, "OB-BMI-PREOBESE"),  # 22.95 → 23.0
        (99.6, "OB-BMI-PREOBESE"),  # 24.9
        (99.8, "OB-BMI-OBESE"),  # 24.95 → 25.0
        (100.0, "OB-BMI-OBESE"),  # 25.0
    ],
)
def test_bmi_is_rounded_before_classification(kg, expected):
    result = raised(evaluate([weight(ago(days=1), kg)], profile(height_cm=200.0)))
    bmi_rules = {r for r in result if r.startswith("OB-BMI")}
    if expected == "normal":
        assert bmi_rules == set()
    else:
        assert bmi_rules == {expected}


def test_lipids_in_mmol_are_converted():
    # TG 1.70 mmol/L × 88.57 = 150.6 mg/dL (≥ 150); HDL 1.0 mmol/L × 38.67 = 38.7 (< 40 M)
    lip = reading(ago(days=5), "lipid", tg=1.70, hdl=1.0, unit="mmol/L")
    waist = reading(ago(days=5), "waist", cm=92.0)
    assert "MS-METSYN" in raised(evaluate([lip, waist], profile(age=50)))
