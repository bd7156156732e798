"""A virtual BlueZ: bluetoothd's org.bluez D-Bus API on a private bus, for the unmodified bleak.

bleak talks to bluetoothd over the D-Bus *system* bus and finds it through
``DBUS_SYSTEM_BUS_ADDRESS``. This package starts a private ``dbus-daemon``
(:class:`PrivateBus`), owns ``org.bluez`` on it (:class:`VirtualBlueZ`) and puts simulated
peripherals (:class:`Peripheral` subclasses, see ``simulators.peripherals``) behind adapters
``hci0``, ``hci1`` ... No radio, no kernel, no root: only the ``dbus-daemon`` binary
(Debian/Ubuntu package ``dbus-daemon``). Background and every gotcha: virtual-bluez.md.

Start it and add a peripheral (in-process, e.g. a gateway test or the demo)::

    from simulators.bluez import PrivateBus, virtual_bluez
    from simulators.peripherals import BloodPressureCuff

    with PrivateBus() as bus:                          # ~10 ms; bus.address, bus.bin_dir
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address   # before bleak's first call
        os.environ["PATH"] = f"{bus.bin_dir}:{os.environ['PATH']}"   # fake bluetoothctl 5.72
        async with virtual_bluez(bus.address) as bluez:
            cuff = bluez.add_peripheral(BloodPressureCuff.omron("C4:DA:0E:10:00:01"))
            ...  # BleakScanner / BleakClient as against a real adapter
            assert "Device1.Connect" in bluez.calls.names()

In tests use the fixtures of ``tests/fix_ble.py`` (``ble_bus``, ``bluez``), which do the
above per test and skip when ``dbus-daemon`` is missing. Out of process,
``daon simulate ble`` runs the demo's devices and prints the address to export (``--json``:
one line with ``bus``, ``bin_dir`` and the devices, user slots and consent codes).

Passkey pairing needs an ``org.bluez.Agent1`` on the bus, as on a real gateway: export one
(``RequestPasskey(o) -> u`` answering the device's key), call
``AgentManager1.RegisterAgent(path, "KeyboardDisplay")`` and ``RequestDefaultAgent(path)``
on ``/org/bluez``; tests/simulators/ble/helpers.py has one. Just Works needs no agent.

Restarting the service (``stop()`` then ``start()``) in the same event loop behaves like a
bluetoothd restart: bonded devices stay, GATT objects and unbonded devices are gone, and the
objects are announced again with ``InterfacesAdded``; give clients a few milliseconds to see
them before scanning.

What it offers (bluetoothd-accurate names, types, signal order and error replies):

* ``Adapter1`` (+ ``AdvertisementMonitorManager1``): discovery per D-Bus sender with
  ``SetDiscoveryFilter`` (UUIDs, RSSI, Pathloss, Transport, Discoverable, Pattern), passive
  ``or_patterns`` monitors, ``RemoveDevice``, ``Powered`` on/off, temporary devices removed
  ``temporary_timeout`` after discovery stops.
* ``Device1``: adverts with Name, UUIDs, ManufacturerData, ServiceData, TxPower, RSSI,
  AdvertisingFlags; ``Connect``/``Disconnect`` (and the device hanging up or losing the link:
  ``Disconnected(ss)`` reasons Remote/Timeout/Local/Authentication); ``Pair`` (Just Works, or
  passkey entry through the registered ``org.bluez.Agent1``, default agent first, with
  ``AgentManager1.RegisterAgent``/``RequestDefaultAgent``); ``CancelPairing``; stored bonds
  (``add_peripheral(..., known=True)``) that the device can lose (``forget_bonds()``:
  Connect then fails with ``org.bluez.Error.Failed: le-connection-key-missing``).
* GATT objects laid out as bluetoothd does (``serviceXXXX/charXXXX/descXXXX``), kept after a
  disconnect (``Cache=always``) unless ``gatt_cache=False``; ``ReadValue``, ``WriteValue``
  (request/command rules of bluetoothd), ``StartNotify``/``StopNotify`` per sender,
  ``AcquireNotify``/``AcquireWrite`` with real socket pairs; characteristics that need an
  encrypted link make bluetoothd pair on the spot (failure: ``NotPermitted: Not paired``).
* ATT errors from peripherals translated as bluetoothd's ``create_gatt_dbus_error()`` does:
  ``NotPermitted`` (Read/Write not permitted, Not paired), ``NotAuthorized``,
  ``NotSupported``, ``InvalidArguments`` (Invalid offset/Length), and
  ``Failed: Operation failed with ATT error: 0xNN`` for the rest; ``InProgress``,
  ``NotConnected``, ``AlreadyExists``, ``DoesNotExist``, ``Authentication*``, and
  ``org.freedesktop.DBus.Error.UnknownObject`` for removed objects.
* ``VirtualBlueZ.calls``: every method call received (time, sender, path, member, args,
  error), for tests to assert on.
* Runtime control: ``add_peripheral``/``remove_peripheral``, ``set_powered``,
  ``remove_device``; peripherals change ``advertising``, their records and fault knobs live.

What it does not prove (virtual-bluez.md "Limits"):

* Radio, kernel and controller behaviour: no RF loss model beyond the fault knobs, no
  connection parameters, no real SMP (keys are booleans), no LE Secure Connections numeric
  comparison, no resolvable private addresses.
* bluetoothd timing: the up-to-2 s ``DISCONNECT_TIMER`` (``disconnect_delay`` can add one),
  the kernel's 10 s LE scan restarts, RSSI reported only on changes ≥ 8 dBm (here every
  advert emits RSSI), concurrent GATT operations on *different* characteristics never return
  ``InProgress``, no ``le-connection-abort-by-local`` retries, notify sessions do not re-arm
  on reconnect.
* Static differences: introspection XML is simplified; ``InterfacesAdded``/``Removed`` come
  from ``/`` as in bluetoothd, but ``Icon``/``Class``/``Modalias`` of devices are not set.
* Device assumptions (transfer on subscribe vs RACP, hang-up timing, special values) come
  from ble-profiles.md and need checking on at least one physical device of each model.
"""

from simulators.bluez.bus import PrivateBus, find_dbus_daemon, start_private_bus
from simulators.bluez.calllog import Call, CallLog
from simulators.bluez.errors import (
    AttError,
    BluezError,
    BusUnavailable,
    PeripheralError,
    ServiceError,
    SimulatorError,
)
from simulators.bluez.gatt import GattCharacteristic, GattDescriptor, GattService, uuid128
from simulators.bluez.peripheral import (
    Advertisement,
    DisconnectReason,
    Link,
    PairingMethod,
    Peripheral,
    Security,
    Timing,
)
from simulators.bluez.service import VirtualBlueZ, virtual_bluez

__all__ = [
    "Advertisement",
    "AttError",
    "BluezError",
    "BusUnavailable",
    "Call",
    "CallLog",
    "DisconnectReason",
    "GattCharacteristic",
    "GattDescriptor",
    "GattService",
    "Link",
    "PairingMethod",
    "Peripheral",
    "PeripheralError",
    "PrivateBus",
    "Security",
    "ServiceError",
    "SimulatorError",
    "Timing",
    "VirtualBlueZ",
    "find_dbus_daemon",
    "start_private_bus",
    "uuid128",
    "virtual_bluez",
]
