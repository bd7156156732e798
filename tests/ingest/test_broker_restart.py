"""A broker restart mid-stream loses no reading the broker acknowledged (issue 12.3).

The publisher here has no end-to-end resend (unlike the gateway's outbox): a reading counts as
sent once the broker's PUBACK arrived, and a reading whose publish failed is not tried again.
So every reading the broker acknowledged must be stored, including those published in the
second after the restart, before ingest is connected again. That holds only if ingest's
subscription survives the restart in the broker: a persistent session (``clean_session``
False, a stable client id, QoS 1) with a plain subscription, in a broker with persistence
(the shipped ``daon/resources/mosquitto.conf``). Mosquitto 2.0 does not restore *shared*
subscriptions from its persistence file, which lost 25 of 3,000 readings in a 30-second
outage when ingest subscribed through ``$share``.

Each reading carries its number in its gateway receive time, so the test compares the exact
sets (acknowledged by the broker vs stored), not counts.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daon.embedded import EmbeddedBroker, free_port
from devices.mqttlink import Broker, MqttError, MqttLink
from ingest import store
from tests.fix_mqtt import preferred_broker
from tests.ingest import payloads as p
from tests.ingest import world
from tests.ingest.test_consumer import config_for, running

pytestmark = [pytest.mark.db, pytest.mark.mqtt, pytest.mark.slow]

#: Reading n was received by the gateway at BASE + n ms (an hour ago, so never in the future).
BASE = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)


def device_time(number: int) -> datetime:
    """The cuff's wall clock (naive, Korea) for reading n: one second apart, before BASE."""
    return (BASE - timedelta(seconds=20_000 - number)).astimezone(p.KST).replace(tzinfo=None)


def reading(number: int) -> dict[str, object]:
    return p.reading(
        f"restart-{number}",
        [(p.BPM, p.bp(device_time(number), status=None))],
        device=world.BP_CUFF,
        received_at=BASE + timedelta(milliseconds=number),
    )


async def publish_stream(
    url: str, topic: str, acked: set[int], stop: asyncio.Event, rate: float = 200.0
) -> None:
    """Publish numbered readings, one per message, until ``stop``; reconnect at once when the
    broker goes away and carry on with the next number (no resend)."""
    numbers = itertools.count()
    while not stop.is_set():
        link = MqttLink(
            Broker.parse(url),
            client_id=f"pub-{uuid.uuid4().hex[:8]}",
            clean_session=True,
            timeout=2,
        )
        try:
            async with link:
                while not stop.is_set():
                    number = next(numbers)
                    await link.publish(topic, p.batch([reading(number)]), qos=1)
                    acked.add(number)
                    await asyncio.sleep(1.0 / rate)
        except MqttError:
            await asyncio.sleep(0.02)


async def stored_numbers(db_url: str) -> set[int]:
    async with store.connection(db_url) as conn:
        rows = await (await conn.execute("SELECT DISTINCT received_at FROM observation")).fetchall()
    return {round((row[0] - BASE).total_seconds() * 1000) for row in rows}


async def test_a_broker_restart_mid_stream_loses_no_acknowledged_reading(
    db_url: str, tmp_path: Path, topic_root: str
) -> None:
    await world.seed(db_url)
    # Mosquitto with the shipped configuration, else Daon's fallback broker: both keep the
    # persistent sessions and their queues across a restart (DAON_TEST_BROKER chooses).
    broker = EmbeddedBroker(tmp_path / "broker", free_port(), prefer=preferred_broker())
    broker.start()
    try:
        config = config_for(db_url, broker.url, topic_root)
        topic = f"{topic_root}/gw/{world.GATEWAY}/readings"
        acked: set[int] = set()
        stop = asyncio.Event()
        async with running(config):
            publisher = asyncio.create_task(publish_stream(broker.url, topic, acked, stop))
            await _until(lambda: len(acked) >= 300)
            broker.stop()  # a restart: sessions and queues are saved on the way down
            await asyncio.sleep(1.0)
            broker.start()
            before = len(acked)
            await _until(lambda: len(acked) >= before + 400)
            stop.set()
            await publisher
            deadline = time.monotonic() + 60
            while not acked <= (stored := await stored_numbers(db_url)):
                assert time.monotonic() < deadline, f"{len(acked - stored)} readings lost"
                await asyncio.sleep(0.2)
    finally:
        broker.stop()
    assert acked - stored == set()
    assert len(acked) >= 700


async def _until(predicate: object, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)
