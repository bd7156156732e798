"""The virtual org.bluez service: bluetoothd's D-Bus API in front of simulated peripherals.

One dbus-fast connection owns ``org.bluez`` and answers every call itself through a message
handler (no ``ServiceInterface`` export): that gives each handler the caller's unique name
(discovery and notify sessions are per sender in bluetoothd), lets properties come and go at
run time, and lets unknown paths answer ``UnknownObject`` as libdbus does for bluetoothd.

Signals follow bluetoothd's order (virtual-bluez.md, "Observed bluetoothd order"):

* Connect: ``Connected=true``, the Connect reply, ``InterfacesAdded`` for every GATT object,
  then one ``PropertiesChanged`` with ``UUIDs`` and ``ServicesResolved=true``.
* Disconnect: ``ServicesResolved=false``, ``Disconnected(ss)``, ``Connected=false``, then
  ``Notifying=false``.
* A notification is ``PropertiesChanged(Value)`` on the characteristic path (StartNotify), or a
  datagram on the socket handed out by ``AcquireNotify``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from dbus_fast import Message, MessageFlag, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.constants import NameFlag, RequestNameReply

from simulators.bluez.bus import is_system_bus
from simulators.bluez.calllog import MAX_CALLS, Call, CallLog
from simulators.bluez.errors import (
    ATT_INSUFFICIENT_AUTHENTICATION,
    ATT_INVALID_OFFSET,
    ATT_READ_NOT_PERMITTED,
    ATT_UNLIKELY_ERROR,
    ATT_WRITE_NOT_PERMITTED,
    AttError,
    BluezError,
    PeripheralError,
    ServiceError,
)
from simulators.bluez.gatt import layout, uuid128
from simulators.bluez.objects import (
    ADAPTER_IFACE,
    AGENT_IFACE,
    AGENT_MANAGER_IFACE,
    CHAR_IFACE,
    DESC_IFACE,
    DEVICE_IFACE,
    INTROSPECTABLE_IFACE,
    MONITOR_IFACE,
    MONITOR_MANAGER_IFACE,
    OBJECT_MANAGER_IFACE,
    PROPERTIES_IFACE,
    AdapterState,
    Agent,
    BusObject,
    CharState,
    DescState,
    DeviceState,
    DiscoveryFilter,
    Monitor,
    OrPattern,
    Props,
    RootState,
    ServiceState,
    device_properties,
    interfaces_of,
    patterns_match,
    unpack_body,
)
from simulators.bluez.peripheral import (
    Advertisement,
    DisconnectReason,
    Link,
    PairingMethod,
    Peripheral,
)

logger = logging.getLogger(__name__)

P = TypeVar("P", bound=Peripheral)

BLUEZ_NAME: Final = "org.bluez"
_DBUS_ERROR: Final = "org.freedesktop.DBus.Error."
_KEYBOARD_CAPABILITIES: Final = frozenset({"KeyboardDisplay", "KeyboardOnly"})
_CAPABILITIES: Final = frozenset(
    {"DisplayOnly", "DisplayYesNo", "KeyboardOnly", "NoInputNoOutput", "KeyboardDisplay"}
)
_CALL_TIMEOUT_S: Final = 5.0
#: SetDiscoveryFilter keys and their D-Bus types (bluetoothd adapter.c).
_FILTER_KEYS: Final = {
    "UUIDs": "as",
    "RSSI": "n",
    "Pathloss": "q",
    "Transport": "s",
    "DuplicateData": "b",
    "Discoverable": "b",
    "Pattern": "s",
}


@dataclass(slots=True)
class Reply:
    """A method return: signature, body, file descriptors to pass, cleanup after sending."""

    signature: str = ""
    body: list[Any] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    after_send: Callable[[], None] | None = None


HandlerResult = Reply | Coroutine[Any, Any, Reply]


@dataclass(frozen=True, slots=True)
class _Route:
    in_signature: str
    kind: type
    handler: Callable[[Any, Message], HandlerResult]


def _impl(link: Link | None) -> LinkImpl | None:
    """A device's link is always ours (objects.py types it as the abstract :class:`Link`)."""
    assert link is None or isinstance(link, LinkImpl)
    return link


class LinkImpl(Link):
    """The :class:`Link` a peripheral gets while connected."""

    def __init__(self, hub: VirtualBlueZ, device: DeviceState) -> None:
        self._hub = hub
        self._device = device
        self._up = True
        self._encrypted = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def up(self) -> bool:
        return self._up

    @property
    def encrypted(self) -> bool:
        return self._encrypted

    @property
    def host(self) -> str:
        return self._device.adapter.address

    @property
    def mtu(self) -> int:
        return self._device.peripheral.mtu

    def _char(self, uuid: str) -> CharState | None:
        """The characteristic ``uuid``; None until the GATT database is resolved."""
        if self._device.gatt is None:
            return None
        wanted = uuid128(uuid)
        found = [c for c in self._device.chars.values() if c.slot.uuid == wanted]
        if not found:
            raise ValueError(f"{self._device.address} has no characteristic {wanted}")
        notifying = [c for c in found if c.slot.characteristic.notifies]
        return (notifying or found)[0]

    def subscribed(self, uuid: str) -> bool:
        char = self._char(uuid)
        return self._up and char is not None and char.subscribed

    async def wait_subscribed(self, uuid: str) -> bool:
        loop = asyncio.get_running_loop()
        while self._up and not self.subscribed(uuid):
            waiter: asyncio.Future[None] = loop.create_future()
            self._device.waiters.append(waiter)
            await waiter
        return self._up

    async def notify(self, uuid: str, data: bytes) -> bool:
        if len(data) > self.mtu - 3:
            raise ValueError(
                f"{len(data)}-byte notification does not fit ATT_MTU {self.mtu}: split it"
            )
        char = self._char(uuid)
        if char is None or not (self._up and char.subscribed):
            return False
        self._hub._deliver(char, bytes(data))
        if char.uses_indication:
            await asyncio.sleep(self._device.peripheral.timing.indication_confirm)
        return self._up

    def disconnect(self, reason: DisconnectReason = DisconnectReason.REMOTE) -> None:
        self._hub._drop_link(self._device, reason)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        if not self._up:
            task.cancel()
            return task
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "peripheral %s: task failed",
                self._device.address,
                exc_info=task.exception(),
            )

    def _close(self) -> None:
        self._up = False
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        if current in self._tasks:
            current.cancel()


class VirtualBlueZ:
    """bluetoothd's D-Bus surface over simulated peripherals, on a bus of your choosing.

    ``bus_address`` is the private bus (``PrivateBus.address``); None means
    ``DBUS_SYSTEM_BUS_ADDRESS``. The real system bus is refused. ``gatt_cache`` keeps GATT
    objects exported after a disconnect (bluetoothd ``Cache=always``). ``temporary_timeout``
    removes discovered devices nobody connected to after discovery stops (bluetoothd 30 s).
    ``connect_timeout`` bounds a Connect to a device that is not advertising. ``call_log`` is
    how many of the most recent method calls :attr:`calls` keeps (each about half a kilobyte
    with its arguments; the demo keeps few, tests read them).
    """

    def __init__(
        self,
        bus_address: str | None = None,
        *,
        adapters: Sequence[str] = ("hci0",),
        gatt_cache: bool = True,
        temporary_timeout: float = 30.0,
        connect_timeout: float = 20.0,
        agent_timeout: float = 30.0,
        disconnect_delay: float = 0.0,
        call_log: int = MAX_CALLS,
    ) -> None:
        if not adapters:
            raise ServiceError("at least one adapter is needed")
        self._bus_address = bus_address
        self.gatt_cache = gatt_cache
        self.temporary_timeout = temporary_timeout
        self.connect_timeout = connect_timeout
        self.agent_timeout = agent_timeout
        self.disconnect_delay = disconnect_delay
        self.calls = CallLog(call_log)
        self._adapters: dict[str, AdapterState] = {}
        for index, name in enumerate(adapters):
            self._adapters[name] = AdapterState(name=name, address=f"00:1A:7D:DA:71:{index:02X}")
        self._root = RootState()
        self._objects: dict[str, BusObject] = {}
        self._peripherals: dict[str, Peripheral] = {}
        self._ranges: dict[str, tuple[str, ...]] = {}
        self._devices: dict[tuple[str, str], DeviceState] = {}
        self._agents: dict[str, Agent] = {}
        self._default_agents: list[str] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._bus: MessageBus | None = None
        self._t0 = 0.0
        self._routes = self._build_routes()

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """The bus address the service is on."""
        return self._bus_address or os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "")

    @property
    def running(self) -> bool:
        return self._bus is not None and self._bus.connected

    async def start(self) -> None:
        """Connect, export the adapters, then own ``org.bluez`` (returns in a few ms)."""
        if self._bus is not None:
            return
        address = self.address
        if not address:
            raise ServiceError("no bus address: pass one or set DBUS_SYSTEM_BUS_ADDRESS")
        if is_system_bus(address):
            raise ServiceError(f"refusing to impersonate BlueZ on the system bus ({address})")
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        bus = MessageBus(bus_address=address, negotiate_unix_fd=True)
        try:
            async with asyncio.timeout(_CALL_TIMEOUT_S):
                await bus.connect()
        except (OSError, TimeoutError) as exc:
            bus.disconnect()
            raise ServiceError(f"cannot connect to the bus at {address}: {exc}") from exc
        self._bus = bus
        bus.add_message_handler(self._on_message)
        await self._bus_call(
            Message(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus",
                member="AddMatch",
                signature="s",
                body=[
                    "type='signal',sender='org.freedesktop.DBus',"
                    "interface='org.freedesktop.DBus',member='NameOwnerChanged'"
                ],
            )
        )
        self._objects[self._root.path] = self._root
        for adapter in self._adapters.values():
            self._objects[adapter.path] = adapter
        for dev in self._devices.values():
            if dev.exported:
                self._objects[dev.path] = dev
        async with asyncio.timeout(_CALL_TIMEOUT_S):
            reply = await bus.request_name(BLUEZ_NAME, NameFlag.DO_NOT_QUEUE)
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            await self._close_bus()
            raise ServiceError(f"{BLUEZ_NAME} is already owned on {address}")
        # As bluetoothd does when it (re)starts: announce the objects, so a client that
        # already cached an earlier org.bluez (bleak's per-loop manager) sees them again.
        for obj in list(self._objects.values()):
            self._export(obj)
        logger.info("virtual BlueZ owns %s on %s", BLUEZ_NAME, address)

    async def stop(self) -> None:
        """Drop every link, remove every object (InterfacesRemoved), leave the bus."""
        if self._bus is None:
            return
        for adapter in self._adapters.values():
            adapter.sessions.clear()
            adapter.monitors.clear()
            self._update_advertisers(adapter)
        for dev in list(self._devices.values()):
            self._drop_link(dev, DisconnectReason.LOCAL)
            self._cancel_temp_timer(dev)
        for path in sorted(self._objects, key=len, reverse=True):
            self._unexport(path)
        # What bluetoothd would remember after a restart: bonded devices, not GATT objects.
        for key, dev in list(self._devices.items()):
            dev.gatt = None
            dev.gatt_exported = False
            dev.adv = None
            dev.rssi = None
            if not (dev.paired or dev.trusted):
                del self._devices[key]
                dev.exported = False
        current = asyncio.current_task()
        pending = [t for t in self._tasks if t is not current]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=_CALL_TIMEOUT_S)
        await self._close_bus()

    async def _close_bus(self) -> None:
        bus, self._bus = self._bus, None
        if bus is None:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_CALL_TIMEOUT_S):
                await bus.release_name(BLUEZ_NAME)
        bus.disconnect()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_CALL_TIMEOUT_S):
                await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]

    async def __aenter__(self) -> VirtualBlueZ:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- public control API -----------------------------------------------------------------

    def add_peripheral(
        self,
        peripheral: P,
        *,
        adapters: Iterable[str] | None = None,
        known: bool = False,
    ) -> P:
        """Put ``peripheral`` in range of ``adapters`` (default: all).

        ``known=True`` makes it a device bluetoothd already has a bond with (Paired, Bonded,
        Trusted, exported at once), as after an earlier pairing session.
        """
        if peripheral.address in self._peripherals:
            raise PeripheralError(peripheral.address, "address already in use")
        names = tuple(adapters) if adapters is not None else tuple(self._adapters)
        unknown = [n for n in names if n not in self._adapters]
        if unknown:
            raise PeripheralError(peripheral.address, f"no such adapter(s): {unknown}")
        self._peripherals[peripheral.address] = peripheral
        self._ranges[peripheral.address] = names
        for name in names:
            adapter = self._adapters[name]
            if known:
                dev = self._device(adapter, peripheral)
                dev.paired = dev.bonded = dev.trusted = True
                dev.temporary = False
                dev.uuids |= set(peripheral.service_uuids)
                peripheral.bonds.add(adapter.address)
                dev.exported = True
                if self._bus is not None:
                    self._export(dev)
            self._update_advertisers(adapter)
        return peripheral

    async def remove_peripheral(self, address: str) -> None:
        """Take a peripheral out of range for good: link dropped, Device1 objects removed."""
        peripheral = self.peripheral(address)
        for name in self._ranges.pop(peripheral.address, ()):
            adapter = self._adapters[name]
            task = adapter.adv_tasks.pop(peripheral.address, None)
            if task is not None:
                task.cancel()
            dev = self._devices.get((name, peripheral.address))
            if dev is not None:
                self._remove_device(dev)
        del self._peripherals[peripheral.address]

    def peripheral(self, address: str) -> Peripheral:
        try:
            return self._peripherals[address.upper()]
        except KeyError:
            raise PeripheralError(address, "not added to this virtual BlueZ") from None

    @property
    def peripherals(self) -> tuple[Peripheral, ...]:
        return tuple(self._peripherals.values())

    def adapter_path(self, adapter: str = "hci0") -> str:
        return self._adapters[adapter].path

    def adapter_address(self, adapter: str = "hci0") -> str:
        return self._adapters[adapter].address

    def device_path(self, address: str, adapter: str = "hci0") -> str:
        return f"/org/bluez/{adapter}/dev_{address.upper().replace(':', '_')}"

    def is_connected(self, address: str, adapter: str = "hci0") -> bool:
        dev = self._devices.get((adapter, address.upper()))
        return dev is not None and dev.link is not None

    def host_paired(self, address: str, adapter: str = "hci0") -> bool:
        """Whether bluetoothd holds a bond for ``address`` (its ``Paired`` property)."""
        dev = self._devices.get((adapter, address.upper()))
        return dev is not None and dev.paired

    def set_blocked(self, address: str, blocked: bool = True, adapter: str = "hci0") -> None:
        """What setting ``Device1.Blocked`` does: a blocked device's Connect is refused
        (``le-connection-refused``) and its link, if any, dropped."""
        dev = self._devices.get((adapter, address.upper()))
        if dev is None:
            raise KeyError(f"{address} is not known to {adapter}")
        dev.blocked = blocked
        if blocked:
            self._drop_link(dev, DisconnectReason.LOCAL)

    def set_powered(self, powered: bool, adapter: str = "hci0") -> None:
        """Power an adapter on or off (off drops every link and discovery session)."""
        self._set_powered(self._adapters[adapter], powered)

    def remove_device(self, address: str, adapter: str = "hci0") -> None:
        """What ``Adapter1.RemoveDevice`` does: forget the bond, remove the object."""
        dev = self._devices.get((adapter, address.upper()))
        if dev is not None:
            self._remove_device(dev)

    # -- bus plumbing -----------------------------------------------------------------------

    def _now(self) -> float:
        return asyncio.get_running_loop().time() - self._t0

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("virtual BlueZ task failed", exc_info=task.exception())

    def _send(self, msg: Message) -> asyncio.Future[Any] | None:
        bus = self._bus
        if bus is None or not bus.connected:
            return None
        future: asyncio.Future[Any] = bus.send(msg)
        future.add_done_callback(_consume_future)
        return future

    async def _bus_call(self, msg: Message, limit: float = _CALL_TIMEOUT_S) -> Message:
        """A method call on the bus, bounded by ``limit`` seconds (TimeoutError)."""
        bus = self._bus
        if bus is None:
            raise ServiceError("the virtual BlueZ is not running")
        async with asyncio.timeout(limit):
            reply: Message = await bus.call(msg)
        return reply

    def _emit(
        self, path: str, interface: str, member: str, signature: str, body: list[Any]
    ) -> None:
        self._send(Message.new_signal(path, interface, member, signature, body))

    def _emit_props(
        self, path: str, interface: str, changed: Props, invalidated: Sequence[str] = ()
    ) -> None:
        if not changed and not invalidated:
            return
        self._emit(
            path,
            PROPERTIES_IFACE,
            "PropertiesChanged",
            "sa{sv}as",
            [interface, changed, list(invalidated)],
        )

    def _changed(self, obj: BusObject, interface: str, *names: str) -> None:
        """Emit PropertiesChanged for ``names``: present ones changed, absent ones invalidated."""
        if obj.path not in self._objects:
            return
        props = interfaces_of(obj).get(interface, {})
        changed = {n: props[n] for n in names if n in props}
        self._emit_props(obj.path, interface, changed, [n for n in names if n not in props])

    def _export(self, obj: BusObject) -> None:
        self._objects[obj.path] = obj
        self._emit(
            "/",
            OBJECT_MANAGER_IFACE,
            "InterfacesAdded",
            "oa{sa{sv}}",
            [obj.path, interfaces_of(obj)],
        )

    def _unexport(self, path: str) -> None:
        obj = self._objects.pop(path, None)
        if obj is None:
            return
        self._emit(
            "/",
            OBJECT_MANAGER_IFACE,
            "InterfacesRemoved",
            "oas",
            [path, list(interfaces_of(obj))],
        )

    # -- dispatch ---------------------------------------------------------------------------

    def _on_message(self, msg: Message) -> bool | None:
        if msg.message_type is MessageType.SIGNAL:
            if msg.member == "NameOwnerChanged" and msg.sender == "org.freedesktop.DBus":
                self._on_name_owner_changed(msg)
            return None
        if msg.message_type is not MessageType.METHOD_CALL or self._bus is None:
            return None
        if msg.destination not in (BLUEZ_NAME, self._bus.unique_name):
            return None
        self._dispatch(msg)
        return True

    def _dispatch(self, msg: Message) -> None:
        call = Call(
            at=self._now(),
            sender=msg.sender or "",
            path=msg.path or "",
            interface=msg.interface or "",
            member=msg.member or "",
            signature=msg.signature,
            args=unpack_body(msg.body),
        )
        self.calls.append(call)
        try:
            result = self._route(msg)
        except BluezError as err:
            self._reply_error(msg, call, err)
            return
        except Exception:
            logger.exception("virtual BlueZ: %s on %s failed", call.name, call.path)
            self._reply_error(msg, call, BluezError.failed("Operation failed"))
            return
        if isinstance(result, Reply):
            self._reply(msg, call, result)
        else:
            self._spawn(self._finish(msg, call, result))

    async def _finish(self, msg: Message, call: Call, coro: Coroutine[Any, Any, Reply]) -> None:
        try:
            reply = await coro
        except BluezError as err:
            self._reply_error(msg, call, err)
        except AttError as err:
            self._reply_error(msg, call, err.to_bluez())
        except Exception:
            logger.exception("virtual BlueZ: %s on %s failed", call.name, call.path)
            self._reply_error(msg, call, BluezError.failed("Operation failed"))
        else:
            self._reply(msg, call, reply)

    def _reply(self, msg: Message, call: Call, reply: Reply) -> None:
        call.done = True
        if msg.flags & MessageFlag.NO_REPLY_EXPECTED:
            if reply.after_send is not None:
                reply.after_send()
            return
        out = Message.new_method_return(msg, reply.signature, reply.body, reply.fds)
        sent = self._send(out)
        if reply.after_send is not None:
            after = reply.after_send
            if sent is None:
                after()
            else:
                sent.add_done_callback(lambda _f: after())

    def _reply_error(self, msg: Message, call: Call, err: BluezError) -> None:
        call.done = True
        call.error = err.name
        if not msg.flags & MessageFlag.NO_REPLY_EXPECTED:
            self._send(Message.new_error(msg, err.name, err.text))

    def _route(self, msg: Message) -> HandlerResult:
        path = msg.path or ""
        interface = msg.interface
        member = msg.member or ""
        if interface == "org.freedesktop.DBus.Peer" and member == "Ping":
            return Reply()
        if (
            path == "/"
            and member == "GetManagedObjects"
            and interface
            in (
                None,
                OBJECT_MANAGER_IFACE,
            )
        ):
            return Reply(
                "a{oa{sa{sv}}}",
                [{p: interfaces_of(o) for p, o in self._objects.items()}],
            )
        if interface == INTROSPECTABLE_IFACE and member == "Introspect":
            return Reply("s", [self._introspect(path)])
        obj = self._objects.get(path)
        if obj is None:
            raise BluezError(_DBUS_ERROR + "UnknownObject", f"No such object path '{path}'")
        if interface == PROPERTIES_IFACE:
            return self._properties_call(obj, msg)
        route: _Route | None = None
        if interface is None:
            for (_iface, name), option in self._routes.items():
                if name == member and isinstance(obj, option.kind):
                    route = option
                    break
        else:
            found = self._routes.get((interface, member))
            if found is not None and isinstance(obj, found.kind):
                route = found
        if route is None or route.in_signature != msg.signature:
            raise BluezError(
                _DBUS_ERROR + "UnknownMethod",
                f'Method "{member}" with signature "{msg.signature}" on interface '
                f'"{interface}" doesn\'t exist\n',
            )
        return route.handler(obj, msg)

    def _build_routes(self) -> dict[tuple[str, str], _Route]:
        A, D, C, S, R = AdapterState, DeviceState, CharState, DescState, RootState
        return {
            (ADAPTER_IFACE, "StartDiscovery"): _Route("", A, self._m_start_discovery),
            (ADAPTER_IFACE, "StopDiscovery"): _Route("", A, self._m_stop_discovery),
            (ADAPTER_IFACE, "SetDiscoveryFilter"): _Route("a{sv}", A, self._m_set_filter),
            (ADAPTER_IFACE, "GetDiscoveryFilters"): _Route("", A, self._m_get_filters),
            (ADAPTER_IFACE, "RemoveDevice"): _Route("o", A, self._m_remove_device),
            (MONITOR_MANAGER_IFACE, "RegisterMonitor"): _Route("o", A, self._m_register_monitor),
            (MONITOR_MANAGER_IFACE, "UnregisterMonitor"): _Route(
                "o", A, self._m_unregister_monitor
            ),
            (DEVICE_IFACE, "Connect"): _Route("", D, self._m_connect),
            (DEVICE_IFACE, "Disconnect"): _Route("", D, self._m_disconnect),
            (DEVICE_IFACE, "Pair"): _Route("", D, self._m_pair),
            (DEVICE_IFACE, "CancelPairing"): _Route("", D, self._m_cancel_pairing),
            (CHAR_IFACE, "ReadValue"): _Route("a{sv}", C, self._m_read_char),
            (CHAR_IFACE, "WriteValue"): _Route("aya{sv}", C, self._m_write_char),
            (CHAR_IFACE, "StartNotify"): _Route("", C, self._m_start_notify),
            (CHAR_IFACE, "StopNotify"): _Route("", C, self._m_stop_notify),
            (CHAR_IFACE, "AcquireNotify"): _Route("a{sv}", C, self._m_acquire_notify),
            (CHAR_IFACE, "AcquireWrite"): _Route("a{sv}", C, self._m_acquire_write),
            (DESC_IFACE, "ReadValue"): _Route("a{sv}", S, self._m_read_desc),
            (DESC_IFACE, "WriteValue"): _Route("aya{sv}", S, self._m_write_desc),
            (AGENT_MANAGER_IFACE, "RegisterAgent"): _Route("os", R, self._m_register_agent),
            (AGENT_MANAGER_IFACE, "UnregisterAgent"): _Route("o", R, self._m_unregister_agent),
            (AGENT_MANAGER_IFACE, "RequestDefaultAgent"): _Route(
                "o", R, self._m_request_default_agent
            ),
        }

    # -- org.freedesktop.DBus.Properties --------------------------------------------------------

    def _properties_call(self, obj: BusObject, msg: Message) -> HandlerResult:
        member = msg.member
        ifaces = interfaces_of(obj)
        if member == "GetAll" and msg.signature == "s":
            iface = msg.body[0]
            if iface not in ifaces:
                raise BluezError(_DBUS_ERROR + "InvalidArgs", f"No such interface '{iface}'")
            return Reply("a{sv}", [ifaces[iface]])
        if member == "Get" and msg.signature == "ss":
            iface, name = msg.body
            if iface not in ifaces:
                raise BluezError(_DBUS_ERROR + "InvalidArgs", f"No such interface '{iface}'")
            if name not in ifaces[iface]:
                raise BluezError(_DBUS_ERROR + "InvalidArgs", f"No such property '{name}'")
            return Reply("v", [ifaces[iface][name]])
        if member == "Set" and msg.signature == "ssv":
            iface, name, value = msg.body
            return self._set_property(obj, iface, name, value)
        raise BluezError(
            _DBUS_ERROR + "UnknownMethod",
            f'Method "{member}" with signature "{msg.signature}" on interface '
            f'"{PROPERTIES_IFACE}" doesn\'t exist\n',
        )

    def _set_property(self, obj: BusObject, iface: str, name: str, value: Variant) -> Reply:
        writable: dict[tuple[str, str], str] = {
            (DEVICE_IFACE, "Trusted"): "b",
            (DEVICE_IFACE, "Blocked"): "b",
            (DEVICE_IFACE, "Alias"): "s",
            (ADAPTER_IFACE, "Powered"): "b",
            (ADAPTER_IFACE, "Alias"): "s",
            (ADAPTER_IFACE, "Discoverable"): "b",
            (ADAPTER_IFACE, "Pairable"): "b",
        }
        props = interfaces_of(obj).get(iface)
        if props is None:
            raise BluezError(_DBUS_ERROR + "InvalidArgs", f"No such interface '{iface}'")
        if name not in props:
            raise BluezError(_DBUS_ERROR + "InvalidArgs", f"No such property '{name}'")
        signature = writable.get((iface, name))
        if signature is None:
            raise BluezError(_DBUS_ERROR + "PropertyReadOnly", f"Property '{name}' is not writable")
        if value.signature != signature:
            raise BluezError(
                _DBUS_ERROR + "InvalidArgs", f"Invalid argument type: '{value.signature}'"
            )
        new = value.value
        if isinstance(obj, DeviceState):
            if name == "Trusted":
                obj.trusted = bool(new)
                if obj.trusted:
                    obj.temporary = False
            elif name == "Blocked":
                obj.blocked = bool(new)
                if obj.blocked:
                    self._drop_link(obj, DisconnectReason.LOCAL)
            else:
                obj.alias = str(new) or None
            self._changed(obj, DEVICE_IFACE, name)
        elif isinstance(obj, AdapterState):
            if name == "Powered":
                self._set_powered(obj, bool(new))
                return Reply()
            if name == "Alias":
                obj.alias = str(new)
            elif name == "Discoverable":
                obj.discoverable = bool(new)
            else:
                obj.pairable = bool(new)
            self._changed(obj, ADAPTER_IFACE, name)
        return Reply()

    def _set_powered(self, adapter: AdapterState, powered: bool) -> None:
        if adapter.powered == powered:
            return
        if not powered:
            for dev in [d for d in self._devices.values() if d.adapter is adapter]:
                self._drop_link(dev, DisconnectReason.LOCAL)
            was_discovering = adapter.discovering
            adapter.sessions.clear()
            adapter.powered = False
            self._update_advertisers(adapter)
            names = ["Powered", "PowerState"] + (["Discovering"] if was_discovering else [])
            self._changed(adapter, ADAPTER_IFACE, *names)
        else:
            adapter.powered = True
            self._changed(adapter, ADAPTER_IFACE, "Powered", "PowerState")
            self._update_advertisers(adapter)

    # -- discovery --------------------------------------------------------------------------

    def _m_set_filter(self, adapter: AdapterState, msg: Message) -> Reply:
        options: dict[str, Variant] = msg.body[0]
        sender = msg.sender or ""
        if not options:
            adapter.filters.pop(sender, None)
            return Reply()
        flt = DiscoveryFilter()
        for key, variant in options.items():
            if _FILTER_KEYS.get(key) != variant.signature:
                raise BluezError.invalid_args()
            value = variant.value
            if key == "UUIDs":
                try:
                    flt.uuids = frozenset(uuid128(u) for u in value)
                except ValueError:
                    raise BluezError.invalid_args() from None
            elif key == "RSSI":
                flt.rssi = int(value)
            elif key == "Pathloss":
                flt.pathloss = int(value)
            elif key == "Transport":
                if value not in ("auto", "bredr", "le"):
                    raise BluezError.invalid_args()
                flt.transport = value
            elif key == "DuplicateData":
                flt.duplicate_data = bool(value)
            elif key == "Discoverable":
                flt.discoverable = bool(value)
            else:
                flt.pattern = str(value)
        if flt.rssi is not None and flt.pathloss is not None:
            raise BluezError.invalid_args()
        adapter.filters[sender] = flt
        return Reply()

    def _m_get_filters(self, adapter: AdapterState, msg: Message) -> Reply:
        return Reply(
            "as",
            [list(_FILTER_KEYS)],
        )

    def _m_start_discovery(self, adapter: AdapterState, msg: Message) -> Reply:
        if not adapter.powered:
            raise BluezError.not_ready()
        sender = msg.sender or ""
        if sender in adapter.sessions:
            raise BluezError.busy()
        was = adapter.discovering
        adapter.sessions.add(sender)
        if not was:
            self._changed(adapter, ADAPTER_IFACE, "Discovering")
        for dev in self._devices.values():
            if dev.adapter is adapter:
                self._cancel_temp_timer(dev)
        self._update_advertisers(adapter)
        return Reply()

    def _m_stop_discovery(self, adapter: AdapterState, msg: Message) -> Reply:
        if not adapter.powered:
            raise BluezError.not_ready()
        sender = msg.sender or ""
        if sender not in adapter.sessions:
            raise BluezError.failed("No discovery started")
        self._end_discovery(adapter, sender)
        return Reply()

    def _end_discovery(self, adapter: AdapterState, sender: str) -> None:
        adapter.sessions.discard(sender)
        if adapter.discovering:
            return
        self._changed(adapter, ADAPTER_IFACE, "Discovering")
        self._update_advertisers(adapter)
        for dev in [d for d in self._devices.values() if d.adapter is adapter]:
            if dev.rssi is not None and dev.link is None:
                dev.rssi = None
                self._changed(dev, DEVICE_IFACE, "RSSI")
            self._schedule_temporary_removal(dev)

    def _update_advertisers(self, adapter: AdapterState) -> None:
        """Run one advertising loop per in-range peripheral while the adapter scans."""
        if self._bus is None or not adapter.scanning:
            for task in adapter.adv_tasks.values():
                task.cancel()
            adapter.adv_tasks.clear()
            return
        for address, names in self._ranges.items():
            if adapter.name in names and address not in adapter.adv_tasks:
                peripheral = self._peripherals[address]
                adapter.adv_tasks[address] = self._spawn(self._advertise(adapter, peripheral))

    async def _advertise(self, adapter: AdapterState, peripheral: Peripheral) -> None:
        rng = random.Random(f"{adapter.name}/{peripheral.address}")
        await asyncio.sleep(peripheral.timing.first_advert)
        while True:
            timing = peripheral.timing
            heard = timing.adv_loss == 0.0 or rng.random() >= timing.adv_loss
            if peripheral.advertising and peripheral.link is None and adapter.powered and heard:
                try:
                    adv = peripheral.advertisement()
                except Exception:
                    logger.exception("peripheral %s: advertisement() failed", peripheral.address)
                else:
                    self._on_advert(adapter, peripheral, adv)
            await asyncio.sleep(timing.adv_interval)

    def _on_advert(self, adapter: AdapterState, peripheral: Peripheral, adv: Advertisement) -> None:
        address = peripheral.address
        session_match = any(
            adapter.filters.get(sender, DiscoveryFilter()).matches(adv, address)
            for sender in adapter.sessions
        )
        monitors = [m for m in adapter.monitors.values() if patterns_match(m.patterns, adv)]
        if not session_match and not monitors:
            return
        dev = self._device(adapter, peripheral)
        self._cancel_temp_timer(dev)
        before = device_properties(dev)[DEVICE_IFACE] if dev.exported else {}
        dev.adv = adv
        dev.rssi = adv.rssi
        dev.tx_power = adv.tx_power
        dev.uuids |= set(adv.service_uuids)
        if not dev.exported:
            dev.exported = True
            self._export(dev)
        else:
            after = device_properties(dev)[DEVICE_IFACE]
            changed = {k: v for k, v in after.items() if k == "RSSI" or before.get(k) != v}
            self._emit_props(dev.path, DEVICE_IFACE, changed)
        for monitor in monitors:
            if dev.path not in monitor.found:
                monitor.found.add(dev.path)
                self._spawn(self._monitor_call(monitor, "DeviceFound", "o", [dev.path]))
        if not adapter.discovering:
            self._schedule_temporary_removal(dev)

    def _device(self, adapter: AdapterState, peripheral: Peripheral) -> DeviceState:
        key = (adapter.name, peripheral.address)
        dev = self._devices.get(key)
        if dev is None:
            dev = DeviceState(adapter=adapter, peripheral=peripheral)
            self._devices[key] = dev
        return dev

    def _schedule_temporary_removal(self, dev: DeviceState) -> None:
        if not dev.temporary or dev.link is not None or dev.paired or dev.trusted:
            return
        if dev.temp_timer is not None or not dev.exported:
            return
        loop = asyncio.get_running_loop()
        dev.temp_timer = loop.call_later(self.temporary_timeout, self._temporary_expired, dev)

    def _cancel_temp_timer(self, dev: DeviceState) -> None:
        if dev.temp_timer is not None:
            dev.temp_timer.cancel()
            dev.temp_timer = None

    def _temporary_expired(self, dev: DeviceState) -> None:
        dev.temp_timer = None
        if dev.temporary and dev.link is None and not dev.paired and not dev.trusted:
            self._remove_device(dev)

    def _m_remove_device(self, adapter: AdapterState, msg: Message) -> Reply:
        path = msg.body[0]
        obj = self._objects.get(path)
        if not isinstance(obj, DeviceState) or obj.adapter is not adapter:
            raise BluezError.does_not_exist()
        self._remove_device(obj)
        return Reply()

    def _remove_device(self, dev: DeviceState) -> None:
        self._drop_link(dev, DisconnectReason.LOCAL)
        self._cancel_temp_timer(dev)
        self._unexport_gatt(dev)
        dev.gatt = None
        if dev.exported:
            self._unexport(dev.path)
        self._devices.pop((dev.adapter.name, dev.address), None)
        dev.exported = False
        dev.paired = dev.bonded = dev.trusted = False

    # -- passive scanning (AdvertisementMonitorManager1) -------------------------------------

    def _m_register_monitor(self, adapter: AdapterState, msg: Message) -> Reply:
        root = msg.body[0]
        owner = msg.sender or ""
        if (owner, root) in adapter.monitors:
            raise BluezError.already_exists()
        monitor = Monitor(owner=owner, path=root, patterns=())
        adapter.monitors[(owner, root)] = monitor
        # bleak exports its monitor only after this reply, so read it afterwards.
        self._spawn(self._activate_monitor(adapter, monitor))
        return Reply()

    async def _activate_monitor(self, adapter: AdapterState, monitor: Monitor) -> None:
        for _attempt in range(50):
            await asyncio.sleep(0.002)
            if adapter.monitors.get((monitor.owner, monitor.path)) is not monitor:
                return
            try:
                reply = await self._bus_call(
                    Message(
                        destination=monitor.owner,
                        path=monitor.path,
                        interface=PROPERTIES_IFACE,
                        member="GetAll",
                        signature="s",
                        body=[MONITOR_IFACE],
                    )
                )
            except TimeoutError:
                break
            if reply.message_type is MessageType.METHOD_RETURN:
                raw = reply.body[0].get("Patterns")
                if raw is not None:
                    monitor.patterns = tuple(OrPattern(s, t, bytes(c)) for s, t, c in raw.value)
                await self._monitor_call(monitor, "Activate", "", [])
                self._update_advertisers(adapter)
                return
        logger.warning("advertisement monitor %s of %s never appeared", monitor.path, monitor.owner)

    def _m_unregister_monitor(self, adapter: AdapterState, msg: Message) -> Reply:
        key = (msg.sender or "", msg.body[0])
        if adapter.monitors.pop(key, None) is None:
            raise BluezError.does_not_exist()
        self._update_advertisers(adapter)
        return Reply()

    async def _monitor_call(self, monitor: Monitor, member: str, sig: str, body: list[Any]) -> None:
        with contextlib.suppress(TimeoutError, ServiceError):
            await self._bus_call(
                Message(
                    destination=monitor.owner,
                    path=monitor.path,
                    interface=MONITOR_IFACE,
                    member=member,
                    signature=sig,
                    body=body,
                )
            )

    # -- connections ------------------------------------------------------------------------

    async def _m_connect(self, dev: DeviceState, msg: Message) -> Reply:
        await self._connect(dev)
        return Reply()

    async def _connect(self, dev: DeviceState) -> LinkImpl:
        adapter = dev.adapter
        if not adapter.powered:
            raise BluezError.not_ready()
        if dev.blocked:
            raise BluezError.failed("le-connection-refused")
        if dev.link is not None:
            raise BluezError.already_connected()
        if dev.connect_abort is not None:
            raise BluezError.in_progress()
        loop = asyncio.get_running_loop()
        abort: asyncio.Future[None] = loop.create_future()
        dev.connect_abort = abort
        dev.temporary = False
        self._cancel_temp_timer(dev)
        peripheral = dev.peripheral
        try:
            deadline = loop.time() + self.connect_timeout
            while True:
                if self._connectable(dev):
                    await self._wait_or_abort(peripheral.timing.connect, abort)
                    if self._connectable(dev):
                        break
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise BluezError.failed("le-connection-timeout")
                await self._wait_or_abort(min(peripheral.timing.adv_interval, remaining), abort)
        finally:
            dev.connect_abort = None
        link = LinkImpl(self, dev)
        dev.link = link
        peripheral.link = link
        dev.connected = True
        self._changed(dev, DEVICE_IFACE, "Connected")
        if dev.paired:
            if adapter.address not in peripheral.bonds:
                # The host tries its stored keys; the device has none: "PIN or Key Missing".
                self._drop_link(dev, DisconnectReason.AUTHENTICATION)
                raise BluezError.failed("le-connection-key-missing")
            link._encrypted = True
        link.spawn(self._hook(peripheral.on_connect(link), peripheral))
        self._spawn(self._resolve_services(dev, link))
        dev.wake()
        return link

    def _connectable(self, dev: DeviceState) -> bool:
        p = dev.peripheral
        return (
            dev.adapter.powered
            and p.advertising
            and p.link is None
            and dev.adapter.name in self._ranges.get(p.address, ())
        )

    @staticmethod
    async def _wait_or_abort(delay: float, abort: asyncio.Future[None]) -> None:
        if delay > 0:
            await asyncio.wait({abort}, timeout=delay)
        if abort.done():
            raise BluezError.failed("br-connection-canceled")

    async def _resolve_services(self, dev: DeviceState, link: LinkImpl) -> None:
        await asyncio.sleep(dev.peripheral.timing.discovery)
        if not link.up:
            return
        if dev.gatt is None:
            dev.gatt = layout(dev.path, dev.peripheral.services())
            dev.services.clear()
            dev.chars.clear()
            dev.descs.clear()
            for s_slot in dev.gatt:
                dev.services[s_slot.path] = ServiceState(dev, s_slot)
                for c_slot in s_slot.characteristics:
                    char = CharState(dev, c_slot)
                    dev.chars[c_slot.path] = char
                    for d_slot in c_slot.descriptors:
                        dev.descs[d_slot.path] = DescState(dev, char, d_slot)
        if not dev.gatt_exported:
            dev.gatt_exported = True
            for service in dev.services.values():
                self._export(service)
                for char in dev.chars.values():
                    if char.slot.service_path != service.path:
                        continue
                    self._export(char)
                    for desc in dev.descs.values():
                        if desc.char is char:
                            self._export(desc)
        dev.uuids |= {s.service.uuid for s in dev.gatt}
        dev.services_resolved = True
        self._changed(dev, DEVICE_IFACE, "UUIDs", "ServicesResolved")
        dev.wake()

    def _unexport_gatt(self, dev: DeviceState) -> None:
        if not dev.gatt_exported:
            return
        dev.gatt_exported = False
        for desc in dev.descs.values():
            self._unexport(desc.path)
        for char in dev.chars.values():
            self._unexport(char.path)
        for service in dev.services.values():
            self._unexport(service.path)

    async def _m_disconnect(self, dev: DeviceState, msg: Message) -> Reply:
        if dev.connect_abort is not None and not dev.connect_abort.done():
            dev.connect_abort.set_result(None)
            return Reply()
        if dev.link is None:
            raise BluezError.not_connected()
        if self.disconnect_delay > 0:
            await asyncio.sleep(self.disconnect_delay)
        self._drop_link(dev, DisconnectReason.LOCAL)
        return Reply()

    def _drop_link(self, dev: DeviceState, reason: DisconnectReason) -> None:
        """Tear a link down, in bluetoothd's signal order. Idempotent."""
        link = _impl(dev.link)
        if link is None:
            return
        dev.link = None
        peripheral = dev.peripheral
        if peripheral.link is link:
            peripheral.link = None
        link._close()
        if dev.services_resolved:
            dev.services_resolved = False
            self._changed(dev, DEVICE_IFACE, "ServicesResolved")
        if dev.path in self._objects:
            self._emit(dev.path, DEVICE_IFACE, "Disconnected", "ss", [reason.value, reason.message])
        dev.connected = False
        self._changed(dev, DEVICE_IFACE, "Connected")
        for char in dev.chars.values():
            if not char.subscribed:
                continue
            acquired = char.acquired_fd is not None
            char.notify_senders.clear()
            self._release_acquired(char)
            self._changed(char, CHAR_IFACE, "Notifying", *(["NotifyAcquired"] if acquired else []))
        dev.wake()
        if self._bus is not None:
            self._spawn(self._hook(peripheral.on_disconnect(link, reason), peripheral))
        if not self.gatt_cache:
            self._unexport_gatt(dev)
            dev.gatt = None
        if not dev.adapter.discovering:
            self._schedule_temporary_removal(dev)

    async def _hook(self, coro: Coroutine[Any, Any, Any], peripheral: Peripheral) -> None:
        """Run a lifecycle hook; a failing hook is logged, never allowed to kill the service."""
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("peripheral %s: hook failed", peripheral.address)

    # -- pairing ----------------------------------------------------------------------------

    async def _m_pair(self, dev: DeviceState, msg: Message) -> Reply:
        if dev.paired:
            raise BluezError.already_exists()
        if dev.smp is not None:
            raise BluezError.in_progress()
        dev.temporary = False
        if dev.link is None:
            await self._connect(dev)
        await self._pair_link(dev, msg.sender)
        return Reply()

    def _m_cancel_pairing(self, dev: DeviceState, msg: Message) -> Reply:
        if dev.smp is None or dev.smp.done():
            raise BluezError.does_not_exist()
        dev.smp.set_result(BluezError.authentication("Canceled"))
        return Reply()

    async def _pair_link(self, dev: DeviceState, initiator: str | None) -> None:
        """Run SMP once; concurrent callers (Pair, a secure GATT access) share the outcome."""
        smp = dev.smp
        if smp is None:
            smp = asyncio.get_running_loop().create_future()
            dev.smp = smp
            task = self._spawn(self._run_smp(dev, initiator, smp))
            smp.add_done_callback(lambda _f: self._smp_settled(dev, smp, task))
        outcome = await asyncio.shield(smp)
        if isinstance(outcome, BluezError):
            raise BluezError(outcome.name, outcome.text)

    async def _run_smp(
        self, dev: DeviceState, initiator: str | None, smp: asyncio.Future[BaseException | None]
    ) -> None:
        try:
            await self._smp(dev, initiator)
            outcome: BluezError | None = None
        except BluezError as err:
            outcome = err
        if not smp.done():
            smp.set_result(outcome)

    @staticmethod
    def _smp_settled(
        dev: DeviceState, smp: asyncio.Future[BaseException | None], task: asyncio.Task[Any]
    ) -> None:
        if dev.smp is smp:
            dev.smp = None
        if not task.done():
            task.cancel()

    async def _smp(self, dev: DeviceState, initiator: str | None) -> None:
        peripheral = dev.peripheral
        security = peripheral.security
        link = _impl(dev.link)
        if link is None:
            raise BluezError.authentication("Canceled")
        await asyncio.sleep(peripheral.timing.pairing)
        if not security.pairable:
            raise BluezError.authentication("Failed")
        if security.method is PairingMethod.PASSKEY:
            agent = self._agent_for(initiator)
            if agent is None or agent.capability not in _KEYBOARD_CAPABILITIES:
                raise BluezError.authentication("Failed")
            entered = await self._ask_passkey(agent, dev)
            if entered != security.passkey:
                raise BluezError.authentication("Failed")
        if not link.up:
            raise BluezError.authentication("Canceled")
        dev.paired = dev.bonded = True
        dev.temporary = False
        if security.single_bond:
            peripheral.bonds.clear()
        peripheral.bonds.add(dev.adapter.address)
        link._encrypted = True
        self._changed(dev, DEVICE_IFACE, "Paired", "Bonded")
        link.spawn(self._hook(peripheral.on_paired(link), peripheral))

    def _agent_for(self, sender: str | None) -> Agent | None:
        if sender is not None and sender in self._agents:
            return self._agents[sender]
        for owner in self._default_agents:
            if owner in self._agents:
                return self._agents[owner]
        return None

    async def _ask_passkey(self, agent: Agent, dev: DeviceState) -> int:
        request = Message(
            destination=agent.owner,
            path=agent.path,
            interface=AGENT_IFACE,
            member="RequestPasskey",
            signature="o",
            body=[dev.path],
        )
        try:
            reply = await self._bus_call(request, limit=self.agent_timeout)
        except TimeoutError:
            self._send(
                Message(
                    destination=agent.owner,
                    path=agent.path,
                    interface=AGENT_IFACE,
                    member="Cancel",
                    flags=MessageFlag.NO_REPLY_EXPECTED,
                )
            )
            raise BluezError.authentication("Timeout") from None
        if reply.message_type is MessageType.ERROR:
            if reply.error_name == "org.bluez.Error.Rejected":
                raise BluezError.authentication("Rejected")
            if reply.error_name == "org.bluez.Error.Canceled":
                raise BluezError.authentication("Canceled")
            raise BluezError.authentication("Failed")
        if reply.signature != "u":
            raise BluezError.authentication("Failed")
        return int(reply.body[0])

    def _m_register_agent(self, root: RootState, msg: Message) -> Reply:
        path, capability = msg.body
        owner = msg.sender or ""
        capability = capability or "KeyboardDisplay"
        if capability not in _CAPABILITIES:
            raise BluezError.invalid_args()
        if owner in self._agents:
            raise BluezError.already_exists()
        self._agents[owner] = Agent(owner=owner, path=path, capability=capability)
        self._default_agents.append(owner)
        return Reply()

    def _m_unregister_agent(self, root: RootState, msg: Message) -> Reply:
        owner = msg.sender or ""
        agent = self._agents.get(owner)
        if agent is None or agent.path != msg.body[0]:
            raise BluezError.does_not_exist("No such Agent")
        self._forget_agent(owner)
        return Reply()

    def _m_request_default_agent(self, root: RootState, msg: Message) -> Reply:
        owner = msg.sender or ""
        agent = self._agents.get(owner)
        if agent is None or agent.path != msg.body[0]:
            raise BluezError.does_not_exist("No such Agent")
        if owner in self._default_agents:
            self._default_agents.remove(owner)
        self._default_agents.insert(0, owner)
        return Reply()

    def _forget_agent(self, owner: str) -> None:
        self._agents.pop(owner, None)
        if owner in self._default_agents:
            self._default_agents.remove(owner)

    # -- GATT -------------------------------------------------------------------------------

    def _require_link(self, dev: DeviceState) -> LinkImpl:
        link = _impl(dev.link)
        if link is None:
            raise BluezError.failed("Not connected")
        return link

    async def _secure(self, char: CharState, link: LinkImpl) -> None:
        """Insufficient Authentication: bluetoothd raises security (pairs), then retries."""
        if not (char.slot.characteristic.secure and char.device.peripheral.security.required):
            return
        if link.encrypted:
            return
        try:
            await self._pair_link(char.device, None)
        except BluezError:
            raise AttError(ATT_INSUFFICIENT_AUTHENTICATION) from None

    async def _call_hook(self, coro: Coroutine[Any, Any, Any], peripheral: Peripheral) -> Any:
        """Run a GATT hook: AttError passes; anything else is a device bug → Unlikely Error."""
        try:
            return await coro
        except AttError:
            raise
        except Exception:
            logger.exception("peripheral %s: GATT hook failed", peripheral.address)
            raise AttError(ATT_UNLIKELY_ERROR) from None

    async def _m_read_char(self, char: CharState, msg: Message) -> Reply:
        dev = char.device
        link = self._require_link(dev)
        options: dict[str, Variant] = msg.body[0]
        offset = int(options["offset"].value) if "offset" in options else 0
        if char.reading:
            raise BluezError.in_progress()
        char.reading = True
        try:
            await self._secure(char, link)
            if "read" not in char.flags:
                raise AttError(ATT_READ_NOT_PERMITTED)
            await asyncio.sleep(dev.peripheral.timing.gatt_op)
            peripheral = dev.peripheral
            value = await self._call_hook(
                peripheral.on_read(link, char.slot.characteristic), peripheral
            )
            if value is None:
                value = char.slot.characteristic.value
            value = bytes(value)
            if offset > len(value):
                raise AttError(ATT_INVALID_OFFSET)
        finally:
            char.reading = False
        if not link.up:
            raise BluezError.failed("Not connected")
        char.value = value
        self._changed(char, CHAR_IFACE, "Value")
        return Reply("ay", [value[offset:]])

    async def _m_write_char(self, char: CharState, msg: Message) -> Reply:
        dev = char.device
        link = self._require_link(dev)
        data = bytes(msg.body[0])
        options: dict[str, Variant] = msg.body[1]
        wtype = str(options["type"].value) if "type" in options else None
        offset = int(options["offset"].value) if "offset" in options else 0
        flags = char.flags
        peripheral = dev.peripheral
        request = wtype in ("request", "reliable") or (
            wtype is None and ("write" in flags or "reliable-write" in flags)
        )
        if not request:
            if (wtype is not None and wtype != "command") or offset:
                raise BluezError.not_supported()
            if "write-without-response" not in flags:
                raise BluezError.not_supported()
            secure = char.slot.characteristic.secure and peripheral.security.required
            if secure and not link.encrypted:
                logger.info(
                    "peripheral %s ignored a write command on a plain link (%s)",
                    dev.address,
                    char.slot.uuid,
                )
                return Reply()
            try:
                await self._call_hook(
                    peripheral.on_write(link, char.slot.characteristic, data, False), peripheral
                )
            except AttError as err:
                logger.info("peripheral %s ignored a write command: %s", dev.address, err)
            return Reply()
        if char.writing:
            raise BluezError.in_progress()
        char.writing = True
        try:
            await self._secure(char, link)
            if "write" not in flags and "reliable-write" not in flags:
                raise AttError(ATT_WRITE_NOT_PERMITTED)
            await asyncio.sleep(peripheral.timing.gatt_op)
            await self._call_hook(
                peripheral.on_write(link, char.slot.characteristic, data, True), peripheral
            )
        finally:
            char.writing = False
        return Reply()

    async def _m_start_notify(self, char: CharState, msg: Message) -> Reply:
        dev = char.device
        link = self._require_link(dev)
        sender = msg.sender or ""
        if not char.slot.characteristic.notifies:
            raise BluezError.not_supported()
        if char.acquired_fd is not None:
            raise BluezError.not_permitted("Notify acquired")
        if sender in char.notify_senders:
            return Reply()
        if not char.notify_senders:
            await self._secure(char, link)
            peripheral = dev.peripheral
            await self._call_hook(
                peripheral.on_subscribe(link, char.slot.characteristic), peripheral
            )
            if not link.up:
                raise BluezError.failed("Not connected")
        char.notify_senders.add(sender)
        self._changed(char, CHAR_IFACE, "Notifying")
        dev.wake()
        return Reply()

    async def _m_stop_notify(self, char: CharState, msg: Message) -> Reply:
        sender = msg.sender or ""
        if sender not in char.notify_senders:
            raise BluezError.failed("No notify session started")
        await self._unsubscribe(char, sender)
        return Reply()

    async def _unsubscribe(self, char: CharState, sender: str) -> None:
        char.notify_senders.discard(sender)
        if char.subscribed:
            return
        self._changed(char, CHAR_IFACE, "Notifying")
        dev = char.device
        link = dev.link
        dev.wake()
        if link is not None:
            peripheral = dev.peripheral
            with contextlib.suppress(AttError):
                await self._call_hook(
                    peripheral.on_unsubscribe(link, char.slot.characteristic), peripheral
                )

    async def _m_acquire_notify(self, char: CharState, msg: Message) -> Reply:
        dev = char.device
        link = self._require_link(dev)
        if "notify" not in char.flags:
            raise BluezError.not_supported()
        if char.acquired_fd is not None:
            raise BluezError.not_permitted("Notify acquired")
        if char.notify_senders:
            raise BluezError.in_progress()
        await self._secure(char, link)
        peripheral = dev.peripheral
        await self._call_hook(peripheral.on_subscribe(link, char.slot.characteristic), peripheral)
        if not link.up:
            raise BluezError.failed("Not connected")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        our_fd = ours.detach()
        their_fd = theirs.detach()
        char.acquired_fd = our_fd
        char.acquired_by = msg.sender
        asyncio.get_running_loop().add_reader(our_fd, self._on_acquired_readable, char, our_fd)
        self._changed(char, CHAR_IFACE, "NotifyAcquired", "Notifying")
        dev.wake()
        return Reply("hq", [0, peripheral.mtu], [their_fd], lambda: os.close(their_fd))

    def _on_acquired_readable(self, char: CharState, fd: int) -> None:
        try:
            data = os.read(fd, 1024)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            return  # the client has nothing to say on this socket; ignore
        if char.acquired_fd != fd:
            return
        self._release_acquired(char)
        self._changed(char, CHAR_IFACE, "NotifyAcquired", "Notifying")
        dev = char.device
        dev.wake()
        link = dev.link
        if link is not None:
            peripheral = dev.peripheral
            hook = peripheral.on_unsubscribe(link, char.slot.characteristic)
            self._spawn(self._hook(hook, peripheral))

    def _release_acquired(self, char: CharState) -> None:
        fd = char.acquired_fd
        if fd is None:
            return
        char.acquired_fd = None
        char.acquired_by = None
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(fd)
        with contextlib.suppress(OSError):
            os.close(fd)

    async def _m_acquire_write(self, char: CharState, msg: Message) -> Reply:
        dev = char.device
        link = self._require_link(dev)
        if "write-without-response" not in char.flags:
            raise BluezError.not_supported()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        our_fd = ours.detach()
        their_fd = theirs.detach()
        peripheral = dev.peripheral

        def readable() -> None:
            try:
                data = os.read(our_fd, 1024)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data or not link.up:
                with contextlib.suppress(Exception):
                    asyncio.get_running_loop().remove_reader(our_fd)
                with contextlib.suppress(OSError):
                    os.close(our_fd)
                return
            link.spawn(
                self._hook(
                    peripheral.on_write(link, char.slot.characteristic, data, False), peripheral
                )
            )

        asyncio.get_running_loop().add_reader(our_fd, readable)
        return Reply("hq", [0, peripheral.mtu], [their_fd], lambda: os.close(their_fd))

    def _deliver(self, char: CharState, data: bytes) -> None:
        char.value = data
        fd = char.acquired_fd
        if fd is not None:
            try:
                os.write(fd, data)
            except OSError as exc:
                logger.warning("notification on %s lost: %s", char.path, exc)
            return
        self._emit_props(char.path, CHAR_IFACE, {"Value": Variant("ay", data)})

    async def _m_read_desc(self, desc: DescState, msg: Message) -> Reply:
        dev = desc.device
        link = self._require_link(dev)
        if desc.busy:
            raise BluezError.in_progress()
        options: dict[str, Variant] = msg.body[0]
        offset = int(options["offset"].value) if "offset" in options else 0
        desc.busy = True
        try:
            await asyncio.sleep(dev.peripheral.timing.gatt_op)
            if "read" not in desc.slot.descriptor.flags:
                raise AttError(ATT_READ_NOT_PERMITTED)
            value = desc.current_value()
            if offset > len(value):
                raise AttError(ATT_INVALID_OFFSET)
        finally:
            desc.busy = False
        if not link.up:
            raise BluezError.failed("Not connected")
        desc.value = value
        self._changed(desc, DESC_IFACE, "Value")
        return Reply("ay", [value[offset:]])

    async def _m_write_desc(self, desc: DescState, msg: Message) -> Reply:
        dev = desc.device
        self._require_link(dev)
        if desc.busy:
            raise BluezError.in_progress()
        if desc.is_cccd:
            # bluetoothd keeps the CCCD to itself: StartNotify/StopNotify are the way.
            raise BluezError.not_permitted("Write not permitted")
        if "write" not in desc.slot.descriptor.flags:
            raise AttError(ATT_WRITE_NOT_PERMITTED)
        desc.value = bytes(msg.body[0])
        self._changed(desc, DESC_IFACE, "Value")
        return Reply()

    # -- clients leaving the bus -----------------------------------------------------------

    def _on_name_owner_changed(self, msg: Message) -> None:
        name, _old, new = msg.body
        if new or not name.startswith(":"):
            return
        self._forget_agent(name)
        for adapter in self._adapters.values():
            adapter.filters.pop(name, None)
            for key in [k for k in adapter.monitors if k[0] == name]:
                del adapter.monitors[key]
            if name in adapter.sessions:
                self._end_discovery(adapter, name)
            self._update_advertisers(adapter)
        for dev in self._devices.values():
            for char in dev.chars.values():
                if name in char.notify_senders:
                    self._spawn(self._unsubscribe(char, name))

    # -- introspection ----------------------------------------------------------------------

    def _introspect(self, path: str) -> str:
        obj = self._objects.get(path)
        lines = [
            '<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"',
            ' "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">',
            "<node>",
        ]
        if obj is not None or path == "/":
            ifaces = interfaces_of(obj) if obj is not None else {}
            if path == "/":
                ifaces = {OBJECT_MANAGER_IFACE: {}, **ifaces}
            for iface, props in ifaces.items():
                lines.append(f'  <interface name="{iface}">')
                for (r_iface, member), route in self._routes.items():
                    if r_iface == iface:
                        lines.append(f'    <method name="{member}">')
                        for index, sig in enumerate(_split_signature(route.in_signature)):
                            lines.append(
                                f'      <arg name="arg{index}" type="{sig}" direction="in"/>'
                            )
                        lines.append("    </method>")
                for name, variant in props.items():
                    lines.append(
                        f'    <property name="{name}" type="{variant.signature}" access="read"/>'
                    )
                lines.append("  </interface>")
        prefix = path.rstrip("/") + "/"
        children = sorted(
            {p[len(prefix) :].split("/")[0] for p in self._objects if p.startswith(prefix)}
        )
        lines.extend(f'  <node name="{child}"/>' for child in children)
        lines.append("</node>")
        return "\n".join(lines)


def _split_signature(signature: str) -> list[str]:
    """Split a D-Bus signature into its complete types."""
    out: list[str] = []
    i = 0
    while i < len(signature):
        start = i
        depth = 0
        while True:
            ch = signature[i]
            i += 1
            if ch in "({":
                depth += 1
            elif ch in ")}":
                depth -= 1
            if ch != "a" and depth == 0:
                break
        out.append(signature[start:i])
    return out


def _consume_future(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


@contextlib.asynccontextmanager
async def virtual_bluez(
    bus_address: str | None = None, **options: Any
) -> AsyncIterator[VirtualBlueZ]:
    """``async with virtual_bluez(address) as bluez: bluez.add_peripheral(...)``."""
    service = VirtualBlueZ(bus_address, **options)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
