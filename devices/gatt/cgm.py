"""CGM Measurement 0x2AA7 (Continuous Glucose Monitoring 0x181F, optional profile).

One notification carries one or more records, back to back::

    offset  size  field                                  present when
    0       1     size (uint8, this record incl. size)   always (>= 6)
    1       1     flags                                  always
    2       2     glucose concentration (SFLOAT, mg/dL)  always
    4       2     time offset (uint16, minutes since the session start)
    -       1     status octet                           flags bit 7
    -       1     cal/temp octet                         flags bit 6
    -       1     warning octet                          flags bit 5
    -       2     trend (SFLOAT, mg/dL/min)              flags bit 0
    -       2     quality (SFLOAT, %)                    flags bit 1
    -       2     E2E-CRC (uint16)                       when ``size`` leaves room for it

    The annunciation octets appear in the order status, cal/temp, warning (Nordic's all-three
    test); implementations disagree on which flag bit (5 or 7) announces status vs warning
    (ble-profiles.md §12), so only the all-three and none cases are pinned by tests.
    The CRC is CRC-16/MCRF4XX (poly 0x1021 reflected, init 0xFFFF) over the record without
    the CRC; a mismatch is an error. A ``size`` that is neither the announced length nor the
    announced length + 2 is an error.

Vectors: Nordic's ContinuousGlucoseMeasurementDataCallbackTest and CRC16Test.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from struct import pack

from devices.errors import EncodeError
from devices.gatt._common import bit_names, check_uint, fail
from devices.ieee11073 import encode_sfloat, sfloat_from_raw
from devices.model import Special
from devices.uuids import CGM_MEASUREMENT

FLAG_TREND = 0x01
FLAG_QUALITY = 0x02
FLAG_WARNING = 0x20
FLAG_CAL_TEMP = 0x40
FLAG_STATUS = 0x80

STATUS_OCTET: tuple[str | None, ...] = (
    "session_stopped",
    "device_battery_low",
    "sensor_type_incorrect",
    "sensor_malfunction",
    "device_specific_alert",
    "general_device_fault",
)
CAL_TEMP_OCTET: tuple[str | None, ...] = (
    "time_synchronization_required",
    "calibration_not_allowed",
    "calibration_recommended",
    "calibration_required",
    "sensor_temperature_too_high",
    "sensor_temperature_too_low",
)
WARNING_OCTET: tuple[str | None, ...] = (
    "sensor_result_lower_than_patient_low_level",
    "sensor_result_higher_than_patient_high_level",
    "sensor_result_lower_than_hypo_level",
    "sensor_result_higher_than_hyper_level",
    "sensor_rate_of_decrease_exceeded",
    "sensor_rate_of_increase_exceeded",
    "sensor_result_lower_than_device_can_process",
    "sensor_result_higher_than_device_can_process",
)


def crc16_mcrf4xx(data: bytes) -> int:
    """CRC-16/MCRF4XX as CGMS 1.0.1 §3.11 specifies (``"123456789"`` → 0x6F91)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


@dataclass(frozen=True, slots=True)
class CgmRecord:
    """One record of a 0x2AA7 notification. ``crc_present`` says whether an E2E-CRC was sent."""

    glucose_mg_dl: Decimal | Special
    time_offset_min: int
    status_octet: int | None = None
    cal_temp_octet: int | None = None
    warning_octet: int | None = None
    trend_mg_dl_min: Decimal | Special | None = None
    quality_pct: Decimal | Special | None = None
    crc_present: bool = False

    @property
    def annunciation(self) -> dict[str, tuple[str, ...] | None] | None:
        """``{status, cal_temp, warning}`` name lists (None per absent octet), None if none."""
        octets = (self.status_octet, self.cal_temp_octet, self.warning_octet)
        if all(octet is None for octet in octets):
            return None
        tables = (STATUS_OCTET, CAL_TEMP_OCTET, WARNING_OCTET)
        return {
            key: None if octet is None else bit_names(octet, table)
            for key, octet, table in zip(
                ("status", "cal_temp", "warning"), octets, tables, strict=True
            )
        }


@dataclass(frozen=True, slots=True)
class CgmMeasurement:
    """0x2AA7: the records of one notification, in order."""

    records: tuple[CgmRecord, ...]


def _record_length(flags: int) -> int:
    return (
        6
        + (1 if flags & FLAG_STATUS else 0)
        + (1 if flags & FLAG_CAL_TEMP else 0)
        + (1 if flags & FLAG_WARNING else 0)
        + (2 if flags & FLAG_TREND else 0)
        + (2 if flags & FLAG_QUALITY else 0)
    )


def decode_measurement(data: bytes) -> CgmMeasurement:
    """Decode 0x2AA7 (one or more records); raises :class:`DecodeError`."""
    uuid = CGM_MEASUREMENT
    if not data:
        raise fail(uuid, data, "empty: a CGM measurement needs at least one 6-byte record")
    records: list[CgmRecord] = []
    offset = 0
    while offset < len(data):
        index = len(records)
        size = data[offset]
        if size < 6:
            raise fail(uuid, data, f"record {index} declares size {size}; the minimum is 6")
        if offset + size > len(data):
            raise fail(
                uuid,
                data,
                f"record {index} declares {size} bytes but only {len(data) - offset} remain",
            )
        record = data[offset : offset + size]
        flags = record[1]
        length = _record_length(flags)
        if size not in (length, length + 2):
            raise fail(
                uuid,
                data,
                f"record {index}: flags {flags:#04x} announce {length} bytes "
                f"({length + 2} with E2E-CRC) but size is {size}",
            )
        crc_present = size == length + 2
        if crc_present:
            sent = record[length] | record[length + 1] << 8
            computed = crc16_mcrf4xx(record[:length])
            if sent != computed:
                raise fail(
                    uuid,
                    data,
                    f"record {index}: E2E-CRC mismatch "
                    f"(sent {sent:#06x}, computed {computed:#06x})",
                )
        glucose = sfloat_from_raw(record[2] | record[3] << 8)
        time_offset = record[4] | record[5] << 8
        pos = 6
        octets: list[int | None] = []
        for bit in (FLAG_STATUS, FLAG_CAL_TEMP, FLAG_WARNING):
            if flags & bit:
                octets.append(record[pos])
                pos += 1
            else:
                octets.append(None)
        trend = quality = None
        if flags & FLAG_TREND:
            trend = sfloat_from_raw(record[pos] | record[pos + 1] << 8)
            pos += 2
        if flags & FLAG_QUALITY:
            quality = sfloat_from_raw(record[pos] | record[pos + 1] << 8)
        records.append(
            CgmRecord(
                glucose, time_offset, octets[0], octets[1], octets[2], trend, quality, crc_present
            )
        )
        offset += size
    return CgmMeasurement(tuple(records))


def encode_record(value: CgmRecord) -> bytes:
    """One record (with its E2E-CRC when ``crc_present``)."""
    flags = 0
    body = bytearray(encode_sfloat(value.glucose_mg_dl))
    body += pack("<H", check_uint(value.time_offset_min, 16, "time offset"))
    for bit, octet, name in (
        (FLAG_STATUS, value.status_octet, "status octet"),
        (FLAG_CAL_TEMP, value.cal_temp_octet, "cal/temp octet"),
        (FLAG_WARNING, value.warning_octet, "warning octet"),
    ):
        if octet is not None:
            flags |= bit
            body.append(check_uint(octet, 8, name))
    if value.trend_mg_dl_min is not None:
        flags |= FLAG_TREND
        body += encode_sfloat(value.trend_mg_dl_min)
    if value.quality_pct is not None:
        flags |= FLAG_QUALITY
        body += encode_sfloat(value.quality_pct)
    size = 2 + len(body) + (2 if value.crc_present else 0)
    if size > 255:
        raise EncodeError("CGM record too long")
    record = bytes([size, flags]) + bytes(body)
    if value.crc_present:
        record += pack("<H", crc16_mcrf4xx(record))
    return record


def encode_measurement(value: CgmMeasurement) -> bytes:
    """All records of one notification."""
    if not value.records:
        raise EncodeError("a CGM measurement needs at least one record")
    return b"".join(encode_record(record) for record in value.records)
