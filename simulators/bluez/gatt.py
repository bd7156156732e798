"""The GATT database a simulated peripheral declares, and how bluetoothd lays it out on D-Bus.

A peripheral describes its services as plain frozen values (:class:`GattService`,
:class:`GattCharacteristic`, :class:`GattDescriptor`). :func:`layout` assigns attribute handles
the way a GATT server allocates them (service declaration, then per characteristic its
declaration, value and descriptors) and names the D-Bus objects as bluetoothd does:
``serviceXXXX/charXXXX/descXXXX`` with four lower-case hex digits, the characteristic segment
carrying the *declaration* handle. bleak parses handles out of these paths, so the format is
part of the API.

Handles 0x0001-0x0007 are a Generic Access service, which bluetoothd claims for itself and does
not export; Generic Attribute (0x1801, with Service Changed) follows and is exported, as on a
real device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

BASE_UUID_SUFFIX: Final = "-0000-1000-8000-00805f9b34fb"

#: Characteristic flags in the order bluetoothd lists them in ``GattCharacteristic1.Flags``.
FLAG_ORDER: Final = (
    "broadcast",
    "read",
    "write-without-response",
    "write",
    "notify",
    "indicate",
    "authenticated-signed-writes",
    "extended-properties",
    "reliable-write",
    "writable-auxiliaries",
)

CCCD_UUID: Final = "00002902" + BASE_UUID_SUFFIX
GAP_SERVICE_UUID: Final = "00001800" + BASE_UUID_SUFFIX
GATT_SERVICE_UUID: Final = "00001801" + BASE_UUID_SUFFIX
SERVICE_CHANGED_UUID: Final = "00002a05" + BASE_UUID_SUFFIX


def uuid128(value: int | str) -> str:
    """The lower-case 128-bit UUID string for a 16-bit SIG number or any UUID spelling.

    bleak compares UUID strings literally, so everything the simulator exports goes through
    here: ``0x1810``, ``"1810"`` and ``"00001810-0000-1000-8000-00805F9B34FB"`` all give
    ``"00001810-0000-1000-8000-00805f9b34fb"``.
    """
    if isinstance(value, int):
        if not 0 <= value <= 0xFFFFFFFF:
            raise ValueError(f"UUID number out of range: {value:#x}")
        return f"{value:08x}{BASE_UUID_SUFFIX}"
    text = value.strip().lower()
    if text.startswith("0x"):
        text = text[2:]
    if len(text) in (4, 8) and all(c in "0123456789abcdef" for c in text):
        return f"{int(text, 16):08x}{BASE_UUID_SUFFIX}"
    if len(text) == 36 and text.count("-") == 4:
        return text
    raise ValueError(f"not a UUID: {value!r}")


@dataclass(frozen=True, slots=True)
class GattDescriptor:
    """A descriptor other than the CCCD (which :func:`layout` adds for notify/indicate)."""

    uuid: str
    value: bytes = b""
    flags: tuple[str, ...] = ("read",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "uuid", uuid128(self.uuid))


@dataclass(frozen=True, slots=True)
class GattCharacteristic:
    """A characteristic as the peripheral declares it.

    ``flags`` are bluetoothd flag names (``read``, ``write``, ``notify`` ...). ``value`` is
    served to reads when the peripheral's ``on_read`` hook does not take over. ``secure``
    means the attribute needs an encrypted (bonded) link: a client on a plain link gets
    Insufficient Authentication, which bluetoothd answers by pairing on the spot.
    """

    uuid: str
    flags: tuple[str, ...]
    value: bytes = b""
    secure: bool = False
    descriptors: tuple[GattDescriptor, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "uuid", uuid128(self.uuid))
        unknown = set(self.flags) - set(FLAG_ORDER)
        if unknown:
            raise ValueError(f"unknown characteristic flags: {sorted(unknown)}")
        ordered = tuple(f for f in FLAG_ORDER if f in self.flags)
        object.__setattr__(self, "flags", ordered)

    @property
    def notifies(self) -> bool:
        return "notify" in self.flags or "indicate" in self.flags


@dataclass(frozen=True, slots=True)
class GattService:
    uuid: str
    characteristics: tuple[GattCharacteristic, ...]
    primary: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "uuid", uuid128(self.uuid))


@dataclass(frozen=True, slots=True)
class DescriptorSlot:
    """A descriptor placed at a handle."""

    handle: int
    path: str
    descriptor: GattDescriptor


@dataclass(frozen=True, slots=True)
class CharacteristicSlot:
    """A characteristic placed at its declaration handle (``handle``) and value handle."""

    handle: int
    value_handle: int
    path: str
    service_path: str
    characteristic: GattCharacteristic
    descriptors: tuple[DescriptorSlot, ...]

    @property
    def uuid(self) -> str:
        return self.characteristic.uuid


@dataclass(frozen=True, slots=True)
class ServiceSlot:
    handle: int
    end_handle: int
    path: str
    service: GattService
    characteristics: tuple[CharacteristicSlot, ...] = field(default=())


GENERIC_ATTRIBUTE = GattService(
    GATT_SERVICE_UUID,
    (GattCharacteristic(SERVICE_CHANGED_UUID, ("indicate",)),),
)

_FIRST_EXPORTED_HANDLE: Final = 0x0008  # after the claimed Generic Access service (0x0001-0x0007)


def layout(device_path: str, services: Sequence[GattService]) -> tuple[ServiceSlot, ...]:
    """Assign handles and D-Bus paths to ``services`` (Generic Attribute is prepended)."""
    slots: list[ServiceSlot] = []
    handle = _FIRST_EXPORTED_HANDLE
    for service in (GENERIC_ATTRIBUTE, *services):
        service_handle = handle
        service_path = f"{device_path}/service{service_handle:04x}"
        handle += 1
        chars: list[CharacteristicSlot] = []
        for char in service.characteristics:
            decl = handle
            value_handle = decl + 1
            handle = value_handle + 1
            char_path = f"{service_path}/char{decl:04x}"
            descs: list[DescriptorSlot] = []
            extra = list(char.descriptors)
            if char.notifies and all(d.uuid != CCCD_UUID for d in extra):
                extra.insert(0, GattDescriptor(CCCD_UUID, b"\x00\x00", ("read", "write")))
            for desc in extra:
                descs.append(DescriptorSlot(handle, f"{char_path}/desc{handle:04x}", desc))
                handle += 1
            chars.append(
                CharacteristicSlot(decl, value_handle, char_path, service_path, char, tuple(descs))
            )
        if handle > 0xFFFF:
            raise ValueError("GATT database does not fit in 16-bit handles")
        slots.append(ServiceSlot(service_handle, handle - 1, service_path, service, tuple(chars)))
    return tuple(slots)
