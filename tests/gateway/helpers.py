"""Test-side tools for the gateway: a config builder, a running gateway, and a stand-in acker.

The acker plays ingest's part of the protocol (decode each batch with ``devices.wire``, answer
on the ack topic) for tests that stop at the broker; the end-to-end tests with the database
use the real ingest consumer instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from devices.mqttlink import Broker, MqttLink
from devices.wire import WireReading, ack_topic, decode_batch, encode_ack
from gateway.config import (
    BleConfig,
    DeviceConfig,
    GatewayConfig,
    OutboxConfig,
    StationConfig,
    parse_broker_url,
)
from gateway.service import run

STATION = "yaksu-station-1"


def make_config(
    tmp_path: Path,
    *,
    central_url: str,
    topic_root: str,
    local_url: str | None = None,
    devices: Sequence[DeviceConfig] = (),
    stations: Sequence[str] = (STATION,),
    cards: dict[str, str] | None = None,
    gateway_id: str | None = None,
    ble: BleConfig | None = None,
    **overrides: Any,
) -> GatewayConfig:
    gw = gateway_id or f"gw-{uuid.uuid4().hex[:8]}"
    central = replace(parse_broker_url(central_url, "central"), client_id=f"{gw}-central")
    local = None
    if local_url is not None:
        local = replace(parse_broker_url(local_url, "local"), client_id=f"{gw}-local")
    outbox = OutboxConfig(
        path=tmp_path / f"{gw}.sqlite3",
        resend_after_s=overrides.pop("resend_after_s", 30.0),
        batch_size=overrides.pop("batch_size", 500),
    )
    return GatewayConfig(
        centre="yaksu",
        gateway_id=gw,
        topic_root=topic_root,
        central=central,
        local=local,
        outbox=outbox,
        stations=tuple(StationConfig(s) for s in stations),
        devices=tuple(devices),
        cards=cards or {},
        ble=ble or BleConfig(enabled=False),
        **{"mqtt_timeout_s": 3.0, "reconnect_max_s": 0.5, "heartbeat_s": 5.0, **overrides},
    )


@contextlib.asynccontextmanager
async def running(config: GatewayConfig) -> AsyncIterator[asyncio.Task[None]]:
    """The gateway running in this loop; stopped cleanly at the end."""
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(run(config, stop=stop, ready=ready))
    try:
        async with asyncio.timeout(15):
            await ready.wait()
        yield task
    finally:
        stop.set()
        async with asyncio.timeout(20):
            await task


class Acker:
    """Subscribes to a gateway's readings, keeps every reading, and acks them unless paused."""

    def __init__(self, url: str, config: GatewayConfig, *, ack: bool = True) -> None:
        self.url = url
        self.config = config
        self.ack = ack
        self.readings: list[WireReading] = []
        self.batches = 0
        self.arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def __aenter__(self) -> Acker:
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._run(ready))
        async with asyncio.timeout(10):
            await ready.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self, ready: asyncio.Event) -> None:
        cfg = self.config
        topic = f"{cfg.topic_root}/gw/{cfg.gateway_id}/readings"
        while not self._stop.is_set():
            link = MqttLink(
                Broker.parse(self.url),
                client_id=f"acker-{cfg.gateway_id}",
                timeout=3,
            )
            try:
                async with link:
                    await link.subscribe([(topic, 1)])
                    ready.set()
                    async for message in link.iter_messages():
                        batch = decode_batch(message.payload)
                        self.batches += 1
                        if self.ack:
                            await link.publish(
                                ack_topic(cfg.topic_root, cfg.gateway_id),
                                encode_ack(cfg.gateway_id, [r.id for r in batch.readings]),
                            )
                        self.readings.extend(batch.readings)
                        self.arrived.set()
            except Exception:  # the broker may be down on purpose: retry
                await asyncio.sleep(0.2)

    def ids(self) -> set[str]:
        return {r.id for r in self.readings}

    async def wait_for(self, count: int, within: float = 20.0) -> list[WireReading]:
        """Wait until ``count`` distinct readings arrived."""
        async with asyncio.timeout(within):
            while len(self.ids()) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.readings


async def publish(url: str, topic: str, payload: bytes) -> None:
    async with MqttLink(
        Broker.parse(url), client_id=f"pub-{uuid.uuid4().hex[:8]}", timeout=5
    ) as link:
        await link.publish(topic, payload, qos=1)


async def eventually(check: Any, within: float = 10.0, every: float = 0.05) -> None:
    """Poll an async or sync predicate until it holds."""
    async with asyncio.timeout(within):
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(every)


def session_opened(caplog: pytest.LogCaptureFixture, station: str = STATION) -> Callable[[], bool]:
    """A predicate for :func:`eventually`: the gateway has opened a check-in session at
    ``station`` (it logs each one). Call ``caplog.set_level(logging.INFO, "gateway.service")``
    before the gateway starts."""

    def opened() -> bool:
        return any(
            r.name == "gateway.service"
            and r.levelno == logging.INFO
            and r.getMessage().startswith("session ")
            and f" opened at {station} " in r.getMessage()
            for r in caplog.records
        )

    return opened
