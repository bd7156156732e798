"""Glucose Service 0x1808 (GLS 1.0), ble-profiles.md §4.

Glucose Measurement 0x2A18 (notify)::

    offset  size  field                              present when
    0       1     flags                              always
    1       2     sequence number (uint16)           always (wraps 65535 → 0)
    3       7     base time (Date Time)              always
    10      2     time offset (sint16, minutes)      flags bit 0
    -       2     glucose concentration (SFLOAT)     flags bit 1   kg/L, or mol/L with flags bit 2
    -       1     type (low nibble) /                flags bit 1
                  sample location (high nibble)
    -       2     sensor status annunciation         flags bit 3 (uint16)

    flags: bit 4 context information follows (a 0x2A34 with the same sequence number);
           bits 5-7 reserved. Length 10..17.
    user-facing time = base time + time offset. 105 mg/dL = 105e-5 kg/L = bytes 69 B0.

    type: 1 capillary whole blood, 2 capillary plasma, 3 venous whole blood, 4 venous plasma,
          5 arterial whole blood, 6 arterial plasma, 7 undetermined whole blood,
          8 undetermined plasma, 9 interstitial fluid, 10 control solution (others raw)
    location: 1 finger, 2 alternate site test, 3 earlobe, 4 control solution,
              15 not available (others raw)
    sensor status (SIG-XML order; Nordic swaps bits 5/6, do not copy): see STATUS_BITS.

Glucose Measurement Context 0x2A34 (notify)::

    0   1  flags: bit 0 carbohydrate ID + carbohydrate, bit 1 meal, bit 2 tester-health,
              bit 3 exercise duration + intensity, bit 4 medication ID + medication,
              bit 5 medication unit (0 kg, 1 L), bit 6 HbA1c, bit 7 extended flags present
    1   2  sequence number (uint16) = the measurement's
    -   1  extended flags (bit 7; all reserved)
    -   1+2 carbohydrate ID (uint8: 1 breakfast .. 7 brunch) + carbohydrate (SFLOAT, kg)
    -   1  meal (uint8: 1 preprandial, 2 postprandial, 3 fasting, 4 casual, 5 bedtime)
    -   1  tester (low nibble: 1 self, 2 HCP, 3 lab, 15 n/a) / health (high nibble:
           1 minor, 2 major issues, 3 menses, 4 stress, 5 none, 15 n/a)
    -   2+1 exercise duration (uint16 s, 65535 = overrun) + intensity (uint8 %)
    -   1+2 medication ID (uint8: 1 rapid- .. 5 pre-mixed insulin) + medication (SFLOAT kg or L)
    -   2  HbA1c (SFLOAT %)

Glucose Feature 0x2A51 (uint16): see FEATURE_BITS.

Vectors: tests/devices/test_devices_glucose.py (Nordic GLS tests, ble-profiles.md examples).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from struct import pack, unpack_from

from devices.errors import DecodeError, EncodeError
from devices.gatt._common import bit_names, check_uint, fail, require_length
from devices.ieee11073 import (
    DateTime,
    decode_date_time,
    encode_date_time,
    encode_sfloat,
    sfloat_from_raw,
)
from devices.model import Special
from devices.uuids import GLUCOSE_FEATURE, GLUCOSE_MEASUREMENT, GLUCOSE_MEASUREMENT_CONTEXT

FLAG_TIME_OFFSET = 0x01
FLAG_CONCENTRATION = 0x02
FLAG_MOL_PER_L = 0x04
FLAG_STATUS = 0x08
FLAG_CONTEXT_FOLLOWS = 0x10

STATUS_BITS: tuple[str, ...] = (
    "device_battery_low",
    "sensor_malfunction",
    "sample_size_insufficient",
    "strip_insertion_error",
    "strip_type_incorrect",
    "result_higher_than_device_can_process",
    "result_lower_than_device_can_process",
    "sensor_temperature_too_high",
    "sensor_temperature_too_low",
    "sensor_read_interrupted",
    "general_device_fault",
    "time_fault",
)
FEATURE_BITS: tuple[str, ...] = (
    "low_battery_detection",
    "sensor_malfunction_detection",
    "sensor_sample_size",
    "strip_insertion_error_detection",
    "strip_type_error_detection",
    "result_high_low_detection",
    "temperature_high_low_detection",
    "read_interrupt_detection",
    "general_device_fault",
    "time_fault",
    "multiple_bond",
)
SAMPLE_TYPES: dict[int, str] = {
    1: "capillary_whole_blood",
    2: "capillary_plasma",
    3: "venous_whole_blood",
    4: "venous_plasma",
    5: "arterial_whole_blood",
    6: "arterial_plasma",
    7: "undetermined_whole_blood",
    8: "undetermined_plasma",
    9: "interstitial_fluid",
    10: "control_solution",
}
SAMPLE_LOCATIONS: dict[int, str] = {
    1: "finger",
    2: "alternate_site_test",
    3: "earlobe",
    4: "control_solution",
    15: "not_available",
}
CONTROL_SOLUTION_TYPE = 10
CONTROL_SOLUTION_LOCATION = 4
CARBOHYDRATES: dict[int, str] = {
    1: "breakfast",
    2: "lunch",
    3: "dinner",
    4: "snack",
    5: "drink",
    6: "supper",
    7: "brunch",
}
MEALS: dict[int, str] = {
    1: "preprandial",
    2: "postprandial",
    3: "fasting",
    4: "casual",
    5: "bedtime",
}
TESTERS: dict[int, str] = {
    1: "self",
    2: "health_care_professional",
    3: "lab_test",
    15: "not_available",
}
HEALTH: dict[int, str] = {
    1: "minor_health_issues",
    2: "major_health_issues",
    3: "during_menses",
    4: "under_stress",
    5: "no_health_issues",
    15: "not_available",
}
MEDICATIONS: dict[int, str] = {
    1: "rapid_acting_insulin",
    2: "short_acting_insulin",
    3: "intermediate_acting_insulin",
    4: "long_acting_insulin",
    5: "pre_mixed_insulin",
}

_MG_DL_PER_KG_L = 5  # decimal places: kg/L × 100 000 = mg/dL, exactly
_MMOL_L_PER_MOL_L = 3  # mol/L × 1000 = mmol/L, exactly


class ConcentrationUnit(StrEnum):
    """The SI unit the concentration is sent in (flags bit 2)."""

    KG_PER_L = "kg/L"
    MOL_PER_L = "mol/L"


def rescale(value: Decimal, places: int) -> Decimal:
    """``value × 10^places`` exactly, keeping its precision (105e-5 kg/L → 105 mg/dL).

    A result with a positive exponent is written as the integer it denotes (30 kg/L is
    3000000 mg/dL, not 3.0E+6), as FLOATS.md writes positive exponents.
    """
    result = value.scaleb(places)
    exponent = result.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        return Decimal(int(result))
    return result


def enum_name(table: dict[int, str], code: int | None) -> str | None:
    """The vocabulary name of ``code``, its decimal text when reserved, None when absent."""
    if code is None:
        return None
    return table.get(code, str(code))


@dataclass(frozen=True, slots=True)
class GlucoseMeasurement:
    """0x2A18. ``concentration`` and ``unit`` are None when flags bit 1 is clear."""

    sequence_number: int
    base_time: DateTime
    time_offset_min: int | None = None
    concentration: Decimal | Special | None = None
    unit: ConcentrationUnit | None = None
    sample_type: int | None = None
    sample_location: int | None = None
    sensor_status_raw: int | None = None
    context_follows: bool = False

    @property
    def sensor_status(self) -> tuple[str, ...] | None:
        """Sensor status names, or None when the device sent no annunciation."""
        if self.sensor_status_raw is None:
            return None
        return bit_names(self.sensor_status_raw, STATUS_BITS)

    @property
    def timestamp(self) -> datetime | None:
        """The user-facing time (base time + offset), None when the base time is partial."""
        base = self.base_time.to_datetime()
        if base is None or not self.time_offset_min:
            return base
        return base + timedelta(minutes=self.time_offset_min)

    @property
    def mg_dl(self) -> Decimal | None:
        """kg/L × 100 000, exact; None for mol/L, specials or no value."""
        if self.unit is ConcentrationUnit.KG_PER_L and isinstance(self.concentration, Decimal):
            return rescale(self.concentration, _MG_DL_PER_KG_L)
        return None

    @property
    def mmol_l(self) -> Decimal | None:
        """mol/L × 1000, exact; None for kg/L, specials or no value."""
        if self.unit is ConcentrationUnit.MOL_PER_L and isinstance(self.concentration, Decimal):
            return rescale(self.concentration, _MMOL_L_PER_MOL_L)
        return None

    @property
    def is_control_solution(self) -> bool:
        """Type 10 or location 4: a meter check, never a patient value (xDrip, Tidepool)."""
        return (
            self.sample_type == CONTROL_SOLUTION_TYPE
            or self.sample_location == CONTROL_SOLUTION_LOCATION
        )


@dataclass(frozen=True, slots=True)
class GlucoseContext:
    """0x2A34, joined to its measurement on ``sequence_number``. Absent fields are None."""

    sequence_number: int
    extended_flags: int | None = None
    carbohydrate_id: int | None = None
    carbohydrate_kg: Decimal | Special | None = None
    meal: int | None = None
    tester: int | None = None
    health: int | None = None
    exercise_duration_s: int | None = None
    exercise_intensity_pct: int | None = None
    medication_id: int | None = None
    medication: Decimal | Special | None = None
    medication_in_litres: bool = False
    hba1c_pct: Decimal | Special | None = None


@dataclass(frozen=True, slots=True)
class GlucoseFeature:
    """0x2A51."""

    raw: int

    @property
    def features(self) -> tuple[str, ...]:
        """Supported feature names in bit order."""
        return bit_names(self.raw, FEATURE_BITS)


def _measurement_length(flags: int) -> int:
    return (
        10
        + (2 if flags & FLAG_TIME_OFFSET else 0)
        + (3 if flags & FLAG_CONCENTRATION else 0)
        + (2 if flags & FLAG_STATUS else 0)
    )


def decode_measurement(data: bytes) -> GlucoseMeasurement:
    """Decode 0x2A18; raises :class:`DecodeError`."""
    uuid = GLUCOSE_MEASUREMENT
    n = len(data)
    if n < 10:
        raise fail(uuid, data, f"needs at least 10 bytes (flags, sequence, base time), got {n}")
    flags = data[0]
    needed = _measurement_length(flags)
    if n < needed:
        announced = [
            name
            for bit, name in (
                (FLAG_TIME_OFFSET, "time offset"),
                (FLAG_CONCENTRATION, "concentration with type and location"),
                (FLAG_STATUS, "sensor status"),
            )
            if flags & bit
        ]
        raise fail(
            uuid,
            data,
            f"flags {flags:#04x} announce {', '.join(announced)}: {needed} bytes needed, got {n}",
        )
    sequence = data[1] | data[2] << 8
    try:
        base_time = decode_date_time(data, 3)
    except DecodeError as exc:
        raise exc.for_characteristic(uuid, data) from None
    offset = 10
    time_offset = None
    if flags & FLAG_TIME_OFFSET:
        (time_offset,) = unpack_from("<h", data, 10)
        offset = 12
    concentration: Decimal | Special | None = None
    unit = None
    sample_type = sample_location = None
    if flags & FLAG_CONCENTRATION:
        concentration = sfloat_from_raw(data[offset] | data[offset + 1] << 8)
        unit = ConcentrationUnit.MOL_PER_L if flags & FLAG_MOL_PER_L else ConcentrationUnit.KG_PER_L
        sample_type = data[offset + 2] & 0x0F
        sample_location = data[offset + 2] >> 4
        offset += 3
    status = None
    if flags & FLAG_STATUS:
        status = data[offset] | data[offset + 1] << 8
    value = GlucoseMeasurement(
        sequence,
        base_time,
        time_offset,
        concentration,
        unit,
        sample_type,
        sample_location,
        status,
        bool(flags & FLAG_CONTEXT_FOLLOWS),
    )
    if base_time.is_complete and time_offset:
        try:
            _ = value.timestamp  # the sum must be a representable date
        except OverflowError:
            raise fail(uuid, data, "base time + time offset is outside the calendar") from None
    return value


def encode_measurement(value: GlucoseMeasurement) -> bytes:
    """The 0x2A18 payload a meter would notify for ``value``."""
    flags = FLAG_CONTEXT_FOLLOWS if value.context_follows else 0
    parts = [
        b"",
        pack("<H", check_uint(value.sequence_number, 16, "sequence number")),
        encode_date_time(value.base_time),
    ]
    if value.time_offset_min is not None:
        if not -32768 <= value.time_offset_min <= 32767:
            raise EncodeError(f"time offset {value.time_offset_min} does not fit sint16")
        flags |= FLAG_TIME_OFFSET
        parts.append(pack("<h", value.time_offset_min))
    if value.concentration is not None:
        if value.unit is None or value.sample_type is None or value.sample_location is None:
            raise EncodeError("glucose concentration needs its unit, sample type and location")
        flags |= FLAG_CONCENTRATION
        if value.unit is ConcentrationUnit.MOL_PER_L:
            flags |= FLAG_MOL_PER_L
        type_location = check_uint(value.sample_type, 4, "sample type") | (
            check_uint(value.sample_location, 4, "sample location") << 4
        )
        parts.append(encode_sfloat(value.concentration) + bytes([type_location]))
    elif value.unit is not None:
        raise EncodeError("a glucose unit without a concentration cannot be written")
    if value.sensor_status_raw is not None:
        flags |= FLAG_STATUS
        parts.append(pack("<H", check_uint(value.sensor_status_raw, 16, "sensor status")))
    parts[0] = bytes([flags])
    return b"".join(parts)


# (flag bit, bytes, description) in wire order after flags + sequence number.
_CONTEXT_FIELDS = (
    (0x80, 1, "extended flags"),
    (0x01, 3, "carbohydrate ID and amount"),
    (0x02, 1, "meal"),
    (0x04, 1, "tester-health"),
    (0x08, 3, "exercise duration and intensity"),
    (0x10, 3, "medication ID and amount"),
    (0x40, 2, "HbA1c"),
)


def decode_context(data: bytes) -> GlucoseContext:
    """Decode 0x2A34; raises :class:`DecodeError`."""
    uuid = GLUCOSE_MEASUREMENT_CONTEXT
    require_length(uuid, data, 3, "flags and sequence number")
    flags = data[0]
    needed = 3 + sum(size for bit, size, _ in _CONTEXT_FIELDS if flags & bit)
    if len(data) < needed:
        announced = ", ".join(name for bit, _, name in _CONTEXT_FIELDS if flags & bit)
        raise fail(
            uuid,
            data,
            f"flags {flags:#04x} announce {announced}: {needed} bytes needed, got {len(data)}",
        )
    sequence = data[1] | data[2] << 8
    offset = 3
    extended = carb_id = meal = tester = health = duration = intensity = medication_id = None
    carbs: Decimal | Special | None = None
    medication: Decimal | Special | None = None
    hba1c: Decimal | Special | None = None
    if flags & 0x80:
        extended = data[offset]
        offset += 1
    if flags & 0x01:
        carb_id = data[offset]
        carbs = sfloat_from_raw(data[offset + 1] | data[offset + 2] << 8)
        offset += 3
    if flags & 0x02:
        meal = data[offset]
        offset += 1
    if flags & 0x04:
        tester = data[offset] & 0x0F
        health = data[offset] >> 4
        offset += 1
    if flags & 0x08:
        duration = data[offset] | data[offset + 1] << 8
        intensity = data[offset + 2]
        offset += 3
    if flags & 0x10:
        medication_id = data[offset]
        medication = sfloat_from_raw(data[offset + 1] | data[offset + 2] << 8)
        offset += 3
    if flags & 0x40:
        hba1c = sfloat_from_raw(data[offset] | data[offset + 1] << 8)
    return GlucoseContext(
        sequence,
        extended,
        carb_id,
        carbs,
        meal,
        tester,
        health,
        duration,
        intensity,
        medication_id,
        medication,
        bool(flags & 0x10 and flags & 0x20),
        hba1c,
    )


def encode_context(value: GlucoseContext) -> bytes:
    """The 0x2A34 payload; a field group is written when its first field is not None."""
    flags = 0
    body = bytearray(pack("<H", check_uint(value.sequence_number, 16, "sequence number")))
    if value.extended_flags is not None:
        flags |= 0x80
        body.append(check_uint(value.extended_flags, 8, "extended flags"))
    if value.carbohydrate_id is not None:
        if value.carbohydrate_kg is None:
            raise EncodeError("carbohydrate ID needs its amount")
        flags |= 0x01
        body.append(check_uint(value.carbohydrate_id, 8, "carbohydrate ID"))
        body += encode_sfloat(value.carbohydrate_kg)
    if value.meal is not None:
        flags |= 0x02
        body.append(check_uint(value.meal, 8, "meal"))
    if value.tester is not None or value.health is not None:
        if value.tester is None or value.health is None:
            raise EncodeError("tester and health share one byte: give both")
        flags |= 0x04
        tester = check_uint(value.tester, 4, "tester")
        body.append(tester | check_uint(value.health, 4, "health") << 4)
    if value.exercise_duration_s is not None:
        if value.exercise_intensity_pct is None:
            raise EncodeError("exercise duration needs its intensity")
        flags |= 0x08
        body += pack("<H", check_uint(value.exercise_duration_s, 16, "exercise duration"))
        body.append(check_uint(value.exercise_intensity_pct, 8, "exercise intensity"))
    if value.medication_id is not None:
        if value.medication is None:
            raise EncodeError("medication ID needs its amount")
        flags |= 0x10 | (0x20 if value.medication_in_litres else 0)
        body.append(check_uint(value.medication_id, 8, "medication ID"))
        body += encode_sfloat(value.medication)
    if value.hba1c_pct is not None:
        flags |= 0x40
        body += encode_sfloat(value.hba1c_pct)
    return bytes([flags]) + bytes(body)


def decode_feature(data: bytes) -> GlucoseFeature:
    """Decode 0x2A51 (uint16)."""
    require_length(GLUCOSE_FEATURE, data, 2, "the uint16 feature field")
    return GlucoseFeature(data[0] | data[1] << 8)


def encode_feature(value: GlucoseFeature) -> bytes:
    """The 0x2A51 payload."""
    return pack("<H", check_uint(value.raw, 16, "glucose feature"))
