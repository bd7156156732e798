"""IEEE-11073 SFLOAT/FLOAT and the Bluetooth Date Time format (ble-profiles.md §1.1-§1.3).

SFLOAT (GSS ``medfloat16``), little-endian uint16::

    bit 15..12  exponent, 4-bit two's complement (-8..+7)
    bit 11..0   mantissa, 12-bit two's complement (-2048..+2047)
    value = mantissa × 10^exponent

FLOAT (``medfloat32``), little-endian uint32: exponent = the top byte (signed), mantissa = the
low 24 bits (signed).

Special values exist only with exponent 0 (``0xF7FF`` is an ordinary 204.7)::

    SFLOAT   FLOAT        meaning
    0x07FF   0x007FFFFF   NaN
    0x0800   0x00800000   NRes (not at this resolution)
    0x07FE   0x007FFFFE   +INF
    0x0802   0x00800002   -INF
    0x0801   0x00800001   reserved for future use

Precision is kept, as HL7 PHD FLOATS.md requires: ``0xF014`` (20 × 10⁻¹) is ``Decimal("2.0")``,
``0xE0C8`` is ``Decimal("2.00")``. Positive exponents become the integer they denote
(``0x1002`` → ``Decimal("20")``), which is FLOATS.md's FHIR encoding.

Date Time (0x2A08 layout, 7 bytes, reused as Time Stamp and Base Time)::

    offset  size  field    valid
    0       2     year     1582..9999, 0 = unknown
    2       1     month    1..12, 0 = unknown
    3       1     day      1..31, 0 = unknown (and must exist in that month)
    4       1     hours    0..23
    5       1     minutes  0..59
    6       1     seconds  0..59

Unknown fields are kept (:class:`DateTime` is not a :class:`~datetime.datetime`); anything out of
range is an error. The decoder never corrects a time.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from struct import pack, unpack_from

from devices._fast import frozen_maker
from devices.errors import DecodeError, EncodeError
from devices.model import Special

SFLOAT_SPECIALS: dict[int, Special] = {
    0x07FF: Special.NAN,
    0x0800: Special.NRES,
    0x07FE: Special.POSITIVE_INFINITY,
    0x0802: Special.NEGATIVE_INFINITY,
    0x0801: Special.RESERVED,
}
FLOAT_SPECIALS: dict[int, Special] = {
    0x007FFFFF: Special.NAN,
    0x00800000: Special.NRES,
    0x007FFFFE: Special.POSITIVE_INFINITY,
    0x00800002: Special.NEGATIVE_INFINITY,
    0x00800001: Special.RESERVED,
}
_SFLOAT_OF_SPECIAL = {special: raw for raw, special in SFLOAT_SPECIALS.items()}
_FLOAT_OF_SPECIAL = {special: raw for raw, special in FLOAT_SPECIALS.items()}

# Decoded SFLOATs are immutable and repeat a lot (a cuff's 120 mmHg); at most 65536 entries.
_SFLOAT_CACHE: dict[int, Decimal | Special] = {}


def _from_parts(mantissa: int, exponent: int) -> Decimal:
    if exponent >= 0:
        return Decimal(mantissa * 10**exponent)
    return Decimal(f"{mantissa}E{exponent}")  # exact, keeps the exponent: 20E-1 is 2.0


def sfloat_from_raw(raw: int) -> Decimal | Special:
    """The value of a 16-bit SFLOAT given as an unsigned integer (0..0xFFFF)."""
    cached = _SFLOAT_CACHE.get(raw)
    if cached is not None:
        return cached
    if not 0 <= raw <= 0xFFFF:
        raise DecodeError("", f"{raw:x}", f"SFLOAT raw value {raw:#x} is not 16 bits")
    special = SFLOAT_SPECIALS.get(raw)
    if special is not None:
        value: Decimal | Special = special
    else:
        mantissa = raw & 0x0FFF
        if mantissa >= 0x0800:
            mantissa -= 0x1000
        exponent = raw >> 12
        if exponent >= 8:
            exponent -= 16
        value = _from_parts(mantissa, exponent)
    _SFLOAT_CACHE[raw] = value
    return value


def float_from_raw(raw: int) -> Decimal | Special:
    """The value of a 32-bit FLOAT given as an unsigned integer (0..0xFFFFFFFF)."""
    if not 0 <= raw <= 0xFFFFFFFF:
        raise DecodeError("", f"{raw:x}", f"FLOAT raw value {raw:#x} is not 32 bits")
    special = FLOAT_SPECIALS.get(raw)
    if special is not None:
        return special
    mantissa = raw & 0xFFFFFF
    if mantissa >= 0x800000:
        mantissa -= 0x1000000
    exponent = raw >> 24
    if exponent >= 0x80:
        exponent -= 0x100
    return _from_parts(mantissa, exponent)


def decode_sfloat(data: bytes, offset: int = 0) -> Decimal | Special:
    """The SFLOAT at ``data[offset:offset+2]``; :class:`DecodeError` when bytes are missing."""
    if offset < 0 or len(data) < offset + 2:
        raise DecodeError("", data.hex(), f"SFLOAT at byte {offset} needs 2 bytes")
    return sfloat_from_raw(data[offset] | data[offset + 1] << 8)


def decode_float(data: bytes, offset: int = 0) -> Decimal | Special:
    """The FLOAT at ``data[offset:offset+4]``; :class:`DecodeError` when bytes are missing."""
    if offset < 0 or len(data) < offset + 4:
        raise DecodeError("", data.hex(), f"FLOAT at byte {offset} needs 4 bytes")
    (raw,) = unpack_from("<I", data, offset)
    return float_from_raw(raw)


def _mantissa_exponent(
    value: Decimal, *, mantissa_max: int, exp_min: int, exp_max: int, what: str
) -> tuple[int, int]:
    """The (mantissa, exponent) pair writing ``value`` exactly, or :class:`EncodeError`."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise EncodeError(f"{what}: {value!r} is not a finite Decimal")
    sign, digits, exp = value.as_tuple()
    assert isinstance(exp, int)  # finite
    mantissa = int("".join(map(str, digits))) * (-1 if sign else 1)

    def _fits(m: int, e: int) -> bool:
        return exp_min <= e <= exp_max and -mantissa_max - 1 <= m <= mantissa_max

    if mantissa == 0:
        return 0, min(max(exp, exp_min), exp_max)
    while exp > exp_max:
        mantissa *= 10
        exp -= 1
    # Drop trailing zeros only while needed: they carry precision (2.0 is not 2).
    while exp < exp_max and mantissa % 10 == 0 and not _fits(mantissa, exp):
        mantissa //= 10
        exp += 1
    if not _fits(mantissa, exp):
        raise EncodeError(f"{what}: {value} cannot be written exactly (it would need rounding)")
    return mantissa, exp


def sfloat_raw(value: Decimal | Special) -> int:
    """The unsigned 16-bit SFLOAT writing ``value`` exactly; raises :class:`EncodeError`."""
    if isinstance(value, Special):
        return _SFLOAT_OF_SPECIAL[value]
    mantissa, exponent = _mantissa_exponent(
        value, mantissa_max=0x7FF, exp_min=-8, exp_max=7, what="SFLOAT"
    )
    raw = (exponent & 0xF) << 12 | (mantissa & 0xFFF)
    if raw in SFLOAT_SPECIALS:
        raise EncodeError(f"SFLOAT: {value} collides with the special value {raw:#06x}")
    return raw


def float_raw(value: Decimal | Special) -> int:
    """The unsigned 32-bit FLOAT writing ``value`` exactly; raises :class:`EncodeError`."""
    if isinstance(value, Special):
        return _FLOAT_OF_SPECIAL[value]
    mantissa, exponent = _mantissa_exponent(
        value, mantissa_max=0x7FFFFF, exp_min=-128, exp_max=127, what="FLOAT"
    )
    raw = (exponent & 0xFF) << 24 | (mantissa & 0xFFFFFF)
    if raw in FLOAT_SPECIALS:
        raise EncodeError(f"FLOAT: {value} collides with the special value {raw:#010x}")
    return raw


def encode_sfloat(value: Decimal | Special) -> bytes:
    """Two little-endian bytes; the smallest exponent that keeps ``value`` exact."""
    return pack("<H", sfloat_raw(value))


def encode_float(value: Decimal | Special) -> bytes:
    """Four little-endian bytes; the smallest exponent that keeps ``value`` exact."""
    return pack("<I", float_raw(value))


# --- Date Time ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DateTime:
    """A Bluetooth Date Time as sent: device wall-clock, no zone, 0 = unknown year/month/day."""

    year: int
    month: int
    day: int
    hours: int = 0
    minutes: int = 0
    seconds: int = 0

    @property
    def is_complete(self) -> bool:
        """True when year, month and day are all known."""
        return self.year != 0 and self.month != 0 and self.day != 0

    def to_datetime(self) -> datetime | None:
        """The naive wall-clock datetime, or None when a date field is unknown."""
        if not self.is_complete:
            return None
        return datetime(self.year, self.month, self.day, self.hours, self.minutes, self.seconds)

    def as_dict(self) -> dict[str, int]:
        """The raw fields under the names cli-decode.md uses for ``timestamp_partial``."""
        return {
            "year": self.year,
            "month": self.month,
            "day": self.day,
            "hour": self.hours,
            "minute": self.minutes,
            "second": self.seconds,
        }

    @classmethod
    def from_datetime(cls, dt: datetime) -> DateTime:
        """The Date Time of a wall-clock datetime (its zone, if any, is not written)."""
        return cls(dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second)


def date_time_problem(
    year: int, month: int, day: int, hours: int, minutes: int, seconds: int
) -> str | None:
    """Why these fields are not a valid Date Time, or None when they are."""
    if year != 0 and not 1582 <= year <= 9999:
        return f"year {year} is outside 1582..9999 (0 = unknown)"
    if not 0 <= month <= 12:
        return f"month {month} is outside 1..12 (0 = unknown)"
    if not 0 <= day <= 31:
        return f"day {day} is outside 1..31 (0 = unknown)"
    if not 0 <= hours <= 23:
        return f"hours {hours} is outside 0..23"
    if not 0 <= minutes <= 59:
        return f"minutes {minutes} is outside 0..59"
    if not 0 <= seconds <= 59:
        return f"seconds {seconds} is outside 0..59"
    if month and day:
        # With the year unknown, 29 February may still exist.
        last = calendar.monthrange(year or 2000, month)[1]
        if day > last:
            return f"day {day} does not exist in month {month}" + (f" of {year}" if year else "")
    return None


# Longest day of each month (index 0 = month unknown); 29 February is checked separately.
_MAX_DAY = (31, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_make_date_time = frozen_maker(DateTime)


def decode_date_time(data: bytes, offset: int = 0) -> DateTime:
    """The 7-byte Date Time at ``offset``; raises :class:`DecodeError` on missing bytes or range."""
    if offset < 0 or len(data) < offset + 7:
        raise DecodeError("", data.hex(), f"Date Time at byte {offset} needs 7 bytes")
    year, month, day, hours, minutes, seconds = unpack_from("<HBBBBB", data, offset)
    if (
        (year == 0 or 1582 <= year <= 9999)
        and month <= 12
        and day <= _MAX_DAY[month]
        and hours <= 23
        and minutes <= 59
        and seconds <= 59
        and not (month == 2 and day == 29 and year and not calendar.isleap(year))
    ):
        return _make_date_time(year, month, day, hours, minutes, seconds)
    problem = date_time_problem(year, month, day, hours, minutes, seconds)
    raise DecodeError("", data.hex(), f"Date Time at byte {offset}: {problem}")


def encode_date_time(value: DateTime | datetime) -> bytes:
    """The 7 bytes of a Date Time; raises :class:`EncodeError` for fields out of range."""
    if isinstance(value, datetime):
        value = DateTime.from_datetime(value)
    problem = date_time_problem(
        value.year, value.month, value.day, value.hours, value.minutes, value.seconds
    )
    if problem is not None:
        raise EncodeError(f"Date Time: {problem}")
    return pack(
        "<HBBBBB", value.year, value.month, value.day, value.hours, value.minutes, value.seconds
    )
