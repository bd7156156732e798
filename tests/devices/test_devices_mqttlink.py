"""The one MQTT adapter (devices.mqttlink) against the real broker.

PUBACK-bounded publish, manual acks, lost links.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from daon.embedded import EmbeddedBroker, free_port
from devices.mqttlink import Broker, MqttConnectError, MqttError, MqttLink

pytestmark = pytest.mark.mqtt


def broker(url: str) -> Broker:
    return Broker.parse(url)


def cid(name: str) -> str:
    return f"t-{name}-{uuid.uuid4().hex[:8]}"


async def test_publish_waits_for_the_puback_and_the_message_arrives(
    mqtt_url: str, topic_root: str
) -> None:
    async with (
        MqttLink(broker(mqtt_url), client_id=cid("sub"), timeout=5) as sub,
        MqttLink(broker(mqtt_url), client_id=cid("pub"), timeout=5) as pub,
    ):
        await sub.subscribe([(f"{topic_root}/x", 1)])
        await pub.publish(f"{topic_root}/x", b"hello", qos=1)
        async with asyncio.timeout(5):
            message = await sub.next_message()
        assert (message.topic, message.payload, message.qos) == (f"{topic_root}/x", b"hello", 1)


async def test_unacked_message_is_redelivered_to_the_persistent_session(
    mqtt_url: str, topic_root: str
) -> None:
    """Manual ack: a message not yet stored (not acked) comes back after a crash/reconnect."""
    client_id = cid("manual")
    topic = f"{topic_root}/station"
    async with MqttLink(broker(mqtt_url), client_id=client_id, manual_ack=True, timeout=5) as link:
        await link.subscribe([(topic, 1)])
        async with MqttLink(broker(mqtt_url), client_id=cid("p"), timeout=5) as pub:
            await pub.publish(topic, b"reading-1")
        async with asyncio.timeout(5):
            first = await link.next_message()
        assert first.payload == b"reading-1"
        # no link.ack(first): the gateway "crashed" before the outbox write
    async with MqttLink(broker(mqtt_url), client_id=client_id, manual_ack=True, timeout=5) as link:
        async with asyncio.timeout(5):
            again = await link.next_message()
        assert again.payload == b"reading-1"
        link.ack(again)
    async with MqttLink(broker(mqtt_url), client_id=client_id, manual_ack=True, timeout=5) as link:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await link.next_message()
    async with MqttLink(broker(mqtt_url), client_id=client_id, clean_session=True, timeout=5):
        pass  # drop the session from the shared broker


async def test_broker_going_away_fails_the_iterator_and_publishes(
    private_broker: EmbeddedBroker,
) -> None:
    link = MqttLink(broker(private_broker.url), client_id=cid("lost"), timeout=2)
    await link.connect()
    try:
        waiter = asyncio.create_task(link.next_message())
        await asyncio.sleep(0.1)
        private_broker.stop()
        with pytest.raises(MqttError, match="connection lost"):
            async with asyncio.timeout(10):
                await waiter
        with pytest.raises(MqttError):
            await link.publish("x/y", b"z")
        assert not link.is_connected
    finally:
        await link.close()


async def test_nothing_listening_is_a_connect_error() -> None:
    link = MqttLink(Broker(host="127.0.0.1", port=free_port()), client_id=cid("none"), timeout=3)
    with pytest.raises(MqttConnectError, match="cannot connect"):
        await link.connect()


async def test_password_file_is_read_when_connecting(tmp_path: Path, mqtt_url: str) -> None:
    secret = tmp_path / "pw"
    secret.write_text("anything\n")
    base = broker(mqtt_url)
    cfg = Broker(host=base.host, port=base.port, username="gw", password_file=secret)
    async with MqttLink(cfg, client_id=cid("pw"), timeout=5) as link:  # broker allows anonymous
        assert link.is_connected
    missing = Broker(host=base.host, port=base.port, username="gw", password_file=tmp_path / "no")
    with pytest.raises(MqttConnectError, match="password file"):
        await MqttLink(missing, client_id=cid("pw2"), timeout=5).connect()
