"""Plausibility at the door (issue 12.5): values outside the physiological bounds of
clinical-rules.md §2 (Q-01, Q-05, Q-07) never become Observations, and ingest and the risk
engine draw the line in the same place (one home: clinical.limits).

Expected values are the §2 table's numbers, not our output.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from devices.model import Component, Kind, Measurement
from ingest.bounds import out_of_bounds
from ingest.errors import Reason
from ingest.pipeline import process_message
from tests.clinical.cases import ago, bp, evaluate, glu, weight
from tests.clinical.cases import rejected as rejected_of
from tests.ingest import payloads as p
from tests.ingest.test_pipeline import DEVICE, MEASURED, NOW, TOPIC, registry


def kiosk(values: list[dict[str, Any]], kind: str) -> bytes:
    """A station (kiosk) reading through the gateway wire format, numbers exactly as written."""
    reading = {
        "id": "k1",
        "source": "mqtt",
        "station": "yaksu-station-1",
        "device": {"id": DEVICE},
        "payload": {
            "schema": 1,
            "type": "measurement",
            "device_id": DEVICE,
            "device_time": MEASURED.isoformat(),
            "measurements": [{"type": kind, "values": values}],
        },
        "received_at": NOW.isoformat(),
        "binding": {"resident": "R0001234", "method": "check-in"},
    }
    return p.batch([reading])


def test_a_glucose_of_1e_minus_300_is_a_dead_letter_not_a_final_observation() -> None:
    body = kiosk([{"code": "glucose", "value": 1, "unit": "mg/dL"}], "glucose")
    body = body.replace(b'"value": 1,', b'"value": 1e-300,')
    assert b"1e-300" in body
    [result] = process_message(TOPIC, body, registry()).readings
    assert result.observations == []
    assert result.dead is not None
    assert result.dead.reason is Reason.IMPLAUSIBLE_VALUE
    assert result.dead.detail.startswith("Q-05: glucose 1E-300 mg/dL")
    assert json.loads(result.dead.raw)["id"] == "k1"  # the reading kept as received


def test_a_ble_blood_pressure_above_300_is_a_dead_letter_naming_q01() -> None:
    reading = p.reading("r1", [(p.BPM, p.bp(MEASURED, systolic="3601"))])  # 0x0136 = 310
    [result] = process_message(TOPIC, p.batch([reading]), registry()).readings
    assert result.dead is not None
    assert result.dead.reason is Reason.IMPLAUSIBLE_VALUE
    assert "Q-01" in result.dead.detail
    assert "310" in result.dead.detail


def _m(kind: Kind, *components: tuple[str, str, str], status: tuple[str, ...] = ()) -> Measurement:
    comps = tuple(Component(code, Decimal(value), unit) for code, value, unit in components)
    return Measurement(kind, comps, None, status=status)


def _bp(sys: str, dia: str = "80", pulse: str = "70", unit: str = "mm[Hg]") -> Measurement:
    return _m(
        Kind.BLOOD_PRESSURE,
        ("systolic", sys, unit),
        ("diastolic", dia, unit),
        ("pulse", pulse, "/min"),
    )


@pytest.mark.parametrize(
    ("measurement", "rule"),
    [
        # SBP < 50 or > 300, DBP < 20 or > 200, pulse < 25 or > 250 (after kPa → mmHg)
        (_bp("49"), "Q-01"),
        (_bp("50", "20"), None),
        (_bp("300", "200"), None),
        (_bp("301"), "Q-01"),
        (_bp("120", "19"), "Q-01"),
        (_bp("250", "201"), "Q-01"),
        (_bp("120", pulse="24"), "Q-01"),
        (_bp("120", pulse="25"), None),
        (_bp("120", pulse="250"), None),
        (_bp("120", pulse="251"), "Q-01"),
        (_bp("40.1", "10.7", unit="kPa"), "Q-01"),  # 40.1 × 7.50062 = 300.8 → 301 mmHg
        (_bp("40.0", "10.7", unit="kPa"), None),  # 300.02 → 300 mmHg
        # < 10 or > 700 mg/dL without HI/LO; mmol/L × 18.016 rounded half-up (§1)
        (_m(Kind.GLUCOSE, ("glucose", "9", "mg/dL")), "Q-05"),
        (_m(Kind.GLUCOSE, ("glucose", "1E-300", "mg/dL")), "Q-05"),
        (_m(Kind.GLUCOSE, ("glucose", "10", "mg/dL")), None),
        (_m(Kind.GLUCOSE, ("glucose", "700", "mg/dL")), None),
        (_m(Kind.GLUCOSE, ("glucose", "701", "mg/dL")), "Q-05"),
        (_m(Kind.GLUCOSE, ("glucose", "0.5", "mmol/L")), "Q-05"),  # 9.008 → 9
        (_m(Kind.GLUCOSE, ("glucose", "38.8", "mmol/L")), None),  # 699.02 → 699
        (_m(Kind.GLUCOSE, ("glucose", "38.9", "mmol/L")), "Q-05"),  # 700.82 → 701
        (_m(Kind.GLUCOSE, ("glucose", "750", "mg/dL"), status=("result_high",)), None),
        (_m(Kind.GLUCOSE, ("glucose", "5", "mg/dL"), status=("result_low",)), None),
        (_m(Kind.GLUCOSE, ("glucose", "5", "mg/dL"), status=("control_solution",)), None),
        # weight 20-300 kg, height 100-220 cm (lb → kg × 0.45359237, 0.1 kg half-up)
        (_m(Kind.BODY_WEIGHT, ("weight", "19.9", "kg")), "Q-07"),
        (_m(Kind.BODY_WEIGHT, ("weight", "20", "kg")), None),
        (_m(Kind.BODY_WEIGHT, ("weight", "300", "kg")), None),
        (_m(Kind.BODY_WEIGHT, ("weight", "300.1", "kg")), "Q-07"),
        (_m(Kind.BODY_WEIGHT, ("weight", "661.5", "[lb_av]")), "Q-07"),  # 300.05 → 300.1 kg
        (_m(Kind.BODY_WEIGHT, ("weight", "661.3", "[lb_av]")), None),  # 299.96 → 300.0 kg
        (_m(Kind.BODY_COMPOSITION, ("weight", "70", "kg"), ("height", "0.99", "m")), "Q-07"),
        (_m(Kind.BODY_COMPOSITION, ("weight", "70", "kg"), ("height", "2.21", "m")), "Q-07"),
        (_m(Kind.BODY_COMPOSITION, ("weight", "70", "kg"), ("height", "1.75", "m")), None),
    ],
)
def test_the_bounds_are_the_section_2_table(measurement: Measurement, rule: str | None) -> None:
    found = out_of_bounds(measurement)
    assert (found.rule if found is not None else None) == rule


# The same numbers through the risk engine: a value ingest would store is one the engine's
# quality filter accepts on that rule, and the other way round.
@pytest.mark.parametrize("sys", [49, 50, 300, 301])
def test_ingest_and_the_engine_agree_on_blood_pressure(sys: int) -> None:
    ingest_rule = out_of_bounds(_bp(str(sys), "40"))
    engine_rule = rejected_of(evaluate([bp(ago(hours=1), sys, 40)])).get(0)
    assert (ingest_rule.rule if ingest_rule else None) == engine_rule


@pytest.mark.parametrize("value", [9, 9.4, 9.5, 10, 700, 700.4, 700.5, 701])
def test_ingest_and_the_engine_agree_on_glucose(value: float) -> None:
    ingest_rule = out_of_bounds(_m(Kind.GLUCOSE, ("glucose", str(value), "mg/dL")))
    engine_rule = rejected_of(evaluate([glu(ago(hours=1), value)])).get(0)
    assert (ingest_rule.rule if ingest_rule else None) == engine_rule


@pytest.mark.parametrize("kg", [19.9, 20, 300, 300.1])
def test_ingest_and_the_engine_agree_on_weight(kg: float) -> None:
    ingest_rule = out_of_bounds(_m(Kind.BODY_WEIGHT, ("weight", str(kg), "kg")))
    engine_rule = rejected_of(evaluate([weight(ago(hours=1), kg)])).get(0)
    assert (ingest_rule.rule if ingest_rule else None) == engine_rule


def test_the_engine_and_ingest_read_one_table_of_limits() -> None:
    from clinical import limits, ruleset

    assert ruleset.DEFAULT_RULESET.thresholds.quality == limits.DEFAULT_LIMITS
