"""The running gateway with station (kiosk) devices on the real broker, and a stand-in acker.

Payloads follow docs/station-payload.md (devices/station.py); the check-in command adds
``resident`` as the system contract says the API's command does.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from daon.embedded import EmbeddedBroker, free_port
from devices.mqttlink import Broker, MqttLink
from devices.wire import WireReading, station_checkin_topic, station_topic
from gateway.config import DeviceConfig, GatewayConfig
from gateway.outbox import Outbox
from tests.fix_mqtt import preferred_broker
from tests.gateway.helpers import (
    STATION,
    Acker,
    eventually,
    make_config,
    publish,
    running,
    session_opened,
)

pytestmark = pytest.mark.mqtt

KIOSK = DeviceConfig(address=None, model="kiosk", id="yaksu-kiosk-1-bp", station=STATION)
CARDS = {"9410000000000001": "R0001234", "9410000000000002": "R0001235"}


def bp_payload(systolic: int, *, checkin: str | None = None, at: datetime | None = None) -> bytes:
    when = (at or datetime.now(UTC)).astimezone(UTC) + timedelta(hours=9)
    return json.dumps(
        {
            "schema": 1,
            "type": "measurement",
            "device_id": KIOSK.id,
            "station": STATION,
            "checkin": checkin,
            "device_time": when.replace(tzinfo=None).isoformat(timespec="seconds"),
            "measurements": [
                {
                    "type": "blood-pressure",
                    "values": [
                        {"code": "systolic", "value": systolic, "unit": "mm[Hg]"},
                        {"code": "diastolic", "value": 81, "unit": "mm[Hg]"},
                        {"code": "pulse", "value": 70, "unit": "/min"},
                    ],
                }
            ],
        }
    ).encode()


def _payload(reading: WireReading) -> Mapping[str, Any]:
    assert reading.payload is not None
    return reading.payload


def checkin_event(card: str) -> bytes:
    at = datetime.now(UTC).isoformat()
    return json.dumps(
        {"schema": 1, "type": "checkin", "station": STATION, "card": card, "at": at}
    ).encode()


async def test_checkins_bind_readings_and_acks_empty_the_outbox(
    tmp_path: Path, mqtt_url: str, topic_root: str
) -> None:
    config = make_config(
        tmp_path, central_url=mqtt_url, topic_root=topic_root, devices=[KIOSK], cards=CARDS
    )
    dev_topic = station_topic(topic_root, "yaksu", STATION, KIOSK.id)
    checkin_topic = station_checkin_topic(topic_root, "yaksu", STATION)
    async with Acker(mqtt_url, config) as acker, running(config):
        await publish(mqtt_url, dev_topic, bp_payload(118))  # nobody checked in yet
        await acker.wait_for(1)
        await publish(mqtt_url, checkin_topic, checkin_event("9410000000000001"))
        await publish(mqtt_url, dev_topic, bp_payload(131))
        await acker.wait_for(2)
        await publish(mqtt_url, checkin_topic, checkin_event("9410000000000002"))  # back to back
        await publish(mqtt_url, dev_topic, bp_payload(142))
        await acker.wait_for(3)
        # a kiosk that reads the card itself puts it into the message
        await publish(mqtt_url, dev_topic, bp_payload(125, checkin="9410000000000001"))
        readings = await acker.wait_for(4)
        by_systolic = {_payload(r)["measurements"][0]["values"][0]["value"]: r for r in readings}
        assert by_systolic[118].binding is None
        assert by_systolic[131].binding is not None
        assert by_systolic[131].binding.resident == "R0001234"
        assert by_systolic[142].binding is not None
        assert by_systolic[142].binding.resident == "R0001235"
        assert by_systolic[125].binding is not None
        assert by_systolic[125].binding.method == "check-in"
        await eventually(lambda: _depth_zero(config))


async def _depth(config: GatewayConfig) -> int:
    async with Outbox(config.outbox, readonly=True) as box:
        status = await box.status()
    return status.queued


async def test_bad_messages_are_dead_lettered_and_the_loop_goes_on(
    tmp_path: Path, mqtt_url: str, topic_root: str
) -> None:
    config = make_config(
        tmp_path, central_url=mqtt_url, topic_root=topic_root, devices=[KIOSK], cards=CARDS
    )
    dev_topic = station_topic(topic_root, "yaksu", STATION, KIOSK.id)
    bad = [
        b"\xff\xfe not json",
        b'{"schema": 1, "type": "measurement", "device_id": "yaksu-kiosk-1-bp",'
        b' "measurements": []}',
        b'{"schema": 9, "type": "measurement"}',
        bp_payload(999),  # implausible systolic
    ]
    async with Acker(mqtt_url, config) as acker, running(config):
        for payload in bad:
            await publish(mqtt_url, dev_topic, payload)
        await publish(mqtt_url, dev_topic, bp_payload(120))
        readings = await acker.wait_for(5)
    dead = [r for r in readings if r.decoded and "dead_letter" in r.decoded]
    assert len(dead) == 4
    assert all(r.binding is None for r in dead)
    reasons = [str((r.decoded or {})["dead_letter"]) for r in dead]
    assert any("implausible systolic 999" in reason for reason in reasons)
    assert any(r.payload and r.payload.get("raw_hex") == bad[0].hex() for r in dead)
    good = [r for r in readings if r not in dead]
    assert len(good) == 1
    async with Outbox(config.outbox, readonly=True) as box:
        letters = await box.dead_letters()
    assert len(letters) == 4
    assert {d.raw_hex for d in letters} >= {bad[0].hex(), bad[1].hex()}
    assert all(d.reason for d in letters)


async def test_api_checkin_command_with_resident(
    tmp_path: Path, mqtt_url: str, topic_root: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.service")
    config = make_config(tmp_path, central_url=mqtt_url, topic_root=topic_root, devices=[KIOSK])
    command = json.dumps(
        {
            "schema": 1,
            "type": "checkin",
            "station": STATION,
            "resident": "R0009999",
            "at": datetime.now(UTC).isoformat(),
        }
    ).encode()
    async with Acker(mqtt_url, config) as acker, running(config):
        await publish(mqtt_url, f"{topic_root}/gw/{config.gateway_id}/checkin", command)
        # the command travels the central link, the reading the local one: wait for the session
        await eventually(session_opened(caplog))
        await publish(
            mqtt_url, station_topic(topic_root, "yaksu", STATION, KIOSK.id), bp_payload(127)
        )
        (reading,) = await acker.wait_for(1)
    assert reading.binding is not None
    assert (reading.binding.resident, reading.binding.method) == ("R0009999", "staff")
    assert reading.binding.session is not None


@pytest.mark.slow
async def test_central_broker_down_readings_buffer_and_all_arrive(
    tmp_path: Path, mqtt_url: str, topic_root: str, private_broker: EmbeddedBroker
) -> None:
    """'Minutes' of outage compressed into seconds: the station side keeps storing."""
    config = make_config(
        tmp_path,
        central_url=private_broker.url,
        local_url=mqtt_url,
        topic_root=topic_root,
        devices=[KIOSK],
        cards=CARDS,
    )
    dev_topic = station_topic(topic_root, "yaksu", STATION, KIOSK.id)
    async with running(config) as task:
        async with Acker(private_broker.url, config) as acker:
            await publish(mqtt_url, dev_topic, bp_payload(100))
            await acker.wait_for(1)
        private_broker.stop()
        for systolic in range(101, 131):
            await publish(mqtt_url, dev_topic, bp_payload(systolic))
        await eventually(lambda: _stored(config, 30), within=15)
        assert not task.done()
        private_broker.start()
        async with Acker(private_broker.url, config) as acker:
            readings = await acker.wait_for(30, within=30)
        systolics = sorted(_payload(r)["measurements"][0]["values"][0]["value"] for r in readings)
        assert systolics[-30:] == list(range(101, 131))
        await eventually(lambda: _depth_zero(config), within=15)


async def _stored(config: GatewayConfig, n: int) -> bool:
    async with Outbox(config.outbox, readonly=True) as box:
        status = await box.status()
    return status.queued >= n


async def _depth_zero(config: GatewayConfig) -> bool:
    return await _depth(config) == 0


async def test_heartbeat_is_retained_and_a_clean_stop_says_offline(
    tmp_path: Path, mqtt_url: str, topic_root: str
) -> None:
    config = make_config(tmp_path, central_url=mqtt_url, topic_root=topic_root)
    topic = f"{topic_root}/gw/{config.gateway_id}/heartbeat"
    async with running(config):
        pass
    # A clean stop publishes "offline" (retained); a crash leaves the same as the will.
    async with MqttLink(
        Broker.parse(mqtt_url), client_id=f"hb-{config.gateway_id}", timeout=5
    ) as link:
        await link.subscribe([(topic, 1)])
        async with asyncio.timeout(5):
            message = await link.next_message()
        await link.publish(topic, b"", retain=True)  # clear the retained message
    beat = json.loads(message.payload)
    assert message.retain
    assert (beat["gateway"], beat["centre"], beat["status"]) == (
        config.gateway_id,
        "yaksu",
        "offline",
    )


async def test_heartbeat_while_running_reports_the_queue(
    tmp_path: Path, mqtt_url: str, topic_root: str
) -> None:
    config = make_config(tmp_path, central_url=mqtt_url, topic_root=topic_root)
    topic = f"{topic_root}/gw/{config.gateway_id}/heartbeat"
    async with (
        running(config),
        MqttLink(Broker.parse(mqtt_url), client_id=f"hb2-{config.gateway_id}", timeout=5) as link,
    ):
        await link.subscribe([(topic, 1)])
        async with asyncio.timeout(5):
            message = await link.next_message()
    beat = json.loads(message.payload)
    assert beat["status"] == "online"
    assert beat["queue_depth"] == 0


async def test_central_cluster_node_lost_the_gateway_moves_to_the_next(
    tmp_path: Path, mqtt_url: str, topic_root: str, private_broker: EmbeddedBroker
) -> None:
    """``[gateway.central] url`` lists a cluster's nodes; when the one in use dies the gateway
    forwards through the next, and every reading arrives (two real brokers stand for nodes)."""
    second = EmbeddedBroker(tmp_path / "second", free_port(), prefer=preferred_broker())
    second.start()
    try:
        config = make_config(
            tmp_path,
            central_url=f"{private_broker.url},{second.url}",
            local_url=mqtt_url,
            topic_root=topic_root,
            devices=[KIOSK],
            cards=CARDS,
        )
        assert config.central.broker(1).port == second.port
        dev_topic = station_topic(topic_root, "yaksu", STATION, KIOSK.id)
        async with running(config) as task:
            async with Acker(private_broker.url, config) as acker:
                await publish(mqtt_url, dev_topic, bp_payload(100))
                await acker.wait_for(1)
            async with Acker(second.url, config) as acker:
                private_broker.stop()  # the node in use dies; the next one is up
                for systolic in range(101, 111):
                    await publish(mqtt_url, dev_topic, bp_payload(systolic))
                readings = await acker.wait_for(10, within=30)
            assert not task.done()
        systolics = sorted(_payload(r)["measurements"][0]["values"][0]["value"] for r in readings)
        assert systolics[-10:] == list(range(101, 111))
    finally:
        second.stop()
