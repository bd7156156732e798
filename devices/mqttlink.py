"""The one MQTT adapter: paho-mqtt bridged into asyncio, for every side that talks MQTT.

The gateway, ingest, the API's check-in publisher and the kiosk simulator all use this module
(house-style.md §3.2, "On MQTT, decide once"), so a fix to reconnection, timeouts or
acknowledgement lands everywhere at once. Why here and why our own:

* aiomqtt (the style anchor) has no manual acknowledgement, and two of our consumers depend
  on it: ingest acknowledges a batch to the broker only after its database commit, the
  gateway acknowledges a station message only after its outbox write. So we keep a small
  adapter of our own, written in aiomqtt's three habits.
* ``devices`` is the only package every side may import (the top-level names are fixed), and
  MQTT is the carrier of its ``devices.wire`` contract. The adapter is fenced there: it is the
  one module of ``devices`` that may import paho, no decoder imports it, and nothing else in
  the project imports paho (tests/foundation/test_architecture.py checks all three).

The habits:

* paho runs its network thread (``loop_start``); its callbacks (``CallbackAPIVersion.VERSION2``)
  only hand off to the event loop with ``loop.call_soon_threadsafe``: CONNACK, SUBACK and
  PUBACK resolve futures, messages go into an ``asyncio.Queue``.
* Every network call is bounded by a timeout and raises :class:`MqttTimeout` when it runs out.
* No reconnection inside a link (``reconnect_on_failure=False``): when the connection drops,
  every pending call fails with :class:`MqttError`, :attr:`MqttLink.closed` resolves with the
  reason and the message iterator raises. The caller's loop makes a new link (see
  :func:`backoff_delays`). A message of an older link is never acknowledged on a newer one.
* Sessions are persistent by default (MQTT 3.1.1 ``clean_session=False`` with a stable client
  id chosen by the caller), so QoS 1 messages queued while a consumer was away are delivered
  when it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from devices.errors import MqttConnectError, MqttError, MqttTimeout

logger = logging.getLogger(__name__)

_links = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Broker:
    """Where a broker is and how to log in. ``password`` is a secret: never logged."""

    host: str
    port: int = 1883
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None  # read when connecting (kept out of config files)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_s: int = 30

    def display(self) -> str:
        """The broker as a URL without the password, for logs and messages."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"

    @staticmethod
    def parse(url: str) -> Broker:
        """``mqtt://[user[:password]@]host[:port]`` or ``mqtts://`` (``tcp``/``ssl`` too)."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
            raise ValueError(f"{url!r} is not an mqtt:// or mqtts:// URL with a host")
        tls = parts.scheme in ("mqtts", "ssl")
        return Broker(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


@dataclass(frozen=True, slots=True)
class Message:
    """One received message; ``mid`` and ``link`` are what :meth:`MqttLink.ack` needs."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    link: int = 0


class MqttLink:
    """One connection to one broker: ``async with MqttLink(broker, client_id=...) as link``.

    ``manual_ack`` holds received QoS 1 messages unacknowledged until :meth:`ack` (after the
    caller made them durable). ``will`` is the last-will (topic, payload), published retained
    with QoS 1 if the client vanishes. ``max_inflight`` bounds the QoS 1 messages in flight
    each way.
    """

    def __init__(
        self,
        broker: Broker,
        *,
        client_id: str,
        timeout: float = 10.0,
        clean_session: bool = False,
        manual_ack: bool = False,
        will: tuple[str, bytes] | None = None,
        max_inflight: int = 100,
    ) -> None:
        self.broker = broker
        self.client_id = client_id
        self.timeout = timeout
        self.manual_ack = manual_ack
        self.number = next(_links)
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        self.closed: asyncio.Future[str] | None = None
        self._clean_session = clean_session
        self._will = will
        self._max_inflight = max_inflight
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._client: paho.Client | None = None
        self._connected: asyncio.Future[None] | None = None
        self._subscribes: dict[int, asyncio.Future[list[ReasonCode]]] = {}
        self._publishes: dict[int, asyncio.Future[None]] = {}
        self._acked_early: set[int] = set()

    @property
    def where(self) -> str:
        return self.broker.display()

    # --- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> MqttLink:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _make_client(self) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=self._clean_session,
            protocol=MQTTProtocolVersion.MQTTv311,
            reconnect_on_failure=False,
            manual_ack=self.manual_ack,
        )
        broker = self.broker
        password = broker.password
        if broker.password_file is not None:
            try:
                password = broker.password_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise MqttConnectError(
                    self.where, f"cannot read the password file: {exc}"
                ) from None
        if broker.username is not None:
            client.username_pw_set(broker.username, password)
        if broker.tls:
            try:
                if broker.ca_file or broker.cert_file:
                    client.tls_set(
                        ca_certs=str(broker.ca_file) if broker.ca_file else None,
                        certfile=str(broker.cert_file) if broker.cert_file else None,
                        keyfile=str(broker.key_file) if broker.key_file else None,
                        cert_reqs=ssl.CERT_REQUIRED,
                    )
                else:
                    client.tls_set_context(ssl.create_default_context())
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise MqttConnectError(self.where, f"TLS setup failed: {exc}") from None
        if self._will is not None:
            client.will_set(self._will[0], self._will[1], qos=1, retain=True)
        client.max_inflight_messages_set(self._max_inflight)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        return client

    async def connect(self) -> None:
        """Connect and wait for the CONNACK (bounded); raises :class:`MqttConnectError`."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._connected = loop.create_future()
        self.closed = loop.create_future()
        client = self._make_client()
        self._client = client
        try:
            async with asyncio.timeout(self.timeout):
                # connect() resolves the host and opens the TCP (and TLS) connection: blocking.
                await asyncio.to_thread(
                    client.connect, self.broker.host, self.broker.port, self.broker.keepalive_s
                )
                client.loop_start()
                await self._connected
        except TimeoutError:
            await self._teardown("connect timed out")
            raise MqttTimeout(self.where, f"no CONNACK within {self.timeout:g} s") from None
        except OSError as exc:
            await self._teardown("connect failed")
            raise MqttConnectError(self.where, f"cannot connect: {exc}") from None
        except BaseException:
            # refused (MqttError), or cancelled: the socket and paho's thread go either way
            await self._teardown("connect failed")
            raise
        logger.debug("connected to %s as %s", self.where, self.client_id)

    async def close(self) -> None:
        """Disconnect cleanly (a persistent session stays on the broker)."""
        client = self._client
        if client is None:
            return
        self._closing = True
        if client.is_connected():
            with contextlib.suppress(Exception):
                client.disconnect()
        await self._teardown("closed")

    async def _teardown(self, why: str) -> None:
        client, self._client = self._client, None
        if client is not None:
            # loop_stop joins paho's thread (which closes the socket): off the event loop and
            # bounded, so a wedged socket cannot hang shutdown; shielded, so a cancelled
            # caller still leaves no thread or socket behind.
            stopping = asyncio.ensure_future(asyncio.to_thread(_stop_client, client))
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.timeout):
                        await asyncio.shield(stopping)
            finally:
                self._lost(why)  # also when cancelled here: nobody waits on a dead link
        else:
            self._lost(why)

    # --- paho callbacks: network thread, hand off only ----------------------------------------

    def _post(self, fn: Any, *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closing during interpreter teardown
                loop.call_soon_threadsafe(fn, *args)

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        self._post(self._connack, reason.is_failure, str(reason))

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        self._post(self._lost, f"disconnected: {reason}")

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        message = Message(
            msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), msg.mid, self.number
        )
        self._post(self.messages.put_nowait, message)

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
    ) -> None:
        self._post(self._published, mid, reason.is_failure, str(reason))

    def _on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, reasons: list[ReasonCode], props: Any
    ) -> None:
        self._post(self._subscribed, mid, list(reasons))

    # --- loop side -------------------------------------------------------------------------------

    def _connack(self, failed: bool, reason: str) -> None:
        fut = self._connected
        if fut is None or fut.done():
            return
        if failed:
            fut.set_exception(MqttConnectError(self.where, f"broker refused: {reason}"))
        else:
            fut.set_result(None)

    def _lost(self, why: str) -> None:
        if self.closed is not None and self.closed.done():
            return
        if self._closing or why == "closed":
            logger.debug("disconnected from %s", self.where)
        elif self._connected is not None and self._connected.done():
            logger.warning("connection to %s lost: %s", self.where, why)
        error = MqttError(self.where, f"connection lost: {why}")
        for pub in self._publishes.values():
            if not pub.done():
                pub.set_exception(error)
        for sub in self._subscribes.values():
            if not sub.done():
                sub.set_exception(error)
        self._publishes.clear()
        self._subscribes.clear()
        if self._connected is not None and not self._connected.done():
            self._connected.set_exception(MqttConnectError(self.where, why))
            self._connected.exception()  # retrieved: a connect that timed out never awaits it
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(why)

    def _published(self, mid: int, failed: bool, reason: str) -> None:
        fut = self._publishes.pop(mid, None)
        if fut is None:
            self._acked_early.add(mid)  # PUBACK before the publisher registered (rare)
            return
        if fut.done():
            return
        if failed:
            fut.set_exception(MqttError(self.where, f"publish refused: {reason}"))
        else:
            fut.set_result(None)

    def _subscribed(self, mid: int, reasons: list[ReasonCode]) -> None:
        fut = self._subscribes.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(reasons)

    # --- operations ------------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._client is not None and self.closed is not None and not self.closed.done()

    def _require(self) -> paho.Client:
        client = self._client
        if client is None or not self.is_connected:
            raise MqttError(self.where, "not connected")
        return client

    async def subscribe(
        self, topics: Sequence[tuple[str, int]], *, wait_s: float | None = None
    ) -> None:
        """Subscribe and wait for the SUBACK; a refused topic raises :class:`MqttError`."""
        client = self._require()
        assert self._loop is not None
        result, mid = client.subscribe(list(topics))
        if result != paho.MQTT_ERR_SUCCESS or mid is None:
            raise MqttError(self.where, f"subscribe failed: {paho.error_string(result)}")
        fut: asyncio.Future[list[ReasonCode]] = self._loop.create_future()
        self._subscribes[mid] = fut
        try:
            async with asyncio.timeout(wait_s or self.timeout):
                reasons = await fut
        except TimeoutError:
            self._subscribes.pop(mid, None)
            raise MqttTimeout(self.where, "no SUBACK") from None
        refused = [t for (t, _), r in zip(topics, reasons, strict=False) if r.is_failure]
        if refused:
            raise MqttError(self.where, f"subscription refused for {', '.join(refused)}")

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        wait_s: float | None = None,
    ) -> None:
        """Publish; with QoS 1 return only once the broker's PUBACK arrived (bounded)."""
        client = self._require()
        assert self._loop is not None
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise MqttError(self.where, f"publish failed: {paho.error_string(info.rc)}")
        if qos == 0:
            return
        if info.mid in self._acked_early:
            self._acked_early.discard(info.mid)
            return
        fut: asyncio.Future[None] = self._loop.create_future()
        self._publishes[info.mid] = fut
        try:
            async with asyncio.timeout(wait_s or self.timeout):
                await fut
        except TimeoutError:
            self._publishes.pop(info.mid, None)
            raise MqttTimeout(self.where, f"no PUBACK for {topic}") from None

    def publish_nowait(self, topic: str, payload: bytes, *, qos: int = 1) -> None:
        """Hand a publish to paho without waiting for the PUBACK (paho resends it within the
        session). For messages whose loss is harmless because the other side repeats."""
        client = self._require()
        info = client.publish(topic, payload, qos=qos)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_QUEUE_SIZE):
            raise MqttError(self.where, f"publish failed: {paho.error_string(info.rc)}")

    def ack(self, message: Message) -> bool:
        """Acknowledge a QoS 1 message received under manual ack (after it is stored).

        False (nothing sent) for QoS 0, without manual ack, or for a message of an older
        connection: the broker redelivers those, and the receiver de-duplicates.
        """
        if not self.manual_ack or message.qos == 0 or message.link != self.number:
            return False
        client = self._require()
        rc = client.ack(message.mid, message.qos)
        if rc != paho.MQTT_ERR_SUCCESS:
            raise MqttError(self.where, f"ack failed: {paho.error_string(rc)}")
        return True

    async def next_message(self) -> Message:
        """The next message; raises :class:`MqttError` once the connection is gone."""
        if self.messages.qsize():
            return self.messages.get_nowait()
        closed = self.closed
        if closed is None:
            raise MqttError(self.where, "not connected")
        getter = asyncio.ensure_future(self.messages.get())
        waiting: set[asyncio.Future[Any]] = {getter, closed}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        raise MqttError(self.where, f"connection lost: {closed.result()}")

    async def iter_messages(self) -> AsyncIterator[Message]:
        while True:
            yield await self.next_message()

    async def wait_closed(self) -> str:
        """Wait until the connection is gone; returns why."""
        if self.closed is None:
            return "not connected"
        return await asyncio.shield(self.closed)


def _stop_client(client: paho.Client) -> None:
    """Stop paho's network thread and close its socket (paho leaves it open otherwise)."""
    client.loop_stop()
    sock = client.socket()
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()


def backoff_delays(ceiling: float, first: float = 0.5) -> Iterator[float]:
    """The reconnection loop's waits: ``first`` doubling up to ``ceiling`` (restart the
    iterator after a good connection)."""
    delay = min(first, ceiling)
    while True:
        yield delay
        delay = min(delay * 2, ceiling)


__all__ = [
    "Broker",
    "Message",
    "MqttConnectError",
    "MqttError",
    "MqttLink",
    "MqttTimeout",
    "backoff_delays",
]
