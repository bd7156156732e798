"""FHIR R4B resources for flags and follow-up work, as plain JSON-ready dicts.

Clinical risk never goes into the device Observation (fhir-mapping-and-anchors.md §4): each flag
becomes a ``Flag`` (what is true of the resident now) and a ``RiskAssessment`` (the rule, its
rule-set version and the readings it rests on), and each recipient gets a ``Task`` with an owner
(a named person, when assigned) or a role (``performerType``), a priority, a due date
(``restriction.period.end``) and a ``businessStatus`` that mirrors the flag's lifecycle.

Liaison officers' tasks are written in plain language and carry no clinical values, no rule
title and no link to the clinical Flag (§0, §10.2.8); they name the topic only
(:func:`clinical.flags.liaison_label`).

Built here without importing ``fhir.resources`` (clinical/ imports numpy and the stdlib only);
the tests validate every shape with ``fhir.resources.R4B``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from clinical.flags import FlagStatus, Recipient, Severity, liaison_label
from clinical.lifecycle import KST, NURSE_LEAD, FlagState
from clinical.ruleset import Hygiene, RuleSet
from clinical.visiting import VISITS, Group

SYSTEM = "https://daon.junggu.seoul.kr/fhir"
RULE_SYSTEM = f"{SYSTEM}/CodeSystem/clinical-rule"  # version = the rule-set version
TASK_CODE_SYSTEM = f"{SYSTEM}/CodeSystem/follow-up-task"
BUSINESS_STATUS_SYSTEM = f"{SYSTEM}/CodeSystem/flag-status"
ROLE_SYSTEM = f"{SYSTEM}/CodeSystem/care-role"
FLAG_PRIORITY_EXT = "http://hl7.org/fhir/StructureDefinition/flag-priority"
FLAG_PRIORITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/flag-priority"
RISK_PROBABILITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/risk-probability"
FLAG_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/flag-category"

_FLAG_PRIORITY = {  # flag-priority: PN none, PL low, PM medium, PH high
    Severity.CRITICAL: ("PH", "High priority"),
    Severity.URGENT: ("PM", "Medium priority"),
    Severity.ROUTINE: ("PL", "Low priority"),
    Severity.INFO: ("PN", "No alarm"),
}
_TASK_PRIORITY = {
    Severity.CRITICAL: "stat",
    Severity.URGENT: "urgent",
    Severity.ROUTINE: "routine",
    Severity.INFO: "routine",
}
_RISK = {
    Severity.CRITICAL: "high",
    Severity.URGENT: "high",
    Severity.ROUTINE: "moderate",
    Severity.INFO: "low",
}
_ROLE_DISPLAY = {
    Recipient.NURSE.value: "방문간호사 / visiting nurse",
    Recipient.REHAB.value: "재활운동사 / rehabilitation therapist",
    Recipient.LIAISON.value: "현장소통담당관 / liaison officer",
    NURSE_LEAD: "간호 팀장 / nurse team lead",
}


def _iso(when: datetime) -> str:
    return when.isoformat()


def _rule_coding(flag: FlagState, ruleset: RuleSet) -> dict[str, Any]:
    spec = ruleset.rules.get(flag.rule)
    return {
        "system": RULE_SYSTEM,
        "version": flag.rule_set,
        "code": flag.rule,
        "display": spec.title_en if spec else flag.rule,
    }


def flag_resource(
    flag: FlagState, ruleset: RuleSet, *, flag_id: str | None = None
) -> dict[str, Any]:
    """A FHIR ``Flag`` for a stored flag (active while open)."""
    code, display = _FLAG_PRIORITY[flag.severity]
    period: dict[str, str] = {"start": _iso(flag.opened_at)}
    if flag.closed_at is not None:
        period["end"] = _iso(flag.closed_at)
    res: dict[str, Any] = {
        "resourceType": "Flag",
        "meta": {"tag": [{"system": f"{SYSTEM}/rule-set", "code": flag.rule_set}]},
        "identifier": [{"system": f"{SYSTEM}/flag", "value": _flag_key(flag)}],
        "status": "active" if flag.is_open else "inactive",
        "category": [
            {
                "coding": [
                    {"system": FLAG_CATEGORY_SYSTEM, "code": "clinical", "display": "Clinical"}
                ]
            }
        ],
        "code": {"coding": [_rule_coding(flag, ruleset)], "text": flag.summary},
        "subject": {"reference": f"Patient/{flag.resident}"},
        "period": period,
        "extension": [
            {
                "url": FLAG_PRIORITY_EXT,
                "valueCodeableConcept": {
                    "coding": [{"system": FLAG_PRIORITY_SYSTEM, "code": code, "display": display}]
                },
            }
        ],
    }
    if flag_id or flag.id:
        res["id"] = flag_id or flag.id
    return res


def _flag_key(flag: FlagState) -> str:
    return f"{flag.resident}/{flag.rule}/{flag.opened_at.strftime('%Y%m%dT%H%M%SZ')}"


def task_key(flag: FlagState, role: str, *, welfare_check: bool = False) -> str:
    """A stable task identifier. Opaque (a hash), because a liaison officer may see it and a
    rule id such as SCR-DEP-SUICIDE would itself disclose clinical information."""
    raw = f"{_flag_key(flag)}/{role}{'/welfare' if welfare_check else ''}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def risk_assessment(
    flag: FlagState,
    ruleset: RuleSet,
    *,
    evidence_refs: Sequence[str] = (),
    flag_id: str | None = None,
) -> dict[str, Any]:
    """A FHIR ``RiskAssessment``: the rule, its rule-set version and the readings it rests on.

    ``evidence_refs`` are references such as ``Observation/…`` for the readings the flag cites.
    """
    spec = ruleset.rules.get(flag.rule)
    res: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "status": "final" if flag.is_open else "amended",
        "subject": {"reference": f"Patient/{flag.resident}"},
        "occurrenceDateTime": _iso(flag.opened_at),
        "method": {"coding": [_rule_coding(flag, ruleset)]},
        "prediction": [
            {
                "outcome": {"text": f"{spec.title_ko} / {spec.title_en}" if spec else flag.rule},
                "qualitativeRisk": {
                    "coding": [{"system": RISK_PROBABILITY_SYSTEM, "code": _RISK[flag.severity]}]
                },
                "rationale": flag.summary,
            }
        ],
    }
    if evidence_refs:
        res["basis"] = [{"reference": ref} for ref in evidence_refs]
    if flag_id or flag.id:
        res["identifier"] = [{"system": f"{SYSTEM}/flag", "value": _flag_key(flag)}]
    if spec:
        res["note"] = [{"text": f"{spec.action_ko} / {spec.action_en} (source: {spec.source})"}]
    return res


def task_due(
    severity: Severity, raised_at: datetime, h: Hygiene, next_visit: date | None = None
) -> datetime:
    """§0 response time frames: critical 1 h; urgent the same working day (≤ 24 h);
    routine 7 days or the next scheduled visit, whichever is sooner."""
    if severity is Severity.CRITICAL:
        return raised_at + timedelta(hours=h.critical_due_h)
    local = raised_at.astimezone(KST)
    if severity is Severity.URGENT:
        due = local.replace(hour=h.urgent_due_local_hour, minute=0, second=0, microsecond=0)
        if due <= local:
            due += timedelta(days=1)
        return due
    due = local + timedelta(days=h.routine_due_days)
    if next_visit is not None:
        visit = datetime(next_visit.year, next_visit.month, next_visit.day, 18, tzinfo=KST)
        if local < visit < due:
            due = visit
    return due


def business_status(flag: FlagState) -> tuple[str, str]:
    """FHIR Task.status and the businessStatus code mirroring the flag."""
    if flag.status is FlagStatus.RESOLVED:
        return "completed", "resolved"
    if flag.status is FlagStatus.SUPERSEDED:
        return "cancelled", "superseded"
    if flag.status is FlagStatus.SNOOZED:
        return "on-hold", "snoozed"
    if flag.status is FlagStatus.ACKNOWLEDGED:
        return "accepted", "acknowledged"
    if flag.escalation > 0:
        return "requested", "escalated"
    return "requested", "open"


def liaison_text(rule: str, *, welfare_check: bool = False) -> str:
    """Plain-language wording for a liaison officer: a topic and a request, never a value."""
    if welfare_check:
        return (
            "간호사가 대상자와 연락이 닿지 않습니다. 지금 안부 확인을 부탁드립니다. / "
            "The nurse cannot reach this resident. Please make a welfare check now."
        )
    if rule == "ADH-NO-DATA":
        return (
            "최근 건강 측정 기록이 없습니다. 이번 주에 전화나 방문으로 기기 문제나 안부를 "
            "확인해 주세요. / This resident has stopped measuring. Please phone or visit "
            "this week: device problem, unwell, or a welfare check."
        )
    return (
        f"이번 주에 대상자에게 전화하거나 방문해 주세요: {liaison_label(rule)}. / "
        f"Please phone or visit this resident this week about: {liaison_label(rule)}."
    )


def task_resource(
    flag: FlagState,
    role: str,
    ruleset: RuleSet,
    *,
    owner: str | None = None,
    flag_id: str | None = None,
    welfare_check: bool = False,
    next_visit: date | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A FHIR ``Task`` for one recipient role of a flag.

    ``owner`` is a Practitioner id when the resident has an assigned person for the role
    (their nurse, their liaison officer); otherwise the task goes to the role
    (``performerType``) and whoever is on duty takes it.
    """
    status, business = business_status(flag)
    spec = ruleset.rules.get(flag.rule)
    liaison = role == Recipient.LIAISON.value
    severity = Severity.URGENT if welfare_check else flag.severity
    due = task_due(severity, now or flag.alerted_at, ruleset.thresholds.hygiene, next_visit)
    if liaison:
        description = liaison_text(flag.rule, welfare_check=welfare_check)
        code = "welfare-check" if welfare_check or flag.rule == "ADH-NO-DATA" else "follow-up"
    else:
        action = f"{spec.action_ko} / {spec.action_en}" if spec else ""
        description = f"{flag.summary}. {action}".strip()
        code = "clinical-follow-up"
    res: dict[str, Any] = {
        "resourceType": "Task",
        "identifier": [
            {
                "system": f"{SYSTEM}/task",
                "value": task_key(flag, role, welfare_check=welfare_check),
            }
        ],
        "status": status,
        "businessStatus": {
            "coding": [{"system": BUSINESS_STATUS_SYSTEM, "code": business}],
            "text": business,
        },
        "intent": "order",
        "priority": _TASK_PRIORITY[severity],
        "code": {"coding": [{"system": TASK_CODE_SYSTEM, "code": code}]},
        "description": description,
        "for": {"reference": f"Patient/{flag.resident}"},
        "authoredOn": _iso(flag.opened_at),
        "lastModified": _iso(now or flag.alerted_at),
        "restriction": {"period": {"end": _iso(due)}},
        "performerType": [
            {
                "coding": [
                    {"system": ROLE_SYSTEM, "code": role, "display": _ROLE_DISPLAY.get(role, role)}
                ]
            }
        ],
    }
    if owner:
        res["owner"] = {"reference": f"Practitioner/{owner}"}
    if not liaison and (flag_id or flag.id):
        res["focus"] = {"reference": f"Flag/{flag_id or flag.id}"}
    return res


def group_change_task(
    resident: str,
    group: Group,
    now: datetime,
    *,
    owner: str | None = None,
) -> dict[str, Any]:
    """A plain-language task telling the liaison officer the visit schedule changed (§9)."""
    text = (
        f"방문 일정이 바뀌었습니다: {VISITS[group].split(' / ')[0]}. 월간 방문 계획에 "
        f"반영해 주세요. / The visit schedule changed: {VISITS[group].split(' / ')[1]}. "
        "Please take it into your monthly visit plan."
    )
    res: dict[str, Any] = {
        "resourceType": "Task",
        "identifier": [
            {
                "system": f"{SYSTEM}/task",
                "value": f"{resident}/visit-group/{now.strftime('%Y%m%dT%H%M%SZ')}",
            }
        ],
        "status": "requested",
        "businessStatus": {"coding": [{"system": BUSINESS_STATUS_SYSTEM, "code": "open"}]},
        "intent": "order",
        "priority": "routine",
        "code": {"coding": [{"system": TASK_CODE_SYSTEM, "code": "visit-schedule"}]},
        "description": text,
        "for": {"reference": f"Patient/{resident}"},
        "authoredOn": _iso(now),
        "restriction": {"period": {"end": _iso(now + timedelta(days=30))}},
        "performerType": [
            {
                "coding": [
                    {
                        "system": ROLE_SYSTEM,
                        "code": Recipient.LIAISON.value,
                        "display": _ROLE_DISPLAY[Recipient.LIAISON.value],
                    }
                ]
            }
        ],
    }
    if owner:
        res["owner"] = {"reference": f"Practitioner/{owner}"}
    return res
