"""Hand-entered readings (a nurse on a home visit) → :class:`devices.model.Measurement`.

Pure. The FHIR transaction Bundle and the resident page's form both end here, and the result
goes through ingest's own transform and identity de-duplication (``ingest.fhir`` and
``ingest.store.observations``), so a hand-entered reading is stored exactly like a device
reading with ``performer`` = the nurse (out of PHD scope: no device, a note says so).

Accepted Observation codes (LOINC, fhir-mapping-and-anchors.md §1.1): blood-pressure panel
85354-9 with components 8480-6 and 8462-4 (optionally 8867-4 pulse) in mm[Hg]; glucose 41653-7 /
2339-0 in mg/dL or 14743-9 / 15074-8 in mmol/L; body weight 29463-7 (kg); body height 8302-2
(cm); body fat 41982-0 (%); muscle mass 73964-9 (kg). Values keep the precision typed
(``Decimal`` from the JSON text).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from devices.model import Component, Kind, Measurement

SEOUL = ZoneInfo("Asia/Seoul")
LOINC = "http://loinc.org"


class ManualEntryError(ValueError):
    """The entry cannot be read as a supported measurement; the message says why."""


@dataclass(frozen=True, slots=True)
class ManualReading:
    resident_id: str
    measurement: Measurement
    measured_at: datetime  # aware


#: single-value codes: LOINC -> (kind, component code, allowed UCUM units)
_SIMPLE: dict[str, tuple[Kind, str, tuple[str, ...]]] = {
    "41653-7": (Kind.GLUCOSE, "glucose", ("mg/dL",)),
    "2339-0": (Kind.GLUCOSE, "glucose", ("mg/dL",)),
    "14743-9": (Kind.GLUCOSE, "glucose", ("mmol/L",)),
    "15074-8": (Kind.GLUCOSE, "glucose", ("mmol/L",)),
    "29463-7": (Kind.BODY_WEIGHT, "weight", ("kg",)),
    "8302-2": (Kind.BODY_WEIGHT, "height", ("cm",)),
    "41982-0": (Kind.BODY_COMPOSITION, "body_fat", ("%",)),
    "73964-9": (Kind.BODY_COMPOSITION, "muscle_mass", ("kg",)),
}
#: Meal context vocabulary of the BLE Glucose Measurement Context (devices.gatt.glucose).
MEALS = ("preprandial", "postprandial", "fasting", "casual", "bedtime")
_BP_COMPONENTS = {"8480-6": "systolic", "8462-4": "diastolic", "8867-4": "pulse"}
_BP_UNITS = {"systolic": "mm[Hg]", "diastolic": "mm[Hg]", "pulse": "/min"}


#: codes that go through the device mapping (ingest.fhir.observations) when entered by hand
DEVICE_SHAPED = frozenset({"85354-9", *_SIMPLE})


def loinc_codes(concept: Any) -> list[str]:
    """The LOINC codes of a CodeableConcept (as parsed JSON)."""
    return _loinc_codes(concept)


def measured_at(resource: Mapping[str, Any]) -> datetime:
    """``effectiveDateTime`` (aware)."""
    return _when(resource)


def quantity(value: Any, where: str) -> tuple[Decimal, str]:
    """A valueQuantity's value (Decimal, precision kept) and UCUM unit."""
    return _decimal(value, where)


def _loinc_codes(concept: Any) -> list[str]:
    if not isinstance(concept, Mapping):
        return []
    codings = concept.get("coding") or []
    return [
        str(c.get("code"))
        for c in codings
        if isinstance(c, Mapping) and c.get("system") == LOINC and c.get("code")
    ]


def _decimal(quantity: Any, where: str) -> tuple[Decimal, str]:
    if not isinstance(quantity, Mapping):
        raise ManualEntryError(f"{where}: valueQuantity is required")
    raw = quantity.get("value")
    if isinstance(raw, bool) or raw is None:
        raise ManualEntryError(f"{where}: valueQuantity.value is required")
    try:
        value = raw if isinstance(raw, Decimal) else Decimal(str(raw))
    except InvalidOperation as exc:
        raise ManualEntryError(f"{where}: {raw!r} is not a number") from exc
    if not value.is_finite():
        raise ManualEntryError(f"{where}: {raw!r} is not a finite number")
    unit = quantity.get("code") or quantity.get("unit")
    if not isinstance(unit, str):
        raise ManualEntryError(f"{where}: valueQuantity.code (UCUM unit) is required")
    return value, unit


def _when(resource: Mapping[str, Any]) -> datetime:
    text = resource.get("effectiveDateTime")
    if not isinstance(text, str):
        raise ManualEntryError("effectiveDateTime is required")
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ManualEntryError(f"effectiveDateTime {text!r} is not a date-time") from exc
    if when.tzinfo is None:
        raise ManualEntryError("effectiveDateTime needs a time zone (e.g. +09:00)")
    return when


def resident_of(resource: Mapping[str, Any]) -> str:
    subject = resource.get("subject")
    ref = subject.get("reference") if isinstance(subject, Mapping) else None
    if not isinstance(ref, str) or not ref.startswith("Patient/") or len(ref) <= 8:
        raise ManualEntryError("subject must reference a Patient (Patient/{id})")
    return ref.removeprefix("Patient/")


def from_observation(resource: Mapping[str, Any]) -> ManualReading:
    """Read one hand-entered Observation (as parsed JSON with Decimal numbers)."""
    if resource.get("resourceType") != "Observation":
        raise ManualEntryError("only Observation resources can be entered")
    resident_id = resident_of(resource)
    when = _when(resource)
    codes = _loinc_codes(resource.get("code"))
    components: list[Component] = []
    if "85354-9" in codes:
        kind = Kind.BLOOD_PRESSURE
        for i, comp in enumerate(resource.get("component") or []):
            names = [
                _BP_COMPONENTS[c] for c in _loinc_codes(comp.get("code")) if c in _BP_COMPONENTS
            ]
            if not names:
                continue
            value, unit = _decimal(comp.get("valueQuantity"), f"component[{i}]")
            if unit != _BP_UNITS[names[0]]:
                raise ManualEntryError(
                    f"component[{i}]: unit must be {_BP_UNITS[names[0]]}, got {unit}"
                )
            components.append(Component(names[0], value, unit))
        present = {c.code for c in components}
        if not {"systolic", "diastolic"} <= present:
            raise ManualEntryError(
                "a blood-pressure panel needs systolic 8480-6 and diastolic 8462-4"
            )
    else:
        known = [c for c in codes if c in _SIMPLE]
        if not known:
            raise ManualEntryError(
                "unsupported code: use LOINC 85354-9, 41653-7, 2339-0, 14743-9, 15074-8, "
                "29463-7, 8302-2, 41982-0 or 73964-9"
            )
        kind, name, units = _SIMPLE[known[0]]
        value, unit = _decimal(resource.get("valueQuantity"), "valueQuantity")
        if unit not in units:
            raise ManualEntryError(f"unit for {known[0]} must be {' or '.join(units)}, got {unit}")
        components.append(Component(name, value, unit))
    local = when.astimezone(SEOUL).replace(tzinfo=None)
    return ManualReading(resident_id, Measurement(kind, tuple(components), local), when)


def from_form(
    resident_id: str, kind: str, measured_at: datetime, values: Mapping[str, str]
) -> ManualReading:
    """The resident page's form: ``kind`` bp / glucose / weight with text fields."""

    def number(name: str) -> Decimal:
        text = (values.get(name) or "").strip()
        try:
            value = Decimal(text)
        except InvalidOperation as exc:
            raise ManualEntryError(
                f"{name}: {text!r} 은(는) 숫자가 아닙니다 / is not a number"
            ) from exc
        if not value.is_finite():
            raise ManualEntryError(f"{name}: not a finite number")
        return value

    if measured_at.tzinfo is None:
        measured_at = measured_at.replace(tzinfo=SEOUL)
    if kind == "bp":
        comps = [
            Component("systolic", number("systolic"), "mm[Hg]"),
            Component("diastolic", number("diastolic"), "mm[Hg]"),
        ]
        if (values.get("pulse") or "").strip():
            comps.append(Component("pulse", number("pulse"), "/min"))
        measurement = Measurement(Kind.BLOOD_PRESSURE, tuple(comps), None)
    elif kind == "glucose":
        meal = (values.get("meal") or "").strip()
        if meal and meal not in MEALS:
            raise ManualEntryError(f"meal must be one of {', '.join(MEALS)}")
        measurement = Measurement(
            Kind.GLUCOSE,
            (Component("glucose", number("glucose"), "mg/dL"),),
            None,
            context=(("meal", meal),) if meal else (),
        )
    elif kind == "weight":
        measurement = Measurement(
            Kind.BODY_WEIGHT, (Component("weight", number("weight"), "kg"),), None
        )
    else:
        raise ManualEntryError(f"unknown kind {kind!r}")
    local = measured_at.astimezone(SEOUL).replace(tzinfo=None)
    return ManualReading(
        resident_id,
        Measurement(measurement.kind, measurement.components, local, context=measurement.context),
        measured_at,
    )
