"""One captured record → one wire reading: decode, place in time, bind, or dead-letter.

Pure (values in, values out; the caller passes times and the binder). Both device sides use
it: the BLE sessions with the characteristic values of one record, the station subscriber
with one station payload. The result carries everything the outbox write needs.

Nothing is dropped here. A record that cannot be decoded, or decodes to values no human body
produces, becomes a *dead letter*: kept in the outbox's ``dead_letter`` table with its raw
hex and the reason, logged by the caller at WARNING with the device address, **and**
forwarded to ingest as a wire reading carrying the raw bytes and ``decoded.dead_letter`` =
reason, so the central dead-letter table sees it too (ingest re-decodes and keeps the raw
message). The loop goes on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from devices.errors import DecodeError, DeviceError
from devices.model import Measurement
from devices.quirks import is_patient_result
from devices.records import decode_record
from devices.station import StationMessage
from devices.wire import Binding as WireBinding
from devices.wire import CharacteristicValue, ClockSample, DeviceInfo, WireReading, encode_reading
from gateway.binding import Binder, Decision
from gateway.clock import ClockCheck, Stamp, stamp
from gateway.config import ClockPolicy, DeviceConfig
from gateway.outbox import DeadLetter, Entry, new_reading_id

#: Values outside these bounds are not a human measurement (a corrupt or test payload):
#: component code → unit → (low, high), inclusive. Generous on purpose: clinical judgement
#: is ingest's and the clinical runner's; this only catches what no body produces.
PLAUSIBLE: Mapping[str, Mapping[str, tuple[Decimal, Decimal]]] = {
    "systolic": {"mm[Hg]": (Decimal(40), Decimal(300)), "kPa": (Decimal("5.3"), Decimal(40))},
    "diastolic": {"mm[Hg]": (Decimal(15), Decimal(200)), "kPa": (Decimal(2), Decimal("26.7"))},
    "mean": {"mm[Hg]": (Decimal(0), Decimal(250)), "kPa": (Decimal(0), Decimal("33.4"))},
    "pulse": {"/min": (Decimal(20), Decimal(300))},
    "glucose": {"mg/dL": (Decimal(5), Decimal(1000)), "mmol/L": (Decimal("0.3"), Decimal(56))},
    "weight": {"kg": (Decimal(1), Decimal(350)), "[lb_av]": (Decimal(2), Decimal(770))},
    "body_fat": {"%": (Decimal(1), Decimal(80))},
}


def implausible(measurement: Measurement) -> str | None:
    """Why a decoded record cannot be a human measurement, or None."""
    for comp in measurement.components:
        bounds = PLAUSIBLE.get(comp.code, {}).get(comp.unit)
        if bounds is None or comp.value is None:
            continue
        low, high = bounds
        if not low <= comp.value <= high:
            return f"implausible {comp.code} {comp.value} {comp.unit} (outside {low}..{high})"
    return None


@dataclass(frozen=True, slots=True)
class Prepared:
    """What to write for one record: the outbox entry, maybe a dead letter, and why."""

    reading: WireReading
    entry: Entry
    dead_letter: DeadLetter | None
    measurement: Measurement | None
    stamp: Stamp | None
    decision: Decision | None

    @property
    def bound(self) -> bool:
        return self.reading.binding is not None


def device_info(device: DeviceConfig | None, device_id: str, **facts: str | None) -> DeviceInfo:
    """The wire's device object: registry facts plus what the session read (DIS strings)."""
    return DeviceInfo(
        id=device.id if device else device_id,
        address=device.address if device else facts.get("address"),
        manufacturer=facts.get("manufacturer"),
        model=facts.get("model") or (device.model if device else None),
        serial=facts.get("serial"),
        firmware=facts.get("firmware"),
        calibration=device.calibration if device else None,
    )


def prepare_ble_record(
    values: Sequence[tuple[str, bytes]],
    *,
    device: DeviceConfig,
    info: DeviceInfo,
    quirks: Sequence[str],
    clock: ClockCheck | None,
    received_at: datetime,
    binder: Binder,
    policy: ClockPolicy,
    gateway_id: str,
) -> Prepared:
    """A BLE record (the characteristic values of one record, in received order)."""
    wire_values = tuple(CharacteristicValue(uuid, bytes(data)) for uuid, data in values)
    reading_id = new_reading_id(received_at.timestamp())
    problem: str | None
    try:
        measurements = decode_record(values, quirks=quirks, calibration=device.calibration)
    except (DecodeError, DeviceError, ValueError) as exc:
        measurements, problem = (), _reason(exc)
    else:
        problem = implausible(measurements[0])
    if problem is not None:
        return _dead(
            reading_id,
            source="ble",
            station=device.station,
            info=info,
            values=wire_values,
            payload=None,
            quirks=quirks,
            received_at=received_at,
            origin=device.address or device.id,
            raw_hex=" ".join(f"{uuid[4:8]}:{bytes(data).hex()}" for uuid, data in values),
            reason=problem,
        )
    measurement = measurements[0]
    placed = stamp(measurement.device_time, clock=clock, received_at=received_at, policy=policy)
    decision = binder.bind(
        device,
        measured_at=placed.effective,
        time_trusted=placed.trusted,
        user_index=measurement.user_index,
    )
    return _good(
        reading_id,
        source="ble",
        station=device.station,
        info=info,
        values=wire_values,
        payload=None,
        quirks=quirks,
        received_at=received_at,
        clock=clock,
        placed=placed,
        decision=decision,
        measurement=measurement,
        extra={"records": len(measurements)} if len(measurements) > 1 else {},
    )


def prepare_station_message(
    payload: Mapping[str, Any],
    *,
    message: StationMessage,
    device: DeviceConfig | None,
    device_id: str,
    station: str,
    received_at: datetime,
    binder: Binder,
    policy: ClockPolicy,
) -> Prepared:
    """A valid station (kiosk / Wi-Fi device) message, parsed by ``devices.station``.

    One message is one wire reading (ingest re-reads all its measurements from the payload).
    Kiosk readings are live: a message without a device time is stamped with its receive time.
    """
    info = device_info(device, device_id)
    reading_id = new_reading_id(received_at.timestamp())
    origin = f"station {station} device {device_id}"
    for measurement in message.measurements:
        problem = implausible(measurement)
        if problem is not None:
            return _dead(
                reading_id,
                source="mqtt",
                station=station,
                info=info,
                values=(),
                payload=payload,
                quirks=(),
                received_at=received_at,
                origin=origin,
                raw_hex=_json_hex(payload),
                reason=problem,
            )
    times = [m.device_time for m in message.measurements if m.device_time is not None]
    first = message.measurements[0]
    placed = stamp(
        min(times) if times else None,
        clock=None,
        received_at=received_at,
        policy=policy,
        live=True,
    )
    card = message.checkin
    if card is not None and (device is None or device.station is not None):
        decision = binder.bind_card(card)
    elif device is None:
        decision = Decision(None, "device is not registered at this gateway")
    else:
        decision = binder.bind(
            device,
            measured_at=placed.effective,
            time_trusted=placed.trusted,
            user_index=first.user_index,
        )
    return _good(
        reading_id,
        source="mqtt",
        station=station,
        info=info,
        values=(),
        payload=payload,
        quirks=(),
        received_at=received_at,
        clock=None,
        placed=placed,
        decision=decision,
        measurement=first,
        extra={"records": len(message.measurements)} if len(message.measurements) > 1 else {},
    )


def prepare_bad_station_message(
    raw: bytes,
    *,
    topic: str,
    station: str | None,
    device_id: str,
    device: DeviceConfig | None,
    reason: str,
    received_at: datetime,
    parsed: Mapping[str, Any] | None,
) -> Prepared:
    """A station message that failed validation: dead letter, forwarded with its raw text."""
    info = device_info(device, device_id)
    payload: Mapping[str, Any] = (
        parsed
        if parsed is not None
        else {"unparseable": raw.decode("utf-8", errors="replace"), "raw_hex": raw.hex()}
    )
    return _dead(
        new_reading_id(received_at.timestamp()),
        source="mqtt",
        station=station,
        info=info,
        values=(),
        payload=payload,
        quirks=(),
        received_at=received_at,
        origin=topic,
        raw_hex=raw.hex(),
        reason=reason,
    )


# --- building ----------------------------------------------------------------------------------


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def _json_hex(payload: Mapping[str, Any]) -> str:
    return (
        json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode().hex()
    )


def _entry(reading: WireReading) -> Entry:
    return Entry(reading.id, reading.device.id, encode_reading(reading).decode("utf-8"))


def _dead(
    reading_id: str,
    *,
    source: str,
    station: str | None,
    info: DeviceInfo,
    values: tuple[CharacteristicValue, ...],
    payload: Mapping[str, Any] | None,
    quirks: Sequence[str],
    received_at: datetime,
    origin: str,
    raw_hex: str,
    reason: str,
) -> Prepared:
    reading = WireReading(
        id=reading_id,
        source=source,
        station=station,
        device=info,
        values=values,
        payload=payload,
        decoded={"dead_letter": reason},
        quirks=tuple(quirks),
        received_at=received_at,
        clock=None,
        binding=None,
    )
    dead = DeadLetter(
        source=source,
        origin=origin,
        raw_hex=raw_hex,
        reason=reason,
        reading_id=reading_id,
        at=received_at.timestamp(),
    )
    return Prepared(reading, _entry(reading), dead, None, None, None)


def _good(
    reading_id: str,
    *,
    source: str,
    station: str | None,
    info: DeviceInfo,
    values: tuple[CharacteristicValue, ...],
    payload: Mapping[str, Any] | None,
    quirks: Sequence[str],
    received_at: datetime,
    clock: ClockCheck | None,
    placed: Stamp,
    decision: Decision,
    measurement: Measurement,
    extra: Mapping[str, Any],
) -> Prepared:
    binding = decision.binding
    sample = ClockSample(
        device=clock.device if clock else None,
        gateway=clock.gateway if clock else received_at,
        offset_s=clock.offset_s if clock else None,
        trusted=placed.trusted,
    )
    decoded: dict[str, Any] = {
        "kind": measurement.kind.value,
        "device_time": None if placed.device_time is None else placed.device_time.isoformat(),
        "effective_time": None if placed.effective is None else placed.effective.isoformat(),
        "time": placed.reason,
        "binding": decision.reason,
        "patient_result": is_patient_result(measurement),
        **extra,
    }
    if measurement.user_index is not None:
        decoded["user_index"] = measurement.user_index
    if measurement.sequence_number is not None:
        decoded["sequence_number"] = measurement.sequence_number
    reading = WireReading(
        id=reading_id,
        source=source,
        station=station,
        device=info,
        values=values,
        payload=payload,
        decoded=decoded,
        quirks=tuple(quirks),
        received_at=received_at,
        clock=sample,
        binding=None
        if binding is None
        else WireBinding(binding.resident, binding.method.value, binding.session),
    )
    return Prepared(reading, _entry(reading), None, measurement, placed, decision)
