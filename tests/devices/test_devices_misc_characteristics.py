"""Time, battery, Device Information, CGM and thermometer vectors."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from devices.decode import decode_value
from devices.errors import DecodeError
from devices.gatt import cgm, current_time, thermometer
from devices.model import Kind
from devices.records import decode_record

# --- Current Time / Local Time Information / Date Time (ble-profiles.md §6) ---------------------


def test_current_time() -> None:
    # 2026-03-04 10:02:11, Wednesday (3), fractions 0x80, adjust reason manual + time zone.
    out = decode_value("2a2b", bytes.fromhex("EA0703040A020B038005"))
    assert out["timestamp"] == "2026-03-04T10:02:11"
    assert out["day_of_week"] == 3
    assert out["fractions256"] == 128
    assert out["adjust_reason"] == ["manual_time_update", "time_zone_change"]


def test_current_time_write_payload_for_a_gateway() -> None:
    value = current_time.current_time_for(datetime(2026, 3, 4, 10, 2, 11))
    assert current_time.encode_current_time(value) == bytes.fromhex("EA0703040A020B030000")


def test_current_time_needs_ten_bytes() -> None:
    with pytest.raises(DecodeError):
        current_time.decode_current_time(bytes.fromhex("EA0703040A020B0300"))


def test_local_time_information_seoul() -> None:
    # ble-profiles.md §6: Seoul = +36 quarter hours, no DST → 24 00.
    out = decode_value("2a0f", bytes.fromhex("2400"))
    assert out == {"time_zone_quarter_hours": 36, "utc_offset_min": 540, "dst_offset_code": 0}
    unknown = decode_value("2a0f", bytes.fromhex("80FF"))
    assert unknown["utc_offset_min"] is None
    with pytest.raises(DecodeError):
        decode_value("2a0f", bytes.fromhex("3900"))  # +57 quarter hours does not exist


def test_date_time_characteristic() -> None:
    assert decode_value("2a08", bytes.fromhex("E807050E071E00"))["timestamp"] == (
        "2024-05-14T07:30:00"
    )
    with pytest.raises(DecodeError):
        decode_value("2a08", bytes.fromhex("E8070D0E071E00"))


# --- Battery and Device Information -------------------------------------------------------------


def test_battery_level() -> None:
    assert decode_value("2a19", bytes([100])) == {"battery_level_pct": 100}
    assert decode_value("2a19", bytes([0])) == {"battery_level_pct": 0}
    for payload in (bytes([101]), bytes([255]), b""):
        with pytest.raises(DecodeError):
            decode_value("2a19", payload)


@pytest.mark.parametrize("uuid", ["2a29", "2a24", "2a25", "2a26", "2a27", "2a28"])
def test_device_information_strings(uuid: str) -> None:
    assert decode_value(uuid, b"A&D Medical")["text"] == "A&D Medical"
    assert decode_value(uuid, b"UA-651BLE\x00\x00")["text"] == "UA-651BLE"
    assert decode_value(uuid, "행복다온".encode())["text"] == "행복다온"
    with pytest.raises(DecodeError):
        decode_value(uuid, b"\xff\xfe")


def test_system_id_and_pnp_id() -> None:
    # ble-profiles.md §2: from a BD_ADDR the System ID is OUI + 0xFFFE + company-assigned part,
    # LSO first. Address C4:7C:8D:6A:1B:22 → identifier 0xFFFE6A1B22, OUI 0xC47C8D.
    out = decode_value("2a23", bytes.fromhex("221B6AFEFF8D7CC4"))
    assert out["manufacturer_identifier"] == 0xFFFE6A1B22
    assert out["oui"] == 0xC47C8D
    pnp = decode_value("2a50", bytes.fromhex("010E0234120100"))
    assert (pnp["vendor_id_source"], pnp["vendor_id"]) == (1, 0x020E)  # Omron's company id
    assert (pnp["product_id"], pnp["product_version"]) == (0x1234, 1)


# --- CGM (Nordic ContinuousGlucoseMeasurementDataCallbackTest, CRC16Test) -----------------------

# _full: size 15, flags 0b11100011, 12.34 mg/dL, offset 5, octets 02 14 FF, trend 0.2,
# quality 99.7, E2E-CRC 0x3F8E (valid).
CGM_FULL = bytes.fromhex("0FE3D2E405000214FF02F0E5F38E3F")
# _small: size 6, no options, 12 × 10^1 = 120 mg/dL, offset 6.
CGM_SMALL = bytes.fromhex("06000C100600")
# _double: two small records, offsets 5 and 6.
CGM_DOUBLE = bytes.fromhex("06000C10050006000C100600")
# _crcError: size 8, CRC 0x6F58 where 0x6F59 is right.
CGM_CRC_ERROR = bytes.fromhex("08000C100600586F")


def test_cgm_full_record_through_the_record_path() -> None:
    # Nordic's _full record (every optional field, E2E-CRC) followed by its _small one, in one
    # notification, as the gateway hands it to devices.records and ingest
    full, small = decode_record([("2aa7", CGM_FULL + CGM_SMALL)])
    assert full.kind is Kind.CGM
    assert full.components[0].value == Decimal("12.34")
    assert full.components[0].unit == "mg/dL"
    assert full.status[:3] == (
        "device_battery_low",
        "calibration_recommended",
        "sensor_temperature_too_high",
    )
    assert len(full.status) == 3 + 8  # 0xFF: every warning bit
    assert full.context_value("time_offset_min") == "5"
    assert full.context_value("trend_mg_dl_min") == "0.2"
    assert full.context_value("quality_pct") == "99.7"
    assert small.components[0].value == Decimal(120)
    assert small.context_value("time_offset_min") == "6"


def test_cgm_full_record() -> None:
    (record,) = decode_value("2aa7", CGM_FULL)["records"]
    assert record["glucose_mg_dl"] == Decimal("12.34")
    assert record["time_offset_min"] == 5
    assert record["trend_mg_dl_min"] == Decimal("0.2")
    assert record["quality_pct"] == Decimal("99.7")
    assert record["e2e_crc_valid"] is True
    annunciation = record["annunciation"]
    assert annunciation["status"] == ["device_battery_low"]
    assert annunciation["cal_temp"] == ["calibration_recommended", "sensor_temperature_too_high"]
    assert len(annunciation["warning"]) == 8  # 0xFF: every warning bit


def test_cgm_small_and_double() -> None:
    (small,) = decode_value("2aa7", CGM_SMALL)["records"]
    assert small["glucose_mg_dl"] == 120
    assert small["time_offset_min"] == 6
    assert small["annunciation"] is None
    assert small["trend_mg_dl_min"] is None
    assert small["e2e_crc_valid"] is None
    offsets = [r["time_offset_min"] for r in decode_value("2aa7", CGM_DOUBLE)["records"]]
    assert offsets == [5, 6]


@pytest.mark.parametrize(
    "payload",
    [
        CGM_CRC_ERROR,
        b"",
        bytes.fromhex("06E30C1006"),  # Nordic _tooShort: size 6, five bytes
        bytes.fromhex("07E30C100600 00".replace(" ", "")),  # Nordic _invalid: size 7, flags need 12
        bytes.fromhex("05000C1006"),  # size below the minimum
    ],
)
def test_cgm_bad_records_are_rejected(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        cgm.decode_measurement(payload)


@pytest.mark.parametrize(
    ("data", "crc"),
    [
        (b"A", 0x5C0A),
        (b"123456789", 0x6F91),
        (bytes([0x58, 0x25, 0x1F, 0x98]), 0x07F1),  # Microchip AN752
        (bytes([0x3E, 1, 2, 3, 4, 5, 6, 7, 8, 9]), 0x2F01),  # CGMS 1.0.1 §3.11
    ],
)
def test_crc16_mcrf4xx_vectors(data: bytes, crc: int) -> None:
    assert cgm.crc16_mcrf4xx(data) == crc


# --- Health Thermometer (Nordic TemperatureMeasurementDataCallbackTest) -------------------------


def test_temperature_measurement() -> None:
    out = decode_value("2a1c", bytes.fromhex("06B00E00FEDC070C050B321B04"))
    assert out["unit"] == "C"
    assert str(out["temperature"]) == "37.60"
    assert out["timestamp"] == "2012-12-05T11:50:27"
    assert out["temperature_type"] == 4  # finger


def test_temperature_missing_type_is_rejected() -> None:
    with pytest.raises(DecodeError):
        thermometer.decode_measurement(bytes.fromhex("06B00E00FEDC070C050B321B"))


def test_temperature_special_and_fahrenheit() -> None:
    assert decode_value("2a1c", bytes.fromhex("00FFFF7F00"))["temperature"] == "NaN"
    out = decode_value("2a1c", bytes.fromhex("01A20300FF"))  # 930 × 10^-1 = 93.0 °F
    assert out["unit"] == "F"
    assert str(out["temperature"]) == "93.0"


# --- vendor commands (ble-profiles.md §8, Tidepool bluetoothLEDriver) ---------------------------


def test_isens_clock_commands() -> None:
    from devices.gatt import vendor

    # "zeros = get": header C0 03 01 00 then a zero year and five zero bytes.
    assert vendor.isens_clock_command(None) == bytes.fromhex("C003010000000000000000")
    assert vendor.isens_clock_command(datetime(2026, 3, 4, 10, 2, 11)) == bytes.fromhex(
        "C0030100EA0703040A020B"
    )
    reply = vendor.decode_isens_clock(bytes.fromhex("C0030100E807050E071E00"))
    assert reply.to_datetime() == datetime(2024, 5, 14, 7, 30)
    with pytest.raises(DecodeError):
        vendor.decode_isens_clock(bytes.fromhex("C0030100E807050E071E"))


def test_database_change_increment() -> None:
    assert decode_value("2a99", bytes.fromhex("01000000")) == {"database_change_increment": 1}
    with pytest.raises(DecodeError):
        decode_value("2a99", bytes.fromhex("010000"))
