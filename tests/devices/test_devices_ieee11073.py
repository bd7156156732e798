"""IEEE-11073 SFLOAT/FLOAT and Date Time against published vectors (never our own output)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.errors import DecodeError, EncodeError
from devices.ieee11073 import (
    DateTime,
    decode_date_time,
    decode_float,
    decode_sfloat,
    encode_date_time,
    encode_float,
    encode_sfloat,
    float_from_raw,
    sfloat_from_raw,
)
from devices.model import Special

# HL7/phd input/pagecontent/FLOATS.md, "SFLOAT Encoding" table: hex → FHIR encoding.
PHD_SFLOATS = [
    (0x0002, "2"),
    (0xF014, "2.0"),
    (0xE0C8, "2.00"),
    (0x1002, "20"),
    (0x2002, "200"),
    (0x00C8, "200"),
    (0x04D2, "1234"),
    (0x0B2E, "-1234"),
]
# ble-profiles.md §1.1 examples.
PROFILE_SFLOATS = [
    (0x0078, "120"),
    (0xF0BD, "18.9"),
    (0xB069, "0.00105"),  # 105 × 10^-5
    (0x100C, "120"),  # 12 × 10^1
    (0xFFFE, "-0.2"),
    (0xF7FF, "204.7"),  # 0x7FF mantissa with exponent -1: an ordinary number, not NaN
]
# HL7/phd FLOATS.md, "FLOAT Encoding" table.
PHD_FLOATS = [
    (0x00000002, "2"),
    (0xFF000014, "2.0"),
    (0xFE0000C8, "2.00"),
    (0x01000002, "20"),
    (0x02000002, "200"),
    (0x000000C8, "200"),
    (0x000004D2, "1234"),
    (0x00FFFB2E, "-1234"),
]
# FLOATS.md "Special FLOAT and SFLOAT Values"; strings from cli-decode.md.
SPECIALS = [
    (0x07FF, 0x007FFFFF, Special.NAN, "NaN"),
    (0x07FE, 0x007FFFFE, Special.POSITIVE_INFINITY, "+INF"),
    (0x0802, 0x00800002, Special.NEGATIVE_INFINITY, "-INF"),
    (0x0800, 0x00800000, Special.NRES, "NRes"),
    (0x0801, 0x00800001, Special.RESERVED, "reserved"),
]


@pytest.mark.parametrize(("raw", "text"), PHD_SFLOATS + PROFILE_SFLOATS)
def test_sfloat_vectors_keep_precision(raw: int, text: str) -> None:
    value = decode_sfloat(raw.to_bytes(2, "little"))
    assert isinstance(value, Decimal)
    assert str(value) == text


@pytest.mark.parametrize(("raw", "text"), PHD_FLOATS)
def test_float_vectors_keep_precision(raw: int, text: str) -> None:
    value = decode_float(raw.to_bytes(4, "little"))
    assert isinstance(value, Decimal)
    assert str(value) == text


def test_float_thermometer_example() -> None:
    # ble-profiles.md §1.2 (Nordic test): B0 0E 00 FE = 3760 × 10^-2 = 37.60 °C.
    assert str(decode_float(bytes.fromhex("B00E00FE"))) == "37.60"


@pytest.mark.parametrize(("sfloat", "float_raw", "special", "text"), SPECIALS)
def test_special_values(sfloat: int, float_raw: int, special: Special, text: str) -> None:
    assert decode_sfloat(sfloat.to_bytes(2, "little")) is special
    assert decode_float(float_raw.to_bytes(4, "little")) is special
    assert special.value == text
    assert encode_sfloat(special) == sfloat.to_bytes(2, "little")
    assert encode_float(special) == float_raw.to_bytes(4, "little")


def test_every_16_bit_sfloat_decodes_and_only_five_are_special() -> None:
    specials = 0
    for raw in range(0x10000):
        value = sfloat_from_raw(raw)
        if isinstance(value, Special):
            specials += 1
        else:
            assert isinstance(value, Decimal)
            assert value.is_finite()
    assert specials == 5


@given(st.integers(0, 0xFFFF))
def test_sfloat_reencodes_to_an_equal_value_with_the_same_precision(raw: int) -> None:
    value = sfloat_from_raw(raw)
    again = decode_sfloat(encode_sfloat(value))
    assert again == value
    assert str(again) == str(value)


@given(st.integers(0, 0xFFFFFFFF))
def test_every_32_bit_float_decodes_and_reencodes(raw: int) -> None:
    value = float_from_raw(raw)
    assert isinstance(value, Decimal | Special)
    again = decode_float(encode_float(value))
    assert again == value
    assert str(again) == str(value)


@pytest.mark.parametrize(
    ("value", "raw"),
    [(Decimal("2.0"), 0xF014), (Decimal("2.00"), 0xE0C8), (Decimal("-1234"), 0x0B2E)],
)
def test_encode_sfloat_matches_the_phd_table(value: Decimal, raw: int) -> None:
    assert encode_sfloat(value) == raw.to_bytes(2, "little")


@pytest.mark.parametrize(
    "value",
    [
        Decimal("2047"),  # would be 0x07FF = NaN
        Decimal("-2048"),  # would be 0x0800 = NRes
        Decimal("12345"),  # five significant digits do not fit 12 bits
        Decimal("0.123456789"),
        Decimal("NaN"),
    ],
)
def test_encode_sfloat_refuses_to_round_or_collide(value: Decimal) -> None:
    with pytest.raises(EncodeError):
        encode_sfloat(value)


def test_missing_bytes_are_decode_errors() -> None:
    with pytest.raises(DecodeError):
        decode_sfloat(b"\x78")
    with pytest.raises(DecodeError):
        decode_float(b"\xb0\x0e\x00")


# --- Date Time (ble-profiles.md §1.3) ------------------------------------------------------------


def test_date_time_from_the_nordic_thermometer_capture() -> None:
    # Nordic TemperatureMeasurementDataCallbackTest: DC 07 0C 05 0B 32 1B = 2012-12-05 11:50:27.
    value = decode_date_time(bytes.fromhex("DC070C050B321B"))
    assert value == DateTime(2012, 12, 5, 11, 50, 27)
    when = value.to_datetime()
    assert when is not None
    assert when.isoformat() == "2012-12-05T11:50:27"


def test_unknown_year_keeps_the_other_fields() -> None:
    # Nordic BPM test uses year 0 (unknown), April 17th 20:41:59.
    value = decode_date_time(bytes.fromhex("000004111429 3B".replace(" ", "")))
    assert value.to_datetime() is None
    assert value.as_dict() == {
        "year": 0,
        "month": 4,
        "day": 17,
        "hour": 20,
        "minute": 41,
        "second": 59,
    }


def test_29_february_is_accepted_when_the_year_is_unknown_or_leap() -> None:
    assert decode_date_time(bytes.fromhex("0000021D000000")).day == 29
    assert decode_date_time(bytes.fromhex("E807021D000000")).to_datetime() is not None


@pytest.mark.parametrize(
    "hex_text",
    [
        "E8070D01000000",  # month 13
        "E8070120000000",  # day 32
        "E8070101180000",  # hour 24
        "E8070101003C00",  # minute 60
        "E807010100003C",  # second 60
        "E807021E000000",  # 30 February 2024
        "E707021D000000",  # 29 February 2023 (not a leap year)
        "0000021E000000",  # 30 February, any year
        "E807041F000000",  # 31 April
        "2D06010100 0000".replace(" ", ""),  # year 1581
        "10270101000000",  # year 10000
        "E80701010000",  # six bytes
    ],
)
def test_out_of_range_date_times_are_rejected(hex_text: str) -> None:
    with pytest.raises(DecodeError):
        decode_date_time(bytes.fromhex(hex_text))


def test_encode_date_time_writes_the_layout_and_refuses_bad_fields() -> None:
    assert encode_date_time(DateTime(2012, 12, 5, 11, 50, 27)) == bytes.fromhex("DC070C050B321B")
    with pytest.raises(EncodeError):
        encode_date_time(DateTime(2024, 13, 1))
