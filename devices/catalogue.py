"""The device catalogue: a data table of the models the centres may meet (ble-profiles.md §8).

One row per model or family, read by the gateway (how to pair, how to set the clock, which
quirks to apply, how records are retrieved) and by the docs. ``None`` in ``pairing``,
``clock`` or ``records`` means *not verified*: the gateway must use its safest path (an agent
that handles both Just Works and passkey; try CTS then Date Time; dedupe on content).

Field vocabularies::

    pairing   just_works | passkey | single_bond (bonds to one host only) | None
    clock     cts_write | date_time_write (0x2A08 in the measurement service) |
              vendor_command | none (no way to set it) | None
    records   racp | resend_all (whole memory every session) | delete_after_transfer |
              live_only | None

Identification: :func:`match_advertisement` uses the advertised name first (vendor patterns,
including devices that advertise standard UUIDs with vendor layouts such as Xiaomi scales),
then falls back to a generic row per standard service. Families that share an advertised name
(Omron ``BLESmart_``, i-SENS ``CareSens XXXX``) match a family row; after reading Device
Information the gateway calls :func:`find_model` for the exact row and its quirks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from devices.model import Kind
from devices.uuids import (
    ASCENSIA_VENDOR_SERVICE,
    BLOOD_PRESSURE_SERVICE,
    BODY_COMPOSITION_SERVICE,
    CGM_SERVICE,
    GLUCOSE_SERVICE,
    HEALTH_THERMOMETER_SERVICE,
    ISENS_CLOCK_SERVICE,
    ISENS_CLOCK_SERVICE_V15,
    NORDIC_UART_SERVICE,
    OMRON_EEPROM_SERVICE,
    USER_DATA_SERVICE,
    WEIGHT_SCALE_SERVICE,
    normalize_uuid,
)

Pairing = Literal["just_works", "passkey", "single_bond"]
Clock = Literal["cts_write", "date_time_write", "vendor_command", "none"]
Records = Literal["racp", "resend_all", "delete_after_transfer", "live_only"]


@dataclass(frozen=True, slots=True)
class DeviceModel:
    """One catalogue row."""

    manufacturer: str
    model: str
    kind: Kind | None
    profile: str  # BLS, GLS, WSS, BCS, WSS+BCS+UDS, proprietary, unverified
    supported: bool  # True when the standard decoders of devices.gatt read its results
    service_uuids: tuple[str, ...] = ()
    name_patterns: tuple[str, ...] = ()  # regular expressions matched at the name's start
    pairing: Pairing | None = None
    clock: Clock | None = None
    quirks: tuple[str, ...] = ()
    records: Records | None = None
    model_aliases: tuple[str, ...] = ()  # other DIS model strings for the same device
    manufacturer_aliases: tuple[str, ...] = ()
    family: bool = False  # a row for a family sharing an advertised name
    notes: str = ""
    sources: str = ""

    @property
    def label(self) -> str:
        """``"Manufacturer Model"``, the form quirks name their models in."""
        return f"{self.manufacturer} {self.model}"


_ISENS_NOTES = (
    "Standard GLS + RACP; the clock is set by writing C0 03 01 00 <year LE> <mon> <day> <h> "
    "<m> <s> (zeros = read) to 0xFFF1 in service 0xFFF0, or to c4dea3bc-… in service "
    "c4dea010-… on v1.5 firmware; the reply is a notification on the same characteristic. "
    "Bond required; 'pairing is tricky' (Tidepool, xDrip)."
)
_ISENS_SERVICES = (GLUCOSE_SERVICE, ISENS_CLOCK_SERVICE, ISENS_CLOCK_SERVICE_V15)
_OMRON_NOTES = (
    "One paired host only (pairing breaks the phone app). Pairing mode: hold the BT button "
    "3-5 s ('P' blinks); name BLEsmart_ (pairing) / BLESmart_ (transfer) + 8-hex model id + "
    "MAC. Answer the first CTS notification with a CTS write. Manufacturer data (company "
    "0x020E) shows 'time not set' and per-user record counts. Older history needs the "
    "proprietary EEPROM protocol."
)
_OMRON_SOURCES = "ble-profiles.md §7.2, §8 (Spezi, hass-omron, derdilla)"
_AND_NOTES = (
    "After pairing ('Pr') the unit talks only to that host. Each session: read firmware "
    "revision, wait 40-100 ms, write Date Time 0x2A08 in the measurement service, then "
    "enable indications; obniz first writes 02 00 E1 ('send all data') to the A&D custom "
    "characteristic 233bf001-…. The device disconnects when done."
)

CATALOGUE: tuple[DeviceModel, ...] = (
    # --- glucose meters ---------------------------------------------------------------------
    DeviceModel(
        "i-SENS",
        "CareSens (N Premier / N Plus BT / Dual)",
        Kind.GLUCOSE,
        "GLS",
        True,
        _ISENS_SERVICES,
        (r"CareSens [0-9A-Fa-f]{4}$",),
        None,
        "vendor_command",
        ("isens_month_13", "caresens_dual_ketone"),
        "racp",
        family=True,
        manufacturer_aliases=("i-SENS, Inc.", "isens"),
        notes="Family row matched by the advertised name; find_model() after DIS. " + _ISENS_NOTES,
        sources="ble-profiles.md §8; Tidepool bluetoothLEDriver; xDrip",
    ),
    DeviceModel(
        "i-SENS",
        "CareSens N Premier",
        Kind.GLUCOSE,
        "GLS",
        True,
        _ISENS_SERVICES,
        (),
        None,
        "vendor_command",
        ("isens_month_13",),
        "racp",
        manufacturer_aliases=("i-SENS, Inc.", "isens"),
        notes=_ISENS_NOTES,
        sources="ble-profiles.md §8",
    ),
    DeviceModel(
        "i-SENS",
        "CareSens N Plus BT",
        Kind.GLUCOSE,
        "GLS",
        True,
        _ISENS_SERVICES,
        (),
        None,
        "vendor_command",
        ("isens_month_13",),
        "racp",
        manufacturer_aliases=("i-SENS, Inc.", "isens"),
        notes=_ISENS_NOTES,
        sources="ble-profiles.md §8",
    ),
    DeviceModel(
        "i-SENS",
        "CareSens Dual",
        Kind.GLUCOSE,
        "GLS",
        True,
        _ISENS_SERVICES,
        (),
        None,
        "vendor_command",
        ("isens_month_13", "caresens_dual_ketone"),
        "racp",
        manufacturer_aliases=("i-SENS, Inc.", "isens"),
        notes="Blood glucose and ketone meter: ketone records carry meal = 6. " + _ISENS_NOTES,
        sources="ble-profiles.md §4.2, §8",
    ),
    DeviceModel(
        "i-SENS",
        "ReliOn 2395/0015",
        Kind.GLUCOSE,
        "GLS",
        True,
        _ISENS_SERVICES,
        (r"ReliOn (2395|0015)",),
        None,
        "vendor_command",
        ("isens_month_13",),
        "racp",
        model_aliases=("ReliOn 2395", "ReliOn 0015"),
        notes="i-SENS-made meters sold as ReliOn; Tidepool handles them exactly like CareSens.",
        sources="Tidepool bluetoothLEDriver (name prefixes)",
    ),
    DeviceModel(
        "Roche",
        "Accu-Chek Guide",
        Kind.GLUCOSE,
        "GLS",
        True,
        (GLUCOSE_SERVICE,),
        (),
        "passkey",
        "date_time_write",
        (),
        "racp",
        model_aliases=("Accu-Chek Guide Me",),
        manufacturer_aliases=("Roche Diabetes Care",),
        notes="PIN printed on the meter is asked during pairing (needs a BlueZ agent). "
        "Control-solution records (type 10 / location 4) are marked by the strict decoder.",
        sources="ble-profiles.md §7.3, §8 (react-native-ble-plx #652, xDrip, Tidepool)",
    ),
    DeviceModel(
        "Roche",
        "Accu-Chek Instant",
        Kind.GLUCOSE,
        "GLS",
        True,
        (GLUCOSE_SERVICE,),
        (),
        "passkey",
        "date_time_write",
        (),
        "racp",
        manufacturer_aliases=("Roche Diabetes Care",),
        notes="As Accu-Chek Guide.",
        sources="ble-profiles.md §8",
    ),
    DeviceModel(
        "Roche",
        "Accu-Chek Aviva Connect",
        Kind.GLUCOSE,
        "GLS",
        True,
        (GLUCOSE_SERVICE,),
        (),
        "passkey",
        "date_time_write",
        (),
        "racp",
        manufacturer_aliases=("Roche Diabetes Care",),
        notes="Uses Date Time 0x2A08 inside the Glucose service instead of CTS (xDrip).",
        sources="ble-profiles.md §6, §8",
    ),
    DeviceModel(
        "Ascensia",
        "Contour Next One",
        Kind.GLUCOSE,
        "GLS",
        True,
        (GLUCOSE_SERVICE, ASCENSIA_VENDOR_SERVICE),
        (),
        None,
        None,
        (),
        "racp",
        manufacturer_aliases=("Ascensia Diabetes Care", "Bayer"),
        notes="Standard GLS plus a vendor service; clock method not verified.",
        sources="ble-profiles.md §8 (xDrip)",
    ),
    DeviceModel(
        "Ascensia",
        "Contour Plus One",
        Kind.GLUCOSE,
        "GLS",
        True,
        (GLUCOSE_SERVICE, ASCENSIA_VENDOR_SERVICE),
        (),
        None,
        None,
        (),
        "racp",
        manufacturer_aliases=("Ascensia Diabetes Care", "Bayer"),
        notes="As Contour Next One.",
        sources="ble-profiles.md §8 (xDrip)",
    ),
    DeviceModel(
        "ForaCare",
        "TN'G Voice",
        Kind.GLUCOSE,
        "GLS",
        True,
        (GLUCOSE_SERVICE,),
        (r"TNG VOICE",),
        None,
        "vendor_command",
        ("fora_memory_full_2037",),
        "racp",
        model_aliases=("TNG VOICE", "TN'G VOICE"),
        manufacturer_aliases=("Fora", "ForaCare Inc."),
        notes="Leaves the DIS manufacturer empty; some units report the model as 'Model "
        "Number'. Proprietary clock. A full memory (450 records) appends a bogus HI record "
        "dated 2037.",
        sources="ble-profiles.md §7.3 (Tidepool)",
    ),
    DeviceModel(
        "TaiDoc",
        "Diamond Mobile Mini DM30b",
        Kind.GLUCOSE,
        "GLS",
        True,
        (GLUCOSE_SERVICE,),
        (),
        None,
        "none",
        (),
        "racp",
        model_aliases=("DM30b", "TD-4279"),
        notes="Firmware 1.2.4 has reversed sequence numbers and no clock access: request "
        "only the 'first' record (which it returns as the newest) and dedupe by content "
        "(xDrip).",
        sources="ble-profiles.md §7.3, §8 (xDrip)",
    ),
    DeviceModel(
        "LifeScan",
        "OneTouch Verio Flex",
        Kind.GLUCOSE,
        "proprietary",
        False,
        notes="Proprietary protocol (xDrip VerioHelper); not read by devices.gatt.",
        sources="ble-profiles.md §8",
    ),
    DeviceModel(
        "LifeScan",
        "OneTouch Select Plus Flex",
        Kind.GLUCOSE,
        "proprietary",
        False,
        notes="Proprietary protocol (sivulich/AppiaGlucometers); not read by devices.gatt.",
        sources="ble-profiles.md §8",
    ),
    # --- blood pressure monitors ------------------------------------------------------------
    DeviceModel(
        "Omron",
        "BLESmart monitor",
        Kind.BLOOD_PRESSURE,
        "BLS",
        True,
        (BLOOD_PRESSURE_SERVICE,),
        (r"BLE[Ss]mart_",),
        "single_bond",
        "cts_write",
        (),
        None,
        family=True,
        manufacturer_aliases=("OMRON HEALTHCARE", "Omron Healthcare Co., Ltd."),
        notes="Family row matched by the advertised name; find_model() after DIS. " + _OMRON_NOTES,
        sources=_OMRON_SOURCES,
    ),
    DeviceModel(
        "Omron",
        "HEM-7155T",
        Kind.BLOOD_PRESSURE,
        "BLS",
        True,
        (BLOOD_PRESSURE_SERVICE, OMRON_EEPROM_SERVICE),
        (),
        "single_bond",
        "cts_write",
        (),
        "delete_after_transfer",
        model_aliases=("X4 Smart",),
        manufacturer_aliases=("OMRON HEALTHCARE", "Omron Healthcare Co., Ltd."),
        notes="X4 Smart: returns the latest reading after a measurement; download mode "
        "removes the stored readings (derdilla docs/bluetooth.md). " + _OMRON_NOTES,
        sources=_OMRON_SOURCES,
    ),
    DeviceModel(
        "Omron",
        "HEM-7142T2",
        Kind.BLOOD_PRESSURE,
        "BLS",
        True,
        (BLOOD_PRESSURE_SERVICE,),
        (),
        "single_bond",
        "cts_write",
        (),
        None,
        manufacturer_aliases=("OMRON HEALTHCARE", "Omron Healthcare Co., Ltd."),
        notes=_OMRON_NOTES,
        sources=_OMRON_SOURCES,
    ),
    DeviceModel(
        "Omron",
        "HEM-7361T",
        Kind.BLOOD_PRESSURE,
        "BLS",
        True,
        (BLOOD_PRESSURE_SERVICE,),
        (),
        "single_bond",
        "cts_write",
        (),
        None,
        model_aliases=("M7 Intelli IT",),
        manufacturer_aliases=("OMRON HEALTHCARE", "Omron Healthcare Co., Ltd."),
        notes=_OMRON_NOTES,
        sources=_OMRON_SOURCES,
    ),
    DeviceModel(
        "Omron",
        "EVOLV",
        Kind.BLOOD_PRESSURE,
        "BLS",
        True,
        (BLOOD_PRESSURE_SERVICE,),
        (),
        "single_bond",
        "cts_write",
        (),
        None,
        model_aliases=("HEM-7600T",),
        manufacturer_aliases=("OMRON HEALTHCARE", "Omron Healthcare Co., Ltd."),
        notes=_OMRON_NOTES,
        sources=_OMRON_SOURCES,
    ),
    DeviceModel(
        "Omron",
        "BP5250",
        Kind.BLOOD_PRESSURE,
        "BLS",
        True,
        (BLOOD_PRESSURE_SERVICE,),
        (),
        "single_bond",
        "cts_write",
        (),
        None,
        manufacturer_aliases=("OMRON HEALTHCARE", "Omron Healthcare Co., Ltd."),
        notes=_OMRON_NOTES,
        sources=_OMRON_SOURCES,
    ),
    DeviceModel(
        "A&D Medical",
        "UA-651BLE",
        Kind.BLOOD_PRESSURE,
        "BLS",
        True,
        (BLOOD_PRESSURE_SERVICE,),
        (r"A&D_UA-651BLE",),
        "single_bond",
        "date_time_write",
        (),
        None,
        manufacturer_aliases=("A&D", "A&D Company", "AND"),
        notes=_AND_NOTES
        + " One unresolved report: error E10 as soon as service discovery started.",
        sources="ble-profiles.md §7.2, §8 (A&D sample code, obniz)",
    ),
    DeviceModel(
        "A&D Medical",
        "UA-651CNBLE",
        Kind.BLOOD_PRESSURE,
        "BLS",
        True,
        (BLOOD_PRESSURE_SERVICE,),
        (r"A&D_UA-651CNBLE",),
        "single_bond",
        "date_time_write",
        (),
        None,
        manufacturer_aliases=("A&D", "A&D Company", "AND"),
        notes=_AND_NOTES,
        sources="ble-profiles.md §8",
    ),
    DeviceModel(
        "A&D Medical",
        "UB-1100BLE",
        Kind.BLOOD_PRESSURE,
        "BLS",
        True,
        (BLOOD_PRESSURE_SERVICE,),
        (),
        "single_bond",
        "date_time_write",
        (),
        None,
        manufacturer_aliases=("A&D", "A&D Company", "AND"),
        notes="Bonded, notifies 0x2A35 (blessed-bluez #26 log). " + _AND_NOTES,
        sources="ble-profiles.md §8",
    ),
    DeviceModel(
        "Silvercrest",
        "SBM69",
        Kind.BLOOD_PRESSURE,
        "BLS",
        True,
        (BLOOD_PRESSURE_SERVICE,),
        (r"SBM69",),
        "passkey",
        None,
        (),
        "resend_all",
        model_aliases=("SBM 69",),
        manufacturer_aliases=("HealthForYou", "Lidl"),
        notes="Shows a passkey on its display during pairing (needs a BlueZ agent); sends "
        "all stored readings every session and disconnects.",
        sources="ble-profiles.md §7.2, §8 (ignisf/sbm69, derdilla)",
    ),
    DeviceModel(
        "Beurer",
        "BM59",
        Kind.BLOOD_PRESSURE,
        "BLS",
        True,
        (BLOOD_PRESSURE_SERVICE,),
        (),
        None,
        None,
        (),
        "resend_all",
        notes="Sends all stored readings every session.",
        sources="ble-profiles.md §7.2, §8 (derdilla)",
    ),
    DeviceModel(
        "Beurer",
        "BM85",
        Kind.BLOOD_PRESSURE,
        "BLS",
        True,
        (BLOOD_PRESSURE_SERVICE,),
        (),
        None,
        None,
        ("beurer_bm85_byte_order", "map_zero_not_computed"),
        "resend_all",
        notes="Big-endian pulse and status, an unflagged user ID byte, reserved flag bit 6, "
        "MAP sent as 0; sends all stored readings every session.",
        sources="ble-profiles.md §1, §3.1, §11.8 (derdilla captures)",
    ),
    DeviceModel(
        "Medisana",
        "BU 550",
        Kind.BLOOD_PRESSURE,
        "BLS",
        True,
        (BLOOD_PRESSURE_SERVICE,),
        notes="Standard BLS.",
        sources="ble-profiles.md §8 (derdilla)",
    ),
    DeviceModel(
        "Medisana",
        "BU 572",
        Kind.BLOOD_PRESSURE,
        "BLS",
        True,
        (BLOOD_PRESSURE_SERVICE,),
        notes="Standard BLS.",
        sources="ble-profiles.md §8 (derdilla)",
    ),
    DeviceModel(
        "Yonker",
        "BP monitor (Yonker/Yongrow/METIKO)",
        Kind.BLOOD_PRESSURE,
        "proprietary",
        False,
        notes="Proprietary protocol; not read by devices.gatt.",
        sources="ble-profiles.md §8 (derdilla)",
    ),
    DeviceModel(
        "Microlife",
        "BP3GY1-2N",
        Kind.BLOOD_PRESSURE,
        "proprietary",
        False,
        notes="Proprietary protocol; not read by devices.gatt.",
        sources="ble-profiles.md §8 (derdilla)",
    ),
    DeviceModel(
        "iHealth",
        "BP5",
        Kind.BLOOD_PRESSURE,
        "proprietary",
        False,
        notes="Vendor SDK; the BP5 is Classic Bluetooth, not LE.",
        sources="ble-profiles.md §8 (iHealth SDK docs)",
    ),
    # --- scales -----------------------------------------------------------------------------
    DeviceModel(
        "Omron",
        "SC-150",
        Kind.BODY_WEIGHT,
        "WSS",
        True,
        (WEIGHT_SCALE_SERVICE,),
        (),
        "single_bond",
        "cts_write",
        (),
        None,
        manufacturer_aliases=("OMRON HEALTHCARE", "Omron Healthcare Co., Ltd."),
        notes="Standard WSS + CTS (Spezi OmronWeightScale).",
        sources="ble-profiles.md §8",
    ),
    DeviceModel(
        "Omron",
        "HBF-702T / HBF-222T-230T",
        Kind.BODY_COMPOSITION,
        "proprietary",
        False,
        model_aliases=("HBF-702T", "HBF-222T", "HBF-230T"),
        notes="Proprietary 'WLC' EEPROM protocol (openScale OmronWlcHandler).",
        sources="ble-profiles.md §8",
    ),
    DeviceModel(
        "A&D Medical",
        "UC-352BLE",
        Kind.BODY_WEIGHT,
        "WSS",
        True,
        (WEIGHT_SCALE_SERVICE,),
        (r"A&D_UC-352BLE",),
        "single_bond",
        "date_time_write",
        (),
        None,
        manufacturer_aliases=("A&D", "A&D Company", "AND"),
        notes="Bonded WSS, weight = raw × 0.005 kg; disconnects after sending; pairing mode "
        "shows as LE Limited Discoverable (AD flags 0x05). " + _AND_NOTES,
        sources="ble-profiles.md §7.4 (obniz)",
    ),
    *(
        DeviceModel(
            manufacturer,
            model,
            Kind.BODY_COMPOSITION,
            "WSS+BCS+UDS",
            True,
            (WEIGHT_SCALE_SERVICE, BODY_COMPOSITION_SERVICE, USER_DATA_SERVICE),
            (),
            None,
            "cts_write",
            (),
            None,
            notes="Standard WSS/BCS/UDS with vendor extras: subscribe 0x2A9D, 0x2A9C and UCP, "
            "write CTS, send UDS consent for the mapped user, merge 0x2A9D + 0x2A9C and "
            "multi-packet BCS (openScale StandardWeightProfileHandler).",
            sources="ble-profiles.md §7.4, §8 (openScale)",
        )
        for manufacturer, model in (
            ("Beurer", "BF600"),
            ("Beurer", "BF720"),
            ("Beurer", "BF850"),
            ("Sanitas", "SBF72"),
            ("Sanitas", "SBF73"),
        )
    ),
    DeviceModel(
        "InBody",
        "H20N",
        Kind.BODY_COMPOSITION,
        "proprietary",
        False,
        (NORDIC_UART_SERVICE,),
        (r"InBodyH20New",),
        notes="Proprietary protocol over the Nordic UART Service.",
        sources="ble-profiles.md §8 (custom-components/ble_monitor #929)",
    ),
    DeviceModel(
        "Xiaomi",
        "Mi Scale v1/v2 / MIBFS",
        Kind.BODY_COMPOSITION,
        "proprietary",
        False,
        (WEIGHT_SCALE_SERVICE, BODY_COMPOSITION_SERVICE),
        (r"MIBFS", r"MI[ _]SCALE"),
        notes="Non-standard behind standard UUIDs: advertises 0x181D/0x181B but 0x2A9D is "
        "often absent; history via a vendor characteristic, values in advertisement service "
        "data with a Xiaomi layout. Never decode with the standard parsers.",
        sources="ble-profiles.md §1, §8 (openScale MiScaleHandler)",
    ),
    *(
        DeviceModel(
            manufacturer,
            model,
            Kind.BODY_COMPOSITION,
            "proprietary",
            False,
            notes="Proprietary GATT (openScale handlers); not read by devices.gatt.",
            sources="ble-profiles.md §8",
        )
        for manufacturer, model in (
            ("Medisana", "BS444"),
            ("Medisana", "BS440"),
            ("Yunmai", "BIA scale"),
            ("QN / Yolanda", "BIA scale"),
            ("Icomon", "BIA scale"),
        )
    ),
    # --- Korean brands not verified (ble-profiles.md §8: scan before procurement) -----------
    *(
        DeviceModel(
            manufacturer,
            model,
            kind,
            "unverified",
            False,
            notes="Not verified: before procurement scan with nRF Connect for 0x1810/0x1808/"
            "0x181D/0x181B and a writable CTS or Date Time, and capture an HCI log of the "
            "vendor app.",
            sources="ble-profiles.md §8",
        )
        for manufacturer, model, kind in (
            ("Allmedicus", "GlucoDr", Kind.GLUCOSE),
            ("SD Biosensor", "SD CodeFree", Kind.GLUCOSE),
            ("Osang Healthcare", "GluNEO", Kind.GLUCOSE),
            ("Infopia", "glucose meter", Kind.GLUCOSE),
            ("Selvas / Jawon", "ACCUNIQ BP", Kind.BLOOD_PRESSURE),
            ("Selvas / Jawon", "ACCUNIQ BIA", Kind.BODY_COMPOSITION),
            ("InBody", "BPBIO", Kind.BLOOD_PRESSURE),
        )
    ),
    # --- generic rows: a standard service with no better match ------------------------------
    DeviceModel(
        "(generic)",
        "Blood Pressure Service device",
        Kind.BLOOD_PRESSURE,
        "BLS",
        True,
        (BLOOD_PRESSURE_SERVICE,),
        family=True,
        notes="Unknown model advertising 0x1810: strict decoding, no quirks; try CTS then "
        "Date Time; dedupe on content.",
    ),
    DeviceModel(
        "(generic)",
        "Glucose Service device",
        Kind.GLUCOSE,
        "GLS",
        True,
        (GLUCOSE_SERVICE,),
        records="racp",
        family=True,
        notes="Unknown model advertising 0x1808: GLS requires RACP.",
    ),
    DeviceModel(
        "(generic)",
        "Body Composition Service device",
        Kind.BODY_COMPOSITION,
        "BCS",
        True,
        (BODY_COMPOSITION_SERVICE,),
        family=True,
        notes="Unknown model advertising 0x181B.",
    ),
    DeviceModel(
        "(generic)",
        "Weight Scale Service device",
        Kind.BODY_WEIGHT,
        "WSS",
        True,
        (WEIGHT_SCALE_SERVICE,),
        family=True,
        notes="Unknown model advertising 0x181D.",
    ),
    DeviceModel(
        "(generic)",
        "Health Thermometer device",
        Kind.BODY_TEMPERATURE,
        "HTS",
        True,
        (HEALTH_THERMOMETER_SERVICE,),
        family=True,
        notes="Unknown model advertising 0x1809.",
    ),
    DeviceModel(
        "(generic)",
        "CGM Service device",
        Kind.CGM,
        "CGMS",
        True,
        (CGM_SERVICE,),
        records="racp",
        family=True,
        notes="Unknown model advertising 0x181F (optional profile).",
    ),
)

_PATTERNS = tuple(
    (tuple(re.compile(p) for p in row.name_patterns), row) for row in CATALOGUE if row.name_patterns
)
_GENERIC = tuple(row for row in CATALOGUE if row.manufacturer == "(generic)")


def _key(text: str) -> str:
    """Case, spaces, punctuation and apostrophes do not distinguish models."""
    return re.sub(r"[^0-9a-z&]", "", text.lower())


def _manufacturer_matches(row: DeviceModel, given: str) -> bool:
    wanted = _key(given)
    if not wanted:
        return False
    return any(
        _key(name) and (_key(name) in wanted or wanted in _key(name))
        for name in (row.manufacturer, *row.manufacturer_aliases)
    )


def _model_matches(given: str, name: str) -> int:
    """The strength of a model match (0 = none): equal keys, or ``name`` + a separator."""
    key = _key(name)
    if not key:
        return 0
    if _key(given) == key:
        return len(key) + 1
    text, prefix = given.strip().lower(), name.strip().lower()
    if text.startswith(prefix) and text[len(prefix) : len(prefix) + 1] in ("-", " ", "_", "(", "/"):
        return len(key)
    return 0


def find_model(manufacturer: str | None, model: str | None) -> DeviceModel | None:
    """The catalogue row for Device Information strings, or None.

    The model string must equal (ignoring case, spaces and punctuation) the row's model or an
    alias, or extend it after a separator (Omron's ``HEM-7155T-EBK`` colour suffix; ``BM850``
    does not match ``BM85``). A missing or empty manufacturer (Fora leaves it empty) matches
    only when exactly one row fits the model.
    """
    if not model or not _key(model):
        return None
    candidates: list[tuple[int, DeviceModel]] = []
    for row in CATALOGUE:
        if row.manufacturer == "(generic)":
            continue
        strength = max(_model_matches(model, name) for name in (row.model, *row.model_aliases))
        if strength:
            candidates.append((strength, row))
    if manufacturer and _key(manufacturer):
        candidates = [(n, row) for n, row in candidates if _manufacturer_matches(row, manufacturer)]
    elif len({row for _, row in candidates}) != 1:
        return None
    if not candidates:
        return None
    specific = [(n, row) for n, row in candidates if not row.family] or candidates
    return max(specific, key=lambda item: item[0])[1]


def match_advertisement(name: str | None, service_uuids: Sequence[str]) -> DeviceModel | None:
    """The row an advertisement points to: vendor name patterns first, then standard services."""
    if name:
        for patterns, row in _PATTERNS:
            if any(p.match(name) for p in patterns):
                return row
    advertised = set()
    for uuid in service_uuids:
        try:
            advertised.add(normalize_uuid(uuid))
        except ValueError:
            continue
    for row in _GENERIC:
        if advertised.intersection(row.service_uuids):
            return row
    return None


def quirks_for(manufacturer: str | None, model: str | None) -> tuple[str, ...]:
    """The quirk names to apply for a device, from its DIS strings (empty when unknown)."""
    row = find_model(manufacturer, model)
    return () if row is None else row.quirks
