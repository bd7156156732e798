"""The brokers Daon starts, held to the same tests: Mosquitto and Daon's fallback broker.

What Daon relies on (MQTT 3.1.1, the spec's §4.3 and §4.4 QoS 1 and session rules): QoS 1
messages for an offline persistent session are kept and delivered on its return;
unacknowledged ones come again after an abrupt drop; a shared subscription gives each message
to exactly one member; sessions and queues survive a broker restart; retained messages reach
new subscribers; garbage from one client does not hurt the others.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from daon.embedded import EmbeddedBroker, EmbeddedError, find_mosquitto, free_port

pytestmark = pytest.mark.mqtt


@pytest.fixture(params=["mosquitto", "fallback"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EmbeddedBroker]:
    if request.param == "mosquitto" and find_mosquitto() is None:
        pytest.skip("Mosquitto is not installed (apt-get install mosquitto, as root)")
    server = EmbeddedBroker(tmp_path / "broker", free_port(), prefer=request.param)
    try:
        server.start()
    except EmbeddedError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


class Client:
    """A paho client that records what it receives (threads: paho's network loop)."""

    def __init__(
        self, port: int, client_id: str, *, clean: bool = False, manual_ack: bool = False
    ) -> None:
        self.received: list[bytes] = []
        self.session_present: bool | None = None
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self.manual_ack = manual_ack
        self.paho = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean,
            protocol=MQTTProtocolVersion.MQTTv311,
            manual_ack=manual_ack,
        )
        self.paho.on_connect = self._on_connect
        self.paho.on_message = self._on_message
        self.paho.connect("127.0.0.1", port, keepalive=30)
        self.paho.loop_start()
        assert self._connected.wait(10), "no CONNACK"

    def _on_connect(self, client: mqtt.Client, userdata: object, flags, rc, props) -> None:  # type: ignore[no-untyped-def]
        self.session_present = bool(flags.session_present)
        self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: object, message) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            self.received.append(message.payload)

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.paho.on_subscribe = lambda *args: done.set()
        self.paho.subscribe(topic, qos=1)
        assert done.wait(10), "no SUBACK"

    def publish(self, topic: str, payloads: list[bytes], *, retain: bool = False) -> None:
        for payload in payloads:
            self.paho.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def wait_for(self, count: int, within: float = 20.0) -> list[bytes]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()

    def drop(self) -> None:
        """Vanish without DISCONNECT, like a crashed worker."""
        self.paho.loop_stop()
        sock = self.paho.socket()
        if sock is not None:
            sock.close()


def _topic() -> str:
    return f"daon-test/{uuid.uuid4().hex[:8]}/gw/yaksu-gw-1/readings"


def _payloads(n: int, tag: str = "m") -> list[bytes]:
    return [f"{tag}{i}".encode() for i in range(n)]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_an_offline_persistent_session_gets_every_qos1_message(broker: EmbeddedBroker) -> None:
    topic, ingest = _topic(), _name("ingest")
    sub = Client(broker.port, ingest)
    sub.subscribe(topic)
    sub.close()
    pub = Client(broker.port, _name("gw"), clean=True)
    pub.publish(topic, _payloads(500))
    pub.close()
    back = Client(broker.port, ingest)
    try:
        assert back.session_present is True
        got = back.wait_for(500)
        assert sorted(got) == sorted(_payloads(500))
    finally:
        back.close()


def test_unacknowledged_messages_come_again_after_an_abrupt_drop(broker: EmbeddedBroker) -> None:
    topic, ingest = _topic(), _name("ingest")
    worker = Client(broker.port, ingest, manual_ack=True)
    worker.subscribe(f"$share/ingest/{topic}")
    pub = Client(broker.port, _name("gw"), clean=True)
    pub.publish(topic, _payloads(30))
    assert len(worker.wait_for(30)) == 30  # received, never acknowledged
    worker.drop()
    again = Client(broker.port, ingest)
    try:
        assert set(again.wait_for(30)) == set(_payloads(30))
    finally:
        again.close()
        pub.close()


def test_a_shared_subscription_gives_each_message_to_one_member(broker: EmbeddedBroker) -> None:
    topic = _topic()
    members = [Client(broker.port, _name("ingest")) for _ in range(2)]
    for member in members:
        member.subscribe(f"$share/ingest/{topic}")
    pub = Client(broker.port, _name("gw"), clean=True)
    pub.publish(topic, _payloads(200))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and sum(len(m.received) for m in members) < 200:
        time.sleep(0.05)
    first, second = (list(m.received) for m in members)
    try:
        assert sorted(first + second) == sorted(_payloads(200)), "lost or duplicated"
        assert first, "one member got nothing"
        assert second, "one member got nothing"
    finally:
        for member in members:
            member.close()
        pub.close()


def test_sessions_and_queued_messages_survive_a_broker_restart(broker: EmbeddedBroker) -> None:
    topic, ingest = _topic(), _name("ingest")
    sub = Client(broker.port, ingest)
    sub.subscribe(topic)
    sub.close()
    pub = Client(broker.port, _name("gw"), clean=True)
    pub.publish(topic, _payloads(100))
    pub.close()
    broker.stop()
    broker.start()
    back = Client(broker.port, ingest)
    try:
        assert back.session_present is True
        assert sorted(back.wait_for(100)) == sorted(_payloads(100))
    finally:
        back.close()


def test_a_retained_message_reaches_a_new_subscriber(broker: EmbeddedBroker) -> None:
    topic = _topic()
    pub = Client(broker.port, _name("api"), clean=True)
    pub.publish(topic, [b"checked-in R0001234"], retain=True)
    late = Client(broker.port, _name("gw"), clean=True)
    try:
        late.subscribe(topic)
        assert late.wait_for(1) == [b"checked-in R0001234"]
    finally:
        late.close()
        pub.publish(topic, [b""], retain=True)  # clear it
        pub.close()


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00" * 64,  # not a packet at all
        b"\x10\xff\xff\xff\xff\x7f",  # a remaining length beyond the limit
        b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x99",  # a client id longer than the packet
        b"\x30\x05\x00\x01#ab",  # PUBLISH before CONNECT, with a wildcard topic
    ],
)
def test_garbage_from_one_client_does_not_hurt_the_others(
    broker: EmbeddedBroker, garbage: bytes
) -> None:
    topic = _topic()
    sub = Client(broker.port, _name("ingest"))
    sub.subscribe(topic)
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as rogue:
        rogue.sendall(garbage)
        rogue.settimeout(5)
        try:
            while rogue.recv(1024):
                pass  # the broker answers (CONNACK refusal) or just closes
        except (TimeoutError, ConnectionError):
            pass
    pub = Client(broker.port, _name("gw"), clean=True)
    try:
        pub.publish(topic, [b"still here"])
        assert sub.wait_for(1) == [b"still here"]
    finally:
        pub.close()
        sub.close()
