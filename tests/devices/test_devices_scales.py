"""Weight Scale, Body Composition and User Data vectors (ble-profiles.md §5)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from devices.decode import decode_value
from devices.errors import DecodeError
from devices.gatt import body_composition as bcs
from devices.gatt import user_data as uds
from devices.gatt import weight_scale as wss

# ble-profiles.md §5.1: 70.00 kg = raw 14000 = bytes B0 36.
WEIGHT_70KG = bytes.fromhex("00B036")


def test_weight_example() -> None:
    out = decode_value("2a9d", WEIGHT_70KG)
    assert out["unit"] == "kg"
    assert out["weight_kg"] == 70
    assert "weight_lb" not in out
    assert out["measurement_unsuccessful"] is False
    assert (out["timestamp"], out["user_id"], out["bmi"], out["height_m"]) == (
        None,
        None,
        None,
        None,
    )


def test_weight_with_everything() -> None:
    # flags 0x0E: time stamp, user 2, BMI 24.5 (raw 245) and height 1.750 m (raw 1750).
    payload = bytes.fromhex("0EB036E8070A0108000002F500D606")
    out = decode_value("2a9d", payload)
    assert out["timestamp"] == "2024-10-01T08:00:00"
    assert out["user_id"] == 2
    assert out["bmi"] == Decimal("24.5")
    assert out["height_m"] == Decimal("1.750")


def test_weight_imperial_uses_fixed_resolution() -> None:
    # 0.01 lb resolution: raw 15432 = 154.32 lb; height 0.1 in: raw 690 = 69.0 in.
    out = decode_value("2a9d", bytes.fromhex("09483CF500B202"))
    assert out["unit"] == "lb"
    assert out["weight_lb"] == Decimal("154.32")
    assert out["height_in"] == Decimal("69.0")


def test_unsuccessful_weight_is_null_not_655() -> None:
    out = decode_value("2a9d", bytes.fromhex("06FFFFE8070A0108000001"))
    assert out["weight_kg"] is None
    assert out["measurement_unsuccessful"] is True
    assert out["user_id"] == 1


def test_unsuccessful_weight_with_bmi_is_rejected() -> None:
    with pytest.raises(DecodeError):
        wss.decode_measurement(bytes.fromhex("08FFFFF500D606"))


@pytest.mark.parametrize("payload", ["", "00B0", "02B036E8070A010800", "08B036F500D6"])
def test_truncated_weights_are_rejected(payload: str) -> None:
    with pytest.raises(DecodeError):
        wss.decode_measurement(bytes.fromhex(payload))


def test_weight_scale_feature() -> None:
    # bit 0, bit 1, bit 2, weight resolution 7 (0.005 kg), height resolution 3 (0.001 m).
    raw = 0b1 | 0b10 | 0b100 | 7 << 3 | 3 << 7
    out = decode_value("2a9e", raw.to_bytes(4, "little"))
    assert out["time_stamp_supported"]
    assert out["multiple_users_supported"]
    assert out["bmi_supported"]
    assert (out["weight_resolution_code"], out["height_resolution_code"]) == (7, 3)


# Body composition: one record split over two indications with flags bit 12 (layout from
# ble-profiles.md §5.2, values chosen here: 25.0 % fat, 2024-05-14 07:30:00, user 1,
# 6000 kJ, 40.0 % muscle, 25.000 kg muscle | 50.000 kg fat-free, 45.000 kg soft lean,
# 35.000 kg water, 500.0 ohm, 65.000 kg, 1.700 m).
BCS_PACKET_1 = bytes.fromhex("3E10FA00E807050E071E0001701790018813")
BCS_PACKET_2 = bytes.fromhex("C01FFA0010272823581B8813C832A406")


def test_body_composition_single_packet() -> None:
    out = decode_value("2a9c", bytes.fromhex("0000FA00"))
    assert out["body_fat_pct"] == Decimal("25.0")
    assert out["multiple_packet"] is False
    assert out["measurement_unsuccessful"] is False


def test_body_composition_packets_decode_and_merge() -> None:
    first = bcs.decode_measurement(BCS_PACKET_1)
    second = bcs.decode_measurement(BCS_PACKET_2)
    assert first.multiple_packet
    assert second.multiple_packet
    merged = bcs.merge_packets([first, second])
    assert merged.body_fat_pct == Decimal("25.0")
    assert merged.user_id == 1
    assert merged.basal_metabolism_kj == 6000
    assert merged.muscle_pct == Decimal("40.0")
    assert merged.muscle_mass == Decimal("25.000")
    assert merged.fat_free_mass == Decimal("50.000")
    assert merged.soft_lean_mass == Decimal("45.000")
    assert merged.body_water_mass == Decimal("35.000")
    assert merged.impedance_ohm == Decimal("500.0")
    assert merged.weight == Decimal("65.000")
    assert merged.height == Decimal("1.700")


def test_body_composition_json_names() -> None:
    out = decode_value("2a9c", BCS_PACKET_2)
    assert out["fat_free_mass_kg"] == 50
    assert out["impedance_ohm"] == 500
    assert out["weight_kg"] == 65
    assert out["height_m"] == Decimal("1.700")
    assert out["muscle_mass_kg"] is None


def test_split_then_merge_is_the_record_and_each_packet_fits() -> None:
    merged = bcs.merge_packets(
        [bcs.decode_measurement(BCS_PACKET_1), bcs.decode_measurement(BCS_PACKET_2)]
    )
    packets = bcs.split_measurement(merged, max_payload=20)
    assert len(packets) > 1
    assert all(len(p) <= 20 for p in packets)
    assert bcs.merge_packets([bcs.decode_measurement(p) for p in packets]) == merged


def test_conflicting_packets_are_rejected() -> None:
    other_fat = bytearray(BCS_PACKET_2)
    other_fat[2] = 0xFB
    with pytest.raises(DecodeError):
        bcs.merge_packets(
            [bcs.decode_measurement(BCS_PACKET_1), bcs.decode_measurement(bytes(other_fat))]
        )
    repeat = bcs.decode_measurement(BCS_PACKET_1)
    with pytest.raises(DecodeError):
        bcs.merge_packets([repeat, replace(repeat, muscle_pct=Decimal("41.0"))])


def test_unsuccessful_body_composition() -> None:
    out = decode_value("2a9c", bytes.fromhex("0600FFFFE807050E071E0002"))
    assert out["body_fat_pct"] is None
    assert out["measurement_unsuccessful"] is True
    with pytest.raises(DecodeError):
        bcs.decode_measurement(bytes.fromhex("0004FFFFC832"))  # weight with 0xFFFF fat


def test_body_composition_truncated() -> None:
    with pytest.raises(DecodeError):
        bcs.decode_measurement(BCS_PACKET_2[:-1])


# --- User Data Service (ble-profiles.md §5.3) ---------------------------------------------------


def test_user_index() -> None:
    assert decode_value("2a9a", b"\xff") == {"user_index": 255}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("01D204", {"op_code": 1, "consent_code": 1234, "user_index": None}),
        ("0203D204", {"op_code": 2, "consent_code": 1234, "user_index": 3}),
        ("03", {"op_code": 3, "consent_code": None}),
        (
            "20010103",
            {
                "request_op_code": 1,
                "response_value": 1,
                "response_name": "success",
                "user_index": 3,
            },
        ),
        (
            "200205",
            {"request_op_code": 2, "response_value": 5, "response_name": "user_not_authorized"},
        ),
        (
            "200104",
            {"request_op_code": 1, "response_value": 4, "response_name": "operation_failed"},
        ),
        ("200209", {"response_value": 9, "response_name": None}),
    ],
)
def test_user_control_point(payload: str, expected: dict[str, object]) -> None:
    out = decode_value("2a9f", bytes.fromhex(payload))
    for key, value in expected.items():
        assert out[key] == value


@pytest.mark.parametrize("payload", ["", "01D2", "0203D2", "02", "2001", "200101", "011027"])
def test_user_control_point_rejects_missing_operands_and_bad_consent(payload: str) -> None:
    with pytest.raises(DecodeError):
        uds.decode_user_control_point(bytes.fromhex(payload))


def test_ucp_request_builders() -> None:
    assert uds.consent(3, 1234) == bytes.fromhex("0203D204")
    assert uds.register_new_user(9999) == bytes.fromhex("010F27")
