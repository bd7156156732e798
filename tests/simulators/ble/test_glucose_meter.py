"""The virtual glucose meter against bleak: records, context, the full RACP, and its faults.

Expected bytes come from ble-profiles.md §4: the measurement layout (flags, sequence number,
base time, SFLOAT concentration, type/location nibbles), "105 mg/dL = 0xB069 (bytes 69 B0)",
and the RACP table of §4.4 (``01 01``, ``01 03 01 <n>``, ``04 01`` → ``05 00 <n>``,
``06 00 01 01`` success, ``06 00 01 06`` no records found, ATT 0x80 / 0x81 on the write).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakGATTProtocolError

from simulators.bluez import Timing, VirtualBlueZ
from simulators.peripherals import Faults, GlucoseMeter
from tests.simulators.ble.helpers import Inbox, u

pytestmark = pytest.mark.ble

MEASUREMENT = u("2a18")
CONTEXT = u("2a34")
RACP = u("2a52")
ADDRESS = "C4:DA:0E:10:00:02"
AT = datetime(2024, 5, 14, 7, 30, 0)
SLOW_NOTIFY = Timing(first_advert=0.012, adv_interval=0.01, notify_gap=0.05)
BASE_TIME = bytes.fromhex("e807050e071e00")  # 2024-05-14 07:30:00


def meter(**options: object) -> GlucoseMeter:
    options.setdefault("timing", Timing.fast())
    options.setdefault("idle_timeout", 1.0)
    return GlucoseMeter.caresens(ADDRESS, **options)  # type: ignore[arg-type]


class Gateway:
    """The gateway's side of §7.3: subscribe everything, then write RACP requests."""

    def __init__(self, client: BleakClient, inbox: Inbox, gone: asyncio.Event) -> None:
        self.client = client
        self.inbox = inbox
        self.gone = gone
        self.answered = 0

    async def request(self, data: str) -> None:
        await self.client.write_gatt_char(RACP, bytes.fromhex(data), response=True)

    async def response(self) -> bytes:
        """The next RACP indication (it may already have arrived)."""
        await self.inbox.wait_for(lambda: len(self.inbox.of(RACP)) > self.answered)
        self.answered += 1
        return self.inbox.of(RACP)[self.answered - 1]


OpenMeter = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def connect(bluez: VirtualBlueZ) -> AsyncIterator[OpenMeter]:
    clients: list[BleakClient] = []

    async def open_session(subscribe_racp: bool = True) -> Gateway:
        device = await BleakScanner.find_device_by_address(ADDRESS, timeout=2.0)
        assert device is not None
        gone = asyncio.Event()
        client = BleakClient(device, disconnected_callback=lambda c: gone.set())
        await client.connect()
        clients.append(client)
        inbox = Inbox()
        await client.start_notify(MEASUREMENT, inbox.callback(MEASUREMENT))
        await client.start_notify(CONTEXT, inbox.callback(CONTEXT))
        if subscribe_racp:
            await client.start_notify(RACP, inbox.callback(RACP))
        return Gateway(client, inbox, gone)

    yield open_session
    for client in clients:
        await client.disconnect()


async def test_report_all_sends_measurements_context_then_success(
    bluez: VirtualBlueZ, connect: OpenMeter
) -> None:
    device = bluez.add_peripheral(meter())
    device.take_reading(105, at=AT)
    device.take_reading(98, meal=1, at=AT)
    gateway = await connect()
    await gateway.request("0101")
    assert await gateway.response() == bytes.fromhex("06000101")
    first, second = gateway.inbox.of(MEASUREMENT)
    # flags 0x02 (concentration, kg/L), seq 1, base time, 105 mg/dL = B069, plasma/finger 0x12
    assert first == bytes.fromhex("020100") + BASE_TIME + bytes.fromhex("69b012")
    # flags 0x12 (context follows), seq 2, 98 mg/dL = 98e-5 kg/L = B062
    assert second == bytes.fromhex("120200") + BASE_TIME + bytes.fromhex("62b012")
    # context: flags 0x02 (meal), seq 2, meal 1 (preprandial)
    assert gateway.inbox.of(CONTEXT) == [bytes.fromhex("02020001")]
    order = [uuid for uuid, _ in gateway.inbox.items]
    assert order == [MEASUREMENT, MEASUREMENT, CONTEXT, RACP]


async def test_report_greater_or_equal_is_the_delta_sync(
    bluez: VirtualBlueZ, connect: OpenMeter
) -> None:
    device = bluez.add_peripheral(meter())
    for value in (100, 110, 120):
        device.take_reading(value, at=AT)
    gateway = await connect()
    await gateway.request("0103010200")
    assert await gateway.response() == bytes.fromhex("06000101")
    assert [m[1:3] for m in gateway.inbox.of(MEASUREMENT)] == [b"\x02\x00", b"\x03\x00"]


async def test_nothing_newer_is_no_records_found(bluez: VirtualBlueZ, connect: OpenMeter) -> None:
    device = bluez.add_peripheral(meter())
    device.take_reading(100, at=AT)
    gateway = await connect()
    await gateway.request("0103010200")
    assert await gateway.response() == bytes.fromhex("06000106")
    assert gateway.inbox.of(MEASUREMENT) == []


async def test_count_first_last_and_range(bluez: VirtualBlueZ, connect: OpenMeter) -> None:
    device = bluez.add_peripheral(meter())
    for value in (100, 110, 120, 130):
        device.take_reading(value, at=AT)
    gateway = await connect()
    await gateway.request("0401")
    assert await gateway.response() == bytes.fromhex("05000400")
    await gateway.request("0403010300")
    assert await gateway.response() == bytes.fromhex("05000200")
    await gateway.request("0105")
    await gateway.response()
    await gateway.request("0106")
    await gateway.response()
    await gateway.request("010401020003 00".replace(" ", ""))
    assert await gateway.response() == bytes.fromhex("06000101")
    sequences = [int.from_bytes(m[1:3], "little") for m in gateway.inbox.of(MEASUREMENT)]
    assert sequences == [1, 4, 2, 3]


async def test_delete_then_count_zero(bluez: VirtualBlueZ, connect: OpenMeter) -> None:
    device = bluez.add_peripheral(meter())
    device.take_reading(100, at=AT)
    gateway = await connect()
    await gateway.request("0201")
    assert await gateway.response() == bytes.fromhex("06000201")
    await gateway.request("0401")
    assert await gateway.response() == bytes.fromhex("05000000")
    await gateway.request("0101")
    assert await gateway.response() == bytes.fromhex("06000106")


async def test_abort_stops_a_running_report(bluez: VirtualBlueZ, connect: OpenMeter) -> None:
    device = bluez.add_peripheral(meter(timing=SLOW_NOTIFY))
    for value in range(100, 140):
        device.take_reading(value, at=AT)
    gateway = await connect()
    await gateway.request("0101")
    await gateway.inbox.wait_for(lambda: len(gateway.inbox.of(MEASUREMENT)) >= 2)
    await gateway.request("0300")
    assert await gateway.response() == bytes.fromhex("06000301")
    await asyncio.sleep(0.15)
    assert len(gateway.inbox.of(MEASUREMENT)) < 40
    assert gateway.inbox.of(RACP) == [bytes.fromhex("06000301")]


async def test_a_second_request_while_one_runs_is_procedure_in_progress(
    bluez: VirtualBlueZ, connect: OpenMeter
) -> None:
    device = bluez.add_peripheral(meter(timing=SLOW_NOTIFY))
    for value in range(100, 110):
        device.take_reading(value, at=AT)
    gateway = await connect()
    await gateway.request("0101")
    with pytest.raises(BleakGATTProtocolError) as err:
        await gateway.request("0401")
    assert err.value.code == 0x80


async def test_racp_without_indications_is_cccd_improperly_configured(
    bluez: VirtualBlueZ, connect: OpenMeter
) -> None:
    bluez.add_peripheral(meter())
    gateway = await connect(subscribe_racp=False)
    with pytest.raises(BleakGATTProtocolError) as err:
        await gateway.request("0101")
    assert err.value.code == 0x81  # GLS 1.0


async def test_newer_att_codes_for_a_meter_that_uses_them(
    bluez: VirtualBlueZ, connect: OpenMeter
) -> None:
    bluez.add_peripheral(meter(common_att_codes=True))
    gateway = await connect(subscribe_racp=False)
    with pytest.raises(BleakGATTProtocolError) as err:
        await gateway.request("0101")
    assert err.value.code == 0xFD


@pytest.mark.parametrize(
    ("request_hex", "response_hex"),
    [
        ("0701", "06000702"),  # unknown op code: op code not supported
        ("0100", "06000103"),  # report with the null operator: invalid operator
        ("0109", "06000104"),  # operator 9: operator not supported
        ("0103", "06000105"),  # >= without its filter: invalid operand
        ("010302e807050e071e00", "06000109"),  # user-facing time filter: operand not supported
        ("01040105000200", "06000105"),  # range 5..2: invalid operand
    ],
)
async def test_requests_the_meter_refuses(
    bluez: VirtualBlueZ, connect: OpenMeter, request_hex: str, response_hex: str
) -> None:
    device = bluez.add_peripheral(meter())
    device.take_reading(100, at=AT)
    gateway = await connect()
    await gateway.request(request_hex)
    assert await gateway.response() == bytes.fromhex(response_hex)


async def test_sequence_numbers_survive_sessions_and_restart_after_a_reset(
    bluez: VirtualBlueZ, connect: OpenMeter
) -> None:
    device = bluez.add_peripheral(meter())
    device.take_reading(100, at=AT)
    device.take_reading(101, at=AT)
    gateway = await connect()
    await gateway.request("0101")
    await gateway.response()
    await gateway.client.disconnect()
    device.take_reading(102, at=AT)
    gateway = await connect()
    await gateway.request("0103010300")  # high-water mark 2 → from 3
    assert await gateway.response() == bytes.fromhex("06000101")
    assert [m[1:3] for m in gateway.inbox.of(MEASUREMENT)] == [b"\x03\x00"]
    await gateway.client.disconnect()
    device.reset_memory()
    device.take_reading(90, at=AT)
    gateway = await connect()
    await gateway.request("0103010400")
    assert await gateway.response() == bytes.fromhex("06000106")  # the gateway must resync
    await gateway.request("0101")
    assert await gateway.response() == bytes.fromhex("06000101")
    assert [m[1:3] for m in gateway.inbox.of(MEASUREMENT)] == [b"\x01\x00"]


async def test_sequence_numbers_wrap(bluez: VirtualBlueZ, connect: OpenMeter) -> None:
    device = bluez.add_peripheral(meter(first_sequence=0xFFFF))
    device.take_reading(100, at=AT)
    device.take_reading(100, at=AT)
    assert [r.sequence for r in device.records] == [0xFFFF, 0]


async def test_control_solution_record(bluez: VirtualBlueZ, connect: OpenMeter) -> None:
    device = bluez.add_peripheral(meter())
    device.take_control_solution(110)
    gateway = await connect()
    await gateway.request("0101")
    await gateway.response()
    (payload,) = gateway.inbox.of(MEASUREMENT)
    assert payload[-1] == 0x4A  # type 10 (control solution), location 4


async def test_busy_and_refusing_faults(bluez: VirtualBlueZ, connect: OpenMeter) -> None:
    device = bluez.add_peripheral(meter(faults=Faults(racp_busy=True)))
    device.take_reading(100, at=AT)
    gateway = await connect()
    with pytest.raises(BleakGATTProtocolError) as err:
        await gateway.request("0101")
    assert err.value.code == 0x80
    device.faults = Faults(racp_refuse=0x08)
    await gateway.request("0101")
    assert await gateway.response() == bytes.fromhex("06000108")  # procedure not completed
    assert gateway.inbox.of(MEASUREMENT) == []


async def test_link_lost_mid_report_has_no_final_response(
    bluez: VirtualBlueZ, connect: OpenMeter
) -> None:
    device = bluez.add_peripheral(meter(faults=Faults(drop_after=2)))
    for value in (100, 110, 120):
        device.take_reading(value, at=AT)
    gateway = await connect()
    await gateway.request("0101")
    await asyncio.wait_for(gateway.gone.wait(), 2)
    assert len(gateway.inbox.of(MEASUREMENT)) == 2
    assert gateway.inbox.of(RACP) == []


async def test_the_meter_hangs_up_when_idle(bluez: VirtualBlueZ, connect: OpenMeter) -> None:
    bluez.add_peripheral(meter(idle_timeout=0.2))
    gateway = await connect()
    await asyncio.sleep(0.4)
    assert not gateway.client.is_connected
    assert "Device1.Disconnect" not in bluez.calls.names()


async def test_the_caresens_clock_is_the_isens_vendor_command(
    bluez: VirtualBlueZ, connect: OpenMeter
) -> None:
    device = bluez.add_peripheral(meter())
    device.clock.reset()
    gateway = await connect()
    clock = u("fff1")
    await gateway.client.start_notify(clock, gateway.inbox.callback(clock))
    # ble-profiles.md §8: C0 03 01 00 <year LE> <mon> <day> <h> <m> <s>; zeros read the clock
    await gateway.client.write_gatt_char(clock, bytes.fromhex("c0030100" + "00" * 7), response=True)
    await gateway.inbox.wait_for(lambda: len(gateway.inbox.of(clock)) == 1)
    assert gateway.inbox.of(clock)[0][:8] == bytes.fromhex("c0030100d0070101")  # 2000-01-01
    await gateway.client.write_gatt_char(
        clock, bytes.fromhex("c0030100e9070c1f173b00"), response=True
    )  # 2025-12-31 23:59:00
    await gateway.inbox.wait_for(lambda: len(gateway.inbox.of(clock)) == 2)
    assert gateway.inbox.of(clock)[1][:10] == bytes.fromhex("c0030100e9070c1f173b")
    assert device.clock.host_set


async def test_the_month_13_firmware_bug(bluez: VirtualBlueZ, connect: OpenMeter) -> None:
    device = bluez.add_peripheral(meter(month_13_bug=True))
    device.take_reading(105, at=datetime(2025, 1, 5, 8, 0, 0))
    gateway = await connect()
    await gateway.request("0101")
    assert await gateway.response() == bytes.fromhex("06000101")
    (payload,) = gateway.inbox.of(MEASUREMENT)
    # base time 2024-13-05 08:00:00 instead of 2025-01-05 (Tidepool's i-SENS comment)
    assert payload[3:10] == bytes.fromhex("e8070d05080000")
