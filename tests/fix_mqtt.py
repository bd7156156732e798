"""Real MQTT broker for tests.

Broker, in order: ``DAON_TEST_MQTT_URL``, else Mosquitto answering on 127.0.0.1:1883, else a
private Mosquitto started with the demo's embedded mechanism. Tests share the broker and
isolate themselves with a topic root of their own (``topic_root``). Tests that stop and
restart the broker, or need the queue settings Daon ships, use ``private_broker``.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from daon.embedded import EmbeddedBroker, find_mosquitto, free_port, port_open


@pytest.fixture(scope="session")
def mqtt_url() -> Iterator[str]:
    configured = os.environ.get("DAON_TEST_MQTT_URL")
    if configured:
        yield configured
        return
    if port_open("127.0.0.1", 1883):
        yield "mqtt://127.0.0.1:1883"
        return
    broker = EmbeddedBroker(Path(tempfile.mkdtemp(prefix="daon-test-mqtt-")), free_port())
    broker.start()
    try:
        yield broker.url
    finally:
        broker.stop()


@pytest.fixture
def topic_root() -> str:
    """A topic root no other test uses."""
    return f"daon-test/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A Mosquitto of this test's own (shipped config), which the test may stop and restart."""
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    broker = EmbeddedBroker(tmp_path / "broker", free_port())
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
