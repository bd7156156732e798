"""The virtual scales against bleak: WSS, multi-packet BCS, users through UDS and consent codes.

Expected bytes come from ble-profiles.md §5: the Weight Measurement layout ("70.00 kg = raw
14000 = B0 36", BMI 0.1 kg/m², height 0.001 m), the BCS flags (bit 12 multiple packet, 20-byte
packets at the default MTU), and the User Control Point (``02 <index> <consent LE>`` →
``20 02 01`` success / ``05`` user not authorized / ``03`` invalid parameter; ``01 <consent>``
→ ``20 01 01 <index>``, ``04`` when full).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, datetime
from decimal import Decimal

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakGATTProtocolError

from devices.gatt.body_composition import decode_measurement, merge_packets
from devices.gatt.current_time import current_time_for, encode_current_time
from simulators.bluez import Timing, VirtualBlueZ
from simulators.peripherals import BodyCompositionScale, WeightScale, seoul_now
from tests.simulators.ble.helpers import Inbox, u

pytestmark = pytest.mark.ble

WEIGHT = u("2a9d")
BODY = u("2a9c")
UCP = u("2a9f")
CTS = u("2a2b")
HEIGHT = u("2a8e")
ADDRESS = "C4:DA:0E:10:00:03"
AT = datetime(2024, 5, 14, 7, 30, 0)
STAMP = bytes.fromhex("e807050e071e00")


def bf720(**options: object) -> BodyCompositionScale:
    options.setdefault("timing", Timing.fast())
    options.setdefault("idle_timeout", 1.0)
    return BodyCompositionScale.beurer_bf720(ADDRESS, **options)  # type: ignore[arg-type]


class Host:
    def __init__(self, client: BleakClient, inbox: Inbox, gone: asyncio.Event) -> None:
        self.client = client
        self.inbox = inbox
        self.gone = gone
        self.answered = 0

    async def control(self, data: str) -> bytes:
        await self.client.write_gatt_char(UCP, bytes.fromhex(data), response=True)
        await self.inbox.wait_for(lambda: len(self.inbox.of(UCP)) > self.answered)
        self.answered += 1
        return self.inbox.of(UCP)[self.answered - 1]


OpenScale = Callable[..., Awaitable[Host]]


@pytest.fixture
async def host(bluez: VirtualBlueZ) -> AsyncIterator[OpenScale]:
    clients: list[BleakClient] = []

    async def open_session(*, ucp: bool = True, write_time: bool = True) -> Host:
        device = await BleakScanner.find_device_by_address(ADDRESS, timeout=2.0)
        assert device is not None
        gone = asyncio.Event()
        client = BleakClient(device, disconnected_callback=lambda c: gone.set())
        await client.connect()
        clients.append(client)
        inbox = Inbox()
        await client.start_notify(WEIGHT, inbox.callback(WEIGHT))
        if client.services.get_characteristic(BODY) is not None:
            await client.start_notify(BODY, inbox.callback(BODY))
        if ucp:
            await client.start_notify(UCP, inbox.callback(UCP))
        if write_time:
            now = encode_current_time(current_time_for(seoul_now()))
            await client.write_gatt_char(CTS, now, response=True)
        return Host(client, inbox, gone)

    yield open_session
    for client in clients:
        await client.disconnect()


async def test_a_and_d_scale_without_users_sends_and_hangs_up(bluez: VirtualBlueZ) -> None:
    scale = WeightScale.and_uc352(ADDRESS, timing=Timing.fast(), idle_timeout=1.0)
    bluez.add_peripheral(scale)
    scale.weigh(70, at=AT)
    device = await BleakScanner.find_device_by_address(ADDRESS, timeout=2.0)
    assert device is not None
    inbox = Inbox()
    gone = asyncio.Event()
    async with BleakClient(device, disconnected_callback=lambda c: gone.set()) as client:
        assert client.services.get_service(u("181c")) is None  # no User Data Service
        await client.start_notify(WEIGHT, inbox.callback(WEIGHT))
        await client.write_gatt_char(u("2a08"), bytes.fromhex("e907030a0f0000"), response=True)
        await asyncio.wait_for(gone.wait(), 2)
    # flags 0x02 (time stamp), 70.00 kg = B0 36, 2024-05-14 07:30:00
    assert inbox.of(WEIGHT) == [bytes.fromhex("02b036") + STAMP]
    assert "Device1.Disconnect" not in bluez.calls.names()


async def test_consent_brings_the_users_weighings_with_body_composition(
    bluez: VirtualBlueZ, host: OpenScale
) -> None:
    scale = bluez.add_peripheral(bf720())
    scale.register_user(1234, height_m=Decimal("1.75"), gender=0, birth=date(1950, 3, 1))
    scale.weigh(70, user=0, at=AT)
    session = await host()
    assert session.inbox.of(WEIGHT) == []  # nothing before consent
    assert await session.control("0200d204") == bytes.fromhex("200201")
    await session.inbox.wait_for(lambda: len(session.inbox.of(WEIGHT)) == 1)
    await session.inbox.wait_for(lambda: len(session.inbox.of(BODY)) >= 2)
    # flags 0x0E: time stamp, user ID 0, BMI 70/1.75² = 22.9 (229 = E5 00), height 1.750 (D6 06)
    assert session.inbox.of(WEIGHT) == [
        bytes.fromhex("0eb036") + STAMP + bytes.fromhex("00e500d606")
    ]
    packets = session.inbox.of(BODY)
    assert all(len(p) <= 20 for p in packets)  # default ATT_MTU 23
    assert all(int.from_bytes(p[:2], "little") & 0x1000 for p in packets)  # multiple packet
    merged = merge_packets([decode_measurement(p) for p in packets])
    assert merged.user_id == 0
    assert merged.weight == Decimal("70.000")
    assert merged.height == Decimal("1.750")
    assert merged.body_fat_pct is not None


async def test_a_wrong_consent_code_gets_nothing(bluez: VirtualBlueZ, host: OpenScale) -> None:
    scale = bluez.add_peripheral(bf720())
    scale.register_user(1234, height_m=Decimal("1.75"), gender=0, birth=date(1950, 3, 1))
    scale.weigh(70, user=0, at=AT)
    session = await host()
    assert await session.control("0200d304") == bytes.fromhex("200205")  # 1235: not authorized
    assert await session.control("0205d204") == bytes.fromhex("200203")  # no user 5
    await asyncio.sleep(0.05)
    assert session.inbox.of(WEIGHT) == []
    with pytest.raises(BleakGATTProtocolError) as err:
        await session.client.read_gatt_char(HEIGHT)
    assert err.value.code == 0x80  # UDS: user data access not permitted


async def test_user_data_after_consent(bluez: VirtualBlueZ, host: OpenScale) -> None:
    scale = bluez.add_peripheral(bf720())
    scale.register_user(4321, height_m=Decimal("1.62"), gender=1, birth=date(1948, 7, 9))
    session = await host()
    assert await session.control("0200e110") == bytes.fromhex("200201")
    assert await session.client.read_gatt_char(HEIGHT) == bytes.fromhex("a200")  # 162 cm
    assert await session.client.read_gatt_char(u("2a8c")) == b"\x01"  # female
    assert await session.client.read_gatt_char(u("2a9a")) == b"\x00"  # user index 0
    await session.client.write_gatt_char(HEIGHT, bytes.fromhex("a300"), response=True)
    assert scale.users[0].height_m == Decimal("1.630")


async def test_register_new_user_until_the_slots_are_full(
    bluez: VirtualBlueZ, host: OpenScale
) -> None:
    bluez.add_peripheral(bf720(max_users=2))
    session = await host()
    assert await session.control("01d204") == bytes.fromhex("20010100")
    assert await session.control("012e16") == bytes.fromhex("20010101")
    assert await session.control("01e803") == bytes.fromhex("200104")  # operation failed: full
    assert await session.control("03") == bytes.fromhex("200301")  # delete the current user (1)
    assert await session.control("0201e803") == bytes.fromhex("200203")  # user 1 is gone


async def test_ucp_without_indications_is_cccd_improperly_configured(
    bluez: VirtualBlueZ, host: OpenScale
) -> None:
    bluez.add_peripheral(bf720())
    session = await host(ucp=False)
    with pytest.raises(BleakGATTProtocolError) as err:
        await session.client.write_gatt_char(UCP, bytes.fromhex("0200d204"), response=True)
    assert err.value.code == 0xFD


async def test_weighings_of_unknown_users_need_no_consent(
    bluez: VirtualBlueZ, host: OpenScale
) -> None:
    scale = bluez.add_peripheral(bf720())
    scale.weigh(Decimal("80.5"), at=AT)
    session = await host()
    await session.inbox.wait_for(lambda: len(session.inbox.of(BODY)) == 1)
    # flags 0x06: time stamp + user ID 0xFF; 80.5 kg = 16100 = E4 3E
    assert session.inbox.of(WEIGHT) == [bytes.fromhex("06e43e") + STAMP + b"\xff"]
    # body composition without a known user: "measurement unsuccessful" (body fat 0xFFFF)
    (packet,) = session.inbox.of(BODY)
    assert packet == bytes.fromhex("0600ffff") + STAMP + b"\xff"


async def test_a_live_weighing_reaches_the_consented_host_at_once(
    bluez: VirtualBlueZ, host: OpenScale
) -> None:
    scale = bluez.add_peripheral(bf720())
    scale.register_user(1234, height_m=Decimal("1.75"), gender=0, birth=date(1950, 3, 1))
    session = await host()
    assert await session.control("0200d204") == bytes.fromhex("200201")
    scale.weigh(71, user=0, at=AT)
    await session.inbox.wait_for(lambda: len(session.inbox.of(WEIGHT)) == 1)
    assert session.inbox.of(WEIGHT)[0][1:3] == bytes.fromhex("7837")  # 71 kg = 14200


async def test_an_unsuccessful_weighing(bluez: VirtualBlueZ, host: OpenScale) -> None:
    scale = bluez.add_peripheral(bf720())
    scale.weigh(0, at=AT, unsuccessful=True)
    session = await host()
    await session.inbox.wait_for(lambda: len(session.inbox.of(WEIGHT)) == 1)
    assert session.inbox.of(WEIGHT)[0][1:3] == b"\xff\xff"
