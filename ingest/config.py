"""The ingest service's configuration, built by ``daon ingest`` / ``daon demo`` from the settings.

Never built at import time. The ``[ingest]`` table of the TOML file may set any field below
except the URLs (those come from ``DAON_DATABASE_URL`` / ``DAON_MQTT_URL``), for example::

    [ingest]
    client_id = "daon-ingest-2"      # one per worker process; stable across restarts
    batch_max_readings = 5000
    batch_max_wait_s = 0.05

Subscription: one worker (the default) takes ``{root}/gw/+/readings`` on a persistent session
(MQTT 3.1.1 ``clean_session=False``, QoS 1, a stable client id). The broker keeps that
subscription and queues what arrives for it across its own restart, so a reading published
in the second after a broker restart, before ingest is back, still reaches ingest. Several
workers set the same ``share_group`` (and distinct client ids) and take
``$share/{group}/{root}/gw/+/readings`` instead, each message to one of them. Mosquitto 2.0
does not restore shared subscriptions from its persistence file (measured with 2.0.11, MQTT
3.1.1 and 5.0 with a session expiry alike): with a share group, what is published after a
broker restart and before the workers subscribe again is dropped by the broker, and only a
publisher that resends until ingest acknowledges (the gateway's outbox) still gets it in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import unquote, urlsplit

from devices.mqttlink import Broker
from ingest.errors import ConfigError
from ingest.fhir import DEFAULT_POLICY, Policy

__all__ = ["ConfigError", "IngestConfig", "config_from"]


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """Everything the consumer needs. Passwords are never shown (``repr=False``)."""

    database_url: str = field(repr=False)
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_tls: bool = False
    mqtt_username: str | None = None
    mqtt_password: str | None = field(default=None, repr=False)
    topic_root: str = "daon"
    client_id: str = "daon-ingest-1"
    share_group: str | None = None  # several workers: the group sharing the readings
    # Further nodes of a broker cluster (host, port), tried in turn after the first fails.
    mqtt_more_nodes: tuple[tuple[str, int], ...] = ()
    # Batching: a batch is written in one transaction when it holds this many readings or
    # messages, or when its first message has waited this long.
    batch_max_readings: int = 5000
    batch_max_messages: int = 40  # below the broker's in-flight window (max_inflight below)
    batch_max_wait_s: float = 0.05
    max_inflight: int = 100  # the shipped mosquitto.conf's max_inflight_messages
    connect_timeout_s: float = 10.0
    write_timeout_s: float = 60.0  # one batch transaction
    retry_max_s: float = 30.0  # backoff ceiling for broker outages
    # Backoff ceiling (jittered) while the database is unreachable: after a leader fails over,
    # ingest writes to the promoted standby at most this long after its promotion.
    db_retry_max_s: float = 1.0
    registry_refresh_s: float = 30.0
    maintenance_s: float = 600.0  # partitions ahead of time, daily summaries (stock PG)
    policy: Policy = DEFAULT_POLICY

    @property
    def subscription(self) -> str:
        """A plain subscription (kept across broker restarts), or the share group's."""
        readings = f"{self.topic_root}/gw/+/readings"
        return f"$share/{self.share_group}/{readings}" if self.share_group else readings

    @property
    def mqtt_client_id(self) -> str:
        """The persistent session's client id: the worker's id, made unique per topic root
        so two systems sharing a broker never take over each other's session."""
        if "@" in self.client_id:
            return self.client_id
        return f"{self.client_id}@{self.topic_root.replace('/', '.')}"

    def ack_topic(self, gateway_id: str) -> str:
        return f"{self.topic_root}/gw/{gateway_id}/ack"

    def mqtt_display(self) -> str:
        return self.broker().display()

    def broker(self, attempt: int = 0) -> Broker:
        """Where to connect, for the MQTT adapter (``devices.mqttlink``): with a cluster's
        nodes listed, attempt ``n`` goes to node ``n`` modulo their number."""
        nodes = ((self.mqtt_host, self.mqtt_port), *self.mqtt_more_nodes)
        host, port = nodes[attempt % len(nodes)]
        return Broker(
            host=host,
            port=port,
            tls=self.mqtt_tls,
            username=self.mqtt_username,
            password=self.mqtt_password,
        )

    def __post_init__(self) -> None:
        if self.batch_max_messages >= self.max_inflight:
            raise ConfigError(
                "batch_max_messages must stay below max_inflight (the broker stops sending "
                "when that many messages wait for their acknowledgement)"
            )
        for name in ("batch_max_readings", "batch_max_messages", "max_inflight"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ingest.{name} must be at least 1")
        for name in (
            "batch_max_wait_s",
            "connect_timeout_s",
            "write_timeout_s",
            "retry_max_s",
            "db_retry_max_s",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"ingest.{name} must be positive")


_SETTABLE = frozenset(
    f.name
    for f in fields(IngestConfig)
    if f.name
    not in (
        "database_url",
        "mqtt_host",
        "mqtt_port",
        "mqtt_tls",
        "mqtt_username",
        "mqtt_password",
        "mqtt_more_nodes",
        "topic_root",
        "policy",
    )
)


def config_from(
    database_url: str,
    mqtt_url: str,
    *,
    topic_root: str = "daon",
    table: Mapping[str, Any] | None = None,
) -> IngestConfig:
    """Build the config from the URLs and the ``[ingest]`` table; unknown keys are errors.

    ``mqtt_url`` may list the nodes of a broker cluster, comma-separated
    (``mqtt://user:pw@a:1883,mqtt://b:1883``); credentials and TLS come from the first."""
    first, *more = [u.strip() for u in mqtt_url.split(",") if u.strip()] or [mqtt_url]
    more_nodes = []
    for url in more:
        node = urlsplit(url)
        if node.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not node.hostname:
            raise ConfigError(f"MQTT URL {url!r} must look like mqtt://host:1883")
        more_nodes.append(
            (node.hostname, node.port or (8883 if node.scheme in ("mqtts", "ssl") else 1883))
        )
    mqtt_url = first
    parts = urlsplit(mqtt_url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
        raise ConfigError(f"MQTT URL {mqtt_url!r} must look like mqtt://host:1883")
    tls = parts.scheme in ("mqtts", "ssl")
    config = IngestConfig(
        database_url=database_url,
        mqtt_host=parts.hostname,
        mqtt_port=parts.port or (8883 if tls else 1883),
        mqtt_tls=tls,
        mqtt_username=unquote(parts.username) if parts.username else None,
        mqtt_password=unquote(parts.password) if parts.password else None,
        topic_root=topic_root,
        mqtt_more_nodes=tuple(more_nodes),
    )
    overrides = dict(table or {})
    unknown = sorted(set(overrides) - _SETTABLE)
    if unknown:
        raise ConfigError(f"unknown [ingest] setting(s): {', '.join(unknown)}")
    try:
        return replace(config, **overrides)
    except TypeError as exc:
        raise ConfigError(f"[ingest]: {exc}") from None
