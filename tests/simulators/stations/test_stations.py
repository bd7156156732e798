"""The MQTT kiosk simulator: valid station payloads, check-ins, and malformed messages on demand.

The judge of every payload is ``devices.station`` (parse_station_payload / parse_station_event),
the contract the gateway validates against; the broker tests use the real Mosquitto.
"""

from __future__ import annotations

import asyncio
import queue
import socket
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from daon.cli import main
from devices.errors import StationPayloadError
from devices.mqttlink import Broker
from devices.station import (
    encode_station_event,
    parse_station_event,
    parse_station_payload,
)
from devices.wire import parse_station_topic
from simulators.demo_data import STATIONS, DemoWorld, demo_world
from simulators.stations import (
    CHECKIN_MALFORMATIONS,
    MEASUREMENT_MALFORMATIONS,
    BrokerUnavailable,
    Malformation,
    Outgoing,
    VisitPlanner,
    malform,
    run_station,
    run_stations,
)

KST = timezone(timedelta(hours=9))
AT = datetime(2026, 3, 4, 9, 30, tzinfo=KST)


@pytest.fixture(scope="module")
def world() -> DemoWorld:
    return demo_world()


def _planner(world: DemoWorld, *, seed: int = 1, malformed_every: int = 0) -> VisitPlanner:
    station = STATIONS[0]
    return VisitPlanner(
        station,
        world.residents_of(station.centre),
        world.population.residents,
        root="daon",
        seed=seed,
        malformed_every=malformed_every,
    )


def _assert_valid(message: Outgoing) -> None:
    if message.kind == "checkin":
        parse_station_event(message.payload)
    else:
        parse_station_payload(message.payload)


def test_a_visit_is_a_checkin_then_valid_measurements(world: DemoWorld) -> None:
    visit = _planner(world).visit(AT)
    kinds = [m.kind for m in visit.messages]
    assert kinds[0] == "checkin"
    assert set(kinds[1:]) == {"measurement"}
    event = parse_station_event(visit.messages[0].payload)
    assert event.station == "yaksu-station-1"
    assert event.card == visit.card
    assert event.at == AT
    for message in visit.messages[1:]:
        parsed = parse_station_payload(message.payload)
        assert parsed.station == "yaksu-station-1"
        assert parsed.device_id == message.device_id
        assert message.topic == f"daon/st/yaksu/yaksu-station-1/dev/{message.device_id}"
        assert parsed.checkin in (None, visit.card)
        assert parsed.device_time is not None
        assert parsed.device_time >= AT.replace(tzinfo=None)  # wall clock in Korea


def test_every_kiosk_device_and_kind_appears(world: DemoWorld) -> None:
    planner = _planner(world)
    seen: Counter[str] = Counter()
    for i in range(200):
        for message in planner.visit(AT + timedelta(minutes=10 * i)).messages:
            _assert_valid(message)
            if message.device_id:
                seen[message.device_id] += 1
    assert set(seen) == {d.id for d in STATIONS[0].kiosk}
    assert seen["yaksu-kiosk-1-bp"] > seen["yaksu-kiosk-1-bca"]


def test_cards_are_the_centres_residents_or_unknown(world: DemoWorld) -> None:
    planner = _planner(world)
    own = {r.card_number: r.id for r in world.residents_of("yaksu")}
    unknown = 0
    for i in range(400):
        visit = planner.visit(AT + timedelta(minutes=i))
        if visit.resident is None:
            unknown += 1
            assert visit.card not in {r.card_number for r in world.residents}
        else:
            assert own[visit.card] == visit.resident
    assert 0.02 < unknown / 400 < 0.10  # the stated 5 % of unknown cards


def test_bp_follows_the_residents_ground_truth(world: DemoWorld) -> None:
    planner = _planner(world)
    truth = world.population.residents
    by_card = {r.card_number: r.population_index for r in world.residents}
    differences = []
    for i in range(300):
        visit = planner.visit(AT + timedelta(minutes=i))
        if visit.resident is None:
            continue
        row = by_card[visit.card]
        for message in visit.messages:
            if message.device_id == "yaksu-kiosk-1-bp":
                m = parse_station_payload(message.payload).measurements[0]
                systolic = m.component("systolic")
                assert systolic is not None
                assert systolic.value is not None
                differences.append(float(systolic.value) - truth.true_office_sys[row])
    mean = sum(differences) / len(differences)
    assert len(differences) > 300
    assert -3.0 < mean < 4.0  # noise SD 8 around the office mean, +2 on first readings


def test_same_seed_same_visits(world: DemoWorld) -> None:
    a = [m.payload for m in _planner(world, seed=5).visit(AT).messages]
    b = [m.payload for m in _planner(world, seed=5).visit(AT).messages]
    c = [m.payload for m in _planner(world, seed=6).visit(AT).messages]
    assert a == b
    assert a != c


@pytest.mark.parametrize("how", MEASUREMENT_MALFORMATIONS)
def test_each_measurement_malformation_is_rejected(world: DemoWorld, how: Malformation) -> None:
    good = next(m for m in _planner(world).visit(AT).messages if m.kind == "measurement")
    parse_station_payload(good.payload)
    with pytest.raises(StationPayloadError):
        parse_station_payload(malform(good.payload, how))


@pytest.mark.parametrize("how", CHECKIN_MALFORMATIONS)
def test_each_checkin_malformation_is_rejected(how: Malformation) -> None:
    good = encode_station_event("yaksu-station-1", "941012345678", AT)
    with pytest.raises(StationPayloadError):
        parse_station_event(malform(good, how))


def test_a_checkin_only_malformation_refuses_measurements(world: DemoWorld) -> None:
    good = next(m for m in _planner(world).visit(AT).messages if m.kind == "measurement")
    with pytest.raises(ValueError, match="check-in"):
        malform(good.payload, Malformation.NAIVE_CHECKIN_TIME)


def test_malformed_every_n_is_exact_and_cycles(world: DemoWorld) -> None:
    planner = _planner(world, malformed_every=3)
    messages = [m for i in range(60) for m in planner.visit(AT + timedelta(minutes=i)).messages]
    for n, message in enumerate(messages, start=1):
        assert (message.malformation is not None) == (n % 3 == 0)
    used = {m.malformation for m in messages if m.malformation is not None}
    assert used == set(Malformation)


def test_broker_address_parsing() -> None:
    plain = Broker.parse("mqtt://127.0.0.1:1883")
    assert (plain.host, plain.port, plain.tls, plain.username) == ("127.0.0.1", 1883, False, None)
    secure = Broker.parse("mqtts://kiosk%40yaksu:s3cret@broker.example")
    assert (secure.port, secure.tls, secure.username) == (8883, True, "kiosk@yaksu")
    assert "s3cret" not in repr(secure)
    with pytest.raises(ValueError, match="mqtt"):
        Broker.parse("http://example.org")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_broker_is_a_clear_error(world: DemoWorld) -> None:
    url = f"mqtt://127.0.0.1:{_closed_port()}"
    with pytest.raises(BrokerUnavailable, match=r"127\.0\.0\.1"):
        async with asyncio.timeout(15):
            await run_station(url, STATIONS[0], world=world, visits=1, interval=0, pace=0)


# --- against the real broker ---------------------------------------------------------------


class Subscriber:
    """A plain paho subscriber collecting (topic, payload) from its own thread into a queue."""

    def __init__(self, url: str, topic_filter: str) -> None:
        address = Broker.parse(url)
        self.received: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.ready: queue.Queue[bool] = queue.Queue()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic_filter, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.ready.put(True)
        self.client.on_message = lambda c, u, msg: self.received.put(
            (msg.topic, bytes(msg.payload))
        )
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        assert self.ready.get(timeout=10)

    def take(self, count: int, timeout: float = 10.0) -> list[tuple[str, bytes]]:
        return [self.received.get(timeout=timeout) for _ in range(count)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.mqtt
async def test_kiosks_publish_only_valid_messages_except_the_malformed_ones(
    mqtt_url: str, topic_root: str, world: DemoWorld
) -> None:
    subscriber = Subscriber(mqtt_url, f"{topic_root}/#")
    published: list[Outgoing] = []
    try:
        async with asyncio.timeout(30):
            stats = await run_stations(
                mqtt_url,
                root=topic_root,
                world=world,
                visits=4,
                interval=0,
                pace=0,
                malformed_every=5,
                on_publish=published.append,
            )
        received = await asyncio.to_thread(subscriber.take, len(published))
    finally:
        subscriber.close()
    assert sum(s.visits for s in stats.values()) == 12
    assert len(published) == sum(s.messages for s in stats.values())
    malformed = {m.payload for m in published if m.malformation is not None}
    assert malformed  # some were broken on demand
    assert sorted(p for _, p in received) == sorted(m.payload for m in published)
    centres = set()
    for topic, payload in received:
        centre, station, device_id = parse_station_topic(topic_root, topic)
        centres.add(centre)
        assert station == f"{centre}-station-1"
        parse = parse_station_event if device_id is None else parse_station_payload
        if payload in malformed:
            with pytest.raises(StationPayloadError):
                parse(payload)
        else:
            parsed = parse(payload)
            if device_id is not None:
                assert parsed.device_id == device_id  # type: ignore[union-attr]
    assert centres == {"yaksu", "hwanghak", "pil"}


@pytest.mark.mqtt
async def test_stop_event_ends_a_running_kiosk(
    mqtt_url: str, topic_root: str, world: DemoWorld
) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_station(
            mqtt_url, STATIONS[1], root=topic_root, world=world, interval=0.05, pace=0, stop=stop
        )
    )
    await asyncio.sleep(0.5)
    stop.set()
    async with asyncio.timeout(10):
        stats = await task
    assert stats.visits >= 1
    assert stats.station == "hwanghak-station-1"


@pytest.mark.mqtt
def test_cli_runs_kiosks(
    mqtt_url: str, topic_root: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "simulate",
            "stations",
            "--mqtt",
            mqtt_url,
            "--root",
            topic_root,
            "--centre",
            "pil",
            "--visits",
            "2",
            "--interval",
            "0",
            "--pace",
            "0",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "pil-station-1: 방문 visits 2" in out


def test_cli_reports_an_unknown_centre(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "stations", "--mqtt", "mqtt://127.0.0.1:1", "--centre", "seoul"])
    assert code == 1
    assert "seoul" in capsys.readouterr().err
