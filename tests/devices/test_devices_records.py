"""decode_record: characteristic values → normalised Measurements (units, codes, markers)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from devices.errors import DecodeError, UnknownCharacteristic
from devices.model import COMPONENT_CODES, Kind, Special
from devices.quirks import is_patient_result
from devices.records import decode_record
from devices.uuids import BLOOD_PRESSURE_MEASUREMENT, GLUCOSE_MEASUREMENT_CONTEXT

from .test_devices_blood_pressure import ERR_ALL_NAN, NORDIC_FULL, NORDIC_SOME, VIRTUAL_CUFF_1
from .test_devices_glucose import MG_DL_105, MMOL_5_8
from .test_devices_misc_characteristics import CGM_DOUBLE
from .test_devices_scales import BCS_PACKET_1, BCS_PACKET_2, WEIGHT_70KG


def components(measurement: object) -> dict[str, tuple[object, str, object]]:
    return {c.code: (c.value, c.unit, c.special) for c in measurement.components}  # type: ignore[attr-defined]


def test_blood_pressure_record() -> None:
    (m,) = decode_record([("2a35", VIRTUAL_CUFF_1)])
    assert m.kind is Kind.BLOOD_PRESSURE
    assert components(m) == {
        "systolic": (128, "mm[Hg]", None),
        "diastolic": (82, "mm[Hg]", None),
        "mean": (97, "mm[Hg]", None),
        "pulse": (72, "/min", None),
    }
    assert m.device_time == datetime(2024, 5, 14, 7, 30)
    assert m.user_index == 1
    assert m.status == ()
    assert m.characteristic == BLOOD_PRESSURE_MEASUREMENT
    assert m.raw == VIRTUAL_CUFF_1
    assert is_patient_result(m)
    assert all(c.code in COMPONENT_CODES for c in m.components)


def test_kpa_stays_kpa_and_status_is_named() -> None:
    (m,) = decode_record([("0x2A35", NORDIC_SOME)])
    assert components(m)["systolic"] == (Decimal("18.9"), "kPa", None)
    assert m.status == ("cuff_too_loose", "pulse_rate_below_lower_limit")


def test_partial_device_time_is_none() -> None:
    (m,) = decode_record([("2a35", NORDIC_FULL)])
    assert m.device_time is None


def test_err_reading_becomes_specials_without_values() -> None:
    (m,) = decode_record([("2a35", ERR_ALL_NAN)])
    assert {c.special for c in m.components} == {Special.NAN}
    assert all(c.value is None for c in m.components)


def test_intermediate_cuff_pressure_is_a_live_value() -> None:
    (m,) = decode_record([("2a36", bytes.fromhex("005F00FF07FF07"))])
    assert m.kind is Kind.CUFF_PRESSURE
    assert components(m) == {"cuff": (95, "mm[Hg]", None)}
    assert not is_patient_result(m)


CONTEXT_SEQ_7 = bytes.fromhex("0607000112")  # meal preprandial, tester HCP, health minor


def test_glucose_joined_with_context() -> None:
    (m,) = decode_record([("2a18", MG_DL_105), ("2a34", CONTEXT_SEQ_7)], calibration="plasma")
    assert m.kind is Kind.GLUCOSE
    assert components(m) == {"glucose": (Decimal(105), "mg/dL", None)}
    assert str(m.components[0].value) == "105"
    assert m.sequence_number == 7
    assert m.device_time == datetime(2024, 10, 1, 8, 0)
    assert dict(m.context) == {
        "sample_type": "capillary_whole_blood",
        "sample_location": "finger",
        "meal": "preprandial",
        "tester": "health_care_professional",
        "health": "minor_health_issues",
        "calibration": "plasma",
    }


def test_glucose_mmol_keeps_its_unit() -> None:
    (m,) = decode_record([("2a18", MMOL_5_8)])
    assert components(m) == {"glucose": (Decimal("5.8"), "mmol/L", None)}


def test_control_solution_is_marked_not_dropped() -> None:
    payload = bytes.fromhex("020300E8070A0108000069B01A")  # type 10
    (m,) = decode_record([("2a18", payload)])
    assert "control_solution" in m.status
    assert not is_patient_result(m)


@pytest.mark.parametrize(
    "values",
    [
        # context announced (flags bit 4) but not given
        [("2a18", bytes.fromhex("120700E8070A0108000069B011"))],
        # context for another sequence number
        [("2a18", MG_DL_105), ("2a34", bytes.fromhex("02080001"))],
        # two contexts
        [("2a18", MG_DL_105), ("2a34", CONTEXT_SEQ_7), ("2a34", CONTEXT_SEQ_7)],
        # no concentration (flags bit 1 clear)
        [("2a18", bytes.fromhex("000700E8070A01080000"))],
        # something else after the measurement
        [("2a18", MG_DL_105), ("2a19", b"\x64")],
    ],
)
def test_incomplete_glucose_records_are_rejected(values: list[tuple[str, bytes]]) -> None:
    with pytest.raises(DecodeError):
        decode_record(values)


def test_context_mismatch_names_the_context() -> None:
    with pytest.raises(DecodeError) as info:
        decode_record([("2a18", MG_DL_105), ("2a34", bytes.fromhex("02080001"))])
    assert info.value.characteristic == GLUCOSE_MEASUREMENT_CONTEXT


def test_weight_record() -> None:
    (m,) = decode_record([("2a9d", WEIGHT_70KG)])
    assert m.kind is Kind.BODY_WEIGHT
    assert components(m) == {"weight": (Decimal(70), "kg", None)}
    (lb,) = decode_record([("2a9d", bytes.fromhex("09483CF500B202"))])
    assert components(lb) == {
        "weight": (Decimal("154.32"), "[lb_av]", None),
        "height": (Decimal("69.0"), "[in_i]", None),
        "bmi": (Decimal("24.5"), "kg/m2", None),
    }


def test_unsuccessful_weight_is_marked() -> None:
    (m,) = decode_record([("2a9d", bytes.fromhex("00FFFF"))])
    assert components(m) == {"weight": (None, "kg", Special.NAN)}
    assert "measurement_unsuccessful" in m.status
    assert not is_patient_result(m)


def test_body_composition_packets_make_one_record() -> None:
    (m,) = decode_record([("2a9c", BCS_PACKET_1), ("2a9c", BCS_PACKET_2)])
    assert m.kind is Kind.BODY_COMPOSITION
    found = components(m)
    assert found["body_fat"] == (Decimal("25.0"), "%", None)
    assert found["basal_metabolism"] == (Decimal(6000), "kJ", None)
    assert found["impedance"] == (Decimal("500.0"), "Ohm", None)
    assert found["weight"] == (Decimal("65.000"), "kg", None)
    assert found["height"] == (Decimal("1.700"), "m", None)
    assert m.user_index == 1
    assert m.raw == BCS_PACKET_1 + BCS_PACKET_2


def test_a_lone_multi_packet_fragment_is_not_a_record() -> None:
    with pytest.raises(DecodeError):
        decode_record([("2a9c", BCS_PACKET_1)])


def test_cgm_notification_gives_one_measurement_per_record() -> None:
    ms = decode_record([("2aa7", CGM_DOUBLE)])
    assert [m.kind for m in ms] == [Kind.CGM, Kind.CGM]
    assert [m.context_value("time_offset_min") for m in ms] == ["5", "6"]
    assert all(components(m) == {"glucose": (Decimal(120), "mg/dL", None)} for m in ms)


def test_temperature_record() -> None:
    (m,) = decode_record([("2a1c", bytes.fromhex("06B00E00FEDC070C050B321B04"))])
    assert m.kind is Kind.BODY_TEMPERATURE
    assert components(m) == {"temperature": (Decimal("37.60"), "Cel", None)}
    assert str(m.components[0].value) == "37.60"


def test_not_a_measurement_characteristic() -> None:
    with pytest.raises(UnknownCharacteristic):
        decode_record([("2a19", b"\x64")])
    with pytest.raises(UnknownCharacteristic):
        decode_record([("not-a-uuid", b"")])


def test_single_value_records_refuse_extra_values() -> None:
    with pytest.raises(DecodeError):
        decode_record([("2a35", VIRTUAL_CUFF_1), ("2a35", VIRTUAL_CUFF_1)])
    with pytest.raises(DecodeError):
        decode_record([])


def test_bad_calibration_is_refused() -> None:
    with pytest.raises(ValueError, match="calibration"):
        decode_record([("2a18", MG_DL_105)], calibration="venous")
