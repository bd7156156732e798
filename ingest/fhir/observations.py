"""Device readings → FHIR R4 Observations (the Transform stage). Pure: values in, values out.

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

Values keep the precision the device sent (``ingest.fhir.encoding``). Mapping tables are data
(:data:`QUANTITIES`, :data:`BITS`, ...), in the manner of bthome-ble's ``const.py``.

Hot path: resources are rendered from cached :class:`~ingest.fhir.encoding.Template` objects
(one per shape), not by building and validating ``fhir.resources`` models per reading (about
0.5 ms to validate and 1 ms to dump one Observation on this machine, which would cap ingest
near 1,000 readings per second per core). The tests validate every shape against the R4B models
(:func:`validate`) and check the template fill against the dict build.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from json.encoder import encode_basestring
from typing import Any, Final, NamedTuple

from devices.model import Component, Kind, Measurement, Special
from ingest.bounds import out_of_bounds
from ingest.errors import HeldForReview, Reason, RejectedReading
from ingest.fhir.encoding import Template, decimal_text, loads
from ingest.fhir.ids import (
    _EPOCH_2000,
    device_key,
    gateway_reference,
    observation_identifier,
    patient_reference,
    reception_token,
    resource_id,
    time_token,
)
from ingest.fhir.stored import (
    SEP,
    Columns,
    ObservationTemplate,
    number_slot,
    remember,
    string_slot,
)
from ingest.fhir.vocab import (
    ABSENT,
    ASN1_TO_HL7,
    BITS,
    BP_PANEL,
    COINCIDENT,
    COINCIDENT_EXTENSION,
    CORE_SD,
    DATA_ABSENT_REASON,
    GATEWAY_EXTENSION,
    GLUCOSE_BY_CALIBRATION,
    GLUCOSE_CONTROL,
    GLUCOSE_FASTING_LOINC,
    GLUCOSE_GENERIC_MDC,
    GLUCOSE_LOINC,
    GLUCOSE_LOINC_BLOOD,
    GLUCOSE_MDC,
    GLUCOSE_RANGES,
    GLUCOSE_RECORD_SYSTEM,
    GLUCOSE_TEXT,
    KR_SD,
    KST,
    MDC,
    MEAL_CONTEXT,
    MEALS,
    MEASUREMENT_STATUS,
    OBSERVATION_CATEGORY,
    PHD_BITS,
    PHD_CATEGORY,
    PHD_CODED,
    PHD_COINCIDENT,
    PHD_COMPOUND,
    PHD_COMPOUND_NUMERIC,
    PHD_IDENTIFIER_SYSTEM,
    PHD_NUMERIC,
    PHD_SD,
    QUANTITIES,
    QUESTIONABLE_STATUS,
    UCUM,
    Coding,
    Concept,
    iso,
    kst,
)

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
    """One Observation as stored: typed columns for queries, and either its compiled template
    and compact remainder (``template``, ``remainder``: every mapped reading) or its whole
    resource as JSON text (``body``: what no template describes; see :mod:`ingest.fhir.stored`).

    A NamedTuple rather than a dataclass on purpose: it is built tens of thousands of times a
    second. :attr:`resource` renders the canonical JSON text on demand (the write path's
    responses); the API serves reads with the same template (:mod:`ingest.fhir.stored`).
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
    body: str | None  # canonical JSON text when no template describes the resource
    received_at: datetime | None
    quality: tuple[str, ...] | None = None  # device status names, "questionable"
    context: str | None = None  # JSON object text: meal, sample, setting, user_index, sequence
    template: ObservationTemplate | None = None
    remainder: str | None = None

    def columns(self) -> Columns:
        """The typed columns a template's derived slots read."""
        return Columns(
            self.id,
            self.identifier,
            self.status,
            self.effective_at,
            self.received_at,
            self.resident_id,
            self.device_id,
            self.gateway_id,
        )

    @property
    def resource(self) -> str:
        """The resource as canonical compact JSON text."""
        if self.template is not None:
            return self.template.compact(self.columns(), self.remainder)
        if self.body is None:
            raise ValueError(f"Observation {self.id} has neither a template nor a body")
        return self.body

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
            "measured_at": iso(self.measured_at) if self.measured_at else None,
            "received_at": iso(self.received_at),
            "values": [
                {"code": code, "value": value, "unit": unit, "special": special}
                for code, value, unit, special in self.values
            ],
            "summary": self.summary,
            "suggested_resident": self.suggested_resident,
        }


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
    """A set bit of a BITs observation: ``valueBoolean`` true (PHD IG 2.0.0; 1.x used v2-0136
    ``Y`` in a valueCodeableConcept)."""


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
        out["valueBoolean"] = True
    else:
        out["valueDateTime"] = s[key]


def build_observation(shape: ObservationShape, s: Mapping[str, Any]) -> dict[str, Any]:
    """The Observation dict for ``shape`` with slot values ``s`` (keys in FHIR order)."""
    r: dict[str, Any] = {
        "resourceType": "Observation",
        "id": s["id"],
        # version 1 from the moment it was received (readings are not updated in place)
        "meta": {"versionId": "1", "lastUpdated": s["updated"]},
    }
    if shape.profiles:  # never an empty array (a hand entry may claim no profile)
        r["meta"]["profile"] = list(shape.profiles)
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
_STORED: dict[ObservationShape, ObservationTemplate] = {}


class _Placeholders(dict[str, str]):
    """Placeholders of a shape's slots: number slots where the shape puts a quantity value."""

    def __init__(self, numbers: frozenset[str]) -> None:
        super().__init__()
        self.numbers = numbers

    def __missing__(self, key: str) -> str:
        return number_slot(key) if key in self.numbers else string_slot(key)


def stored_template(shape: ObservationShape) -> ObservationTemplate:
    """The compiled stored template of ``shape`` (:mod:`ingest.fhir.stored`; built on first
    use): ``status`` comes from the column, so a retracted reading renders its status."""
    cached = _STORED.get(shape)
    if cached is None:
        numbers = {"value"} if isinstance(shape.value, QuantityValue) else set()
        numbers.update(
            f"c{i}" for i, c in enumerate(shape.components) if isinstance(c.value, QuantityValue)
        )
        skeleton = build_observation(shape, _Placeholders(frozenset(numbers)))
        skeleton["status"] = string_slot("status")
        cached = remember(ObservationTemplate.from_skeleton(skeleton))
        _STORED[shape] = cached
    return cached


def template(shape: ObservationShape) -> Template:
    """The cached template of ``shape`` (built on first use)."""
    cached = _TEMPLATES.get(shape)
    if cached is None:
        cached = Template(lambda slots: build_observation(shape, slots))
        _TEMPLATES[shape] = cached
    return cached


# --- timing ------------------------------------------------------------------------------------


class Timing(NamedTuple):  # built for every reading: a tuple constructs in C
    effective_at: datetime  # aware, Korea time, whole seconds
    token: str  # identifier time part (raw device time)
    corrected_by: timedelta | None  # gateway − device, when a correction applied
    clock: Clock | None = None  # the clock pair the coincident-timestamp Observation records


def _naive_local(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(KST).replace(tzinfo=None)


def clock_offset(clock: Clock | None) -> timedelta | None:
    """gateway − device at connection, whole seconds; None without a clock sample."""
    if clock is None:
        return None
    offset = _naive_local(kst(clock.gateway)) - _naive_local(clock.device)
    return timedelta(seconds=round(offset.total_seconds()))


def place_in_time(
    measurement: Measurement, ctx: ReadingContext, policy: Policy = DEFAULT_POLICY
) -> Timing:
    """Effective time, identifier token and correction of one record (§2.1).

    No device time (a cuff in live mode): reception time, no correction. With a clock sample
    that differs: the device time moved by the offset (and a coincident-timestamp Observation).
    A time after the reception (a device clock running ahead, within
    ``policy.future_tolerance``) is mapped onto the gateway's timeline as the PHD IG asks: the
    reading is placed at its reception, and the coincident-timestamp Observation records the
    device's time against the gateway's, so ``issued`` is never before ``effective``. A time that
    still cannot be right raises :class:`HeldForReview`.
    """
    received = kst(ctx.received_at)
    if measurement.device_time is None:
        return Timing(received.replace(microsecond=0), reception_token(received), None)
    naive = _naive_local(measurement.device_time)
    token = str((naive - _EPOCH_2000) // _SECOND)
    offset = clock_offset(ctx.clock)
    corrected = None
    clock = ctx.clock
    if offset is not None and abs(offset) >= policy.clock_tolerance:
        naive = naive + offset
        corrected = offset
    effective = naive.replace(tzinfo=KST, microsecond=0)
    if effective > received + policy.future_tolerance:
        raise HeldForReview(
            Reason.IMPLAUSIBLE_TIME,
            f"측정 시각 {iso(effective)}이(가) 수신 시각 {iso(received)}보다 늦습니다 "
            f"(measured after it was received; device clock ahead)",
        )
    if effective < policy.earliest or effective < received - policy.max_age:
        raise HeldForReview(
            Reason.IMPLAUSIBLE_TIME,
            f"측정 시각 {iso(effective)}이(가) 너무 이릅니다 (measured too long before "
            f"{iso(received)}; device clock reset?)",
        )
    arrived = received.replace(microsecond=0)
    if effective > arrived:
        # ahead of the reception: the device clock runs fast by at least the difference
        ahead = effective - arrived
        corrected = (corrected or timedelta(0)) - ahead
        effective = arrived
        clock = Clock(_naive_local(measurement.device_time), received)
    return Timing(effective, token, corrected, clock if corrected is not None else None)


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
    stored: ObservationTemplate
    mdc: str
    code: str
    code_system: str
    unit: str | None
    value_key: str | None  # the typed ``value`` column
    slots: tuple[tuple[str, str], ...]  # (slot name, values key) for numbers
    columns: tuple[tuple[str, str], ...]  # component_values: (LOINC or MDC code, values key)
    derived: tuple[int, ...] = ()  # indexes of earlier Observations of the same record
    device_obs: bool = False  # subject is the device: no patient in identifier or column
    rest: tuple[tuple[int, str | int], ...] = ()  # where each remainder slot's value comes from


# Where a remainder slot's value comes from (ObsRecipe.rest): a number of the record (values
# key), a sibling Observation (index), the record number, the coincident-timestamp
# Observation, the performer.
_NUMBER, _SIBLING, _RECORD, _COINCIDENT_REF, _PERFORMER = range(5)


def _rest_plan(
    stored: ObservationTemplate, slots: tuple[tuple[str, str], ...], derived: tuple[int, ...]
) -> tuple[tuple[int, str | int], ...]:
    """How to fill ``stored``'s remainder slots without building a slot dict per reading."""
    numbers = dict(slots)
    plan: list[tuple[int, str | int]] = []
    for name in stored.rest:
        if name in numbers:
            plan.append((_NUMBER, numbers[name]))
        elif name.startswith("derived"):
            plan.append((_SIBLING, derived[int(name[len("derived") :])]))
        elif name == "identifier2":
            plan.append((_RECORD, ""))
        elif name == "coincident":
            plan.append((_COINCIDENT_REF, ""))
        elif name == "performer":
            plan.append((_PERFORMER, ""))
        else:  # pragma: no cover - a new slot must be given a source here
            raise ValueError(f"no source for remainder slot {name!r}")
    return tuple(plan)


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
    if comp is None or comp.unit not in GLUCOSE_LOINC:
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
        sample = GLUCOSE_BY_CALIBRATION.get(m.context_value("calibration") or "")
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
                tuple(p for p in profiles if not p.startswith(PHD_SD)),
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
        stored = stored_template(shape)
        self.recipes.append(
            ObsRecipe(
                shape=shape,
                template=template(shape),
                stored=stored,
                mdc=shape.concept.mdc,
                code=primary.code,
                code_system=primary.system,
                unit=unit,
                value_key=value_key,
                slots=slots,
                columns=columns,
                derived=derived,
                device_obs=device_obs,
                rest=_rest_plan(stored, slots, derived),
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
    profiles = (PHD_COMPOUND_NUMERIC, PHD_COMPOUND, CORE_SD + "bp", KR_SD + "krcore-bloodpressure")
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
    mdc = GLUCOSE_MDC.get(sample or "")
    if sample is not None and mdc is None:
        # venous, arterial, interstitial: not a glucometer capillary value
        return Concept((GLUCOSE_GENERIC_MDC, GLUCOSE_LOINC_BLOOD[unit]), GLUCOSE_TEXT)
    codings = [mdc or GLUCOSE_GENERIC_MDC, GLUCOSE_LOINC[unit]]
    if meal == "fasting":
        codings.append(GLUCOSE_FASTING_LOINC[unit])
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
        (PHD_NUMERIC, KR_SD + "krcore-observation-laboratory-result"),
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
    common: dict[str, str | Decimal] = {
        "effective": timing.effective_at.isoformat(),
        "updated": kst(ctx.received_at).isoformat(timespec="milliseconds"),
    }
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
        assert timing.clock is not None
        coincident = _coincident(
            ctx.device_id, timing.clock, device_ref, gateway_ref, str(common["updated"])
        )
        common["coincident"] = f"Observation/{coincident.id}"
    if structure.kind is Kind.GLUCOSE:
        common["issued"] = iso(ctx.received_at)
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


def _coincident(
    device_id: str, clock: Clock, device_ref: str, gateway_ref: str, updated: str
) -> Plan:
    """The PHD coincident-timestamp Observation relating the device and gateway clocks.

    The gateway time keeps its milliseconds (the device clock has whole seconds), so the
    correction can be reconstructed from the pair to better than a second.
    """
    device_local = _naive_local(clock.device)
    gateway = kst(clock.gateway)
    gateway = gateway.replace(microsecond=gateway.microsecond // 1000 * 1000)
    token = f"{time_token(device_local)}-{time_token(gateway)}"
    ident = observation_identifier(device_id, None, COINCIDENT.mdc, token)
    obs_id = resource_id(ident)
    slots: dict[str, str | Decimal] = {
        "id": obs_id,
        "identifier": ident,
        "subject": device_ref,
        "effective": gateway.isoformat(timespec="milliseconds" if gateway.microsecond else "auto"),
        "value": iso(device_local),
        "gateway": gateway_ref,
        "updated": updated,
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
    stored=stored_template(_COINCIDENT_SHAPE),
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
    """The stored rows of one record: typed columns, template and remainder (the hot path).

    Per reading only what a row stores is computed: ids, identifiers, the typed columns and
    the values of the remainder's slots, placed by the recipe's :attr:`ObsRecipe.rest`. The
    slots the columns give (times, references, ids) are not built at all: the template renders
    them from the columns (:mod:`ingest.fhir.stored`). :func:`plan` builds the same
    Observations slot by slot as whole resources; the tests hold both to the same text.

    Raises :class:`RejectedReading` (dead letter) or :class:`HeldForReview` (staff queue).
    """
    structure, variant, values, timing = prepare(measurement, ctx, policy)
    recipes = recipe(structure, variant)
    manual = variant.manual
    key = _cached_key(ctx.device_id)
    devkey = "manual" if manual else key
    token = timing.token
    sequence = measurement.sequence_number
    if structure.kind is Kind.GLUCOSE and sequence is not None and not manual:
        token = f"{token}-{sequence}"  # see _fill: the record number joins the time part
    patient = ctx.patient
    if patient is not None:
        patient_reference(patient)  # a resident id that is not a FHIR id is rejected
    gateway_id = None if manual else ctx.gateway_id
    device_id = None if manual else ctx.device_id
    centre_id = ctx.centre_id
    received_at = kst(ctx.received_at)  # aware, so the column holds the instant the slots show
    effective_at = timing.effective_at
    coincident: Plan | None = None
    coincident_ref = ""
    if variant.corrected:
        assert timing.clock is not None
        gateway_ref = _GATEWAY_REFS.get(ctx.gateway_id) or gateway_reference(ctx.gateway_id)
        coincident = _coincident(
            ctx.device_id,
            timing.clock,
            f"Device/phd-{key}",
            gateway_ref,
            received_at.isoformat(timespec="milliseconds"),
        )
        coincident_ref = f"Observation/{coincident.id}"
    record = f"{devkey}-{sequence}" if sequence is not None else ""
    performer = ctx.performer or ""
    status = measurement.status
    quality = status or None
    questionable = (*status, "questionable")
    context = reading_context(measurement, ctx)
    ids: list[str] = []
    out: list[StoredObservation] = []
    for rec in recipes:
        if rec.device_obs:
            ident = f"{devkey}-{rec.mdc}-{token}"
        else:
            ident = f"{devkey}-{patient}-{rec.mdc}-{token}"
        obs_id = resource_id(ident)
        ids.append(obs_id)
        remainder = None
        if rec.rest:
            parts: list[str] = []
            for source, arg in rec.rest:
                if source == _NUMBER:
                    parts.append(decimal_text(values[arg]))  # type: ignore[index]
                elif source == _SIBLING:
                    parts.append("Observation/" + ids[arg])  # type: ignore[index]
                elif source == _RECORD:
                    parts.append(record)
                elif source == _COINCIDENT_REF:
                    parts.append(coincident_ref)
                else:
                    parts.append(performer)
            remainder = SEP.join(parts)
            if remainder.count(SEP) != len(parts) - 1:
                raise ValueError("a slot value contains the remainder separator")
        column = None
        if rec.columns:
            column = (
                "{"
                + ",".join([f'"{code}":{decimal_text(values[k])}' for code, k in rec.columns])
                + "}"
            )
        out.append(
            StoredObservation(
                obs_id,
                effective_at,
                None if rec.device_obs else patient,
                rec.code,
                rec.code_system,
                float(values[rec.value_key]) if rec.value_key is not None else None,
                rec.unit,
                column,
                device_id,
                gateway_id,
                centre_id,
                rec.shape.status,
                ident,
                None,
                received_at,
                questionable if rec.shape.interpretation == "questionable" else quality,
                context,
                rec.stored,
                remainder,
            )
        )
    if coincident is not None:
        stored = coincident.recipe.stored
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
                None,
                received_at,
                None,
                None,
                stored,
                stored.remainder(coincident.slots),
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
            kst(measurement.device_time).replace(microsecond=0)
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
        received_at=kst(ctx.received_at),
        values=values,
        summary=summary,
        suggested_resident=ctx.patient,
    )
