"""Blood Pressure Service vectors: Nordic's BPM tests, derdilla's captures, the virtual cuff."""

from __future__ import annotations

from decimal import Decimal

import pytest

from devices.decode import decode_value
from devices.errors import DecodeError
from devices.gatt import blood_pressure as bp
from devices.model import Special
from devices.uuids import BLOOD_PRESSURE_MEASUREMENT

# NordicSemiconductor/Android-BLE-Common-Library BloodPressureMeasurementDataCallbackTest
# onBloodPressureMeasurementReceived_full: 138/88/120 mmHg, year unknown, April 17 20:41:59,
# pulse 60, user 1, status 0b100111.
NORDIC_FULL = bytes.fromhex("1E8A00580078000000041114293B3C00012700")
# ..._some: 18.9/11/15.9 kPa, pulse 60, status 0b010010 (cuff too loose, pulse below range).
NORDIC_SOME = bytes.fromhex("15BDF00B009FF03C001200")
# ..._minimal: 18.9/11/15.9 mmHg, nothing else.
NORDIC_MINIMAL = bytes.fromhex("00BDF00B009FF0")
# ..._toShort and ..._noTimestamp: both must be rejected.
NORDIC_TOO_SHORT = bytes([1, 2, 3, 4, 5, 6])
NORDIC_NO_TIMESTAMP = bytes([3, 2, 3, 4, 5, 6, 7])
# derdilla/blood-pressure-monitor-fl ble_measurement_data_test "decodes sample data":
# 124/86/97 mmHg, 2024-06-15 17:17:27, pulse 51, status present and zero.
DERDILLA_SAMPLE = bytes([22, 124, 0, 86, 0, 97, 0, 232, 7, 6, 15, 17, 17, 27, 51, 0, 0, 0])
# ... "decodes the measurement status flags": status byte 39.
DERDILLA_STATUS = bytes([22, 124, 0, 86, 0, 97, 0, 232, 7, 6, 15, 17, 17, 27, 51, 0, 39, 0])
# ... "decodes the pulse rate range": status 8 (above) and 16 (below).
DERDILLA_ABOVE = bytes([22, 124, 0, 86, 0, 97, 0, 232, 7, 6, 15, 17, 17, 27, 51, 0, 8, 0])
DERDILLA_BELOW = bytes([22, 124, 0, 86, 0, 97, 0, 232, 7, 6, 15, 17, 17, 27, 51, 0, 16, 0])
# shared/reference/virtual-bluez.md, simulated cuff reading 1: 128/82 MAP 97,
# 2024-05-14 07:30:00, pulse 72, user 1.
VIRTUAL_CUFF_1 = bytes.fromhex("0e800052006100e807050e071e00480001")
# ble-profiles.md §1.1 (derdilla #80): a monitor that displayed "Err" sends every value as NaN.
ERR_ALL_NAN = bytes.fromhex("04FF07FF07FF07FF07")


def test_nordic_full() -> None:
    m = bp.decode_measurement(NORDIC_FULL)
    assert (m.systolic, m.diastolic, m.mean_arterial_pressure) == tuple(
        map(Decimal, (138, 88, 120))
    )
    assert m.unit is bp.PressureUnit.MMHG
    assert m.pulse_rate == 60
    assert m.user_id == 1
    assert m.status == (
        "body_movement",
        "cuff_too_loose",
        "irregular_pulse",
        "improper_measurement_position",
    )
    assert m.timestamp is not None
    assert m.timestamp.to_datetime() is None  # year unknown


def test_nordic_full_as_cli_json() -> None:
    out = decode_value("2a35", NORDIC_FULL)
    assert out["timestamp"] is None
    assert out["timestamp_partial"] == {
        "year": 0,
        "month": 4,
        "day": 17,
        "hour": 20,
        "minute": 41,
        "second": 59,
    }
    assert out["status_raw"] == 0b100111
    assert out["unit"] == "mmHg"


def test_nordic_some_kpa() -> None:
    out = decode_value("0x2A35", NORDIC_SOME)
    assert out["unit"] == "kPa"
    assert out["systolic"] == Decimal("18.9")
    assert out["diastolic"] == 11
    assert out["map"] == Decimal("15.9")
    assert out["pulse_rate"] == 60
    assert out["user_id"] is None
    assert out["status"] == ["cuff_too_loose", "pulse_rate_below_lower_limit"]
    assert out["timestamp"] is None


def test_nordic_minimal_has_nulls_for_absent_fields() -> None:
    out = decode_value("2A35", NORDIC_MINIMAL)
    assert out["unit"] == "mmHg"
    assert (out["pulse_rate"], out["user_id"], out["status"], out["status_raw"]) == (
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize("payload", [NORDIC_TOO_SHORT, NORDIC_NO_TIMESTAMP, b""])
def test_nordic_invalid_payloads_are_rejected(payload: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        bp.decode_measurement(payload)
    assert info.value.characteristic == BLOOD_PRESSURE_MEASUREMENT
    assert info.value.payload_hex == payload.hex()
    assert info.value.reason


def test_derdilla_sample() -> None:
    out = decode_value("2a35", DERDILLA_SAMPLE)
    assert (out["systolic"], out["diastolic"], out["map"]) == (124, 86, 97)
    assert out["pulse_rate"] == 51
    assert out["timestamp"] == "2024-06-15T17:17:27"
    assert out["status"] == []
    assert out["status_raw"] == 0
    assert out["user_id"] is None


def test_derdilla_status_bits() -> None:
    assert decode_value("2a35", DERDILLA_STATUS)["status"] == [
        "body_movement",
        "cuff_too_loose",
        "irregular_pulse",
        "improper_measurement_position",
    ]
    assert decode_value("2a35", DERDILLA_ABOVE)["status"] == ["pulse_rate_exceeds_upper_limit"]
    assert decode_value("2a35", DERDILLA_BELOW)["status"] == ["pulse_rate_below_lower_limit"]


def test_pulse_rate_range_3_is_reserved() -> None:
    assert bp.status_names(0b11000) == ("pulse_rate_range_reserved",)


def test_virtual_cuff_reading() -> None:
    m = bp.decode_measurement(VIRTUAL_CUFF_1)
    assert (m.systolic, m.diastolic, m.mean_arterial_pressure, m.pulse_rate) == tuple(
        map(Decimal, (128, 82, 97, 72))
    )
    assert m.user_id == 1
    assert m.timestamp is not None
    when = m.timestamp.to_datetime()
    assert when is not None
    assert when.isoformat() == "2024-05-14T07:30:00"
    assert m.status is None


def test_err_reading_is_nan_strings_never_2047() -> None:
    out = decode_value("2a35", ERR_ALL_NAN)
    assert [out[k] for k in ("systolic", "diastolic", "map", "pulse_rate")] == ["NaN"] * 4


def test_reserved_flag_bits_and_trailing_bytes_are_ignored() -> None:
    # Flags 0xE0: bits 5-7 reserved, no optional field; two trailing bytes.
    m = bp.decode_measurement(bytes.fromhex("E0780052006100AABB"))
    assert (m.systolic, m.diastolic, m.mean_arterial_pressure) == tuple(map(Decimal, (120, 82, 97)))
    assert m.timestamp is None
    assert m.pulse_rate is None


@pytest.mark.parametrize(
    ("flags", "length"),
    [(0x02, 14), (0x04, 9), (0x08, 8), (0x10, 9), (0x1E, 19)],
)
def test_each_announced_field_missing_one_byte_is_rejected(flags: int, length: int) -> None:
    payload = (
        bytes([flags])
        + bytes.fromhex("780052006100")
        + bytes.fromhex("E807050E071E00480001 0000".replace(" ", ""))
    )
    # Take exactly one byte less than the flags announce.
    with pytest.raises(DecodeError):
        bp.decode_measurement(payload[: length - 1])


def test_intermediate_cuff_pressure_ignores_diastolic_and_map() -> None:
    # GSS: diastolic and MAP sub-fields are unused; Nordic's tests put 0 there.
    out = decode_value("2a36", bytes.fromhex("005F0000000000"))
    assert out["cuff_pressure"] == 95
    assert "systolic" not in out
    assert "map" not in out
    value = bp.decode_intermediate_cuff_pressure(bytes.fromhex("045F00FF07FF074800"))
    assert value.cuff_pressure == 95
    assert value.pulse_rate == 72


def test_feature_names_in_bit_order() -> None:
    # ble-profiles.md §3.3: bits 0-8; 0x01FF sets all nine.
    out = decode_value("2a49", bytes.fromhex("FF01"))
    assert out["features"] == [
        "body_movement_detection",
        "cuff_fit_detection",
        "irregular_pulse_detection",
        "pulse_rate_range_detection",
        "measurement_position_detection",
        "multiple_bond",
        "e2e_crc",
        "user_data_service",
        "user_facing_time",
    ]
    assert out["features_raw"] == 0x01FF


def test_encoder_writes_the_virtual_cuff_bytes() -> None:
    from devices.ieee11073 import DateTime

    value = bp.BloodPressureMeasurement(
        Decimal(128),
        Decimal(82),
        Decimal(97),
        bp.PressureUnit.MMHG,
        DateTime(2024, 5, 14, 7, 30, 0),
        Decimal(72),
        1,
    )
    assert bp.encode_measurement(value) == VIRTUAL_CUFF_1


def test_encoder_writes_nan_into_unused_cuff_fields() -> None:
    raw = bp.encode_intermediate_cuff_pressure(bp.IntermediateCuffPressure(Decimal(95)))
    assert raw == bytes.fromhex("005F00FF07FF07")
    assert bp.decode_intermediate_cuff_pressure(raw).cuff_pressure == 95
    assert Special.NAN.value == "NaN"
