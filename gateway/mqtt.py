"""The paho-mqtt edge, bridged into asyncio the way aiomqtt does it (house-style.md anchor C).

* paho runs its network thread (``loop_start``); its callbacks (``CallbackAPIVersion.VERSION2``)
  only hand off to the event loop with ``loop.call_soon_threadsafe``: CONNACK, SUBACK and
  PUBACK resolve futures, messages go into an ``asyncio.Queue``.
* Every call is bounded by a timeout and raises :class:`MqttTimeout` when it runs out.
* No automatic reconnection inside a link (``reconnect_on_failure=False``): when the
  connection drops, the link fails every pending call and its message iterator raises
  :class:`MqttError`; the reconnection loop lives at the top of ``gateway.service``.
* Sessions are persistent (MQTT 3.1.1 ``clean_session=False`` with a stable client id), so
  QoS 1 acks and check-in commands sent while the gateway was offline are delivered when it
  returns. Station messages are received with *manual* acks: the gateway acknowledges a
  message to the broker only after it is in the outbox, so a crash makes the broker resend it.

This module also holds the gateway's topics and the heartbeat payload (the reading batches
and acks themselves are ``devices.wire``'s).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from gateway.config import BrokerConfig
from gateway.errors import MqttConnectError, MqttError, MqttTimeout

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Message:
    """One received message; ``mid`` is what :meth:`MqttLink.ack` needs under manual ack."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int


class MqttLink:
    """One connection to one broker. ``async with MqttLink(...) as link:``.

    ``manual_ack`` makes the link hold QoS 1 messages unacknowledged until :meth:`ack`.
    ``will`` is the last-will (topic, payload) the broker publishes, retained, if the gateway
    vanishes.
    """

    def __init__(
        self,
        broker: BrokerConfig,
        *,
        client_id: str,
        timeout: float = 10.0,
        clean_session: bool = False,
        manual_ack: bool = False,
        will: tuple[str, bytes] | None = None,
    ) -> None:
        self.broker = broker
        self.client_id = client_id
        self.timeout = timeout
        self.manual_ack = manual_ack
        self._clean_session = clean_session
        self._will = will
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._client: paho.Client | None = None
        self._connected: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] | None = None
        self._subscribes: dict[int, asyncio.Future[list[ReasonCode]]] = {}
        self._publishes: dict[int, asyncio.Future[None]] = {}
        self.messages: asyncio.Queue[Message] = asyncio.Queue()

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
                client.tls_set(
                    ca_certs=str(broker.ca_file) if broker.ca_file else None,
                    certfile=str(broker.cert_file) if broker.cert_file else None,
                    keyfile=str(broker.key_file) if broker.key_file else None,
                    cert_reqs=ssl.CERT_REQUIRED,
                )
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise MqttConnectError(self.where, f"TLS setup failed: {exc}") from None
        if self._will is not None:
            client.will_set(self._will[0], self._will[1], qos=1, retain=True)
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        return client

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._connected = loop.create_future()
        self._closed = loop.create_future()
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
            await self._teardown()
            raise MqttTimeout(self.where, f"no CONNACK within {self.timeout:.0f} s") from None
        except OSError as exc:
            await self._teardown()
            raise MqttConnectError(self.where, f"cannot connect: {exc}") from None
        except MqttError:
            await self._teardown()
            raise
        logger.info("connected to %s as %s", self.where, self.client_id)

    async def close(self) -> None:
        """Disconnect cleanly (the persistent session stays on the broker)."""
        client = self._client
        if client is None:
            return
        self._closing = True
        if client.is_connected():
            with contextlib.suppress(Exception):
                client.disconnect()
        await self._teardown()

    async def _teardown(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            # loop_stop joins paho's thread; bounded so a wedged socket cannot hang shutdown.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timeout):
                    await asyncio.to_thread(client.loop_stop)
        self._fail_pending(MqttError(self.where, "connection closed"))

    def _fail_pending(self, error: MqttError) -> None:
        for pub in self._publishes.values():
            if not pub.done():
                pub.set_exception(error)
        for sub in self._subscribes.values():
            if not sub.done():
                sub.set_exception(error)
        self._publishes.clear()
        self._subscribes.clear()
        if self._connected is not None and not self._connected.done():
            self._connected.set_exception(error)
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

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
        self._post(self._lost, str(reason))

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        message = Message(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), msg.mid)
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

    def _lost(self, reason: str) -> None:
        if self._closing:
            logger.debug("disconnected from %s", self.where)
        else:
            logger.warning("connection to %s lost: %s", self.where, reason)
        self._fail_pending(MqttError(self.where, f"connection lost: {reason}"))

    def _published(self, mid: int, failed: bool, reason: str) -> None:
        fut = self._publishes.pop(mid, None)
        if fut is None or fut.done():
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

    def _require(self) -> paho.Client:
        client = self._client
        if client is None or self._closed is None or self._closed.done():
            raise MqttError(self.where, "not connected")
        return client

    @property
    def is_connected(self) -> bool:
        return self._client is not None and self._closed is not None and not self._closed.done()

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
        """Publish; with QoS 1 return only once the broker's PUBACK arrived."""
        client = self._require()
        assert self._loop is not None
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise MqttError(self.where, f"publish failed: {paho.error_string(info.rc)}")
        if qos == 0:
            return
        fut: asyncio.Future[None] = self._loop.create_future()
        # The PUBACK callback is posted to this loop; it cannot run before we register here.
        self._publishes[info.mid] = fut
        try:
            async with asyncio.timeout(wait_s or self.timeout):
                await fut
        except TimeoutError:
            self._publishes.pop(info.mid, None)
            raise MqttTimeout(self.where, f"no PUBACK for {topic}") from None

    def ack(self, message: Message) -> None:
        """Acknowledge a QoS 1 message received under manual ack (after it is stored)."""
        if not self.manual_ack or message.qos == 0:
            return
        client = self._require()
        client.ack(message.mid, message.qos)

    async def next_message(self) -> Message:
        """The next message; raises :class:`MqttError` once the connection is gone."""
        if self.messages.qsize():
            return self.messages.get_nowait()
        closed = self._closed
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
        raise MqttError(self.where, "connection lost")

    async def iter_messages(self) -> AsyncIterator[Message]:
        while True:
            yield await self.next_message()

    async def wait_closed(self) -> None:
        if self._closed is not None:
            await asyncio.shield(self._closed)


# --- topics and the heartbeat ------------------------------------------------------------------


def gateway_topic(root: str, gateway_id: str, leaf: str) -> str:
    """``{root}/gw/{gateway_id}/{leaf}``: readings, ack, heartbeat, checkin."""
    return f"{root}/gw/{gateway_id}/{leaf}"


def heartbeat_payload(
    *,
    gateway_id: str,
    centre: str,
    at: datetime,
    status: str,
    queue_depth: int | None = None,
    oldest_unacked_at: datetime | None = None,
    devices_seen: int | None = None,
) -> bytes:
    """The heartbeat JSON (``status`` "online" | "offline"; the offline one is the will)."""
    body: dict[str, Any] = {
        "schema": 1,
        "type": "heartbeat",
        "gateway": gateway_id,
        "centre": centre,
        "at": at.isoformat(timespec="seconds"),
        "status": status,
    }
    if queue_depth is not None:
        body["queue_depth"] = queue_depth
    if oldest_unacked_at is not None:
        body["oldest_unacked_at"] = oldest_unacked_at.isoformat(timespec="seconds")
    if devices_seen is not None:
        body["devices_seen"] = devices_seen
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
