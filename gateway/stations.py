"""Station topics on the centre's local broker: kiosk and Wi-Fi device payloads, card check-ins.

Topics and payloads are ``devices.wire`` / ``devices.station``'s::

    {root}/st/{centre}/{station}/dev/{device_id}    measurement payloads (schema 1)
    {root}/st/{centre}/{station}/checkin            check-in events (card read at the kiosk)

Every message is validated strictly. A good measurement becomes a wire reading (bound by the
card in the message, by the station's open session, or through the registry); a bad one is a
dead letter with the reason (kept locally and forwarded to ingest with its raw text, see
``gateway.pipeline``). Either way the message is acknowledged to the broker only after the
outbox write, so nothing is lost and the loop goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from devices.errors import DeviceError, StationPayloadError, WireError
from devices.mqttlink import Message
from devices.station import StationMessage, parse_station_payload
from devices.wire import parse_station_topic, station_subscription
from gateway.binding import Binder, Method
from gateway.config import GatewayConfig
from gateway.errors import OutboxFull
from gateway.outbox import DeviceUpdate
from gateway.pipeline import Prepared, prepare_bad_station_message, prepare_station_message
from gateway.sink import Sink

logger = logging.getLogger(__name__)

#: How long to wait before retrying a write the outbox refused (it is full).
FULL_RETRY_S = 5.0


class CheckinHandler(Protocol):
    """Takes a check-in event's payload (the gateway's ``on_checkin_message``)."""

    def __call__(self, payload: bytes, *, origin: str) -> None: ...


class StationSide:
    """The station topics' messages → outbox; check-in events go to ``on_checkin``."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        binder: Binder,
        sink: Sink,
        on_checkin: CheckinHandler,
    ) -> None:
        self.config = config
        self.binder = binder
        self.sink = sink
        self.on_checkin = on_checkin

    def subscriptions(self) -> tuple[str, ...]:
        return station_subscription(self.config.topic_root, self.config.centre)

    async def handle(self, message: Message) -> None:
        """Process one message; returns once what it carried is durable (or was a check-in)."""
        received = datetime.now(UTC)
        try:
            _centre, station, device_id = parse_station_topic(self.config.topic_root, message.topic)
        except WireError as exc:
            logger.warning("ignoring message on %s: %s", message.topic, exc)
            return
        if device_id is None:
            self.on_checkin(message.payload, origin=message.topic)
            return
        prepared = self.prepare(message, station=station, device_id=device_id, received=received)
        device = self.config.device_by_id(device_id)
        updates = [
            DeviceUpdate(device.id if device else device_id, last_seen_at=received.timestamp())
        ]
        if prepared.dead_letter is None:
            updates = [
                DeviceUpdate(
                    device.id if device else device_id,
                    last_seen_at=received.timestamp(),
                    last_reading_at=received.timestamp(),
                )
            ]
        await self._store(prepared, updates)

    def prepare(
        self, message: Message, *, station: str, device_id: str, received: datetime
    ) -> Prepared:
        device = self.config.device_by_id(device_id)
        raw = message.payload
        try:
            parsed = parse_station_payload(raw)
            problem = _mismatch(
                parsed, station=station, device_id=device_id, known=self.config.station_ids
            )
            if problem is not None:
                raise StationPayloadError(problem[0], problem[1])
        except (StationPayloadError, DeviceError, ValueError) as exc:
            return prepare_bad_station_message(
                raw,
                topic=message.topic,
                station=station,
                device_id=device_id,
                device=device,
                reason=f"{type(exc).__name__}: {exc}",
                received_at=received,
                parsed=_json_object(raw),
            )
        payload = _json_object(raw)
        assert payload is not None  # it parsed
        return prepare_station_message(
            payload,
            message=parsed,
            device=device,
            device_id=device_id,
            station=station,
            received_at=received,
            binder=self.binder,
            policy=self.config.clock,
        )

    async def _store(self, prepared: Prepared, updates: list[DeviceUpdate]) -> None:
        while True:
            try:
                await self.sink.store([prepared], devices=updates)
                return
            except OutboxFull as exc:
                # Not acknowledged to the broker yet: the message waits there, nothing is lost.
                logger.error("%s; station message on hold", exc)
                await asyncio.sleep(FULL_RETRY_S)


def _json_object(raw: bytes) -> Mapping[str, Any] | None:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _mismatch(
    message: StationMessage, *, station: str, device_id: str, known: tuple[str, ...]
) -> tuple[str, str] | None:
    """The payload must agree with the topic it came on, and the station must be ours."""
    if message.device_id != device_id:
        return "device_id", f"{message.device_id!r} does not match the topic's {device_id!r}"
    if message.station is not None and message.station != station:
        return "station", f"{message.station!r} does not match the topic's {station!r}"
    if station not in known:
        return "station", f"{station!r} is not a station of this gateway"
    return None


__all__ = ["Method", "StationSide"]
