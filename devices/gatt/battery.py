"""Battery Service 0x180F: Battery Level 0x2A19 = uint8 percentage 0..100.

101..255 are reserved; since the field is a percentage and not an enumeration, a value above
100 is an error (cli-decode.md), never clamped.
"""

from __future__ import annotations

from dataclasses import dataclass

from devices.errors import EncodeError
from devices.gatt._common import fail
from devices.uuids import BATTERY_LEVEL


@dataclass(frozen=True, slots=True)
class BatteryLevel:
    """0x2A19."""

    percent: int


def decode_battery_level(data: bytes) -> BatteryLevel:
    """Decode 0x2A19; raises :class:`DecodeError` when empty or above 100."""
    if not data:
        raise fail(BATTERY_LEVEL, data, "needs 1 byte (uint8 percentage), got 0")
    if data[0] > 100:
        raise fail(BATTERY_LEVEL, data, f"battery level {data[0]} % is above 100 (reserved)")
    return BatteryLevel(data[0])


def encode_battery_level(value: BatteryLevel) -> bytes:
    """The 1 byte of 0x2A19."""
    if isinstance(value.percent, bool) or not 0 <= value.percent <= 100:
        raise EncodeError(f"battery level {value.percent!r} is outside 0..100")
    return bytes([value.percent])
