"""Blood Pressure Service 0x1810 (BLS 1.0/1.1.1), ble-profiles.md §3.

Blood Pressure Measurement 0x2A35 (indicate) and Intermediate Cuff Pressure 0x2A36 (notify)::

    offset  size  field                    present when
    0       1     flags                    always
    1       2     systolic (SFLOAT)        always      0x2A36: the current cuff pressure
    3       2     diastolic (SFLOAT)       always      0x2A36: unused ("NaN"), ignored
    5       2     mean arterial (SFLOAT)   always      0x2A36: unused ("NaN"), ignored
    7       7     time stamp (Date Time)   flags bit 1
    -       2     pulse rate (SFLOAT)      flags bit 2 (beats/min whatever the unit bit)
    -       1     user ID (uint8)          flags bit 3 (255 = unknown user)
    -       2     measurement status       flags bit 4 (uint16)

    flags: bit 0 unit (0 mmHg, 1 kPa), bits 5-7 reserved (ignored; Beurer BM85 sets bit 6)
    length: 7 (no optional field) .. 19 (all); trailing bytes are ignored

Measurement status (uint16)::

    bit 0  body_movement               bit 2  irregular_pulse
    bit 1  cuff_too_loose              bit 5  improper_measurement_position
    bits 3-4  pulse-rate range: 0 in range, 1 pulse_rate_exceeds_upper_limit,
              2 pulse_rate_below_lower_limit, 3 pulse_rate_range_reserved
    bits 6-15 reserved (kept in ``status_raw``)

Blood Pressure Feature 0x2A49 (uint16), bit order: body_movement_detection,
cuff_fit_detection, irregular_pulse_detection, pulse_rate_range_detection,
measurement_position_detection, multiple_bond, e2e_crc, user_data_service, user_facing_time.

Vectors: tests/devices/test_devices_blood_pressure.py (Nordic BPM tests, derdilla captures).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from struct import pack, unpack_from

from devices._fast import frozen_maker
from devices.errors import DecodeError, EncodeError
from devices.gatt._common import bit_names, check_uint, fail
from devices.ieee11073 import DateTime, decode_date_time, encode_date_time, sfloat_from_raw
from devices.ieee11073 import encode_sfloat as _sfloat
from devices.model import Special
from devices.uuids import (
    BLOOD_PRESSURE_FEATURE,
    BLOOD_PRESSURE_MEASUREMENT,
    INTERMEDIATE_CUFF_PRESSURE,
)

FLAG_KPA = 0x01
FLAG_TIME_STAMP = 0x02
FLAG_PULSE_RATE = 0x04
FLAG_USER_ID = 0x08
FLAG_STATUS = 0x10

UNKNOWN_USER = 0xFF

STATUS_BITS: tuple[str | None, ...] = (
    "body_movement",
    "cuff_too_loose",
    "irregular_pulse",
    None,  # bits 3-4: pulse-rate range, decoded below
    None,
    "improper_measurement_position",
)
PULSE_RATE_RANGE: tuple[str | None, ...] = (
    None,
    "pulse_rate_exceeds_upper_limit",
    "pulse_rate_below_lower_limit",
    "pulse_rate_range_reserved",
)
FEATURE_BITS: tuple[str, ...] = (
    "body_movement_detection",
    "cuff_fit_detection",
    "irregular_pulse_detection",
    "pulse_rate_range_detection",
    "measurement_position_detection",
    "multiple_bond",
    "e2e_crc",
    "user_data_service",
    "user_facing_time",
)


class PressureUnit(StrEnum):
    """The unit of every pressure in one record (flags bit 0)."""

    MMHG = "mmHg"
    KPA = "kPa"


def status_names(status_raw: int) -> tuple[str, ...]:
    """The cli-decode.md vocabulary for a Measurement Status value, in bit order."""
    names = bit_names(status_raw & 0x07, STATUS_BITS)
    pulse_range = PULSE_RATE_RANGE[status_raw >> 3 & 0x03]
    if pulse_range is not None:
        names += (pulse_range,)
    if status_raw & 0x20:
        names += ("improper_measurement_position",)
    return names


def status_bits(names: tuple[str, ...]) -> int:
    """The inverse of :func:`status_names`; raises :class:`EncodeError` on unknown names."""
    raw = 0
    for name in names:
        if name in PULSE_RATE_RANGE and name is not None:
            raw |= PULSE_RATE_RANGE.index(name) << 3
        elif name in STATUS_BITS:
            raw |= 1 << STATUS_BITS.index(name)
        else:
            raise EncodeError(f"blood pressure status: unknown name {name!r}")
    return raw


@dataclass(frozen=True, slots=True)
class BloodPressureMeasurement:
    """0x2A35. ``mean_arterial_pressure`` is None only when a quirk says the device sent no MAP."""

    systolic: Decimal | Special
    diastolic: Decimal | Special
    mean_arterial_pressure: Decimal | Special | None
    unit: PressureUnit = PressureUnit.MMHG
    timestamp: DateTime | None = None
    pulse_rate: Decimal | Special | None = None
    user_id: int | None = None
    status_raw: int | None = None

    @property
    def status(self) -> tuple[str, ...] | None:
        """Status names, or None when the device sent no status field."""
        return None if self.status_raw is None else status_names(self.status_raw)


@dataclass(frozen=True, slots=True)
class IntermediateCuffPressure:
    """0x2A36: the live cuff pressure while inflating. Display only, never a result."""

    cuff_pressure: Decimal | Special
    unit: PressureUnit = PressureUnit.MMHG
    timestamp: DateTime | None = None
    pulse_rate: Decimal | Special | None = None
    user_id: int | None = None
    status_raw: int | None = None

    @property
    def status(self) -> tuple[str, ...] | None:
        """Status names, or None when the device sent no status field."""
        return None if self.status_raw is None else status_names(self.status_raw)


@dataclass(frozen=True, slots=True)
class BloodPressureFeature:
    """0x2A49: which status bits and options the monitor supports."""

    raw: int

    @property
    def features(self) -> tuple[str, ...]:
        """Supported feature names in bit order (reserved bits are dropped)."""
        return bit_names(self.raw, FEATURE_BITS)


# Required length per combination of the five meaningful flag bits.
_LENGTH = tuple(
    7
    + (7 if f & FLAG_TIME_STAMP else 0)
    + (2 if f & FLAG_PULSE_RATE else 0)
    + (1 if f & FLAG_USER_ID else 0)
    + (2 if f & FLAG_STATUS else 0)
    for f in range(32)
)
_FIELD_NAMES = (
    (FLAG_TIME_STAMP, "time stamp"),
    (FLAG_PULSE_RATE, "pulse rate"),
    (FLAG_USER_ID, "user ID"),
    (FLAG_STATUS, "measurement status"),
)


def _announced(flags: int) -> str:
    fields = [name for bit, name in _FIELD_NAMES if flags & bit]
    return ", ".join(["three pressures", *fields])


def _decode_common(
    uuid: str, data: bytes
) -> tuple[int, int, int, int, DateTime | None, Decimal | Special | None, int | None, int | None]:
    """(flags, raw1, raw2, raw3, timestamp, pulse, user, status) of a 0x2A35/0x2A36 payload."""
    n = len(data)
    if n < 7:
        raise fail(uuid, data, f"needs at least 7 bytes (flags and three SFLOATs), got {n}")
    flags = data[0]
    needed = _LENGTH[flags & 0x1F]
    if n < needed:
        raise fail(
            uuid,
            data,
            f"flags {flags:#04x} announce {_announced(flags)}: {needed} bytes needed, got {n}",
        )
    raw1, raw2, raw3 = unpack_from("<HHH", data, 1)
    offset = 7
    timestamp = None
    if flags & FLAG_TIME_STAMP:
        try:
            timestamp = decode_date_time(data, 7)
        except DecodeError as exc:
            raise exc.for_characteristic(uuid, data) from None
        offset = 14
    pulse: Decimal | Special | None = None
    if flags & FLAG_PULSE_RATE:
        pulse = sfloat_from_raw(data[offset] | data[offset + 1] << 8)
        offset += 2
    user = None
    if flags & FLAG_USER_ID:
        user = data[offset]
        offset += 1
    status = None
    if flags & FLAG_STATUS:
        status = data[offset] | data[offset + 1] << 8
    return flags, raw1, raw2, raw3, timestamp, pulse, user, status


_make_measurement = frozen_maker(BloodPressureMeasurement)


def decode_measurement(data: bytes) -> BloodPressureMeasurement:
    """Decode 0x2A35; raises :class:`DecodeError`."""
    flags, sys_raw, dia_raw, map_raw, timestamp, pulse, user, status = _decode_common(
        BLOOD_PRESSURE_MEASUREMENT, data
    )
    return _make_measurement(
        sfloat_from_raw(sys_raw),
        sfloat_from_raw(dia_raw),
        sfloat_from_raw(map_raw),
        PressureUnit.KPA if flags & FLAG_KPA else PressureUnit.MMHG,
        timestamp,
        pulse,
        user,
        status,
    )


def decode_intermediate_cuff_pressure(data: bytes) -> IntermediateCuffPressure:
    """Decode 0x2A36; the diastolic and MAP sub-fields are ignored whatever they hold."""
    flags, cuff_raw, _, _, timestamp, pulse, user, status = _decode_common(
        INTERMEDIATE_CUFF_PRESSURE, data
    )
    return IntermediateCuffPressure(
        sfloat_from_raw(cuff_raw),
        PressureUnit.KPA if flags & FLAG_KPA else PressureUnit.MMHG,
        timestamp,
        pulse,
        user,
        status,
    )


def decode_feature(data: bytes) -> BloodPressureFeature:
    """Decode 0x2A49 (uint16)."""
    if len(data) < 2:
        raise fail(BLOOD_PRESSURE_FEATURE, data, f"needs 2 bytes (uint16), got {len(data)}")
    return BloodPressureFeature(data[0] | data[1] << 8)


def _encode_common(
    first: Decimal | Special,
    second: Decimal | Special,
    third: Decimal | Special,
    unit: PressureUnit,
    timestamp: DateTime | None,
    pulse: Decimal | Special | None,
    user: int | None,
    status: int | None,
) -> bytes:
    flags = FLAG_KPA if unit is PressureUnit.KPA else 0
    parts = [b"", _sfloat(first), _sfloat(second), _sfloat(third)]
    if timestamp is not None:
        flags |= FLAG_TIME_STAMP
        parts.append(encode_date_time(timestamp))
    if pulse is not None:
        flags |= FLAG_PULSE_RATE
        parts.append(_sfloat(pulse))
    if user is not None:
        flags |= FLAG_USER_ID
        parts.append(bytes([check_uint(user, 8, "user ID")]))
    if status is not None:
        flags |= FLAG_STATUS
        parts.append(pack("<H", check_uint(status, 16, "measurement status")))
    parts[0] = bytes([flags])
    return b"".join(parts)


def encode_measurement(value: BloodPressureMeasurement) -> bytes:
    """The 0x2A35 payload a monitor would indicate for ``value`` (optional fields when not None)."""
    if value.mean_arterial_pressure is None:
        raise EncodeError("blood pressure measurement: the MAP field is mandatory on the wire")
    return _encode_common(
        value.systolic,
        value.diastolic,
        value.mean_arterial_pressure,
        value.unit,
        value.timestamp,
        value.pulse_rate,
        value.user_id,
        value.status_raw,
    )


def encode_intermediate_cuff_pressure(value: IntermediateCuffPressure) -> bytes:
    """The 0x2A36 payload; the unused diastolic and MAP sub-fields are NaN, as GSS says."""
    return _encode_common(
        value.cuff_pressure,
        Special.NAN,
        Special.NAN,
        value.unit,
        value.timestamp,
        value.pulse_rate,
        value.user_id,
        value.status_raw,
    )


def encode_feature(value: BloodPressureFeature) -> bytes:
    """The 0x2A49 payload."""
    return pack("<H", check_uint(value.raw, 16, "blood pressure feature"))
