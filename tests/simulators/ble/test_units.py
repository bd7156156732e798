"""Pure parts of the virtual BlueZ and the devices: no D-Bus, no event loop.

The path properties are bleak's parsing rules (virtual-bluez.md gotcha 1): the handle is
``int(path[-4:], 16)`` and the device of a notification is the characteristic path minus its
last 21 characters.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.bluez import Advertisement, GattCharacteristic, GattService, uuid128
from simulators.bluez.errors import AttError
from simulators.bluez.gatt import CCCD_UUID, layout
from simulators.bluez.objects import DiscoveryFilter, OrPattern, ad_structures, patterns_match
from simulators.bluez.peripheral import PairingMethod, Security, Timing, normalise_address
from simulators.bluez.service import _split_signature
from simulators.peripherals import DeviceClock, Faults
from simulators.peripherals.base import system_id_for

DEVICE = "/org/bluez/hci0/dev_C4_DA_0E_10_00_01"
FLAGS = st.sets(
    st.sampled_from(["read", "write", "write-without-response", "notify", "indicate"]),
    min_size=1,
)
CHARACTERISTIC = st.builds(
    GattCharacteristic,
    st.integers(0x2A00, 0x2BFF).map(lambda n: f"{n:04x}"),
    FLAGS.map(tuple),
)
SERVICE = st.builds(
    GattService,
    st.integers(0x1800, 0x18FF).map(lambda n: f"{n:04x}"),
    st.lists(CHARACTERISTIC, max_size=6).map(tuple),
)


@settings(max_examples=50, deadline=None)
@given(st.lists(SERVICE, max_size=6))
def test_layout_paths_parse_back_as_bleak_parses_them(services: list[GattService]) -> None:
    slots = layout(DEVICE, services)
    handles: list[int] = []
    for service in slots:
        assert service.path.startswith(DEVICE + "/service")
        assert int(service.path[-4:], 16) == service.handle
        handles.append(service.handle)
        for char in service.characteristics:
            assert char.path.startswith(service.path + "/char")
            assert int(char.path[-4:], 16) == char.handle
            assert char.path[:-21] == DEVICE  # device_path_from_characteristic_path
            assert char.path[-4:] == char.path[-4:].lower()
            handles.extend((char.handle, char.value_handle))
            cccds = [d for d in char.descriptors if d.descriptor.uuid == CCCD_UUID]
            assert len(cccds) == (1 if char.characteristic.notifies else 0)
            for desc in char.descriptors:
                assert int(desc.path[-4:], 16) == desc.handle
                handles.append(desc.handle)
    assert len(handles) == len(set(handles))
    assert slots[0].service.uuid == uuid128(0x1801)  # Generic Attribute comes first


@pytest.mark.parametrize(
    "spelling",
    ["1810", "0x1810", 0x1810, "00001810", "00001810-0000-1000-8000-00805F9B34FB"],
)
def test_uuid_spellings(spelling: str | int) -> None:
    assert uuid128(spelling) == "00001810-0000-1000-8000-00805f9b34fb"


def test_flags_are_kept_in_bluetoothd_order() -> None:
    char = GattCharacteristic("2a52", ("indicate", "write"))
    assert char.flags == ("write", "indicate")
    with pytest.raises(ValueError, match="unknown characteristic flags"):
        GattCharacteristic("2a52", ("shout",))


@pytest.mark.parametrize(
    ("code", "name", "text"),
    [
        (0x02, "org.bluez.Error.NotPermitted", "Read not permitted"),
        (0x03, "org.bluez.Error.NotPermitted", "Write not permitted"),
        (0x05, "org.bluez.Error.NotPermitted", "Not paired"),
        (0x06, "org.bluez.Error.NotSupported", "Operation is not supported"),
        (0x07, "org.bluez.Error.InvalidArguments", "Invalid offset"),
        (0x08, "org.bluez.Error.NotAuthorized", "Operation Not Authorized"),
        (0x0D, "org.bluez.Error.InvalidArguments", "Invalid Length"),
        (0x80, "org.bluez.Error.Failed", "Operation failed with ATT error: 0x80"),
        (0xFD, "org.bluez.Error.Failed", "Operation failed with ATT error: 0xfd"),
    ],
)
def test_att_errors_map_like_create_gatt_dbus_error(code: int, name: str, text: str) -> None:
    err = AttError(code).to_bluez()
    assert (err.name, err.text) == (name, text)


def test_discovery_filter_rules() -> None:
    adv = Advertisement(name="CareSens 0002", service_uuids=("1808",), rssi=-70, tx_power=0)
    assert DiscoveryFilter().matches(adv, "C4:DA:0E:10:00:02")
    assert DiscoveryFilter(uuids=frozenset({uuid128(0x1808)})).matches(adv, "C4:DA:0E:10:00:02")
    assert not DiscoveryFilter(uuids=frozenset({uuid128(0x1810)})).matches(adv, "C4:DA")
    assert not DiscoveryFilter(rssi=-60).matches(adv, "C4:DA:0E:10:00:02")
    assert not DiscoveryFilter(pathloss=60).matches(adv, "C4:DA:0E:10:00:02")  # 0 - -70 = 70
    assert DiscoveryFilter(pattern="CareSens").matches(adv, "C4:DA:0E:10:00:02")
    assert DiscoveryFilter(pattern="c4:da").matches(adv, "C4:DA:0E:10:00:02")
    assert not DiscoveryFilter(transport="bredr").matches(adv, "C4:DA:0E:10:00:02")


def test_advertising_data_structures_and_or_patterns() -> None:
    adv = Advertisement(
        name="BF720",
        service_uuids=("181b",),
        manufacturer_data={0x020E: b"\x01"},
        service_data={"181b": b"\x07"},
    )
    ads = dict(ad_structures(adv))
    assert ads[0x01] == b"\x06"
    assert ads[0x03] == bytes.fromhex("1b18")
    assert ads[0x09] == b"BF720"
    assert ads[0x16] == bytes.fromhex("1b1807")
    assert ads[0xFF] == bytes.fromhex("0e0201")
    assert patterns_match((OrPattern(0, 0xFF, b"\x0e\x02"),), adv)
    assert not patterns_match((OrPattern(1, 0x09, b"BF"),), adv)


def test_faults_mangle_only_their_positions() -> None:
    payload = bytes.fromhex("0e800052006100")
    faults = Faults(truncate={1}, corrupt={2})
    assert faults.mangle(0, payload) == payload
    assert faults.mangle(1, payload) == payload[:-2]
    assert faults.mangle(2, payload) == b"\x0e" + bytes(b ^ 0xFF for b in payload[1:])
    with pytest.raises(ValueError, match="response code"):
        Faults(racp_refuse=0x01)


NOW = datetime(2025, 3, 10, 9, 0, 0, 500000)


def test_a_slow_device_clock() -> None:
    clock = DeviceClock(timedelta(minutes=-7), source=lambda: NOW)
    assert clock.now() == datetime(2025, 3, 10, 8, 53, 0)


def test_a_battery_change_resets_the_clock_to_2000() -> None:
    clock = DeviceClock(source=lambda: NOW)
    clock.reset()
    assert clock.now() == datetime(2000, 1, 1, 0, 0, 0)
    assert not clock.host_set


def test_a_host_sets_the_clock() -> None:
    clock = DeviceClock(timedelta(days=-400), source=lambda: NOW)
    clock.host_set = False
    clock.set(datetime(2025, 3, 10, 9, 0, 0))
    assert clock.now() == datetime(2025, 3, 10, 9, 0, 0)
    assert clock.host_set


def test_system_id_from_the_address() -> None:
    system_id = system_id_for("00:1A:7D:DA:71:13")
    assert system_id.organizationally_unique_identifier == 0x001A7D
    assert system_id.manufacturer_identifier == 0xFFFEDA7113


def test_value_checks() -> None:
    assert normalise_address("c4-da-0e-10-00-01") == "C4:DA:0E:10:00:01"
    with pytest.raises(ValueError, match="Bluetooth address"):
        normalise_address("C4:DA:0E:10:00")
    with pytest.raises(ValueError, match="passkey"):
        Security(method=PairingMethod.PASSKEY)
    with pytest.raises(ValueError, match="10 ms"):
        Timing(first_advert=0.0)


def test_split_signature() -> None:
    assert _split_signature("aya{sv}") == ["ay", "a{sv}"]
    assert _split_signature("oa{sa{sv}}") == ["o", "a{sa{sv}}"]
    assert _split_signature("") == []
