"""The demo's virtual devices and ``daon simulate ble`` (simulators/ble_cli.py).

Expected devices come from simulators/demo_data.py (the demo world: three centres, each
station with a cuff, a glucose meter, a scale and a body-composition scale).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import datetime
from decimal import Decimal

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from devices.gatt.blood_pressure import decode_measurement
from simulators.bluez import PrivateBus, Timing, VirtualBlueZ
from simulators.demo_data import STATIONS
from simulators.peripherals import BloodPressureCuff, BodyCompositionScale, GlucoseMeter
from simulators.peripherals.demo import build_fleet
from tests.fix_ble import close_bleak_manager
from tests.simulators.ble.helpers import Inbox, u

pytestmark = pytest.mark.ble

HEALTH_SERVICES = [u("1810"), u("1808"), u("181d"), u("181b")]


def test_the_fleet_has_every_station_device_of_the_demo_world() -> None:
    fleet = build_fleet(home=False)
    expected = {d.address for station in STATIONS for d in station.devices}
    assert {d.address for d in fleet.devices} == expected
    assert len(expected) == 12  # three centres, four devices each
    for device in fleet.devices:
        source = fleet.sources[device.address]
        assert device.name == source.local_name
        assert device.identity.model == source.model
        assert device.identity.serial == source.serial
    scales = [d for d in fleet.devices if isinstance(d, BodyCompositionScale)]
    assert len(scales) == 3
    assert all(len(fleet.scale_slots[s.address]) == 4 for s in scales)


def test_one_centre_and_an_unknown_centre() -> None:
    fleet = build_fleet(["pil"], home=False)
    assert {fleet.sources[d.address].centre for d in fleet.devices} == {"pil"}
    with pytest.raises(ValueError, match="unknown centre"):
        build_fleet(["gangnam"])


def test_measurements_go_to_the_right_memories() -> None:
    import random

    fleet = build_fleet(home=False)
    rng = random.Random(7)
    for _ in range(40):
        fleet.measure_once(rng)
    stored = 0
    for device in fleet.devices:
        if isinstance(device, BloodPressureCuff):
            stored += len(device.memory)
            for reading in device.memory:
                systolic, diastolic = reading.measurement.systolic, reading.measurement.diastolic
                assert isinstance(systolic, Decimal)
                assert isinstance(diastolic, Decimal)
                assert systolic > diastolic
        elif isinstance(device, GlucoseMeter):
            stored += len(device.records)
        else:
            stored += len(device.memory)  # type: ignore[attr-defined]
    assert stored == 40


async def test_a_gateway_scan_finds_the_stations_and_reads_a_cuff(bluez: VirtualBlueZ) -> None:
    fleet = build_fleet(home=False, timing=Timing.fast())
    fleet.add_to(bluez)
    found: dict[str, str] = {}

    def seen(device: BLEDevice, adv: AdvertisementData) -> None:
        found.setdefault(device.address, device.name or "")

    async with BleakScanner(seen, service_uuids=HEALTH_SERVICES):
        await asyncio.sleep(0.3)
    assert set(found) == {d.address for d in fleet.devices}
    cuff = next(d for d in fleet.devices if isinstance(d, BloodPressureCuff))
    cuff.idle_timeout = 1.0
    cuff.take_reading(142, 91, 77, at=datetime(2025, 3, 10, 9, 0, 0))
    device = await BleakScanner.find_device_by_address(cuff.address, timeout=2.0)
    assert device is not None
    inbox = Inbox()
    gone = asyncio.Event()
    async with BleakClient(device, disconnected_callback=lambda c: gone.set()) as client:
        assert await client.read_gatt_char(u("2a24")) == b"UA-651BLE"
        await client.write_gatt_char(u("2a08"), bytes.fromhex("e907030a090500"), response=True)
        await client.start_notify(u("2a35"), inbox.callback(u("2a35")))
        await asyncio.wait_for(gone.wait(), 2)
    (payload,) = inbox.of(u("2a35"))
    reading = decode_measurement(payload)
    assert reading.systolic == Decimal(142)
    assert reading.diastolic == Decimal(91)
    assert reading.pulse_rate == Decimal(77)


async def test_daon_simulate_ble_out_of_process(
    ble_bus: PrivateBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = (
        "import argparse, sys\n"
        "from simulators import ble_cli\n"
        "p = argparse.ArgumentParser(); ble_cli.add_arguments(p)\n"
        "sys.exit(ble_cli.run(p.parse_args(sys.argv[1:])))\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        "--json",
        "--fast",
        "--no-home",
        "--centre",
        "yaksu",
        "--interval",
        "0",
        "--duration",
        "20",
        stdout=asyncio.subprocess.PIPE,
        cwd=os.getcwd(),
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(15):
            line = await proc.stdout.readline()
        ready = json.loads(line)
        assert {d["role"] for d in ready["devices"]} == {
            "cuff",
            "glucose_meter",
            "scale",
            "body_composition",
        }
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", ready["bus"])
        monkeypatch.setenv("PATH", f"{ready['bin_dir']}:{os.environ['PATH']}")
        meter = next(d for d in ready["devices"] if d["role"] == "glucose_meter")
        device = await BleakScanner.find_device_by_address(meter["address"], timeout=3.0)
        assert device is not None
        async with BleakClient(device) as client:
            assert await client.read_gatt_char(u("2a29")) == b"i-SENS"
        await close_bleak_manager()
    finally:
        proc.terminate()
        async with asyncio.timeout(10):
            await proc.wait()
    assert proc.returncode == 0
