"""Current Time Service 0x1805 and the Date Time characteristic, ble-profiles.md §6.

Current Time 0x2A2B (read/notify, write optional; 10 bytes)::

    0  7  Date Time (device wall clock, no zone)
    7  1  day of week (0 unknown, 1 Monday .. 7 Sunday; others raw)
    8  1  fractions256 (1/256 s)
    9  1  adjust reason: bit 0 manual time update, bit 1 external reference time update,
          bit 2 time zone change, bit 3 DST change

The gateway writes local wall-clock time, the ISO weekday, fractions 0 and adjust reason 0
(hass-omron, openScale). A device that refuses answers with ATT error 0x80 "data field ignored".

Local Time Information 0x2A0F (2 bytes): time zone (sint8, 15-minute units, -48..+56,
-128 unknown; Seoul = +36 = 0x24) + DST offset (uint8: 0 standard, 2 half an hour,
4 daylight, 8 double daylight, 255 unknown; others raw). Korea: ``24 00``.

Date Time 0x2A08 (7 bytes), written directly by A&D monitors/scales (inside 0x1810/0x181D)
and Roche Accu-Chek (inside 0x1808): see :mod:`devices.ieee11073`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from devices.errors import DecodeError, EncodeError
from devices.gatt._common import bit_names, check_uint, fail
from devices.ieee11073 import DateTime, decode_date_time, encode_date_time
from devices.uuids import CURRENT_TIME, DATE_TIME, LOCAL_TIME_INFORMATION

ADJUST_REASON_BITS: tuple[str, ...] = (
    "manual_time_update",
    "external_reference_time_update",
    "time_zone_change",
    "dst_change",
)
UNKNOWN_TIME_ZONE = -128
SEOUL_TIME_ZONE = 36  # UTC+9 in quarter hours


@dataclass(frozen=True, slots=True)
class CurrentTime:
    """0x2A2B."""

    date_time: DateTime
    day_of_week: int = 0
    fractions256: int = 0
    adjust_reason_raw: int = 0

    @property
    def adjust_reason(self) -> tuple[str, ...]:
        """Adjust reason names in bit order."""
        return bit_names(self.adjust_reason_raw, ADJUST_REASON_BITS)


@dataclass(frozen=True, slots=True)
class LocalTimeInformation:
    """0x2A0F."""

    time_zone_quarter_hours: int
    dst_offset_code: int = 0

    @property
    def utc_offset_min(self) -> int | None:
        """Minutes east of UTC (standard time), None when unknown."""
        if self.time_zone_quarter_hours == UNKNOWN_TIME_ZONE:
            return None
        return self.time_zone_quarter_hours * 15


def current_time_for(now: datetime, adjust_reason_raw: int = 0) -> CurrentTime:
    """The value to write for wall-clock ``now``: ISO weekday, fractions from microseconds."""
    return CurrentTime(
        DateTime.from_datetime(now),
        now.isoweekday(),
        now.microsecond * 256 // 1_000_000,
        adjust_reason_raw,
    )


def decode_current_time(data: bytes) -> CurrentTime:
    """Decode 0x2A2B; raises :class:`DecodeError`."""
    if len(data) < 10:
        raise fail(
            CURRENT_TIME, data, f"needs 10 bytes (Exact Time 256 + adjust reason), got {len(data)}"
        )
    try:
        date_time = decode_date_time(data, 0)
    except DecodeError as exc:
        raise exc.for_characteristic(CURRENT_TIME, data) from None
    return CurrentTime(date_time, data[7], data[8], data[9])


def encode_current_time(value: CurrentTime) -> bytes:
    """The 10 bytes of 0x2A2B."""
    return encode_date_time(value.date_time) + bytes(
        [
            check_uint(value.day_of_week, 8, "day of week"),
            check_uint(value.fractions256, 8, "fractions256"),
            check_uint(value.adjust_reason_raw, 8, "adjust reason"),
        ]
    )


def decode_local_time_information(data: bytes) -> LocalTimeInformation:
    """Decode 0x2A0F; a time zone outside -48..+56 (and not -128) is an error."""
    if len(data) < 2:
        raise fail(LOCAL_TIME_INFORMATION, data, f"needs 2 bytes, got {len(data)}")
    zone = data[0] - 256 if data[0] >= 128 else data[0]
    if zone != UNKNOWN_TIME_ZONE and not -48 <= zone <= 56:
        raise fail(
            LOCAL_TIME_INFORMATION, data, f"time zone {zone} is outside -48..+56 quarter hours"
        )
    return LocalTimeInformation(zone, data[1])


def encode_local_time_information(value: LocalTimeInformation) -> bytes:
    """The 2 bytes of 0x2A0F."""
    zone = value.time_zone_quarter_hours
    if zone != UNKNOWN_TIME_ZONE and not -48 <= zone <= 56:
        raise EncodeError(f"time zone {zone} is outside -48..+56 quarter hours")
    return bytes([zone & 0xFF, check_uint(value.dst_offset_code, 8, "DST offset")])


def decode_date_time_characteristic(data: bytes) -> DateTime:
    """Decode 0x2A08 written or read on its own."""
    try:
        return decode_date_time(data, 0)
    except DecodeError as exc:
        raise exc.for_characteristic(DATE_TIME, data) from None


def encode_date_time_characteristic(value: DateTime | datetime) -> bytes:
    """The 7 bytes of 0x2A08 (what an A&D monitor wants before it sends readings)."""
    return encode_date_time(value)
