"""Publishing station check-in commands to a gateway over MQTT (``devices.mqttlink``).

``{root}/gw/{gateway_id}/checkin`` carries the check-in event of ``devices/station.py``
(``{"schema":1,"type":"checkin","station":...,"card":...,"at":...}``) plus ``"resident"`` and
``"session"`` (our check-in id), QoS 1. The gateway opens its binding session from it.

The publisher keeps one link to the broker, remade by a reconnection loop with backoff when it
drops (the adapter itself never reconnects). Every wait is bounded. With no broker configured
the publisher is inert: check-ins are still recorded and the station screen says the gateway
was not told.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from api.config import MqttTarget
from devices.mqttlink import Broker, MqttError, MqttLink, backoff_delays

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
        self._link: MqttLink | None = None
        self._up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def configured(self) -> bool:
        return self._target is not None

    async def start(self) -> None:
        """Start the connection loop; wait (bounded) for the first connection."""
        if self._target is None:
            return
        self._task = asyncio.create_task(self._keep_connected(self._target), name="checkin-mqtt")
        try:
            async with asyncio.timeout(self._timeout):
                await self._up.wait()
        except TimeoutError:
            logger.warning(
                "check-in broker %s not reachable yet; will keep trying", self._target.display()
            )

    async def _keep_connected(self, target: MqttTarget) -> None:
        broker = Broker(
            host=target.host,
            port=target.port,
            tls=target.tls,
            username=target.username,
            password=target.password,
        )
        delays = backoff_delays(30.0, first=1.0)
        while True:
            link = MqttLink(
                broker,
                client_id=f"daon-api-{uuid.uuid4().hex[:12]}",
                timeout=self._timeout,
                clean_session=True,
            )
            try:
                async with link:
                    self._link = link
                    self._up.set()
                    delays = backoff_delays(30.0, first=1.0)
                    why = await link.wait_closed()
                    logger.warning("check-in broker %s: %s", broker.display(), why)
            except MqttError as exc:
                logger.debug("check-in broker: %s", exc)
            finally:
                self._up.clear()
                self._link = None
            await asyncio.sleep(next(delays))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def publish(self, gateway_id: str, event: dict[str, Any]) -> Delivery:
        """Publish ``event`` to the gateway with QoS 1 and wait for the broker's PUBACK."""
        if self._task is None:
            return Delivery(False, "브로커가 설정되지 않았습니다 / no MQTT broker configured")
        try:
            async with asyncio.timeout(self._timeout):
                await self._up.wait()
        except TimeoutError:
            return Delivery(False, "브로커에 연결되지 않았습니다 / broker not connected")
        link = self._link
        if link is None:
            return Delivery(False, "브로커에 연결되지 않았습니다 / broker not connected")
        payload = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            await link.publish(checkin_topic(self._root, gateway_id), payload, qos=1)
        except MqttError as exc:
            return Delivery(False, f"전송 확인 안 됨 / not acknowledged ({exc.reason})")
        return Delivery(True, "")
