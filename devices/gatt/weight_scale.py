"""Weight Scale Service 0x181D (WSS 1.0), ble-profiles.md §5.1.

Weight Measurement 0x2A9D (indicate)::

    offset  size  field                 present when
    0       1     flags                 always
    1       2     weight (uint16)       always   0.005 kg or 0.01 lb; 0xFFFF = measurement
                                                 unsuccessful (then only time stamp and
                                                 user ID may follow)
    3       7     time stamp            flags bit 1
    -       1     user ID (uint8)       flags bit 2 (UDS user index, 255 = unknown)
    -       2     BMI (uint16)          flags bit 3   0.1 kg/m²
    -       2     height (uint16)       flags bit 3   0.001 m or 0.1 in

    flags: bit 0 unit (0 SI kg/m, 1 imperial lb/in), bits 4-7 reserved. Length 3..15.
    Example: 70.00 kg = raw 14000 = bytes B0 36.

The resolution is fixed by the spec (0.005 kg, 0.01 lb) whatever the Weight Scale Feature
says: SpeziBluetooth scales by the feature resolution, which disagrees with GSS, openScale
and obniz.

Weight Scale Feature 0x2A9E (uint32)::

    bit 0 time stamp supported, bit 1 multiple users, bit 2 BMI,
    bits 3-6 weight resolution code (display precision only), bits 7-9 height resolution code

Vectors: tests/devices/test_devices_weight.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from struct import pack

from devices.errors import DecodeError, EncodeError
from devices.gatt._common import check_uint, fail, require_length
from devices.ieee11073 import DateTime, decode_date_time, encode_date_time
from devices.uuids import WEIGHT_MEASUREMENT, WEIGHT_SCALE_FEATURE

FLAG_IMPERIAL = 0x01
FLAG_TIME_STAMP = 0x02
FLAG_USER_ID = 0x04
FLAG_BMI_HEIGHT = 0x08

UNSUCCESSFUL = 0xFFFF

KG_RESOLUTION = Decimal("0.005")
LB_RESOLUTION = Decimal("0.01")
BMI_RESOLUTION = Decimal("0.1")
M_RESOLUTION = Decimal("0.001")
IN_RESOLUTION = Decimal("0.1")


class MassUnit(StrEnum):
    """Flags bit 0: SI (kg, m) or imperial (lb, in); the value is cli-decode.md's ``unit``."""

    KG = "kg"
    LB = "lb"

    @property
    def mass_resolution(self) -> Decimal:
        """The fixed resolution of mass fields in this unit system."""
        return KG_RESOLUTION if self is MassUnit.KG else LB_RESOLUTION

    @property
    def length_resolution(self) -> Decimal:
        """The fixed resolution of the height field in this unit system."""
        return M_RESOLUTION if self is MassUnit.KG else IN_RESOLUTION

    @property
    def length_unit(self) -> str:
        """``m`` or ``in``."""
        return "m" if self is MassUnit.KG else "in"


def scaled(raw: int, resolution: Decimal) -> Decimal:
    """``raw × resolution`` exactly (14000 × 0.005 = 70.000)."""
    return raw * resolution


def unscaled(value: Decimal, resolution: Decimal, bits: int, what: str) -> int:
    """The raw integer writing ``value`` at ``resolution``; never rounds."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise EncodeError(f"{what}: {value!r} is not a finite Decimal")
    raw = value / resolution
    if raw != raw.to_integral_value():
        raise EncodeError(f"{what}: {value} is not a multiple of the resolution {resolution}")
    return check_uint(int(raw), bits, what)


@dataclass(frozen=True, slots=True)
class WeightMeasurement:
    """0x2A9D. ``weight`` is None when the scale reported 'measurement unsuccessful'."""

    weight: Decimal | None
    unit: MassUnit = MassUnit.KG
    timestamp: DateTime | None = None
    user_id: int | None = None
    bmi: Decimal | None = None
    height: Decimal | None = None

    @property
    def unsuccessful(self) -> bool:
        """True when the weight field was 0xFFFF."""
        return self.weight is None


@dataclass(frozen=True, slots=True)
class WeightScaleFeature:
    """0x2A9E: capabilities and display resolutions."""

    raw: int

    @property
    def time_stamp_supported(self) -> bool:
        """Bit 0."""
        return bool(self.raw & 0x01)

    @property
    def multiple_users_supported(self) -> bool:
        """Bit 1."""
        return bool(self.raw & 0x02)

    @property
    def bmi_supported(self) -> bool:
        """Bit 2."""
        return bool(self.raw & 0x04)

    @property
    def weight_resolution_code(self) -> int:
        """Bits 3-6 (0 unspecified, 1 0.5 kg/1 lb ... 7 0.005 kg/0.01 lb)."""
        return self.raw >> 3 & 0x0F

    @property
    def height_resolution_code(self) -> int:
        """Bits 7-9 (0 unspecified, 1 0.01 m/1 in, 2 0.005 m/0.5 in, 3 0.001 m/0.1 in)."""
        return self.raw >> 7 & 0x07


def decode_measurement(data: bytes) -> WeightMeasurement:
    """Decode 0x2A9D; raises :class:`DecodeError`."""
    uuid = WEIGHT_MEASUREMENT
    require_length(uuid, data, 3, "flags and weight")
    flags = data[0]
    needed = (
        3
        + (7 if flags & FLAG_TIME_STAMP else 0)
        + (1 if flags & FLAG_USER_ID else 0)
        + (4 if flags & FLAG_BMI_HEIGHT else 0)
    )
    if len(data) < needed:
        raise fail(uuid, data, f"flags {flags:#04x} announce {needed} bytes, got {len(data)}")
    unit = MassUnit.LB if flags & FLAG_IMPERIAL else MassUnit.KG
    raw_weight = data[1] | data[2] << 8
    if raw_weight == UNSUCCESSFUL and flags & FLAG_BMI_HEIGHT:
        raise fail(
            uuid,
            data,
            "an unsuccessful measurement (weight 0xFFFF) may carry only time stamp and user ID, "
            "but flags bit 3 announces BMI and height",
        )
    offset = 3
    timestamp = None
    if flags & FLAG_TIME_STAMP:
        try:
            timestamp = decode_date_time(data, 3)
        except DecodeError as exc:
            raise exc.for_characteristic(uuid, data) from None
        offset = 10
    user = None
    if flags & FLAG_USER_ID:
        user = data[offset]
        offset += 1
    bmi = height = None
    if flags & FLAG_BMI_HEIGHT:
        bmi = scaled(data[offset] | data[offset + 1] << 8, BMI_RESOLUTION)
        height = scaled(data[offset + 2] | data[offset + 3] << 8, unit.length_resolution)
    weight = None if raw_weight == UNSUCCESSFUL else scaled(raw_weight, unit.mass_resolution)
    return WeightMeasurement(weight, unit, timestamp, user, bmi, height)


def encode_measurement(value: WeightMeasurement) -> bytes:
    """The 0x2A9D payload a scale would indicate for ``value``."""
    unit = value.unit
    flags = FLAG_IMPERIAL if unit is MassUnit.LB else 0
    if value.weight is None:
        raw_weight = UNSUCCESSFUL
    else:
        raw_weight = unscaled(value.weight, unit.mass_resolution, 16, "weight")
        if raw_weight == UNSUCCESSFUL:
            raise EncodeError("weight: raw 0xFFFF means 'unsuccessful'; the value is too large")
    body = bytearray(pack("<H", raw_weight))
    if value.timestamp is not None:
        flags |= FLAG_TIME_STAMP
        body += encode_date_time(value.timestamp)
    if value.user_id is not None:
        flags |= FLAG_USER_ID
        body.append(check_uint(value.user_id, 8, "user ID"))
    if (value.bmi is None) != (value.height is None):
        raise EncodeError("BMI and height share flags bit 3: give both or neither")
    if value.bmi is not None and value.height is not None:
        if value.weight is None:
            raise EncodeError("an unsuccessful measurement cannot carry BMI and height")
        flags |= FLAG_BMI_HEIGHT
        body += pack("<H", unscaled(value.bmi, BMI_RESOLUTION, 16, "BMI"))
        body += pack("<H", unscaled(value.height, unit.length_resolution, 16, "height"))
    return bytes([flags]) + bytes(body)


def decode_feature(data: bytes) -> WeightScaleFeature:
    """Decode 0x2A9E (uint32)."""
    require_length(WEIGHT_SCALE_FEATURE, data, 4, "the uint32 feature field")
    return WeightScaleFeature(int.from_bytes(data[:4], "little"))


def encode_feature(value: WeightScaleFeature) -> bytes:
    """The 0x2A9E payload."""
    return pack("<I", check_uint(value.raw, 32, "weight scale feature"))
