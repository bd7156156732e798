"""The alert fast path's pre-screen (clinical.prescreen) never misses a reading the rule engine
raises a critical flag from.

Expected values at the thresholds come from clinical-rules.md (§3 BP-CRISIS "> 180 and/or
> 120", §4 GLU-HYPO-L2 "< 54", GLU-HYPER-CRITICAL "≥ 400 or HI", GLU-HYPER-SYMPTOMATIC "≥ 200 +
DKA-type symptom", §1 mmol/L × 18.016 and whole blood × 1.11); the property test feeds generated
readings through the runner's own reading path (``clinical.runner.add_series``) and the engine,
and checks every critical finding the new reading takes part in was screened.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from clinical import engine
from clinical.assess import parse_profile
from clinical.codes import BP_PANEL, DIASTOLIC, GLUCOSE, LOCAL_CODES, SYSTOLIC
from clinical.evaluation import resident_results
from clinical.flags import Severity
from clinical.limits import GLUCOSE_HI, GLUCOSE_LO
from clinical.model import BP_STATUS_BITS, SYMPTOMS, Cohort, ReadingsBuilder
from clinical.prescreen import Screen, screen_bp, screen_glucose, screen_stored, screen_symptoms
from clinical.ruleset import DEFAULT_RULESET, DKA_SYMPTOMS, HYPO_L3_SYMPTOM
from clinical.runner import add_series, obs_key
from ingest.fhir import StoredObservation
from ingest.store.observations import Series, screen

NOW = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
SYMPTOM = LOCAL_CODES["symptom"]


@pytest.mark.parametrize(
    ("sys", "dia", "expected"),
    [
        (186, 101, Screen.CRITICAL),  # issue 11's example: hypertensive crisis
        (181, 80, Screen.CRITICAL),  # SBP > 180
        (180, 120, Screen.NONE),  # "> 180 and/or > 120": both at the limit are grade 3, urgent
        (150, 121, Screen.CRITICAL),  # DBP > 120
        (None, 125, Screen.CRITICAL),
        (120, 80, Screen.NONE),
    ],
)
def test_blood_pressure_at_the_crisis_thresholds(sys, dia, expected):
    assert screen_bp(sys, dia) is expected


@pytest.mark.parametrize(
    ("value", "unit", "whole_blood", "status", "expected"),
    [
        (53, "mg/dL", False, (), Screen.CRITICAL),  # < 54: level 2
        (54, "mg/dL", False, (), Screen.NONE),  # 54-69 is level 1, urgent
        (400, "mg/dL", False, (), Screen.CRITICAL),  # ≥ 400
        (399, "mg/dL", False, (), Screen.IF_SYMPTOMS),  # 300-399 urgent; with DKA symptoms critical
        (200, "mg/dL", False, (), Screen.IF_SYMPTOMS),  # ≥ 200 + DKA-type symptom
        (199, "mg/dL", False, (), Screen.NONE),
        (22.2, "mmol/L", False, (), Screen.CRITICAL),  # 22.2 × 18.016 = 399.96 → 400
        (2.9, "mmol/L", False, (), Screen.CRITICAL),  # 52.2 → 52
        (360, "mg/dL", True, (), Screen.CRITICAL),  # whole blood: 360 × 1.11 = 399.6 → 400
        (0.0040, "kg/L", False, (), Screen.CRITICAL),  # 400 mg/dL
        (150, "mg/dL", False, ("result_high",), Screen.CRITICAL),  # meter HI
        (150, "mg/dL", False, ("result_low",), Screen.CRITICAL),  # meter LO
        (500, "furlongs", False, (), Screen.NONE),  # an unknown unit never reaches a rule
    ],
)
def test_glucose_at_the_critical_thresholds(value, unit, whole_blood, status, expected):
    assert screen_glucose(value, unit, whole_blood=whole_blood, status=status) is expected


def test_every_symptom_event_goes_first():
    assert screen_symptoms([HYPO_L3_SYMPTOM]) is Screen.CRITICAL
    assert screen_symptoms(["nausea"]) is Screen.CRITICAL
    assert screen_symptoms([]) is Screen.NONE


def test_ingest_screens_stored_observations_by_resident():
    def obs(rid: str, code: str, value=None, unit=None, comp=None, ctx=None):
        return StoredObservation(
            str(uuid.uuid4()),
            NOW,
            rid,
            code,
            "http://loinc.org",
            value,
            unit,
            None if comp is None else json.dumps(comp),
            None,
            None,
            None,
            "final",
            f"id-{uuid.uuid4()}",
            "{}",
            None,
            (),
            None if ctx is None else json.dumps(ctx),
        )

    critical, if_symptoms = screen(
        [
            obs("R1", BP_PANEL, comp={SYSTOLIC: 186, DIASTOLIC: 101}),
            obs("R2", BP_PANEL, comp={SYSTOLIC: 128, DIASTOLIC: 82}),
            obs("R3", "41653-7", 250, "mg/dL"),
            obs("R4", "41653-7", 250, "mg/dL"),
            obs("R4", "41653-7", 40, "mg/dL"),
            obs("R5", "29463-7", 500, "kg"),
            obs("R6", SYMPTOM, ctx={"symptoms": ["vomiting"]}),
            obs("R7", "41653-7", 300, "mg/dL", ctx={"sample_type": "capillary_whole_blood"}),
        ]
    )
    assert critical == {"R1", "R4", "R6"}
    assert if_symptoms == {"R3", "R7"}


# --------------------------------------------------------------------------- the property


def _row(code, t, *, value=None, unit=None, comp=None, quality=(), ctx=None):
    return (code, t, value, unit, comp, tuple(quality), ctx)


bp_reading = st.builds(
    lambda s, d, status, setting, position: _row(
        BP_PANEL,
        0,
        comp={SYSTOLIC: s, DIASTOLIC: d},
        quality=status,
        ctx={"setting": setting, "position": position},
    ),
    st.one_of(  # around the crisis thresholds more often than uniform draws would be
        st.integers(40, 320), st.floats(150, 260, allow_nan=False), st.integers(178, 183)
    ),
    st.one_of(st.integers(15, 220), st.floats(90, 150, allow_nan=False), st.integers(118, 123)),
    st.lists(st.sampled_from(sorted(BP_STATUS_BITS)), max_size=2, unique=True),
    st.sampled_from(["home", "centre", "visit"]),
    st.sampled_from(["sitting", "supine", "standing"]),
)
glucose_reading = st.builds(
    lambda code, value, unit, wb, status, meal: _row(
        code,
        0,
        value=value,
        unit=unit,
        quality=status,
        ctx={"sample_type": "capillary_whole_blood" if wb else "capillary_plasma", "meal": meal},
    ),
    st.sampled_from(sorted(GLUCOSE)),
    st.one_of(
        st.integers(5, 750).map(float),
        st.floats(0.3, 45, allow_nan=False).map(lambda v: round(v, 1)),
        st.sampled_from([47, 48, 52, 53, 54, 55, 179, 180, 181, 198, 199, 200, 360, 398, 399, 400]),
        st.sampled_from([2.9, 3.0, 3.1, 10.0, 11.0, 11.1, 22.1, 22.2, 22.3, 0.0004, 0.004]),
    ),
    st.sampled_from(["mg/dL", "mg/dL", "mmol/L", "kg/L", "bogus"]),
    st.booleans(),
    st.lists(
        st.sampled_from(sorted(GLUCOSE_HI | GLUCOSE_LO | {"sensor_malfunction"})),
        max_size=1,
    ),
    st.sampled_from(["fasting", "preprandial", "postprandial", "casual", None]),
)
symptom_event = st.lists(
    st.one_of(st.sampled_from(SYMPTOMS), st.sampled_from(sorted(DKA_SYMPTOMS))),
    min_size=1,
    max_size=2,
    unique=True,
).map(lambda names: _row(SYMPTOM, 0, ctx={"symptoms": names}))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    new=st.one_of(bp_reading, glucose_reading, glucose_reading, symptom_event),
    new_age_h=st.floats(0, 100),
    history=st.lists(
        st.tuples(st.one_of(glucose_reading, symptom_event, symptom_event), st.floats(-30, 30)),
        max_size=3,
    ),
)
@example(  # GLU-HYPER-SYMPTOMATIC: 250 mg/dL, nausea 2 h before it
    new=_row("41653-7", 0, value=250.0, unit="mg/dL", ctx={"meal": None}),
    new_age_h=1.0,
    history=[(_row(SYMPTOM, 0, ctx={"symptoms": ["nausea"]}), 2.0)],
)
@example(  # … and vomiting reported 3 h after a 310 mg/dL reading
    new=_row("41653-7", 0, value=310.0, unit="mg/dL", ctx={"meal": "casual"}),
    new_age_h=5.0,
    history=[(_row(SYMPTOM, 0, ctx={"symptoms": ["vomiting"]}), -3.0)],
)
def test_no_critical_finding_the_screen_missed(new, new_age_h, history):
    """Run one resident's readings through the runner's reading path and the engine; every
    fresh critical finding citing the new reading was screened CRITICAL, or IF_SYMPTOMS with a
    DKA-type symptom stored inside the window the runner looks up."""
    rows = [(new, NOW - timedelta(hours=new_age_h), True)]
    # history: hours before (+) or after (-) the new reading, never after now
    ages = [(r, new_age_h + offset) for r, offset in history]
    rows += [(r, NOW - timedelta(hours=age), False) for r, age in ages if age >= 0]
    rows.sort(key=lambda x: (x[1], x[0][0]))
    ids = [str(uuid.uuid4()) for _ in rows]
    series = Series(
        resident_id=tuple("R1" for _ in rows),
        id=tuple(ids),
        effective_at=tuple(at for _, at, _ in rows),
        # history was stored a minute after it was measured (before the cursor below)
        stored_at=tuple(NOW if is_new else at + timedelta(minutes=1) for _, at, is_new in rows),
        code=tuple(r[0] for r, _, _ in rows),
        value=tuple(r[2] for r, _, _ in rows),
        unit=tuple(r[3] for r, _, _ in rows),
        components=tuple(r[4] for r, _, _ in rows),
        quality=tuple(r[5] for r, _, _ in rows),
        context=tuple(r[6] for r, _, _ in rows),
    )
    b = ReadingsBuilder()
    cursor = NOW - timedelta(minutes=10)  # the runner's last look (older history is not fresh)
    add_series(b, series, {"R1": 0}, {"R1": cursor}, NOW - timedelta(hours=72))
    cohort = Cohort.from_profiles([parse_profile({"age": 74, "sex": "F", "height_cm": 155})])
    ev = engine.evaluate(cohort, b.build(), engine.epoch(NOW), DEFAULT_RULESET)
    result = resident_results(ev, since={})[0]
    new_index = obs_key(ids[[is_new for _, _, is_new in rows].index(True)])
    critical = [
        f
        for f in result.findings
        if f.severity is Severity.CRITICAL and f.fresh and new_index in f.evidence
    ]
    if not critical:
        return
    code, _, value, unit, comp, quality, ctx = new
    found = screen_stored(code, value, unit, comp, quality, ctx)
    if found is Screen.IF_SYMPTOMS:
        window = timedelta(hours=DEFAULT_RULESET.thresholds.glucose.hyper_symptom_hours + 72)
        near = [
            r
            for r, at, is_new in rows
            if not is_new
            and r[0] == SYMPTOM
            and at >= NOW - window
            and set(r[6]["symptoms"]) & DKA_SYMPTOMS
        ]
        assert near, f"{[f.rule for f in critical]} without a DKA symptom the runner would find"
        return
    assert found is Screen.CRITICAL, f"screen missed {[f.rule for f in critical]} for {new}"
