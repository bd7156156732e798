"""Plausibility at the door: a reading with a value outside the §2 physiological bounds
(clinical-rules.md Q-01, Q-05, Q-07) never becomes an Observation.

The bounds and the unit conversions are the risk engine's own (:mod:`clinical.limits`), so a
value ingest stores is one the engine accepts on those rules, and one ingest rejects is one the
engine would have rejected. Such a reading is dead-lettered with the rule, the value and the
bounds (pipeline: ``Reason.IMPLAUSIBLE_VALUE``). Pure.

Not checked here: control-solution glucose (a device check, never a patient value), a meter's
HI/LO (kept by Q-05), and special values (NaN, NRes: already data-absent, never a number).
"""

from __future__ import annotations

from dataclasses import dataclass

from clinical.limits import GLUCOSE_HI, GLUCOSE_LO, Violation, engine_value, violation
from devices.model import Component, Kind, Measurement

_CONTROL = "control_solution"


@dataclass(frozen=True, slots=True)
class Implausible:
    """A component outside its §2 bounds."""

    violation: Violation
    component: Component

    @property
    def rule(self) -> str:
        return self.violation.rule

    def describe(self) -> str:
        comp = self.component
        converted = comp.value is None or float(comp.value) != self.violation.value
        return self.violation.describe(f"{comp.value} {comp.unit}" if converted else None)


def out_of_bounds(measurement: Measurement) -> Implausible | None:
    """The first §2 bound a patient value of ``measurement`` breaks, or None."""
    if measurement.kind not in (
        Kind.BLOOD_PRESSURE,
        Kind.GLUCOSE,
        Kind.BODY_WEIGHT,
        Kind.BODY_COMPOSITION,
    ):
        return None
    status = set(measurement.status)
    if measurement.kind is Kind.GLUCOSE and (
        _CONTROL in status or status & GLUCOSE_HI or status & GLUCOSE_LO
    ):
        return None
    sample = measurement.context_value("sample_type") or ""
    if not sample and measurement.context_value("calibration") == "whole_blood":
        sample = "undetermined_whole_blood"
    whole_blood = sample.endswith("whole_blood")  # as the clinical runner reads it back
    for comp in measurement.components:
        if comp.value is None:
            continue
        value = engine_value(comp.code, float(comp.value), comp.unit, whole_blood=whole_blood)
        if value is None:
            continue
        found = violation(comp.code, value)
        if found is not None:
            return Implausible(found, comp)
    return None
