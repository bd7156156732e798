"""Device Information Service 0x180A and Battery 0x180F, ble-profiles.md §2.

DIS strings (manufacturer 0x2A29, model 0x2A24, serial 0x2A25, hardware 0x2A27, firmware
0x2A26, software 0x2A28) are UTF-8 with no length prefix; trailing NUL padding (seen on some
firmware) is removed, nothing else is changed. Fora meters leave the manufacturer empty and
some report the model as "Model Number" (Tidepool): the decoder reports what was sent.

System ID 0x2A23 (8 bytes): 40-bit manufacturer-defined identifier, then the 24-bit OUI, LSO
first. PnP ID 0x2A50 (7 bytes): vendor-ID source (1 Bluetooth SIG, 2 USB-IF), vendor id,
product id, product version (uint16 each).
"""

from __future__ import annotations

from dataclasses import dataclass
from struct import pack, unpack_from

from devices.errors import EncodeError
from devices.gatt._common import check_uint, fail
from devices.uuids import (
    FIRMWARE_REVISION,
    HARDWARE_REVISION,
    MANUFACTURER_NAME,
    MODEL_NUMBER,
    PNP_ID,
    SERIAL_NUMBER,
    SOFTWARE_REVISION,
    SYSTEM_ID,
)

STRING_CHARACTERISTICS: frozenset[str] = frozenset(
    {
        MANUFACTURER_NAME,
        MODEL_NUMBER,
        SERIAL_NUMBER,
        HARDWARE_REVISION,
        FIRMWARE_REVISION,
        SOFTWARE_REVISION,
    }
)


@dataclass(frozen=True, slots=True)
class DeviceString:
    """One DIS string characteristic."""

    text: str


@dataclass(frozen=True, slots=True)
class SystemId:
    """0x2A23."""

    manufacturer_identifier: int
    organizationally_unique_identifier: int


@dataclass(frozen=True, slots=True)
class PnpId:
    """0x2A50."""

    vendor_id_source: int
    vendor_id: int
    product_id: int
    product_version: int


def decode_string(uuid: str, data: bytes) -> DeviceString:
    """Decode a DIS string; invalid UTF-8 is a :class:`DecodeError`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(uuid, data, f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    return DeviceString(text.rstrip("\x00"))


def encode_string(value: DeviceString) -> bytes:
    """The UTF-8 bytes of a DIS string."""
    if "\x00" in value.text:
        raise EncodeError("DIS strings cannot contain NUL")
    return value.text.encode("utf-8")


def decode_system_id(data: bytes) -> SystemId:
    """Decode 0x2A23."""
    if len(data) < 8:
        raise fail(SYSTEM_ID, data, f"needs 8 bytes, got {len(data)}")
    return SystemId(int.from_bytes(data[:5], "little"), int.from_bytes(data[5:8], "little"))


def encode_system_id(value: SystemId) -> bytes:
    """The 8 bytes of 0x2A23."""
    return check_uint(value.manufacturer_identifier, 40, "manufacturer identifier").to_bytes(
        5, "little"
    ) + check_uint(value.organizationally_unique_identifier, 24, "OUI").to_bytes(3, "little")


def decode_pnp_id(data: bytes) -> PnpId:
    """Decode 0x2A50."""
    if len(data) < 7:
        raise fail(PNP_ID, data, f"needs 7 bytes, got {len(data)}")
    source, vendor, product, version = unpack_from("<BHHH", data, 0)
    return PnpId(source, vendor, product, version)


def encode_pnp_id(value: PnpId) -> bytes:
    """The 7 bytes of 0x2A50."""
    return pack(
        "<BHHH",
        check_uint(value.vendor_id_source, 8, "vendor id source"),
        check_uint(value.vendor_id, 16, "vendor id"),
        check_uint(value.product_id, 16, "product id"),
        check_uint(value.product_version, 16, "product version"),
    )
