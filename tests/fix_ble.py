"""The virtual BlueZ for tests: a private dbus-daemon, and a fresh org.bluez per test.

``ble_bus`` (function scope, one daemon per test) starts ``dbus-daemon`` on a socket in a
short /tmp directory, in about 10 ms, and skips with the reason when the program
is not installed. ``bluez`` (function scope) points ``DBUS_SYSTEM_BUS_ADDRESS`` and ``PATH``
(for the fake ``bluetoothctl``) at it, starts a :class:`~simulators.bluez.VirtualBlueZ` in the
test's own event loop, and stops it afterwards: every object is removed and every link
dropped, so the next test starts from an empty adapter. Mark BLE tests ``@pytest.mark.ble``.

bleak keeps one D-Bus manager per event loop and never re-reads BlueZ's objects; with
pytest-asyncio's function-scoped loops each test gets a new one, and ``bluez`` closes it at
teardown so no manager outlives its loop.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from simulators.bluez import PrivateBus, VirtualBlueZ, find_dbus_daemon
from simulators.bluez.bleak_cleanup import close_bleak_manager


@pytest.fixture
def ble_bus() -> Iterator[PrivateBus]:
    """A private dbus-daemon for this test alone: a D-Bus client an earlier test left behind
    (seen: Connect and Disconnect calls at the same default address from another sender)
    cannot reach the next test's virtual BlueZ. The daemon starts in about 10 ms."""
    if find_dbus_daemon() is None:
        pytest.skip(
            "dbus-daemon is not installed: the virtual BlueZ needs it "
            "(apt-get install dbus-daemon, as root; `make test` run as root installs it)"
        )
    bus = PrivateBus()
    bus.start()
    try:
        yield bus
    finally:
        bus.stop()


@pytest.fixture
async def bluez(
    ble_bus: PrivateBus, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[VirtualBlueZ]:
    """A running virtual org.bluez with adapter hci0 and no peripherals yet."""
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", ble_bus.address)
    monkeypatch.setenv("PATH", f"{ble_bus.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    service = VirtualBlueZ(ble_bus.address, temporary_timeout=5.0, connect_timeout=5.0)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
        await close_bleak_manager()
