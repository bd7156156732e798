"""The ingest configuration: URLs, the [ingest] table, and what it refuses."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ingest.config import ConfigError, config_from


def test_urls_and_table_make_the_config() -> None:
    config = config_from(
        "postgresql://db/daon",
        "mqtts://ingest:s%40cret@broker.example:8883",
        topic_root="junggu",
        table={"client_id": "daon-ingest-2", "batch_max_readings": 2000},
    )
    assert (config.mqtt_host, config.mqtt_port, config.mqtt_tls) == ("broker.example", 8883, True)
    assert (config.mqtt_username, config.mqtt_password) == ("ingest", "s@cret")
    assert config.client_id == "daon-ingest-2"
    assert config.batch_max_readings == 2000
    assert config.subscription == "junggu/gw/+/readings"  # one worker: kept over restarts
    assert config.mqtt_client_id == "daon-ingest-2@junggu"
    shared = replace(config, share_group="ingest")
    assert shared.subscription == "$share/ingest/junggu/gw/+/readings"
    assert config.ack_topic("yaksu-gw-1") == "junggu/gw/yaksu-gw-1/ack"
    assert "s@cret" not in repr(config)
    assert "s@cret" not in config.mqtt_display()


@pytest.mark.parametrize(
    ("mqtt_url", "table", "message"),
    [
        ("http://broker", {}, "mqtt://host:1883"),
        ("mqtt://broker", {"bacth_max_readings": 10}, "unknown [ingest] setting"),
        ("mqtt://broker", {"database_url": "x"}, "unknown [ingest] setting"),
        ("mqtt://broker", {"batch_max_messages": 100}, "below max_inflight"),
        ("mqtt://broker", {"batch_max_wait_s": 0}, "batch_max_wait_s must be positive"),
    ],
)
def test_bad_settings_name_the_key(mqtt_url: str, table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("+", r"\+")):
        config_from("postgresql://db/daon", mqtt_url, table=table)


def test_a_broker_cluster_is_listed_node_by_node_and_tried_in_turn() -> None:
    config = config_from(
        "postgresql://x@db/daon",
        "mqtt://ingest:secret@10.0.0.1:1883, mqtt://10.0.0.2:1884,mqtt://10.0.0.3",
    )
    brokers = [config.broker(attempt) for attempt in range(4)]
    assert [(b.host, b.port) for b in brokers] == [
        ("10.0.0.1", 1883),
        ("10.0.0.2", 1884),
        ("10.0.0.3", 1883),
        ("10.0.0.1", 1883),
    ]
    # credentials come from the first URL and go to every node
    assert {(b.username, b.password) for b in brokers} == {("ingest", "secret")}
    with pytest.raises(ConfigError, match="ftp://nope"):
        config_from("postgresql://x@db/daon", "mqtt://a:1883,ftp://nope")


def test_an_empty_share_group_is_a_plain_subscription() -> None:
    """What a broker without $share (NATS, RabbitMQ 3.x MQTT) needs; tests/ha write it so."""
    plain = config_from(
        "postgresql://x@db/daon", "mqtt://a", topic_root="jg", table={"share_group": ""}
    )
    assert plain.subscription == "jg/gw/+/readings"
