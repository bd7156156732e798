"""The MQTT station payload, schema 1: measurement kiosks and Wi-Fi devices at the centres.

Devices that do not speak Bluetooth (the 행복다온 kiosks, Wi-Fi scales) publish JSON on
``{root}/st/{centre}/{station}/dev/{device_id}``; card check-ins on
``{root}/st/{centre}/{station}/checkin`` (topics in :mod:`devices.wire`). The full format with
examples is docs/station-payload.md. In short::

    {
      "schema": 1,
      "type": "measurement",
      "device_id": "yaksu-kiosk-1-bp",          # the device's registry id
      "station": "yaksu-station-1",              # optional
      "message_id": "k1-000123",                 # optional, stable across resends
      "checkin": "9410123456789012" | null,      # card read by the kiosk itself, optional
      "device_time": "2026-03-04T10:01:55",      # wall clock, optional; may carry an offset
      "measurements": [
        {"type": "blood-pressure",               # a devices.model.Kind value
         "time": "2026-03-04T10:01:55",          # optional, else device_time
         "values": [{"code": "systolic", "value": 128, "unit": "mm[Hg]"}, ...],
         "status": ["irregular_pulse"],          # optional, vocabulary names
         "user_index": 1,                        # optional
         "context": {"meal": "fasting"}}         # optional, string facts
      ]
    }

    {"schema": 1, "type": "checkin", "station": "yaksu-station-1",
     "card": "9410123456789012", "at": "2026-03-04T10:01:02+09:00"}

Values are JSON numbers in the unit named (precision kept: ``36.50`` stays ``36.50`` when the
payload is given as bytes or text) or one of the special strings ``"NaN"``, ``"NRes"``,
``"+INF"``, ``"-INF"``, ``"reserved"``. A time with an offset is converted to Korean wall-clock
time (UTC+9, no DST) so every ``device_time`` is naive, like Bluetooth ones.

Compatibility rule (as for the wire format): within schema 1 producers may add keys and
consumers ignore keys they do not know; anything else needs schema 2. The validator is strict
about what it does know and names the offending field in :class:`StationPayloadError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from devices.decode import dumps
from devices.errors import StationPayloadError
from devices.gatt import blood_pressure as bp
from devices.gatt import glucose as gls
from devices.model import Component, Kind, Measurement, Special
from devices.quirks import CONTROL_SOLUTION, MEASUREMENT_UNSUCCESSFUL

SCHEMA_VERSION = 1
KST = timezone(timedelta(hours=9), "KST")

_PRESSURE = frozenset({"mm[Hg]", "kPa"})
_MASS = frozenset({"kg", "[lb_av]"})
_LENGTH = frozenset({"m", "cm", "[in_i]"})
_PERCENT = frozenset({"%"})

#: kind → (required codes, {code: allowed UCUM units}).
SCHEMA: dict[Kind, tuple[frozenset[str], dict[str, frozenset[str]]]] = {
    Kind.BLOOD_PRESSURE: (
        frozenset({"systolic", "diastolic"}),
        {
            "systolic": _PRESSURE,
            "diastolic": _PRESSURE,
            "mean": _PRESSURE,
            "pulse": frozenset({"/min"}),
        },
    ),
    Kind.GLUCOSE: (frozenset({"glucose"}), {"glucose": frozenset({"mg/dL", "mmol/L"})}),
    Kind.BODY_WEIGHT: (
        frozenset({"weight"}),
        {"weight": _MASS, "height": _LENGTH, "bmi": frozenset({"kg/m2"})},
    ),
    Kind.BODY_COMPOSITION: (
        frozenset(),
        {
            "body_fat": _PERCENT,
            "basal_metabolism": frozenset({"kJ", "kcal"}),
            "muscle_pct": _PERCENT,
            "muscle_mass": _MASS,
            "fat_free_mass": _MASS,
            "soft_lean_mass": _MASS,
            "body_water_mass": _MASS,
            "impedance": frozenset({"Ohm"}),
            "weight": _MASS,
            "height": _LENGTH,
            "bmi": frozenset({"kg/m2"}),
        },
    ),
    Kind.BODY_TEMPERATURE: (
        frozenset({"temperature"}),
        {"temperature": frozenset({"Cel", "[degF]"})},
    ),
}

STATUS_VOCABULARY: frozenset[str] = frozenset(
    [name for name in bp.STATUS_BITS if name]
    + [name for name in bp.PULSE_RATE_RANGE if name]
    + list(gls.STATUS_BITS)
    + [CONTROL_SOLUTION, MEASUREMENT_UNSUCCESSFUL]
)
CONTEXT_KEYS = frozenset(
    {
        "meal",
        "sample_type",
        "sample_location",
        "tester",
        "health",
        "calibration",
        "setting",
        "position",
    }
)
_SPECIALS = {special.value: special for special in Special}


@dataclass(frozen=True, slots=True)
class StationMessage:
    """A validated measurement message."""

    schema: int
    device_id: str
    station: str | None
    checkin: str | None
    device_time: datetime | None
    measurements: tuple[Measurement, ...]
    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class StationEvent:
    """A validated check-in event: ``card`` was presented at ``station`` at ``at`` (aware)."""

    schema: int
    station: str
    card: str
    at: datetime


def _load(data: bytes | str | Mapping[str, Any]) -> tuple[Mapping[str, Any], bytes]:
    if isinstance(data, Mapping):
        return data, json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    try:
        obj = json.loads(raw, parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StationPayloadError("", f"not UTF-8 JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise StationPayloadError("", "a station payload must be a JSON object")
    return obj, raw


def _schema(obj: Mapping[str, Any], expected_type: str) -> int:
    schema = obj.get("schema")
    if isinstance(schema, bool) or not isinstance(schema, int):
        raise StationPayloadError("schema", "missing or not an integer")
    if schema != SCHEMA_VERSION:
        raise StationPayloadError("schema", f"unknown schema version {schema} (supported: 1)")
    kind = obj.get("type")
    if kind != expected_type:
        raise StationPayloadError("type", f"{kind!r} where {expected_type!r} was expected")
    return schema


def _text(obj: Mapping[str, Any], key: str, path: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise StationPayloadError(path + key, "missing or not a non-empty string")
    return value


def _optional_text(obj: Mapping[str, Any], key: str, path: str) -> str | None:
    return None if obj.get(key) is None else _text(obj, key, path)


def _wall_clock(value: object, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise StationPayloadError(field, "must be an ISO-8601 string or null")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise StationPayloadError(field, f"{value!r} is not an ISO-8601 date-time") from None
    if when.tzinfo is not None:
        when = when.astimezone(KST).replace(tzinfo=None)
    return when


def _number(value: object, field: str) -> tuple[Decimal | None, Special | None]:
    if isinstance(value, str):
        special = _SPECIALS.get(value)
        if special is None:
            raise StationPayloadError(field, f"{value!r} is neither a number nor a special value")
        return None, special
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise StationPayloadError(field, "must be a JSON number or a special string")
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite():
        raise StationPayloadError(field, "must be finite (use the special strings instead)")
    if number < 0:
        raise StationPayloadError(field, f"{number} is negative")
    return number, None


def _measurement(item: object, path: str, default_time: datetime | None, raw: bytes) -> Measurement:
    if not isinstance(item, dict):
        raise StationPayloadError(path.rstrip("."), "must be an object")
    kind_text = item.get("type")
    kind = next((k for k in SCHEMA if k.value == kind_text), None)
    if kind is None:
        allowed = ", ".join(k.value for k in SCHEMA)
        raise StationPayloadError(f"{path}type", f"{kind_text!r} is not one of {allowed}")
    required, units = SCHEMA[kind]
    values = item.get("values")
    if not isinstance(values, list) or not values:
        raise StationPayloadError(f"{path}values", "missing or not a non-empty list")
    components: list[Component] = []
    seen: set[str] = set()
    for i, entry in enumerate(values):
        where = f"{path}values[{i}]."
        if not isinstance(entry, dict):
            raise StationPayloadError(where.rstrip("."), "must be an object with code, value, unit")
        code = entry.get("code")
        if code not in units:
            raise StationPayloadError(
                f"{where}code", f"{code!r} is not a {kind.value} code ({', '.join(sorted(units))})"
            )
        if code in seen:
            raise StationPayloadError(f"{where}code", f"{code!r} appears twice")
        seen.add(code)
        unit = entry.get("unit")
        if unit not in units[code]:
            raise StationPayloadError(
                f"{where}unit",
                f"{unit!r} is not a unit for {code} ({', '.join(sorted(units[code]))})",
            )
        number, special = _number(entry.get("value"), f"{where}value")
        components.append(Component(code, number, unit, special))
    missing = required - seen
    if missing:
        raise StationPayloadError(f"{path}values", f"missing {', '.join(sorted(missing))}")
    if kind is Kind.BLOOD_PRESSURE:
        pressure_units = {c.unit for c in components if c.code != "pulse"}
        if len(pressure_units) > 1:
            raise StationPayloadError(f"{path}values", "pressures must share one unit")
    status = item.get("status", [])
    if not isinstance(status, list):
        raise StationPayloadError(f"{path}status", "must be a list of strings")
    for i, name in enumerate(status):
        if name not in STATUS_VOCABULARY:
            raise StationPayloadError(f"{path}status[{i}]", f"{name!r} is not a known status")
    user_index = item.get("user_index")
    if user_index is not None and (
        isinstance(user_index, bool)
        or not isinstance(user_index, int)
        or not 0 <= user_index <= 255
    ):
        raise StationPayloadError(f"{path}user_index", "must be an integer 0..255 or null")
    context = item.get("context", {})
    if not isinstance(context, dict):
        raise StationPayloadError(f"{path}context", "must be an object of strings")
    for key, value in context.items():
        if key not in CONTEXT_KEYS:
            raise StationPayloadError(f"{path}context.{key}", "is not a known context key")
        if not isinstance(value, str) or not value:
            raise StationPayloadError(f"{path}context.{key}", "must be a non-empty string")
    when = _wall_clock(item.get("time"), f"{path}time") if "time" in item else default_time
    return Measurement(
        kind=kind,
        components=tuple(components),
        device_time=when,
        user_index=user_index,
        status=tuple(status),
        context=tuple(sorted(context.items())),
        raw=raw,
    )


def parse_station_payload(data: bytes | str | Mapping[str, Any]) -> StationMessage:
    """Validate a measurement message; raises :class:`StationPayloadError` naming the field.

    Give the bytes as received to keep number precision (a Mapping's floats have lost it).
    """
    obj, raw = _load(data)
    schema = _schema(obj, "measurement")
    device_id = _text(obj, "device_id", "")
    station = _optional_text(obj, "station", "")
    message_id = _optional_text(obj, "message_id", "")
    checkin = _optional_text(obj, "checkin", "")
    device_time = _wall_clock(obj.get("device_time"), "device_time")
    items = obj.get("measurements")
    if not isinstance(items, list) or not items:
        raise StationPayloadError("measurements", "missing or not a non-empty list")
    measurements = tuple(
        _measurement(item, f"measurements[{i}].", device_time, raw) for i, item in enumerate(items)
    )
    return StationMessage(
        schema, device_id, station, checkin, device_time, measurements, message_id
    )


def parse_station_event(data: bytes | str | Mapping[str, Any]) -> StationEvent:
    """Validate a check-in event; ``at`` must carry its UTC offset."""
    obj, _ = _load(data)
    schema = _schema(obj, "checkin")
    station = _text(obj, "station", "")
    card = _text(obj, "card", "")
    at_text = obj.get("at")
    if not isinstance(at_text, str):
        raise StationPayloadError("at", "missing or not an ISO-8601 string")
    try:
        at = datetime.fromisoformat(at_text)
    except ValueError:
        raise StationPayloadError("at", f"{at_text!r} is not an ISO-8601 date-time") from None
    if at.tzinfo is None:
        raise StationPayloadError("at", "must carry a UTC offset (for example +09:00)")
    return StationEvent(schema, station, card, at)


def _number_json(component: Component) -> object:
    if component.special is not None:
        return component.special.value
    return component.value


def encode_station_payload(
    device_id: str,
    measurements: Sequence[Measurement],
    *,
    station: str | None = None,
    checkin: str | None = None,
    device_time: datetime | None = None,
    message_id: str | None = None,
) -> bytes:
    """The bytes a kiosk publishes (the simulator's side); validated before returning."""
    items = []
    for m in measurements:
        item: dict[str, Any] = {
            "type": m.kind.value,
            "values": [
                {"code": c.code, "value": _number_json(c), "unit": c.unit} for c in m.components
            ],
        }
        if m.device_time is not None:
            item["time"] = m.device_time.isoformat()
        if m.status:
            item["status"] = list(m.status)
        if m.user_index is not None:
            item["user_index"] = m.user_index
        if m.context:
            item["context"] = dict(m.context)
        items.append(item)
    obj: dict[str, Any] = {"schema": SCHEMA_VERSION, "type": "measurement", "device_id": device_id}
    if station is not None:
        obj["station"] = station
    if message_id is not None:
        obj["message_id"] = message_id
    obj["checkin"] = checkin
    obj["device_time"] = None if device_time is None else device_time.isoformat()
    obj["measurements"] = items
    raw = dumps(obj).encode("utf-8")
    parse_station_payload(raw)
    return raw


def encode_station_event(station: str, card: str, at: datetime) -> bytes:
    """A check-in event's bytes; ``at`` must be aware."""
    raw = json.dumps(
        {
            "schema": SCHEMA_VERSION,
            "type": "checkin",
            "station": station,
            "card": card,
            "at": at.isoformat(),
        },
        ensure_ascii=False,
    ).encode("utf-8")
    parse_station_event(raw)
    return raw
