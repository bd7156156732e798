"""A BlueZ pairing agent (``org.bluez.Agent1``) for passkey devices: bleak has none (#1100).

Passkey-entry devices (Accu-Chek PIN printed on the meter, Silvercrest SBM69 showing a key)
make BlueZ ask the registered agent for the six digits; Just Works devices ask nothing or
ask for a confirmation, which we give. The passkeys come from the gateway's registry
(``[[gateway.devices]] passkey``) and are never logged. Registered as the default agent on
its own system-bus connection, with capability ``KeyboardDisplay`` (hass-omron ships a
similar auto-confirm agent).

No ``from __future__ import annotations`` here: dbus-fast reads the D-Bus signatures from the
method annotations at class creation (virtual-bluez.md gotcha 7); they are dbus-fast's typed
``Annotated`` aliases, so mypy checks them too.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable

from dbus_fast import BusType, DBusError, Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusObjectPath, DBusStr, DBusUInt16, DBusUInt32
from dbus_fast.service import ServiceInterface, dbus_method

logger = logging.getLogger(__name__)

AGENT_PATH = "/org/daon/gateway/agent"
BLUEZ = "org.bluez"
REJECTED = "org.bluez.Error.Rejected"


def address_of(device_path: str) -> str:
    """``/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF`` → ``AA:BB:CC:DD:EE:FF``."""
    leaf = device_path.rsplit("/", 1)[-1]
    return leaf.removeprefix("dev_").replace("_", ":").upper()


class _Agent(ServiceInterface):
    def __init__(self, passkey_for: Callable[[str], int | None]) -> None:
        super().__init__("org.bluez.Agent1")
        self._passkey_for = passkey_for

    @dbus_method()
    def Release(self) -> None:
        logger.info("BlueZ released the pairing agent")

    @dbus_method()
    def RequestPasskey(self, device: DBusObjectPath) -> DBusUInt32:
        address = address_of(device)
        passkey = self._passkey_for(address)
        if passkey is None:
            logger.warning("pairing %s needs a passkey and the registry has none", address)
            raise DBusError(REJECTED, "no passkey registered for this device")
        logger.info("giving the registered passkey to pair %s", address)
        return passkey

    @dbus_method()
    def RequestPinCode(self, device: DBusObjectPath) -> DBusStr:
        passkey = self._passkey_for(address_of(device))
        if passkey is None:
            raise DBusError(REJECTED, "no PIN registered for this device")
        return f"{passkey:06d}"

    @dbus_method()
    def DisplayPasskey(
        self, device: DBusObjectPath, passkey: DBusUInt32, entered: DBusUInt16
    ) -> None:
        logger.info("device %s shows passkey entry progress", address_of(device))

    @dbus_method()
    def DisplayPinCode(self, device: DBusObjectPath, pincode: DBusStr) -> None:
        logger.info("device %s displays a PIN", address_of(device))

    @dbus_method()
    def RequestConfirmation(self, device: DBusObjectPath, passkey: DBusUInt32) -> None:
        logger.info("confirming pairing with %s", address_of(device))

    @dbus_method()
    def RequestAuthorization(self, device: DBusObjectPath) -> None:
        logger.info("authorising %s", address_of(device))

    @dbus_method()
    def AuthorizeService(self, device: DBusObjectPath, uuid: DBusStr) -> None:
        return None

    @dbus_method()
    def Cancel(self) -> None:
        logger.info("BlueZ cancelled a pairing request")


class PairingAgent:
    """Owns the agent's bus connection. ``await agent.start()`` / ``await agent.stop()``."""

    def __init__(self, passkey_for: Callable[[str], int | None], *, timeout: float = 5.0) -> None:
        self._agent = _Agent(passkey_for)
        self._bus: MessageBus | None = None
        self._timeout = timeout

    async def start(self) -> None:
        bus = MessageBus(bus_type=BusType.SYSTEM)
        try:
            async with asyncio.timeout(self._timeout):
                await bus.connect()
                bus.export(AGENT_PATH, self._agent)
                for member, body in (
                    ("RegisterAgent", [AGENT_PATH, "KeyboardDisplay"]),
                    ("RequestDefaultAgent", [AGENT_PATH]),
                ):
                    reply = await bus.call(
                        Message(
                            destination=BLUEZ,
                            path="/org/bluez",
                            interface="org.bluez.AgentManager1",
                            member=member,
                            signature="os" if member == "RegisterAgent" else "o",
                            body=body,
                        )
                    )
                    if reply.message_type is MessageType.ERROR:
                        raise DBusError(
                            reply.error_name or "org.bluez.Error.Failed", str(reply.body)
                        )
        except BaseException:
            bus.disconnect()  # a refusal, a timeout or a cancellation: no connection left open
            raise
        self._bus = bus
        logger.info("pairing agent registered at %s", AGENT_PATH)

    async def stop(self) -> None:
        bus, self._bus = self._bus, None
        if bus is None:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._timeout):
                await bus.call(
                    Message(
                        destination=BLUEZ,
                        path="/org/bluez",
                        interface="org.bluez.AgentManager1",
                        member="UnregisterAgent",
                        signature="o",
                        body=[AGENT_PATH],
                    )
                )
        bus.disconnect()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
