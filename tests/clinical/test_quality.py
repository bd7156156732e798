"""Quality filters Q-01…Q-10 (clinical-rules.md §2), boundaries as the table writes them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.clinical.cases import ago, bp, evaluate, glu, home_week, raised, reading, weight
from tests.clinical.cases import rejected as rejected_of


@pytest.mark.parametrize(
    ("sys", "dia", "pulse", "expected"),
    [
        # SBP < 50 or > 300, DBP < 20 or > 200, pulse < 25 or > 250
        (50, 30, 70, None),
        (49, 30, 70, "Q-01"),
        (300, 150, 70, None),
        (301, 150, 70, "Q-01"),
        (60, 20, 70, None),
        (60, 19, 70, "Q-01"),
        (250, 200, 70, None),
        (250, 201, 70, "Q-01"),
        (120, 80, 25, None),
        (120, 80, 24, "Q-01"),
        (120, 80, 250, None),
        (120, 80, 251, "Q-01"),
        (None, 80, 70, "Q-01"),  # a NaN/reserved SFLOAT is a failed measurement (§1)
        # DBP ≥ SBP
        (120, 120, 70, "Q-02"),
        (120, 125, 70, "Q-02"),
        # SBP − DBP < 10
        (120, 111, 70, "Q-03"),
        (120, 110, 70, None),
        # clarification 7: several failures → the lowest-numbered rule
        (310, 320, 70, "Q-01"),
    ],
)
def test_bp_plausibility(sys, dia, pulse, expected):
    result = evaluate([bp(ago(hours=1), sys, dia, pulse=pulse)])
    assert rejected_of(result).get(0) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (["body_movement"], "Q-04"),
        (["cuff_too_loose"], "Q-04"),
        (["improper_measurement_position"], "Q-04"),
        (["irregular_pulse"], None),  # feeds BP-IRREG-PULSE, does not exclude
        ([], None),
    ],
)
def test_bp_status_exclusion(status, expected):
    result = evaluate([bp(ago(hours=1), 128, 82, device_status=status)])
    assert rejected_of(result).get(0) == expected


def test_excluded_reading_contributes_to_nothing():
    # a Q-04 reading at crisis level is not BP-CRISIS (it feeds only BP-UNRELIABLE-HIGH)
    result = evaluate([bp(ago(hours=2), 200, 100, device_status=["body_movement"])])
    assert "BP-CRISIS" not in raised(result)
    assert raised(result)["BP-UNRELIABLE-HIGH"] == "urgent"


def test_rejected_readings_do_not_count_towards_the_home_mean():
    # 12 readings after the discarded first day make a valid mean (§3.2); with one of them
    # rejected (DBP ≥ SBP) only 11 remain, so there is no mean and no BP-HOME-HTN.
    week = home_week(150, 95)
    assert "BP-HOME-HTN" in raised(evaluate(week))
    week[-1] = bp(ago(hours=12, minutes=-5), 150, 160)
    result = evaluate(week)
    assert rejected_of(result) == {len(week) - 1: "Q-02"}
    assert "BP-HOME-HTN" not in raised(result)


@pytest.mark.parametrize(
    ("value", "status", "expected"),
    [
        (9, [], "Q-05"),
        (10, [], None),
        (700, [], None),
        (701, [], "Q-05"),
        (None, ["result_high"], None),  # meter HI kept as ≥ 600
        (None, ["result_low"], None),  # meter LO kept as < 20
        (None, [], "Q-05"),
        (120, ["sensor_malfunction"], "Q-06"),
        (120, ["sample_size_insufficient"], "Q-06"),
        (120, ["strip_insertion_error"], "Q-06"),
        (120, ["strip_type_incorrect"], "Q-06"),
        (120, ["sensor_temperature_too_high"], "Q-06"),
        (120, ["sensor_temperature_too_low"], "Q-06"),
        (120, ["sensor_read_interrupted"], "Q-06"),
        (120, ["general_device_fault"], "Q-06"),
        (120, ["time_fault"], "Q-06"),
        (120, ["device_battery_low"], None),  # a low battery is not a fault
        (5, ["sensor_malfunction"], "Q-05"),  # lowest-numbered rule
    ],
)
def test_glucose_quality(value, status, expected):
    result = evaluate([glu(ago(hours=1), value, status=status)])
    assert rejected_of(result).get(0) == expected


def test_meter_hi_and_lo_act_as_values():
    result = evaluate(
        [
            glu(ago(hours=3), None, status=["result_high"]),
            glu(ago(hours=1), None, status=["result_low"]),
        ]
    )
    assert raised(result)["GLU-HYPER-CRITICAL"] == "critical"  # ≥ 400 or HI
    assert raised(result)["GLU-HYPO-L2"] == "critical"  # < 54 or LO


@pytest.mark.parametrize(
    "sample", [{"sample": 10}, {"sample": "control_solution"}, {"sample_location": 4}]
)
def test_control_solution_is_rejected(sample):
    result = evaluate([glu(ago(hours=1), 45, **sample)])
    assert rejected_of(result) == {0: "Q-06"}
    assert "GLU-HYPO-L2" not in raised(result)


@pytest.mark.parametrize(
    ("kind", "fields", "expected"),
    [
        ("weight", {"value": 19.9, "unit": "kg"}, "Q-07"),
        ("weight", {"value": 20.0, "unit": "kg"}, None),
        ("weight", {"value": 300.0, "unit": "kg"}, None),
        ("weight", {"value": 300.1, "unit": "kg"}, "Q-07"),
        ("waist", {"cm": 39.9}, "Q-07"),
        ("waist", {"cm": 40.0}, None),
        ("waist", {"cm": 200.0}, None),
        ("waist", {"cm": 200.1}, "Q-07"),
        ("a1c", {"value": 2.9, "unit": "%"}, "Q-07"),
        ("a1c", {"value": 3.0, "unit": "%"}, None),
        ("a1c", {"value": 20.0, "unit": "%"}, None),
        ("a1c", {"value": 20.1, "unit": "%"}, "Q-07"),
    ],
)
def test_anthropometric_and_a1c_limits(kind, fields, expected):
    result = evaluate([reading(ago(hours=1), kind, **fields)])
    assert rejected_of(result).get(0) == expected


@pytest.mark.parametrize(
    ("second", "hours_later", "expected"),
    [
        (75.1, 23, "Q-08"),  # > 5 kg within 24 h
        (75.0, 23, None),  # exactly 5 kg is not > 5
        (64.9, 23, "Q-08"),
        (75.1, 24, "Q-08"),  # ≤ 24 h earlier
        (76.0, 25, None),
    ],
)
def test_weight_quarantine(second, hours_later, expected):
    t0 = ago(days=3)
    result = evaluate([weight(t0, 70.0), weight(t0 + _h(hours_later), second)])
    assert rejected_of(result).get(1) == expected


def _h(hours: float) -> timedelta:
    return timedelta(hours=hours)


def test_weight_quarantine_compares_with_the_previous_valid_weight():
    # 80.0 is quarantined against 70.0; the next 80.0 must again be compared with 70.0
    # (the previous *valid* weight), not with the quarantined one.
    t0 = ago(days=3)
    result = evaluate(
        [
            weight(t0, 70.0),
            weight(t0 + _h(2), 80.0),
            weight(t0 + _h(4), 80.0),
            weight(t0 + _h(30), 80.0),
        ]
    )
    assert rejected_of(result) == {1: "Q-08", 2: "Q-08"}  # 30 h later: > 24 h, accepted


def test_duplicates_within_sixty_seconds():
    t0 = ago(hours=2)
    result = evaluate(
        [
            bp(t0, 128, 82),
            bp(t0 + _h(59 / 3600), 128, 82),
            bp(t0 + _h(130 / 3600), 128, 82),
            bp(t0 + _h(150 / 3600), 127, 82),
        ]
    )
    assert rejected_of(result) == {1: "Q-09"}  # 130 s after #1 is > 60 s; #3 differs


def test_unknown_unit_is_rejected():
    result = evaluate([bp(ago(hours=1), 17, 11, unit="inHg"), glu(ago(hours=1), 5, unit="g/L")])
    assert rejected_of(result) == {0: "Q-09", 1: "Q-09"}


def test_future_timestamps_against_the_receipt_time():
    # the runner knows when a reading arrived: a device clock far ahead of it is Q-09 for good
    from clinical import engine
    from clinical.model import Cohort, Profile, ReadingsBuilder, Sex

    b = ReadingsBuilder()
    now = int(ago().timestamp())
    b.received = now - 3600
    b.add_bp(0, now - 3600 + 301, 0, sys=120, dia=80)  # 5 min 1 s ahead of its receipt
    b.add_bp(0, now - 3600 + 299, 1, sys=120, dia=80)
    ev = engine.evaluate(Cohort.from_profiles([Profile(age=70, sex=Sex.MALE)]), b.build(), now)
    from clinical.evaluation import resident_results

    assert {r.index: r.rule for r in resident_results(ev)[0].rejected} == {0: "Q-09"}


def test_position_rules_for_means():
    # standing readings never enter the home mean
    week = [dict(r, position="standing") for r in home_week(150, 95)]
    assert "BP-HOME-HTN" not in raised(evaluate(week))


def test_adh_quality_counts_rejections_in_seven_days():
    bad = [bp(ago(days=d), 120, 120) for d in (1, 3)]
    assert "ADH-QUALITY" not in raised(evaluate(bad))
    three = [*bad, bp(ago(days=6), 120, 125)]
    assert raised(evaluate(three))["ADH-QUALITY"] == "info"
    old = [*bad, bp(ago(days=8), 120, 125)]
    assert "ADH-QUALITY" not in raised(evaluate(old))
