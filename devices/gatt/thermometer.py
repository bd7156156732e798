"""Health Thermometer Temperature Measurement 0x2A1C (the profile that uses the 32-bit FLOAT).

::

    offset  size  field                          present when
    0       1     flags                          always   bit 0 unit (0 °C, 1 °F)
    1       4     temperature (FLOAT)            always
    5       7     time stamp (Date Time)         flags bit 1
    -       1     temperature type (uint8)       flags bit 2   1 armpit, 2 body, 3 ear,
                                                 4 finger, 5 gastro-intestinal, 6 mouth,
                                                 7 rectum, 8 toe, 9 tympanum (others raw)

Example (Nordic test): ``06 B0 0E 00 FE DC 07 0C 05 0B 32 1B 04`` = 37.60 °C,
2012-12-05 11:50:27, finger.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from devices.errors import DecodeError
from devices.gatt._common import check_uint, fail
from devices.ieee11073 import (
    DateTime,
    decode_date_time,
    decode_float,
    encode_date_time,
    encode_float,
)
from devices.model import Special
from devices.uuids import TEMPERATURE_MEASUREMENT

FLAG_FAHRENHEIT = 0x01
FLAG_TIME_STAMP = 0x02
FLAG_TYPE = 0x04


class TemperatureUnit(StrEnum):
    """Flags bit 0, spelled as cli-decode.md's ``unit``."""

    CELSIUS = "C"
    FAHRENHEIT = "F"


@dataclass(frozen=True, slots=True)
class TemperatureMeasurement:
    """0x2A1C."""

    temperature: Decimal | Special
    unit: TemperatureUnit = TemperatureUnit.CELSIUS
    timestamp: DateTime | None = None
    temperature_type: int | None = None


def decode_measurement(data: bytes) -> TemperatureMeasurement:
    """Decode 0x2A1C; raises :class:`DecodeError`."""
    uuid = TEMPERATURE_MEASUREMENT
    if len(data) < 5:
        raise fail(uuid, data, f"needs at least 5 bytes (flags and FLOAT), got {len(data)}")
    flags = data[0]
    needed = 5 + (7 if flags & FLAG_TIME_STAMP else 0) + (1 if flags & FLAG_TYPE else 0)
    if len(data) < needed:
        raise fail(uuid, data, f"flags {flags:#04x} announce {needed} bytes, got {len(data)}")
    temperature = decode_float(data, 1)
    offset = 5
    timestamp = None
    if flags & FLAG_TIME_STAMP:
        try:
            timestamp = decode_date_time(data, 5)
        except DecodeError as exc:
            raise exc.for_characteristic(uuid, data) from None
        offset = 12
    kind = data[offset] if flags & FLAG_TYPE else None
    unit = TemperatureUnit.FAHRENHEIT if flags & FLAG_FAHRENHEIT else TemperatureUnit.CELSIUS
    return TemperatureMeasurement(temperature, unit, timestamp, kind)


def encode_measurement(value: TemperatureMeasurement) -> bytes:
    """The 0x2A1C payload."""
    flags = FLAG_FAHRENHEIT if value.unit is TemperatureUnit.FAHRENHEIT else 0
    body = encode_float(value.temperature)
    if value.timestamp is not None:
        flags |= FLAG_TIME_STAMP
        body += encode_date_time(value.timestamp)
    if value.temperature_type is not None:
        flags |= FLAG_TYPE
        body += bytes([check_uint(value.temperature_type, 8, "temperature type")])
    return bytes([flags]) + body
