"""Each quirk with the payload that motivated it (ble-profiles.md §11.8, §11.10)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from devices.decode import decode_value
from devices.errors import DecodeError, UnknownQuirk
from devices.model import Kind, Special
from devices.quirks import QUIRKS, is_patient_result
from devices.records import decode_record

from .test_devices_blood_pressure import VIRTUAL_CUFF_1
from .test_devices_scales import WEIGHT_70KG

# derdilla/blood-pressure-monitor-fl ble_measurement_data_test, "Recorded from a Beurer BM85":
# flags 0x56 (time stamp, pulse, status, reserved bit 6), MAP 0, pulse and status big-endian,
# a user ID byte that flags bit 3 does not announce.
BM85_USER_0 = bytes([86, 106, 0, 71, 0, 0, 0, 234, 7, 8, 11, 18, 31, 0, 0, 63, 0, 0, 0])
BM85_USER_1 = bytes([86, 113, 0, 73, 0, 0, 0, 234, 7, 8, 11, 20, 56, 0, 0, 65, 1, 0, 0])
BM85_HIGH_PULSE = bytes([86, 119, 0, 70, 0, 0, 0, 234, 7, 8, 11, 20, 57, 0, 0, 87, 1, 0, 64])
BM85_IRREGULAR = bytes([86, 118, 0, 80, 0, 0, 0, 234, 7, 8, 11, 20, 27, 0, 0, 60, 0, 0, 4])
BM85 = ["beurer_bm85_byte_order", "map_zero_not_computed"]


@pytest.mark.parametrize(
    ("payload", "systolic", "diastolic", "pulse", "user", "when"),
    [
        (BM85_USER_0, 106, 71, 63, 0, datetime(2026, 8, 11, 18, 31)),
        (BM85_USER_1, 113, 73, 65, 1, datetime(2026, 8, 11, 20, 56)),
        (BM85_HIGH_PULSE, 119, 70, 87, 1, datetime(2026, 8, 11, 20, 57)),
    ],
)
def test_beurer_bm85_captures(
    payload: bytes, systolic: int, diastolic: int, pulse: int, user: int, when: datetime
) -> None:
    (m,) = decode_record([("2a35", payload)], quirks=BM85)
    values = {c.code: c.value for c in m.components}
    assert values == {"systolic": systolic, "diastolic": diastolic, "pulse": pulse}
    assert m.user_index == user
    assert m.device_time == when


def test_beurer_bm85_status_is_big_endian() -> None:
    (m,) = decode_record([("2a35", BM85_IRREGULAR)], quirks=BM85)
    assert m.status == ("irregular_pulse",)


def test_strict_decoding_does_not_guess_the_bm85_layout() -> None:
    strict = decode_value("2a35", BM85_USER_0)
    assert strict["pulse_rate"] != 63
    assert strict["user_id"] is None
    assert strict["map"] == 0


def test_map_zero_becomes_absent() -> None:
    out = decode_value("2a35", BM85_USER_0, quirks=BM85)
    assert out["map"] is None
    assert out["pulse_rate"] == 63
    assert out["user_id"] == 0
    # A real MAP is untouched by the quirk.
    assert decode_value("2a35", VIRTUAL_CUFF_1, quirks=["map_zero_not_computed"])["map"] == 97


def test_bm85_quirk_rejects_a_payload_without_the_user_byte() -> None:
    with pytest.raises(DecodeError):
        decode_value("2a35", BM85_USER_0[:-2], quirks=["beurer_bm85_byte_order"])


# Built from the Tidepool ble-glucose comment (no capture published): an i-SENS base time
# 2023 / month 13 / day 5 10:30 with 105 mg/dL.
ISENS_MONTH_13 = bytes.fromhex("022A00E7070D050A1E0069B011")


def test_isens_month_13_is_january_of_the_next_year() -> None:
    with pytest.raises(DecodeError):
        decode_value("2a18", ISENS_MONTH_13)
    out = decode_value("2a18", ISENS_MONTH_13, quirks=["isens_month_13"])
    assert out["base_time"] == "2024-01-05T10:30:00"
    (m,) = decode_record([("2a18", ISENS_MONTH_13)], quirks=["isens_month_13"])
    assert m.device_time == datetime(2024, 1, 5, 10, 30)


def test_isens_month_13_leaves_other_months_strict() -> None:
    with pytest.raises(DecodeError):
        decode_value("2a18", bytes.fromhex("022A00E7070E050A1E0069B011"), quirks=["isens_month_13"])


# CareSens Dual ketone (ble-profiles.md §4.2; Tidepool divides by 10): a reading of 1.5 mmol/L
# ketone arrives as 15 on the mg/dL scale = 15e-5 kg/L (SFLOAT 0xB00F), context meal = 6.
KETONE_MEASUREMENT = bytes.fromhex("120900E8070A010800000FB011")
KETONE_CONTEXT = bytes.fromhex("02090006")


def test_caresens_dual_ketone() -> None:
    (m,) = decode_record(
        [("2a18", KETONE_MEASUREMENT), ("2a34", KETONE_CONTEXT)], quirks=["caresens_dual_ketone"]
    )
    assert m.component("glucose") is None
    ketone = m.component("ketone")
    assert ketone is not None
    assert ketone.value == Decimal("1.5")
    assert ketone.unit == "mmol/L"
    assert "ketone" in m.status
    assert m.context_value("meal") is None
    assert not is_patient_result(m)


def test_without_the_quirk_meal_6_is_kept_raw() -> None:
    (m,) = decode_record([("2a18", KETONE_MEASUREMENT), ("2a34", KETONE_CONTEXT)])
    assert m.context_value("meal") == "6"
    assert m.component("glucose") is not None


def test_ketone_hi_stays_special() -> None:
    hi = bytes.fromhex("120900E8070A01080000FE0711")
    (m,) = decode_record([("2a18", hi), ("2a34", KETONE_CONTEXT)], quirks=["caresens_dual_ketone"])
    ketone = m.component("ketone")
    assert ketone is not None
    assert ketone.special is Special.POSITIVE_INFINITY


# ForaCare TN'G Voice (ble-profiles.md §7.3, Tidepool): a full memory appends a bogus HI
# reading dated 2037. Built from that description: 2037-01-01 00:00, +INF.
FORA_PLACEHOLDER = bytes.fromhex("02C201F5070101000000FE0711")


def test_fora_memory_full_placeholder() -> None:
    (strict,) = decode_record([("2a18", FORA_PLACEHOLDER)])
    assert is_patient_result(strict)
    (m,) = decode_record([("2a18", FORA_PLACEHOLDER)], quirks=["fora_memory_full_2037"])
    assert "memory_full_placeholder" in m.status
    assert not is_patient_result(m)


def test_live_weight_untimed() -> None:
    (m,) = decode_record([("2a9d", WEIGHT_70KG)], quirks=["live_weight_untimed"])
    assert "live_value" in m.status
    timed = bytes.fromhex("02B036E8070A01080000")
    (result,) = decode_record([("2a9d", timed)], quirks=["live_weight_untimed"])
    assert is_patient_result(result)
    assert result.kind is Kind.BODY_WEIGHT


def test_unknown_quirk_is_refused() -> None:
    with pytest.raises(UnknownQuirk):
        decode_record([("2a35", VIRTUAL_CUFF_1)], quirks=["no_such_quirk"])
    with pytest.raises(UnknownQuirk):
        decode_value("2a35", VIRTUAL_CUFF_1, quirks=["no_such_quirk"])


def test_quirks_do_not_touch_other_characteristics() -> None:
    plain = decode_record([("2a9d", WEIGHT_70KG)])
    assert decode_record([("2a9d", WEIGHT_70KG)], quirks=BM85) == plain


def test_every_quirk_is_documented() -> None:
    for name, quirk in QUIRKS.items():
        assert quirk.name == name
        assert quirk.description
        assert quirk.source
        assert quirk.characteristics
        assert quirk.fix_payload or quirk.fix_value or quirk.fix_record
