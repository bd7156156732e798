"""End to end over BLE: the real bleak client against the virtual BlueZ and virtual devices,
the real broker, a stand-in acker (ingest's side of the ack protocol).

Expected values are the ones the virtual devices were told to measure (ble-profiles.md
layouts, encoded by devices' encoders), never our own decoder's output.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from devices.gatt.blood_pressure import encode_measurement
from devices.records import decode_record
from devices.wire import WireReading, station_checkin_topic
from gateway.config import BleConfig, DeviceConfig, GatewayConfig, UserSlot
from gateway.outbox import Outbox
from simulators.bluez import PairingMethod, Timing, VirtualBlueZ
from simulators.peripherals import (
    BloodPressureCuff,
    BodyCompositionScale,
    Faults,
    GlucoseMeter,
    WeightScale,
)
from tests.gateway.helpers import (
    STATION,
    Acker,
    eventually,
    make_config,
    publish,
    running,
    session_opened,
)

pytestmark = [pytest.mark.ble, pytest.mark.mqtt]

CUFF_ADDRESS = "C0:11:22:33:44:01"
CARDS = {"9410000000000001": "R0001234", "9410000000000002": "R0001235"}


def fast_ble(**overrides: float) -> BleConfig:
    values = {
        "connect_timeout_s": 5.0,
        "safety_timeout_s": 8.0,
        "attempts": 3,
        "settle_s": 0.0,
        "idle_timeout_s": 1.0,
        "transfer_timeout_s": 20.0,
        "racp_timeout_s": 5.0,
        "rescan_s": 0.5,
        "cooldown_s": 30.0,
        "backoff_s": 0.05,
        **overrides,
    }
    return BleConfig(**values)  # type: ignore[arg-type]


def values_of(reading: WireReading) -> dict[str, Decimal | None]:
    """What ingest will read from the reading: decode its raw values again."""
    (m,) = decode_record([(v.uuid, v.data) for v in reading.values])
    return {c.code: c.value for c in m.components}


def checkin(card: str) -> bytes:
    at = datetime.now(UTC).isoformat()
    return json.dumps(
        {"schema": 1, "type": "checkin", "station": STATION, "card": card, "at": at}
    ).encode()


async def test_blood_pressure_transfer_with_time_sync_and_binding(
    tmp_path: Path,
    bluez: VirtualBlueZ,
    mqtt_url: str,
    topic_root: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.service")
    cuff = bluez.add_peripheral(BloodPressureCuff.and_ua651(CUFF_ADDRESS, timing=Timing.fast()))
    cuff.advertising = False
    device = DeviceConfig(address=CUFF_ADDRESS, model="UA-651BLE", id="cuff-1", station=STATION)
    config = make_config(
        tmp_path,
        central_url=mqtt_url,
        topic_root=topic_root,
        devices=[device],
        cards=CARDS,
        ble=fast_ble(),
    )
    async with Acker(mqtt_url, config) as acker, running(config):
        await publish(
            mqtt_url,
            station_checkin_topic(topic_root, "yaksu", STATION),
            checkin("9410000000000001"),
        )
        await eventually(session_opened(caplog))
        cuff.take_reading(128, 82, 72, user=1)
        cuff.take_reading(121, 79, 68, user=1)
        readings = await acker.wait_for(2)
    assert [values_of(r)["systolic"] for r in readings] == [Decimal(128), Decimal(121)]
    assert [values_of(r)["diastolic"] for r in readings] == [Decimal(82), Decimal(79)]
    for reading in readings:
        assert reading.source == "ble"
        assert reading.device.serial == "5120034871"
        assert reading.binding is not None
        assert reading.binding.resident == "R0001234"
    assert cuff.session is None  # the cuff hung up by itself: a normal end
    assert [c.member for c in bluez.calls if c.member == "WriteValue"]  # Date Time written
    async with Outbox(config.outbox, readonly=True) as box:
        state = await box.device_state("cuff-1")
    assert state is not None
    assert state.battery_pct == 90


async def test_omron_clock_offset_is_read_corrected_and_set(
    tmp_path: Path,
    bluez: VirtualBlueZ,
    mqtt_url: str,
    topic_root: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """CTS: the clock is read before it is set; records are placed with the offset."""
    caplog.set_level(logging.INFO, logger="gateway.service")
    address = "C0:11:22:33:44:02"
    cuff = bluez.add_peripheral(BloodPressureCuff.omron(address, timing=Timing.fast()))
    cuff.clock.offset = timedelta(seconds=-95)  # the cuff runs 95 s slow
    cuff.advertising = False
    device = DeviceConfig(address=address, model="HEM-7600T", id="omron-1", station=STATION)
    config = make_config(
        tmp_path,
        central_url=mqtt_url,
        topic_root=topic_root,
        devices=[device],
        cards=CARDS,
        ble=fast_ble(),
    )
    async with Acker(mqtt_url, config) as acker, running(config):
        await publish(
            mqtt_url,
            station_checkin_topic(topic_root, "yaksu", STATION),
            checkin("9410000000000002"),
        )
        await eventually(session_opened(caplog))
        cuff.take_reading(135, 85, 75, user=2)  # stamped on the slow clock: 95 s "before" check-in
        (reading,) = await acker.wait_for(1)
    assert reading.clock is not None
    assert reading.clock.offset_s is not None
    assert -97 <= reading.clock.offset_s <= -93
    assert reading.clock.trusted
    assert reading.binding is not None
    assert reading.binding.resident == "R0001235"
    assert abs(cuff.clock.error.total_seconds()) < 2  # CTS written: the cuff is right again
    async with Outbox(config.outbox, readonly=True) as box:
        state = await box.device_state("omron-1")
    assert state is not None
    assert state.clock_offset_s is not None
    assert -97 <= state.clock_offset_s <= -93


METER_ADDRESS = "C0:11:22:33:55:01"


def sequences(readings: list[WireReading]) -> list[int]:
    out = []
    for r in readings:
        (m,) = decode_record([(v.uuid, v.data) for v in r.values])
        assert m.sequence_number is not None
        out.append(m.sequence_number)
    return out


def meter_config(tmp_path: Path, mqtt_url: str, topic_root: str, **ble: float) -> GatewayConfig:
    device = DeviceConfig(
        address=METER_ADDRESS,
        model="CareSens N Premier",
        id="meter-1",
        owner="R0001236",
        calibration="plasma",
    )
    return make_config(
        tmp_path,
        central_url=mqtt_url,
        topic_root=topic_root,
        devices=[device],
        ble=fast_ble(cooldown_s=0.2, **ble),
    )


async def test_glucose_full_then_incremental_across_sessions(
    tmp_path: Path, bluez: VirtualBlueZ, mqtt_url: str, topic_root: str
) -> None:
    meter = bluez.add_peripheral(GlucoseMeter.caresens(METER_ADDRESS, timing=Timing.fast()))
    meter.take_reading(105, meal=3)  # fasting, with a context record
    meter.take_reading(142)
    meter.take_reading(98, meal=1)
    config = meter_config(tmp_path, mqtt_url, topic_root)
    async with Acker(mqtt_url, config) as acker, running(config):
        first = await acker.wait_for(3)
        assert sequences(first) == [1, 2, 3]
        (fasting,) = decode_record(
            [(v.uuid, v.data) for v in first[0].values], calibration="plasma"
        )
        assert fasting.component("glucose") is not None
        assert fasting.context_value("meal") == "fasting"
        assert first[0].binding is not None
        assert first[0].binding.resident == "R0001236"  # personal meter: its owner
        meter.take_reading(120)
        meter.take_reading(131)
        await acker.wait_for(5)
        await eventually(
            lambda: _sessions_at_least(bluez, METER_ADDRESS, 4)
        )  # more sessions, nothing new
    assert sorted(sequences(acker.readings)) == [1, 2, 3, 4, 5]  # no gap, no duplicate
    async with Outbox(config.outbox, readonly=True) as box:
        state = await box.device_state("meter-1")
    assert state is not None
    assert state.last_sequence == 5


def _sessions_at_least(bluez: VirtualBlueZ, address: str, n: int) -> bool:
    meter = bluez.peripheral(address)
    return getattr(meter, "sessions", 0) >= n


async def test_glucose_link_drop_mid_transfer_resumes_without_gap_or_duplicate(
    tmp_path: Path, bluez: VirtualBlueZ, mqtt_url: str, topic_root: str
) -> None:
    meter = bluez.add_peripheral(
        GlucoseMeter.caresens(METER_ADDRESS, timing=Timing.fast(), faults=Faults(drop_after=2))
    )
    for value in (101, 102, 103, 104, 105):
        meter.take_reading(value)
    config = meter_config(tmp_path, mqtt_url, topic_root)
    async with Acker(mqtt_url, config) as acker, running(config):
        await acker.wait_for(2)
        await eventually(lambda: meter.sessions >= 1)
        meter.faults = Faults()  # the next session is clean
        await acker.wait_for(5)
        await eventually(lambda: meter.sessions >= 3)
    assert sorted(sequences(acker.readings)) == [1, 2, 3, 4, 5]


async def test_glucose_memory_reset_is_noticed_and_everything_read_again(
    tmp_path: Path, bluez: VirtualBlueZ, mqtt_url: str, topic_root: str
) -> None:
    meter = bluez.add_peripheral(GlucoseMeter.caresens(METER_ADDRESS, timing=Timing.fast()))
    for value in (110, 111, 112):
        meter.take_reading(value)
    config = meter_config(tmp_path, mqtt_url, topic_root)
    async with Acker(mqtt_url, config) as acker, running(config):
        await acker.wait_for(3)
        meter.reset_memory()  # battery out: numbering starts again at 1
        for value in (90, 91, 92, 93):
            meter.take_reading(value)
        await acker.wait_for(7)
    assert sorted(sequences(acker.readings)) == [1, 1, 2, 2, 3, 3, 4]
    assert sorted(str(values_of(r)["glucose"]) for r in acker.readings[3:]) == [
        "90",
        "91",
        "92",
        "93",
    ]


async def test_glucose_sequence_wraps_65535_to_0(
    tmp_path: Path, bluez: VirtualBlueZ, mqtt_url: str, topic_root: str
) -> None:
    meter = bluez.add_peripheral(
        GlucoseMeter.caresens(METER_ADDRESS, timing=Timing.fast(), first_sequence=65533)
    )
    for value in (100, 101):
        meter.take_reading(value)  # 65533, 65534
    config = meter_config(tmp_path, mqtt_url, topic_root)
    async with Acker(mqtt_url, config) as acker, running(config):
        await acker.wait_for(2)
        for value in (102, 103, 104):
            meter.take_reading(value)  # 65535, 0, 1
        await acker.wait_for(5)
        await eventually(lambda: meter.sessions >= 4)
    assert sorted(sequences(acker.readings)) == [0, 1, 65533, 65534, 65535]


async def test_station_weight_scale_without_uds(
    tmp_path: Path,
    bluez: VirtualBlueZ,
    mqtt_url: str,
    topic_root: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.service")
    address = "C0:11:22:33:66:01"
    scale = bluez.add_peripheral(WeightScale.and_uc352(address, timing=Timing.fast()))
    scale.advertising = False
    device = DeviceConfig(address=address, model="UC-352BLE", id="scale-1", station=STATION)
    config = make_config(
        tmp_path,
        central_url=mqtt_url,
        topic_root=topic_root,
        devices=[device],
        cards=CARDS,
        ble=fast_ble(),
    )
    async with Acker(mqtt_url, config) as acker, running(config):
        await publish(
            mqtt_url,
            station_checkin_topic(topic_root, "yaksu", STATION),
            checkin("9410000000000001"),
        )
        await eventually(session_opened(caplog))
        scale.weigh(Decimal("72.35"))
        (reading,) = await acker.wait_for(1)
    assert values_of(reading)["weight"] == Decimal("72.35")
    assert reading.binding is not None
    assert reading.binding.resident == "R0001234"


async def test_multi_user_scale_with_uds_consent_binds_slots_through_the_registry(
    tmp_path: Path, bluez: VirtualBlueZ, mqtt_url: str, topic_root: str
) -> None:
    address = "C0:11:22:33:66:02"
    scale = bluez.add_peripheral(BodyCompositionScale.beurer_bf720(address, timing=Timing.fast()))
    scale.register_user(1234, index=0, height_m=Decimal("1.62"), gender=1, birth=date(1951, 4, 2))
    scale.register_user(5678, index=1, height_m=Decimal("1.71"), gender=0, birth=date(1948, 9, 30))
    scale.register_user(9999, index=2)  # a slot the registry does not map
    scale.weigh(Decimal("58.4"), user=0)
    scale.weigh(Decimal("70.2"), user=1)
    scale.weigh(Decimal("80.0"), user=2)  # never consented: the scale keeps it
    device = DeviceConfig(
        address=address,
        model="BF720",
        id="home-scale-1",
        users=(UserSlot(0, "R0001234", 1234), UserSlot(1, "R0001235", 5678)),
    )
    config = make_config(
        tmp_path, central_url=mqtt_url, topic_root=topic_root, devices=[device], ble=fast_ble()
    )
    async with Acker(mqtt_url, config) as acker, running(config):
        readings = await acker.wait_for(4)  # weight + body composition for each of two users
    by_resident: dict[str, dict[str, Decimal | None]] = {}
    for reading in readings:
        assert reading.binding is not None
        assert reading.binding.method == "registry"
        by_resident.setdefault(reading.binding.resident, {}).update(values_of(reading))
    assert by_resident["R0001234"]["weight"] == Decimal("58.4")
    assert by_resident["R0001235"]["weight"] == Decimal("70.2")
    assert by_resident["R0001234"]["body_fat"] is not None  # the multi-packet record, merged
    assert all(w.sent for w in scale.memory if w.user in (0, 1))
    assert not any(w.sent for w in scale.memory if w.user == 2)


async def test_corrupt_and_truncated_records_are_dead_letters_and_the_transfer_goes_on(
    tmp_path: Path,
    bluez: VirtualBlueZ,
    mqtt_url: str,
    topic_root: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cuff = bluez.add_peripheral(
        BloodPressureCuff.and_ua651(
            CUFF_ADDRESS, timing=Timing.fast(), faults=Faults(truncate={0}, corrupt={1})
        )
    )
    cuff.advertising = False
    device = DeviceConfig(address=CUFF_ADDRESS, model="UA-651BLE", id="cuff-1", station=STATION)
    config = make_config(
        tmp_path, central_url=mqtt_url, topic_root=topic_root, devices=[device], ble=fast_ble()
    )
    async with Acker(mqtt_url, config) as acker, running(config):
        first = cuff.take_reading(128, 82, 72)
        cuff.take_reading(121, 79, 68)
        cuff.take_reading(117, 76, 64)
        readings = await acker.wait_for(3)
    dead = [r for r in readings if r.decoded and "dead_letter" in r.decoded]
    assert len(dead) == 2
    truncated = encode_measurement(first)[:-2]
    assert dead[0].values[0].data == truncated  # forwarded raw, for the central dead letters
    assert values_of(readings[2])["systolic"] == Decimal(117)
    async with Outbox(config.outbox, readonly=True) as box:
        letters = await box.dead_letters()
    assert {d.origin for d in letters} == {CUFF_ADDRESS}
    assert any(truncated.hex() in d.raw_hex for d in letters)
    logged = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(truncated.hex() in line and CUFF_ADDRESS in line for line in logged)


async def test_passkey_pairing_through_the_gateway_agent(
    tmp_path: Path, bluez: VirtualBlueZ, mqtt_url: str, topic_root: str
) -> None:
    cuff = bluez.add_peripheral(BloodPressureCuff.and_ua651(CUFF_ADDRESS, timing=Timing.fast()))
    cuff.require_pairing(PairingMethod.PASSKEY, passkey=314159)
    cuff.take_reading(126, 80, 70)
    device = DeviceConfig(
        address=CUFF_ADDRESS, model="UA-651BLE", id="cuff-1", owner="R0001236", passkey=314159
    )
    config = make_config(
        tmp_path, central_url=mqtt_url, topic_root=topic_root, devices=[device], ble=fast_ble()
    )
    async with Acker(mqtt_url, config) as acker, running(config):
        (reading,) = await acker.wait_for(1)
    assert values_of(reading)["systolic"] == Decimal(126)
    members = [c.member for c in bluez.calls]
    assert "RegisterAgent" in members  # our agent answered BlueZ's RequestPasskey
    assert "Pair" in members


async def test_wrong_passkey_fails_pairing_and_nothing_is_lost(
    tmp_path: Path, bluez: VirtualBlueZ, mqtt_url: str, topic_root: str
) -> None:
    cuff = bluez.add_peripheral(BloodPressureCuff.and_ua651(CUFF_ADDRESS, timing=Timing.fast()))
    cuff.require_pairing(PairingMethod.PASSKEY, passkey=314159)
    cuff.take_reading(126, 80, 70)
    device = DeviceConfig(
        address=CUFF_ADDRESS, model="UA-651BLE", id="cuff-1", owner="R0001236", passkey=111111
    )
    config = make_config(
        tmp_path, central_url=mqtt_url, topic_root=topic_root, devices=[device], ble=fast_ble()
    )
    async with Acker(mqtt_url, config), running(config):
        await eventually(lambda: _last_error(config), within=10)
    assert "pairing refused" in (await _last_error(config) or "")
    assert cuff.pending()  # the reading is still in the cuff


async def _last_error(config: GatewayConfig) -> str | None:
    async with Outbox(config.outbox, readonly=True) as box:
        state = await box.device_state("cuff-1")
    return state.last_error if state is not None else None


async def test_lost_bond_is_removed_and_paired_again(
    tmp_path: Path, bluez: VirtualBlueZ, mqtt_url: str, topic_root: str
) -> None:
    cuff = bluez.add_peripheral(
        BloodPressureCuff.and_ua651(CUFF_ADDRESS, timing=Timing.fast()), known=True
    )
    cuff.forget_bonds()  # battery change / factory reset: the cuff no longer knows us
    cuff.take_reading(119, 77, 66)
    device = DeviceConfig(address=CUFF_ADDRESS, model="UA-651BLE", id="cuff-1", owner="R0001236")
    config = make_config(
        tmp_path,
        central_url=mqtt_url,
        topic_root=topic_root,
        devices=[device],
        ble=fast_ble(cooldown_s=0.2),
    )
    async with Acker(mqtt_url, config) as acker, running(config):
        (reading,) = await acker.wait_for(1, within=20)
    assert values_of(reading)["systolic"] == Decimal(119)
    members = [c.member for c in bluez.calls]
    assert "RemoveDevice" in members
    assert "Pair" in members


async def test_several_devices_at_one_station_one_connection_at_a_time(
    tmp_path: Path, bluez: VirtualBlueZ, mqtt_url: str, topic_root: str
) -> None:
    cuff = bluez.add_peripheral(BloodPressureCuff.and_ua651(CUFF_ADDRESS, timing=Timing.fast()))
    scale = bluez.add_peripheral(WeightScale.and_uc352("C0:11:22:33:66:01", timing=Timing.fast()))
    meter = bluez.add_peripheral(GlucoseMeter.caresens(METER_ADDRESS, timing=Timing.fast()))
    cuff.take_reading(130, 84, 71)
    scale.weigh(Decimal("66.5"))
    meter.take_reading(111)
    devices = [
        DeviceConfig(address=CUFF_ADDRESS, model="UA-651BLE", id="cuff-1", station=STATION),
        DeviceConfig(address="C0:11:22:33:66:01", model="UC-352BLE", id="scale-1", station=STATION),
        DeviceConfig(
            address=METER_ADDRESS, model="CareSens N Premier", id="meter-1", station=STATION
        ),
    ]
    config = make_config(
        tmp_path, central_url=mqtt_url, topic_root=topic_root, devices=devices, ble=fast_ble()
    )
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, sum(1 for p in (cuff, scale, meter) if p.link is not None))
            await asyncio.sleep(0.002)

    watcher = asyncio.create_task(watch())
    async with Acker(mqtt_url, config) as acker, running(config):
        readings = await acker.wait_for(3, within=20)
    watcher.cancel()
    assert {r.device.id for r in readings} == {"cuff-1", "scale-1", "meter-1"}
    assert peak == 1  # the adapter never held two connections at once


async def test_station_body_composition_scale_consents_per_slot_and_binds_by_session(
    tmp_path: Path,
    bluez: VirtualBlueZ,
    mqtt_url: str,
    topic_root: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A shared BF720 at a station: the registry gives the slots' consent codes, the check-in
    gives the person (the slot's own mapping is not used to bind at a station)."""
    caplog.set_level(logging.INFO, logger="gateway.service")
    address = "C0:11:22:33:66:03"
    scale = bluez.add_peripheral(BodyCompositionScale.beurer_bf720(address, timing=Timing()))
    scale.register_user(4321, index=0, height_m=Decimal("1.58"), gender=1, birth=date(1950, 1, 5))
    scale.register_user(8765, index=1, height_m=Decimal("1.69"), gender=0, birth=date(1947, 6, 9))
    device = DeviceConfig(
        address=address,
        model="BF720",
        id="station-bca",
        station=STATION,
        users=(UserSlot(0, "R0000001", 4321), UserSlot(1, "R0000002", 8765)),
    )
    config = make_config(
        tmp_path,
        central_url=mqtt_url,
        topic_root=topic_root,
        devices=[device],
        cards=CARDS,
        ble=fast_ble(idle_timeout_s=1.5),
    )
    async with Acker(mqtt_url, config) as acker, running(config):
        await publish(
            mqtt_url,
            station_checkin_topic(topic_root, "yaksu", STATION),
            checkin("9410000000000002"),
        )
        await eventually(session_opened(caplog))
        scale.weigh(Decimal("64.3"), user=1)
        readings = await acker.wait_for(2, within=30)
    for reading in readings:
        assert reading.binding is not None
        assert reading.binding.resident == "R0001235"  # who checked in, not slot 1's mapping
        assert reading.binding.method == "check-in"
    assert [values_of(r).get("weight") for r in readings] == [Decimal("64.3"), Decimal("64.3")]


async def test_clock_reset_to_2000_marks_times_untrusted_and_never_guesses_a_binding(
    tmp_path: Path,
    bluez: VirtualBlueZ,
    mqtt_url: str,
    topic_root: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.service")
    address = "C0:11:22:33:44:03"
    cuff = bluez.add_peripheral(BloodPressureCuff.omron(address, timing=Timing.fast()))
    cuff.advertising = False
    cuff.clock.reset()  # battery change: the clock restarts at 2000-01-01 00:00
    device = DeviceConfig(address=address, model="HEM-7361T", id="omron-2", station=STATION)
    config = make_config(
        tmp_path,
        central_url=mqtt_url,
        topic_root=topic_root,
        devices=[device],
        cards=CARDS,
        ble=fast_ble(),
    )
    async with Acker(mqtt_url, config) as acker, running(config):
        await publish(
            mqtt_url,
            station_checkin_topic(topic_root, "yaksu", STATION),
            checkin("9410000000000001"),
        )
        await eventually(session_opened(caplog))
        cuff.take_reading(133, 86, 77)  # stamped 2000-01-01 by the reset clock
        (reading,) = await acker.wait_for(1)
    (m,) = decode_record([(v.uuid, v.data) for v in reading.values])
    assert m.device_time is not None
    assert m.device_time.year == 2000  # the raw time travels unchanged
    assert reading.clock is not None
    assert reading.clock.trusted is False
    assert reading.binding is None  # a station reading whose time cannot be trusted: unbound


async def test_refused_clock_write_is_reported_and_the_records_still_come(
    tmp_path: Path, bluez: VirtualBlueZ, mqtt_url: str, topic_root: str
) -> None:
    meter = bluez.add_peripheral(
        GlucoseMeter.caresens(
            METER_ADDRESS, timing=Timing.fast(), faults=Faults(refuse_time_write=True)
        )
    )
    meter.take_reading(107)
    config = meter_config(tmp_path, mqtt_url, topic_root)
    async with Acker(mqtt_url, config) as acker, running(config):
        await acker.wait_for(1)
        await eventually(lambda: _last_error_of(config, "meter-1"), within=10)
    assert "clock write failed" in (await _last_error_of(config, "meter-1") or "")


async def _last_error_of(config: GatewayConfig, device_id: str) -> str | None:
    async with Outbox(config.outbox, readonly=True) as box:
        state = await box.device_state(device_id)
    return state.last_error if state is not None else None
