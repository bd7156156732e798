"""Characteristic values → normalised :class:`~devices.model.Measurement` (the Normalize stage).

:func:`decode_record` takes the values that make one record, in received order:

- one Blood Pressure Measurement (0x2A35), or a BLS 1.1 Enhanced Blood Pressure Measurement
  (0x2B34), or the segments of one Blood Pressure Record (0x2B36) holding either: the record's
  sequence number is kept; an Enhanced time is the monitor's user-facing time (its wall clock),
  the UTC time stamp goes to context ``utc_time``;
- one Intermediate Cuff Pressure (0x2A36 or the Enhanced 0x2B35): returned as
  :attr:`Kind.CUFF_PRESSURE`, a live value that is never a result
  (:func:`devices.quirks.is_patient_result` is False);
- one Glucose Measurement (0x2A18), followed by its Context (0x2A34) when the measurement
  announces one (flags bit 4); they are joined on the sequence number;
- one Weight Measurement (0x2A9D);
- the packets of one Body Composition Measurement (0x2A9C): a single packet, or two or more
  packets with flags bit 12 set, merged;
- one CGM Measurement (0x2AA7): one Measurement per record in the notification;
- one Temperature Measurement (0x2A1C).

Components use :data:`devices.model.COMPONENT_CODES` keys and UCUM units as sent (``mm[Hg]``,
``kPa``, ``/min``, ``mg/dL``, ``mmol/L``, ``kg``, ``[lb_av]``, ``kg/m2``, ``m``, ``[in_i]``,
``%``, ``kJ``, ``Ohm``, ``Cel``, ``[degF]``). Glucose is rescaled exactly (kg/L × 100 000 →
mg/dL, mol/L × 1000 → mmol/L) keeping the Decimal's precision. IEEE-11073 special values become
components with ``special`` set and no value. Context facts are strings under the keys
``meal``, ``sample_type``, ``sample_location``, ``tester``, ``health``, ``calibration``
(vocabulary names; a reserved code is its decimal text).

Spec-defined non-results are marked, never dropped: a control-solution glucose (type 10 or
location 4) gets ``control_solution``, a weight or body fat of 0xFFFF gets
``measurement_unsuccessful`` (see :data:`devices.quirks.NOT_A_RESULT`).

Any problem raises :class:`DecodeError` naming the characteristic whose bytes were at fault;
there is never a partial record.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from devices._fast import frozen_maker
from devices.errors import DecodeError, InvalidUuid, UnknownCharacteristic
from devices.gatt import blood_pressure as bp
from devices.gatt import body_composition as bcs
from devices.gatt import cgm
from devices.gatt import enhanced_bp as ebp
from devices.gatt import glucose as gls
from devices.gatt import thermometer as htm
from devices.gatt import weight_scale as wss
from devices.model import Component, Kind, Measurement, Special
from devices.quirks import (
    CONTROL_SOLUTION,
    MEASUREMENT_UNSUCCESSFUL,
    Quirk,
    apply_payload_fixes,
    apply_record_fixes,
    apply_value_fixes,
    resolve,
)
from devices.uuids import (
    BLOOD_PRESSURE_MEASUREMENT,
    BLOOD_PRESSURE_RECORD,
    BODY_COMPOSITION_MEASUREMENT,
    CGM_MEASUREMENT,
    ENHANCED_BLOOD_PRESSURE_MEASUREMENT,
    ENHANCED_INTERMEDIATE_CUFF_PRESSURE,
    GLUCOSE_MEASUREMENT,
    GLUCOSE_MEASUREMENT_CONTEXT,
    INTERMEDIATE_CUFF_PRESSURE,
    TEMPERATURE_MEASUREMENT,
    WEIGHT_MEASUREMENT,
    describe,
    normalize_uuid,
)

CALIBRATIONS = ("plasma", "whole_blood")

PRESSURE_UCUM = {bp.PressureUnit.MMHG: "mm[Hg]", bp.PressureUnit.KPA: "kPa"}
MASS_UCUM = {wss.MassUnit.KG: "kg", wss.MassUnit.LB: "[lb_av]"}
LENGTH_UCUM = {wss.MassUnit.KG: "m", wss.MassUnit.LB: "[in_i]"}
TEMPERATURE_UCUM = {htm.TemperatureUnit.CELSIUS: "Cel", htm.TemperatureUnit.FAHRENHEIT: "[degF]"}
PULSE_UCUM = "/min"
BMI_UCUM = "kg/m2"


# Every reading passes here: skip the frozen __setattr__ cost (devices._fast). A component
# made by component() has exactly one of value and special by construction, which is what
# Component.__post_init__ checks; Measurement has no __post_init__.
_make_component = frozen_maker(Component)
_make_measurement = frozen_maker(Measurement)


def component(code: str, value: Decimal | Special, unit: str) -> Component:
    """A component from a decoded value that may be an IEEE-11073 special."""
    if isinstance(value, Special):
        return _make_component(code, None, unit, value)
    return _make_component(code, value, unit, None)


def _measurement(
    kind: Kind,
    components: tuple[Component, ...],
    device_time: datetime | None,
    *,
    user_index: int | None = None,
    sequence_number: int | None = None,
    status: tuple[str, ...] = (),
    context: tuple[tuple[str, str], ...] = (),
    characteristic: str = "",
    raw: bytes = b"",
) -> Measurement:
    """``Measurement(...)`` with the same keywords, built without the frozen __setattr__."""
    return _make_measurement(
        kind,
        components,
        device_time,
        user_index,
        sequence_number,
        status,
        context,
        characteristic,
        raw,
    )


_NORMALIZED: dict[str, str] = {}


def _normalized_uuid(uuid: str) -> str:
    """:func:`normalize_uuid`, remembered (a feed uses a handful of spellings)."""
    found = _NORMALIZED.get(uuid)
    if found is None:
        found = normalize_uuid(uuid)
        if len(_NORMALIZED) < 4096:
            _NORMALIZED[uuid] = found
    return found


def _prepare(uuid: str, data: bytes, quirks: Sequence[Quirk]) -> bytes:
    return apply_payload_fixes(quirks, uuid, data) if quirks else data


def _blood_pressure(uuid: str, data: bytes, quirks: Sequence[Quirk]) -> Measurement:
    value = bp.decode_measurement(_prepare(uuid, data, quirks))
    if quirks:
        fixed = apply_value_fixes(quirks, uuid, value)
        assert isinstance(fixed, bp.BloodPressureMeasurement)
        value = fixed
    unit = PRESSURE_UCUM[value.unit]
    components = [
        component("systolic", value.systolic, unit),
        component("diastolic", value.diastolic, unit),
    ]
    if value.mean_arterial_pressure is not None:
        components.append(component("mean", value.mean_arterial_pressure, unit))
    if value.pulse_rate is not None:
        components.append(component("pulse", value.pulse_rate, PULSE_UCUM))
    return _measurement(
        kind=Kind.BLOOD_PRESSURE,
        components=tuple(components),
        device_time=None if value.timestamp is None else value.timestamp.to_datetime(),
        user_index=value.user_id,
        status=value.status or (),
        characteristic=uuid,
        raw=data,
    )


def _enhanced_bp(
    uuid: str,
    data: bytes,
    value: ebp.EnhancedBloodPressureMeasurement,
    sequence_number: int | None = None,
) -> Measurement:
    unit = PRESSURE_UCUM[value.unit]
    components = [
        component("systolic", value.systolic, unit),
        component("diastolic", value.diastolic, unit),
        component("mean", value.mean_arterial_pressure, unit),
    ]
    if value.pulse_rate is not None:
        components.append(component("pulse", value.pulse_rate, PULSE_UCUM))
    utc = value.utc_time
    return _measurement(
        kind=Kind.BLOOD_PRESSURE,
        components=tuple(components),
        device_time=value.user_facing_time,
        user_index=value.user_id,
        sequence_number=sequence_number,
        status=value.status or (),
        context=(("utc_time", utc.isoformat()),) if utc is not None else (),
        characteristic=uuid,
        raw=data,
    )


def _enhanced_measurement(uuid: str, data: bytes, quirks: Sequence[Quirk]) -> Measurement:
    return _enhanced_bp(uuid, data, ebp.decode_enhanced_measurement(_prepare(uuid, data, quirks)))


def _enhanced_cuff(uuid: str, data: bytes, quirks: Sequence[Quirk]) -> Measurement:
    value = ebp.decode_enhanced_cuff_pressure(_prepare(uuid, data, quirks))
    components = [component("cuff", value.systolic, PRESSURE_UCUM[value.unit])]
    if value.pulse_rate is not None:
        components.append(component("pulse", value.pulse_rate, PULSE_UCUM))
    return _measurement(
        kind=Kind.CUFF_PRESSURE,
        components=tuple(components),
        device_time=value.user_facing_time,
        user_index=value.user_id,
        status=value.status or (),
        characteristic=uuid,
        raw=data,
    )


def _one_segment(data: bytes) -> tuple[ebp.BloodPressureRecord, object]:
    """A whole one-segment record and its recorded value. Without the Blood Pressure Feature
    at hand, a record that does not decode as sent is tried once more as carrying an E2E-CRC
    (which must then match)."""
    record = ebp.decode_record(data)
    if not record.whole:
        ebp.merge_segments([record])  # raises: says which end is missing
    try:
        return record, ebp.recorded_measurement(record)
    except DecodeError as plain:
        try:
            record = ebp.decode_record(data, e2e_crc=True)
            return record, ebp.recorded_measurement(record)
        except DecodeError:
            raise plain from None


def _bp_record(pairs: Sequence[tuple[str, bytes]]) -> Measurement:
    for uuid, data in pairs:
        if uuid != BLOOD_PRESSURE_RECORD:
            raise DecodeError(
                uuid, data.hex(), "a Blood Pressure Record holds only 0x2B36 segments"
            )
    raw = b"".join(data for _, data in pairs)
    if len(pairs) == 1:
        record, value = _one_segment(pairs[0][1])
    else:
        record = ebp.merge_segments([ebp.decode_record(data) for _, data in pairs])
        value = ebp.recorded_measurement(record)
    if isinstance(value, ebp.EnhancedBloodPressureMeasurement):
        return _enhanced_bp(BLOOD_PRESSURE_RECORD, raw, value, record.sequence_number)
    assert isinstance(value, bp.BloodPressureMeasurement)
    inner = _blood_pressure(BLOOD_PRESSURE_MEASUREMENT, record.recorded, ())
    return _measurement(
        kind=inner.kind,
        components=inner.components,
        device_time=inner.device_time,
        user_index=inner.user_index,
        sequence_number=record.sequence_number,
        status=inner.status,
        characteristic=BLOOD_PRESSURE_RECORD,
        raw=raw,
    )


def _cuff_pressure(uuid: str, data: bytes, quirks: Sequence[Quirk]) -> Measurement:
    value = bp.decode_intermediate_cuff_pressure(_prepare(uuid, data, quirks))
    components = [component("cuff", value.cuff_pressure, PRESSURE_UCUM[value.unit])]
    if value.pulse_rate is not None:
        components.append(component("pulse", value.pulse_rate, PULSE_UCUM))
    return _measurement(
        kind=Kind.CUFF_PRESSURE,
        components=tuple(components),
        device_time=None if value.timestamp is None else value.timestamp.to_datetime(),
        user_index=value.user_id,
        status=value.status or (),
        characteristic=uuid,
        raw=data,
    )


def _glucose(
    values: Sequence[tuple[str, bytes]], quirks: Sequence[Quirk], calibration: str | None
) -> Measurement:
    uuid, data = values[0]
    value = gls.decode_measurement(_prepare(uuid, data, quirks))
    contexts = values[1:]
    if any(ctx_uuid != GLUCOSE_MEASUREMENT_CONTEXT for ctx_uuid, _ in contexts):
        raise DecodeError(
            uuid, data.hex(), "a glucose record is one measurement followed by its context only"
        )
    if len(contexts) > 1:
        raise DecodeError(uuid, data.hex(), f"{len(contexts)} contexts given for one measurement")
    context = None
    if contexts:
        ctx_uuid, ctx_data = contexts[0]
        context = gls.decode_context(ctx_data)
        if context.sequence_number != value.sequence_number:
            raise DecodeError(
                ctx_uuid,
                ctx_data.hex(),
                f"context sequence number {context.sequence_number} does not match the "
                f"measurement's {value.sequence_number}",
            )
    elif value.context_follows:
        raise DecodeError(
            uuid,
            data.hex(),
            f"measurement {value.sequence_number} announces a context (flags bit 4) "
            "but none was given",
        )
    if value.concentration is None or value.unit is None:
        raise DecodeError(
            uuid,
            data.hex(),
            f"record {value.sequence_number} carries no glucose concentration (flags bit 1 "
            "clear): not a result",
        )
    if value.unit is gls.ConcentrationUnit.KG_PER_L:
        unit, scaled = "mg/dL", value.mg_dl
    else:
        unit, scaled = "mmol/L", value.mmol_l
    reading = component("glucose", value.concentration if scaled is None else scaled, unit)
    pairs: list[tuple[str, str]] = []
    for key, table, code in (
        ("sample_type", gls.SAMPLE_TYPES, value.sample_type),
        ("sample_location", gls.SAMPLE_LOCATIONS, value.sample_location),
    ):
        name = gls.enum_name(table, code)
        if name is not None:
            pairs.append((key, name))
    if context is not None:
        for key, table, code in (
            ("meal", gls.MEALS, context.meal),
            ("tester", gls.TESTERS, context.tester),
            ("health", gls.HEALTH, context.health),
        ):
            name = gls.enum_name(table, code)
            if name is not None:
                pairs.append((key, name))
    if calibration is not None:
        pairs.append(("calibration", calibration))
    status = value.sensor_status or ()
    if value.is_control_solution:
        status = (*status, CONTROL_SOLUTION)
    return _measurement(
        kind=Kind.GLUCOSE,
        components=(reading,),
        device_time=value.timestamp,
        sequence_number=value.sequence_number,
        status=status,
        context=tuple(pairs),
        characteristic=uuid,
        raw=data,
    )


def _weight(uuid: str, data: bytes, quirks: Sequence[Quirk]) -> Measurement:
    value = wss.decode_measurement(_prepare(uuid, data, quirks))
    mass = MASS_UCUM[value.unit]
    components: list[Component] = []
    status: tuple[str, ...] = ()
    if value.weight is None:
        components.append(Component("weight", None, mass, Special.NAN))
        status = (MEASUREMENT_UNSUCCESSFUL,)
    else:
        components.append(component("weight", value.weight, mass))
    if value.height is not None:
        components.append(component("height", value.height, LENGTH_UCUM[value.unit]))
    if value.bmi is not None:
        components.append(component("bmi", value.bmi, BMI_UCUM))
    return _measurement(
        kind=Kind.BODY_WEIGHT,
        components=tuple(components),
        device_time=None if value.timestamp is None else value.timestamp.to_datetime(),
        user_index=value.user_id,
        status=status,
        characteristic=uuid,
        raw=data,
    )


_BCS_COMPONENTS = (
    ("basal_metabolism_kj", "basal_metabolism", "kJ"),
    ("muscle_pct", "muscle_pct", "%"),
    ("muscle_mass", "muscle_mass", None),
    ("fat_free_mass", "fat_free_mass", None),
    ("soft_lean_mass", "soft_lean_mass", None),
    ("body_water_mass", "body_water_mass", None),
    ("impedance_ohm", "impedance", "Ohm"),
    ("weight", "weight", None),
    ("height", "height", "length"),
)


def _body_composition(values: Sequence[tuple[str, bytes]], quirks: Sequence[Quirk]) -> Measurement:
    packets = []
    for uuid, data in values:
        if uuid != BODY_COMPOSITION_MEASUREMENT:
            raise DecodeError(
                uuid, data.hex(), "a body composition record is made of 0x2A9C packets only"
            )
        packets.append(bcs.decode_measurement(_prepare(uuid, data, quirks)))
    raw = b"".join(data for _, data in values)
    if len(packets) == 1:
        value = packets[0]
        if value.multiple_packet:
            raise DecodeError(
                BODY_COMPOSITION_MEASUREMENT,
                raw.hex(),
                "packet has flags bit 12 (multiple packet measurement) but no other packet "
                "was given: the record would be partial",
            )
    else:
        try:
            value = bcs.merge_packets(packets)
        except DecodeError as exc:
            raise DecodeError(BODY_COMPOSITION_MEASUREMENT, raw.hex(), exc.reason) from None
    components: list[Component] = []
    status: tuple[str, ...] = ()
    if value.body_fat_pct is None:
        components.append(Component("body_fat", None, "%", Special.NAN))
        status = (MEASUREMENT_UNSUCCESSFUL,)
    else:
        components.append(Component("body_fat", value.body_fat_pct, "%"))
    for attribute, code, unit in _BCS_COMPONENTS:
        amount = getattr(value, attribute)
        if amount is None:
            continue
        if unit is None:
            unit = MASS_UCUM[value.unit]
        elif unit == "length":
            unit = LENGTH_UCUM[value.unit]
        components.append(Component(code, amount, unit))
    return _measurement(
        kind=Kind.BODY_COMPOSITION,
        components=tuple(components),
        device_time=None if value.timestamp is None else value.timestamp.to_datetime(),
        user_index=value.user_id,
        status=status,
        characteristic=BODY_COMPOSITION_MEASUREMENT,
        raw=raw,
    )


def _cgm(uuid: str, data: bytes, quirks: Sequence[Quirk]) -> tuple[Measurement, ...]:
    value = cgm.decode_measurement(_prepare(uuid, data, quirks))
    out = []
    for record in value.records:
        status: list[str] = []
        for names in (record.annunciation or {}).values():
            status.extend(names or ())
        context = [("time_offset_min", str(record.time_offset_min))]
        for key, extra in (
            ("trend_mg_dl_min", record.trend_mg_dl_min),
            ("quality_pct", record.quality_pct),
        ):
            if extra is not None:
                context.append((key, str(extra)))
        out.append(
            _measurement(
                kind=Kind.CGM,
                components=(component("glucose", record.glucose_mg_dl, "mg/dL"),),
                device_time=None,
                status=tuple(status),
                context=tuple(context),
                characteristic=uuid,
                raw=data,
            )
        )
    return tuple(out)


def _temperature(uuid: str, data: bytes, quirks: Sequence[Quirk]) -> Measurement:
    value = htm.decode_measurement(_prepare(uuid, data, quirks))
    context: tuple[tuple[str, str], ...] = ()
    if value.temperature_type is not None:
        context = (("temperature_type", str(value.temperature_type)),)
    return _measurement(
        kind=Kind.BODY_TEMPERATURE,
        components=(component("temperature", value.temperature, TEMPERATURE_UCUM[value.unit]),),
        device_time=None if value.timestamp is None else value.timestamp.to_datetime(),
        context=context,
        characteristic=uuid,
        raw=data,
    )


_SINGLE = {
    BLOOD_PRESSURE_MEASUREMENT: _blood_pressure,
    INTERMEDIATE_CUFF_PRESSURE: _cuff_pressure,
    ENHANCED_BLOOD_PRESSURE_MEASUREMENT: _enhanced_measurement,
    ENHANCED_INTERMEDIATE_CUFF_PRESSURE: _enhanced_cuff,
    WEIGHT_MEASUREMENT: _weight,
    TEMPERATURE_MEASUREMENT: _temperature,
}


def _normalized(values: Sequence[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    out = []
    for uuid, data in values:
        try:
            out.append((_normalized_uuid(uuid), bytes(data)))
        except InvalidUuid as exc:
            raise UnknownCharacteristic(uuid, bytes(data).hex(), str(exc)) from None
    return out


def decode_record(
    values: Sequence[tuple[str, bytes]],
    *,
    quirks: Sequence[str] = (),
    calibration: str | None = None,
) -> tuple[Measurement, ...]:
    """The Measurements of one record (one per record; a CGM notification may hold several).

    ``quirks`` are names from :data:`devices.quirks.QUIRKS`; ``calibration`` (``"plasma"`` or
    ``"whole_blood"``, from the device catalogue or registry) is added to glucose context.
    Raises :class:`DecodeError` (never returns a partial record) and
    :class:`devices.errors.UnknownQuirk` for an unknown quirk name.
    """
    if calibration is not None and calibration not in CALIBRATIONS:
        raise ValueError(f"calibration {calibration!r} is not one of {CALIBRATIONS}")
    resolved = resolve(quirks) if quirks else ()
    pairs = _normalized(values)
    if not pairs:
        raise DecodeError("", "", "no characteristic values given for the record")
    uuid, data = pairs[0]
    measurements: tuple[Measurement, ...]
    single = _SINGLE.get(uuid)
    if single is not None:
        if len(pairs) > 1:
            raise DecodeError(
                pairs[1][0],
                pairs[1][1].hex(),
                f"a {describe(uuid)} record is one value; got {len(pairs)}",
            )
        measurements = (single(uuid, data, resolved),)
    elif uuid == GLUCOSE_MEASUREMENT:
        measurements = (_glucose(pairs, resolved, calibration),)
    elif uuid == BODY_COMPOSITION_MEASUREMENT:
        measurements = (_body_composition(pairs, resolved),)
    elif uuid == BLOOD_PRESSURE_RECORD:
        measurements = (_bp_record(pairs),)
    elif uuid == CGM_MEASUREMENT:
        if len(pairs) > 1:
            raise DecodeError(
                pairs[1][0], pairs[1][1].hex(), "a CGM record is one 0x2AA7 notification"
            )
        measurements = _cgm(uuid, data, resolved)
    else:
        raise UnknownCharacteristic(
            uuid, data.hex(), f"{describe(uuid)} does not start a measurement record"
        )
    if resolved:
        measurements = tuple(apply_record_fixes(resolved, m) for m in measurements)
    return measurements
