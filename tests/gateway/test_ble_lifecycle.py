"""Every BLE connection of the gateway is released on every path (issue 12.1).

bleak (3.1, BlueZ backend) opens one D-Bus connection per ``BleakClient.connect`` and closes
it only in ``disconnect()``, even when the device has already hung up. A gateway that skipped
``disconnect()`` after the device's own hang-up (the normal end of a cuff's transfer) kept one
D-Bus connection and one descriptor per session, and stopped after the bus's per-user limit
(``make demo`` stopped collecting after about six minutes). These tests count the connections
on the private bus (``ListNames``) and this process's descriptors across repeated sessions of
each kind: normal, device gone mid-transfer, connect timed out, connect refused, cancelled
mid-connect and mid-transfer.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from dbus_fast import Message
from dbus_fast.aio import MessageBus

from gateway.binding import Binder
from gateway.ble import BleSide
from gateway.config import BleConfig, DeviceConfig
from gateway.errors import BleError
from gateway.outbox import Outbox
from gateway.sink import Sink
from simulators.bluez import Timing, VirtualBlueZ
from simulators.peripherals import BloodPressureCuff, Faults
from tests.gateway.helpers import STATION, make_config

pytestmark = pytest.mark.ble

ADDRESS = "C0:11:22:33:55:01"
CYCLES = 6


async def bus_connections(address: str) -> int:
    """Connections on the private bus, not counting the one asking."""
    bus = await MessageBus(bus_address=address).connect()
    try:
        reply = await bus.call(
            Message(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus",
                member="ListNames",
            )
        )
        assert reply is not None
        return sum(1 for name in reply.body[0] if name.startswith(":")) - 1
    finally:
        bus.disconnect()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@contextlib.asynccontextmanager
async def ble_side(tmp_path: Path, bluez: VirtualBlueZ) -> AsyncIterator[BleSide]:
    device = DeviceConfig(address=ADDRESS, model="UA-651BLE", id="cuff-1", station=STATION)
    ble = BleConfig(
        connect_timeout_s=2.0,
        safety_timeout_s=4.0,
        attempts=2,
        settle_s=0.0,
        idle_timeout_s=0.5,
        transfer_timeout_s=10.0,
        rescan_s=1.0,
        cooldown_s=0.0,
        backoff_s=0.01,
    )
    config = make_config(
        tmp_path, central_url="mqtt://127.0.0.1:1", topic_root="t", devices=[device], ble=ble
    )
    async with Outbox(config.outbox) as outbox:
        binder = Binder(stations=config.station_ids, window_s=config.checkin_window_s)
        yield BleSide(config, binder=binder, outbox=outbox, sink=Sink(outbox))


async def one_session(side: BleSide, cuff: BloodPressureCuff) -> None:
    cuff.advertising = True
    cuff.take_reading(124, 81, 70)
    seen = None
    async with asyncio.timeout(10):
        while seen is None:
            seen = await side.scan_once()
    await side.serve(seen)


async def assert_flat(
    bluez: VirtualBlueZ, cycle: Callable[[], Awaitable[None]], cycles: int = CYCLES
) -> None:
    await cycle()  # bleak's manager connection and first-use state settle here
    await asyncio.sleep(0.05)
    gc.collect()  # earlier tests' closed loops: what they left is closed now, not counted
    before = (await bus_connections(bluez.address), open_fds())
    for _ in range(cycles):
        await cycle()
    # A close the bus daemon has not processed yet (a loaded machine, a cancelled session's
    # disconnect still on its way) settles within moments; a leak never does.
    deadline = asyncio.get_running_loop().time() + 5.0
    while True:
        await asyncio.sleep(0.05)
        gc.collect()  # a leak of this loop is still referenced by it: collection cannot hide it
        after = (await bus_connections(bluez.address), open_fds())
        if after == before or asyncio.get_running_loop().time() > deadline:
            break
    assert after == before, f"(D-Bus connections, descriptors) went {before} -> {after}"


async def test_normal_sessions_release_their_connection(
    tmp_path: Path, bluez: VirtualBlueZ
) -> None:
    cuff = bluez.add_peripheral(BloodPressureCuff.and_ua651(ADDRESS, timing=Timing.fast()))
    async with ble_side(tmp_path, bluez) as side:
        await assert_flat(bluez, lambda: one_session(side, cuff))
        assert cuff.session is None  # the cuff hung up by itself each time


async def test_device_gone_mid_transfer_releases_its_connection(
    tmp_path: Path, bluez: VirtualBlueZ
) -> None:
    cuff = bluez.add_peripheral(BloodPressureCuff.and_ua651(ADDRESS, timing=Timing.fast()))
    cuff.faults = Faults(drop_after=1)

    async def cycle() -> None:
        cuff.take_reading(130, 85, 71)  # two records waiting, the link drops after one
        await one_session(side, cuff)

    async with ble_side(tmp_path, bluez) as side:
        await assert_flat(bluez, cycle)


async def test_failed_connects_release_their_connection(
    tmp_path: Path, bluez: VirtualBlueZ
) -> None:
    """BlueZ answers le-connection-timeout (the device stopped advertising after the scan)."""
    bluez.connect_timeout = 0.05
    cuff = bluez.add_peripheral(BloodPressureCuff.and_ua651(ADDRESS, timing=Timing.fast()))

    async def cycle() -> None:
        cuff.advertising = True
        async with asyncio.timeout(10):
            seen = None
            while seen is None:
                seen = await side.scan_once()
        cuff.advertising = False
        await side.serve(seen)  # logs the failure, never raises

    async with ble_side(tmp_path, bluez) as side:
        await assert_flat(bluez, cycle)
        assert side.sessions == CYCLES + 1


async def test_refused_connects_release_their_connection(
    tmp_path: Path, bluez: VirtualBlueZ
) -> None:
    bluez.add_peripheral(BloodPressureCuff.and_ua651(ADDRESS, timing=Timing.fast()))

    async def cycle() -> None:
        async with asyncio.timeout(10):
            seen = None
            while seen is None:
                seen = await side.scan_once()
        bluez.set_blocked(ADDRESS)
        try:
            with pytest.raises(BleError, match="could not connect"):
                await side.connect(seen.device, pair=False)
        finally:
            bluez.set_blocked(ADDRESS, False)

    async with ble_side(tmp_path, bluez) as side:
        await assert_flat(bluez, cycle)


async def test_cancelled_sessions_release_their_connection(
    tmp_path: Path, bluez: VirtualBlueZ
) -> None:
    """Cancelled while connecting (device silent) and while transferring."""
    bluez.connect_timeout = 5.0
    cuff = bluez.add_peripheral(BloodPressureCuff.and_ua651(ADDRESS, timing=Timing.fast()))

    async def cancelled(when: str) -> None:
        cuff.advertising = True
        cuff.take_reading(124, 81, 70)
        async with asyncio.timeout(10):
            seen = None
            while seen is None:
                seen = await side.scan_once()
        if when == "connect":
            cuff.advertising = False  # Connect stays pending in BlueZ
        task = asyncio.create_task(side.serve(seen))
        await asyncio.sleep(0.03 if when == "transfer" else 0.2)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async with ble_side(tmp_path, bluez) as side:
        await assert_flat(bluez, lambda: cancelled("connect"))
        await assert_flat(bluez, lambda: cancelled("transfer"))
