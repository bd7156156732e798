"""Blood Pressure Service 1.1 additions (ble-profiles.md §3.4; GSS
``org.bluetooth.characteristic.enhanced_blood_pressure_measurement``, ``…blood_pressure_record``).

Enhanced Blood Pressure Measurement 0x2B34 (indicate) and Enhanced Intermediate Cuff Pressure
0x2B35 (notify)::

    offset  size  field                                         present when
    0       1     flags                                         always
    1       6     compound value: systolic, diastolic, MAP      always (SFLOAT each; 0x2B35:
                                                                cuff pressure, then 2 unused)
    -       4     time stamp (uint32, UTC seconds since epoch)  flags bit 1
    -       2     pulse rate (SFLOAT, beats/min)                flags bit 2
    -       1     user ID (uint8, 255 = unknown user)           flags bit 3
    -       2     measurement status (uint16, as 0x2A35)        flags bit 4
    -       4     user facing time (uint32, seconds since the   flags bit 5
                  epoch as the monitor shows it, local)

    flags: bit 0 unit (0 mmHg, 1 kPa), bit 6 epoch start (0: 1900-01-01, 1: 2000-01-01),
    bit 7 reserved. The value is exactly as long as its flags announce: a missing or an extra
    byte is an error (unlike 0x2A35, whose trailing bytes some monitors pad).

Blood Pressure Record 0x2B36 (indicate; stored records, requested with RACP)::

    0       1     segmentation header: bit 0 first segment, bit 1 last segment,
                  bits 2-7 rolling segment counter (0-63, wraps)
    1       2     sequence number (uint16, per user)
    3       2     UUID of the recorded characteristic (uint16: 0x2B34 or 0x2A35)
    5       n     the recorded characteristic's value (this segment's part)
    -       2     E2E-CRC (CRC-16/MCRF4XX of everything before it) when the monitor's Blood
                  Pressure Feature sets bit 6 (e2e_crc); the caller says so

A record whose value does not fit one indication comes in several segments; ``merge_segments``
joins them (same sequence number and UUID, first to last, consecutive counters).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from struct import unpack_from

from devices.errors import DecodeError
from devices.gatt._common import fail
from devices.gatt.blood_pressure import (
    BloodPressureMeasurement,
    PressureUnit,
    decode_measurement,
    status_names,
)
from devices.gatt.cgm import crc16_mcrf4xx
from devices.ieee11073 import sfloat_from_raw
from devices.model import Special
from devices.uuids import (
    BLOOD_PRESSURE_MEASUREMENT,
    BLOOD_PRESSURE_RECORD,
    ENHANCED_BLOOD_PRESSURE_MEASUREMENT,
    ENHANCED_INTERMEDIATE_CUFF_PRESSURE,
    uuid16_to_128,
)

FLAG_KPA = 0x01
FLAG_TIME_STAMP = 0x02
FLAG_PULSE_RATE = 0x04
FLAG_USER_ID = 0x08
FLAG_STATUS = 0x10
FLAG_USER_FACING_TIME = 0x20
FLAG_EPOCH_2000 = 0x40

EPOCH_1900 = datetime(1900, 1, 1)
EPOCH_2000 = datetime(2000, 1, 1)

SEGMENT_FIRST = 0x01
SEGMENT_LAST = 0x02


@dataclass(frozen=True, slots=True)
class EnhancedBloodPressureMeasurement:
    """0x2B34 (and, with ``systolic`` the cuff pressure, 0x2B35).

    Times are seconds since the epoch start as sent; :attr:`utc_time` and
    :attr:`user_facing_time` turn them into datetimes.
    """

    systolic: Decimal | Special
    diastolic: Decimal | Special
    mean_arterial_pressure: Decimal | Special
    unit: PressureUnit = PressureUnit.MMHG
    epoch_2000: bool = False
    time_stamp_s: int | None = None
    pulse_rate: Decimal | Special | None = None
    user_id: int | None = None
    status_raw: int | None = None
    user_facing_time_s: int | None = None

    @property
    def epoch(self) -> datetime:
        return EPOCH_2000 if self.epoch_2000 else EPOCH_1900

    @property
    def utc_time(self) -> datetime | None:
        """The time stamp as an aware UTC datetime, None when absent."""
        if self.time_stamp_s is None:
            return None
        return (self.epoch + timedelta(seconds=self.time_stamp_s)).replace(tzinfo=UTC)

    @property
    def user_facing_time(self) -> datetime | None:
        """The time the monitor showed (its local wall clock, naive), None when absent."""
        if self.user_facing_time_s is None:
            return None
        return self.epoch + timedelta(seconds=self.user_facing_time_s)

    @property
    def status(self) -> tuple[str, ...] | None:
        """Status names (the 0x2A35 vocabulary), or None when no status field was sent."""
        return None if self.status_raw is None else status_names(self.status_raw)


def _length(flags: int) -> int:
    return (
        7
        + (4 if flags & FLAG_TIME_STAMP else 0)
        + (2 if flags & FLAG_PULSE_RATE else 0)
        + (1 if flags & FLAG_USER_ID else 0)
        + (2 if flags & FLAG_STATUS else 0)
        + (4 if flags & FLAG_USER_FACING_TIME else 0)
    )


def _decode_enhanced(uuid: str, data: bytes) -> EnhancedBloodPressureMeasurement:
    if len(data) < 7:
        raise fail(uuid, data, f"needs at least 7 bytes (flags and three SFLOATs), got {len(data)}")
    flags = data[0]
    needed = _length(flags)
    if len(data) != needed:
        raise fail(
            uuid, data, f"flags {flags:#04x} announce exactly {needed} bytes, got {len(data)}"
        )
    raw1, raw2, raw3 = unpack_from("<HHH", data, 1)
    offset = 7
    time_stamp = pulse = user = status = user_facing = None
    if flags & FLAG_TIME_STAMP:
        (time_stamp,) = unpack_from("<I", data, offset)
        offset += 4
    if flags & FLAG_PULSE_RATE:
        pulse = sfloat_from_raw(data[offset] | data[offset + 1] << 8)
        offset += 2
    if flags & FLAG_USER_ID:
        user = data[offset]
        offset += 1
    if flags & FLAG_STATUS:
        status = data[offset] | data[offset + 1] << 8
        offset += 2
    if flags & FLAG_USER_FACING_TIME:
        (user_facing,) = unpack_from("<I", data, offset)
    return EnhancedBloodPressureMeasurement(
        sfloat_from_raw(raw1),
        sfloat_from_raw(raw2),
        sfloat_from_raw(raw3),
        PressureUnit.KPA if flags & FLAG_KPA else PressureUnit.MMHG,
        bool(flags & FLAG_EPOCH_2000),
        time_stamp,
        pulse,
        user,
        status,
        user_facing,
    )


def decode_enhanced_measurement(data: bytes) -> EnhancedBloodPressureMeasurement:
    """Decode 0x2B34; raises :class:`DecodeError`."""
    return _decode_enhanced(ENHANCED_BLOOD_PRESSURE_MEASUREMENT, data)


def decode_enhanced_cuff_pressure(data: bytes) -> EnhancedBloodPressureMeasurement:
    """Decode 0x2B35: ``systolic`` holds the live cuff pressure; the two other sub-fields are
    unused. Display only, never a result."""
    return _decode_enhanced(ENHANCED_INTERMEDIATE_CUFF_PRESSURE, data)


@dataclass(frozen=True, slots=True)
class BloodPressureRecord:
    """0x2B36: one segment of a stored record."""

    first_segment: bool
    last_segment: bool
    segment_counter: int
    sequence_number: int
    recorded_uuid: str  # 128-bit lowercase
    recorded: bytes  # this segment's part of the recorded value
    crc_present: bool = False

    @property
    def whole(self) -> bool:
        """A record in one segment (first and last)."""
        return self.first_segment and self.last_segment


def decode_record(data: bytes, *, e2e_crc: bool = False) -> BloodPressureRecord:
    """Decode one 0x2B36 segment; ``e2e_crc``: the monitor's Blood Pressure Feature announces
    E2E-CRC, so the last two bytes are a CRC and must match. Raises :class:`DecodeError`."""
    uuid = BLOOD_PRESSURE_RECORD
    minimum = 5 + (2 if e2e_crc else 0)
    if len(data) <= minimum:
        raise fail(
            uuid,
            data,
            f"needs the header, sequence number, UUID{' and E2E-CRC' if e2e_crc else ''} "
            f"({minimum} bytes) and at least one byte of the recorded value, got {len(data)}",
        )
    body = data
    if e2e_crc:
        body = data[:-2]
        sent = data[-2] | data[-1] << 8
        computed = crc16_mcrf4xx(body)
        if sent != computed:
            raise fail(uuid, data, f"E2E-CRC mismatch (sent {sent:#06x}, computed {computed:#06x})")
    header = body[0]
    sequence, recorded = unpack_from("<HH", body, 1)
    return BloodPressureRecord(
        bool(header & SEGMENT_FIRST),
        bool(header & SEGMENT_LAST),
        header >> 2,
        sequence,
        uuid16_to_128(recorded),
        bytes(body[5:]),
        e2e_crc,
    )


def merge_segments(segments: Sequence[BloodPressureRecord]) -> BloodPressureRecord:
    """The segments of one record joined into one whole record; raises :class:`DecodeError`
    when they are not one record's first-to-last run with consecutive counters."""
    uuid = BLOOD_PRESSURE_RECORD
    if not segments:
        raise DecodeError(uuid, "", "no Blood Pressure Record segments")
    first = segments[0]
    if not first.first_segment:
        raise DecodeError(uuid, first.recorded.hex(), "the first segment is not marked first")
    for i, (before, after) in enumerate(pairwise(segments), start=1):
        if before.last_segment:
            raise DecodeError(uuid, after.recorded.hex(), f"segment {i} follows the last one")
        if after.first_segment:
            raise DecodeError(uuid, after.recorded.hex(), f"segment {i} is marked first")
        if (after.sequence_number, after.recorded_uuid) != (
            first.sequence_number,
            first.recorded_uuid,
        ):
            raise DecodeError(uuid, after.recorded.hex(), f"segment {i} is of another record")
        if after.segment_counter != (before.segment_counter + 1) % 64:
            raise DecodeError(
                uuid,
                after.recorded.hex(),
                f"segment {i} has counter {after.segment_counter}, expected "
                f"{(before.segment_counter + 1) % 64} (a segment is missing)",
            )
    if not segments[-1].last_segment:
        raise DecodeError(uuid, segments[-1].recorded.hex(), "the last segment is missing")
    return BloodPressureRecord(
        True,
        True,
        first.segment_counter,
        first.sequence_number,
        first.recorded_uuid,
        b"".join(s.recorded for s in segments),
        first.crc_present,
    )


def recorded_measurement(
    record: BloodPressureRecord,
) -> EnhancedBloodPressureMeasurement | BloodPressureMeasurement:
    """The whole record's recorded value decoded by its own characteristic's decoder (0x2B34 or
    0x2A35); raises :class:`DecodeError` for a partial record or another characteristic."""
    if not record.whole:
        raise DecodeError(
            BLOOD_PRESSURE_RECORD, record.recorded.hex(), "a partial record (merge its segments)"
        )
    if record.recorded_uuid == ENHANCED_BLOOD_PRESSURE_MEASUREMENT:
        return decode_enhanced_measurement(record.recorded)
    if record.recorded_uuid == BLOOD_PRESSURE_MEASUREMENT:
        return decode_measurement(record.recorded)
    raise DecodeError(
        BLOOD_PRESSURE_RECORD,
        record.recorded.hex(),
        f"records a characteristic {record.recorded_uuid} that is not a blood pressure measurement",
    )
