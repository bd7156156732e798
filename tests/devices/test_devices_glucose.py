"""Glucose Service and RACP vectors: Nordic's GLS tests and the examples in ble-profiles.md."""

from __future__ import annotations

from decimal import Decimal

import pytest

from devices.decode import decode_value
from devices.errors import DecodeError
from devices.gatt import glucose as gls
from devices.gatt import racp
from devices.ieee11073 import DateTime
from devices.uuids import GLUCOSE_MEASUREMENT, RECORD_ACCESS_CONTROL_POINT

# Nordic GlucoseMeasurementDataCallbackTest.onGlucoseMeasurementReceived: flags 0b011011,
# seq 1, 2019-02-27 11:10:30, offset -5 min, 30 kg/L (SFLOAT 0x001E), type 2 location 1,
# status 0x0105.
NORDIC_GLUCOSE = bytes(
    [0x1B, 1, 0, 0xE3, 0x07, 2, 27, 11, 10, 30, 0xFB, 0xFF, 30, 0, 0x12, 0x05, 0x01]
)
# Nordic ...onInvalidDataReceived: same flags, time offset missing (15 bytes for 17 announced).
NORDIC_GLUCOSE_INVALID = bytes([0x1B, 0, 0, 0xE2, 0x07, 4, 26, 11, 9, 30, 30, 0, 0x12, 0b101, 0b1])
# ble-profiles.md §4.1: 105 mg/dL = 105e-5 kg/L = bytes 69 B0; 5.8 mmol/L = 0xC03A.
MG_DL_105 = bytes.fromhex("020700E8070A0108000069B011")
MMOL_5_8 = bytes.fromhex("060800E8070A010800003AC011")


def test_nordic_measurement() -> None:
    out = decode_value("2a18", NORDIC_GLUCOSE)
    assert out["sequence_number"] == 1
    assert out["base_time"] == "2019-02-27T11:10:30"
    assert out["time_offset_min"] == -5
    assert out["timestamp"] == "2019-02-27T11:05:30"
    assert out["glucose_concentration"] == 30
    assert out["unit"] == "kg/L"
    assert out["glucose_mg_dl"] == 3_000_000
    assert out["glucose_mmol_l"] is None
    assert (out["sample_type"], out["sample_location"]) == (2, 1)
    # 0x0105 = bits 0, 2, 8 in the SIG-XML order (ble-profiles.md §4.1).
    assert out["sensor_status"] == [
        "device_battery_low",
        "sample_size_insufficient",
        "sensor_temperature_too_low",
    ]
    assert out["sensor_status_raw"] == 261
    assert out["context_follows"] is True


def test_nordic_missing_time_offset_is_rejected() -> None:
    with pytest.raises(DecodeError) as info:
        gls.decode_measurement(NORDIC_GLUCOSE_INVALID)
    assert info.value.characteristic == GLUCOSE_MEASUREMENT


def test_105_mg_dl_example_keeps_exact_digits() -> None:
    out = decode_value("2a18", MG_DL_105)
    assert out["glucose_concentration"] == Decimal("0.00105")
    assert str(out["glucose_mg_dl"]) == "105"
    assert out["unit"] == "kg/L"
    assert out["time_offset_min"] is None
    assert out["timestamp"] == out["base_time"] == "2024-10-01T08:00:00"
    assert (out["sample_type"], out["sample_location"]) == (1, 1)


def test_5_8_mmol_l_example() -> None:
    out = decode_value("2a18", MMOL_5_8)
    assert out["unit"] == "mol/L"
    assert str(out["glucose_mmol_l"]) == "5.8"
    assert out["glucose_mg_dl"] is None


def test_status_bit_5_is_higher_and_bit_6_lower_as_sig_says() -> None:
    # Nordic's Android parser swaps them; ble-profiles.md §4.1 says follow SIG-XML.
    high = bytes.fromhex("0A0100E8070A01080000FE07112000")
    low = bytes.fromhex("0A0100E8070A010800000208114000")
    assert decode_value("2a18", high)["sensor_status"] == ["result_higher_than_device_can_process"]
    assert decode_value("2a18", high)["glucose_concentration"] == "+INF"
    assert decode_value("2a18", high)["glucose_mg_dl"] is None
    assert decode_value("2a18", low)["sensor_status"] == ["result_lower_than_device_can_process"]
    assert decode_value("2a18", low)["glucose_concentration"] == "-INF"


@pytest.mark.parametrize("type_location", [0x1A, 0x41])  # type 10 / location 4
def test_control_solution_is_recognised_by_type_or_location(type_location: int) -> None:
    payload = bytes.fromhex("020300E8070A0108000069B0") + bytes([type_location])
    assert gls.decode_measurement(payload).is_control_solution


def test_unknown_base_date_gives_partial_timestamp() -> None:
    payload = bytes.fromhex("03040000000000 0A1E00".replace(" ", "") + "050069B011")
    out = decode_value("2a18", payload)
    assert out["base_time"] is None
    assert out["timestamp"] is None
    assert out["timestamp_partial"] == {
        "year": 0,
        "month": 0,
        "day": 0,
        "hour": 10,
        "minute": 30,
        "second": 0,
    }


def test_base_time_month_13_is_rejected_without_a_quirk() -> None:
    with pytest.raises(DecodeError):
        gls.decode_measurement(bytes.fromhex("020100E7070D0508000069B011"))


def test_time_offset_beyond_the_calendar_is_rejected() -> None:
    with pytest.raises(DecodeError):
        gls.decode_measurement(bytes.fromhex("0101000F270C1F173B003C00"))


def test_context_nordic_layout() -> None:
    # Nordic GlucoseMeasurementContextDataCallbackTest (full): flags 0xFF, seq 0, extended
    # flags 0xB3, carbohydrate dinner (3), meal casual (4), tester HCP / health minor (0x12),
    # exercise 60 s at 50 %, long-acting insulin (4) in litres (flag bit 5), HbA1c.
    # The SFLOATs are written here by hand: carbs 0x0064 = 100, medication 0xF4D2 = 123.4,
    # HbA1c 0xF159 = 34.5.
    payload = bytes.fromhex("FF0000B303640004123C003204D2F459F1")
    out = decode_value("2a34", payload)
    assert out["sequence_number"] == 0
    assert out["extended_flags"] == 0xB3
    assert out["carbohydrate_id"] == 3
    assert out["carbohydrate_kg"] == 100
    assert out["meal"] == 4
    assert (out["tester"], out["health"]) == (2, 1)
    assert (out["exercise_duration_s"], out["exercise_intensity_pct"]) == (60, 50)
    assert out["medication_id"] == 4
    assert out["medication_l"] == Decimal("123.4")
    assert "medication_kg" not in out
    assert out["hba1c_pct"] == Decimal("34.5")


def test_context_with_missing_hba1c_is_rejected() -> None:
    # Nordic ...onInvalidDataReceived: flags announce HbA1c but the payload stops before it.
    with pytest.raises(DecodeError):
        gls.decode_context(bytes.fromhex("FF0000B303640004123C003204D2F4"))


def test_context_reserved_meal_is_returned_raw() -> None:
    assert decode_value("2a34", bytes.fromhex("02050006"))["meal"] == 6


def test_glucose_feature() -> None:
    out = decode_value("2a51", bytes.fromhex("0104"))  # bits 0 and 10
    assert out["features"] == ["low_battery_detection", "multiple_bond"]


# --- RACP (ble-profiles.md §4.4, §7.3) ----------------------------------------------------------


def test_racp_report_records_greater_or_equal_10() -> None:
    out = decode_value("2a52", bytes.fromhex("0103010A00"))
    assert (out["op_code"], out["operator"], out["filter_type"]) == (1, 3, 1)
    assert (out["min_sequence"], out["max_sequence"]) == (10, None)
    assert racp.report_records_from(10) == bytes.fromhex("0103010A00")


@pytest.mark.parametrize(
    ("payload", "builder"),
    [
        ("0101", racp.report_all_records),
        ("0401", racp.count_all_records),
        ("0300", racp.abort_operation),
        ("0106", racp.report_last_record),
        ("0105", racp.report_first_record),
    ],
)
def test_racp_gateway_requests(payload: str, builder: object) -> None:
    assert callable(builder)
    assert builder() == bytes.fromhex(payload)


def test_racp_count_from() -> None:
    assert racp.count_records_from(0x1234) == bytes.fromhex("0403013412")


def test_racp_number_of_records_response() -> None:
    out = decode_value("2a52", bytes.fromhex("05002A00"))
    assert out["op_code"] == 5
    assert out["number_of_records"] == 42


@pytest.mark.parametrize(
    ("payload", "code", "name"),
    [
        ("06000101", 1, "success"),
        ("06000106", 6, "no_records_found"),
        ("06000402", 2, "op_code_not_supported"),
        ("06000109", 9, "operand_not_supported"),
        ("0600010A", 10, None),  # "server busy" in later text; reserved in GLS 1.0: raw
    ],
)
def test_racp_response_codes(payload: str, code: int, name: str | None) -> None:
    out = decode_value("2a52", bytes.fromhex(payload))
    assert out["response_code"] == code
    assert out["response_name"] == name
    assert out["request_op_code"] == int(payload[4:6], 16)


def test_racp_within_range_and_time_filter() -> None:
    value = racp.decode_racp(bytes.fromhex("0104010A001400"))
    assert isinstance(value, racp.RacpRequest)
    assert (value.min_sequence, value.max_sequence) == (10, 20)
    value = racp.decode_racp(bytes.fromhex("010202E8070A01080000"))
    assert isinstance(value, racp.RacpRequest)
    assert value.max_time == DateTime(2024, 10, 1, 8, 0, 0)


@pytest.mark.parametrize(
    "payload",
    ["", "01", "0103010A", "010301", "0103", "05000A", "060001", "0104010A00", "010402E807"],
)
def test_racp_truncated_values_are_rejected(payload: str) -> None:
    with pytest.raises(DecodeError) as info:
        racp.decode_racp(bytes.fromhex(payload))
    assert info.value.characteristic == RECORD_ACCESS_CONTROL_POINT


# Spec-strict RACP (GLS 1.0 §3.3.3, CGMS 1.0.1 §3.4, ble-profiles.md §4.4): the operator and
# operand length each op code allows, and nothing else, is a value.
@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ("05010A00", "number of records response with operator 1, not Null"),
        ("05000A0000", "number of records response with a 3-byte operand"),
        ("06010101", "response code with operator 1, not Null"),
        ("0600010100", "response code with a 3-byte operand"),
        ("110001000000", "Omron latest sequence with a 4-byte operand"),
        ("0301", "abort with operator 1"),
        ("030000", "abort with an operand"),
        ("0100", "report stored records with the Null operator"),
        ("0107", "report stored records with reserved operator 7"),
        ("040F", "count with reserved operator 15"),
        ("010100", "all records with an operand"),
        ("010600", "last record with an operand"),
        ("0103010A0000", "greater or equal with a 3-byte sequence number"),
        ("0104010A0014000000", "within range with a trailing byte"),
        ("0103030A00", "reserved filter type 3"),
    ],
)
def test_racp_values_the_profiles_do_not_allow_are_errors(payload: str, why: str) -> None:
    with pytest.raises(DecodeError) as info:
        racp.decode_racp(bytes.fromhex(payload))
    assert info.value.characteristic == RECORD_ACCESS_CONTROL_POINT, why
    assert info.value.payload_hex == payload.lower()


def test_racp_cgm_time_offset_filter_decodes() -> None:
    # CGMS's filter type 1 is the time offset (uint16 minutes), laid out as GLS's sequence number
    value = racp.decode_racp(bytes.fromhex("0103013C00"))
    assert isinstance(value, racp.RacpRequest)
    assert value.min_sequence == 60
