"""What a simulated BLE peripheral is, seen from the virtual BlueZ.

A :class:`Peripheral` is a plain object: identity and advertising data, a GATT database
(:meth:`Peripheral.services`), a security policy, timings, and async hooks the service calls
(``on_connect``, ``on_read``, ``on_write``, ``on_subscribe`` ...). While connected it holds a
:class:`Link`, through which it sends notifications and indications, hangs up, or starts tasks
that die with the connection. Hooks reject an operation by raising
:class:`~simulators.bluez.errors.AttError`, exactly as a device answers with an ATT error.

Health-device behaviour (records, RACP, consent, faults) lives in ``simulators.peripherals``;
this module only knows Bluetooth.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from simulators.bluez.errors import ATT_WRITE_NOT_PERMITTED, AttError
from simulators.bluez.gatt import GattCharacteristic, GattService, uuid128

#: Advertising flags: LE General Discoverable + BR/EDR not supported (0x06); Limited is 0x05.
ADV_FLAGS_GENERAL: Final = 0x06
ADV_FLAGS_LIMITED: Final = 0x05


class PairingMethod(StrEnum):
    """How the device authenticates a new bond."""

    JUST_WORKS = "just-works"
    PASSKEY = "passkey"  # the host types the 6-digit key the device shows or has printed on it


class DisconnectReason(StrEnum):
    """``Device1.Disconnected`` reason names (bluetoothd)."""

    LOCAL = "org.bluez.Reason.Local"
    REMOTE = "org.bluez.Reason.Remote"
    TIMEOUT = "org.bluez.Reason.Timeout"
    AUTHENTICATION = "org.bluez.Reason.Authentication"
    UNKNOWN = "org.bluez.Reason.Unknown"

    @property
    def message(self) -> str:
        return _REASON_MESSAGES[self]


_REASON_MESSAGES: Final = {
    DisconnectReason.LOCAL: "Connection terminated by local host",
    DisconnectReason.REMOTE: "Connection terminated by remote user",
    DisconnectReason.TIMEOUT: "Connection timed out",
    DisconnectReason.AUTHENTICATION: "Connection terminated due to authentication failure",
    DisconnectReason.UNKNOWN: "Connection terminated due to unknown reason",
}


@dataclass(frozen=True, slots=True)
class Security:
    """The device's pairing policy.

    ``required``: the characteristics marked ``secure`` need an encrypted link; on a plain
    link the device answers Insufficient Authentication and bluetoothd pairs on the spot.
    ``pairable``: the device is in pairing mode (Omron: hold the Bluetooth button until "P"
    blinks). ``passkey`` is the 6-digit key for :attr:`PairingMethod.PASSKEY`.
    ``single_bond``: a new bond replaces the old one (Omron, A&D): the previous host's keys
    stop working.
    """

    required: bool = False
    method: PairingMethod = PairingMethod.JUST_WORKS
    passkey: int | None = None
    pairable: bool = True
    single_bond: bool = False

    def __post_init__(self) -> None:
        if self.method is PairingMethod.PASSKEY and (
            self.passkey is None or not 0 <= self.passkey <= 999_999
        ):
            raise ValueError("passkey pairing needs a passkey between 000000 and 999999")


@dataclass(frozen=True, slots=True)
class Timing:
    """Simulated radio and device latencies, in seconds.

    The defaults follow virtual-bluez.md's measurements (a full cuff cycle ≈ 0.4 s).
    ``first_advert`` must stay ≥ 10 ms: bleak registers its scan callback only after
    StartDiscovery returns, and an advert in the same read is lost. ``adv_loss`` is the share
    of advertising events the scanner misses (sparse advertising).
    """

    first_advert: float = 0.015
    adv_interval: float = 0.1
    adv_loss: float = 0.0
    connect: float = 0.02
    discovery: float = 0.03
    pairing: float = 0.05
    gatt_op: float = 0.0
    notify_gap: float = 0.03
    indication_confirm: float = 0.0
    hang_up: float = 0.2

    def __post_init__(self) -> None:
        if self.first_advert < 0.01:
            raise ValueError("first_advert below 10 ms loses adverts in bleak's scanner")
        if not 0.0 <= self.adv_loss < 1.0:
            raise ValueError("adv_loss is a share in [0, 1)")

    @classmethod
    def fast(cls) -> Timing:
        """Latencies for tests: everything immediate except what bleak needs to see adverts."""
        return cls(
            first_advert=0.012,
            adv_interval=0.01,
            connect=0.0,
            discovery=0.0,
            pairing=0.0,
            notify_gap=0.0,
            hang_up=0.02,
        )


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One advertising event's content, as bluetoothd turns it into Device1 properties."""

    name: str | None = None
    service_uuids: tuple[str, ...] = ()
    manufacturer_data: Mapping[int, bytes] = field(default_factory=dict)
    service_data: Mapping[str, bytes] = field(default_factory=dict)
    tx_power: int | None = None
    rssi: int = -60
    appearance: int | None = None
    flags: int = ADV_FLAGS_GENERAL

    def __post_init__(self) -> None:
        object.__setattr__(self, "service_uuids", tuple(uuid128(u) for u in self.service_uuids))
        object.__setattr__(
            self, "service_data", {uuid128(k): bytes(v) for k, v in self.service_data.items()}
        )
        object.__setattr__(
            self, "manufacturer_data", {int(k): bytes(v) for k, v in self.manufacturer_data.items()}
        )
        if not -127 <= self.rssi <= 20:
            raise ValueError(f"RSSI out of range: {self.rssi}")


class Link(abc.ABC):
    """One live connection, handed to the peripheral by the virtual BlueZ."""

    @property
    @abc.abstractmethod
    def up(self) -> bool:
        """False once the link has dropped, whoever dropped it."""

    @property
    @abc.abstractmethod
    def encrypted(self) -> bool:
        """True once the link is encrypted with a bond (paired now, or a stored bond)."""

    @property
    @abc.abstractmethod
    def host(self) -> str:
        """The central's (adapter's) Bluetooth address."""

    @property
    @abc.abstractmethod
    def mtu(self) -> int:
        """ATT MTU; a notification carries at most ``mtu - 3`` bytes."""

    @abc.abstractmethod
    def subscribed(self, uuid: str) -> bool:
        """True when the client enabled notifications/indications on ``uuid``."""

    @abc.abstractmethod
    async def wait_subscribed(self, uuid: str) -> bool:
        """Wait until ``uuid`` is subscribed: True, or False if the link drops first.

        Bound it with ``asyncio.timeout`` (a device gives up on an idle client).
        """

    @abc.abstractmethod
    async def notify(self, uuid: str, data: bytes) -> bool:
        """Send a notification or indication; True when delivered (indications: confirmed).

        False when the client has not subscribed or the link is gone. Raises ValueError for
        a payload longer than ``mtu - 3``: the peripheral must split it, as real ones do.
        """

    @abc.abstractmethod
    def disconnect(self, reason: DisconnectReason = DisconnectReason.REMOTE) -> None:
        """Drop the link: REMOTE for a hang-up, TIMEOUT for a link lost in mid-air."""

    @abc.abstractmethod
    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` for the life of the link; it is cancelled when the link drops."""


class Peripheral:
    """Base class for simulated devices. Subclasses override :meth:`services` and the hooks."""

    def __init__(
        self,
        address: str,
        name: str | None,
        *,
        service_uuids: Sequence[str | int] = (),
        manufacturer_data: Mapping[int, bytes] | None = None,
        service_data: Mapping[str, bytes] | None = None,
        appearance: int | None = None,
        tx_power: int | None = None,
        rssi: int = -60,
        address_type: str = "public",
        security: Security | None = None,
        timing: Timing | None = None,
        mtu: int = 23,
        adv_flags: int = ADV_FLAGS_GENERAL,
    ) -> None:
        self.address = normalise_address(address)
        self.name = name
        self.service_uuids = tuple(uuid128(u) for u in service_uuids)
        self.manufacturer_data: dict[int, bytes] = dict(manufacturer_data or {})
        self.service_data: dict[str, bytes] = dict(service_data or {})
        self.appearance = appearance
        self.tx_power = tx_power
        self.rssi = rssi
        self.address_type = address_type
        self.security = security or Security()
        self.timing = timing or Timing()
        if not 23 <= mtu <= 517:
            raise ValueError(f"ATT MTU out of range: {mtu}")
        self.mtu = mtu
        self.adv_flags = adv_flags
        #: Whether the device is advertising now (devices advertise in short windows).
        self.advertising = True
        #: Host addresses this device holds bonding keys for.
        self.bonds: set[str] = set()
        #: The live connection, set by the virtual BlueZ.
        self.link: Link | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.address} {self.name!r}>"

    # -- what the service reads --------------------------------------------------------------

    def advertisement(self) -> Advertisement:
        """The next advertising event's content; override to vary it (e.g. record counters)."""
        return Advertisement(
            name=self.name,
            service_uuids=self.service_uuids,
            manufacturer_data=self.manufacturer_data,
            service_data=self.service_data,
            tx_power=self.tx_power,
            rssi=self.rssi,
            appearance=self.appearance,
            flags=self.adv_flags,
        )

    def services(self) -> Sequence[GattService]:
        """The GATT database (without Generic Access / Generic Attribute)."""
        return ()

    # -- hooks (override) -----------------------------------------------------------------

    async def on_connect(self, link: Link) -> None:
        """The link is up (before service discovery)."""

    async def on_disconnect(self, link: Link, reason: DisconnectReason) -> None:
        """The link is down; tasks spawned on it are already cancelled."""

    async def on_paired(self, link: Link) -> None:
        """A new bond was created on this link."""

    async def on_read(self, link: Link, char: GattCharacteristic) -> bytes | None:
        """Value for a read; None serves ``char.value``. Raise AttError to refuse."""
        return None

    async def on_write(
        self, link: Link, char: GattCharacteristic, data: bytes, with_response: bool
    ) -> None:
        """A write (request or command). Raise AttError to answer with an error (requests)."""
        raise AttError(ATT_WRITE_NOT_PERMITTED)

    async def on_subscribe(self, link: Link, char: GattCharacteristic) -> None:
        """The CCCD was enabled. Raise AttError to refuse."""

    async def on_unsubscribe(self, link: Link, char: GattCharacteristic) -> None:
        """The CCCD was disabled (also on link loss)."""

    # -- actions -------------------------------------------------------------------------

    def forget_bonds(self) -> None:
        """Lose every bond (factory reset, some devices on battery change)."""
        self.bonds.clear()

    def hang_up(self) -> None:
        """Disconnect from the peripheral side, if connected."""
        if self.link is not None and self.link.up:
            self.link.disconnect(DisconnectReason.REMOTE)


def normalise_address(address: str) -> str:
    """``aa:bb:cc:dd:ee:ff`` → ``AA:BB:CC:DD:EE:FF``; raises ValueError for anything else."""
    parts = address.strip().upper().replace("-", ":").split(":")
    if len(parts) != 6 or not all(
        len(p) == 2 and all(c in "0123456789ABCDEF" for c in p) for p in parts
    ):
        raise ValueError(f"not a Bluetooth address: {address!r}")
    return ":".join(parts)
