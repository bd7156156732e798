"""Body Composition Service 0x181B (BCS 1.0), ble-profiles.md §5.2.

Body Composition Measurement 0x2A9C (indicate)::

    field                    size  flags bit  resolution
    flags (uint16)           2     always     bit 0 unit (0 SI, 1 imperial)
    body fat percentage      2     always     0.1 %; 0xFFFF = measurement unsuccessful
                                              (then only time stamp and user ID may follow)
    time stamp               7     1
    user ID                  1     2          255 = unknown
    basal metabolism         2     3          1 kJ
    muscle percentage        2     4          0.1 %
    muscle mass              2     5          0.005 kg / 0.01 lb
    fat free mass            2     6          0.005 kg / 0.01 lb
    soft lean mass           2     7          0.005 kg / 0.01 lb
    body water mass          2     8          0.005 kg / 0.01 lb
    impedance                2     9          0.1 ohm (SIG-XML; reported in ohm)
    weight                   2     10         0.005 kg / 0.01 lb
    height                   2     11         0.001 m / 0.1 in
    (bit 12) multiple packet measurement; bits 13-15 reserved

A full record does not fit the default 20-byte ATT payload, so servers either raise the MTU or
split it over consecutive indications with bit 12 set; every packet repeats flags and body fat
and carries a subset of the optional fields (im97mori-github/AndroidBLEUtil merges 1-2
packets). :func:`merge_packets` joins them (conflicting repeats are an error) and
:func:`split_measurement` is the simulator's side.

Body Composition Feature 0x2A9B (uint32): bits 0-10 field support (FEATURE_BITS), 11-14 mass
resolution code, 15-17 height resolution code.

Vectors: tests/devices/test_devices_body_composition.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from decimal import Decimal
from struct import pack

from devices.errors import DecodeError, EncodeError
from devices.gatt._common import bit_names, check_uint, fail, require_length
from devices.gatt.weight_scale import MassUnit, scaled, unscaled
from devices.ieee11073 import DateTime, decode_date_time, encode_date_time
from devices.uuids import BODY_COMPOSITION_FEATURE, BODY_COMPOSITION_MEASUREMENT

FLAG_IMPERIAL = 0x0001
FLAG_MULTIPLE_PACKET = 0x1000
UNSUCCESSFUL = 0xFFFF
PERCENT_RESOLUTION = Decimal("0.1")
IMPEDANCE_RESOLUTION = Decimal("0.1")
DEFAULT_MAX_PAYLOAD = 20  # ATT_MTU 23 - 3

FEATURE_BITS: tuple[str, ...] = (
    "time_stamp",
    "multiple_users",
    "basal_metabolism",
    "muscle_percentage",
    "muscle_mass",
    "fat_free_mass",
    "soft_lean_mass",
    "body_water_mass",
    "impedance",
    "weight",
    "height",
)

# (dataclass field, flags bit, kind) for the uint16 fields after time stamp and user ID.
# kind: "kj" integer kJ, "pct" 0.1 %, "mass" unit mass resolution, "ohm" 0.1 ohm, "length".
_UINT16_FIELDS: tuple[tuple[str, int, str], ...] = (
    ("basal_metabolism_kj", 0x0008, "kj"),
    ("muscle_pct", 0x0010, "pct"),
    ("muscle_mass", 0x0020, "mass"),
    ("fat_free_mass", 0x0040, "mass"),
    ("soft_lean_mass", 0x0080, "mass"),
    ("body_water_mass", 0x0100, "mass"),
    ("impedance_ohm", 0x0200, "ohm"),
    ("weight", 0x0400, "mass"),
    ("height", 0x0800, "length"),
)


@dataclass(frozen=True, slots=True)
class BodyCompositionMeasurement:
    """0x2A9C (one packet, or several merged). ``body_fat_pct`` None = unsuccessful."""

    body_fat_pct: Decimal | None
    unit: MassUnit = MassUnit.KG
    timestamp: DateTime | None = None
    user_id: int | None = None
    basal_metabolism_kj: Decimal | None = None
    muscle_pct: Decimal | None = None
    muscle_mass: Decimal | None = None
    fat_free_mass: Decimal | None = None
    soft_lean_mass: Decimal | None = None
    body_water_mass: Decimal | None = None
    impedance_ohm: Decimal | None = None
    weight: Decimal | None = None
    height: Decimal | None = None
    multiple_packet: bool = False

    @property
    def unsuccessful(self) -> bool:
        """True when body fat was 0xFFFF."""
        return self.body_fat_pct is None


@dataclass(frozen=True, slots=True)
class BodyCompositionFeature:
    """0x2A9B."""

    raw: int

    @property
    def features(self) -> tuple[str, ...]:
        """Supported fields in bit order."""
        return bit_names(self.raw, FEATURE_BITS)

    @property
    def mass_resolution_code(self) -> int:
        """Bits 11-14."""
        return self.raw >> 11 & 0x0F

    @property
    def height_resolution_code(self) -> int:
        """Bits 15-17."""
        return self.raw >> 15 & 0x07


def _resolution(kind: str, unit: MassUnit) -> Decimal:
    if kind == "kj":
        return Decimal(1)
    if kind in ("pct", "ohm"):
        return PERCENT_RESOLUTION
    if kind == "mass":
        return unit.mass_resolution
    return unit.length_resolution


def decode_measurement(data: bytes) -> BodyCompositionMeasurement:
    """Decode one 0x2A9C packet; raises :class:`DecodeError`."""
    uuid = BODY_COMPOSITION_MEASUREMENT
    require_length(uuid, data, 4, "flags (uint16) and body fat percentage")
    flags = data[0] | data[1] << 8
    needed = (
        4
        + (7 if flags & 0x0002 else 0)
        + (1 if flags & 0x0004 else 0)
        + 2 * sum(1 for _, bit, _ in _UINT16_FIELDS if flags & bit)
    )
    if len(data) < needed:
        raise fail(uuid, data, f"flags {flags:#06x} announce {needed} bytes, got {len(data)}")
    raw_fat = data[2] | data[3] << 8
    if raw_fat == UNSUCCESSFUL and flags & 0x0FF8:
        raise fail(
            uuid,
            data,
            "an unsuccessful measurement (body fat 0xFFFF) may carry only time stamp and user "
            f"ID, but flags {flags:#06x} announce more",
        )
    unit = MassUnit.LB if flags & FLAG_IMPERIAL else MassUnit.KG
    offset = 4
    timestamp = None
    if flags & 0x0002:
        try:
            timestamp = decode_date_time(data, 4)
        except DecodeError as exc:
            raise exc.for_characteristic(uuid, data) from None
        offset = 11
    user = None
    if flags & 0x0004:
        user = data[offset]
        offset += 1
    values: dict[str, Decimal] = {}
    for name, bit, kind in _UINT16_FIELDS:
        if flags & bit:
            values[name] = scaled(data[offset] | data[offset + 1] << 8, _resolution(kind, unit))
            offset += 2
    fat = None if raw_fat == UNSUCCESSFUL else scaled(raw_fat, PERCENT_RESOLUTION)
    return BodyCompositionMeasurement(
        fat,
        unit,
        timestamp,
        user,
        multiple_packet=bool(flags & FLAG_MULTIPLE_PACKET),
        **values,
    )


def _encode_fields(
    value: BodyCompositionMeasurement, names: Sequence[str], *, with_header: bool, multi: bool
) -> bytes:
    unit = value.unit
    flags = FLAG_IMPERIAL if unit is MassUnit.LB else 0
    if multi:
        flags |= FLAG_MULTIPLE_PACKET
    if value.body_fat_pct is None:
        raw_fat = UNSUCCESSFUL
        if names:
            raise EncodeError("an unsuccessful measurement may carry only time stamp and user ID")
    else:
        raw_fat = unscaled(value.body_fat_pct, PERCENT_RESOLUTION, 16, "body fat")
        if raw_fat == UNSUCCESSFUL:
            raise EncodeError("body fat: raw 0xFFFF means 'unsuccessful'")
    body = bytearray(pack("<H", raw_fat))
    if with_header and value.timestamp is not None:
        flags |= 0x0002
        body += encode_date_time(value.timestamp)
    if with_header and value.user_id is not None:
        flags |= 0x0004
        body.append(check_uint(value.user_id, 8, "user ID"))
    for name, bit, kind in _UINT16_FIELDS:
        if name in names:
            field_value = getattr(value, name)
            flags |= bit
            body += pack("<H", unscaled(field_value, _resolution(kind, unit), 16, name))
    return pack("<H", flags) + bytes(body)


def _present(value: BodyCompositionMeasurement) -> list[str]:
    return [name for name, _, _ in _UINT16_FIELDS if getattr(value, name) is not None]


def encode_measurement(value: BodyCompositionMeasurement) -> bytes:
    """One 0x2A9C packet with every present field (bit 12 as ``value.multiple_packet`` says)."""
    return _encode_fields(value, _present(value), with_header=True, multi=value.multiple_packet)


def split_measurement(
    value: BodyCompositionMeasurement, max_payload: int = DEFAULT_MAX_PAYLOAD
) -> tuple[bytes, ...]:
    """The packets a scale with ``max_payload``-byte indications sends for ``value``.

    One packet (bit 12 clear) when it fits; otherwise packets with bit 12 set, the first
    carrying time stamp and user ID, each repeating flags and body fat, fields in wire order.
    """
    single = _encode_fields(value, _present(value), with_header=True, multi=False)
    if len(single) <= max_payload:
        return (single,)
    header = 4 + (7 if value.timestamp is not None else 0) + (1 if value.user_id is not None else 0)
    if header > max_payload or max_payload < 6:
        raise EncodeError(f"max_payload {max_payload} cannot hold a body composition packet")
    packets: list[bytes] = []
    remaining = _present(value)
    size = header
    current: list[str] = []
    first = True
    for name in remaining:
        if size + 2 > max_payload:
            packets.append(_encode_fields(value, current, with_header=first, multi=True))
            first, current, size = False, [], 4
        current.append(name)
        size += 2
    packets.append(_encode_fields(value, current, with_header=first, multi=True))
    return tuple(packets)


def merge_packets(packets: Sequence[BodyCompositionMeasurement]) -> BodyCompositionMeasurement:
    """Join the packets of one multi-packet record; raises :class:`DecodeError` on conflict.

    Every packet must have bit 12 set and the same unit and body fat; a field sent in two
    packets must carry the same value. The result has ``multiple_packet`` True.
    """
    uuid = BODY_COMPOSITION_MEASUREMENT
    if not packets:
        raise DecodeError(uuid, "", "no packets to merge")
    first = packets[0]
    merged = first
    for index, packet in enumerate(packets):
        if not packet.multiple_packet:
            raise DecodeError(
                uuid, "", f"packet {index} lacks flags bit 12 (multiple packet measurement)"
            )
        if packet.unit is not first.unit or packet.body_fat_pct != first.body_fat_pct:
            raise DecodeError(
                uuid, "", f"packet {index} disagrees with packet 0 on unit or body fat percentage"
            )
        if index == 0:
            continue
        updates: dict[str, object] = {}
        for field in fields(BodyCompositionMeasurement):
            new = getattr(packet, field.name)
            if field.name in ("body_fat_pct", "unit", "multiple_packet") or new is None:
                continue
            old = getattr(merged, field.name)
            if old is not None and old != new:
                raise DecodeError(
                    uuid, "", f"packet {index} repeats {field.name} with a different value"
                )
            updates[field.name] = new
        merged = replace(merged, **updates)  # type: ignore[arg-type]
    return merged


def decode_feature(data: bytes) -> BodyCompositionFeature:
    """Decode 0x2A9B (uint32)."""
    require_length(BODY_COMPOSITION_FEATURE, data, 4, "the uint32 feature field")
    return BodyCompositionFeature(int.from_bytes(data[:4], "little"))


def encode_feature(value: BodyCompositionFeature) -> bytes:
    """The 0x2A9B payload."""
    return pack("<I", check_uint(value.raw, 32, "body composition feature"))
