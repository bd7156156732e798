"""The consumer against a real Mosquitto and a real PostgreSQL.

Acknowledgements only after the commit, duplicate floods, poison messages, a worker stopped
mid-batch, broker and database outages, two workers sharing the load: every reading ends up
stored exactly once, queued or dead-lettered, and the consumer keeps going.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from daon.embedded import EmbeddedBroker
from ingest import store
from ingest.config import IngestConfig
from ingest.consumer import Consumer
from ingest.service import run
from tests.ingest import payloads as p
from tests.ingest import world

pytestmark = [pytest.mark.db, pytest.mark.mqtt]


class Gateway:
    """A gateway's MQTT side: publishes batches and collects ingest's acknowledgements."""

    def __init__(self, mqtt_url: str, root: str, gateway: str = world.GATEWAY) -> None:
        parts = urlsplit(mqtt_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 1883
        self.root = root
        self.gateway = gateway
        self.acked: dict[str, float] = {}
        self.changed = threading.Condition()
        self.client = self._connect()

    def _connect(self) -> paho.Client:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"gw-{uuid.uuid4().hex[:8]}")
        client.on_message = self._on_ack
        client.on_connect = lambda c, *_: c.subscribe(f"{self.root}/gw/+/ack", qos=1)
        client.connect(self.host, self.port)
        client.loop_start()
        return client

    def _on_ack(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        now = time.monotonic()
        with self.changed:
            for reading_id in json.loads(msg.payload)["ids"]:
                self.acked.setdefault(reading_id, now)
            self.changed.notify_all()

    def publish(self, payload: bytes, gateway: str | None = None) -> None:
        topic = f"{self.root}/gw/{gateway or self.gateway}/readings"
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=10)

    def wait_acked(self, ids: list[str], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not set(ids) <= self.acked.keys():
                left = deadline - time.monotonic()
                assert left > 0, f"not acknowledged: {sorted(set(ids) - self.acked.keys())[:5]}"
                self.changed.wait(left)

    def publish_until_acked(
        self, payload: bytes, ids: list[str], every: float = 2.0, timeout: float = 60
    ) -> None:
        """The gateway outbox's rule: resend what ingest has not acknowledged."""
        deadline = time.monotonic() + timeout
        while True:
            self.publish(payload)
            try:
                self.wait_acked(ids, min(every, max(deadline - time.monotonic(), 0.01)))
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def ids_of(readings: list[dict[str, Any]]) -> list[str]:
    return [str(r["id"]) for r in readings]


async def count(url: str, sql: str = "SELECT count(*) FROM observation") -> int:
    async with store.connection(url) as conn:
        row = await (await conn.execute(sql.encode())).fetchone()
    return int(row[0]) if row else 0


async def until(predicate: Any, wait_s: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + wait_s
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def config_for(db_url: str, mqtt_url: str, root: str, **kw: Any) -> IngestConfig:
    parts = urlsplit(mqtt_url)
    base = IngestConfig(
        database_url=db_url,
        mqtt_host=parts.hostname or "127.0.0.1",
        mqtt_port=parts.port or 1883,
        topic_root=root,
        client_id=f"ingest-{uuid.uuid4().hex[:8]}",
        batch_max_wait_s=0.05,
        retry_max_s=1.0,
        connect_timeout_s=3.0,
    )
    return replace(base, **kw)


@asynccontextmanager
async def running(config: IngestConfig) -> AsyncIterator[Consumer]:
    stop = asyncio.Event()
    ready: asyncio.Future[Consumer] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run(config, stop=stop, consumer_ready=ready))
    try:
        consumer = await asyncio.wait_for(ready, 30)
        await asyncio.wait_for(consumer.subscribed.wait(), 30)
        yield consumer
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@pytest.fixture
def gateway(mqtt_url: str, topic_root: str) -> Any:
    gw = Gateway(mqtt_url, topic_root)
    yield gw
    gw.close()


async def test_readings_are_committed_before_they_are_acknowledged(
    db_url: str, mqtt_url: str, topic_root: str, gateway: Gateway
) -> None:
    await world.seed(db_url)
    readings = world.memory(20)
    seen_at_ack: list[int] = []

    async with running(config_for(db_url, mqtt_url, topic_root)) as consumer:
        gateway.publish(p.batch(readings[:10]))
        gateway.publish(p.batch(readings[10:]))
        await asyncio.to_thread(gateway.wait_acked, ids_of(readings))
        seen_at_ack.append(await count(db_url))
        assert consumer.stats.acked == 2
    assert seen_at_ack == [40]  # every acknowledged reading was already in the table


async def test_nothing_is_acknowledged_while_the_commit_cannot_happen(
    db_url: str, mqtt_url: str, topic_root: str, gateway: Gateway
) -> None:
    await world.seed(db_url)
    readings = world.memory(5)
    async with running(config_for(db_url, mqtt_url, topic_root)):
        blocker = await psycopg.AsyncConnection.connect(db_url)
        await blocker.execute("LOCK TABLE observation_identity IN ACCESS EXCLUSIVE MODE")
        gateway.publish(p.batch(readings))
        await asyncio.sleep(1.5)
        assert gateway.acked == {}
        await blocker.rollback()
        await blocker.close()
        await asyncio.to_thread(gateway.wait_acked, ids_of(readings))
    assert await count(db_url) == 10


async def test_a_duplicate_flood_is_stored_once_and_counted(
    db_url: str, mqtt_url: str, topic_root: str, gateway: Gateway
) -> None:
    await world.seed(db_url)
    readings = world.memory(5)
    payload = p.batch(readings)
    async with running(config_for(db_url, mqtt_url, topic_root)) as consumer:
        for _ in range(100):
            gateway.publish(payload)
        await asyncio.to_thread(gateway.wait_acked, ids_of(readings))
        await until(lambda: _messages(db_url, 100), what="100 messages counted")
        assert consumer.stats.duplicates == 99 * 5
    assert await count(db_url) == 10
    assert await count(db_url, "SELECT duplicate FROM gateway_counter") == 99 * 5


async def _messages(url: str, expected: int) -> bool:
    return await count(url, "SELECT coalesce(sum(messages), 0) FROM gateway_counter") >= expected


async def test_poison_messages_are_dead_lettered_and_the_consumer_goes_on(
    db_url: str, mqtt_url: str, topic_root: str, gateway: Gateway
) -> None:
    await world.seed(db_url)
    good = world.memory(3)
    bad_device = [
        p.reading("bad-device", [(p.BPM, p.bp(world.measured(9)))], device="EE:EE:EE:EE:EE:EE")
    ]
    async with running(config_for(db_url, mqtt_url, topic_root)):
        gateway.publish(b"\x00\x01 not json at all")
        gateway.publish(b'{"schema": 42, "gateway": "yaksu-gw-1", "readings": []}')
        gateway.publish(p.batch(good, gateway="ghost-gw"), gateway="ghost-gw")
        gateway.publish(p.batch(bad_device))
        gateway.publish(p.batch(good))
        await asyncio.to_thread(gateway.wait_acked, [*ids_of(good), "bad-device"])
        await until(lambda: _messages(db_url, 4), what="messages counted")
    assert await count(db_url) == 6
    async with store.connection(db_url) as conn:
        reasons = sorted(
            r[0] for r in await (await conn.execute("SELECT reason FROM dead_letter")).fetchall()
        )
    assert reasons == ["malformed_json", "unknown_device", "unknown_gateway", "unknown_schema"]


async def test_a_worker_stopped_mid_batch_loses_nothing(
    db_url: str, mqtt_url: str, topic_root: str, gateway: Gateway
) -> None:
    await world.seed(db_url)
    readings = world.memory(30)
    config = config_for(db_url, mqtt_url, topic_root)
    # hold the writer inside its transaction, then cut the worker off there
    blocker = await psycopg.AsyncConnection.connect(db_url)
    await blocker.execute("LOCK TABLE observation_identity IN ACCESS EXCLUSIVE MODE")
    stop = asyncio.Event()
    ready: asyncio.Future[Consumer] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run(config, stop=stop, consumer_ready=ready))
    consumer = await asyncio.wait_for(ready, 30)
    await asyncio.wait_for(consumer.subscribed.wait(), 30)
    for chunk in (readings[:10], readings[10:20], readings[20:]):
        gateway.publish(p.batch(chunk))
    await asyncio.sleep(1.0)
    task.cancel()  # the worker dies with a batch received, transformed, half-written
    with pytest.raises(asyncio.CancelledError):
        await task
    await blocker.rollback()
    await blocker.close()
    assert await count(db_url) == 0
    assert gateway.acked == {}
    # the same worker identity comes back: the broker redelivers what was never acknowledged
    async with running(config):
        await asyncio.to_thread(gateway.wait_acked, ids_of(readings))
    assert await count(db_url) == 60
    assert await count(db_url, "SELECT count(DISTINCT identifier) FROM observation") == 60


@pytest.mark.slow
async def test_a_broker_restart_pauses_and_resumes(
    db_url: str, private_broker: EmbeddedBroker, topic_root: str
) -> None:
    await world.seed(db_url)
    config = config_for(db_url, private_broker.url, topic_root)
    first, second = world.memory(5, prefix="a"), world.memory(5, start=5, prefix="b")
    async with running(config) as consumer:
        gateway = Gateway(private_broker.url, topic_root)
        gateway.publish(p.batch(first))
        await asyncio.to_thread(gateway.wait_acked, ids_of(first))
        gateway.close()
        private_broker.stop()
        await until(lambda: _not(consumer.subscribed), what="the consumer noticing")
        private_broker.start()
        gateway = Gateway(private_broker.url, topic_root)
        # The gateway resends whatever ingest has not acknowledged, so the reading arrives
        # once whatever the broker kept (tests/ingest/test_broker_restart.py: no resend).
        await asyncio.to_thread(gateway.publish_until_acked, p.batch(second), ids_of(second))
        gateway.close()
    assert await count(db_url) == 20


async def _not(event: asyncio.Event) -> bool:
    return not event.is_set()


@pytest.mark.slow
async def test_a_database_outage_pauses_and_resumes_within_a_second_of_its_end(
    db_url: str, pg_server_url: str, mqtt_url: str, topic_root: str, gateway: Gateway
) -> None:
    """8 s without the database: psycopg_pool's own reconnection would try again at about
    1, 3, 7 and 15 s (doubling), 7 s after the database is back (measured before ingest had
    its own retry: 7.7 s); ingest's bounded, jittered retry (``db_retry_max_s`` 1 s) writes
    within about a second of it."""
    await world.seed(db_url)
    name = urlsplit(db_url).path.lstrip("/")
    readings = world.memory(10)
    admin = await psycopg.AsyncConnection.connect(pg_server_url, autocommit=True)
    try:
        async with running(config_for(db_url, mqtt_url, topic_root)) as consumer:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'.encode())
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            gateway.publish(p.batch(readings))
            await asyncio.sleep(8.0)
            assert gateway.acked == {}
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'.encode())
            back = time.monotonic()
            await asyncio.to_thread(gateway.wait_acked, ids_of(readings), 60)
            resumed_s = time.monotonic() - back
            assert consumer.stats.reconnects >= 1
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'.encode())
        await admin.close()
    assert await count(db_url) == 20
    assert resumed_s < 4.0, f"acknowledged {resumed_s:.1f} s after the database came back"


async def test_two_workers_share_the_gateways_load(
    db_url: str, mqtt_url: str, topic_root: str, gateway: Gateway
) -> None:
    await world.seed(db_url)
    readings = world.memory(40)
    one = config_for(db_url, mqtt_url, topic_root, share_group="ingest")
    two = replace(one, client_id=f"{one.client_id}-b")
    async with running(one) as first, running(two) as second:
        for i in range(0, 40, 2):
            gateway.publish(p.batch(readings[i : i + 2]))
        await asyncio.to_thread(gateway.wait_acked, ids_of(readings))
        shares = (first.stats.messages, second.stats.messages)
    assert sum(shares) == 20
    assert min(shares) > 0
    assert await count(db_url) == 80


async def test_a_message_the_database_refuses_is_dead_lettered_alone(
    db_url: str, mqtt_url: str, topic_root: str, gateway: Gateway
) -> None:
    await world.seed(db_url)
    good = world.memory(3)
    # a station id with NUL: jsonb cannot hold \u0000, so the whole batch's COPY fails
    poison = [p.reading("nul", [(p.BPM, p.bp(world.measured(9)))], station="st\u0000ation")]
    config = config_for(db_url, mqtt_url, topic_root, batch_max_wait_s=0.5)
    async with running(config):
        gateway.publish(p.batch(poison))
        gateway.publish(p.batch(good))
        await asyncio.to_thread(gateway.wait_acked, [*ids_of(good), "nul"])
    assert await count(db_url) == 6
    async with store.connection(db_url) as conn:
        letters = await (
            await conn.execute(
                "SELECT reason, error_class, position('nul' in convert_from(raw, 'UTF8')) > 0 "
                "FROM dead_letter"
            )
        ).fetchall()
    assert letters == [("internal_error", "UntranslatableCharacter", True)]
