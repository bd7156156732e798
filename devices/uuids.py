"""Bluetooth SIG UUIDs of the health profiles (ble-profiles.md §2) and UUID spelling rules.

Every UUID leaves this module as a 128-bit lowercase string
(``00002a35-0000-1000-8000-00805f9b34fb``), the form bleak reports, so comparisons are
plain string equality. :func:`normalize_uuid` accepts the spellings people paste:
``2a35``, ``0x2A35``, a 32-bit ``00002a35``, and 128-bit with or without dashes, any case.
"""

from __future__ import annotations

import re

from devices.errors import InvalidUuid

_BASE_SUFFIX = "-0000-1000-8000-00805f9b34fb"
_HEX_RE = re.compile(r"[0-9a-f]+")


def uuid16_to_128(n: int) -> str:
    """The 128-bit form of a 16-bit SIG-assigned number (``0x2A35`` → ``00002a35-…``)."""
    if not 0 <= n <= 0xFFFF:
        raise InvalidUuid(f"{n!r} is not a 16-bit UUID")
    return f"0000{n:04x}{_BASE_SUFFIX}"


def normalize_uuid(text: str) -> str:
    """``text`` as a 128-bit lowercase UUID; raises :class:`InvalidUuid`."""
    s = text.strip().lower()
    if s.startswith("0x"):
        s = s[2:]
    plain = s.replace("-", "")
    if not plain or _HEX_RE.fullmatch(plain) is None:
        raise InvalidUuid(f"{text!r} is not a Bluetooth UUID")
    if len(plain) == 4 and "-" not in s:
        return f"0000{plain}{_BASE_SUFFIX}"
    if len(plain) == 8 and "-" not in s:
        return f"{plain}{_BASE_SUFFIX}"
    if len(plain) == 32 and (s == plain or _is_dashed_128(s)):
        return f"{plain[:8]}-{plain[8:12]}-{plain[12:16]}-{plain[16:20]}-{plain[20:]}"
    raise InvalidUuid(f"{text!r} is not a 16-, 32- or 128-bit Bluetooth UUID")


def _is_dashed_128(s: str) -> bool:
    return [len(part) for part in s.split("-")] == [8, 4, 4, 4, 12]


def short_form(uuid: str) -> str:
    """``0x2A35`` for a SIG-base UUID, else the 128-bit text unchanged."""
    if uuid.endswith(_BASE_SUFFIX) and uuid.startswith("0000"):
        return f"0x{uuid[4:8].upper()}"
    return uuid


def describe(uuid: str) -> str:
    """A human label such as ``Blood Pressure Measurement 0x2A35``."""
    name = CHARACTERISTIC_NAMES.get(uuid) or SERVICE_NAMES.get(uuid)
    return f"{name} {short_form(uuid)}" if name else short_form(uuid)


# --- services (ble-profiles.md §2) -------------------------------------------------------------
BLOOD_PRESSURE_SERVICE = uuid16_to_128(0x1810)
GLUCOSE_SERVICE = uuid16_to_128(0x1808)
WEIGHT_SCALE_SERVICE = uuid16_to_128(0x181D)
BODY_COMPOSITION_SERVICE = uuid16_to_128(0x181B)
USER_DATA_SERVICE = uuid16_to_128(0x181C)
CURRENT_TIME_SERVICE = uuid16_to_128(0x1805)
DEVICE_INFORMATION_SERVICE = uuid16_to_128(0x180A)
BATTERY_SERVICE = uuid16_to_128(0x180F)
CGM_SERVICE = uuid16_to_128(0x181F)
HEALTH_THERMOMETER_SERVICE = uuid16_to_128(0x1809)

# --- characteristics -----------------------------------------------------------------------------
BLOOD_PRESSURE_MEASUREMENT = uuid16_to_128(0x2A35)
INTERMEDIATE_CUFF_PRESSURE = uuid16_to_128(0x2A36)
BLOOD_PRESSURE_FEATURE = uuid16_to_128(0x2A49)
ENHANCED_BLOOD_PRESSURE_MEASUREMENT = uuid16_to_128(0x2B34)
ENHANCED_INTERMEDIATE_CUFF_PRESSURE = uuid16_to_128(0x2B35)
BLOOD_PRESSURE_RECORD = uuid16_to_128(0x2B36)
RECORD_ACCESS_CONTROL_POINT = uuid16_to_128(0x2A52)
DATE_TIME = uuid16_to_128(0x2A08)
GLUCOSE_MEASUREMENT = uuid16_to_128(0x2A18)
GLUCOSE_MEASUREMENT_CONTEXT = uuid16_to_128(0x2A34)
GLUCOSE_FEATURE = uuid16_to_128(0x2A51)
WEIGHT_MEASUREMENT = uuid16_to_128(0x2A9D)
WEIGHT_SCALE_FEATURE = uuid16_to_128(0x2A9E)
BODY_COMPOSITION_MEASUREMENT = uuid16_to_128(0x2A9C)
BODY_COMPOSITION_FEATURE = uuid16_to_128(0x2A9B)
USER_INDEX = uuid16_to_128(0x2A9A)
DATABASE_CHANGE_INCREMENT = uuid16_to_128(0x2A99)
USER_CONTROL_POINT = uuid16_to_128(0x2A9F)
DATE_OF_BIRTH = uuid16_to_128(0x2A85)
GENDER = uuid16_to_128(0x2A8C)
HEIGHT = uuid16_to_128(0x2A8E)
AGE = uuid16_to_128(0x2A80)
CURRENT_TIME = uuid16_to_128(0x2A2B)
LOCAL_TIME_INFORMATION = uuid16_to_128(0x2A0F)
REFERENCE_TIME_INFORMATION = uuid16_to_128(0x2A14)
MANUFACTURER_NAME = uuid16_to_128(0x2A29)
MODEL_NUMBER = uuid16_to_128(0x2A24)
SERIAL_NUMBER = uuid16_to_128(0x2A25)
HARDWARE_REVISION = uuid16_to_128(0x2A27)
FIRMWARE_REVISION = uuid16_to_128(0x2A26)
SOFTWARE_REVISION = uuid16_to_128(0x2A28)
SYSTEM_ID = uuid16_to_128(0x2A23)
PNP_ID = uuid16_to_128(0x2A50)
REGULATORY_CERTIFICATION_DATA_LIST = uuid16_to_128(0x2A2A)
BATTERY_LEVEL = uuid16_to_128(0x2A19)
CGM_MEASUREMENT = uuid16_to_128(0x2AA7)
CGM_FEATURE = uuid16_to_128(0x2AA8)
CGM_STATUS = uuid16_to_128(0x2AA9)
CGM_SESSION_START_TIME = uuid16_to_128(0x2AAA)
CGM_SESSION_RUN_TIME = uuid16_to_128(0x2AAB)
CGM_SPECIFIC_OPS_CONTROL_POINT = uuid16_to_128(0x2AAC)
TEMPERATURE_MEASUREMENT = uuid16_to_128(0x2A1C)

# --- vendor services and characteristics named in ble-profiles.md §7-§8 -------------------------
OMRON_COMPANY_ID = 0x020E
OMRON_EEPROM_SERVICE = "ecbe3980-c9a2-11e1-b1bd-0002a5d5c51b"
OMRON_EEPROM_SERVICE_16 = uuid16_to_128(0xFE4A)
OMRON_OPTION_SERVICE = "5df5e817-a945-4f81-89c0-3d4e9759c07c"
AND_CUSTOM_CHARACTERISTIC = "233bf001-5a34-1b6d-975c-000d5690abe4"
ISENS_CLOCK_SERVICE = uuid16_to_128(0xFFF0)
ISENS_CLOCK_CHARACTERISTIC = uuid16_to_128(0xFFF1)
ISENS_CLOCK_SERVICE_V15 = "c4dea010-5a9d-11e9-8647-d663bd873d93"
ISENS_CLOCK_CHARACTERISTIC_V15 = "c4dea3bc-5a9d-11e9-8647-d663bd873d93"
ASCENSIA_VENDOR_SERVICE = "00000000-0002-11e2-9e96-0800200c9a66"
NORDIC_UART_SERVICE = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
XIAOMI_SCALE_HISTORY = "00002a2f-0000-3512-2118-0009af100700"

SERVICE_NAMES: dict[str, str] = {
    BLOOD_PRESSURE_SERVICE: "Blood Pressure",
    GLUCOSE_SERVICE: "Glucose",
    WEIGHT_SCALE_SERVICE: "Weight Scale",
    BODY_COMPOSITION_SERVICE: "Body Composition",
    USER_DATA_SERVICE: "User Data",
    CURRENT_TIME_SERVICE: "Current Time",
    DEVICE_INFORMATION_SERVICE: "Device Information",
    BATTERY_SERVICE: "Battery",
    CGM_SERVICE: "Continuous Glucose Monitoring",
    HEALTH_THERMOMETER_SERVICE: "Health Thermometer",
}

CHARACTERISTIC_NAMES: dict[str, str] = {
    BLOOD_PRESSURE_MEASUREMENT: "Blood Pressure Measurement",
    INTERMEDIATE_CUFF_PRESSURE: "Intermediate Cuff Pressure",
    BLOOD_PRESSURE_FEATURE: "Blood Pressure Feature",
    ENHANCED_BLOOD_PRESSURE_MEASUREMENT: "Enhanced Blood Pressure Measurement",
    ENHANCED_INTERMEDIATE_CUFF_PRESSURE: "Enhanced Intermediate Cuff Pressure",
    BLOOD_PRESSURE_RECORD: "Blood Pressure Record",
    RECORD_ACCESS_CONTROL_POINT: "Record Access Control Point",
    DATE_TIME: "Date Time",
    GLUCOSE_MEASUREMENT: "Glucose Measurement",
    GLUCOSE_MEASUREMENT_CONTEXT: "Glucose Measurement Context",
    GLUCOSE_FEATURE: "Glucose Feature",
    WEIGHT_MEASUREMENT: "Weight Measurement",
    WEIGHT_SCALE_FEATURE: "Weight Scale Feature",
    BODY_COMPOSITION_MEASUREMENT: "Body Composition Measurement",
    BODY_COMPOSITION_FEATURE: "Body Composition Feature",
    USER_INDEX: "User Index",
    DATABASE_CHANGE_INCREMENT: "Database Change Increment",
    USER_CONTROL_POINT: "User Control Point",
    DATE_OF_BIRTH: "Date of Birth",
    GENDER: "Gender",
    HEIGHT: "Height",
    AGE: "Age",
    CURRENT_TIME: "Current Time",
    LOCAL_TIME_INFORMATION: "Local Time Information",
    REFERENCE_TIME_INFORMATION: "Reference Time Information",
    MANUFACTURER_NAME: "Manufacturer Name String",
    MODEL_NUMBER: "Model Number String",
    SERIAL_NUMBER: "Serial Number String",
    HARDWARE_REVISION: "Hardware Revision String",
    FIRMWARE_REVISION: "Firmware Revision String",
    SOFTWARE_REVISION: "Software Revision String",
    SYSTEM_ID: "System ID",
    PNP_ID: "PnP ID",
    REGULATORY_CERTIFICATION_DATA_LIST: "IEEE 11073-20601 Regulatory Certification Data List",
    BATTERY_LEVEL: "Battery Level",
    CGM_MEASUREMENT: "CGM Measurement",
    CGM_FEATURE: "CGM Feature",
    CGM_STATUS: "CGM Status",
    CGM_SESSION_START_TIME: "CGM Session Start Time",
    CGM_SESSION_RUN_TIME: "CGM Session Run Time",
    CGM_SPECIFIC_OPS_CONTROL_POINT: "CGM Specific Ops Control Point",
    TEMPERATURE_MEASUREMENT: "Temperature Measurement",
}
