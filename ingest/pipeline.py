"""One wire message → what to store: Observations, unbound-queue rows, dead letters, acks.

The ingest consumer, ``daon fhir`` and the unbound queue's "assign" all run this same code
(decode → bind → transform); only the consumer adds the database. Pure: the registries come
in as a :class:`Registry` (an in-memory snapshot), nothing here does I/O or logs.

For every reading exactly one thing happens, and it is counted:

- Observations (``ReadingOutcome.observations``), de-duplicated later by the store;
- an unbound-queue row (no resident, implausible time, unmapped user slot);
- a dead letter with the raw bytes and a reason (cannot be decoded, bound or mapped).

A message that is not even a batch (bad JSON, unknown schema) is one dead letter.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from devices._fast import frozen_maker
from devices.catalogue import quirks_for
from devices.errors import DeviceError, WireError
from devices.model import Measurement
from devices.records import decode_record
from devices.station import parse_station_payload
from devices.wire import WireReading, decode_batch_partial, encode_reading
from ingest.errors import HeldForReview, Reason, RejectedReading
from ingest.fhir import (
    DEFAULT_POLICY,
    KST,
    Clock,
    Policy,
    ReadingContext,
    StoredObservation,
    UnboundRecord,
    to_observations,
    unbound_record,
)
from ingest.fhir.encoding import dumps


class DeviceInfo(Protocol):
    @property
    def calibration(self) -> str | None: ...
    @property
    def centre_id(self) -> str | None: ...


class GatewayInfo(Protocol):
    @property
    def centre_id(self) -> str | None: ...
    @property
    def mode(self) -> str: ...


class Registry(Protocol):
    """What binding needs from the registries (``ingest.store.registry.RegistrySnapshot``)."""

    def gateway(self, gateway_id: str) -> GatewayInfo | None: ...
    def device(self, device_id: str) -> DeviceInfo | None: ...
    def resident_known(self, resident_id: str) -> bool: ...
    def resolve(self, device_id: str, user_index: int | None, at: datetime) -> str | None: ...
    def multi_user(self, device_id: str) -> bool: ...
    def station_centre(self, station_id: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class _OpenGateway:
    centre_id: str | None = None
    mode: str = "station"


@dataclass(frozen=True, slots=True)
class _OpenDevice:
    calibration: str | None = None
    centre_id: str | None = None


class OpenRegistry:
    """Every gateway, device and resident is known; nothing binds by registry (``daon fhir``)."""

    def gateway(self, gateway_id: str) -> GatewayInfo | None:
        return _OpenGateway()

    def device(self, device_id: str) -> DeviceInfo | None:
        return _OpenDevice()

    def resident_known(self, resident_id: str) -> bool:
        return True

    def resolve(self, device_id: str, user_index: int | None, at: datetime) -> str | None:
        return None

    def multi_user(self, device_id: str) -> bool:
        return False

    def station_centre(self, station_id: str) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Something that could not become Observations, with its bytes exactly as received."""

    reason: Reason
    detail: str
    raw: bytes
    topic: str | None = None
    gateway_id: str | None = None
    reading_id: str | None = None
    device_id: str | None = None
    error_class: str | None = None

    @property
    def digest(self) -> str:
        """Idempotency key: the same bytes for the same reading dead-letter once."""
        h = hashlib.sha256()
        for part in (self.topic, self.gateway_id, self.reading_id):
            h.update((part or "").encode())
            h.update(b"\x00")
        h.update(self.raw)
        return h.hexdigest()


@dataclass(frozen=True, slots=True)
class Bound:
    """How a reading was bound: the resident, the method and the check-in session."""

    resident: str
    method: str  # "check-in" | "registry" | "staff"
    session: str | None = None
    station: str | None = None
    by_user: str | None = None


@dataclass(slots=True)
class ReadingOutcome:
    reading_id: str
    gateway_id: str
    device_id: str
    observations: list[StoredObservation] = field(default_factory=list)
    bound: Bound | None = None
    unbound: UnboundRecord | None = None
    reading_json: str | None = None  # for the unbound queue
    dead: DeadLetter | None = None
    residents: tuple[str, ...] = ()
    wire: WireReading | None = None  # the reading as received (a conflict's dead letter)


@dataclass(slots=True)
class MessageOutcome:
    """Everything one MQTT message turned into; ``ack_ids`` go back to the gateway."""

    topic: str
    gateway_id: str | None
    readings: list[ReadingOutcome] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)  # message-level and wire-rejected
    ack_ids: list[str] = field(default_factory=list)
    received: int = 0  # readings in the message (0 when it was not a batch)
    dead_readings: int = 0  # readings (or 1 for an unreadable message) dead-lettered above


# Built for every reading: without the frozen __setattr__ cost (devices._fast; every field
# by keyword, so a new or reordered field cannot be filled wrongly).
_make_context = frozen_maker(ReadingContext)
_make_bound = frozen_maker(Bound)


def gateway_of_topic(topic: str) -> str | None:
    """The gateway id of ``{root}/gw/{gateway}/readings`` (None for anything else)."""
    parts = topic.rsplit("/", 3)
    if len(parts) == 4 and parts[1] == "gw" and parts[3] == "readings" and parts[2]:
        return parts[2]
    return None


def _message_reason(exc: WireError) -> Reason:
    if exc.field == "schema":
        return Reason.UNKNOWN_SCHEMA
    if exc.field == "" and exc.reason.startswith("not UTF-8 JSON"):
        return Reason.MALFORMED_JSON
    return Reason.INVALID_MESSAGE


def process_message(
    topic: str, payload: bytes, registry: Registry, policy: Policy = DEFAULT_POLICY
) -> MessageOutcome:
    """Decode a gateway batch and process each reading; never raises for bad input."""
    topic_gateway = gateway_of_topic(topic)
    out = MessageOutcome(topic=topic, gateway_id=topic_gateway)
    try:
        batch, rejected = decode_batch_partial(payload)
    except WireError as exc:
        out.dead.append(
            DeadLetter(
                _message_reason(exc),
                f"메시지를 읽을 수 없습니다 (unreadable message): {exc}",
                payload,
                topic,
                topic_gateway,
                None,
                None,
                type(exc).__name__,
            )
        )
        out.dead_readings = 1
        return out
    out.received = len(batch.readings) + len(rejected)
    gateway_id = batch.gateway
    out.gateway_id = gateway_id
    if topic_gateway is not None and gateway_id != topic_gateway:
        out.dead.append(
            DeadLetter(
                Reason.INVALID_MESSAGE,
                f"메시지의 게이트웨이 {gateway_id!r}가 토픽의 {topic_gateway!r}와 다릅니다 "
                "(gateway in the message differs from the topic)",
                payload,
                topic,
                topic_gateway,
                None,
                None,
                None,
            )
        )
        out.dead_readings = out.received or 1
        return out
    gateway = registry.gateway(gateway_id)
    if gateway is None:
        out.dead.append(
            DeadLetter(
                Reason.UNKNOWN_GATEWAY,
                f"등록되지 않은 게이트웨이 {gateway_id!r} (unknown gateway; register it, then "
                "replay)",
                payload,
                topic,
                gateway_id,
                None,
                None,
                None,
            )
        )
        out.ack_ids = [r.id for r in batch.readings] + [
            i for i in (_reading_id(bad.raw) for bad in rejected) if i is not None
        ]
        out.dead_readings = out.received
        return out
    for bad in rejected:
        raw_obj = bad.raw
        reading_id = _reading_id(raw_obj)
        out.dead_readings += 1
        out.dead.append(
            DeadLetter(
                Reason.INVALID_MESSAGE,
                f"읽을 수 없는 측정값 (invalid reading): {bad.error}",
                _raw_json(raw_obj),
                topic,
                gateway_id,
                reading_id,
                None,
                type(bad.error).__name__,
            )
        )
        if reading_id is not None:
            out.ack_ids.append(reading_id)
    if gateway.centre_id is not None and batch.centre and batch.centre != gateway.centre_id:
        # a gateway speaks for its own centre only (issue 13.5)
        out.dead.append(
            DeadLetter(
                Reason.FOREIGN_CENTRE,
                f"게이트웨이 {gateway_id!r}는 {gateway.centre_id!r} 센터 소속인데 메시지는 "
                f"{batch.centre!r} 센터라고 합니다 (message names another centre than the "
                "gateway's)",
                payload,
                topic,
                gateway_id,
            )
        )
        out.dead_readings = out.received
        return out
    centre = gateway.centre_id or batch.centre
    readings: Sequence[WireReading] = batch.readings
    if any(r.payload is not None for r in readings):
        readings = _precise_payloads(payload, readings)
    for reading in readings:
        out.readings.append(
            process_reading(reading, gateway_id, centre, registry, policy, mode=gateway.mode)
        )
        out.ack_ids.append(reading.id)
    return out


def _precise_payloads(payload: bytes, readings: Sequence[WireReading]) -> list[WireReading]:
    """The readings with their station payloads parsed again keeping number precision.

    ``devices.wire`` parses the batch with plain floats (36.50 → 36.5); a kiosk's value must
    keep the precision it was sent with, so its payload object is taken from a Decimal parse.
    """
    try:
        raw = json.loads(payload, parse_float=Decimal)
    except ValueError:  # pragma: no cover - the batch parsed once already
        return list(readings)
    precise = {
        item.get("id"): item.get("payload")
        for item in raw.get("readings", ())
        if isinstance(item, dict) and isinstance(item.get("payload"), dict)
    }
    return [
        replace(r, payload=precise[r.id]) if r.payload is not None and r.id in precise else r
        for r in readings
    ]


def _reading_id(raw: object) -> str | None:
    value = raw.get("id") if isinstance(raw, dict) else None
    return value if isinstance(value, str) and value else None


def _raw_json(obj: object) -> bytes:
    try:
        return dumps(obj).encode()
    except (TypeError, ValueError):
        return repr(obj).encode()


def _clock(reading: WireReading) -> Clock | None:
    sample = reading.clock
    if sample is None or not sample.trusted:
        return None
    device = sample.device
    if device is None:
        if sample.offset_s is None:
            return None
        local = sample.gateway.astimezone(KST).replace(tzinfo=None)
        device = local + timedelta(seconds=sample.offset_s)
    return Clock(device=device, gateway=sample.gateway)


_QUIRKS: dict[tuple[str | None, str | None], tuple[str, ...]] = {}


def _catalogue_quirks(manufacturer: str | None, model: str | None) -> tuple[str, ...]:
    """The catalogue's quirks for a model (memoised: the lookup scans the whole catalogue)."""
    key = (manufacturer, model)
    found = _QUIRKS.get(key)
    if found is None:
        found = quirks_for(manufacturer, model)
        if len(_QUIRKS) < 10_000:
            _QUIRKS[key] = found
    return found


def decode_measurements(reading: WireReading, calibration: str | None) -> tuple[Measurement, ...]:
    """The reading's Measurements (BLE values or a station payload); raises DeviceError."""
    if reading.source == "ble":
        quirks = reading.quirks or _catalogue_quirks(
            reading.device.manufacturer, reading.device.model
        )
        return decode_record(
            [(v.uuid, v.data) for v in reading.values], quirks=quirks, calibration=calibration
        )
    assert reading.payload is not None
    return parse_station_payload(reading.payload).measurements


def _foreign_station(
    reading: WireReading,
    device: DeviceInfo,
    centre_id: str | None,
    registry: Registry,
    mode: str,
) -> str | None:
    """Why a centre gateway's reading names a station or station device of another centre
    (None when it does not): a gateway binds and forwards for its own stations only, so a
    message naming another centre's station is dead-lettered, not stored (issue 13.5)."""
    if mode != "station" or centre_id is None:
        return None
    if reading.station is not None:
        owner = registry.station_centre(reading.station)
        if owner is not None and owner != centre_id:
            return (
                f"측정대 {reading.station!r}는 {owner!r} 센터 소속입니다; 게이트웨이는 "
                f"{centre_id!r} 센터 (station of another centre than the gateway's)"
            )
    if device.centre_id is not None and device.centre_id != centre_id:
        return (
            f"기기 {reading.device.id!r}는 {device.centre_id!r} 센터 측정대 기기입니다; "
            f"게이트웨이는 {centre_id!r} 센터 (device of another centre's station)"
        )
    return None


def process_reading(
    reading: WireReading,
    gateway_id: str,
    centre_id: str | None,
    registry: Registry,
    policy: Policy = DEFAULT_POLICY,
    *,
    mode: str = "station",
    staff: Bound | None = None,
    use_received_time: bool = False,
) -> ReadingOutcome:
    """Decode, bind and transform one reading.

    ``staff`` overrides the binding (the unbound queue's assign); ``use_received_time`` places
    the reading at its reception time instead of the device's clock (staff confirmed it).
    """
    out = ReadingOutcome(reading.id, gateway_id, reading.device.id, wire=reading)
    device_id = reading.device.id

    def dead(reason: Reason, detail: str, exc: BaseException | None = None) -> ReadingOutcome:
        out.dead = DeadLetter(
            reason,
            detail,
            encode_reading(reading),
            None,
            gateway_id,
            reading.id,
            device_id,
            None if exc is None else type(exc).__name__,
        )
        return out

    decoded = reading.decoded
    if decoded is not None and "dead_letter" in decoded:
        # the gateway could not use it either and forwards it for the central table
        return dead(
            Reason.GATEWAY_DEAD_LETTER,
            f"게이트웨이에서 처리할 수 없던 기록 (dead-lettered at the gateway): "
            f"{decoded['dead_letter']}",
        )
    device = registry.device(device_id)
    if device is None:
        return dead(
            Reason.UNKNOWN_DEVICE,
            f"등록되지 않은 기기 {device_id!r} (unknown device; register it, then replay)",
        )
    foreign = _foreign_station(reading, device, centre_id, registry, mode)
    if foreign is not None:
        return dead(Reason.FOREIGN_CENTRE, foreign)
    calibration = reading.device.calibration or device.calibration
    try:
        measurements = decode_measurements(reading, calibration)
    except (DeviceError, ValueError) as exc:
        return dead(Reason.DECODE_ERROR, f"해석할 수 없는 값 (cannot decode): {exc}", exc)
    if use_received_time:
        measurements = tuple(replace(m, device_time=None) for m in measurements)
    binding = reading.binding
    bound: Bound | None = staff
    if bound is None and binding is not None:
        if not registry.resident_known(binding.resident):
            return dead(
                Reason.UNKNOWN_RESIDENT,
                f"등록되지 않은 주민 {binding.resident!r} (unknown resident in the binding)",
            )
        bound = _make_bound(
            resident=binding.resident,
            method=binding.method,
            session=binding.session,
            station=reading.station,
            by_user=None,
        )
    clock = _clock(reading)
    received = reading.received_at
    hold: tuple[Reason, str] | None = None
    for measurement in measurements:
        patient = bound.resident if bound is not None else None
        method = bound.method if bound is not None else None
        if bound is None:
            at = measurement.device_time
            moment = at.replace(tzinfo=KST) if at is not None and at.tzinfo is None else received
            patient = registry.resolve(device_id, measurement.user_index, moment)
            if patient is not None:
                method = "registry"
                bound = Bound(patient, "registry", None, reading.station)
        setting = "visit" if mode == "visit" else "home" if method == "registry" else "centre"
        ctx = _make_context(
            device_id=device_id,
            gateway_id=gateway_id,
            received_at=received,
            patient=patient,
            binding=method,
            centre_id=centre_id or device.centre_id,
            clock=clock,
            station_id=reading.station,
            reading_id=reading.id,
            performer=None,
            setting=setting,
            session=bound.session if bound is not None else None,
        )
        try:
            out.observations.extend(to_observations(measurement, ctx, policy))
        except RejectedReading as exc:
            out.observations.clear()
            return dead(exc.reason, exc.detail, exc)
        except HeldForReview as exc:
            reason = exc.reason
            detail = exc.detail
            if reason is Reason.NO_BINDING and registry.multi_user(device_id):
                reason = Reason.UNKNOWN_USER
                detail = (
                    f"사용자 슬롯 {measurement.user_index}에 배정된 주민이 없습니다 "
                    "(no resident mapped to this user slot)"
                )
            hold = (reason, detail)
            out.observations.clear()
            out.unbound = unbound_record(measurement, ctx, reason, detail, policy)
            break
    if hold is not None:
        out.reading_json = encode_reading(reading).decode()
        out.bound = None
        return out
    out.bound = bound
    out.residents = tuple({o.resident_id for o in out.observations if o.resident_id})
    return out
