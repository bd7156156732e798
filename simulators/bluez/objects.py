"""State behind each exported org.bluez object, and its D-Bus properties exactly typed.

bluetoothd exports some properties only while they are known (``RSSI``, ``Name``,
``ManufacturerData``, a characteristic's ``Value`` ...). Each ``*_properties`` function below
returns only the properties present *now*, as :class:`~dbus_fast.Variant` with bluetoothd's
signatures; a property that disappears is reported in ``PropertiesChanged``'s invalidated list.
One wrongly typed value makes dbus-fast fail the whole ``GetManagedObjects`` reply, which is
why every value is built here and nowhere else.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Final

from dbus_fast import Variant, unpack_variants

from simulators.bluez.gatt import (
    BASE_UUID_SUFFIX,
    CCCD_UUID,
    CharacteristicSlot,
    DescriptorSlot,
    ServiceSlot,
)
from simulators.bluez.peripheral import Advertisement, Link, Peripheral

ADAPTER_IFACE: Final = "org.bluez.Adapter1"
DEVICE_IFACE: Final = "org.bluez.Device1"
SERVICE_IFACE: Final = "org.bluez.GattService1"
CHAR_IFACE: Final = "org.bluez.GattCharacteristic1"
DESC_IFACE: Final = "org.bluez.GattDescriptor1"
AGENT_MANAGER_IFACE: Final = "org.bluez.AgentManager1"
AGENT_IFACE: Final = "org.bluez.Agent1"
MONITOR_MANAGER_IFACE: Final = "org.bluez.AdvertisementMonitorManager1"
MONITOR_IFACE: Final = "org.bluez.AdvertisementMonitor1"
PROPERTIES_IFACE: Final = "org.freedesktop.DBus.Properties"
INTROSPECTABLE_IFACE: Final = "org.freedesktop.DBus.Introspectable"
OBJECT_MANAGER_IFACE: Final = "org.freedesktop.DBus.ObjectManager"

#: Every bluetoothd object also carries these two (gdbus registers them for each path).
STANDARD_IFACES: Final[dict[str, dict[str, Variant]]] = {
    INTROSPECTABLE_IFACE: {},
    PROPERTIES_IFACE: {},
}

Props = dict[str, Variant]


@dataclass(slots=True, eq=False)
class DiscoveryFilter:
    """One client's ``SetDiscoveryFilter`` (bluetoothd ``discovery_filter``)."""

    uuids: frozenset[str] = frozenset()
    rssi: int | None = None
    pathloss: int | None = None
    transport: str = "auto"
    duplicate_data: bool = True
    discoverable: bool = False
    pattern: str = ""

    def matches(self, adv: Advertisement, address: str) -> bool:
        """bluetoothd's ``is_filter_match`` for an LE advertiser."""
        if self.transport == "bredr":
            return False
        if self.uuids and not self.uuids.intersection(adv.service_uuids):
            return False
        if self.rssi is not None and adv.rssi < self.rssi:
            return False
        if (
            self.pathloss is not None
            and adv.tx_power is not None
            and adv.tx_power - adv.rssi > self.pathloss
        ):
            return False
        if self.discoverable and not adv.flags & 0x03:
            return False
        if self.pattern:
            name = adv.name or ""
            if not (address.startswith(self.pattern.upper()) or name.startswith(self.pattern)):
                return False
        return True


@dataclass(frozen=True, slots=True)
class OrPattern:
    """One ``AdvertisementMonitor1.Patterns`` entry: AD type, start offset, content."""

    start: int
    ad_type: int
    content: bytes


@dataclass(slots=True, eq=False)
class Monitor:
    owner: str
    path: str
    patterns: tuple[OrPattern, ...]
    found: set[str] = field(default_factory=set)


@dataclass(slots=True, eq=False)
class Agent:
    owner: str
    path: str
    capability: str


@dataclass(slots=True, eq=False)
class AdapterState:
    """One hciN adapter."""

    name: str
    address: str
    powered: bool = True
    alias: str = ""
    discoverable: bool = False
    pairable: bool = True
    filters: dict[str, DiscoveryFilter] = field(default_factory=dict)
    sessions: set[str] = field(default_factory=set)
    monitors: dict[tuple[str, str], Monitor] = field(default_factory=dict)
    adv_tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"/org/bluez/{self.name}"

    @property
    def discovering(self) -> bool:
        return self.powered and bool(self.sessions)

    @property
    def scanning(self) -> bool:
        """Active discovery or passive monitors: the radio listens for adverts."""
        return self.powered and bool(self.sessions or self.monitors)


@dataclass(slots=True, eq=False)
class CharState:
    """A characteristic of a known device, with its notify sessions."""

    device: DeviceState
    slot: CharacteristicSlot
    value: bytes | None = None
    notify_senders: set[str] = field(default_factory=set)
    acquired_fd: int | None = None
    acquired_by: str | None = None
    reading: bool = False
    writing: bool = False

    @property
    def path(self) -> str:
        return self.slot.path

    @property
    def flags(self) -> tuple[str, ...]:
        return self.slot.characteristic.flags

    @property
    def subscribed(self) -> bool:
        return bool(self.notify_senders) or self.acquired_fd is not None

    @property
    def uses_indication(self) -> bool:
        """bluetoothd enables notifications when both are possible."""
        return "indicate" in self.flags and "notify" not in self.flags


@dataclass(slots=True, eq=False)
class DescState:
    device: DeviceState
    char: CharState
    slot: DescriptorSlot
    value: bytes | None = None
    busy: bool = False

    @property
    def path(self) -> str:
        return self.slot.path

    @property
    def is_cccd(self) -> bool:
        return self.slot.descriptor.uuid == CCCD_UUID

    def current_value(self) -> bytes:
        if self.is_cccd:
            if not self.char.subscribed:
                return b"\x00\x00"
            return b"\x02\x00" if self.char.uses_indication else b"\x01\x00"
        return self.value if self.value is not None else self.slot.descriptor.value


@dataclass(slots=True, eq=False)
class ServiceState:
    device: DeviceState
    slot: ServiceSlot

    @property
    def path(self) -> str:
        return self.slot.path


@dataclass(slots=True, eq=False)
class DeviceState:
    """bluetoothd's ``btd_device`` for one peripheral seen by one adapter."""

    adapter: AdapterState
    peripheral: Peripheral
    exported: bool = False
    adv: Advertisement | None = None
    rssi: int | None = None
    tx_power: int | None = None
    uuids: set[str] = field(default_factory=set)
    connected: bool = False
    services_resolved: bool = False
    paired: bool = False
    bonded: bool = False
    trusted: bool = False
    blocked: bool = False
    temporary: bool = True
    alias: str | None = None
    gatt: tuple[ServiceSlot, ...] | None = None
    gatt_exported: bool = False
    services: dict[str, ServiceState] = field(default_factory=dict)
    chars: dict[str, CharState] = field(default_factory=dict)
    descs: dict[str, DescState] = field(default_factory=dict)
    link: Link | None = None  # the service's LinkImpl while connected
    connect_abort: asyncio.Future[None] | None = None
    smp: asyncio.Future[BaseException | None] | None = None
    temp_timer: asyncio.TimerHandle | None = None
    waiters: list[asyncio.Future[None]] = field(default_factory=list)

    def wake(self) -> None:
        """Resolve everyone waiting for a subscription or link change on this device."""
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    @property
    def address(self) -> str:
        return self.peripheral.address

    @property
    def path(self) -> str:
        return f"{self.adapter.path}/dev_{self.address.replace(':', '_')}"

    @property
    def name(self) -> str | None:
        if self.adv is not None and self.adv.name:
            return self.adv.name
        return self.peripheral.name if not self.temporary else None


@dataclass(slots=True, eq=False)
class RootState:
    """``/org/bluez``: AgentManager1."""

    path: str = "/org/bluez"


BusObject = AdapterState | DeviceState | ServiceState | CharState | DescState | RootState


def object_path(obj: BusObject) -> str:
    return obj.path


def _uuid16_or_none(uuid: str) -> int | None:
    if uuid.endswith(BASE_UUID_SUFFIX) and uuid.startswith("0000"):
        return int(uuid[4:8], 16)
    return None


def adapter_properties(a: AdapterState) -> dict[str, Props]:
    return {
        ADAPTER_IFACE: {
            "Address": Variant("s", a.address),
            "AddressType": Variant("s", "public"),
            "Name": Variant("s", f"daon-{a.name}"),
            "Alias": Variant("s", a.alias or f"daon-{a.name}"),
            "Class": Variant("u", 0x7C0104),
            "Powered": Variant("b", a.powered),
            "PowerState": Variant("s", "on" if a.powered else "off"),
            "Discoverable": Variant("b", a.discoverable),
            "DiscoverableTimeout": Variant("u", 180),
            "Pairable": Variant("b", a.pairable),
            "PairableTimeout": Variant("u", 0),
            "Discovering": Variant("b", a.discovering),
            "UUIDs": Variant(
                "as",
                [
                    "00001800-0000-1000-8000-00805f9b34fb",
                    "00001801-0000-1000-8000-00805f9b34fb",
                    "0000180a-0000-1000-8000-00805f9b34fb",
                ],
            ),
            "Modalias": Variant("s", "usb:v1D6Bp0246d0548"),
            "Roles": Variant("as", ["central", "peripheral"]),
        },
        MONITOR_MANAGER_IFACE: {
            "SupportedMonitorTypes": Variant("as", ["or_patterns"]),
            "SupportedFeatures": Variant("as", []),
        },
    }


def device_properties(d: DeviceState) -> dict[str, Props]:
    props: Props = {
        "Address": Variant("s", d.address),
        "AddressType": Variant("s", d.peripheral.address_type),
        "Alias": Variant("s", d.alias or d.name or d.address.replace(":", "-")),
        "Paired": Variant("b", d.paired),
        "Bonded": Variant("b", d.bonded),
        "Trusted": Variant("b", d.trusted),
        "Blocked": Variant("b", d.blocked),
        "LegacyPairing": Variant("b", False),
        "CablePairing": Variant("b", False),
        "Connected": Variant("b", d.connected),
        "UUIDs": Variant("as", sorted(d.uuids)),
        "Adapter": Variant("o", d.adapter.path),
        "ServicesResolved": Variant("b", d.services_resolved),
    }
    name = d.name
    if name:
        props["Name"] = Variant("s", name)
    adv = d.adv
    appearance = adv.appearance if adv is not None else d.peripheral.appearance
    if appearance is not None:
        props["Appearance"] = Variant("q", appearance)
    if d.rssi is not None:
        props["RSSI"] = Variant("n", d.rssi)
    if d.tx_power is not None:
        props["TxPower"] = Variant("n", d.tx_power)
    if adv is not None:
        if adv.manufacturer_data:
            props["ManufacturerData"] = Variant(
                "a{qv}", {k: Variant("ay", v) for k, v in adv.manufacturer_data.items()}
            )
        if adv.service_data:
            props["ServiceData"] = Variant(
                "a{sv}", {k: Variant("ay", v) for k, v in adv.service_data.items()}
            )
        props["AdvertisingFlags"] = Variant("ay", bytes([adv.flags]))
    return {DEVICE_IFACE: props}


def service_properties(s: ServiceState) -> dict[str, Props]:
    return {
        SERVICE_IFACE: {
            "UUID": Variant("s", s.slot.service.uuid),
            "Device": Variant("o", s.device.path),
            "Primary": Variant("b", s.slot.service.primary),
            "Includes": Variant("ao", []),
            "Handle": Variant("q", s.slot.handle),
        }
    }


def char_properties(c: CharState) -> dict[str, Props]:
    flags = c.flags
    props: Props = {
        "UUID": Variant("s", c.slot.uuid),
        "Service": Variant("o", c.slot.service_path),
        "Handle": Variant("q", c.slot.handle),
        "Flags": Variant("as", list(flags)),
        "MTU": Variant("q", c.device.peripheral.mtu),
    }
    if c.value is not None:
        props["Value"] = Variant("ay", c.value)
    if "notify" in flags or "indicate" in flags:
        props["Notifying"] = Variant("b", c.subscribed and c.device.connected)
    if "notify" in flags:
        props["NotifyAcquired"] = Variant("b", c.acquired_fd is not None)
    if "write-without-response" in flags:
        props["WriteAcquired"] = Variant("b", False)
    return {CHAR_IFACE: props}


def desc_properties(d: DescState) -> dict[str, Props]:
    props: Props = {
        "UUID": Variant("s", d.slot.descriptor.uuid),
        "Characteristic": Variant("o", d.char.path),
        "Handle": Variant("q", d.slot.handle),
    }
    if d.value is not None:
        props["Value"] = Variant("ay", d.value)
    return {DESC_IFACE: props}


def interfaces_of(obj: BusObject) -> dict[str, Props]:
    """Every interface of ``obj`` with its present properties (GetManagedObjects shape)."""
    if isinstance(obj, RootState):
        own: dict[str, Props] = {AGENT_MANAGER_IFACE: {}}
    elif isinstance(obj, AdapterState):
        own = adapter_properties(obj)
    elif isinstance(obj, DeviceState):
        own = device_properties(obj)
    elif isinstance(obj, ServiceState):
        own = service_properties(obj)
    elif isinstance(obj, CharState):
        own = char_properties(obj)
    else:
        own = desc_properties(obj)
    return {**STANDARD_IFACES, **own}


def ad_structures(adv: Advertisement) -> list[tuple[int, bytes]]:
    """The advertising data as AD structures (type, data), for ``or_patterns`` matching."""
    ads: list[tuple[int, bytes]] = [(0x01, bytes([adv.flags]))]
    uuid16 = [u for u in (_uuid16_or_none(x) for x in adv.service_uuids) if u is not None]
    uuid128s = [x for x in adv.service_uuids if _uuid16_or_none(x) is None]
    if uuid16:
        ads.append((0x03, b"".join(u.to_bytes(2, "little") for u in uuid16)))
    if uuid128s:
        ads.append((0x07, b"".join(bytes.fromhex(u.replace("-", ""))[::-1] for u in uuid128s)))
    if adv.name:
        ads.append((0x09, adv.name.encode()))
    if adv.tx_power is not None:
        ads.append((0x0A, (adv.tx_power & 0xFF).to_bytes(1, "little")))
    if adv.appearance is not None:
        ads.append((0x19, adv.appearance.to_bytes(2, "little")))
    for uuid, data in adv.service_data.items():
        short = _uuid16_or_none(uuid)
        if short is not None:
            ads.append((0x16, short.to_bytes(2, "little") + data))
        else:
            ads.append((0x21, bytes.fromhex(uuid.replace("-", ""))[::-1] + data))
    for company, data in adv.manufacturer_data.items():
        ads.append((0xFF, company.to_bytes(2, "little") + data))
    return ads


def patterns_match(patterns: tuple[OrPattern, ...], adv: Advertisement) -> bool:
    ads = ad_structures(adv)
    for pat in patterns:
        for ad_type, data in ads:
            if ad_type == pat.ad_type and data[pat.start : pat.start + len(pat.content)] == (
                pat.content
            ):
                return True
    return False


def unpack_body(body: list[Any]) -> tuple[Any, ...]:
    """Method-call arguments without Variant wrappers, for the call log."""
    return tuple(unpack_variants(list(body)))
