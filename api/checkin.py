"""Publishing station check-in commands to a gateway over MQTT (paho-mqtt 2.x).

``{root}/gw/{gateway_id}/checkin`` carries the check-in event of ``devices/station.py``
(``{"schema":1,"type":"checkin","station":...,"card":...,"at":...}``) plus ``"resident"`` and
``"session"`` (our check-in id), QoS 1. The gateway opens its binding session from it.

paho runs its own network thread and reconnects by itself; its callbacks only hand the
connection state to asyncio (``call_soon_threadsafe``). Every wait is bounded. With no broker
configured the publisher is inert: check-ins are still recorded and the station screen says
the gateway was not told.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import uuid
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from api.config import MqttTarget

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Delivery:
    delivered: bool
    note: str  # why not (Korean / English), or "" when delivered


def checkin_topic(topic_root: str, gateway_id: str) -> str:
    return f"{topic_root}/gw/{gateway_id}/checkin"


class CheckinPublisher:
    """A long-lived MQTT publisher owned by the app's lifespan."""

    def __init__(self, target: MqttTarget | None, topic_root: str, timeout_s: float) -> None:
        self._target = target
        self._root = topic_root
        self._timeout = timeout_s
        self._client: mqtt.Client | None = None
        self._connected = asyncio.Event()

    @property
    def configured(self) -> bool:
        return self._target is not None

    async def start(self) -> None:
        if self._target is None:
            return
        loop = asyncio.get_running_loop()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"daon-api-{uuid.uuid4().hex[:12]}"
        )
        if self._target.username:
            client.username_pw_set(self._target.username, self._target.password)
        if self._target.tls:
            client.tls_set_context(ssl.create_default_context())
        client.reconnect_delay_set(min_delay=1, max_delay=30)

        def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
            if not getattr(reason, "is_failure", False):
                loop.call_soon_threadsafe(self._connected.set)

        def on_disconnect(_c: Any, _u: Any, _f: Any, _r: Any, _p: Any = None) -> None:
            loop.call_soon_threadsafe(self._connected.clear)

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.connect_async(self._target.host, self._target.port, keepalive=30)
        client.loop_start()
        self._client = client
        try:
            async with asyncio.timeout(self._timeout):
                await self._connected.wait()
        except TimeoutError:
            logger.warning(
                "check-in broker %s not reachable yet; will keep trying", self._target.display()
            )

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        client.disconnect()
        await asyncio.wait_for(asyncio.to_thread(client.loop_stop), timeout=self._timeout)

    async def publish(self, gateway_id: str, event: dict[str, Any]) -> Delivery:
        """Publish ``event`` to the gateway with QoS 1 and wait for the broker's PUBACK."""
        if self._client is None:
            return Delivery(False, "브로커가 설정되지 않았습니다 / no MQTT broker configured")
        try:
            async with asyncio.timeout(self._timeout):
                await self._connected.wait()
        except TimeoutError:
            return Delivery(False, "브로커에 연결되지 않았습니다 / broker not connected")
        payload = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        info = self._client.publish(checkin_topic(self._root, gateway_id), payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return Delivery(False, f"전송 실패 / publish failed ({mqtt.error_string(info.rc)})")
        try:
            await asyncio.wait_for(
                asyncio.to_thread(info.wait_for_publish, self._timeout), self._timeout + 1
            )
        except (TimeoutError, RuntimeError, ValueError) as exc:
            return Delivery(False, f"전송 확인 안 됨 / not acknowledged ({type(exc).__name__})")
        if not info.is_published():
            return Delivery(False, "전송 확인 안 됨 / not acknowledged in time")
        return Delivery(True, "")
