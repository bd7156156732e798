"""The demo's fixed world matches the district's facts (junggu-district.md) and the brief."""

from __future__ import annotations

from collections import Counter

import pytest

from devices.catalogue import find_model
from devices.model import Kind
from devices.wire import station_topic
from simulators.demo_data import (
    CENTRES,
    MIN_PER_NEIGHBOURHOOD,
    STATIONS,
    DemoWorld,
    demo_world,
)
from simulators.population import NEIGHBOURHOODS


@pytest.fixture(scope="module")
def world() -> DemoWorld:
    return demo_world()


def test_three_u_health_centres_in_their_neighbourhoods() -> None:
    # junggu-district.md: U-health centres operate at 약수, 황학, 필동.
    assert {(c.id, c.neighbourhood) for c in CENTRES} == {
        ("yaksu", "약수동"),
        ("hwanghak", "황학동"),
        ("pil", "필동"),
    }


def test_rehabilitation_rooms_at_yaksu_and_hwanghak() -> None:
    # junggu-district.md: rehabilitation rooms at 약수동 and 황학동.
    assert {c.id for c in CENTRES if c.rehab_room} == {"yaksu", "hwanghak"}


def test_each_centre_has_one_station_with_four_devices() -> None:
    assert [s.id for s in STATIONS] == ["yaksu-station-1", "hwanghak-station-1", "pil-station-1"]
    for station in STATIONS:
        kinds = Counter(device.kind for device in station.devices)
        assert kinds == {
            Kind.BLOOD_PRESSURE: 1,
            Kind.GLUCOSE: 1,
            Kind.BODY_WEIGHT: 1,
            Kind.BODY_COMPOSITION: 1,
        }
        assert station.device("cuff").model == "UA-651BLE"
        assert all(d.station == station.id and d.owner is None for d in station.devices)
        assert all(d.transport == "ble" and d.address for d in station.devices)


def test_each_station_has_a_kiosk_with_four_mqtt_devices() -> None:
    for station in STATIONS:
        assert [d.kind for d in station.kiosk] == [d.kind for d in station.devices]
        for device in station.kiosk:
            assert device.transport == "mqtt"
            assert device.address is None
            assert device.id.startswith(f"{station.centre}-kiosk-1-")
            station_topic("daon", station.centre, station.id, device.id)  # a valid topic
        assert station.kiosk_device("cuff").id == f"{station.centre}-kiosk-1-bp"


def test_every_ble_device_model_is_in_the_catalogue(world: DemoWorld) -> None:
    for device in world.devices:
        if device.transport != "ble":
            continue
        row = find_model(device.manufacturer, device.model)
        assert row is not None, (device.manufacturer, device.model)
        assert row.kind == device.kind


def test_device_addresses_are_unique_and_random_static(world: DemoWorld) -> None:
    addresses = [d.address for d in world.devices if d.address is not None]
    assert len(set(addresses)) == len(addresses)
    ids = [d.id for d in world.devices]
    assert len(set(ids)) == len(ids)
    for address in addresses:
        octets = [int(part, 16) for part in address.split(":")]
        assert len(octets) == 6
        assert octets[0] & 0xC0 == 0xC0  # random static: the two top bits set
    names = [d.local_name for d in world.devices if d.role == "cuff" and d.transport == "ble"]
    assert len(set(names)) == len(names)


def test_glucose_meters_say_how_they_are_calibrated(world: DemoWorld) -> None:
    for device in world.devices:
        if device.kind is Kind.GLUCOSE:
            assert device.calibration == "plasma"
        else:
            assert device.calibration is None


def test_residents_live_in_every_neighbourhood_in_proportion(world: DemoWorld) -> None:
    """Every 동 of the district table has demo residents, in proportion to its residents
    (junggu-district.md; at least the minimum in the smallest 동)."""
    district = {nb.name: nb.residents for nb in NEIGHBOURHOODS}  # the planning table's column
    counts = Counter(r.neighbourhood for r in world.residents)
    assert set(counts) == set(district)
    total = sum(district.values())
    for name, residents in district.items():
        share = len(world.residents) * residents / total
        assert counts[name] >= MIN_PER_NEIGHBOURHOOD
        assert abs(counts[name] - share) <= max(MIN_PER_NEIGHBOURHOOD, 0.25 * share), name
    assert counts["약수동"] > counts["소공동"]  # 7,922 against 658 residents
    assert {r.centre for r in world.residents} == {"yaksu", "hwanghak", "pil"}
    cards = [r.card_number for r in world.residents]
    assert len(set(cards)) == len(cards)
    assert world.resident_by_card(cards[0]) == world.residents[0]
    assert world.resident_by_card("000000000000") is None


def test_every_staff_member_has_a_caseload(world: DemoWorld) -> None:
    assert {r.nurse for r in world.residents} == {n.id for n in world.nurses}
    assert {r.liaison for r in world.residents if r.liaison} == {o.id for o in world.liaisons}
    # the therapist sees the rehabilitation residents of her rooms' own 동
    therapist = world.therapists[0]
    rehab = [r for r in world.residents if r.rehab]
    assert {r.neighbourhood for r in rehab} == set(therapist.neighbourhoods)
    for name in therapist.neighbourhoods:
        assert sum(r.neighbourhood == name for r in rehab) >= 4


def test_residents_are_rows_of_the_demo_population(world: DemoWorld) -> None:
    rows = world.population.residents
    for resident in world.residents:
        i = resident.population_index
        assert rows.id[i] == resident.id
        assert rows.card_number[i] == resident.card_number
        assert bool(rows.hypertension[i]) == resident.hypertension


def test_home_devices_belong_to_residents_who_need_them(world: DemoWorld) -> None:
    assert 3 <= len(world.home_devices) <= 12
    assert {d.centre for d in world.home_devices} == {"yaksu", "hwanghak", "pil"}
    need = {"cuff": "hypertension", "glucose_meter": "diabetes", "scale": "obesity"}
    for device in world.home_devices:
        assert device.station is None
        assert device.owner is not None
        owner = world.resident(device.owner)
        assert getattr(owner, need[device.role])
        assert device.id in owner.home_devices


def test_staff(world: DemoWorld) -> None:
    assert len(world.nurses) == 12
    assert {n.role for n in world.nurses} == {"nurse"}
    assert len(world.therapists) == 1
    assert world.therapists[0].centres == ("yaksu", "hwanghak")
    assert world.liaisons
    nurse_ids = {n.id for n in world.nurses}
    liaison_ids = {o.id for o in world.liaisons}
    for resident in world.residents:
        assert resident.nurse in nurse_ids
        assert resident.liaison == "" or resident.liaison in liaison_ids


def test_the_world_is_built_once_and_deterministically(world: DemoWorld) -> None:
    assert demo_world() is world
    other = demo_world(99)
    assert other.centres == world.centres
    assert [r.id for r in other.residents] != [r.id for r in world.residents] or [
        r.card_number for r in other.residents
    ] != [r.card_number for r in world.residents]
