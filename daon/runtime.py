"""Where services find the database and broker: configured URLs, else the demo's embedded ones.

The demo's embedded PostgreSQL and broker live under ``<state_dir>/pg`` and
``<state_dir>/mqtt`` on fixed ports, so ``daon status`` (or a second terminal running
``daon api``) finds the same data the demo wrote. Commands share them through
:func:`daon.embedded.shared`: whoever needs one starts it, the last one to leave stops it, and
read-only commands (``daon status``) neither start nor stop anything.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from daon.embedded import EmbeddedBroker, EmbeddedError, EmbeddedPostgres, shared
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


def demo_broker_url(settings: Settings) -> str | None:
    """The demo's broker URL when it is running (never starts it), else None."""
    broker = demo_broker(settings)
    try:
        return broker.url if broker.running() else None
    except EmbeddedError:  # a stranger on the port: not the demo's broker
        return None


@contextmanager
def endpoints(
    settings: Settings, *, need_mqtt: bool, read_only: bool = False
) -> Iterator[Endpoints]:
    """Configured URLs, or the demo's embedded servers, shared with other daon commands.

    ``read_only`` commands use the embedded servers only when they already run (an
    :class:`~daon.embedded.EmbeddedError` says how to start them otherwise).
    """
    with ExitStack() as stack:
        embedded = False
        database_url = settings.database_url
        if not database_url:
            pg = demo_postgres(settings)
            stack.enter_context(shared(pg, may_start=not read_only))
            database_url = pg.url
            embedded = True
        mqtt_url = settings.mqtt_url
        if need_mqtt and not mqtt_url:
            broker = demo_broker(settings)
            stack.enter_context(shared(broker, may_start=not read_only))
            mqtt_url = broker.url
            embedded = True
        yield Endpoints(database_url=database_url, mqtt_url=mqtt_url, embedded=embedded)
