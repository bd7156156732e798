"""The demo's past: 90 days of the demo residents' readings, stored through ingest's own path."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter

import psycopg
import pytest

from devices.station import encode_station_payload, parse_station_payload
from simulators.demo_data import demo_world
from simulators.demo_history import history_batches, history_readings

END = dt.date(2026, 11, 30)


@pytest.fixture(scope="module")
def readings() -> list:  # type: ignore[type-arg]
    return history_readings(demo_world(), end=END)


def test_ninety_days_for_nearly_every_resident(readings: list) -> None:  # type: ignore[type-arg]
    world = demo_world()
    days = {h.local.date() for h in readings}
    assert min(days) >= END - dt.timedelta(days=90)
    assert max(days) <= END
    assert max(days) - min(days) >= dt.timedelta(days=80)
    per_resident = Counter(h.resident for h in readings)
    assert len(per_resident) >= 0.9 * len(world.residents)
    kinds = Counter(h.reading["device"]["id"].rsplit("-", 1)[-1] for h in readings)
    assert {"bp", "glucose", "scale", "bca"} <= set(kinds)


def test_each_reading_is_what_its_device_would_send(readings: list) -> None:  # type: ignore[type-arg]
    world = demo_world()
    cuffs = {d.id: d.owner for d in world.home_devices}
    for h in readings[::7]:  # a sample: parsing every reading costs seconds
        r = h.reading
        if r["source"] == "mqtt":  # a kiosk at the resident's own centre, with a check-in
            assert r["device"]["id"].startswith(f"{world.resident(h.resident).centre}-kiosk-1-")
            message = parse_station_payload(r["payload"])
            assert message.station == r["station"]
            # the same object the kiosk simulator's encoder writes for that measurement
            m = message.measurements[0]
            encoded = encode_station_payload(
                message.device_id,
                [m],
                station=message.station,
                checkin=message.checkin,
                device_time=message.device_time,
            )
            assert parse_station_payload(encoded) == message
            assert r["binding"] == {
                "resident": h.resident,
                "method": "check-in",
                "session": message.checkin,
            }
        else:  # the resident's own cuff, bound by the registry
            assert cuffs[r["device"]["id"]] == h.resident
            assert r["binding"]["method"] == "registry"


@pytest.mark.db
def test_the_past_goes_through_ingest_once(db_url: str) -> None:
    from daon.demo import seed, seed_history

    asyncio.run(seed(db_url))
    stored = asyncio.run(seed_history(db_url, "daon"))
    expected = history_readings(demo_world(), end=dt.date.today() - dt.timedelta(days=1))
    assert stored == len(expected)
    assert sum(1 for _ in history_batches(expected, "daon")) > 1
    with psycopg.connect(db_url) as conn:
        residents = conn.execute("SELECT count(DISTINCT resident_id) FROM observation").fetchone()
        dead = conn.execute("SELECT count(*) FROM dead_letter").fetchone()
        unbound = conn.execute("SELECT count(*) FROM unbound_reading").fetchone()
    assert residents == (len({h.resident for h in expected}),)
    assert dead == (0,)
    assert unbound == (0,)
    assert asyncio.run(seed_history(db_url, "daon")) == 0  # a second start keeps its data
