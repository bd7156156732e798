"""The gateway → ingest wire format (``devices.wire``), schema version 1.

A gateway publishes *batches* of readings as one JSON object per MQTT message on
``{root}/gw/{gateway_id}/readings`` (QoS 1). Ingest answers on
``{root}/gw/{gateway_id}/ack`` with the ids it has committed (see :func:`encode_ack`).

Batch::

    {
      "schema": 1,
      "gateway": "yaksu-gw-1",            # gateway id (registry key)
      "centre": "yaksu",                   # centre id
      "sent_at": "2026-03-04T10:02:12.120+09:00",
      "readings": [ <reading>, ... ]
    }

Reading (the ``daon fhir`` input line is the same object, with ``patient`` for ``binding``)::

    {
      "id": "01J...",             # gateway outbox message id: unique, stable across resends
      "source": "ble" | "mqtt" | "manual",
      "station": "yaksu-station-1" | null,
      "device": {"id": "C4:7C:8D:6A:1B:22", "address": "C4:7C:8D:6A:1B:22",
                 "manufacturer": "A&D Medical", "model": "UA-651BLE", "serial": "5120034871",
                 "firmware": "1.2", "calibration": "plasma" | "whole_blood" | null},
      "values": [{"uuid": "00002a35-0000-1000-8000-00805f9b34fb", "hex": "1e8000..."}],
                                  # source=ble: the characteristic values of one record
      "payload": { ...station payload as received... } | null,      # source=mqtt/manual
      "decoded": { ... } | null,  # informational only; ingest re-decodes from values/payload
      "quirks": ["..."],          # quirk names the gateway's catalogue applies to this model
      "received_at": "2026-03-04T10:02:11+09:00",   # gateway clock (NTP), with offset
      "clock": {"device": "2026-03-04T09:15:00", "gateway": "2026-03-04T09:21:00+09:00",
                "offset_s": -360.0, "trusted": true} | null,
      "binding": {"resident": "R0001234", "method": "check-in" | "registry" | "staff",
                  "session": "<check-in session id>" | null} | null      # null = unbound
    }

Optional reading keys (``station``, ``values``, ``payload``, ``decoded``, ``quirks``,
``clock``, ``binding``) may be left out and mean null/empty. ``source`` ``ble`` needs at least
one value; ``mqtt`` and ``manual`` need a ``payload`` object.

Ack::

    {"schema": 1, "gateway": "yaksu-gw-1", "ids": ["01J...", ...]}

Compatibility rule: within a schema version, producers may add keys and consumers ignore
keys they do not know; removing or changing the meaning of a key needs a new version, and
ingest keeps accepting the previous version for at least one release (an unknown version is
dead-lettered with its raw bytes, never guessed at: :class:`WireError` on ``schema``).

Station topics (kiosks and Wi-Fi devices, payloads in :mod:`devices.station`)::

    {root}/st/{centre}/{station}/dev/{device_id}     measurement payloads
    {root}/st/{centre}/{station}/checkin             check-in events
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from devices._fast import frozen_maker
from devices.errors import InvalidUuid, WireError
from devices.uuids import normalize_uuid

SCHEMA_VERSION = 1
SUPPORTED_SCHEMAS = frozenset({1})
SOURCES = frozenset({"ble", "mqtt", "manual"})
BINDING_METHODS = frozenset({"check-in", "registry", "staff"})
CALIBRATIONS = frozenset({"plasma", "whole_blood"})


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What the gateway knows of the device: ``id`` is the registry key (address or serial)."""

    id: str
    address: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    calibration: str | None = None


@dataclass(frozen=True, slots=True)
class CharacteristicValue:
    """One characteristic value exactly as received (``uuid`` 128-bit lowercase)."""

    uuid: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ClockSample:
    """Device clock vs gateway clock at connection: ``offset_s`` = device - gateway."""

    device: datetime | None
    gateway: datetime
    offset_s: float | None
    trusted: bool


@dataclass(frozen=True, slots=True)
class Binding:
    """Who the reading belongs to and how we know (``session``: the check-in session)."""

    resident: str
    method: str
    session: str | None = None


@dataclass(frozen=True, slots=True)
class WireReading:
    """One reading of a batch; see the module docstring for the JSON."""

    id: str
    source: str
    station: str | None
    device: DeviceInfo
    values: tuple[CharacteristicValue, ...]
    payload: Mapping[str, Any] | None
    decoded: Mapping[str, Any] | None
    quirks: tuple[str, ...]
    received_at: datetime
    clock: ClockSample | None
    binding: Binding | None


@dataclass(frozen=True, slots=True)
class WireBatch:
    """One MQTT message from a gateway."""

    schema: int
    gateway: str
    centre: str
    sent_at: datetime
    readings: tuple[WireReading, ...]


@dataclass(frozen=True, slots=True)
class RejectedReading:
    """A reading :func:`decode_batch_partial` could not accept, kept for the dead-letter table."""

    index: int
    raw: object
    error: WireError


# --- encoding ----------------------------------------------------------------------------------


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def reading_to_json(reading: WireReading) -> dict[str, Any]:
    """The JSON object of one reading (``decoded`` Decimals become JSON numbers)."""
    device = reading.device
    clock = reading.clock
    binding = reading.binding
    return {
        "id": reading.id,
        "source": reading.source,
        "station": reading.station,
        "device": {
            "id": device.id,
            "address": device.address,
            "manufacturer": device.manufacturer,
            "model": device.model,
            "serial": device.serial,
            "firmware": device.firmware,
            "calibration": device.calibration,
        },
        "values": [{"uuid": v.uuid, "hex": v.data.hex()} for v in reading.values],
        "payload": None if reading.payload is None else dict(reading.payload),
        "decoded": None if reading.decoded is None else dict(reading.decoded),
        "quirks": list(reading.quirks),
        "received_at": reading.received_at.isoformat(),
        "clock": None
        if clock is None
        else {
            "device": None if clock.device is None else clock.device.isoformat(),
            "gateway": clock.gateway.isoformat(),
            "offset_s": clock.offset_s,
            "trusted": clock.trusted,
        },
        "binding": None
        if binding is None
        else {"resident": binding.resident, "method": binding.method, "session": binding.session},
    }


def encode_batch(batch: WireBatch) -> bytes:
    """The UTF-8 JSON bytes of ``batch`` (validated first, so a gateway never sends garbage)."""
    if batch.schema not in SUPPORTED_SCHEMAS:
        raise WireError("schema", f"cannot encode schema version {batch.schema}")
    _aware(batch.sent_at, "sent_at")
    obj = {
        "schema": batch.schema,
        "gateway": batch.gateway,
        "centre": batch.centre,
        "sent_at": batch.sent_at.isoformat(),
        "readings": [reading_to_json(r) for r in batch.readings],
    }
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=_json_default)
    return text.encode("utf-8")


def encode_reading(reading: WireReading) -> bytes:
    """One reading as a JSON line (the ``daon fhir`` input format uses the same object)."""
    text = json.dumps(
        reading_to_json(reading), separators=(",", ":"), ensure_ascii=False, default=_json_default
    )
    return text.encode("utf-8")


# --- decoding ----------------------------------------------------------------------------------

_UUID_CACHE: dict[str, str] = {}


# Ingest decodes tens of thousands of readings a second: skip the frozen __setattr__ cost.
_make_device = frozen_maker(DeviceInfo)
_make_value = frozen_maker(CharacteristicValue)
_make_clock = frozen_maker(ClockSample)
_make_binding = frozen_maker(Binding)
_make_reading = frozen_maker(WireReading)


def _aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None:
        raise WireError(field, "must carry a UTC offset (for example +09:00)")
    return value


def _time(obj: Mapping[str, Any], key: str, path: str, *, aware: bool) -> datetime:
    text = obj.get(key)
    try:
        value = datetime.fromisoformat(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise WireError(f"{path}{key}", f"{text!r} is not an ISO-8601 date-time") from None
    if aware:
        if value.tzinfo is None:
            raise WireError(f"{path}{key}", "must carry a UTC offset (for example +09:00)")
    elif value.tzinfo is not None:
        raise WireError(f"{path}{key}", "device wall-clock time must not carry an offset")
    return value


def _text(obj: Mapping[str, Any], key: str, path: str) -> str:
    value = obj.get(key)
    if type(value) is not str or not value:
        raise WireError(f"{path}{key}", "missing or not a non-empty string")
    return value


def _optional_text(obj: Mapping[str, Any], key: str, path: str) -> str | None:
    value = obj.get(key)
    if value is None or type(value) is str:
        return value
    raise WireError(f"{path}{key}", "must be a string or null")


def _uuid(text: object, field: str) -> str:
    cached = _UUID_CACHE.get(text) if type(text) is str else None
    if cached is not None:
        return cached
    if not isinstance(text, str):
        raise WireError(field, "missing or not a string")
    try:
        uuid = normalize_uuid(text)
    except InvalidUuid as exc:
        raise WireError(field, str(exc)) from None
    if len(_UUID_CACHE) < 4096:
        _UUID_CACHE[text] = uuid
    return uuid


def _device(obj: object, path: str) -> DeviceInfo:
    if type(obj) is not dict:
        raise WireError(path.rstrip("."), "missing or not an object")
    get = obj.get
    device_id = get("id")
    address = get("address")
    manufacturer = get("manufacturer")
    model = get("model")
    serial = get("serial")
    firmware = get("firmware")
    calibration = get("calibration")
    if type(device_id) is not str or not device_id:
        raise WireError(f"{path}id", "missing or not a non-empty string")
    if not (
        (address is None or type(address) is str)
        and (manufacturer is None or type(manufacturer) is str)
        and (model is None or type(model) is str)
        and (serial is None or type(serial) is str)
        and (firmware is None or type(firmware) is str)
        and (calibration is None or calibration in CALIBRATIONS)
    ):
        for key in ("address", "manufacturer", "model", "serial", "firmware"):
            _optional_text(obj, key, path)
        raise WireError(f"{path}calibration", f"{calibration!r} is not plasma or whole_blood")
    return _make_device(device_id, address, manufacturer, model, serial, firmware, calibration)


def _values(obj: object, path: str) -> tuple[CharacteristicValue, ...]:
    if obj is None:
        return ()
    if type(obj) is not list:
        raise WireError(path, "must be a list")
    out = []
    for i, item in enumerate(obj):
        if type(item) is not dict:
            raise WireError(f"{path}[{i}]", "must be an object with uuid and hex")
        hex_text = item.get("hex")
        try:
            data = bytes.fromhex(hex_text)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise WireError(f"{path}[{i}].hex", f"{hex_text!r} is not hex") from None
        out.append(_make_value(_uuid(item.get("uuid"), f"{path}[{i}].uuid"), data))
    return tuple(out)


def _clock(obj: object, path: str) -> ClockSample | None:
    if obj is None:
        return None
    if type(obj) is not dict:
        raise WireError(path, "must be an object or null")
    device = None if obj.get("device") is None else _time(obj, "device", path + ".", aware=False)
    offset = obj.get("offset_s")
    if offset is not None and type(offset) is not float and type(offset) is not int:
        raise WireError(f"{path}.offset_s", "must be a number or null")
    trusted = obj.get("trusted")
    if type(trusted) is not bool:
        raise WireError(f"{path}.trusted", "missing or not a boolean")
    return _make_clock(
        device,
        _time(obj, "gateway", path + ".", aware=True),
        None if offset is None else float(offset),
        trusted,
    )


def _binding(obj: Mapping[str, Any], path: str) -> Binding | None:
    raw = obj.get("binding")
    patient = obj.get("patient")
    if patient is not None:
        if raw is not None:
            raise WireError(f"{path}patient", "give binding or patient, not both")
        if type(patient) is not str or not patient:
            raise WireError(f"{path}patient", "must be a non-empty string")
        return _make_binding(patient, "staff", None)
    if raw is None:
        return None
    if type(raw) is not dict:
        raise WireError(f"{path}binding", "must be an object or null")
    method = raw.get("method")
    if method not in BINDING_METHODS:
        raise WireError(
            f"{path}binding.method", f"{method!r} is not one of {sorted(BINDING_METHODS)}"
        )
    return _make_binding(
        _text(raw, "resident", f"{path}binding."),
        method,
        _optional_text(raw, "session", f"{path}binding."),
    )


def _reading(obj: object, path: str) -> WireReading:
    if type(obj) is not dict:
        raise WireError(path.rstrip(".") or "reading", "must be an object")
    get = obj.get
    source = get("source")
    if source not in SOURCES:
        raise WireError(f"{path}source", f"{source!r} is not one of ble, mqtt, manual")
    reading_id = get("id")
    if type(reading_id) is not str or not reading_id:
        raise WireError(f"{path}id", "missing or not a non-empty string")
    station = get("station")
    if station is not None and type(station) is not str:
        raise WireError(f"{path}station", "must be a string or null")
    values = _values(get("values"), f"{path}values")
    payload = get("payload")
    if payload is not None and type(payload) is not dict:
        raise WireError(f"{path}payload", "must be an object or null")
    if source == "ble":
        if not values:
            raise WireError(
                f"{path}values", "a ble reading needs at least one characteristic value"
            )
    elif payload is None:
        raise WireError(f"{path}payload", f"a {source} reading needs its payload object")
    decoded = get("decoded")
    if decoded is not None and type(decoded) is not dict:
        raise WireError(f"{path}decoded", "must be an object or null")
    quirks = get("quirks")
    if not quirks:
        quirks = ()
    elif type(quirks) is not list or not all(type(q) is str for q in quirks):
        raise WireError(f"{path}quirks", "must be a list of strings")
    clock = get("clock")
    return _make_reading(
        reading_id,
        source,
        station,
        _device(get("device"), f"{path}device."),
        values,
        payload,
        decoded,
        tuple(quirks),
        _time(obj, "received_at", path, aware=True),
        None if clock is None else _clock(clock, f"{path}clock"),
        _binding(obj, path),
    )


def reading_from_json(obj: object) -> WireReading:
    """One reading from its JSON object; raises :class:`WireError` naming the field."""
    return _reading(obj, "")


def _load(data: bytes | str) -> object:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError("", f"not UTF-8 JSON: {exc}") from None


def _batch_header(obj: object) -> tuple[int, str, str, datetime, list[Any]]:
    if not isinstance(obj, dict):
        raise WireError("", "a batch must be a JSON object")
    schema = obj.get("schema")
    if isinstance(schema, bool) or not isinstance(schema, int):
        raise WireError("schema", "missing or not an integer")
    if schema not in SUPPORTED_SCHEMAS:
        raise WireError("schema", f"unknown schema version {schema} (supported: 1)")
    readings = obj.get("readings")
    if not isinstance(readings, list):
        raise WireError("readings", "missing or not a list")
    return (
        schema,
        _text(obj, "gateway", ""),
        _text(obj, "centre", ""),
        _time(obj, "sent_at", "", aware=True),
        readings,
    )


def decode_batch(data: bytes | str) -> WireBatch:
    """A batch from its bytes; raises :class:`WireError` naming the first bad field."""
    schema, gateway, centre, sent_at, readings = _batch_header(_load(data))
    return WireBatch(
        schema,
        gateway,
        centre,
        sent_at,
        tuple(_reading(r, f"readings[{i}].") for i, r in enumerate(readings)),
    )


def decode_batch_partial(data: bytes | str) -> tuple[WireBatch, tuple[RejectedReading, ...]]:
    """Like :func:`decode_batch`, but a bad reading is set aside instead of failing the batch.

    A bad header (schema, gateway, centre, sent_at, readings) still raises :class:`WireError`.
    """
    schema, gateway, centre, sent_at, readings = _batch_header(_load(data))
    good: list[WireReading] = []
    rejected: list[RejectedReading] = []
    for i, raw in enumerate(readings):
        try:
            good.append(_reading(raw, f"readings[{i}]."))
        except WireError as exc:
            rejected.append(RejectedReading(i, raw, exc))
    return WireBatch(schema, gateway, centre, sent_at, tuple(good)), tuple(rejected)


# --- acks --------------------------------------------------------------------------------------


def encode_ack(gateway: str, ids: Sequence[str]) -> bytes:
    """Ingest's answer: the reading ids it has durably committed."""
    if not gateway:
        raise WireError("gateway", "must be a non-empty string")
    return json.dumps(
        {"schema": SCHEMA_VERSION, "gateway": gateway, "ids": list(ids)}, separators=(",", ":")
    ).encode("utf-8")


def decode_ack(data: bytes | str) -> tuple[str, ...]:
    """The committed ids of an ack; raises :class:`WireError`."""
    obj = _load(data)
    if not isinstance(obj, dict):
        raise WireError("", "an ack must be a JSON object")
    schema = obj.get("schema")
    if isinstance(schema, bool) or schema not in SUPPORTED_SCHEMAS:
        raise WireError("schema", f"unknown schema version {schema!r}")
    _text(obj, "gateway", "")
    ids = obj.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise WireError("ids", "must be a list of non-empty strings")
    return tuple(ids)


# --- topics ------------------------------------------------------------------------------------


def _segment(value: str, what: str) -> str:
    if not value or any(c in value for c in "/+#") or "\x00" in value:
        raise WireError(what, f"{value!r} cannot be an MQTT topic segment")
    return value


def _root(root: str) -> str:
    root = root.rstrip("/")
    if not root or "+" in root or "#" in root:
        raise WireError("root", f"{root!r} is not a topic root")
    return root


def readings_topic(root: str, gateway_id: str) -> str:
    """``{root}/gw/{gateway_id}/readings``: batches, QoS 1."""
    return f"{_root(root)}/gw/{_segment(gateway_id, 'gateway')}/readings"


def ack_topic(root: str, gateway_id: str) -> str:
    """``{root}/gw/{gateway_id}/ack``: ingest's acks to that gateway."""
    return f"{_root(root)}/gw/{_segment(gateway_id, 'gateway')}/ack"


def heartbeat_topic(root: str, gateway_id: str) -> str:
    """``{root}/gw/{gateway_id}/heartbeat``: gateway liveness."""
    return f"{_root(root)}/gw/{_segment(gateway_id, 'gateway')}/heartbeat"


def station_topic(root: str, centre: str, station: str, device_id: str) -> str:
    """``{root}/st/{centre}/{station}/dev/{device_id}``: a station device's measurements."""
    return (
        f"{_root(root)}/st/{_segment(centre, 'centre')}/{_segment(station, 'station')}"
        f"/dev/{_segment(device_id, 'device_id')}"
    )


def station_checkin_topic(root: str, centre: str, station: str) -> str:
    """``{root}/st/{centre}/{station}/checkin``: a kiosk's card check-in events."""
    return f"{_root(root)}/st/{_segment(centre, 'centre')}/{_segment(station, 'station')}/checkin"


def station_subscription(root: str, centre: str) -> tuple[str, str]:
    """The two wildcard filters a centre gateway subscribes to (device payloads, check-ins)."""
    base = f"{_root(root)}/st/{_segment(centre, 'centre')}"
    return f"{base}/+/dev/+", f"{base}/+/checkin"


def parse_station_topic(root: str, topic: str) -> tuple[str, str, str | None]:
    """(centre, station, device_id) of a station topic; device_id is None for check-ins."""
    prefix = _root(root) + "/st/"
    if not topic.startswith(prefix):
        raise WireError("topic", f"{topic!r} is not under {prefix}")
    parts = topic[len(prefix) :].split("/")
    if len(parts) == 4 and parts[2] == "dev" and all(parts):
        return parts[0], parts[1], parts[3]
    if len(parts) == 3 and parts[2] == "checkin" and all(parts[:2]):
        return parts[0], parts[1], None
    raise WireError("topic", f"{topic!r} is not a station device or check-in topic")
