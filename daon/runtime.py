"""Where services find the database and broker: configured URLs, else the demo's embedded ones.

The demo's embedded PostgreSQL and broker live under ``<state_dir>/pg`` and
``<state_dir>/mqtt`` on fixed ports, so ``daon status`` (or a second terminal running
``daon api``) finds the same data the demo wrote. Commands share them through
:func:`daon.embedded.shared`: whoever needs one starts it, the last one to leave stops it, and
read-only commands (``daon status``) neither start nor stop anything.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from urllib.parse import quote

from daon.brokerauth import API_USER, INGEST_USER, Accounts, BrokerAuth, acl_text
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


#: The demo broker's account for the simulated kiosks (it writes every demo station's topics).
DEMO_KIOSKS_USER = "daon-kiosks"


def demo_accounts(settings: Settings) -> Accounts:
    """The demo broker's accounts: a gateway per demo centre, ingest, the web app and the
    simulated kiosks. Generated once into ``<state_dir>/mqtt/accounts.json`` (mode 0600) and
    kept, so a second daon command finds the passwords of the running broker."""
    from simulators.demo_data import CENTRES

    path = settings.state_dir / "mqtt" / "accounts.json"
    users = [f"{c.id}-gw-1" for c in CENTRES] + [INGEST_USER, API_USER, DEMO_KIOSKS_USER]
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        stored = {}
    if not isinstance(stored, dict) or set(users) - set(stored):
        stored = {
            **Accounts.generate(users).passwords,
            **(stored if isinstance(stored, dict) else {}),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored))
        path.chmod(0o600)
    return Accounts({u: str(stored[u]) for u in users})


def demo_broker(settings: Settings) -> EmbeddedBroker:
    """The demo's broker, with the shipped ACL: each demo gateway holds to its own topics."""
    from simulators.demo_data import CENTRES

    accounts = demo_accounts(settings)
    acl = acl_text(
        settings.topic_root,
        gateways={f"{c.id}-gw-1": c.id for c in CENTRES},
        kiosks={DEMO_KIOSKS_USER: "+/+"},
    )
    return EmbeddedBroker(
        settings.state_dir / "mqtt",
        DEMO_MQTT_PORT,
        auth=BrokerAuth(accounts.password_file(), acl),
    )


def demo_account_url(settings: Settings, user: str) -> str:
    """The demo broker's URL logged in as ``user``."""
    password = demo_accounts(settings).passwords[user]
    return f"mqtt://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{DEMO_MQTT_PORT}"


def demo_broker_url(settings: Settings, user: str) -> str | None:
    """The demo's broker URL as ``user`` when it is running (never starts it), else None."""
    broker = demo_broker(settings)
    try:
        return demo_account_url(settings, user) if broker.running() else None
    except EmbeddedError:  # a stranger on the port: not the demo's broker
        return None


@contextmanager
def endpoints(
    settings: Settings, *, need_mqtt: bool, read_only: bool = False, account: str | None = None
) -> Iterator[Endpoints]:
    """Configured URLs, or the demo's embedded servers, shared with other daon commands.

    ``account``: the demo broker's account to log in as (its URL then carries it).

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
            mqtt_url = demo_account_url(settings, account) if account else broker.url
            embedded = True
        yield Endpoints(database_url=database_url, mqtt_url=mqtt_url, embedded=embedded)
