"""Device readings → FHIR R4 resources (the Transform stage). Pure: values in, values out.

What a reading becomes (fhir-mapping-and-anchors.md §1-§2; PHD IG + FHIR vital signs + KR Core):

- one Observation per measured quantity; the blood-pressure panel (85354-9 / MDC 150020) with
  systolic, diastolic and mean components; pulse its own Observation; device status bits
  (BLS measurement status 8410608, glucose sensor status 8417752) their own
  ``PhdBitsEnumerationObservation`` with ``derivedFrom`` → the measurement;
- glucose with its meal context as a ``PhdCodedEnumerationObservation`` (8417864);
  a control-solution result is a device QC Observation (subject = the Device), never the
  resident's glucose;
- BMI computed when the record carries weight and height and no device BMI (``derivedFrom``
  both, no ``device``);
- ``dataAbsentReason`` for IEEE-11073 special values (FLOATS.md), ``interpretation`` =
  ``questionable`` (PoCD measurement-status) for values outside physiological ranges;
- ``meta.profile``, categories, LOINC + MDC codings, UCUM units, the gateway-device extension,
  Device and Patient references, times in Korea time (``+09:00``);
- ``identifier`` = the PHD conditional-create key built from the *raw* device time
  (``device-patient-type-timestamp``, :func:`observation_identifier`), and a deterministic
  resource id (UUIDv5 of the identifier), so replays and whole-memory resends dedup;
- a coincident-timestamp Observation (MDC 67975) whenever a device clock was corrected.

Values keep the precision the device sent (``ingest.fhirjson``). Mapping tables are data
(:data:`QUANTITIES`, :data:`BITS`, ...), in the manner of bthome-ble's ``const.py``.

Hot path: resources are rendered from cached :class:`~ingest.fhirjson.Template` objects (one per
shape), not by building and validating ``fhir.resources`` models per reading (about 0.5 ms to
validate and 1 ms to dump one Observation on this machine, which would cap ingest near 1,000
readings per second per core). The tests validate every shape against the R4B models
(:func:`validate`) and check the template fill against the dict build.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from json.encoder import encode_basestring
from typing import Any, Final, NamedTuple

from devices.model import Component, Kind, Measurement, Special
from ingest.bounds import out_of_bounds
from ingest.errors import HeldForReview, Reason, RejectedReading
from ingest.fhirjson import Template, canonical, decimal_text, dumps, loads

# --- systems and profiles ---------------------------------------------------------------------

KST: Final = timezone(timedelta(hours=9))
_EPOCH_2000: Final = datetime(2000, 1, 1)

MDC: Final = "urn:iso:std:iso:11073:10101"
LOINC: Final = "http://loinc.org"
UCUM: Final = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
PHD_CATEGORY: Final = "http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories"
DATA_ABSENT_REASON: Final = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
ASN1_TO_HL7: Final = "http://hl7.org/fhir/uv/phd/CodeSystem/ASN1ToHL7"
V2_0136: Final = "http://terminology.hl7.org/CodeSystem/v2-0136"
MEASUREMENT_STATUS: Final = "http://hl7.org/fhir/uv/pocd/CodeSystem/measurement-status"
GATEWAY_EXTENSION: Final = "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice"
COINCIDENT_EXTENSION: Final = (
    "http://hl7.org/fhir/uv/phd/StructureDefinition/CoincidentTimeStampReference"
)
PHD_IDENTIFIER_SYSTEM: Final = "http://hl7.org/fhir/uv/phd/StructureDefinition/PhdBaseObservation"
GLUCOSE_RECORD_SYSTEM: Final = "urn:daon:sid:glucose-record"  # device + BLE sequence number
BTMAC_SYSTEM: Final = "http://hl7.org/fhir/sid/eui-48/bluetooth"
EUI64_SYSTEM: Final = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680"
CONTINUA_DEVICE_IDENTIFIERS: Final = (
    "http://terminology.hl7.org/CodeSystem/ContinuaDeviceIdentifiers"
)

_CORE: Final = "http://hl7.org/fhir/StructureDefinition/"
_PHD: Final = "http://hl7.org/fhir/uv/phd/StructureDefinition/"
_KR: Final = "http://www.hl7korea.or.kr/fhir/krcore/StructureDefinition/"
PHD_NUMERIC: Final = _PHD + "PhdNumericObservation"
PHD_COMPOUND_NUMERIC: Final = _PHD + "PhdCompoundNumericObservation"
PHD_COMPOUND: Final = _PHD + "PhdCompoundObservation"
PHD_BITS: Final = _PHD + "PhdBitsEnumerationObservation"
PHD_CODED: Final = _PHD + "PhdCodedEnumerationObservation"
PHD_COINCIDENT: Final = _PHD + "PhdCoincidentTimeStampObservation"
PHD_DEVICE: Final = _PHD + "PhdDevice"
PHG_DEVICE: Final = _PHD + "PhgDevice"

# Fixed namespace of our deterministic resource ids: uuid5(NAMESPACE_URL, "urn:daon:observation").
ID_NAMESPACE: Final = bytes.fromhex("5b1b6f1e0d2a5a2f9a64f3b7a9a2c1d0")


# --- mapping tables ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Coding:
    system: str
    code: str
    display: str | None = None


@dataclass(frozen=True, slots=True)
class Concept:
    """A CodeableConcept: codings in order, and a text (Korean first, then English)."""

    codings: tuple[Coding, ...]
    text: str | None = None

    @property
    def mdc(self) -> str:
        """The MDC code (the PHD identifier's *type*); every device observation has one."""
        for coding in self.codings:
            if coding.system == MDC:
                return coding.code
        raise LookupError("concept has no MDC coding")

    @property
    def primary(self) -> Coding:
        """LOINC where one exists, else the first coding (the ``observation.code`` column)."""
        for coding in self.codings:
            if coding.system == LOINC:
                return coding
        return self.codings[0]


def _mdc(code: str, ref: str) -> Coding:
    return Coding(MDC, code, ref)


def _loinc(code: str, display: str) -> Coding:
    return Coding(LOINC, code, display)


@dataclass(frozen=True, slots=True)
class Quantity:
    """How one device component becomes an Observation (or a panel component)."""

    concept: Concept
    category: str  # "vital-signs" | "laboratory" | "exam"
    profiles: tuple[str, ...]  # claimed with the PHD profile
    kr_profile: str | None = None  # KR Core profile, claimed only in its pinned unit
    kr_unit: str | None = None
    hard: tuple[Decimal, Decimal] | None = None  # outside: impossible (dead letter)
    plausible: tuple[Decimal, Decimal] | None = None  # outside: interpretation questionable


def _range(low: str, high: str) -> tuple[Decimal, Decimal]:
    return (Decimal(low), Decimal(high))


BP_PANEL: Final = Concept(
    (
        _mdc("150020", "MDC_PRESS_BLD_NONINV"),
        _loinc("85354-9", "Blood pressure panel with all children optional"),
    ),
    "혈압 (Blood pressure)",
)

#: component code (devices.model.COMPONENT_CODES) → mapping. Ranges are in the stored unit
#: (mm[Hg], /min, mg/dL, kg, cm, %, kJ, Ohm, Cel).
QUANTITIES: Final[dict[str, Quantity]] = {
    "systolic": Quantity(
        Concept(
            (
                _loinc("8480-6", "Systolic blood pressure"),
                _mdc("150021", "MDC_PRESS_BLD_NONINV_SYS"),
            ),
            "수축기 혈압 (Systolic blood pressure)",
        ),
        "vital-signs",
        (),
        hard=_range("0", "400"),
        plausible=_range("50", "300"),
    ),
    "diastolic": Quantity(
        Concept(
            (
                _loinc("8462-4", "Diastolic blood pressure"),
                _mdc("150022", "MDC_PRESS_BLD_NONINV_DIA"),
            ),
            "이완기 혈압 (Diastolic blood pressure)",
        ),
        "vital-signs",
        (),
        hard=_range("0", "400"),
        plausible=_range("20", "200"),
    ),
    "mean": Quantity(
        Concept(
            (_mdc("150023", "MDC_PRESS_BLD_NONINV_MEAN"), _loinc("8478-0", "Mean blood pressure")),
            "평균 동맥압 (Mean blood pressure)",
        ),
        "vital-signs",
        (),
        hard=_range("0", "400"),
        plausible=_range("30", "250"),
    ),
    "pulse": Quantity(
        Concept(
            (_mdc("149546", "MDC_PULS_RATE_NON_INV"), _loinc("8867-4", "Heart rate")),
            "맥박 (Heart rate)",
        ),
        "vital-signs",
        (_CORE + "heartrate",),
        _KR + "krcore-heartrate",
        "/min",
        hard=_range("0", "350"),
        plausible=_range("25", "250"),
    ),
    "weight": Quantity(
        Concept(
            (_mdc("188736", "MDC_MASS_BODY_ACTUAL"), _loinc("29463-7", "Body weight")),
            "체중 (Body weight)",
        ),
        "vital-signs",
        (_CORE + "bodyweight",),
        _KR + "krcore-bodyweight",
        "kg",
        hard=_range("0", "500"),
        plausible=_range("2", "350"),
    ),
    "height": Quantity(
        Concept(
            (_mdc("188740", "MDC_LEN_BODY_ACTUAL"), _loinc("8302-2", "Body height")),
            "신장 (Body height)",
        ),
        "vital-signs",
        (_CORE + "bodyheight",),
        _KR + "krcore-bodyheight",
        "cm",
        hard=_range("0", "300"),
        plausible=_range("50", "250"),
    ),
    "bmi": Quantity(
        Concept(
            (
                _mdc("188752", "MDC_RATIO_MASS_BODY_LEN_SQ"),
                _loinc("39156-5", "Body mass index (BMI) [Ratio]"),
            ),
            "체질량지수 (Body mass index)",
        ),
        "vital-signs",
        (_CORE + "bmi",),
        hard=_range("0", "200"),
        plausible=_range("8", "80"),
    ),
    "body_fat": Quantity(
        Concept(
            (_mdc("188748", "MDC_BODY_FAT"), _loinc("41982-0", "Percentage of body fat Measured")),
            "체지방률 (Body fat percentage)",
        ),
        "exam",
        (),
        hard=_range("0", "100"),
        plausible=_range("2", "75"),
    ),
    "basal_metabolism": Quantity(
        Concept((_mdc("188768", "MDC_BASAL_METABOLISM"),), "기초대사량 (Basal metabolism)"),
        "exam",
        (),
        hard=_range("0", "60000"),
    ),
    "muscle_pct": Quantity(
        Concept(
            (
                _mdc("188772", "MDC_BODY_MUSCLE"),
                _loinc("73965-6", "Body muscle mass/Body weight Measured"),
            ),
            "근육률 (Muscle percentage)",
        ),
        "exam",
        (),
        hard=_range("0", "100"),
    ),
    "muscle_mass": Quantity(
        Concept(
            (
                _mdc("188776", "MDC_MASS_BODY_MUSCLE"),
                _loinc("73964-9", "Body muscle mass Calculated"),
            ),
            "근육량 (Muscle mass)",
        ),
        "exam",
        (),
        hard=_range("0", "500"),
    ),
    "fat_free_mass": Quantity(
        Concept((_mdc("188756", "MDC_MASS_BODY_FAT_FREE"),), "제지방량 (Fat-free mass)"),
        "exam",
        (),
        hard=_range("0", "500"),
    ),
    "soft_lean_mass": Quantity(
        Concept((_mdc("188760", "MDC_MASS_BODY_SOFT_LEAN"),), "연조직량 (Soft lean mass)"),
        "exam",
        (),
        hard=_range("0", "500"),
    ),
    "body_water_mass": Quantity(
        Concept(
            (_mdc("188764", "MDC_BODY_WATER"), _loinc("101683-1", "Body water mass")),
            "체수분량 (Body water mass)",
        ),
        "exam",
        (),
        hard=_range("0", "500"),
    ),
    "impedance": Quantity(
        Concept(
            (_mdc("188780", "MDC_BODY_ELECTRICAL_IMPEDANCE"),),
            "생체 임피던스 (Bio-electrical impedance)",
        ),
        "exam",
        (),
        hard=_range("0", "10000"),
    ),
    "temperature": Quantity(
        Concept(
            (_mdc("150364", "MDC_TEMP_BODY"), _loinc("8310-5", "Body temperature")),
            "체온 (Body temperature)",
        ),
        "vital-signs",
        (_CORE + "bodytemp",),
        hard=_range("0", "60"),
        plausible=_range("30", "45"),
    ),
}

# Glucose: LOINC by unit, MDC by the BLE sample type (fhir-mapping-and-anchors.md §1.1).
_GLUCOSE_LOINC: Final = {
    "mg/dL": _loinc("41653-7", "Glucose [Mass/volume] in Capillary blood by Glucometer"),
    "mmol/L": _loinc("14743-9", "Glucose [Moles/volume] in Capillary blood by Glucometer"),
}
_GLUCOSE_LOINC_BLOOD: Final = {
    "mg/dL": _loinc("2339-0", "Glucose [Mass/volume] in Blood"),
    "mmol/L": _loinc("15074-8", "Glucose [Moles/volume] in Blood"),
}
_GLUCOSE_FASTING_LOINC: Final = {
    "mg/dL": _loinc("41604-0", "Fasting glucose [Mass/volume] in Capillary blood by Glucometer"),
    "mmol/L": _loinc("14770-2", "Fasting glucose [Moles/volume] in Capillary blood by Glucometer"),
}
_GLUCOSE_MDC: Final = {
    "capillary_whole_blood": _mdc("160184", "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD"),
    "capillary_plasma": _mdc("160188", "MDC_CONC_GLU_CAPILLARY_PLASMA"),
    "undetermined_whole_blood": _mdc("160364", "MDC_CONC_GLU_UNDETERMINED_WHOLEBLOOD"),
    "undetermined_plasma": _mdc("160368", "MDC_CONC_GLU_UNDETERMINED_PLASMA"),
}
_GLUCOSE_BY_CALIBRATION: Final = {
    "whole_blood": "undetermined_whole_blood",
    "plasma": "undetermined_plasma",
}
_GLUCOSE_GENERIC_MDC: Final = _mdc("160020", "MDC_CONC_GLU_GEN")
GLUCOSE_TEXT: Final = "혈당 (Blood glucose)"
GLUCOSE_RANGES: Final = {
    "mg/dL": (_range("0", "2000"), _range("10", "800")),
    "mmol/L": (_range("0", "111"), _range("0.6", "44.4")),
}
GLUCOSE_CONTROL: Final = Concept(
    (_mdc("160208", "MDC_CONC_GLU_CONTROL"),),
    "혈당 측정기 정도관리 용액 (Glucose control solution)",
)

MEAL_CONTEXT: Final = Concept((_mdc("8417864", "MDC_CTXT_GLU_MEAL"),), "식사 상태 (Meal context)")
#: devices meal names → MDC meal-context codes (8417864 + 4n; bedtime's code is unconfirmed [U]).
MEALS: Final[dict[str, Concept]] = {
    "preprandial": Concept(
        (_mdc("8417868", "MDC_CTXT_GLU_MEAL_PREPRANDIAL"),), "식전 (Before meal)"
    ),
    "postprandial": Concept(
        (_mdc("8417872", "MDC_CTXT_GLU_MEAL_POSTPRANDIAL"),), "식후 (After meal)"
    ),
    "fasting": Concept((_mdc("8417876", "MDC_CTXT_GLU_MEAL_FASTING"),), "공복 (Fasting)"),
    "casual": Concept((_mdc("8417880", "MDC_CTXT_GLU_MEAL_CASUAL"),), "수시 (Casual)"),
    "bedtime": Concept((_mdc("8417908", "MDC_CTXT_GLU_MEAL_BEDTIME"),), "취침 전 (Bedtime)"),
}


@dataclass(frozen=True, slots=True)
class BitsTable:
    """A device status word reported as a PhdBitsEnumerationObservation."""

    concept: Concept
    bits: Mapping[str, tuple[str, str]]  # devices status name → (ASN1ToHL7 code, display)


#: Status words by measurement kind; names are the cli-decode.md status vocabulary.
BITS: Final[dict[Kind, BitsTable]] = {
    Kind.BLOOD_PRESSURE: BitsTable(
        Concept(
            (_mdc("8410608", "MDC_BLOOD_PRESSURE_MEASUREMENT_STATUS"),),
            "혈압 측정 상태 (Blood pressure measurement status)",
        ),
        {
            "body_movement": ("8410608.0", "body-movement"),
            "cuff_too_loose": ("8410608.1", "cuff-too-loose"),
            "irregular_pulse": ("8410608.2", "irregular-pulse"),
            "pulse_rate_exceeds_upper_limit": ("8410608.3", "pulse-over-range-limit"),
            "pulse_rate_below_lower_limit": ("8410608.4", "pulse-under-range-limit"),
            "improper_measurement_position": ("8410608.5", "improper-body-position"),
        },
    ),
    Kind.GLUCOSE: BitsTable(
        Concept(
            (_mdc("8417752", "MDC_GLU_METER_DEV_STATUS"),),
            "혈당 측정기 상태 (Glucose meter status)",
        ),
        {
            "device_battery_low": ("8417752.0", "device-battery-low"),
            "sensor_malfunction": ("8417752.1", "sensor-malfunction"),
            "sample_size_insufficient": ("8417752.2", "sensor-sample-size-insufficient"),
            "strip_insertion_error": ("8417752.3", "sensor-strip-insertion"),
            "strip_type_incorrect": ("8417752.4", "sensor-strip-type-incorrect"),
            "result_higher_than_device_can_process": ("8417752.5", "sensor-result-too-high"),
            "result_lower_than_device_can_process": ("8417752.6", "sensor-result-too-low"),
            "sensor_temperature_too_high": ("8417752.7", "sensor-temp-too-high"),
            "sensor_temperature_too_low": ("8417752.8", "sensor-temp-too-low"),
            "sensor_read_interrupted": ("8417752.9", "sensor-read-interrupt"),
            "general_device_fault": ("8417752.10", "device-gen-fault"),
        },
    ),
}
#: Status names that make the measurement itself questionable rather than a bit to report.
QUESTIONABLE_STATUS: Final = frozenset({"time_fault"})

#: IEEE-11073 special values → data-absent-reason (HL7 PHD FLOATS.md).
ABSENT: Final[dict[Special, tuple[str, str]]] = {
    Special.NAN: ("not-a-number", "Not a Number (NaN)"),
    Special.POSITIVE_INFINITY: ("positive-infinity", "Positive Infinity (+Inf)"),
    Special.NEGATIVE_INFINITY: ("negative-infinity", "Negative Infinity (-Inf)"),
    Special.NRES: ("error", "Error"),
    Special.RESERVED: ("error", "Error"),
}

COINCIDENT: Final = Concept((_mdc("67975", "MDC_ATTR_TIME_ABS"),), "측정기 시계 (Absolute time)")

#: Status markers from devices.quirks.NOT_A_RESULT; control solution is a device QC record.
CONTROL_SOLUTION: Final = "control_solution"
_NOT_A_RESULT: Final = frozenset(
    {"ketone", "memory_full_placeholder", "live_value", "measurement_unsuccessful"}
)

_KPA_TO_MMHG: Final = Decimal("7.50062")  # 1 kPa = 7.50062 mmHg (mapping table)
_UNIT_TEXT: Final = {"kPa": "kPa", "mm[Hg]": "mmHg"}


# --- reading context --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Clock:
    """The device's clock as the gateway read it at connection, and the gateway's own time."""

    device: datetime  # naive: the device's wall clock
    gateway: datetime  # aware


@dataclass(frozen=True, slots=True)
class ReadingContext:
    """Everything about a reading that is not in its bytes.

    ``patient`` is the bound resident (None = unbound); ``binding`` how (``check-in``,
    ``registry``, ``staff``); ``performer`` a Practitioner reference for manual entry (then
    the reading is out of PHD scope: no device, no gateway, a note says so).
    """

    device_id: str
    gateway_id: str
    received_at: datetime
    patient: str | None = None
    binding: str | None = None
    centre_id: str | None = None
    clock: Clock | None = None
    station_id: str | None = None
    reading_id: str | None = None
    performer: str | None = None
    setting: str | None = None  # "centre" | "home" | "visit" (for the clinical runner)
    session: str | None = None  # the check-in session that bound the reading (provenance)


@dataclass(frozen=True, slots=True)
class Policy:
    """When a time cannot be right: later than reception or far in the past (§2.1, ble §6)."""

    future_tolerance: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=730)
    earliest: datetime = datetime(2010, 1, 1, tzinfo=KST)
    # |device − gateway| below this: no correction
    clock_tolerance: timedelta = timedelta(seconds=1)


DEFAULT_POLICY: Final = Policy()


class StoredObservation(NamedTuple):
    """One Observation as stored: typed columns for queries and the resource as JSON text.

    A NamedTuple rather than a dataclass on purpose: it is built tens of thousands of times a
    second and its field order is the ``observation`` table's column order, so the store hands
    it to binary COPY as is.
    """

    id: str
    effective_at: datetime
    resident_id: str | None
    code: str
    code_system: str
    value: float | None
    unit: str | None
    component_values: str | None  # JSON object text, e.g. {"8480-6":120,"8462-4":80}
    device_id: str | None
    gateway_id: str | None
    centre_id: str | None
    status: str
    identifier: str
    resource: str  # canonical JSON text (ingest.fhirjson)
    received_at: datetime | None
    quality: tuple[str, ...] | None = None  # device status names, "questionable"
    context: str | None = None  # JSON object text: meal, sample, setting, user_index, sequence

    def resource_dict(self) -> dict[str, Any]:
        """The resource as a dict (numbers as Decimal/int)."""
        value: dict[str, Any] = loads(self.resource)
        return value


@dataclass(frozen=True, slots=True)
class UnboundRecord:
    """What the staff queue shows for a reading that is not (yet) an Observation."""

    reason: Reason
    detail: str
    kind: str
    device_id: str
    gateway_id: str
    station_id: str | None
    measured_at: datetime | None
    received_at: datetime
    values: tuple[tuple[str, str | None, str, str | None], ...]  # (code, value, unit, special)
    summary: str  # Korean first, then English
    suggested_resident: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "unbound": True,
            "reason": self.reason.value,
            "detail": self.detail,
            "kind": self.kind,
            "device": self.device_id,
            "gateway": self.gateway_id,
            "station": self.station_id,
            "measured_at": _iso(self.measured_at) if self.measured_at else None,
            "received_at": _iso(self.received_at),
            "values": [
                {"code": code, "value": value, "unit": unit, "special": special}
                for code, value, unit, special in self.values
            ],
            "summary": self.summary,
            "suggested_resident": self.suggested_resident,
        }


# --- small pure helpers ------------------------------------------------------------------------

_MAC_RE: Final = re.compile(r"^[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}$")
_HEX_RE: Final = re.compile(r"^(?:[0-9A-Fa-f]{12}|[0-9A-Fa-f]{16})$")
_ID_RE: Final = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_NOT_ID_CHAR: Final = re.compile(r"[^A-Za-z0-9.]")


def device_key(device_id: str) -> str:
    """The PHD identifier's *device* part: EUI-48/EUI-64 as upper-case hex without separators.

    Ids that are not hardware addresses (a serial number) keep their letters and digits; any
    other character becomes ``.`` so the dash-separated identifier stays unambiguous.
    """
    if _MAC_RE.match(device_id):
        return device_id.replace(":", "").replace("-", "").upper()
    if _HEX_RE.match(device_id):
        return device_id.upper()
    return _NOT_ID_CHAR.sub(".", device_id)[:60] or "unknown"


def device_reference(device_id: str) -> str:
    return f"Device/phd-{device_key(device_id)}"


def gateway_reference(gateway_id: str) -> str:
    plain = _ID_RE.match(gateway_id) and len(gateway_id) <= 60
    key = gateway_id if plain else device_key(gateway_id)
    return f"Device/phg-{key}"


def patient_reference(resident_id: str) -> str:
    if not _ID_RE.match(resident_id):
        raise RejectedReading(
            Reason.UNKNOWN_RESIDENT, f"resident id {resident_id!r} is not a valid FHIR id"
        )
    return f"Patient/{resident_id}"


def resource_id(identifier: str) -> str:
    """UUIDv5 (RFC 4122 §4.3, SHA-1) of the identifier in :data:`ID_NAMESPACE`."""
    h = hashlib.sha1(ID_NAMESPACE + identifier.encode()).hexdigest()
    variant = _VARIANT[h[16]]
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


# RFC 4122 variant bits (10xx) over the top nibble of byte 8
_VARIANT: Final = {f"{n:x}": f"{(n & 0x3) | 0x8:x}" for n in range(16)}


def time_token(device_time: datetime) -> str:
    """The PHD reported timestamp as seconds since 2000-01-01 (GeneratingtheTimeStampPart…).

    BLE Date Time has one-second resolution, so the token is an integer. The device's wall
    clock is used as sent (no zone, no correction): two gateways with different corrections
    still produce the same identifier.
    """
    naive = (
        device_time.replace(tzinfo=None)
        if device_time.tzinfo is None
        else (device_time.astimezone(KST).replace(tzinfo=None))
    )
    seconds = (naive - _EPOCH_2000) // timedelta(seconds=1)
    return str(seconds)


def reception_token(received_at: datetime) -> str:
    """Identifier time part for a reading without a device time: the reception time (ms), marked."""
    local = _kst(received_at).replace(tzinfo=None)
    millis = (local - _EPOCH_2000) // timedelta(milliseconds=1)
    return f"r{millis // 1000}.{millis % 1000:03d}"


def observation_identifier(device_id: str, patient: str | None, mdc: str, token: str) -> str:
    """``device-patient-type-timestamp`` (PhdBaseObservation conditional create, §2.4).

    The patient is part of the key so a shared station device dedups per resident; device
    observations (QC, coincident time) have no patient part.
    """
    if patient is None:
        return f"{device_key(device_id)}-{mdc}-{token}"
    return f"{device_key(device_id)}-{patient}-{mdc}-{token}"


def _kst(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=KST)
    return moment.astimezone(KST)


def _iso(moment: datetime) -> str:
    """FHIR dateTime in Korea time, seconds precision (no DST in Korea)."""
    return _kst(moment).replace(microsecond=0).isoformat()


# --- resource builders (shape + slots) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuantityValue:
    unit: str  # UCUM code, also the display unit


@dataclass(frozen=True, slots=True)
class AbsentValue:
    code: str
    display: str


@dataclass(frozen=True, slots=True)
class CodedValue:
    concept: Concept


@dataclass(frozen=True, slots=True)
class YesValue:
    """A set bit of a BITs observation: v2-0136 ``Y``."""


@dataclass(frozen=True, slots=True)
class DateTimeValue:
    pass


ValueShape = QuantityValue | AbsentValue | CodedValue | YesValue | DateTimeValue


@dataclass(frozen=True, slots=True)
class ComponentShape:
    concept: Concept
    value: ValueShape


@dataclass(frozen=True, slots=True)
class ObservationShape:
    """Everything about an Observation that does not vary from reading to reading.

    Slots (per reading): ``id``, ``identifier``, ``identifier2``, ``subject``, ``effective``,
    ``issued``, ``value``, ``device``, ``gateway``, ``coincident``, ``performer``, ``derived0``…,
    ``c0``… (component values). The builder only places slot values.
    """

    profiles: tuple[str, ...]
    categories: tuple[str, ...]
    concept: Concept
    value: ValueShape | None = None
    components: tuple[ComponentShape, ...] = ()
    subject_is_device: bool = False
    performer: str | None = None  # None | "subject" | "practitioner"
    gateway: bool = True
    coincident: bool = False
    second_identifier: str | None = None
    issued: bool = False
    interpretation: str | None = None
    note: str | None = None  # constant text (manual entry, unit conversion)
    device: str | None = "phd"  # "phd" | "phg" | None
    derived: int = 0
    status: str = "final"


_CATEGORY_TEXT: Final = {
    "vital-signs": "Vital Signs",
    "laboratory": "Laboratory",
    "exam": "Exam",
}


def _category(key: str) -> dict[str, Any]:
    if key == "phd":
        return {"coding": [{"system": PHD_CATEGORY, "code": "phd"}]}
    return {
        "coding": [{"system": OBSERVATION_CATEGORY, "code": key, "display": _CATEGORY_TEXT[key]}],
        "text": _CATEGORY_TEXT[key],
    }


def _coding(coding: Coding) -> dict[str, Any]:
    out: dict[str, Any] = {"system": coding.system, "code": coding.code}
    if coding.display is not None:
        out["display"] = coding.display
    return out


def _concept(concept: Concept) -> dict[str, Any]:
    out: dict[str, Any] = {"coding": [_coding(c) for c in concept.codings]}
    if concept.text is not None:
        out["text"] = concept.text
    return out


def _place_value(out: dict[str, Any], shape: ValueShape, s: Mapping[str, Any], key: str) -> None:
    """Put the value[x] (or dataAbsentReason) of ``shape``; reads slot ``key`` only if used."""
    if isinstance(shape, QuantityValue):
        out["valueQuantity"] = {
            "value": s[key],
            "unit": shape.unit,
            "system": UCUM,
            "code": shape.unit,
        }
    elif isinstance(shape, AbsentValue):
        out["dataAbsentReason"] = {
            "coding": [{"system": DATA_ABSENT_REASON, "code": shape.code, "display": shape.display}]
        }
    elif isinstance(shape, CodedValue):
        out["valueCodeableConcept"] = _concept(shape.concept)
    elif isinstance(shape, YesValue):
        out["valueCodeableConcept"] = {"coding": [{"system": V2_0136, "code": "Y"}]}
    else:
        out["valueDateTime"] = s[key]


def build_observation(shape: ObservationShape, s: Mapping[str, Any]) -> dict[str, Any]:
    """The Observation dict for ``shape`` with slot values ``s`` (keys in FHIR order)."""
    r: dict[str, Any] = {
        "resourceType": "Observation",
        "id": s["id"],
        "meta": {"profile": list(shape.profiles)},
    }
    extensions = []
    if shape.gateway:
        extensions.append({"url": GATEWAY_EXTENSION, "valueReference": {"reference": s["gateway"]}})
    if shape.coincident:
        extensions.append(
            {"url": COINCIDENT_EXTENSION, "valueReference": {"reference": s["coincident"]}}
        )
    if extensions:
        r["extension"] = extensions
    identifiers = [{"system": PHD_IDENTIFIER_SYSTEM, "value": s["identifier"]}]
    if shape.second_identifier is not None:
        identifiers.append({"system": shape.second_identifier, "value": s["identifier2"]})
    r["identifier"] = identifiers
    r["status"] = shape.status
    if shape.categories:
        r["category"] = [_category(key) for key in shape.categories]
    r["code"] = _concept(shape.concept)
    r["subject"] = {"reference": s["subject"]}
    r["effectiveDateTime"] = s["effective"]
    if shape.issued:
        r["issued"] = s["issued"]
    if shape.performer == "subject":
        r["performer"] = [{"reference": s["subject"]}]
    elif shape.performer == "practitioner":
        r["performer"] = [{"reference": s["performer"]}]
    if shape.value is not None:
        _place_value(r, shape.value, s, "value")
    if shape.interpretation is not None:
        r["interpretation"] = [
            {"coding": [{"system": MEASUREMENT_STATUS, "code": shape.interpretation}]}
        ]
    if shape.note is not None:
        r["note"] = [{"text": shape.note}]
    if shape.device == "phd":
        r["device"] = {"reference": s["device"]}
    elif shape.device == "phg":
        r["device"] = {"reference": s["gateway"]}
    if shape.derived:
        r["derivedFrom"] = [{"reference": s[f"derived{i}"]} for i in range(shape.derived)]
    if shape.components:
        components = []
        for index, component in enumerate(shape.components):
            entry: dict[str, Any] = {"code": _concept(component.concept)}
            _place_value(entry, component.value, s, f"c{index}")
            components.append(entry)
        r["component"] = components
    return r


_TEMPLATES: dict[ObservationShape, Template] = {}


def template(shape: ObservationShape) -> Template:
    """The cached template of ``shape`` (built on first use)."""
    cached = _TEMPLATES.get(shape)
    if cached is None:
        cached = Template(lambda slots: build_observation(shape, slots))
        _TEMPLATES[shape] = cached
    return cached


# --- timing ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timing:
    effective_at: datetime  # aware, Korea time, whole seconds
    token: str  # identifier time part (raw device time)
    corrected_by: timedelta | None  # gateway − device, when a correction applied


def _naive_local(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(KST).replace(tzinfo=None)


def clock_offset(clock: Clock | None) -> timedelta | None:
    """gateway − device at connection, whole seconds; None without a clock sample."""
    if clock is None:
        return None
    offset = _naive_local(_kst(clock.gateway)) - _naive_local(clock.device)
    return timedelta(seconds=round(offset.total_seconds()))


def place_in_time(
    measurement: Measurement, ctx: ReadingContext, policy: Policy = DEFAULT_POLICY
) -> Timing:
    """Effective time, identifier token and correction of one record (§2.1).

    No device time (a cuff in live mode): reception time, no correction. With a clock sample
    that differs: the device time moved by the offset (and a coincident-timestamp Observation).
    A time that still cannot be right raises :class:`HeldForReview`.
    """
    received = _kst(ctx.received_at)
    if measurement.device_time is None:
        return Timing(received.replace(microsecond=0), reception_token(received), None)
    naive = _naive_local(measurement.device_time)
    token = str((naive - _EPOCH_2000) // _SECOND)
    offset = clock_offset(ctx.clock)
    corrected = None
    if offset is not None and abs(offset) >= policy.clock_tolerance:
        naive = naive + offset
        corrected = offset
    effective = naive.replace(tzinfo=KST, microsecond=0)
    if effective > received + policy.future_tolerance:
        raise HeldForReview(
            Reason.IMPLAUSIBLE_TIME,
            f"측정 시각 {_iso(effective)}이(가) 수신 시각 {_iso(received)}보다 늦습니다 "
            f"(measured after it was received; device clock ahead)",
        )
    if effective < policy.earliest or effective < received - policy.max_age:
        raise HeldForReview(
            Reason.IMPLAUSIBLE_TIME,
            f"측정 시각 {_iso(effective)}이(가) 너무 이릅니다 (measured too long before "
            f"{_iso(received)}; device clock reset?)",
        )
    return Timing(effective, token, corrected)


_SECOND: Final = timedelta(seconds=1)


# --- planning: a recipe per record structure, filled per reading -------------------------------
#
# A record is first *prepared*: units converted, values checked, and everything the resources'
# structure depends on collected in a hashable Structure. The Structure is compiled once into a
# Recipe (shapes, templates, which value goes in which slot); each reading then only fills
# identifiers, ids, times, references and values into the cached templates.


# Entry and Structure are NamedTuples, not dataclasses: they are built for every reading and
# used as cache keys, and tuples construct and hash in C.


class Entry(NamedTuple):
    """One quantity of a record after unit conversion: what the structure depends on."""

    code: str
    unit: str
    special: Special | None
    questionable: bool


class Structure(NamedTuple):
    """Everything the resources of a record depend on except the values themselves."""

    kind: Kind
    entries: tuple[Entry, ...]
    bits: tuple[str, ...] = ()
    sample: str | None = None
    meal: str | None = None
    sequence: bool = False
    control: bool = False
    kpa: bool = False
    panel_questionable: bool = False
    bmi: Entry | None = None


class Variant(NamedTuple):
    """What the resources of a record depend on from its context rather than its bytes."""

    corrected: bool = False
    performer: str | None = None  # "subject" | "practitioner" | None
    manual: bool = False


@dataclass(frozen=True, slots=True)
class ObsRecipe:
    """How to fill one Observation of a Structure."""

    shape: ObservationShape
    template: Template
    mdc: str
    code: str
    code_system: str
    unit: str | None
    value_key: str | None  # the typed ``value`` column
    slots: tuple[tuple[str, str], ...]  # (slot name, values key) for numbers
    columns: tuple[tuple[str, str], ...]  # component_values: (LOINC or MDC code, values key)
    derived: tuple[int, ...] = ()  # indexes of earlier Observations of the same record
    device_obs: bool = False  # subject is the device: no patient in identifier or column


@dataclass(frozen=True, slots=True)
class Plan:
    """One Observation planned: its shape, slot values and typed columns."""

    recipe: ObsRecipe
    slots: dict[str, str | Decimal]
    identifier: str
    id: str
    effective_at: datetime
    resident_id: str | None
    component_values: str | None

    @property
    def shape(self) -> ObservationShape:
        return self.recipe.shape

    def resource_text(self) -> str:
        return self.recipe.template.fill(self.slots)

    def resource_dict(self) -> dict[str, Any]:
        return build_observation(self.recipe.shape, self.slots)


def _bounds_check(
    code: str, value: Decimal, bounds: tuple[Decimal, Decimal] | None, unit: str
) -> None:
    if bounds is not None and not bounds[0] < value <= bounds[1]:
        raise RejectedReading(
            Reason.IMPOSSIBLE_VALUE,
            f"{code} {value} {unit} 값이 불가능합니다 (impossible value; allowed "
            f"{bounds[0]} < v ≤ {bounds[1]})",
        )


def _questionable(value: Decimal, bounds: tuple[Decimal, Decimal] | None) -> bool:
    return bounds is not None and not bounds[0] <= value <= bounds[1]


def _checked(
    code: str,
    value: Decimal | None,
    unit: str,
    bounds: tuple[tuple[Decimal, Decimal] | None, tuple[Decimal, Decimal] | None],
    values: dict[str, Decimal],
) -> bool:
    """Check a value (impossible → RejectedReading), store it; True when questionable."""
    if value is None:
        return False
    _bounds_check(code, value, bounds[0], unit)
    values[code] = value
    return _questionable(value, bounds[1])


def _bits_of(kind: Kind, status: Sequence[str]) -> tuple[str, ...]:
    if not status:
        return ()
    table = BITS.get(kind)
    if table is None:
        return ()
    return tuple(name for name in status if name in table.bits)


_BP_CODES: Final = ("systolic", "diastolic", "mean", "pulse")


def _prepare_bp(m: Measurement, values: dict[str, Decimal]) -> Structure:
    by_code = {c.code: c for c in m.components}
    entries: list[Entry] = []
    kpa = False
    panel_q = False
    for code in _BP_CODES:
        comp = by_code.get(code)
        if comp is None:
            continue
        unit, value = comp.unit, comp.value
        if code != "pulse":
            if unit == "kPa":
                kpa, unit = True, "mm[Hg]"
                if value is not None:
                    value = (value * _KPA_TO_MMHG).quantize(Decimal(1), ROUND_HALF_EVEN)
            elif unit != "mm[Hg]":
                raise RejectedReading(Reason.UNSUPPORTED, f"blood pressure unit {unit!r}")
            if code == "mean" and value is not None and not value:
                continue  # the device did not compute a MAP (Beurer BM85 sends 0)
        elif unit != "/min":
            raise RejectedReading(Reason.UNSUPPORTED, f"pulse rate unit {unit!r}")
        mapping = QUANTITIES[code]
        questionable = _checked(code, value, unit, (mapping.hard, mapping.plausible), values)
        if questionable and code != "pulse":
            panel_q = True
        entries.append(Entry(code, unit, comp.special, questionable))
    if "systolic" not in by_code or "diastolic" not in by_code:
        raise RejectedReading(Reason.UNSUPPORTED, "blood pressure without systolic and diastolic")
    systolic, diastolic = values.get("systolic"), values.get("diastolic")
    if systolic is not None and diastolic is not None and diastolic >= systolic:
        panel_q = True
    return Structure(
        Kind.BLOOD_PRESSURE,
        tuple(entries),
        _bits_of(m.kind, m.status) if m.status else (),
        None,
        None,
        False,
        False,
        kpa,
        panel_q,
    )


def _prepare_glucose(m: Measurement, values: dict[str, Decimal]) -> Structure:
    comp = m.component("glucose")
    if comp is None or comp.unit not in _GLUCOSE_LOINC:
        raise RejectedReading(Reason.UNSUPPORTED, "glucose record without a mg/dL or mmol/L value")
    control = CONTROL_SOLUTION in m.status
    questionable = any(name in QUESTIONABLE_STATUS for name in m.status)
    if control:
        if comp.value is not None:
            values["glucose"] = comp.value
    else:
        hard, plausible = GLUCOSE_RANGES[comp.unit]
        questionable = _checked("glucose", comp.value, comp.unit, (hard, plausible), values) or (
            questionable
        )
    sample = m.context_value("sample_type")
    if sample is None:
        sample = _GLUCOSE_BY_CALIBRATION.get(m.context_value("calibration") or "")
    meal = m.context_value("meal")
    return Structure(
        Kind.GLUCOSE,
        (Entry("glucose", comp.unit, comp.special, questionable),),
        bits=_bits_of(m.kind, m.status),
        sample=sample,
        meal=meal if meal in MEALS else None,
        sequence=m.sequence_number is not None,
        control=control,
    )


def _prepare_body(m: Measurement, values: dict[str, Decimal]) -> Structure:
    entries: list[Entry] = []
    for comp in m.components:
        mapping = QUANTITIES.get(comp.code)
        if mapping is None or comp.code in ("systolic", "diastolic", "mean", "pulse"):
            raise RejectedReading(Reason.UNSUPPORTED, f"no FHIR mapping for component {comp.code}")
        value, unit = comp.value, comp.unit
        if comp.code == "height" and unit == "m":
            unit = "cm"
            value = value.scaleb(2) if value is not None else None
        questionable = _checked(comp.code, value, unit, (mapping.hard, mapping.plausible), values)
        entries.append(Entry(comp.code, unit, comp.special, questionable))
    units = {e.code: e.unit for e in entries}
    bmi = None
    if "bmi" not in units and "weight" in values and "height" in values:
        computed = computed_bmi(
            values["weight"], units["weight"], values["height"], units["height"]
        )
        if computed is not None:
            values["bmi_calc"] = computed
            bmi = Entry(
                "bmi_calc", "kg/m2", None, _questionable(computed, QUANTITIES["bmi"].plausible)
            )
    return Structure(m.kind, tuple(entries), bmi=bmi)


def _prepare_temperature(m: Measurement, values: dict[str, Decimal]) -> Structure:
    comp = m.component("temperature")
    if comp is None or len(m.components) != 1:
        raise RejectedReading(Reason.UNSUPPORTED, "temperature record must hold one value")
    mapping = QUANTITIES["temperature"]
    questionable = _checked(
        "temperature", comp.value, comp.unit, (mapping.hard, mapping.plausible), values
    )
    return Structure(
        Kind.BODY_TEMPERATURE, (Entry("temperature", comp.unit, comp.special, questionable),)
    )


_PREPARERS: Final = {
    Kind.BLOOD_PRESSURE: _prepare_bp,
    Kind.GLUCOSE: _prepare_glucose,
    Kind.BODY_WEIGHT: _prepare_body,
    Kind.BODY_COMPOSITION: _prepare_body,
    Kind.BODY_TEMPERATURE: _prepare_temperature,
}


def computed_bmi(
    weight: Decimal, weight_unit: str, height: Decimal, height_unit: str
) -> Decimal | None:
    """BMI in kg/m2 to 0.1 (the device resolution of WSS), or None for units we do not know."""
    try:
        if weight_unit == "kg" and height_unit == "cm":
            metres = height / 100
            value = weight / (metres * metres)
        elif weight_unit == "[lb_av]" and height_unit == "[in_i]":
            value = Decimal(703) * weight / (height * height)
        else:
            return None
        return value.quantize(Decimal("0.1"), ROUND_HALF_EVEN)
    except (InvalidOperation, ZeroDivisionError):
        return None


# --- compiling a Structure ---------------------------------------------------------------------


class _Compiler:
    """Collects the ObsRecipes of one Structure (runs once per distinct Structure)."""

    def __init__(self, structure: Structure, variant: Variant) -> None:
        self.s = structure
        self.v = variant
        self.recipes: list[ObsRecipe] = []

    def shape(
        self,
        profiles: tuple[str, ...],
        categories: tuple[str, ...],
        concept: Concept,
        *,
        performer: bool = True,
        **kw: Any,
    ) -> ObservationShape:
        v = self.v
        if v.manual:
            # Manual entry is out of PHD scope: no device, no gateway, no phd category/profiles.
            return ObservationShape(
                tuple(p for p in profiles if not p.startswith(_PHD)),
                tuple(c for c in categories if c != "phd"),
                concept,
                performer="practitioner",
                gateway=False,
                coincident=False,
                device=None,
                **{"note": MANUAL_NOTE, **kw},
            )
        return ObservationShape(
            profiles,
            categories,
            concept,
            performer=v.performer if performer else None,
            gateway=True,
            coincident=v.corrected,
            **kw,
        )

    def add(
        self,
        shape: ObservationShape,
        *,
        unit: str | None = None,
        value_key: str | None = None,
        slots: tuple[tuple[str, str], ...] = (),
        columns: tuple[tuple[str, str], ...] = (),
        derived: tuple[int, ...] = (),
        device_obs: bool = False,
    ) -> int:
        primary = shape.concept.primary
        self.recipes.append(
            ObsRecipe(
                shape=shape,
                template=template(shape),
                mdc=shape.concept.mdc,
                code=primary.code,
                code_system=primary.system,
                unit=unit,
                value_key=value_key,
                slots=slots,
                columns=columns,
                derived=derived,
                device_obs=device_obs,
            )
        )
        return len(self.recipes) - 1

    def simple(self, entry: Entry, *, key: str | None = None) -> int:
        mapping = QUANTITIES[entry.code if key is None else "bmi"]
        profiles = (PHD_NUMERIC, *mapping.profiles)
        if mapping.kr_profile is not None and entry.unit == mapping.kr_unit:
            profiles = (*profiles, mapping.kr_profile)
        shape = self.shape(
            profiles,
            (mapping.category, "phd"),
            mapping.concept,
            value=_value_shape(entry.special, entry.unit),
            interpretation="questionable" if entry.questionable else None,
        )
        numeric = entry.special is None
        return self.add(
            shape,
            unit=entry.unit,
            value_key=entry.code if numeric else None,
            slots=(("value", entry.code),) if numeric else (),
        )

    def bits(self, kind: Kind, target: int) -> None:
        if not self.s.bits or self.v.manual:
            return
        table = BITS[kind]
        components = tuple(
            ComponentShape(Concept((Coding(ASN1_TO_HL7, code, display),), display), YesValue())
            for code, display in (table.bits[name] for name in self.s.bits)
        )
        shape = self.shape(
            (PHD_BITS,), ("phd",), table.concept, performer=False, components=components, derived=1
        )
        self.add(shape, derived=(target,))


def _value_shape(special: Special | None, unit: str) -> ValueShape:
    if special is not None:
        code, display = ABSENT[special]
        return AbsentValue(code, display)
    return QuantityValue(unit)


MANUAL_NOTE: Final = "수기 입력 (manually entered)"
KPA_NOTE: Final = "측정기 원래 단위 kPa, mmHg로 환산 (device sent kPa; converted to mmHg)"


def _compile_bp(c: _Compiler) -> None:
    s = c.s
    panel = [e for e in s.entries if e.code != "pulse"]
    components = tuple(
        ComponentShape(QUANTITIES[e.code].concept, _value_shape(e.special, "mm[Hg]")) for e in panel
    )
    profiles = (PHD_COMPOUND_NUMERIC, PHD_COMPOUND, _CORE + "bp", _KR + "krcore-bloodpressure")
    extra: dict[str, Any] = {"note": KPA_NOTE} if s.kpa and not c.v.manual else {}
    shape = c.shape(
        profiles,
        ("vital-signs", "phd"),
        BP_PANEL,
        components=components,
        interpretation="questionable" if s.panel_questionable else None,
        **extra,
    )
    numeric = [(i, e) for i, e in enumerate(panel) if e.special is None]
    target = c.add(
        shape,
        unit="mm[Hg]",
        slots=tuple((f"c{i}", e.code) for i, e in numeric),
        columns=tuple((QUANTITIES[e.code].concept.primary.code, e.code) for _, e in numeric),
    )
    for entry in s.entries:
        if entry.code == "pulse":
            c.simple(entry)
    c.bits(Kind.BLOOD_PRESSURE, target)


def _glucose_concept(unit: str, sample: str | None, meal: str | None) -> Concept:
    mdc = _GLUCOSE_MDC.get(sample or "")
    if sample is not None and mdc is None:
        # venous, arterial, interstitial: not a glucometer capillary value
        return Concept((_GLUCOSE_GENERIC_MDC, _GLUCOSE_LOINC_BLOOD[unit]), GLUCOSE_TEXT)
    codings = [mdc or _GLUCOSE_GENERIC_MDC, _GLUCOSE_LOINC[unit]]
    if meal == "fasting":
        codings.append(_GLUCOSE_FASTING_LOINC[unit])
    return Concept(tuple(codings), GLUCOSE_TEXT)


def _compile_glucose(c: _Compiler) -> None:
    s = c.s
    entry = s.entries[0]
    numeric = entry.special is None
    value_slots = (("value", "glucose"),) if numeric else ()
    if s.control:
        # Device QC: subject is the meter, never the resident's glucose.
        shape = ObservationShape(
            (PHD_NUMERIC,),
            ("phd",),
            GLUCOSE_CONTROL,
            value=_value_shape(entry.special, entry.unit),
            subject_is_device=True,
            coincident=c.v.corrected,
        )
        c.add(
            shape,
            unit=entry.unit,
            value_key="glucose" if numeric else None,
            slots=value_slots,
            device_obs=True,
        )
        return
    shape = c.shape(
        (PHD_NUMERIC, _KR + "krcore-observation-laboratory-result"),
        ("laboratory", "phd"),
        _glucose_concept(entry.unit, s.sample, s.meal),
        value=_value_shape(entry.special, entry.unit),
        interpretation="questionable" if entry.questionable else None,
        issued=True,
        second_identifier=GLUCOSE_RECORD_SYSTEM if s.sequence and not c.v.manual else None,
    )
    target = c.add(
        shape, unit=entry.unit, value_key="glucose" if numeric else None, slots=value_slots
    )
    if s.meal is not None and not c.v.manual:
        meal_shape = c.shape(
            (PHD_CODED,),
            ("phd",),
            MEAL_CONTEXT,
            performer=False,
            value=CodedValue(MEALS[s.meal]),
            derived=1,
        )
        c.add(meal_shape, derived=(target,))
    c.bits(Kind.GLUCOSE, target)


def _compile_body(c: _Compiler) -> None:
    s = c.s
    index = {entry.code: c.simple(entry) for entry in s.entries}
    if s.bmi is not None and not c.v.manual:
        mapping = QUANTITIES["bmi"]
        shape = ObservationShape(
            mapping.profiles,
            ("vital-signs",),
            mapping.concept,
            value=QuantityValue("kg/m2"),
            gateway=False,
            device=None,
            derived=2,
            interpretation="questionable" if s.bmi.questionable else None,
        )
        c.add(
            shape,
            unit="kg/m2",
            value_key="bmi_calc",
            slots=(("value", "bmi_calc"),),
            derived=(index["weight"], index["height"]),
        )


def _compile_temperature(c: _Compiler) -> None:
    c.simple(c.s.entries[0])


_COMPILERS: Final = {
    Kind.BLOOD_PRESSURE: _compile_bp,
    Kind.GLUCOSE: _compile_glucose,
    Kind.BODY_WEIGHT: _compile_body,
    Kind.BODY_COMPOSITION: _compile_body,
    Kind.BODY_TEMPERATURE: _compile_temperature,
}
_RECIPES: dict[tuple[Structure, Variant], tuple[ObsRecipe, ...]] = {}


_PLAIN: Final = Variant()


def recipe(structure: Structure, variant: Variant = _PLAIN) -> tuple[ObsRecipe, ...]:
    """The compiled Observations of a record structure (cached)."""
    key = (structure, variant)
    cached = _RECIPES.get(key)
    if cached is None:
        compiler = _Compiler(structure, variant)
        _COMPILERS[structure.kind](compiler)
        cached = tuple(compiler.recipes)
        if len(_RECIPES) < 100_000:  # structures are few; the bound only guards a pathological feed
            _RECIPES[key] = cached
    return cached


# --- executing a recipe for one reading --------------------------------------------------------

_KEYS: dict[str, str] = {}
_GATEWAY_REFS: dict[str, str] = {}


def _cached_key(device_id: str) -> str:
    key = _KEYS.get(device_id)
    if key is None:
        key = device_key(device_id)
        if len(_KEYS) < 100_000:
            _KEYS[device_id] = key
    return key


def check_result(measurement: Measurement) -> None:
    """Raise :class:`RejectedReading` for records that are never a patient result."""
    if measurement.kind is Kind.CUFF_PRESSURE:
        raise RejectedReading(
            Reason.NOT_A_RESULT, "intermediate cuff pressure is a live display value, not a result"
        )
    if measurement.status:
        markers = _NOT_A_RESULT.intersection(measurement.status)
        if markers:
            raise RejectedReading(
                Reason.NOT_A_RESULT,
                f"record marked {', '.join(sorted(markers))}: not a patient result",
            )
    if measurement.kind not in _PREPARERS:
        raise RejectedReading(
            Reason.UNSUPPORTED, f"no FHIR mapping for {measurement.kind.value} records yet"
        )


def prepare(
    measurement: Measurement, ctx: ReadingContext, policy: Policy = DEFAULT_POLICY
) -> tuple[Structure, Variant, dict[str, Decimal], Timing]:
    """Check and convert a record; raise RejectedReading / HeldForReview when it cannot be stored.

    A control-solution record needs no patient: it is the device's QC Observation.
    """
    check_result(measurement)
    values: dict[str, Decimal] = {}
    structure = _PREPARERS[measurement.kind](measurement, values)
    implausible = out_of_bounds(measurement)  # §2, the engine's own bounds
    if implausible is not None:
        raise RejectedReading(Reason.IMPLAUSIBLE_VALUE, implausible.describe())
    if structure.control and ctx.performer is not None:
        raise RejectedReading(
            Reason.NOT_A_RESULT, "a hand-entered control-solution test is not a patient result"
        )
    if ctx.patient is None and not structure.control:
        raise HeldForReview(
            Reason.NO_BINDING, "배정된 주민이 없습니다 (no resident is bound to this reading)"
        )
    timing = place_in_time(measurement, ctx, policy)
    if ctx.performer is not None:
        variant = Variant(False, "practitioner", True)
    elif ctx.binding in _SELF_MEASURED:
        variant = Variant(timing.corrected_by is not None, "subject", False)
    else:
        variant = Variant(timing.corrected_by is not None, None, False)
    return structure, variant, values, timing


# The resident measured themselves: at a station after check-in, or with their own device.
_SELF_MEASURED: Final = frozenset({"check-in", "registry"})

# One Observation of a reading, filled: (recipe, slots, identifier, id, resident, component JSON)
_Filled = tuple[ObsRecipe, dict[str, str | Decimal], str, str, str | None, str | None]


def _fill(
    measurement: Measurement, ctx: ReadingContext, policy: Policy
) -> tuple[list[_Filled], datetime, Plan | None]:
    structure, variant, values, timing = prepare(measurement, ctx, policy)
    recipes = recipe(structure, variant)
    manual = variant.manual
    key = _cached_key(ctx.device_id)
    devkey = "manual" if manual else key
    token = timing.token
    if structure.kind is Kind.GLUCOSE and measurement.sequence_number is not None and not manual:
        # A meter can store several records within one second (a control test, then a
        # recheck): its record number joins the time part, so (device, sequence, base time)
        # identifies a record as ble-profiles.md §7.6 asks and a memory reset cannot collide.
        token = f"{token}-{measurement.sequence_number}"
    patient = ctx.patient
    device_ref = f"Device/phd-{key}"
    common: dict[str, str | Decimal] = {"effective": timing.effective_at.isoformat()}
    if patient is not None:
        common["subject"] = patient_reference(patient)
    gateway_ref = ""
    if manual:
        assert ctx.performer is not None
        common["performer"] = ctx.performer
    else:
        cached_ref = _GATEWAY_REFS.get(ctx.gateway_id)
        if cached_ref is not None:
            gateway_ref = cached_ref
        else:
            gateway_ref = gateway_reference(ctx.gateway_id)
            if len(_GATEWAY_REFS) < 100_000:
                _GATEWAY_REFS[ctx.gateway_id] = gateway_ref
        common["device"] = device_ref
        common["gateway"] = gateway_ref
    coincident: Plan | None = None
    if variant.corrected:
        coincident = _coincident(ctx, device_ref, gateway_ref)
        common["coincident"] = f"Observation/{coincident.id}"
    if structure.kind is Kind.GLUCOSE:
        common["issued"] = _iso(ctx.received_at)
        if measurement.sequence_number is not None:
            common["identifier2"] = f"{devkey}-{measurement.sequence_number}"
    filled: list[_Filled] = []
    for rec in recipes:
        if rec.device_obs:
            ident = f"{devkey}-{rec.mdc}-{token}"
        else:
            ident = f"{devkey}-{patient}-{rec.mdc}-{token}"
        obs_id = resource_id(ident)
        slots = common.copy()
        slots["id"] = obs_id
        slots["identifier"] = ident
        if rec.device_obs:
            slots["subject"] = device_ref
        for slot, value_key in rec.slots:
            slots[slot] = values[value_key]
        for i, target in enumerate(rec.derived):
            slots[f"derived{i}"] = f"Observation/{filled[target][3]}"
        column = None
        if rec.columns:
            column = (
                "{"
                + ",".join([f'"{code}":{decimal_text(values[k])}' for code, k in rec.columns])
                + "}"
            )
        filled.append((rec, slots, ident, obs_id, None if rec.device_obs else patient, column))
    return filled, timing.effective_at, coincident


def plan(
    measurement: Measurement, ctx: ReadingContext, policy: Policy = DEFAULT_POLICY
) -> tuple[Plan, ...]:
    """The Observations of one bound record (plus a coincident-timestamp one when corrected).

    Raises :class:`RejectedReading` (dead letter) or :class:`HeldForReview` (staff queue).
    """
    filled, effective_at, coincident = _fill(measurement, ctx, policy)
    plans = [
        Plan(rec, slots, ident, obs_id, effective_at, resident, column)
        for rec, slots, ident, obs_id, resident, column in filled
    ]
    if coincident is not None:
        plans.append(coincident)
    return tuple(plans)


def _coincident(ctx: ReadingContext, device_ref: str, gateway_ref: str) -> Plan:
    """The PHD coincident-timestamp Observation relating the device and gateway clocks."""
    clock = ctx.clock
    assert clock is not None
    device_local = _naive_local(clock.device)
    gateway = _kst(clock.gateway).replace(microsecond=0)
    token = f"{time_token(device_local)}-{time_token(gateway)}"
    ident = observation_identifier(ctx.device_id, None, COINCIDENT.mdc, token)
    obs_id = resource_id(ident)
    slots: dict[str, str | Decimal] = {
        "id": obs_id,
        "identifier": ident,
        "subject": device_ref,
        "effective": gateway.isoformat(),
        "value": _iso(device_local),
        "gateway": gateway_ref,
    }
    return Plan(_COINCIDENT_RECIPE, slots, ident, obs_id, gateway, None, None)


_COINCIDENT_SHAPE: Final = ObservationShape(
    (PHD_COINCIDENT,),
    (),
    COINCIDENT,
    value=DateTimeValue(),
    subject_is_device=True,
    gateway=False,
    device="phg",
)
_COINCIDENT_RECIPE: Final = ObsRecipe(
    shape=_COINCIDENT_SHAPE,
    template=template(_COINCIDENT_SHAPE),
    mdc=COINCIDENT.mdc,
    code=COINCIDENT.primary.code,
    code_system=MDC,
    unit=None,
    value_key=None,
    slots=(),
    columns=(),
    device_obs=True,
)


def to_observations(
    measurement: Measurement, ctx: ReadingContext, policy: Policy = DEFAULT_POLICY
) -> list[StoredObservation]:
    """The stored rows of one record: typed columns and the resource text (the hot path).

    Raises :class:`RejectedReading` (dead letter) or :class:`HeldForReview` (staff queue).
    """
    filled, effective_at, coincident = _fill(measurement, ctx, policy)
    manual = ctx.performer is not None
    gateway_id = None if manual else ctx.gateway_id
    device_id = None if manual else ctx.device_id
    centre_id = ctx.centre_id
    received_at = ctx.received_at
    status = measurement.status
    quality = status or None
    questionable = (*status, "questionable")
    context = reading_context(measurement, ctx)
    out = [
        StoredObservation(
            obs_id,
            effective_at,
            resident,
            rec.code,
            rec.code_system,
            float(slots["value"]) if rec.value_key is not None else None,
            rec.unit,
            column,
            device_id,
            gateway_id,
            centre_id,
            rec.shape.status,
            ident,
            rec.template.fill(slots),
            received_at,
            questionable if rec.shape.interpretation == "questionable" else quality,
            context,
        )
        for rec, slots, ident, obs_id, resident, column in filled
    ]
    if coincident is not None:
        out.append(
            StoredObservation(
                coincident.id,
                coincident.effective_at,
                None,
                COINCIDENT.primary.code,
                MDC,
                None,
                None,
                None,
                device_id,
                gateway_id,
                centre_id,
                "final",
                coincident.identifier,
                coincident.resource_text(),
                received_at,
            )
        )
    return out


def reading_context(measurement: Measurement, ctx: ReadingContext) -> str | None:
    """The reading's facts as a small JSON object (or None): what the clinical runner filters
    on (setting, meal, ...) and the provenance of the binding (method, check-in session,
    station, reading id), so a Provenance can be rendered without a row of its own."""
    parts: list[str] = []
    for key, value in (
        ("setting", ctx.setting),
        ("binding", ctx.binding),
        ("session", ctx.session),
        ("station", ctx.station_id),
        ("reading", ctx.reading_id),
    ):
        if value is not None:
            parts.append(f'"{key}":{encode_basestring(value)}')
    for key, value in measurement.context:
        if key in _CONTEXT_KEYS:
            parts.append(f'"{key}":{encode_basestring(value)}')
    if measurement.user_index is not None:
        parts.append(f'"user_index":{int(measurement.user_index)}')
    if measurement.sequence_number is not None:
        parts.append(f'"sequence":{int(measurement.sequence_number)}')
    return "{" + ",".join(parts) + "}" if parts else None


_CONTEXT_KEYS: Final = frozenset({"meal", "sample_type", "sample_location", "tester", "health"})


# --- the unbound queue record ------------------------------------------------------------------

_KIND_TEXT: Final = {
    Kind.BLOOD_PRESSURE: "혈압 (blood pressure)",
    Kind.GLUCOSE: "혈당 (glucose)",
    Kind.BODY_WEIGHT: "체중 (weight)",
    Kind.BODY_COMPOSITION: "체성분 (body composition)",
    Kind.BODY_TEMPERATURE: "체온 (temperature)",
    Kind.CGM: "연속혈당 (CGM)",
    Kind.CUFF_PRESSURE: "커프 압력 (cuff pressure)",
}


def _component_text(comp: Component) -> str:
    shown = comp.special.value if comp.special is not None else str(comp.value)
    return f"{comp.code} {shown} {comp.unit}"


def unbound_record(
    measurement: Measurement,
    ctx: ReadingContext,
    reason: Reason,
    detail: str,
    policy: Policy = DEFAULT_POLICY,
) -> UnboundRecord:
    """The staff-queue view of a reading held back (no binding, implausible time, ...)."""
    try:
        measured_at: datetime | None = place_in_time(measurement, ctx, policy).effective_at
    except HeldForReview:
        measured_at = (
            _kst(measurement.device_time).replace(microsecond=0)
            if measurement.device_time is not None
            else None
        )
    values = tuple(
        (
            c.code,
            None if c.value is None else str(c.value),
            c.unit,
            None if c.special is None else c.special.value,
        )
        for c in measurement.components
    )
    shown = ", ".join(_component_text(c) for c in measurement.components)
    summary = f"{_KIND_TEXT.get(measurement.kind, measurement.kind.value)}: {shown}"
    return UnboundRecord(
        reason=reason,
        detail=detail,
        kind=measurement.kind.value,
        device_id=ctx.device_id,
        gateway_id=ctx.gateway_id,
        station_id=ctx.station_id,
        measured_at=measured_at,
        received_at=_kst(ctx.received_at),
        values=values,
        summary=summary,
        suggested_resident=ctx.patient,
    )


# --- Device resources --------------------------------------------------------------------------

_SPECIALIZATION: Final = {
    Kind.BLOOD_PRESSURE.value: ("528391", "MDC_DEV_SPEC_PROFILE_BPM"),
    Kind.GLUCOSE.value: ("528401", "MDC_DEV_SPEC_PROFILE_GLUCOSE"),
    Kind.BODY_WEIGHT.value: ("528399", "MDC_DEV_SPEC_PROFILE_SCALE"),
    Kind.BODY_COMPOSITION.value: ("528404", "MDC_DEV_SPEC_PROFILE_BCA"),
}


def device_resource(
    device_id: str,
    *,
    address: str | None = None,
    manufacturer: str | None = None,
    model: str | None = None,
    serial: str | None = None,
    firmware: str | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    """The PhdDevice for a registry device (BT address as EUI-48, DIS strings)."""
    resource: dict[str, Any] = {
        "resourceType": "Device",
        "id": f"phd-{device_key(device_id)}",
        "meta": {"profile": [PHD_DEVICE]},
    }
    identifiers = []
    mac = (
        address
        if address and _MAC_RE.match(address)
        else (device_id if _MAC_RE.match(device_id) else None)
    )
    if mac is not None:
        identifiers.append(
            {
                "type": {"coding": [{"system": CONTINUA_DEVICE_IDENTIFIERS, "code": "BTMAC"}]},
                "system": BTMAC_SYSTEM,
                "value": mac.replace(":", "-").upper(),
            }
        )
    else:
        identifiers.append({"system": "urn:daon:sid:device", "value": device_id})
    resource["identifier"] = identifiers
    if manufacturer:
        resource["manufacturer"] = manufacturer
    if serial:
        resource["serialNumber"] = serial
    if model:
        resource["modelNumber"] = model
    resource["type"] = {
        "coding": [{"system": MDC, "code": "65573", "display": "MDC_MOC_VMS_MDS_SIMP"}]
    }
    spec = _SPECIALIZATION.get(kind or "", ("528457", "MDC_DEV_SPEC_PROFILE_GENERIC"))
    resource["specialization"] = [
        {"systemType": {"coding": [{"system": MDC, "code": spec[0], "display": spec[1]}]}}
    ]
    if firmware:
        resource["version"] = [
            {
                "type": {
                    "coding": [{"system": MDC, "code": "531976", "display": "MDC_ID_PROD_SPEC_FW"}]
                },
                "value": firmware,
            }
        ]
    return canonical(resource)  # type: ignore[no-any-return]


def gateway_resource(gateway_id: str, *, description: str | None = None) -> dict[str, Any]:
    """The PhgDevice for one of our gateways."""
    resource: dict[str, Any] = {
        "resourceType": "Device",
        "id": gateway_reference(gateway_id).split("/", 1)[1],
        "meta": {"profile": [PHG_DEVICE]},
        "identifier": [{"system": "urn:daon:sid:gateway", "value": gateway_id}],
        "type": {"coding": [{"system": MDC, "code": "531981", "display": "MDC_MOC_VMS_MDS_AHD"}]},
        "specialization": [
            {
                "systemType": {
                    "coding": [
                        {"system": MDC, "code": "528457", "display": "MDC_DEV_SPEC_PROFILE_GENERIC"}
                    ]
                }
            }
        ],
    }
    if description:
        resource["deviceName"] = [{"name": description, "type": "user-friendly-name"}]
    return canonical(resource)  # type: ignore[no-any-return]


# --- rendering and validation ------------------------------------------------------------------


def render(resource: Any) -> str:
    """A resource (dict, or JSON text as read back from jsonb) as the API serves it."""
    value = loads(resource) if isinstance(resource, str | bytes) else resource
    return dumps(canonical(value))


def render_bundle(resources: Sequence[str]) -> str:
    """A JSON array of already-rendered resources (what ``daon fhir`` prints per line)."""
    return "[" + ",".join(resources) + "]"


def validate(resource: Mapping[str, Any] | str) -> None:
    """Check a resource against the ``fhir.resources`` R4B model (tests and audits only).

    Raises ``pydantic.ValidationError``. Imported lazily: model construction costs about
    0.5 ms per Observation, far too much for the hot path.
    """
    from fhir.resources.R4B import get_fhir_model_class

    data = loads(resource) if isinstance(resource, str) else dict(resource)
    model = get_fhir_model_class(str(data["resourceType"]))
    model.model_validate(data)
