"""Generic decoding: any supported characteristic value → the JSON object of cli-decode.md.

:func:`decode_value` is what ``daon decode`` prints and what a gateway may attach to a wire
reading as ``decoded`` (informational). Numbers are :class:`~decimal.Decimal` so precision is
kept (``36.50`` stays ``36.50``); :func:`dumps` writes them as JSON numbers exactly as they are.
Special values are the strings ``"NaN"``, ``"NRes"``, ``"+INF"``, ``"-INF"``, ``"reserved"``;
absent fields are null; ``timestamp`` is a naive ISO-8601 device wall-clock time, or null with
``timestamp_partial`` holding the raw fields when year, month or day is unknown.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from devices import uuids as u
from devices.errors import DecodeError, InvalidUuid, UnknownCharacteristic
from devices.gatt import battery, cgm, current_time, device_information
from devices.gatt import blood_pressure as bp
from devices.gatt import body_composition as bcs
from devices.gatt import enhanced_bp as ebp
from devices.gatt import glucose as gls
from devices.gatt import racp as racp_codec
from devices.gatt import thermometer as htm
from devices.gatt import user_data as uds
from devices.gatt import weight_scale as wss
from devices.ieee11073 import DateTime
from devices.model import Special
from devices.quirks import apply_payload_fixes, apply_value_fixes, resolve

Json = dict[str, Any]


def number(value: Decimal | Special | None) -> Decimal | str | None:
    """A decoded number for JSON: the Decimal, the special's string, or None."""
    if isinstance(value, Special):
        return value.value
    return value


def time_fields(value: DateTime | None) -> tuple[str | None, dict[str, int] | None]:
    """(timestamp, timestamp_partial) as cli-decode.md defines them."""
    if value is None:
        return None, None
    when = value.to_datetime()
    if when is None:
        return None, value.as_dict()
    return when.isoformat(), None


def _blood_pressure(data: bytes, value: object) -> Json:
    assert isinstance(value, bp.BloodPressureMeasurement)
    timestamp, partial = time_fields(value.timestamp)
    return {
        "systolic": number(value.systolic),
        "diastolic": number(value.diastolic),
        "map": number(value.mean_arterial_pressure),
        "unit": value.unit.value,
        "timestamp": timestamp,
        "timestamp_partial": partial,
        "pulse_rate": number(value.pulse_rate),
        "user_id": value.user_id,
        "status": None if value.status is None else list(value.status),
        "status_raw": value.status_raw,
    }


def _cuff(data: bytes, value: object) -> Json:
    assert isinstance(value, bp.IntermediateCuffPressure)
    timestamp, partial = time_fields(value.timestamp)
    return {
        "cuff_pressure": number(value.cuff_pressure),
        "unit": value.unit.value,
        "timestamp": timestamp,
        "timestamp_partial": partial,
        "pulse_rate": number(value.pulse_rate),
        "user_id": value.user_id,
        "status": None if value.status is None else list(value.status),
        "status_raw": value.status_raw,
    }


def _enhanced(value: ebp.EnhancedBloodPressureMeasurement) -> Json:
    utc, shown = value.utc_time, value.user_facing_time
    return {
        "unit": value.unit.value,
        "epoch_start": value.epoch.year,
        "time_stamp_utc": None if utc is None else utc.isoformat(),
        "user_facing_time": None if shown is None else shown.isoformat(),
        "pulse_rate": number(value.pulse_rate),
        "user_id": value.user_id,
        "status": None if value.status is None else list(value.status),
        "status_raw": value.status_raw,
    }


def _enhanced_bp(data: bytes, value: object) -> Json:
    assert isinstance(value, ebp.EnhancedBloodPressureMeasurement)
    return {
        "systolic": number(value.systolic),
        "diastolic": number(value.diastolic),
        "map": number(value.mean_arterial_pressure),
        **_enhanced(value),
    }


def _enhanced_cuff(data: bytes, value: object) -> Json:
    assert isinstance(value, ebp.EnhancedBloodPressureMeasurement)
    return {"cuff_pressure": number(value.systolic), **_enhanced(value)}


def _bp_record(data: bytes, value: object) -> Json:
    assert isinstance(value, ebp.BloodPressureRecord)
    out: Json = {
        "first_segment": value.first_segment,
        "last_segment": value.last_segment,
        "segment_counter": value.segment_counter,
        "sequence_number": value.sequence_number,
        "recorded_uuid": u.short_form(value.recorded_uuid),
        "recorded_hex": value.recorded.hex(),
        "recorded": None,
    }
    if value.whole:
        try:
            inner = ebp.recorded_measurement(value)
        except DecodeError as exc:
            raise DecodeError(
                u.BLOOD_PRESSURE_RECORD, data.hex(), f"recorded value: {exc.reason}"
            ) from None
        if isinstance(inner, ebp.EnhancedBloodPressureMeasurement):
            out["recorded"] = _enhanced_bp(value.recorded, inner)
        else:
            out["recorded"] = _blood_pressure(value.recorded, inner)
    return out


def _features(data: bytes, value: object) -> Json:
    assert isinstance(
        value, bp.BloodPressureFeature | gls.GlucoseFeature | bcs.BodyCompositionFeature
    )
    out: Json = {"features": list(value.features), "features_raw": value.raw}
    if isinstance(value, bcs.BodyCompositionFeature):
        out["mass_resolution_code"] = value.mass_resolution_code
        out["height_resolution_code"] = value.height_resolution_code
    return out


def _glucose(data: bytes, value: object) -> Json:
    assert isinstance(value, gls.GlucoseMeasurement)
    when = value.timestamp
    base = value.base_time.to_datetime()
    return {
        "sequence_number": value.sequence_number,
        "base_time": None if base is None else base.isoformat(),
        "time_offset_min": value.time_offset_min,
        "timestamp": None if when is None else when.isoformat(),
        "timestamp_partial": None if base is not None else value.base_time.as_dict(),
        "glucose_concentration": number(value.concentration),
        "unit": None if value.unit is None else value.unit.value,
        "glucose_mg_dl": value.mg_dl,
        "glucose_mmol_l": value.mmol_l,
        "sample_type": value.sample_type,
        "sample_location": value.sample_location,
        "sensor_status": None if value.sensor_status is None else list(value.sensor_status),
        "sensor_status_raw": value.sensor_status_raw,
        "context_follows": value.context_follows,
    }


def _context(data: bytes, value: object) -> Json:
    assert isinstance(value, gls.GlucoseContext)
    medication_key = "medication_l" if value.medication_in_litres else "medication_kg"
    return {
        "sequence_number": value.sequence_number,
        "extended_flags": value.extended_flags,
        "carbohydrate_id": value.carbohydrate_id,
        "carbohydrate_kg": number(value.carbohydrate_kg),
        "meal": value.meal,
        "tester": value.tester,
        "health": value.health,
        "exercise_duration_s": value.exercise_duration_s,
        "exercise_intensity_pct": value.exercise_intensity_pct,
        "medication_id": value.medication_id,
        medication_key: number(value.medication),
        "hba1c_pct": number(value.hba1c_pct),
    }


def _racp(data: bytes, value: object) -> Json:
    out: Json = {
        "op_code": data[0],
        "operator": data[1],
        "request_op_code": None,
        "response_code": None,
        "response_name": None,
        "number_of_records": None,
        "filter_type": None,
        "min_sequence": None,
        "max_sequence": None,
    }
    if isinstance(value, racp_codec.RacpResponse):
        out["request_op_code"] = value.request_op_code
        out["response_code"] = value.response_code
        out["response_name"] = value.name
    elif isinstance(value, racp_codec.RacpNumberOfRecords):
        out["number_of_records"] = value.count
    elif isinstance(value, racp_codec.RacpLatestSequence):
        out["latest_sequence"] = value.sequence_number
    else:
        assert isinstance(value, racp_codec.RacpRequest)
        out["filter_type"] = value.filter_type
        out["min_sequence"] = value.min_sequence
        out["max_sequence"] = value.max_sequence
        if value.min_time is not None or value.max_time is not None:
            out["min_time"] = None if value.min_time is None else value.min_time.as_dict()
            out["max_time"] = None if value.max_time is None else value.max_time.as_dict()
        if value.operand:
            out["operand_hex"] = value.operand.hex()
    return out


def _mass_key(name: str, unit: wss.MassUnit) -> str:
    return f"{name}_{unit.value}"


def _weight(data: bytes, value: object) -> Json:
    assert isinstance(value, wss.WeightMeasurement)
    timestamp, partial = time_fields(value.timestamp)
    return {
        "unit": value.unit.value,
        _mass_key("weight", value.unit): value.weight,
        "measurement_unsuccessful": value.unsuccessful,
        "timestamp": timestamp,
        "timestamp_partial": partial,
        "user_id": value.user_id,
        "bmi": value.bmi,
        f"height_{value.unit.length_unit}": value.height,
    }


def _weight_feature(data: bytes, value: object) -> Json:
    assert isinstance(value, wss.WeightScaleFeature)
    return {
        "time_stamp_supported": value.time_stamp_supported,
        "multiple_users_supported": value.multiple_users_supported,
        "bmi_supported": value.bmi_supported,
        "weight_resolution_code": value.weight_resolution_code,
        "height_resolution_code": value.height_resolution_code,
        "features_raw": value.raw,
    }


def _body_composition(data: bytes, value: object) -> Json:
    assert isinstance(value, bcs.BodyCompositionMeasurement)
    timestamp, partial = time_fields(value.timestamp)
    unit = value.unit
    return {
        "unit": unit.value,
        "body_fat_pct": value.body_fat_pct,
        "measurement_unsuccessful": value.unsuccessful,
        "multiple_packet": value.multiple_packet,
        "timestamp": timestamp,
        "timestamp_partial": partial,
        "user_id": value.user_id,
        "basal_metabolism_kj": value.basal_metabolism_kj,
        "muscle_pct": value.muscle_pct,
        _mass_key("muscle_mass", unit): value.muscle_mass,
        _mass_key("fat_free_mass", unit): value.fat_free_mass,
        _mass_key("soft_lean_mass", unit): value.soft_lean_mass,
        _mass_key("body_water_mass", unit): value.body_water_mass,
        "impedance_ohm": value.impedance_ohm,
        _mass_key("weight", unit): value.weight,
        f"height_{unit.length_unit}": value.height,
    }


def _user_index(data: bytes, value: object) -> Json:
    assert isinstance(value, uds.UserIndex)
    return {"user_index": value.user_index}


def _change_increment(data: bytes, value: object) -> Json:
    assert isinstance(value, uds.DatabaseChangeIncrement)
    return {"database_change_increment": value.value}


def _user_control_point(data: bytes, value: object) -> Json:
    if isinstance(value, uds.UcpResponse):
        return {
            "op_code": data[0],
            "request_op_code": value.request_op_code,
            "response_value": value.response_value,
            "response_name": value.name,
            "user_index": value.user_index,
            "consent_code": None,
        }
    assert isinstance(value, uds.UcpRequest)
    out: Json = {
        "op_code": value.op_code,
        "request_op_code": None,
        "response_value": None,
        "response_name": None,
        "user_index": value.user_index,
        "consent_code": value.consent_code,
    }
    if value.parameter:
        out["parameter_hex"] = value.parameter.hex()
    return out


def _current_time(data: bytes, value: object) -> Json:
    assert isinstance(value, current_time.CurrentTime)
    timestamp, partial = time_fields(value.date_time)
    return {
        "timestamp": timestamp,
        "timestamp_partial": partial,
        "day_of_week": value.day_of_week,
        "fractions256": value.fractions256,
        "adjust_reason": list(value.adjust_reason),
        "adjust_reason_raw": value.adjust_reason_raw,
    }


def _date_time(data: bytes, value: object) -> Json:
    assert isinstance(value, DateTime)
    timestamp, partial = time_fields(value)
    return {"timestamp": timestamp, "timestamp_partial": partial}


def _local_time(data: bytes, value: object) -> Json:
    assert isinstance(value, current_time.LocalTimeInformation)
    return {
        "time_zone_quarter_hours": value.time_zone_quarter_hours,
        "utc_offset_min": value.utc_offset_min,
        "dst_offset_code": value.dst_offset_code,
    }


def _battery(data: bytes, value: object) -> Json:
    assert isinstance(value, battery.BatteryLevel)
    return {"battery_level_pct": value.percent}


def _text(data: bytes, value: object) -> Json:
    assert isinstance(value, device_information.DeviceString)
    return {"text": value.text}


def _system_id(data: bytes, value: object) -> Json:
    assert isinstance(value, device_information.SystemId)
    return {
        "manufacturer_identifier": value.manufacturer_identifier,
        "oui": value.organizationally_unique_identifier,
    }


def _pnp_id(data: bytes, value: object) -> Json:
    assert isinstance(value, device_information.PnpId)
    return {
        "vendor_id_source": value.vendor_id_source,
        "vendor_id": value.vendor_id,
        "product_id": value.product_id,
        "product_version": value.product_version,
    }


def _cgm(data: bytes, value: object) -> Json:
    assert isinstance(value, cgm.CgmMeasurement)
    records = []
    for record in value.records:
        annunciation = record.annunciation
        records.append(
            {
                "glucose_mg_dl": number(record.glucose_mg_dl),
                "time_offset_min": record.time_offset_min,
                "annunciation": None
                if annunciation is None
                else {k: None if v is None else list(v) for k, v in annunciation.items()},
                "trend_mg_dl_min": number(record.trend_mg_dl_min),
                "quality_pct": number(record.quality_pct),
                "e2e_crc_valid": True if record.crc_present else None,
            }
        )
    return {"records": records}


def _temperature(data: bytes, value: object) -> Json:
    assert isinstance(value, htm.TemperatureMeasurement)
    timestamp, partial = time_fields(value.timestamp)
    return {
        "unit": value.unit.value,
        "temperature": number(value.temperature),
        "timestamp": timestamp,
        "timestamp_partial": partial,
        "temperature_type": value.temperature_type,
    }


def _string_decoder(uuid: str) -> Callable[[bytes], object]:
    return lambda data: device_information.decode_string(uuid, data)


#: characteristic → (decoder, JSON builder). The table is the list of what ``daon decode`` knows.
DECODERS: dict[str, tuple[Callable[[bytes], object], Callable[[bytes, object], Json]]] = {
    u.BLOOD_PRESSURE_MEASUREMENT: (bp.decode_measurement, _blood_pressure),
    u.INTERMEDIATE_CUFF_PRESSURE: (bp.decode_intermediate_cuff_pressure, _cuff),
    u.ENHANCED_BLOOD_PRESSURE_MEASUREMENT: (ebp.decode_enhanced_measurement, _enhanced_bp),
    u.ENHANCED_INTERMEDIATE_CUFF_PRESSURE: (ebp.decode_enhanced_cuff_pressure, _enhanced_cuff),
    u.BLOOD_PRESSURE_RECORD: (ebp.decode_record, _bp_record),
    u.BLOOD_PRESSURE_FEATURE: (bp.decode_feature, _features),
    u.GLUCOSE_MEASUREMENT: (gls.decode_measurement, _glucose),
    u.GLUCOSE_MEASUREMENT_CONTEXT: (gls.decode_context, _context),
    u.GLUCOSE_FEATURE: (gls.decode_feature, _features),
    u.RECORD_ACCESS_CONTROL_POINT: (racp_codec.decode_racp, _racp),
    u.WEIGHT_MEASUREMENT: (wss.decode_measurement, _weight),
    u.WEIGHT_SCALE_FEATURE: (wss.decode_feature, _weight_feature),
    u.BODY_COMPOSITION_MEASUREMENT: (bcs.decode_measurement, _body_composition),
    u.BODY_COMPOSITION_FEATURE: (bcs.decode_feature, _features),
    u.USER_INDEX: (uds.decode_user_index, _user_index),
    u.USER_CONTROL_POINT: (uds.decode_user_control_point, _user_control_point),
    u.DATABASE_CHANGE_INCREMENT: (uds.decode_database_change_increment, _change_increment),
    u.CURRENT_TIME: (current_time.decode_current_time, _current_time),
    u.DATE_TIME: (current_time.decode_date_time_characteristic, _date_time),
    u.LOCAL_TIME_INFORMATION: (current_time.decode_local_time_information, _local_time),
    u.BATTERY_LEVEL: (battery.decode_battery_level, _battery),
    u.SYSTEM_ID: (device_information.decode_system_id, _system_id),
    u.PNP_ID: (device_information.decode_pnp_id, _pnp_id),
    u.CGM_MEASUREMENT: (cgm.decode_measurement, _cgm),
    u.TEMPERATURE_MEASUREMENT: (htm.decode_measurement, _temperature),
    **{
        uuid: (_string_decoder(uuid), _text)
        for uuid in sorted(device_information.STRING_CHARACTERISTICS)
    },
}


def decode_value(uuid: str, data: bytes, *, quirks: Sequence[str] = ()) -> Json:
    """The cli-decode.md object for one characteristic value; raises :class:`DecodeError`.

    ``uuid`` may be any spelling :func:`devices.uuids.normalize_uuid` accepts. Quirks that
    rewrite payloads or values apply here; quirks that mark whole records (ketone, Fora 2037,
    live weight) only apply in :func:`devices.records.decode_record`.
    """
    data = bytes(data)
    try:
        key = u.normalize_uuid(uuid)
    except InvalidUuid as exc:
        raise UnknownCharacteristic(uuid.strip().lower(), data.hex(), str(exc)) from None
    entry = DECODERS.get(key)
    if entry is None:
        raise UnknownCharacteristic(
            key, data.hex(), f"no decoder for characteristic {u.short_form(key)}"
        )
    decoder, to_json = entry
    resolved = resolve(quirks) if quirks else ()
    payload = apply_payload_fixes(resolved, key, data) if resolved else data
    value = decoder(payload)
    if resolved:
        value = apply_value_fixes(resolved, key, value)
    return to_json(payload, value)


def dumps(value: object) -> str:
    """JSON text for decoded objects: Decimals are written exactly (``36.50``, ``0.00105``)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        return str(value)
    if isinstance(value, int | float | str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        items = (f"{json.dumps(str(k), ensure_ascii=False)}: {dumps(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


__all__ = ["DECODERS", "decode_value", "dumps", "number", "time_fields"]
