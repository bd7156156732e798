"""Test harness: fixture plugins in psycopg's style (tests/fix_*.py)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from daon.embedded import find_mosquitto, port_open
from simulators.bluez import find_dbus_daemon

pytest_plugins = ("tests.fix_db", "tests.fix_mqtt")

# Generation speed and run time depend on how busy the machine is (a fresh clone with an
# empty example database, eight workers on two cores): they are not properties of the code.
settings.register_profile("daon", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("daon")


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say once which servers the tests use, and how to get what is missing."""
    from tests.fix_db import local_server_refusal  # after pytest_plugins registered them
    from tests.fix_mqtt import preferred_broker

    lines = []
    if os.environ.get("DAON_TEST_DATABASE_URL"):
        lines.append("PostgreSQL: DAON_TEST_DATABASE_URL")
    elif (refusal := local_server_refusal()) is None:
        lines.append("PostgreSQL: 127.0.0.1:5432 (user postgres)")
    else:
        lines.append(
            f"PostgreSQL: a private server per worker, because {refusal}; "
            "set DAON_TEST_DATABASE_URL to use a server of yours"
        )
    if os.environ.get("DAON_TEST_MQTT_URL"):
        lines.append("MQTT: DAON_TEST_MQTT_URL")
    elif preferred_broker() is None and port_open("127.0.0.1", 1883):
        lines.append("MQTT: the broker on 127.0.0.1:1883")
    elif find_mosquitto() is not None and preferred_broker() != "fallback":
        lines.append("MQTT: a private Mosquitto per worker")
    else:
        lines.append(
            "MQTT: Daon's fallback broker per worker (daon/broker_fallback.py); "
            "for Mosquitto: apt-get install mosquitto, as root"
        )
    if find_dbus_daemon() is None:
        lines.append("BLE tests skipped: no dbus-daemon (apt-get install dbus-daemon, as root)")
    return lines
