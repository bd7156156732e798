"""Real MQTT broker for tests.

Broker, in order: ``DAON_TEST_MQTT_URL``, else a broker answering on 127.0.0.1:1883, else a
private broker started with the demo's embedded mechanism: Mosquitto when installed, else
Daon's fallback broker (daon/broker_fallback.py). ``DAON_TEST_BROKER=fallback`` runs the tests
against the fallback even where Mosquitto is installed (the same tests hold for both). Tests
share the broker and isolate themselves with a topic root of their own (``topic_root``).
Tests that stop and restart the broker, or need the queue settings Daon ships, use
``private_broker``; private brokers' folders are removed at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from daon.embedded import EmbeddedBroker, EmbeddedError, free_port, port_open


def preferred_broker() -> str | None:
    """``DAON_TEST_BROKER`` (mosquitto | fallback), else None: Mosquitto when installed."""
    choice = os.environ.get("DAON_TEST_BROKER") or None
    if choice not in (None, "mosquitto", "fallback"):
        raise pytest.UsageError("DAON_TEST_BROKER must be mosquitto or fallback")
    return choice


def _start(folder: Path) -> EmbeddedBroker:
    broker = EmbeddedBroker(folder, free_port(), prefer=preferred_broker())
    try:
        broker.start()
    except EmbeddedError as exc:
        pytest.skip(f"no MQTT broker for this test: {exc}")
    return broker


@pytest.fixture(scope="session")
def mqtt_url() -> Iterator[str]:
    configured = os.environ.get("DAON_TEST_MQTT_URL")
    if configured:
        yield configured
        return
    if preferred_broker() is None and port_open("127.0.0.1", 1883):
        yield "mqtt://127.0.0.1:1883"
        return
    folder = Path(tempfile.mkdtemp(prefix="daon-test-mqtt-"))
    try:
        broker = _start(folder)
        try:
            yield broker.url
        finally:
            broker.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def topic_root() -> str:
    """A topic root no other test uses."""
    return f"daon-test/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of this test's own (shipped config), which the test may stop and restart."""
    broker = _start(tmp_path / "broker")
    try:
        yield broker
    finally:
        broker.stop()
