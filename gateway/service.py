"""The gateway service: device sides → binding → outbox → central broker, in one TaskGroup.

::

    BLE sessions (gateway.ble) ──┐
                                 ├─► pipeline (decode, clock, bind) ─► outbox (SQLite, durable)
    station topics (local MQTT) ─┘                                          │
    check-ins (kiosk / API / tablet) ─► binder                              ▼
                                              publisher ─► {root}/gw/{id}/readings (QoS 1)
                        ingest's acks {root}/gw/{id}/ack ─► outbox.acknowledge (delete)
                                              heartbeat ─► {root}/gw/{id}/heartbeat

Each side runs its own reconnection loop with bounded backoff (aiomqtt's documented pattern):
a broker that goes away for minutes only pauses forwarding; readings keep arriving in the
outbox and all go out once it returns. ``run(config, stop=...)`` returns after a clean
shutdown when ``stop`` is set (or on SIGTERM/SIGINT when the caller gives no event).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from devices.errors import DeviceError, StationPayloadError, WireError
from devices.mqttlink import Message, MqttLink
from devices.station import parse_station_event
from devices.wire import ack_topic, decode_ack, heartbeat_topic, readings_topic
from gateway.binding import Binder, CheckIn, CheckInResult, Method
from gateway.ble import BleSide
from gateway.config import GatewayConfig, Mode
from gateway.errors import MqttError, OutboxError, OutboxFull
from gateway.mqtt import gateway_topic, heartbeat_payload
from gateway.outbox import DeviceUpdate, Outbox, Pending
from gateway.pipeline import Prepared
from gateway.sink import Sink
from gateway.stations import StationSide

logger = logging.getLogger(__name__)

#: Concurrent batch publishes waiting for their PUBACK.
MAX_INFLIGHT_BATCHES = 4
#: After a reconnect, acks queued on the persistent session get this long to arrive before
#: the readings still in flight are published again.
RESEND_GRACE_S = 2.0


def now_utc() -> datetime:
    return datetime.now(UTC)


class Gateway:
    """The running gateway's shared state: configuration, outbox, binder, links."""

    def __init__(self, config: GatewayConfig, outbox: Outbox) -> None:
        self.config = config
        self.outbox = outbox
        self.binder = Binder(
            stations=config.station_ids,
            window_s=config.checkin_window_s,
            cards=config.cards,
        )
        self.sink = Sink(outbox)
        self.central_up = asyncio.Event()
        self.local_up = asyncio.Event()
        self._central: MqttLink | None = None
        self.readings_topic = readings_topic(config.topic_root, config.gateway_id)
        self.ack_topic = ack_topic(config.topic_root, config.gateway_id)
        self.heartbeat_topic = heartbeat_topic(config.topic_root, config.gateway_id)
        self.checkin_topic = gateway_topic(config.topic_root, config.gateway_id, "checkin")
        self._batch_head = (
            f'{{"schema":1,"gateway":{json.dumps(config.gateway_id)},'
            f'"centre":{json.dumps(config.centre)},"sent_at":'
        )

    def client_id(self, suffix: str) -> str:
        """The default MQTT client id: stable across restarts (persistent sessions) and unique
        per topic root, so two systems sharing a broker never take over each other's session."""
        root = self.config.topic_root.replace("/", ".")
        return f"daon-gw-{self.config.gateway_id}{suffix}@{root}"

    # --- storing ---------------------------------------------------------------------------

    async def store(
        self, prepared: Sequence[Prepared], *, devices: Sequence[DeviceUpdate] = ()
    ) -> None:
        """Write readings durably (see :meth:`Sink.store`). Raises :class:`OutboxFull`."""
        await self.sink.store(prepared, devices=devices)

    # --- check-ins -------------------------------------------------------------------------

    def check_in(
        self,
        station: str,
        *,
        resident: str | None = None,
        card: str | None = None,
        at: datetime | None = None,
        method: Method = Method.STAFF,
    ) -> CheckInResult:
        """Open a session (kiosk event, API command, or the tablet's own UI in visit mode)."""
        when = _checkin_time(at, now_utc(), self.config.checkin_window_s)
        result = self.binder.check_in(CheckIn(station, when, method, resident=resident, card=card))
        if result.closed is not None:
            logger.info("session %s at %s closed by a new check-in", result.closed.id, station)
        if result.opened is not None:
            logger.info("session %s opened at %s (%s)", result.opened.id, station, method.value)
        else:
            logger.warning(
                "check-in at %s not opened: %s (readings there go to the unbound queue, "
                "미배정 측정값, for staff to assign)",
                station,
                result.reason,
            )
        return result

    # --- central broker ----------------------------------------------------------------------

    async def central_loop(self) -> None:
        """Connect, subscribe, forward and heartbeat; reconnect with backoff, forever."""
        cfg = self.config
        backoff = _Backoff(cfg.reconnect_max_s)
        will = (self.heartbeat_topic, self._heartbeat("offline"))
        attempt = 0  # which node of a broker cluster to try next
        while True:
            link = MqttLink(
                cfg.central.broker(attempt),
                client_id=cfg.central.client_id or self.client_id(""),
                timeout=cfg.mqtt_timeout_s,
                will=will,
            )
            try:
                async with link:
                    await link.subscribe([(self.ack_topic, 1), (self.checkin_topic, 1)])
                    rescheduled = await self.outbox.reschedule_in_flight(RESEND_GRACE_S)
                    if rescheduled:
                        logger.info("%d unacknowledged readings go out again", rescheduled)
                    self._central = link
                    self.central_up.set()
                    backoff.reset()
                    logger.info("forwarding to %s", link.where)
                    try:
                        async with asyncio.TaskGroup() as tg:
                            tg.create_task(self._publisher(link))
                            tg.create_task(self._central_receiver(link))
                            tg.create_task(self._heartbeat_loop(link))
                    except asyncio.CancelledError:
                        # A clean stop says so (the will covers the unclean ones).
                        with contextlib.suppress(MqttError, TimeoutError):
                            async with asyncio.timeout(1.0):
                                await link.publish(
                                    self.heartbeat_topic, self._heartbeat("offline"), retain=True
                                )
                        raise
            except* (MqttError, OutboxError) as group:
                for exc in group.exceptions:
                    logger.warning("central link: %s; retrying in %.1f s", exc, backoff.delay)
                if any(isinstance(e, MqttError) for e in group.exceptions):
                    attempt += 1  # the node went away: a cluster's next node
            except* Exception:
                # A bug, not an outage: log it with its traceback and start over (bounded).
                logger.exception("forwarding failed; restarting in %.1f s", backoff.delay)
            finally:
                self._central = None
                self.central_up.clear()
            await backoff.sleep()

    async def _publisher(self, link: MqttLink) -> None:
        limit = self.config.outbox.batch_size
        slots = asyncio.Semaphore(MAX_INFLIGHT_BATCHES)
        tick = min(self.config.outbox.resend_after_s, 1.0)
        async with asyncio.TaskGroup() as tg:
            while True:
                await slots.acquire()
                self.outbox.added.clear()
                try:
                    pending = await self.outbox.take(limit)
                except BaseException:
                    slots.release()
                    raise
                if not pending:
                    slots.release()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(tick):
                            await self.outbox.added.wait()
                    continue
                tg.create_task(self._publish_batch(link, pending, slots))

    async def _publish_batch(
        self, link: MqttLink, pending: list[Pending], slots: asyncio.Semaphore
    ) -> None:
        try:
            payload = self.batch_payload(pending)
            await link.publish(self.readings_topic, payload, qos=1)
            resent = sum(1 for p in pending if p.resend)
            if resent:
                logger.info("published %d readings again (no ack yet)", resent)
        except MqttError:
            # Not accepted by the broker: due again at once on the next link.
            with contextlib.suppress(OutboxError):
                await self.outbox.release([p.id for p in pending])
            raise
        finally:
            slots.release()

    def batch_payload(self, pending: Sequence[Pending]) -> bytes:
        """The wire batch around the stored readings (each already ``devices.wire`` JSON)."""
        sent_at = json.dumps(now_utc().isoformat(timespec="milliseconds"))
        body = ",".join(p.body for p in pending)
        return f'{self._batch_head}{sent_at},"readings":[{body}]}}'.encode()

    async def _central_receiver(self, link: MqttLink) -> None:
        async for message in link.iter_messages():
            if message.topic == self.ack_topic:
                await self._on_ack(message)
            elif message.topic == self.checkin_topic:
                self.on_checkin_message(message.payload, origin=message.topic)

    async def _on_ack(self, message: Message) -> None:
        try:
            ids = decode_ack(message.payload)
        except WireError as exc:
            logger.warning("ignoring a malformed ack (%s): %r", exc, message.payload[:200])
            return
        removed = await self.outbox.acknowledge(ids)
        logger.debug("ack for %d readings, %d removed", len(ids), removed)

    def on_checkin_message(self, payload: bytes, *, origin: str) -> None:
        """A check-in from the central side (API station screen, nurse's tablet) or a kiosk."""
        try:
            event = parse_checkin(payload)
        except (DeviceError, ValueError) as exc:
            logger.warning("check-in message on %s refused: %s; raw %s", origin, exc, payload.hex())
            return
        self.check_in(
            event.station,
            resident=event.resident,
            card=event.card,
            at=event.at,
            method=Method.STAFF if event.resident else Method.CHECK_IN,
        )

    async def _heartbeat_loop(self, link: MqttLink) -> None:
        while True:
            await link.publish(self.heartbeat_topic, self._heartbeat("online"), qos=1, retain=True)
            await asyncio.sleep(self.config.heartbeat_s)

    def _heartbeat(self, status: str) -> bytes:
        return heartbeat_payload(
            gateway_id=self.config.gateway_id,
            centre=self.config.centre,
            at=now_utc(),
            status=status,
            queue_depth=self.outbox.depth if status == "online" else None,
        )

    # --- local broker: station devices and kiosk check-ins ---------------------------------------

    async def local_loop(self) -> None:
        side = StationSide(
            self.config, binder=self.binder, sink=self.sink, on_checkin=self.on_checkin_message
        )
        cfg = self.config
        backoff = _Backoff(cfg.reconnect_max_s)
        while True:
            broker = cfg.local_broker
            link = MqttLink(
                broker.broker(),
                client_id=(cfg.local.client_id if cfg.local and cfg.local.client_id else None)
                or self.client_id("-stations"),
                timeout=cfg.mqtt_timeout_s,
                manual_ack=True,
            )
            try:
                async with link:
                    await link.subscribe([(t, 1) for t in side.subscriptions()])
                    self.local_up.set()
                    backoff.reset()
                    async for message in link.iter_messages():
                        await side.handle(message)
                        link.ack(message)  # only now: the reading is in the outbox
            except* (MqttError, OutboxError) as group:
                for exc in group.exceptions:
                    logger.warning("station link: %s; retrying in %.1f s", exc, backoff.delay)
            except* Exception:
                logger.exception("station side failed; restarting in %.1f s", backoff.delay)
            finally:
                self.local_up.clear()
            await backoff.sleep()

    # --- housekeeping ------------------------------------------------------------------------

    async def maintenance_loop(self, every_s: float = 60.0) -> None:
        while True:
            try:
                expired, pruned = await self.outbox.expire()
                if expired:
                    logger.error(
                        "%d unsent readings older than %.0f days expired from the outbox",
                        expired,
                        self.config.outbox.max_age_days,
                    )
                if pruned:
                    logger.info("%d old dead letters pruned", pruned)
            except OutboxError as exc:
                logger.error("outbox maintenance failed: %s", exc)
            await asyncio.sleep(every_s)


async def _signal_ready(gateway: Gateway, ready: asyncio.Event) -> None:
    await gateway.central_up.wait()
    await gateway.local_up.wait()
    ready.set()


class _Backoff:
    """Exponential backoff 0.5 s → ``ceiling``, reset after a good connection."""

    def __init__(self, ceiling: float, first: float = 0.5) -> None:
        self.first = min(first, ceiling)
        self.ceiling = ceiling
        self.delay = self.first

    def reset(self) -> None:
        self.delay = self.first

    async def sleep(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, self.ceiling)


def _checkin_time(at: datetime | None, now: datetime, window_s: float) -> datetime:
    """The event's own time when it is believable, else the gateway's receive time."""
    if at is None or at.tzinfo is None:
        return now
    skew = (at - now).total_seconds()
    if skew > 5.0 or skew < -window_s:
        return now
    return at


@dataclass(frozen=True, slots=True)
class CheckInEvent:
    """A check-in as received: from a kiosk (card) or the central side (resident, maybe card)."""

    station: str
    card: str | None
    resident: str | None
    at: datetime | None


def parse_checkin(payload: bytes) -> CheckInEvent:
    """A kiosk's check-in event or the API's command: ``devices.station``'s event + ``resident``.

    The API's command (station screen, nurse's tablet) adds ``"resident"``; a staff check-in
    may come without a card. Raises :class:`StationPayloadError` naming the field.
    """
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise StationPayloadError("", "not a JSON object") from None
    if not isinstance(obj, dict):
        raise StationPayloadError("", "not a JSON object")
    resident = obj.get("resident")
    if resident is not None and (not isinstance(resident, str) or not resident):
        raise StationPayloadError("resident", "must be a non-empty resident id")
    if resident is not None and obj.get("card") is None:
        # staff check-in without a card: validate the rest with a placeholder card
        event = parse_station_event({**obj, "card": "-"})
        return CheckInEvent(event.station, None, resident, event.at)
    event = parse_station_event(obj)
    return CheckInEvent(event.station, event.card, resident, event.at)


async def run(
    config: GatewayConfig,
    *,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Run the gateway until ``stop`` is set (or SIGTERM/SIGINT when no event is given).

    ``ready`` (optional) is set once both brokers are connected and subscribed.
    """
    installed: list[signal.Signals] = []
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
    started = time.monotonic()
    try:
        async with Outbox(config.outbox) as outbox:
            gateway = Gateway(config, outbox)
            logger.info(
                "gateway %s (%s, %s) starting: %d stations, %d devices, outbox %s holding %d",
                config.gateway_id,
                config.centre,
                config.mode.value,
                len(config.stations),
                len(config.devices),
                config.outbox.path,
                outbox.depth,
            )
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(gateway.central_loop(), name="central"),
                    tg.create_task(gateway.local_loop(), name="stations"),
                    tg.create_task(gateway.maintenance_loop(), name="maintenance"),
                ]
                if ready is not None:
                    tasks.append(tg.create_task(_signal_ready(gateway, ready), name="ready"))
                if config.ble.enabled and config.ble_devices:
                    ble = BleSide(config, binder=gateway.binder, outbox=outbox, sink=gateway.sink)
                    tasks.append(tg.create_task(ble.run(), name="ble"))
                await stop.wait()
                for task in tasks:
                    task.cancel()
    finally:
        loop = asyncio.get_running_loop()
        for sig in installed:
            loop.remove_signal_handler(sig)
        logger.info(
            "gateway %s stopped after %.0f s", config.gateway_id, time.monotonic() - started
        )


__all__ = ["Gateway", "Mode", "OutboxFull", "run"]
