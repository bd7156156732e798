"""Where services find the database and broker: configured URLs, else the demo's embedded ones.

The demo's embedded PostgreSQL and Mosquitto live under ``<state_dir>/pg`` and
``<state_dir>/mqtt`` on fixed ports, so ``daon status`` (or a second terminal running
``daon api``) finds the same data the demo wrote.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from daon.embedded import EmbeddedBroker, EmbeddedPostgres, port_open
from daon.settings import Settings

logger = logging.getLogger(__name__)

DEMO_PG_PORT = 54329
DEMO_MQTT_PORT = 18830


@dataclass(frozen=True, slots=True)
class Endpoints:
    database_url: str
    mqtt_url: str | None
    embedded: bool


def demo_postgres(settings: Settings) -> EmbeddedPostgres:
    return EmbeddedPostgres(settings.state_dir / "pg", DEMO_PG_PORT)


def demo_broker(settings: Settings) -> EmbeddedBroker:
    return EmbeddedBroker(settings.state_dir / "mqtt", DEMO_MQTT_PORT)


@contextmanager
def endpoints(settings: Settings, *, need_mqtt: bool) -> Iterator[Endpoints]:
    """Configured URLs, or the demo's embedded servers (started if needed, stopped after)."""
    with ExitStack() as stack:
        embedded = False
        database_url = settings.database_url
        if not database_url:
            pg = demo_postgres(settings)
            pg.start()
            stack.callback(pg.stop)
            database_url = pg.url
            embedded = True
        mqtt_url = settings.mqtt_url
        if need_mqtt and not mqtt_url:
            broker = demo_broker(settings)
            if port_open("127.0.0.1", DEMO_MQTT_PORT):
                mqtt_url = broker.url  # the demo's broker is already up
            else:
                broker.start()
                stack.callback(broker.stop)
                mqtt_url = broker.url
            embedded = True
        yield Endpoints(database_url=database_url, mqtt_url=mqtt_url, embedded=embedded)
