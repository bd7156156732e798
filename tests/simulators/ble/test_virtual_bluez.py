"""The virtual BlueZ against the unmodified bleak client (virtual-bluez.md, bluetoothd behaviour).

Expected behaviour and error names come from virtual-bluez.md ("The D-Bus surface bleak 3.1
actually uses", "Gotchas", "Edge cases") and bluetoothd's src/error.c / gatt-client.c.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakDBusError,
    BleakDeviceNotFoundError,
    BleakError,
    BleakGATTProtocolError,
    BleakGATTProtocolErrorCode,
)
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from simulators.bluez import Link, PrivateBus, Security, Timing, VirtualBlueZ, virtual_bluez
from simulators.bluez.peripheral import PairingMethod
from tests.fix_ble import close_bleak_manager
from tests.simulators.ble.helpers import Gadget, PasskeyAgent, register_agent, u

pytestmark = pytest.mark.ble

BPS = u("1810")


async def find(address: str, within: float = 2.0) -> BLEDevice:
    device = await BleakScanner.find_device_by_address(address, timeout=within)
    assert device is not None, f"{address} not found"
    return device


async def test_scan_with_128_bit_filter_finds_the_device(bluez: VirtualBlueZ) -> None:
    gadget = bluez.add_peripheral(Gadget())
    device = await BleakScanner.find_device_by_filter(
        lambda d, adv: True, timeout=2.0, service_uuids=[BPS]
    )
    assert device is not None
    assert device.address == gadget.address
    assert device.name == "Gadget"
    assert bluez.calls.names()[:3] == [
        "ObjectManager.GetManagedObjects",
        "Adapter1.SetDiscoveryFilter",
        "Adapter1.StartDiscovery",
    ]


async def test_a_16_bit_filter_string_never_matches(bluez: VirtualBlueZ) -> None:
    # bleak compares filter strings literally (virtual-bluez.md gotcha 2).
    bluez.add_peripheral(Gadget())
    device = await BleakScanner.find_device_by_filter(
        lambda d, adv: True, timeout=0.3, service_uuids=["1810"]
    )
    assert device is None


async def test_a_device_advertising_another_service_is_filtered_out(bluez: VirtualBlueZ) -> None:
    bluez.add_peripheral(Gadget())
    device = await BleakScanner.find_device_by_filter(
        lambda d, adv: True, timeout=0.3, service_uuids=[u("1808")]
    )
    assert device is None


async def test_scan_timeout_stops_discovery(bluez: VirtualBlueZ) -> None:
    device = await BleakScanner.find_device_by_filter(lambda d, adv: True, timeout=0.2)
    assert device is None
    names = bluez.calls.names()
    assert names[-2:] == ["Adapter1.StopDiscovery", "Adapter1.SetDiscoveryFilter"]
    assert bluez.calls.find("SetDiscoveryFilter")[-1].args == ({},)


async def test_advertisement_data_reaches_bleak(bluez: VirtualBlueZ) -> None:
    gadget = Gadget(manufacturer_data={0x020E: b"\x01\x04"}, tx_power=4, rssi=-55)
    gadget.service_data = {"1810": b"\x07"}
    bluez.add_peripheral(gadget)
    seen: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    def callback(device: BLEDevice, adv: object) -> None:
        if not seen.done():
            seen.set_result(adv)

    async with BleakScanner(callback, service_uuids=[BPS]):
        adv = await asyncio.wait_for(seen, 2.0)
    assert adv.manufacturer_data == {0x020E: b"\x01\x04"}  # type: ignore[attr-defined]
    assert adv.service_data == {BPS: b"\x07"}  # type: ignore[attr-defined]
    assert adv.tx_power == 4  # type: ignore[attr-defined]
    assert adv.rssi == -55  # type: ignore[attr-defined]
    assert adv.service_uuids == [BPS]  # type: ignore[attr-defined]


async def test_connect_read_and_service_layout(bluez: VirtualBlueZ) -> None:
    gadget = bluez.add_peripheral(Gadget())
    device = await find(gadget.address)
    async with BleakClient(device) as client:
        assert await client.read_gatt_char(u("2a29")) == b"Acme Medical"
        uuids = {s.uuid for s in client.services}
        assert uuids == {u("1801"), u("180a"), u("1810")}
        bps = client.services.get_service(BPS)
        assert bps is not None
        handles = sorted(c.handle for c in bps.characteristics)
        assert len(set(handles)) == 4
        cccd = bps.get_characteristic(u("2a35")).get_descriptor(u("2902"))  # type: ignore[union-attr]
        assert cccd is not None
    # this client's calls: the bus is shared by the worker's tests, and a client another test
    # left behind may knock at the same default address while this one runs
    ours = bluez.calls.find("Disconnect")
    assert ours, "a local disconnect calls Device1.Disconnect"
    connect = [c for c in bluez.calls.find("Connect") if c.sender == ours[-1].sender]
    assert len(connect) == 1
    assert connect[0].error is None
    assert not bluez.is_connected(gadget.address)


async def test_notifications_and_indications_through_start_notify(bluez: VirtualBlueZ) -> None:
    gadget = bluez.add_peripheral(Gadget())

    def on_sub(link: Link, uuid: str) -> None:
        async def burst() -> None:
            await link.notify(uuid, b"\x01\x02")
            await link.notify(uuid, b"\x03")

        link.spawn(burst())

    gadget.on_sub = on_sub
    device = await find(gadget.address)
    got: asyncio.Queue[bytes] = asyncio.Queue()
    async with BleakClient(device) as client:
        await client.start_notify(u("2a36"), lambda c, d: got.put_nowait(bytes(d)))
        assert await asyncio.wait_for(got.get(), 1) == b"\x01\x02"
        assert await asyncio.wait_for(got.get(), 1) == b"\x03"
    assert u("2a36") in gadget.subscriptions


async def notify_once(link: Link, uuid: str) -> None:
    await link.notify(uuid, b"\x2a")


async def test_acquire_notify_passes_a_socket(bluez: VirtualBlueZ) -> None:
    gadget = bluez.add_peripheral(Gadget())
    gadget.on_sub = lambda link, uuid: link.spawn(notify_once(link, uuid))
    device = await find(gadget.address)
    got: asyncio.Queue[bytes] = asyncio.Queue()
    async with BleakClient(device) as client:
        await client.start_notify(
            u("2a36"),
            lambda c, d: got.put_nowait(bytes(d)),
            bluez={"use_start_notify": False},
        )
        assert await asyncio.wait_for(got.get(), 1) == b"\x2a"
    assert bluez.calls.find("AcquireNotify")
    assert not bluez.calls.find("StartNotify")


async def test_remote_hang_up_is_seen_without_a_disconnect_call(bluez: VirtualBlueZ) -> None:
    gadget = bluez.add_peripheral(Gadget())
    device = await find(gadget.address)
    gone = asyncio.Event()
    async with BleakClient(device, disconnected_callback=lambda c: gone.set()):
        gadget.hang_up()
        await asyncio.wait_for(gone.wait(), 1)
    assert not bluez.calls.find("Disconnect")
    disconnected_reasons = [c for c in bluez.calls if c.member == "Disconnect"]
    assert disconnected_reasons == []


async def test_gatt_errors_are_bluetoothd_errors(bluez: VirtualBlueZ) -> None:
    gadget = bluez.add_peripheral(Gadget())
    device = await find(gadget.address)
    async with BleakClient(device) as client:
        with pytest.raises(BleakGATTProtocolError) as read_err:
            await client.read_gatt_char(u("2a36"))  # notify only
        assert read_err.value.code is BleakGATTProtocolErrorCode.READ_NOT_PERMITTED
        with pytest.raises(BleakGATTProtocolError) as cmd_err:
            await client.write_gatt_char(u("2a52"), b"\x01\x01", response=False)
        assert cmd_err.value.code is BleakGATTProtocolErrorCode.REQUEST_NOT_SUPPORTED
        with pytest.raises(BleakGATTProtocolError) as write_err:
            await client.write_gatt_char(u("2a29"), b"x", response=True)
        assert write_err.value.code is BleakGATTProtocolErrorCode.WRITE_NOT_PERMITTED


async def test_concurrent_reads_on_one_characteristic_get_in_progress_and_retry(
    bluez: VirtualBlueZ,
) -> None:
    gadget = bluez.add_peripheral(Gadget())
    gadget.read_delay = 0.05
    device = await find(gadget.address)
    async with BleakClient(device) as client:
        first, second = await asyncio.gather(
            client.read_gatt_char(u("2a29")), client.read_gatt_char(u("2a29"))
        )
    assert first == second == b"Acme Medical"
    assert any(c.error == "org.bluez.Error.InProgress" for c in bluez.calls.find("ReadValue"))


async def test_connect_by_unknown_address_is_device_not_found(bluez: VirtualBlueZ) -> None:
    with pytest.raises(BleakDeviceNotFoundError):
        async with BleakClient("C0:00:00:00:00:99", timeout=0.3):
            pass


async def test_a_removed_device_is_gone_for_bleak(bluez: VirtualBlueZ) -> None:
    gadget = bluez.add_peripheral(Gadget())
    device = await find(gadget.address)
    bluez.remove_device(gadget.address)
    with pytest.raises(BleakError, match="not found"):
        async with BleakClient(device, timeout=1.0):
            pass


async def test_calls_to_removed_objects_answer_unknown_object(bluez: VirtualBlueZ) -> None:
    gadget = bluez.add_peripheral(Gadget())
    await find(gadget.address)
    bluez.remove_device(gadget.address)
    bus = await MessageBus(bus_address=bluez.address).connect()
    try:
        reply = await bus.call(
            Message(
                destination="org.bluez",
                path=bluez.device_path(gadget.address),
                interface="org.bluez.Device1",
                member="Connect",
            )
        )
    finally:
        bus.disconnect()
    assert reply.message_type is MessageType.ERROR
    assert reply.error_name == "org.freedesktop.DBus.Error.UnknownObject"


async def test_a_restarted_bluez_is_seen_again_by_the_same_bleak(bluez: VirtualBlueZ) -> None:
    gadget = bluez.add_peripheral(Gadget())
    known = bluez.add_peripheral(Gadget("C0:FF:EE:00:00:02"), known=True)
    await find(gadget.address)
    await bluez.stop()
    await bluez.start()  # announces its objects again, as bluetoothd does on a restart
    await asyncio.sleep(0.02)  # for the InterfacesAdded signals to reach bleak's manager
    device = await find(known.address)
    async with BleakClient(device) as client:
        assert await client.read_gatt_char(u("2a29")) == b"Acme Medical"
    assert await find(gadget.address)


async def test_adapter_powered_off_is_not_available(bluez: VirtualBlueZ) -> None:
    bluez.set_powered(False)
    with pytest.raises(BleakBluetoothNotAvailableError):
        await BleakScanner.discover(timeout=0.1)


async def test_disconnect_during_service_discovery(bluez: VirtualBlueZ) -> None:
    gadget = Gadget(timing=Timing(first_advert=0.012, adv_interval=0.01, discovery=0.3))
    bluez.add_peripheral(gadget)
    device = await find(gadget.address)

    async def drop_soon() -> None:
        await asyncio.sleep(0.1)
        gadget.hang_up()

    dropper = asyncio.create_task(drop_soon())
    with pytest.raises(BleakError, match="failed to discover services"):
        async with BleakClient(device, timeout=2.0):
            pass
    await dropper


async def test_connect_to_a_silent_device_times_out_and_cancels(bluez: VirtualBlueZ) -> None:
    gadget = bluez.add_peripheral(Gadget())
    device = await find(gadget.address)
    gadget.advertising = False
    with pytest.raises(asyncio.TimeoutError):
        async with BleakClient(device, timeout=0.3):
            pass
    await asyncio.sleep(0.05)
    connect, disconnect = bluez.calls.find("Connect")[-1], bluez.calls.find("Disconnect")[-1]
    assert disconnect.at >= connect.at
    assert connect.error == "org.bluez.Error.Failed"


async def test_reconnect_uses_the_cached_gatt_objects(bluez: VirtualBlueZ) -> None:
    gadget = bluez.add_peripheral(Gadget())
    device = await find(gadget.address)
    async with BleakClient(device) as client:
        first = sorted(c.handle for c in client.services.characteristics.values())
    device = await find(gadget.address)
    async with BleakClient(device) as client:
        second = sorted(c.handle for c in client.services.characteristics.values())
        assert await client.read_gatt_char(u("2a29")) == b"Acme Medical"
    assert first == second


async def test_temporary_devices_are_removed_after_discovery(bluez: VirtualBlueZ) -> None:
    bluez.temporary_timeout = 0.05
    gadget = bluez.add_peripheral(Gadget())
    await find(gadget.address)
    path = bluez.device_path(gadget.address)
    await asyncio.sleep(0.15)
    device = BLEDevice(gadget.address, "Gadget", {"path": path, "props": {}})
    with pytest.raises(BleakError, match="not found"):
        async with BleakClient(device, timeout=0.5):
            pass
    assert [c.name for c in bluez.calls][-1] != "Device1.Connect"


# -- pairing -------------------------------------------------------------------------------


async def test_just_works_pairing_through_bleak_pair(bluez: VirtualBlueZ) -> None:
    gadget = bluez.add_peripheral(Gadget(security=Security(required=True)))
    device = await find(gadget.address)
    async with BleakClient(device, pair=True) as client:
        assert await client.read_gatt_char(u("2a49")) == b"\x00\x00"
    names = [c.name for c in bluez.calls if c.path.startswith(bluez.device_path(gadget.address))]
    assert names[:2] == ["Properties.Set", "Device1.Pair"]
    assert "Device1.Connect" not in names  # pair=True never calls Connect (gotcha 10)
    assert bluez.host_paired(gadget.address)
    assert bluez.adapter_address() in gadget.bonds


async def test_passkey_pairing_through_the_default_agent(bluez: VirtualBlueZ) -> None:
    security = Security(required=True, method=PairingMethod.PASSKEY, passkey=246810)
    gadget = bluez.add_peripheral(Gadget(security=security))
    agent = PasskeyAgent(246810)
    agent_bus = await register_agent(bluez.address, agent)
    try:
        device = await find(gadget.address)
        async with BleakClient(device, pair=True) as client:
            assert await client.read_gatt_char(u("2a49")) == b"\x00\x00"
    finally:
        agent_bus.disconnect()
    assert agent.requests == [bluez.device_path(gadget.address)]
    assert bluez.host_paired(gadget.address)


@pytest.mark.parametrize(
    ("agent_passkey", "reply_error", "expected"),
    [
        (111111, None, "org.bluez.Error.AuthenticationFailed"),
        (None, "org.bluez.Error.Rejected", "org.bluez.Error.AuthenticationRejected"),
        (None, "org.bluez.Error.Canceled", "org.bluez.Error.AuthenticationCanceled"),
    ],
)
async def test_passkey_pairing_failures(
    bluez: VirtualBlueZ, agent_passkey: int | None, reply_error: str | None, expected: str
) -> None:
    security = Security(required=True, method=PairingMethod.PASSKEY, passkey=246810)
    gadget = bluez.add_peripheral(Gadget(security=security))
    agent_bus = await register_agent(
        bluez.address, PasskeyAgent(agent_passkey, reply_error=reply_error)
    )
    try:
        device = await find(gadget.address)
        with pytest.raises(BleakDBusError) as err:
            async with BleakClient(device, pair=True):
                pass
    finally:
        agent_bus.disconnect()
    assert err.value.dbus_error == expected
    assert not bluez.host_paired(gadget.address)


async def test_passkey_pairing_without_an_agent_fails(bluez: VirtualBlueZ) -> None:
    security = Security(required=True, method=PairingMethod.PASSKEY, passkey=246810)
    gadget = bluez.add_peripheral(Gadget(security=security))
    device = await find(gadget.address)
    with pytest.raises(BleakDBusError) as err:
        async with BleakClient(device, pair=True):
            pass
    assert err.value.dbus_error == "org.bluez.Error.AuthenticationFailed"


async def test_an_agent_that_never_answers_times_out_and_is_cancelled(bluez: VirtualBlueZ) -> None:
    bluez.agent_timeout = 0.2
    security = Security(required=True, method=PairingMethod.PASSKEY, passkey=246810)
    gadget = bluez.add_peripheral(Gadget(security=security))
    agent = PasskeyAgent(None)
    agent_bus = await register_agent(bluez.address, agent)
    try:
        device = await find(gadget.address)
        with pytest.raises(BleakDBusError) as err:
            async with BleakClient(device, pair=True):
                pass
        await asyncio.sleep(0.05)
    finally:
        agent_bus.disconnect()
    assert err.value.dbus_error == "org.bluez.Error.AuthenticationTimeout"
    assert agent.cancelled == 1


async def test_secure_access_on_a_plain_link_pairs_on_the_spot(bluez: VirtualBlueZ) -> None:
    gadget = bluez.add_peripheral(Gadget(security=Security(required=True)))
    device = await find(gadget.address)
    async with BleakClient(device) as client:
        assert not bluez.host_paired(gadget.address)
        assert await client.read_gatt_char(u("2a49")) == b"\x00\x00"
        assert bluez.host_paired(gadget.address)


async def test_secure_access_when_the_device_refuses_to_pair(bluez: VirtualBlueZ) -> None:
    gadget = bluez.add_peripheral(Gadget(security=Security(required=True, pairable=False)))
    device = await find(gadget.address)
    async with BleakClient(device) as client:
        with pytest.raises(BleakDBusError) as err:
            await client.read_gatt_char(u("2a49"))
        assert err.value.dbus_error == "org.bluez.Error.NotPermitted"
        assert err.value.dbus_error_details == "Not paired"
        assert await client.read_gatt_char(u("2a29")) == b"Acme Medical"  # not secure


async def test_a_lost_bond_makes_connect_fail_with_key_missing(bluez: VirtualBlueZ) -> None:
    gadget = bluez.add_peripheral(Gadget(security=Security(required=True)), known=True)
    assert bluez.host_paired(gadget.address)
    gadget.forget_bonds()  # battery change / factory reset on the device side
    device = await find(gadget.address)
    with pytest.raises(BleakDBusError) as err:
        async with BleakClient(device, timeout=2.0):
            pass
    assert err.value.dbus_error == "org.bluez.Error.Failed"
    assert err.value.dbus_error_details == "le-connection-key-missing"
    # The cure a nurse is told to apply: forget the device, pair again.
    bluez.remove_device(gadget.address)
    device = await find(gadget.address)
    async with BleakClient(device, pair=True) as client:
        assert await client.read_gatt_char(u("2a49")) == b"\x00\x00"


async def test_a_known_device_reconnects_encrypted_without_pairing(bluez: VirtualBlueZ) -> None:
    gadget = bluez.add_peripheral(Gadget(security=Security(required=True)), known=True)
    device = await find(gadget.address)
    async with BleakClient(device) as client:
        assert await client.read_gatt_char(u("2a49")) == b"\x00\x00"
    assert not bluez.calls.find("Pair")


async def test_passive_scanning_with_or_patterns(bluez: VirtualBlueZ) -> None:
    from bleak.args.bluez import OrPattern
    from bleak.assigned_numbers import AdvertisementDataType

    gadget = bluez.add_peripheral(Gadget())
    pattern = OrPattern(0, AdvertisementDataType.COMPLETE_LOCAL_NAME, b"Gadg")
    device = await BleakScanner.find_device_by_filter(
        lambda d, adv: True, timeout=2.0, scanning_mode="passive", bluez={"or_patterns": [pattern]}
    )
    assert device is not None
    assert device.address == gadget.address
    assert bluez.calls.find("RegisterMonitor")
    assert not bluez.calls.find("StartDiscovery")


@pytest.fixture
async def two_adapters(
    ble_bus: PrivateBus, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[VirtualBlueZ]:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", ble_bus.address)
    monkeypatch.setenv("PATH", f"{ble_bus.bin_dir}:{os.environ.get('PATH', '')}")
    async with virtual_bluez(ble_bus.address, adapters=("hci0", "hci1")) as service:
        yield service
    await close_bleak_manager()


async def test_two_adapters_and_a_device_that_keeps_one_bond(two_adapters: VirtualBlueZ) -> None:
    bluez = two_adapters
    gadget = bluez.add_peripheral(Gadget(security=Security(required=True, single_bond=True)))
    for adapter in ("hci0", "hci1"):
        device = await BleakScanner.find_device_by_address(
            gadget.address, timeout=2.0, bluez={"adapter": adapter}
        )
        assert device is not None
        assert device.details["path"] == bluez.device_path(gadget.address, adapter)
        async with BleakClient(device, pair=True) as client:
            assert await client.read_gatt_char(u("2a49")) == b"\x00\x00"
    assert gadget.bonds == {bluez.adapter_address("hci1")}  # the second bond replaced the first
    device = await BleakScanner.find_device_by_address(
        gadget.address, timeout=2.0, bluez={"adapter": "hci0"}
    )
    assert device is not None
    with pytest.raises(BleakDBusError) as err:
        async with BleakClient(device):
            pass
    assert err.value.dbus_error_details == "le-connection-key-missing"


async def test_the_call_log_keeps_only_the_most_recent_calls(ble_bus: PrivateBus) -> None:
    """A long demo makes hundreds of calls a minute; the log keeps the last ``call_log``."""
    async with virtual_bluez(ble_bus.address, call_log=25) as service:
        bus = await MessageBus(bus_address=service.address).connect()
        try:
            for i in range(120):  # Get of a property: answered, recorded with its arguments
                reply = await bus.call(
                    Message(
                        destination="org.bluez",
                        path="/org/bluez/hci0",
                        interface="org.freedesktop.DBus.Properties",
                        member="Get",
                        signature="ss",
                        body=["org.bluez.Adapter1", "Powered" if i % 2 else "Address"],
                    )
                )
                assert reply.message_type is MessageType.METHOD_RETURN
        finally:
            bus.disconnect()
        calls = list(service.calls)
    assert len(calls) == 25
    assert [c.args[1] for c in calls] == ["Powered", "Address"] * 12 + ["Powered"]  # 95 ... 119
    assert [c.at for c in calls] == sorted(c.at for c in calls)
