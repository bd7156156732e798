"""Vendor commands the gateway writes to standard-profile devices (ble-profiles.md §6-§8).

i-SENS CareSens clock (0xFFF1 in service 0xFFF0, or c4dea3bc-… in c4dea010-… on v1.5
firmware); the reply is a notification on the same characteristic with the same layout::

    C0 03 01 00 | year (uint16 LE) | month | day | hours | minutes | seconds
    all time fields zero = "read the clock" (Tidepool bluetoothLEDriver)

A&D "send all data" (obniz): ``02 00 E1`` written to 233bf001-5a34-1b6d-975c-000d5690abe4
before enabling indications.
"""

from __future__ import annotations

from datetime import datetime
from struct import pack

from devices.errors import DecodeError
from devices.gatt._common import fail
from devices.ieee11073 import DateTime, decode_date_time, encode_date_time
from devices.uuids import AND_CUSTOM_CHARACTERISTIC, ISENS_CLOCK_CHARACTERISTIC

ISENS_CLOCK_HEADER = bytes.fromhex("C0030100")
AND_SEND_ALL_DATA = bytes.fromhex("0200E1")
AND_SEND_ALL_DATA_CHARACTERISTIC = AND_CUSTOM_CHARACTERISTIC


def isens_clock_command(now: datetime | None) -> bytes:
    """The bytes that set the CareSens clock to wall-clock ``now``, or read it when None."""
    if now is None:
        return ISENS_CLOCK_HEADER + pack("<HBBBBB", 0, 0, 0, 0, 0, 0)
    return ISENS_CLOCK_HEADER + encode_date_time(DateTime.from_datetime(now))


def decode_isens_clock(data: bytes) -> DateTime:
    """The device time in a CareSens clock notification; raises :class:`DecodeError`."""
    uuid = ISENS_CLOCK_CHARACTERISTIC
    if len(data) < 11:
        raise fail(uuid, data, f"needs 11 bytes (4-byte header and Date Time), got {len(data)}")
    try:
        return decode_date_time(data, 4)
    except DecodeError as exc:
        raise exc.for_characteristic(uuid, data) from None
