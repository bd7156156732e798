"""Named, opt-in fixes for devices that break the spec (ble-profiles.md §11.8, §11.10).

The strict parsers never guess. A quirk is applied only when the caller names it (the gateway
takes the names from :mod:`devices.catalogue` for the model it is talking to; ``daon decode``
takes ``--quirk NAME``). Each quirk is one of three kinds of fix:

- ``fix_payload``: rewrite the bytes into the spec layout *before* the strict parser (the
  device's own layout is checked as strictly as the spec one: a payload that does not have the
  shape the quirk expects is a :class:`DecodeError`, never half-fixed);
- ``fix_value``: adjust the decoded value (for example a MAP the device never computed);
- ``fix_record``: mark a normalised :class:`Measurement` that is not a patient result.

Markers added to ``Measurement.status`` (see :data:`NOT_A_RESULT`) tell ingest not to make an
Observation; the record itself, with its raw bytes, is never dropped here.

Each quirk's test in tests/devices/test_devices_quirks.py feeds the payload that motivated it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from devices.errors import DecodeError, UnknownQuirk
from devices.gatt import blood_pressure as bp
from devices.model import Component, Kind, Measurement
from devices.uuids import BLOOD_PRESSURE_MEASUREMENT, GLUCOSE_MEASUREMENT, WEIGHT_MEASUREMENT

# Status markers for records that must not become a patient Observation.
CONTROL_SOLUTION = "control_solution"  # spec-defined (type 10 / location 4): always applied
KETONE = "ketone"
MEMORY_FULL_PLACEHOLDER = "memory_full_placeholder"
LIVE_VALUE = "live_value"
MEASUREMENT_UNSUCCESSFUL = "measurement_unsuccessful"  # spec-defined 0xFFFF: always applied

NOT_A_RESULT: frozenset[str] = frozenset(
    {CONTROL_SOLUTION, KETONE, MEMORY_FULL_PLACEHOLDER, LIVE_VALUE, MEASUREMENT_UNSUCCESSFUL}
)


def is_patient_result(measurement: Measurement) -> bool:
    """False for live streams and records marked as not a result (control solution, ...)."""
    if measurement.kind is Kind.CUFF_PRESSURE:
        return False
    return NOT_A_RESULT.isdisjoint(measurement.status)


@dataclass(frozen=True, slots=True)
class Quirk:
    """One named fix. ``models`` are catalogue ``"Manufacturer Model"`` labels."""

    name: str
    models: tuple[str, ...]
    characteristics: tuple[str, ...]
    description: str
    source: str
    fix_payload: Callable[[bytes], bytes] | None = None
    fix_value: Callable[[Any], Any] | None = None
    fix_record: Callable[[Measurement], Measurement] | None = None


# --- Beurer BM85: big-endian pulse and status, user ID sent without its flag ------------------


def _beurer_bm85_layout(data: bytes) -> bytes:
    """Rewrite a BM85 0x2A35 into the spec layout.

    The BM85 sends the pulse rate and the status field big-endian and always sends a user ID
    byte after the pulse, whether flags bit 3 says so or not (derdilla/blood-pressure-monitor-fl
    ``bigEndian: true, alwaysSendsUserId: true``, captures in its ble_measurement_data_test).
    """
    uuid = BLOOD_PRESSURE_MEASUREMENT
    if len(data) < 7:
        raise DecodeError(uuid, data.hex(), f"BM85 layout needs at least 7 bytes, got {len(data)}")
    flags = data[0]
    pulse_at = 7 + (7 if flags & bp.FLAG_TIME_STAMP else 0)
    user_at = pulse_at + (2 if flags & bp.FLAG_PULSE_RATE else 0)
    status_at = user_at + 1
    needed = status_at + (2 if flags & bp.FLAG_STATUS else 0)
    if len(data) < needed:
        raise DecodeError(
            uuid,
            data.hex(),
            f"BM85 layout (user ID always present) needs {needed} bytes, got {len(data)}",
        )
    out = bytearray(data)
    out[0] = flags | bp.FLAG_USER_ID
    if flags & bp.FLAG_PULSE_RATE:
        out[pulse_at], out[pulse_at + 1] = data[pulse_at + 1], data[pulse_at]
    if flags & bp.FLAG_STATUS:
        out[status_at], out[status_at + 1] = data[status_at + 1], data[status_at]
    return bytes(out)


def _map_zero_is_absent(value: Any) -> Any:
    """A MAP of exactly 0 means 'not computed'; the record keeps systolic and diastolic."""
    if (
        isinstance(value, bp.BloodPressureMeasurement)
        and isinstance(value.mean_arterial_pressure, Decimal)
        and value.mean_arterial_pressure == 0
    ):
        return replace(value, mean_arterial_pressure=None)
    return value


# --- i-SENS CareSens: month 13 in the glucose base time ---------------------------------------


def _isens_month_13(data: bytes) -> bytes:
    """Base-time month 13 is January of the following year.

    i-SENS firmware computes the base time by subtracting the time offset and fails to carry
    the month into the year (Tidepool ble-glucose comment). Month 13 can only come from that
    missing carry, so we carry it. Tidepool writes month 1 but keeps the year, which would
    date a record eleven months early; we do not copy that. Other months stay strict.
    """
    if len(data) >= 10 and data[5] == 13:
        year = data[3] | data[4] << 8
        if year == 0 or year >= 9999:
            raise DecodeError(
                GLUCOSE_MEASUREMENT, data.hex(), f"month 13 with year {year} cannot be carried"
            )
        out = bytearray(data)
        out[3:5] = (year + 1).to_bytes(2, "little")
        out[5] = 1
        return bytes(out)
    return data


# --- i-SENS CareSens Dual: ketone results flagged by meal = 6 ---------------------------------

KETONE_MEAL_CODE = "6"


def _caresens_ketone(measurement: Measurement) -> Measurement:
    """A record whose context says meal 6 is a blood ketone, not glucose.

    The concentration then holds ketone × 10 on the mg/dL scale (xDrip ``ContextRx.ketone()``,
    Tidepool divides by 10; the meter's range ends at HI > 8.0 mmol/L). The record keeps its
    raw bytes and gets a ``ketone`` component in mmol/L and the ``ketone`` marker.
    """
    if measurement.kind is not Kind.GLUCOSE:
        return measurement
    if measurement.context_value("meal") != KETONE_MEAL_CODE:
        return measurement
    glucose = measurement.component("glucose")
    if glucose is None:
        return measurement
    if glucose.unit != "mg/dL":
        raise DecodeError(
            measurement.characteristic,
            measurement.raw.hex(),
            f"CareSens ketone record in {glucose.unit}: only the kg/L (mg/dL) form is known",
        )
    ketone = Component(
        "ketone",
        None if glucose.value is None else glucose.value.scaleb(-1),
        "mmol/L",
        glucose.special,
    )
    others = tuple(c for c in measurement.components if c.code != "glucose")
    context = tuple((k, v) for k, v in measurement.context if k != "meal")
    return replace(
        measurement,
        components=(ketone, *others),
        context=context,
        status=(*measurement.status, KETONE),
    )


# --- ForaCare TN'G Voice: a bogus HI reading dated 2037 when the memory is full ---------------

FORA_PLACEHOLDER_YEAR = 2037


def _fora_memory_full(measurement: Measurement) -> Measurement:
    """Mark the record a full TN'G Voice appends, dated 2037 (Tidepool keeps the first 450)."""
    if (
        measurement.kind is Kind.GLUCOSE
        and measurement.device_time is not None
        and measurement.device_time.year == FORA_PLACEHOLDER_YEAR
    ):
        return replace(measurement, status=(*measurement.status, MEMORY_FULL_PLACEHOLDER))
    return measurement


# --- live weight --------------------------------------------------------------------------------


def _untimed_weight_is_live(measurement: Measurement) -> Measurement:
    """A 0x2A9D without a time stamp from a streaming scale is the live display value."""
    if measurement.kind is Kind.BODY_WEIGHT and measurement.device_time is None:
        return replace(measurement, status=(*measurement.status, LIVE_VALUE))
    return measurement


QUIRKS: dict[str, Quirk] = {
    quirk.name: quirk
    for quirk in (
        Quirk(
            name="beurer_bm85_byte_order",
            models=("Beurer BM85",),
            characteristics=(BLOOD_PRESSURE_MEASUREMENT,),
            description=(
                "Pulse rate and measurement status are sent big-endian, and a user ID byte "
                "follows the pulse even when flags bit 3 is clear; flags bit 6 (reserved) is set."
            ),
            source="derdilla/blood-pressure-monitor-fl ble_measurement_data_test (BM85 captures)",
            fix_payload=_beurer_bm85_layout,
        ),
        Quirk(
            name="map_zero_not_computed",
            models=("Beurer BM85",),
            characteristics=(BLOOD_PRESSURE_MEASUREMENT,),
            description=(
                "Mean arterial pressure is sent as 0 when the monitor does not compute it; "
                "it is dropped instead of being stored as 0 mmHg."
            ),
            source="ble-profiles.md §3.1 (derdilla: Beurer BM85 sends MAP = 0)",
            fix_value=_map_zero_is_absent,
        ),
        Quirk(
            name="isens_month_13",
            models=(
                "i-SENS CareSens N Premier",
                "i-SENS CareSens N Plus BT",
                "i-SENS CareSens Dual",
                "i-SENS ReliOn 2395/0015",
            ),
            characteristics=(GLUCOSE_MEASUREMENT,),
            description=(
                "Glucose base time with month 13 (a missing carry when the firmware subtracts "
                "the time offset) is read as January of the following year."
            ),
            source="ble-profiles.md §1.3; tidepool-org/ble-glucose (i-SENS firmware bug)",
            fix_payload=_isens_month_13,
        ),
        Quirk(
            name="caresens_dual_ketone",
            models=("i-SENS CareSens Dual",),
            characteristics=(GLUCOSE_MEASUREMENT,),
            description=(
                "A context with meal = 6 (reserved) marks a blood-ketone result: the value ÷ 10 "
                "on the mg/dL scale is ketone in mmol/L, never blood glucose."
            ),
            source="ble-profiles.md §4.2; xDrip ContextRx.ketone(); Tidepool bluetoothLEDriver",
            fix_record=_caresens_ketone,
        ),
        Quirk(
            name="fora_memory_full_2037",
            models=("ForaCare TN'G Voice",),
            characteristics=(GLUCOSE_MEASUREMENT,),
            description=(
                "When its memory is full (450 records) the meter appends a bogus HI reading "
                "dated 2037; that record is marked memory_full_placeholder."
            ),
            source="ble-profiles.md §7.3 (Tidepool Fora driver keeps the first 450 records)",
            fix_record=_fora_memory_full,
        ),
        Quirk(
            name="live_weight_untimed",
            models=(),
            characteristics=(WEIGHT_MEASUREMENT,),
            description=(
                "For a scale configured to stream, a Weight Measurement without a time stamp "
                "is the live display value while the weight settles, not the result. No "
                "catalogued model is known to need it; stations enable it per scale."
            ),
            source="ble-profiles.md §7.5 and §11.10 (live scale values are display-only)",
            fix_record=_untimed_weight_is_live,
        ),
    )
}


def resolve(names: Sequence[str]) -> tuple[Quirk, ...]:
    """The quirks named, in the order given; raises :class:`UnknownQuirk` for a bad name."""
    if isinstance(names, str):
        names = (names,)
    found = []
    for name in names:
        quirk = QUIRKS.get(name)
        if quirk is None:
            raise UnknownQuirk(name, tuple(QUIRKS))
        found.append(quirk)
    return tuple(found)


def apply_payload_fixes(quirks: Sequence[Quirk], uuid: str, data: bytes) -> bytes:
    """``data`` after every payload fix of ``quirks`` that targets ``uuid``."""
    for quirk in quirks:
        if quirk.fix_payload is not None and uuid in quirk.characteristics:
            data = quirk.fix_payload(data)
    return data


def apply_value_fixes(quirks: Sequence[Quirk], uuid: str, value: object) -> object:
    """The decoded ``value`` after every value fix of ``quirks`` that targets ``uuid``."""
    for quirk in quirks:
        if quirk.fix_value is not None and uuid in quirk.characteristics:
            value = quirk.fix_value(value)
    return value


def apply_record_fixes(quirks: Sequence[Quirk], measurement: Measurement) -> Measurement:
    """``measurement`` after every record fix of ``quirks`` that targets its characteristic."""
    for quirk in quirks:
        if quirk.fix_record is not None and measurement.characteristic in quirk.characteristics:
            measurement = quirk.fix_record(measurement)
    return measurement


__all__ = [
    "CONTROL_SOLUTION",
    "KETONE",
    "LIVE_VALUE",
    "MEASUREMENT_UNSUCCESSFUL",
    "MEMORY_FULL_PLACEHOLDER",
    "NOT_A_RESULT",
    "QUIRKS",
    "Quirk",
    "apply_payload_fixes",
    "apply_record_fixes",
    "apply_value_fixes",
    "is_patient_result",
    "resolve",
]
