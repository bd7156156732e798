"""Ingest's paho-mqtt adapter, bridged into asyncio (house-style.md §3.2, aiomqtt's ideas).

- paho runs its network thread (``loop_start``); callbacks (``CallbackAPIVersion.VERSION2``)
  only hand off to the event loop (``loop.call_soon_threadsafe``).
- Persistent session (MQTT 3.1.1 ``clean_session=False``, a stable client id) and *manual*
  acknowledgement: a reading batch is acknowledged to the broker only after its database
  commit, so a crash or a database outage makes the broker deliver it again (and the broker's
  in-flight window holds back the rest meanwhile: nothing is lost, nothing piles up here).
- Every call is bounded by a timeout. No reconnection inside a link: when the connection
  drops, :attr:`MqttLink.closed` resolves and the service's top-level loop reconnects with a
  new link (messages of the old link are never acknowledged on the new one; the broker
  redelivers them and the store de-duplicates).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from ingest.config import IngestConfig
from ingest.errors import ConsumerError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Message:
    """One received message; ``link`` is the connection it arrived on (for the ack)."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    link: int


class MqttLink:
    """One connection: ``async with MqttLink(config) as link``; messages in :attr:`messages`."""

    _counter = 0

    def __init__(self, config: IngestConfig, *, client_id: str | None = None) -> None:
        self.config = config
        self.client_id = client_id or config.client_id
        MqttLink._counter += 1
        self.number = MqttLink._counter
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: paho.Client | None = None
        self._connected: asyncio.Future[None] | None = None
        self.closed: asyncio.Future[str] | None = None
        self._subscribes: dict[int, asyncio.Future[list[ReasonCode]]] = {}
        self._closing = False

    @property
    def where(self) -> str:
        return self.config.mqtt_display()

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
        config = self.config
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=False,
            protocol=MQTTProtocolVersion.MQTTv311,
            reconnect_on_failure=False,
            manual_ack=True,
        )
        if config.mqtt_username is not None:
            client.username_pw_set(config.mqtt_username, config.mqtt_password)
        if config.mqtt_tls:
            try:
                client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise ConsumerError(f"{self.where}: TLS setup failed: {exc}") from None
        client.max_inflight_messages_set(config.max_inflight)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._connected = loop.create_future()
        self.closed = loop.create_future()
        client = self._make_client()
        self._client = client
        timeout = self.config.connect_timeout_s
        try:
            async with asyncio.timeout(timeout):
                # connect() resolves the host and opens the TCP connection: blocking.
                await asyncio.to_thread(
                    client.connect, self.config.mqtt_host, self.config.mqtt_port, 30
                )
                client.loop_start()
                await self._connected
        except TimeoutError:
            await self._teardown("connect timed out")
            raise ConsumerError(f"{self.where}: no CONNACK within {timeout:.0f} s") from None
        except OSError as exc:
            await self._teardown("connect failed")
            raise ConsumerError(f"{self.where}: cannot connect: {exc}") from None
        except ConsumerError:
            await self._teardown("refused")
            raise
        logger.info("connected to %s as %s", self.where, self.client_id)

    async def close(self) -> None:
        """Disconnect (the persistent session and its unacknowledged messages stay)."""
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
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.connect_timeout_s):
                    await asyncio.to_thread(client.loop_stop)
        self._lost(why)

    # --- paho callbacks (network thread): hand off only -------------------------------------

    def _post(self, fn: Any, *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
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
        message = Message(msg.topic, bytes(msg.payload), msg.qos, msg.mid, self.number)
        self._post(self.messages.put_nowait, message)

    def _on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, reasons: list[ReasonCode], props: Any
    ) -> None:
        self._post(self._subscribed, mid, list(reasons))

    # --- loop side ---------------------------------------------------------------------------

    def _connack(self, failed: bool, reason: str) -> None:
        fut = self._connected
        if fut is None or fut.done():
            return
        if failed:
            fut.set_exception(ConsumerError(f"{self.where}: broker refused: {reason}"))
        else:
            fut.set_result(None)

    def _lost(self, why: str) -> None:
        if not self._closing and why not in ("closed",):
            logger.warning("connection to %s lost: %s", self.where, why)
        for fut in self._subscribes.values():
            if not fut.done():
                fut.set_exception(ConsumerError(f"{self.where}: {why}"))
        self._subscribes.clear()
        if self._connected is not None and not self._connected.done():
            self._connected.set_exception(ConsumerError(f"{self.where}: {why}"))
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(why)

    def _subscribed(self, mid: int, reasons: list[ReasonCode]) -> None:
        fut = self._subscribes.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(reasons)

    # --- operations --------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._client is not None and self.closed is not None and not self.closed.done()

    def _require(self) -> paho.Client:
        client = self._client
        if client is None or not self.is_connected:
            raise ConsumerError(f"{self.where}: not connected")
        return client

    async def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe and wait for the SUBACK (bounded)."""
        client = self._require()
        assert self._loop is not None
        result, mid = client.subscribe(topic, qos)
        if result != paho.MQTT_ERR_SUCCESS or mid is None:
            raise ConsumerError(f"{self.where}: subscribe failed: {paho.error_string(result)}")
        fut: asyncio.Future[list[ReasonCode]] = self._loop.create_future()
        self._subscribes[mid] = fut
        try:
            async with asyncio.timeout(self.config.connect_timeout_s):
                reasons = await fut
        except TimeoutError:
            self._subscribes.pop(mid, None)
            raise ConsumerError(f"{self.where}: no SUBACK for {topic}") from None
        if any(r.is_failure for r in reasons):
            raise ConsumerError(f"{self.where}: subscription to {topic} refused")

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Queue a publish (paho retries QoS 1 within the session; no wait for PUBACK).

        Used for the acknowledgements to gateways: one that is lost is harmless, because the
        gateway resends and the store de-duplicates.
        """
        client = self._require()
        info = client.publish(topic, payload, qos=qos)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_QUEUE_SIZE):
            raise ConsumerError(f"{self.where}: publish failed: {paho.error_string(info.rc)}")

    def ack(self, message: Message) -> bool:
        """Acknowledge a message to the broker; False when it came on an older connection."""
        if message.link != self.number or message.qos == 0:
            return False
        client = self._require()
        rc = client.ack(message.mid, message.qos)
        if rc != paho.MQTT_ERR_SUCCESS:
            raise ConsumerError(f"{self.where}: ack failed: {paho.error_string(rc)}")
        return True
