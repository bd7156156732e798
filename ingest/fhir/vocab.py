"""FHIR vocabulary of the whole project: code systems, identifier systems, profiles, codes, units.

One home (issue 16): ingest's Observation mapping, the Device/Patient/Practitioner builders, the
clinical runner's Flag/Task/RiskAssessment and the API's search all take their URLs and codes
from here, so a search by the code a builder wrote always finds it. Pure data, no I/O.

Mapping tables are data (:data:`QUANTITIES`, :data:`BITS`, ...) in the manner of bthome-ble's
``const.py``; sources are in fhir-mapping-and-anchors.md §1-§2 and the HL7 PHD IG 2.0.0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Final

from devices.model import Kind, Special

# --- systems and profiles ---------------------------------------------------------------------

KST: Final = timezone(timedelta(hours=9))

MDC: Final = "urn:iso:std:iso:11073:10101"
LOINC: Final = "http://loinc.org"
UCUM: Final = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
PHD_CATEGORY: Final = "http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories"
DATA_ABSENT_REASON: Final = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
# PHD IG 2.0.0 moved ASN1ToHL7 to terminology.hl7.org (1.x: http://hl7.org/fhir/uv/phd/CodeSystem/)
ASN1_TO_HL7: Final = "http://terminology.hl7.org/CodeSystem/ASN1ToHL7"
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

CORE_SD: Final = "http://hl7.org/fhir/StructureDefinition/"
PHD_SD: Final = "http://hl7.org/fhir/uv/phd/StructureDefinition/"
KR_SD: Final = "http://www.hl7korea.or.kr/fhir/krcore/StructureDefinition/"
PHD_NUMERIC: Final = PHD_SD + "PhdNumericObservation"
PHD_COMPOUND_NUMERIC: Final = PHD_SD + "PhdCompoundNumericObservation"
PHD_COMPOUND: Final = PHD_SD + "PhdCompoundObservation"
PHD_BITS: Final = PHD_SD + "PhdBitsEnumerationObservation"
PHD_CODED: Final = PHD_SD + "PhdCodedEnumerationObservation"
PHD_COINCIDENT: Final = PHD_SD + "PhdCoincidentTimeStampObservation"
PHD_DEVICE: Final = PHD_SD + "PhdDevice"
PHG_DEVICE: Final = PHD_SD + "PhgDevice"

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
        (CORE_SD + "heartrate",),
        KR_SD + "krcore-heartrate",
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
        (CORE_SD + "bodyweight",),
        KR_SD + "krcore-bodyweight",
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
        (CORE_SD + "bodyheight",),
        KR_SD + "krcore-bodyheight",
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
        (CORE_SD + "bmi",),
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
        (CORE_SD + "bodytemp",),
        hard=_range("0", "60"),
        plausible=_range("30", "45"),
    ),
}

# Glucose: LOINC by unit, MDC by the BLE sample type (fhir-mapping-and-anchors.md §1.1).
GLUCOSE_LOINC: Final = {
    "mg/dL": _loinc("41653-7", "Glucose [Mass/volume] in Capillary blood by Glucometer"),
    "mmol/L": _loinc("14743-9", "Glucose [Moles/volume] in Capillary blood by Glucometer"),
}
GLUCOSE_LOINC_BLOOD: Final = {
    "mg/dL": _loinc("2339-0", "Glucose [Mass/volume] in Blood"),
    "mmol/L": _loinc("15074-8", "Glucose [Moles/volume] in Blood"),
}
GLUCOSE_FASTING_LOINC: Final = {
    "mg/dL": _loinc("41604-0", "Fasting glucose [Mass/volume] in Capillary blood by Glucometer"),
    "mmol/L": _loinc("14770-2", "Fasting glucose [Moles/volume] in Capillary blood by Glucometer"),
}
GLUCOSE_MDC: Final = {
    "capillary_whole_blood": _mdc("160184", "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD"),
    "capillary_plasma": _mdc("160188", "MDC_CONC_GLU_CAPILLARY_PLASMA"),
    "undetermined_whole_blood": _mdc("160364", "MDC_CONC_GLU_UNDETERMINED_WHOLEBLOOD"),
    "undetermined_plasma": _mdc("160368", "MDC_CONC_GLU_UNDETERMINED_PLASMA"),
}
GLUCOSE_BY_CALIBRATION: Final = {
    "whole_blood": "undetermined_whole_blood",
    "plasma": "undetermined_plasma",
}
GLUCOSE_GENERIC_MDC: Final = _mdc("160020", "MDC_CONC_GLU_GEN")
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


# --- time ---------------------------------------------------------------------------------------


def kst(moment: datetime) -> datetime:
    """``moment`` in Korea time (a naive time is taken as Korea wall-clock time)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=KST)
    return moment.astimezone(KST)


def iso(moment: datetime) -> str:
    """FHIR dateTime in Korea time (``+09:00``), seconds precision (no DST in Korea)."""
    return kst(moment).replace(microsecond=0).isoformat()


# --- our own systems (https://daon.junggu.seoul.kr/fhir) --------------------------------------

DAON: Final = "https://daon.junggu.seoul.kr/fhir"
#: Residents: a health-centre-scoped id, never the registration number (§2.3; KR Core requires a
#: system on Patient.identifier).
RESIDENT_SYSTEM: Final = "urn:daon:junggu:resident"
STAFF_SYSTEM: Final = "urn:daon:user"  # staff accounts (Practitioner.identifier, AuditEvent agent)
DEVICE_SYSTEM: Final = "urn:daon:sid:device"  # registry ids that are not hardware addresses
GATEWAY_SYSTEM: Final = "urn:daon:sid:gateway"
LOCAL_CODE_SYSTEM: Final = f"{DAON}/CodeSystem/local"  # codes with no LOINC (function tests...)
STAFF_ENTRY_SYSTEM: Final = f"{DAON}/sid/staff-entry"
RULE_SYSTEM: Final = f"{DAON}/CodeSystem/clinical-rule"  # version = the rule-set version
RULE_SET_TAG: Final = f"{DAON}/rule-set"
FLAG_IDENTIFIER_SYSTEM: Final = f"{DAON}/flag"
TASK_IDENTIFIER_SYSTEM: Final = f"{DAON}/task"
TASK_CODE_SYSTEM: Final = f"{DAON}/CodeSystem/follow-up-task"
BUSINESS_STATUS_SYSTEM: Final = f"{DAON}/CodeSystem/flag-status"
ROLE_SYSTEM: Final = f"{DAON}/CodeSystem/care-role"
DIGEST_IDENTIFIER_SYSTEM: Final = f"{DAON}/digest"  # weekly digests (Communication.identifier)
COMMUNICATION_CATEGORY_SYSTEM: Final = f"{DAON}/CodeSystem/communication-category"

# --- HL7 systems for flags, tasks, risk, patients, audit ---------------------------------------

KR_CORE_PATIENT: Final = KR_SD + "krcore-patient"
KR_CORE_ROAD_ADDRESS: Final = KR_SD + "krcore-roadNameAddress"  # Address extension
CONTACT_ROLE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v2-0131"  # C, N, ...
V3_ROLE_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
LIVES_ALONE_EXTENSION: Final = f"{DAON}/StructureDefinition/lives-alone"
KR_CORE_PRACTITIONER: Final = KR_SD + "krcore-practitioner"
FLAG_PRIORITY_EXTENSION: Final = CORE_SD + "flag-priority"
FLAG_PRIORITY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/flag-priority"
FLAG_CATEGORY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/flag-category"
RISK_PROBABILITY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/risk-probability"
V3_ACT_REASON: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
DICOM_DCM: Final = "http://dicom.nema.org/resources/ontology/DCM"
RESTFUL_INTERACTION: Final = "http://hl7.org/fhir/restful-interaction"
ISSUE_TYPE: Final = "http://hl7.org/fhir/issue-type"

#: severity (clinical.flags.Severity values) → flag-priority code and display
FLAG_PRIORITY: Final[Mapping[str, tuple[str, str]]] = {
    "critical": ("PH", "High priority"),
    "urgent": ("PM", "Medium priority"),
    "routine": ("PL", "Low priority"),
    "info": ("PN", "No alarm"),
}
#: severity → Task.priority (request-priority)
TASK_PRIORITY: Final[Mapping[str, str]] = {
    "critical": "stat",
    "urgent": "urgent",
    "routine": "routine",
    "info": "routine",
}
#: severity → RiskAssessment qualitativeRisk (risk-probability)
RISK_PROBABILITY: Final[Mapping[str, str]] = {
    "critical": "high",
    "urgent": "high",
    "routine": "moderate",
    "info": "low",
}
#: care roles (follow_up_task.role) → display, Korean first
ROLE_DISPLAY: Final[Mapping[str, str]] = {
    "nurse": "방문간호사 / visiting nurse",
    "rehab": "재활운동사 / rehabilitation therapist",
    "liaison": "현장소통담당관 / liaison officer",
    "nurse_lead": "간호 팀장 / nurse team lead",
}
