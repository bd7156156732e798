"""Helpers for the BLE tests: an org.bluez.Agent1 like a gateway's, and a bare peripheral.

No ``from __future__ import annotations`` here: dbus-fast reads the method annotations.
"""

import asyncio
from collections.abc import Callable

from dbus_fast import DBusError, Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusObjectPath, DBusStr, DBusUInt16, DBusUInt32
from dbus_fast.service import ServiceInterface, dbus_method

from simulators.bluez import GattCharacteristic, GattService, Link, Peripheral, Timing

AGENT_PATH = "/test/agent"
BASE = "-0000-1000-8000-00805f9b34fb"


def u(short: str) -> str:
    """The 128-bit form of a 16-bit UUID, spelled out as bleak wants it."""
    return f"0000{short.lower()}{BASE}"


class PasskeyAgent(ServiceInterface):
    """The agent a gateway registers: answers RequestPasskey with what the nurse typed."""

    def __init__(self, passkey: int | None = None, *, reply_error: str | None = None) -> None:
        super().__init__("org.bluez.Agent1")
        self.passkey = passkey
        self.reply_error = reply_error
        self.requests: list[str] = []
        self.cancelled = 0

    @dbus_method()
    def Release(self) -> None:
        pass

    @dbus_method()
    def RequestPinCode(self, device: DBusObjectPath) -> DBusStr:
        raise DBusError("org.bluez.Error.Rejected", "no PIN codes here")

    @dbus_method()
    async def RequestPasskey(self, device: DBusObjectPath) -> DBusUInt32:
        self.requests.append(device)
        if self.reply_error is not None:
            raise DBusError(self.reply_error, "refused by the test agent")
        if self.passkey is None:
            await asyncio.sleep(3600)  # a nurse who never types: bluetoothd times out
        assert self.passkey is not None
        return self.passkey

    @dbus_method()
    def DisplayPasskey(
        self, device: DBusObjectPath, passkey: DBusUInt32, entered: DBusUInt16
    ) -> None:
        pass

    @dbus_method()
    def RequestConfirmation(self, device: DBusObjectPath, passkey: DBusUInt32) -> None:
        pass

    @dbus_method()
    def RequestAuthorization(self, device: DBusObjectPath) -> None:
        pass

    @dbus_method()
    def AuthorizeService(self, device: DBusObjectPath, uuid: DBusStr) -> None:
        pass

    @dbus_method()
    def Cancel(self) -> None:
        self.cancelled += 1


async def register_agent(
    address: str, agent: PasskeyAgent, capability: str = "KeyboardDisplay"
) -> MessageBus:
    """Connect, export ``agent`` and make it bluetoothd's default agent. Disconnect when done."""
    bus = await MessageBus(bus_address=address).connect()
    bus.export(AGENT_PATH, agent)
    for member, signature, body in (
        ("RegisterAgent", "os", [AGENT_PATH, capability]),
        ("RequestDefaultAgent", "o", [AGENT_PATH]),
    ):
        reply = await bus.call(
            Message(
                destination="org.bluez",
                path="/org/bluez",
                interface="org.bluez.AgentManager1",
                member=member,
                signature=signature,
                body=body,
            )
        )
        assert reply.message_type is MessageType.METHOD_RETURN, reply.body
    return bus


class Gadget(Peripheral):
    """A bare peripheral for the service tests: DIS name, a notify, an indicate, a read-only."""

    def __init__(self, address: str = "C0:FF:EE:00:00:01", **kwargs: object) -> None:
        kwargs.setdefault("timing", Timing.fast())
        super().__init__(address, "Gadget", service_uuids=["1810"], **kwargs)  # type: ignore[arg-type]
        self.written: list[tuple[str, bytes, bool]] = []
        self.subscriptions: list[str] = []
        self.read_delay = 0.0
        self.on_sub: Callable[[Link, str], object] | None = None

    def services(self) -> list[GattService]:
        return [
            GattService("180a", (GattCharacteristic("2a29", ("read",), b"Acme Medical"),)),
            GattService(
                "1810",
                (
                    GattCharacteristic("2a35", ("indicate",), secure=True),
                    GattCharacteristic("2a36", ("notify",)),
                    GattCharacteristic("2a49", ("read",), b"\x00\x00", secure=True),
                    GattCharacteristic("2a52", ("write", "indicate")),
                ),
            ),
        ]

    async def on_read(self, link: Link, char: GattCharacteristic) -> bytes | None:
        if self.read_delay:
            await asyncio.sleep(self.read_delay)
        return None

    async def on_write(
        self, link: Link, char: GattCharacteristic, data: bytes, with_response: bool
    ) -> None:
        self.written.append((char.uuid, data, with_response))

    async def on_subscribe(self, link: Link, char: GattCharacteristic) -> None:
        self.subscriptions.append(char.uuid)
        if self.on_sub is not None:
            self.on_sub(link, char.uuid)


class Inbox:
    """Notifications as they arrive, in order, as (uuid, bytes); callbacks only enqueue."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes]] = []
        self._changed = asyncio.Event()

    def callback(self, uuid: str) -> Callable[[object, bytearray], None]:
        def on_value(_char: object, data: bytearray) -> None:
            self.items.append((uuid, bytes(data)))
            self._changed.set()

        return on_value

    def of(self, uuid: str) -> list[bytes]:
        return [data for u_, data in self.items if u_ == uuid]

    async def wait_for(self, predicate: Callable[[], bool], within: float = 2.0) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()
