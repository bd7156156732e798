"""Pre-screen: may this one reading make a flag ``critical``? (the alert fast path, issue 11)

Ingest calls this for every stored reading and tells the clinical runner which residents to
evaluate before its backlog (``NOTIFY daon_priority``). It is a *superset* of what the engine
raises as critical from a single reading, built from the same thresholds of the rule set
(§0, §2 "single readings that do act immediately", §3, §4): it may name a resident the engine
then leaves alone (a reading later rejected by a quality rule, a glucose ≥ 200 with no symptom
near it), never the other way round. ``tests/clinical/test_prescreen.py`` checks that against
the engine on generated readings.

The critical single-reading rules and what the screen asks:

- BP-CRISIS: SBP > 180 or DBP > 120 → :attr:`Screen.CRITICAL`.
- GLU-HYPO-L2 (< 54 or meter LO) and GLU-HYPER-CRITICAL (≥ 400 or meter HI) →
  :attr:`Screen.CRITICAL`.
- GLU-HYPER-SYMPTOMATIC: ≥ 200 with a DKA-type symptom within ± 24 h. Whether such a symptom is
  stored is the runner's question (it has the history): → :attr:`Screen.IF_SYMPTOMS`.
- GLU-HYPO-L3 (a hypoglycaemia needing assistance) and every symptom event (a symptom can turn
  an earlier glucose ≥ 200 critical) → :attr:`Screen.CRITICAL`.

Values come in as the runner hands them to the engine: blood-pressure components as stored
(mmHg), glucose in its stored unit with the whole-blood flag of its context, converted by the
same :func:`clinical.units.glucose_to_mg_dl`. Pure: ingest may import this module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from enum import IntEnum
from typing import Any

from clinical import units
from clinical.codes import BP_PANEL, DIASTOLIC, GLUCOSE, LOCAL_CODES, SYSTOLIC
from clinical.limits import GLUCOSE_HI, GLUCOSE_LO
from clinical.ruleset import DEFAULT_RULESET, DKA_SYMPTOMS, RuleSet

__all__ = [
    "CONTEXT_CODES",
    "DKA_SYMPTOMS",
    "SCREENED_CODES",
    "Screen",
    "screen_bp",
    "screen_glucose",
    "screen_stored",
    "screen_symptoms",
]


#: The codes :func:`screen_stored` can put first (others never raise a critical flag alone).
SCREENED_CODES = frozenset({BP_PANEL, *GLUCOSE, LOCAL_CODES["symptom"]})
#: The codes whose screen reads the reading's context (glucose: the sample type; symptom
#: events: the symptoms); for the others a caller need not parse it.
CONTEXT_CODES = frozenset({*GLUCOSE, LOCAL_CODES["symptom"]})


class Screen(IntEnum):
    """How urgently the runner should look at a resident after this reading."""

    NONE = 0  # no single-reading critical rule can fire from it
    IF_SYMPTOMS = 1  # critical only with a DKA-type symptom within the rule's window
    CRITICAL = 2  # a critical rule may fire from this reading alone


def screen_bp(sys: float | None, dia: float | None, ruleset: RuleSet = DEFAULT_RULESET) -> Screen:
    """A blood-pressure reading (mmHg, as stored): BP-CRISIS's thresholds."""
    th = ruleset.thresholds.bp
    s = math.nan if sys is None else float(sys)
    d = math.nan if dia is None else float(dia)
    if s > th.crisis_sys or d > th.crisis_dia:
        return Screen.CRITICAL
    return Screen.NONE


def screen_glucose(
    value: float | None,
    unit: str | None,
    *,
    whole_blood: bool = False,
    status: Iterable[str] = (),
    ruleset: RuleSet = DEFAULT_RULESET,
) -> Screen:
    """A glucose reading in its stored unit: GLU-HYPO-L2, GLU-HYPER-CRITICAL and the glucose
    half of GLU-HYPER-SYMPTOMATIC. A meter HI or LO is critical whatever the value."""
    names = frozenset(status)
    if names & GLUCOSE_HI or names & GLUCOSE_LO:
        return Screen.CRITICAL
    if value is None or unit not in units.GLUCOSE_FACTORS:
        return Screen.NONE  # the engine cannot use it: nothing fires
    g = ruleset.thresholds.glucose
    mg_dl = float(units.glucose_to_mg_dl(value, unit, whole_blood=whole_blood))
    if mg_dl < g.hypo_l2 or mg_dl >= g.hyper_critical:
        return Screen.CRITICAL
    if mg_dl >= min(g.hyper_symptomatic, g.hyper_critical):
        return Screen.IF_SYMPTOMS
    return Screen.NONE


def screen_symptoms(symptoms: Iterable[str]) -> Screen:
    """A symptom event: any symptom may complete a critical rule (GLU-HYPO-L3 alone, a DKA-type
    symptom with a glucose ≥ 200 before or after it), so every one goes first."""
    return Screen.CRITICAL if any(True for _ in symptoms) else Screen.NONE


def screen_stored(
    code: str,
    value: float | None,
    unit: str | None,
    components: Mapping[str, Any] | None,
    quality: Iterable[str] | None,
    context: Mapping[str, Any] | None,
    ruleset: RuleSet = DEFAULT_RULESET,
) -> Screen:
    """One stored Observation's columns, read the way the clinical runner reads them for the
    engine (``clinical.runner.add_series``): BP components by LOINC, glucose by its code and
    unit with the context's ``sample_type``, symptom events by ``context.symptoms``."""
    ctx = context or {}
    if code == BP_PANEL:
        comp = components or {}
        return screen_bp(_num(comp.get(SYSTOLIC)), _num(comp.get(DIASTOLIC)), ruleset)
    if code in GLUCOSE:
        return screen_glucose(
            _num(value),
            unit or "",
            whole_blood=str(ctx.get("sample_type", "")).endswith("whole_blood"),
            status=quality or (),
            ruleset=ruleset,
        )
    if code == LOCAL_CODES["symptom"]:
        return screen_symptoms(str(x) for x in ctx.get("symptoms", ()))
    return Screen.NONE


def _num(v: Any) -> float | None:
    return None if v is None else float(v)
