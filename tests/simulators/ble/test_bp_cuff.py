"""The virtual blood-pressure cuff against bleak: Omron/A&D behaviour and its fault knobs.

Expected bytes come from ble-profiles.md §3.1 (the BPM layout) and virtual-bluez.md (the cuff
reading ``0e 8000 5200 6100 e807050e071e00 4800 01``: 128/82 MAP 97, 2024-05-14 07:30:00,
pulse 72, user 1).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakDBusError, BleakGATTProtocolError

from devices.errors import DecodeError
from devices.gatt.blood_pressure import BloodPressureMeasurement, decode_measurement
from devices.gatt.current_time import current_time_for, encode_current_time
from devices.ieee11073 import DateTime
from simulators.bluez import PairingMethod, Timing, VirtualBlueZ
from simulators.peripherals import BloodPressureCuff, Faults, seoul_now
from tests.simulators.ble.helpers import Inbox, PasskeyAgent, register_agent, u

pytestmark = pytest.mark.ble

BPM = u("2a35")
CTS = u("2a2b")
DATE_TIME = u("2a08")
ADDRESS = "C4:DA:0E:10:00:01"

# virtual-bluez.md, cuff reading 1 (flags 0x0E: mmHg, time stamp, pulse, user ID).
READING_1 = bytes.fromhex("0e800052006100e807050e071e00480001")
READING_1_VALUE = BloodPressureMeasurement(
    Decimal(128),
    Decimal(82),
    Decimal(97),
    timestamp=DateTime(2024, 5, 14, 7, 30, 0),
    pulse_rate=Decimal(72),
    user_id=1,
)
# Reading 2 with measurement status 0 (flags 0x1E): 121/79 MAP 93, pulse 68, user 1.
READING_2 = bytes.fromhex("1e79004f005d00e807050e08000044000100 00".replace(" ", ""))
READING_2_VALUE = BloodPressureMeasurement(
    Decimal(121),
    Decimal(79),
    Decimal(93),
    timestamp=DateTime(2024, 5, 14, 8, 0, 0),
    pulse_rate=Decimal(68),
    user_id=1,
    status_raw=0,
)


def omron(**options: object) -> BloodPressureCuff:
    options.setdefault("timing", Timing.fast())
    options.setdefault("idle_timeout", 0.5)
    return BloodPressureCuff.omron(ADDRESS, **options)  # type: ignore[arg-type]


def time_now() -> bytes:
    return encode_current_time(current_time_for(seoul_now()))


async def session(
    bluez: VirtualBlueZ,
    *,
    time_uuid: str | None = CTS,
    pair: bool = False,
    within: float = 3.0,
) -> tuple[Inbox, list[str]]:
    """What a gateway does with an Omron cuff: subscribe, write the time, wait for the hang-up."""
    device = await BleakScanner.find_device_by_address(ADDRESS, timeout=2.0)
    assert device is not None
    inbox = Inbox()
    gone = asyncio.Event()
    async with BleakClient(device, disconnected_callback=lambda c: gone.set(), pair=pair) as client:
        await client.start_notify(BPM, inbox.callback(BPM))
        if time_uuid is not None:
            await client.write_gatt_char(time_uuid, time_now(), response=True)
        await asyncio.wait_for(gone.wait(), within)
    return inbox, bluez.calls.names()


async def test_cuff_indicates_its_memory_after_the_time_write_then_hangs_up(
    bluez: VirtualBlueZ,
) -> None:
    cuff = bluez.add_peripheral(omron())
    cuff.store(READING_1_VALUE)
    cuff.store(READING_2_VALUE)
    inbox, calls = await session(bluez)
    assert inbox.of(BPM) == [READING_1, READING_2]
    assert "Device1.Disconnect" not in calls  # the cuff hung up, bleak sent nothing
    assert all(r.sent for r in cuff.memory)


async def test_taken_readings_carry_the_device_clock_user_and_status(bluez: VirtualBlueZ) -> None:
    cuff = bluez.add_peripheral(omron())
    cuff.take_reading(
        128, 82, 72, user=2, status=("irregular_pulse",), at=datetime(2024, 5, 14, 7, 30)
    )
    inbox, _ = await session(bluez)
    (payload,) = inbox.of(BPM)
    # flags 0x1E, 128/82 MAP 97, 2024-05-14 07:30:00, pulse 72, user 2, status bit 2
    assert payload == bytes.fromhex("1e800052006100e807050e071e0048000204 00".replace(" ", ""))


async def test_without_a_time_write_the_cuff_sends_nothing_and_gives_up(
    bluez: VirtualBlueZ,
) -> None:
    cuff = bluez.add_peripheral(omron(idle_timeout=0.2))
    cuff.store(READING_1_VALUE)
    inbox, calls = await session(bluez, time_uuid=None)
    assert inbox.of(BPM) == []
    assert "Device1.Disconnect" not in calls
    assert not cuff.memory[0].sent


async def test_omron_notifies_its_clock_and_waits_for_the_answer(bluez: VirtualBlueZ) -> None:
    cuff = bluez.add_peripheral(omron())
    cuff.clock.reset()  # battery change: back to 2000-01-01
    cuff.take_reading(131, 85, 70)  # stamped by the reset clock
    device = await BleakScanner.find_device_by_address(ADDRESS, timeout=2.0)
    assert device is not None
    inbox = Inbox()
    gone = asyncio.Event()
    async with BleakClient(device, disconnected_callback=lambda c: gone.set()) as client:
        await client.start_notify(BPM, inbox.callback(BPM))
        await client.start_notify(CTS, inbox.callback(CTS))
        await inbox.wait_for(lambda: bool(inbox.of(CTS)))
        assert inbox.of(CTS)[0][:4] == bytes.fromhex("d0070101")  # year 2000, Jan 1
        assert inbox.of(BPM) == []
        await client.write_gatt_char(CTS, time_now(), response=True)
        await asyncio.wait_for(gone.wait(), 2)
    (payload,) = inbox.of(BPM)
    assert payload[7:11] == bytes.fromhex("d0070101")  # the reading keeps its 2000 stamp
    assert cuff.clock.host_set
    assert abs(cuff.clock.error.total_seconds()) < 5


async def test_a_and_d_cuff_takes_the_time_as_date_time_in_the_bp_service(
    bluez: VirtualBlueZ,
) -> None:
    cuff = BloodPressureCuff.and_ua651(ADDRESS, timing=Timing.fast(), idle_timeout=0.5)
    bluez.add_peripheral(cuff)
    cuff.store(READING_1_VALUE)
    device = await BleakScanner.find_device_by_address(ADDRESS, timeout=2.0)
    assert device is not None
    inbox = Inbox()
    gone = asyncio.Event()
    async with BleakClient(device, disconnected_callback=lambda c: gone.set()) as client:
        date_time = client.services.get_service(u("1810")).get_characteristic(DATE_TIME)  # type: ignore[union-attr]
        assert date_time is not None
        assert client.services.get_service(u("1805")) is None  # no CTS on the A&D
        await client.write_gatt_char(date_time, bytes.fromhex("e907030a0f0000"), response=True)
        await client.start_notify(BPM, inbox.callback(BPM))
        await asyncio.wait_for(gone.wait(), 2)
    assert inbox.of(BPM) == [READING_1]
    assert (cuff.name or "").startswith("A&D_UA-651BLE_")


async def test_a_link_lost_mid_transfer_keeps_the_rest_for_next_time(bluez: VirtualBlueZ) -> None:
    cuff = bluez.add_peripheral(omron(faults=Faults(drop_after=1)))
    cuff.store(READING_1_VALUE)
    cuff.store(READING_2_VALUE)
    inbox, _ = await session(bluez)
    assert inbox.of(BPM) == [READING_1]
    assert [r.sent for r in cuff.memory] == [True, False]
    cuff.faults = Faults()
    inbox, _ = await session(bluez)
    assert inbox.of(BPM) == [READING_2]


async def test_resend_all_sends_the_whole_memory_every_time(bluez: VirtualBlueZ) -> None:
    cuff = bluez.add_peripheral(omron(faults=Faults(resend_all=True)))
    cuff.store(READING_1_VALUE)
    first, _ = await session(bluez)
    cuff.store(READING_2_VALUE)
    second, _ = await session(bluez)
    assert first.of(BPM) == [READING_1]
    assert second.of(BPM) == [READING_1, READING_2]


async def test_delete_after_transfer_empties_the_memory(bluez: VirtualBlueZ) -> None:
    cuff = bluez.add_peripheral(omron(delete_after_transfer=True))
    cuff.store(READING_1_VALUE)
    await session(bluez)
    assert cuff.memory == []


async def test_truncated_and_corrupt_payloads(bluez: VirtualBlueZ) -> None:
    cuff = bluez.add_peripheral(omron(faults=Faults(truncate={0}, corrupt={1})))
    cuff.store(READING_1_VALUE)
    cuff.store(READING_1_VALUE)
    inbox, _ = await session(bluez)
    truncated, corrupt = inbox.of(BPM)
    assert truncated == READING_1[:-2]
    with pytest.raises(DecodeError):
        decode_measurement(truncated)  # flags announce a user ID and pulse that are gone
    assert corrupt == READING_1[:1] + bytes(b ^ 0xFF for b in READING_1[1:])


async def test_a_refused_time_write_is_an_att_0x80_and_the_clock_stays_wrong(
    bluez: VirtualBlueZ,
) -> None:
    cuff = bluez.add_peripheral(omron(faults=Faults(refuse_time_write=True)))
    cuff.clock.reset()
    cuff.take_reading(120, 80, 60)
    device = await BleakScanner.find_device_by_address(ADDRESS, timeout=2.0)
    assert device is not None
    inbox = Inbox()
    gone = asyncio.Event()
    async with BleakClient(device, disconnected_callback=lambda c: gone.set()) as client:
        await client.start_notify(BPM, inbox.callback(BPM))
        with pytest.raises(BleakGATTProtocolError) as err:
            await client.write_gatt_char(CTS, time_now(), response=True)
        assert err.value.code == 0x80
        await asyncio.wait_for(gone.wait(), 2)
    (payload,) = inbox.of(BPM)
    assert payload[7:9] == bytes.fromhex("d007")
    assert not cuff.clock.host_set


async def test_pairing_required_with_a_passkey(bluez: VirtualBlueZ) -> None:
    cuff = bluez.add_peripheral(omron())
    cuff.require_pairing(PairingMethod.PASSKEY, passkey=135790)
    cuff.store(READING_1_VALUE)
    device = await BleakScanner.find_device_by_address(ADDRESS, timeout=2.0)
    assert device is not None
    async with BleakClient(device) as client:
        with pytest.raises(BleakDBusError) as err:
            await client.start_notify(BPM, lambda c, d: None)
        assert err.value.dbus_error == "org.bluez.Error.NotPermitted"
    agent_bus = await register_agent(bluez.address, PasskeyAgent(135790))
    try:
        inbox, _ = await session(bluez, pair=True)
    finally:
        agent_bus.disconnect()
    assert inbox.of(BPM) == [READING_1]


async def test_not_in_pairing_mode_refuses_a_new_bond(bluez: VirtualBlueZ) -> None:
    cuff = bluez.add_peripheral(omron())
    cuff.set_pairing_mode(False)
    assert (cuff.name or "").startswith("BLESmart_")
    device = await BleakScanner.find_device_by_address(ADDRESS, timeout=2.0)
    assert device is not None
    with pytest.raises(BleakDBusError) as err:
        async with BleakClient(device, pair=True):
            pass
    assert err.value.dbus_error == "org.bluez.Error.AuthenticationFailed"


async def test_bond_lost_after_a_battery_change(bluez: VirtualBlueZ) -> None:
    cuff = bluez.add_peripheral(omron(), known=True)
    cuff.forget_bonds()
    device = await BleakScanner.find_device_by_address(ADDRESS, timeout=2.0)
    assert device is not None
    with pytest.raises(BleakDBusError) as err:
        async with BleakClient(device):
            pass
    assert err.value.dbus_error_details == "le-connection-key-missing"


async def test_omron_manufacturer_data(bluez: VirtualBlueZ) -> None:
    cuff = bluez.add_peripheral(omron())
    cuff.clock.reset()
    cuff.take_reading(120, 80, 60, user=1)
    found: asyncio.Future[dict[int, bytes]] = asyncio.get_running_loop().create_future()

    def seen(device: object, adv: object) -> None:
        if not found.done():
            found.set_result(adv.manufacturer_data)  # type: ignore[attr-defined]

    async with BleakScanner(seen, service_uuids=[u("1810")]):
        data = await asyncio.wait_for(found, 2)
    # 01 tag; flags: 2 users (1), time not set (0x04), pairing mode (0x08), standard (0x20);
    # user 1: sequence 1, 1 record waiting; user 2: nothing.
    assert data == {0x020E: bytes.fromhex("012d" + "010001" + "000000")}


async def test_slow_advertising_is_missed_by_a_short_scan(bluez: VirtualBlueZ) -> None:
    cuff = bluez.add_peripheral(omron())
    cuff.advertise_sparsely(interval=0.4, loss=0.0)
    cuff.timing = replace(cuff.timing, first_advert=0.3)
    assert await BleakScanner.find_device_by_address(ADDRESS, timeout=0.15) is None
    assert await BleakScanner.find_device_by_address(ADDRESS, timeout=1.5) is not None


async def test_sparse_advertising_loses_most_adverts(bluez: VirtualBlueZ) -> None:
    cuff = bluez.add_peripheral(omron())
    cuff.advertise_sparsely(interval=0.01, loss=0.9)
    seen: list[float] = []
    loop = asyncio.get_running_loop()
    async with BleakScanner(lambda d, a: seen.append(loop.time()), service_uuids=[u("1810")]):
        await asyncio.sleep(0.5)
    assert 1 <= len(seen) < 25  # about 50 advertising events, 90 % of them unheard


async def test_the_cuff_advertises_only_for_a_window_after_measuring(bluez: VirtualBlueZ) -> None:
    cuff = bluez.add_peripheral(omron())
    cuff.advert_window = 0.2
    cuff.advertising = False
    assert await BleakScanner.find_device_by_address(ADDRESS, timeout=0.1) is None
    cuff.take_reading(120, 80, 60)
    assert await BleakScanner.find_device_by_address(ADDRESS, timeout=1.0) is not None
    await asyncio.sleep(0.25)
    assert not cuff.advertising
