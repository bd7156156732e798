"""FHIR Flag, RiskAssessment and Task output, validated with fhir.resources R4B models."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.riskassessment import RiskAssessment
from fhir.resources.R4B.task import Task

from clinical.flags import FlagStatus, Recipient, Severity, liaison_label
from clinical.lifecycle import KST, FlagState, acknowledge, resolve, snooze
from clinical.resources import (
    flag_resource,
    group_change_task,
    risk_assessment,
    task_due,
    task_resource,
)
from clinical.ruleset import DEFAULT_RULESET
from clinical.visiting import Group

RS = DEFAULT_RULESET
T0 = datetime(2026, 3, 10, 10, 0, tzinfo=KST)


def flag(rule="BP-CRISIS", severity=Severity.CRITICAL, **kw) -> FlagState:
    spec = RS.rule(rule)
    base = {
        "resident": "R0001234",
        "rule": rule,
        "rule_set": RS.version,
        "severity": severity,
        "recipients": spec.recipients,
        "status": FlagStatus.OPEN,
        "opened_at": T0,
        "alerted_at": T0,
        "summary": "고혈압 위기 수치 (192/104 mmHg) / hypertensive crisis reading (192/104 mmHg)",
        "evidence": (3,),
        "id": "f-17",
    }
    base.update(kw)
    return FlagState(**base)


def test_flag_resource_is_valid_r4b_and_carries_the_rule_set():
    res = flag_resource(flag(), RS)
    model = Flag.model_validate(res)
    assert model.status == "active"
    coding = model.code.coding[0]
    assert (coding.code, coding.version) == ("BP-CRISIS", RS.version)
    assert model.subject.reference == "Patient/R0001234"
    assert model.extension[0].valueCodeableConcept.coding[0].code == "PH"


def test_closed_flag_is_inactive_with_an_end():
    closed = resolve(flag(), "nurse-07", "called 119", T0 + timedelta(minutes=40))
    model = Flag.model_validate(flag_resource(closed, RS))
    assert model.status == "inactive"
    assert model.period.end is not None


def test_risk_assessment_cites_the_evidence():
    res = risk_assessment(flag(), RS, evidence_refs=["Observation/obs-3"])
    model = RiskAssessment.model_validate(res)
    assert model.basis[0].reference == "Observation/obs-3"
    assert model.method.coding[0].version == RS.version
    assert model.prediction[0].qualitativeRisk.coding[0].code == "high"


@pytest.mark.parametrize(
    ("severity", "priority", "due"),
    [
        (Severity.CRITICAL, "stat", T0 + timedelta(hours=1)),  # nurse within 1 h
        (Severity.URGENT, "urgent", datetime(2026, 3, 10, 18, 0, tzinfo=KST)),  # same day
        (Severity.ROUTINE, "routine", T0 + timedelta(days=7)),  # ≤ 7 days
    ],
)
def test_nurse_task_priority_and_due_date(severity, priority, due):
    res = task_resource(flag(severity=severity), "nurse", RS, owner="nurse-07")
    model = Task.model_validate(res)
    assert model.priority == priority
    assert model.restriction.period.end == due
    assert model.owner.reference == "Practitioner/nurse-07"
    assert model.focus.reference == "Flag/f-17"
    assert model.performerType[0].coding[0].code == "nurse"
    assert "192/104" in model.description  # clinical staff see the values


def test_task_without_owner_goes_to_the_role():
    model = Task.model_validate(task_resource(flag(), "rehab", RS))
    assert model.owner is None
    assert model.performerType[0].coding[0].code == "rehab"


def test_routine_due_date_moves_up_to_an_earlier_visit():
    due = task_due(Severity.ROUTINE, T0, RS.thresholds.hygiene, next_visit=date(2026, 3, 12))
    assert due == datetime(2026, 3, 12, 18, 0, tzinfo=KST)


def test_urgent_raised_in_the_evening_is_due_next_day():
    evening = datetime(2026, 3, 10, 19, 30, tzinfo=KST)
    assert task_due(Severity.URGENT, evening, RS.thresholds.hygiene) == datetime(
        2026, 3, 11, 18, 0, tzinfo=KST
    )


@pytest.mark.parametrize(
    ("status_fn", "status", "business"),
    [
        (lambda f: f, "requested", "open"),
        (lambda f: acknowledge(f, "n", T0), "accepted", "acknowledged"),
        (
            lambda f: snooze(f, "n", T0 + timedelta(hours=3), "at hospital", T0),
            "on-hold",
            "snoozed",
        ),
        (lambda f: resolve(f, "n", "done", T0), "completed", "resolved"),
    ],
)
def test_business_status_mirrors_the_flag(status_fn, status, business):
    model = Task.model_validate(task_resource(status_fn(flag()), "nurse", RS))
    assert model.status == status
    assert model.businessStatus.coding[0].code == business


LIAISON_RULES = [r.id for r in RS.rules.values() if Recipient.LIAISON in r.recipients] + [
    "BP-CRISIS",
    "GLU-HYPO-L2",  # escalation recipients for welfare checks
]


@pytest.mark.parametrize("rule", LIAISON_RULES)
@pytest.mark.parametrize("welfare_check", [False, True])
def test_liaison_tasks_are_plain_language_without_clinical_values(rule, welfare_check):
    spec = RS.rule(rule)
    summary = "체중 56.2 kg, BMI 18.1 / weight 56.2 kg, BMI 18.1, PHQ-9 14"
    res = task_resource(
        flag(rule, spec.severity, summary=summary), "liaison", RS, welfare_check=welfare_check
    )
    model = Task.model_validate(res)
    text = model.description
    assert not re.search(r"\d", text)  # no numbers at all
    for word in ("mmHg", "mg/dL", "kg", "BMI", "PHQ", "%", spec.title_en, spec.title_ko):
        assert word not in text
    assert model.focus is None  # no link to the clinical Flag
    assert rule not in str(res)
    if not welfare_check and rule != "ADH-NO-DATA":
        assert liaison_label(rule).split(" / ")[0] in text


def test_group_change_task_for_the_liaison_officer():
    res = group_change_task("R0001234", Group.REGULAR, T0, owner="liaison-3")
    model = Task.model_validate(res)
    assert model.code.coding[0].code == "visit-schedule"
    assert model.owner.reference == "Practitioner/liaison-3"
    assert "3개월" in model.description
