"""BLS 1.1 Enhanced Blood Pressure Measurement 0x2B34, Enhanced Intermediate Cuff Pressure
0x2B35 and Blood Pressure Record 0x2B36 (ble-profiles.md §3.4; GSS enhanced_blood_pressure_
measurement and blood_pressure_record). Vectors are written field by field from that layout:

    0x2B34: flags | systolic, diastolic, MAP (SFLOAT) | time stamp uint32 (bit 1) | pulse SFLOAT
            (bit 2) | user uint8 (bit 3) | status uint16 (bit 4) | user facing time uint32
            (bit 5); bit 0 kPa, bit 6 epoch 2000-01-01 (else 1900-01-01)
    0x2B36: header (bit 0 first, bit 1 last, bits 2-7 counter) | sequence uint16 | UUID uint16 |
            recorded value | E2E-CRC (when the feature says so)

Time stamps: 2025-03-04 00:15:00 UTC is 9194 days + 900 s after 2000-01-01 (25 years with 7
leap days, then 31 + 28 + 3 days) = 794,362,500 s = 0x2F590284; after 1900-01-01 add 36,524
days (24 leap years: 1900 is not one) = 3,950,036,100 s = 0xEB70C484. The user facing time is
the monitor's Korean wall clock, 09:15 = +32,400 s = 0x2F598114.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from devices.decode import decode_value
from devices.errors import DecodeError
from devices.gatt import enhanced_bp as ebp
from devices.gatt.blood_pressure import PressureUnit
from devices.gatt.cgm import crc16_mcrf4xx
from devices.model import Kind
from devices.records import decode_record
from devices.uuids import (
    BLOOD_PRESSURE_RECORD,
    ENHANCED_BLOOD_PRESSURE_MEASUREMENT,
    ENHANCED_INTERMEDIATE_CUFF_PRESSURE,
)

# flags 0x7E: time stamp, pulse, user, status, user facing time, epoch 2000; mmHg
# 120 / 80 / 93 mmHg = 0x0078, 0x0050, 0x005D; pulse 72 = 0x0048; user 1;
# status 0x0005 = body movement + irregular pulse
FULL = bytes.fromhex("7e780050005d008402592f48000105001481592f")
EPOCH_1900 = bytes.fromhex("02780050005d0084c470eb")
KPA = bytes.fromhex("01a0f06bf07cf0")  # 16.0 / 10.7 / 12.4 kPa (SFLOAT exponent -1)


def test_enhanced_measurement_with_every_field() -> None:
    value = ebp.decode_enhanced_measurement(FULL)
    assert (value.systolic, value.diastolic, value.mean_arterial_pressure) == (
        Decimal(120),
        Decimal(80),
        Decimal(93),
    )
    assert value.unit is PressureUnit.MMHG
    assert value.utc_time == datetime(2025, 3, 4, 0, 15, tzinfo=UTC)
    assert value.user_facing_time == datetime(2025, 3, 4, 9, 15)
    assert value.pulse_rate == Decimal(72)
    assert value.user_id == 1
    assert value.status == ("body_movement", "irregular_pulse")


def test_enhanced_time_stamp_from_the_1900_epoch() -> None:
    value = ebp.decode_enhanced_measurement(EPOCH_1900)
    assert value.utc_time == datetime(2025, 3, 4, 0, 15, tzinfo=UTC)
    assert value.user_facing_time is None
    assert value.pulse_rate is None


def test_enhanced_kpa() -> None:
    value = ebp.decode_enhanced_measurement(KPA)
    assert value.unit is PressureUnit.KPA
    assert (value.systolic, value.diastolic, value.mean_arterial_pressure) == (
        Decimal("16.0"),
        Decimal("10.7"),
        Decimal("12.4"),
    )


@pytest.mark.parametrize(
    "payload",
    [
        FULL[:-1],  # the user facing time is one byte short
        FULL + b"\x00",  # a byte the flags do not announce
        EPOCH_1900[:-4],  # the time stamp announced but absent
        bytes.fromhex("00780050005d"),  # six bytes: the MAP is cut
    ],
)
def test_enhanced_lengths_are_exact(payload: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        ebp.decode_enhanced_measurement(payload)
    assert info.value.characteristic == ENHANCED_BLOOD_PRESSURE_MEASUREMENT
    assert info.value.payload_hex == payload.hex()


def test_enhanced_cuff_pressure_is_a_live_value() -> None:
    data = bytes.fromhex("007800ff07ff07")  # cuff 120 mmHg, two unused NaN
    [measurement] = decode_record([(ENHANCED_INTERMEDIATE_CUFF_PRESSURE, data)])
    assert measurement.kind is Kind.CUFF_PRESSURE
    assert measurement.components[0].value == Decimal(120)


def test_the_cli_decodes_the_enhanced_measurement() -> None:
    out = decode_value("2b34", FULL)
    assert (out["systolic"], out["diastolic"], out["map"]) == (120, 80, 93)
    assert out["time_stamp_utc"] == "2025-03-04T00:15:00+00:00"
    assert out["user_facing_time"] == "2025-03-04T09:15:00"
    assert out["epoch_start"] == 2000


def test_an_enhanced_measurement_is_a_blood_pressure_record_at_the_monitors_time() -> None:
    [m] = decode_record([(ENHANCED_BLOOD_PRESSURE_MEASUREMENT, FULL)])
    assert m.kind is Kind.BLOOD_PRESSURE
    assert [(c.code, c.value, c.unit) for c in m.components] == [
        ("systolic", Decimal(120), "mm[Hg]"),
        ("diastolic", Decimal(80), "mm[Hg]"),
        ("mean", Decimal(93), "mm[Hg]"),
        ("pulse", Decimal(72), "/min"),
    ]
    assert m.device_time == datetime(2025, 3, 4, 9, 15)
    assert m.user_index == 1
    assert m.context_value("utc_time") == "2025-03-04T00:15:00+00:00"


# --- Blood Pressure Record 0x2B36 -----------------------------------------------------------

# header 0x03: first and last segment, counter 0; sequence 7; recorded UUID 0x2B34
RECORD = bytes.fromhex("030700342b") + FULL


def test_a_one_segment_record() -> None:
    record = ebp.decode_record(RECORD)
    assert (record.first_segment, record.last_segment, record.segment_counter) == (True, True, 0)
    assert record.sequence_number == 7
    assert record.recorded_uuid == ENHANCED_BLOOD_PRESSURE_MEASUREMENT
    [m] = decode_record([(BLOOD_PRESSURE_RECORD, RECORD)])
    assert m.sequence_number == 7
    assert m.device_time == datetime(2025, 3, 4, 9, 15)
    assert m.components[0].value == Decimal(120)
    out = decode_value("2b36", RECORD)
    assert out["recorded_uuid"] == "0x2B34"
    assert out["recorded"]["systolic"] == 120


def test_a_record_with_an_e2e_crc() -> None:
    # CRC-16/MCRF4XX over everything before it (the same check as CGMS: "123456789" → 0x6F91)
    assert crc16_mcrf4xx(b"123456789") == 0x6F91
    crc = crc16_mcrf4xx(RECORD)
    sent = RECORD + crc.to_bytes(2, "little")
    record = ebp.decode_record(sent, e2e_crc=True)
    assert record.crc_present
    assert record.recorded == FULL
    [m] = decode_record([(BLOOD_PRESSURE_RECORD, sent)])  # found by its matching CRC
    assert m.sequence_number == 7
    with pytest.raises(DecodeError, match="E2E-CRC mismatch"):
        ebp.decode_record(RECORD + (crc ^ 1).to_bytes(2, "little"), e2e_crc=True)


def test_a_record_in_two_segments_is_joined() -> None:
    first = bytes.fromhex("010700342b") + FULL[:10]  # first, counter 0
    last = bytes.fromhex("060700342b") + FULL[10:]  # last, counter 1 (1 << 2 | 0x02)
    [m] = decode_record([(BLOOD_PRESSURE_RECORD, first), (BLOOD_PRESSURE_RECORD, last)])
    assert m.sequence_number == 7
    assert m.user_index == 1
    with pytest.raises(DecodeError, match="missing"):
        decode_record([(BLOOD_PRESSURE_RECORD, first)])
    skipped = bytes.fromhex("0a0700342b") + FULL[10:]  # counter 2: one segment lost
    with pytest.raises(DecodeError, match="counter"):
        decode_record([(BLOOD_PRESSURE_RECORD, first), (BLOOD_PRESSURE_RECORD, skipped)])


def test_a_record_of_a_classic_measurement() -> None:
    data = bytes.fromhex("030800352a00780050005d00")  # 0x2A35, 120/80/93
    [m] = decode_record([(BLOOD_PRESSURE_RECORD, data)])
    assert m.sequence_number == 8
    assert [c.value for c in m.components] == [Decimal(120), Decimal(80), Decimal(93)]


def test_a_record_of_something_else_is_an_error() -> None:
    data = bytes.fromhex("030900182a00")  # a glucose measurement UUID
    with pytest.raises(DecodeError) as info:
        decode_value("2b36", data)
    assert info.value.characteristic == BLOOD_PRESSURE_RECORD
