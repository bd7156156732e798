"""The runner's FHIR rendering of flags and follow-up work (FlagState → Flag, RiskAssessment, Task).

The clinical core decides what is true (severity, lifecycle status, due times, the wording a
liaison officer may see); this module turns a ``FlagState`` into plain facts and hands them to
the one home of FHIR, :mod:`ingest.fhir.clinical`, which the API also uses to render stored
flags. Like ``clinical.runner`` it sits at the runner's edge (it imports ``ingest.fhir``); the
pure core never imports it (tests/foundation/test_architecture.py).

Liaison officers' tasks are written in plain language and carry no clinical values, no rule
title and no link to the clinical Flag (§0, §10.2.8); they name the topic only
(:func:`clinical.flags.liaison_label`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from clinical.digest import Digest, period
from clinical.flags import FlagStatus, Recipient, Severity, liaison_label
from clinical.lifecycle import KST, FlagState
from clinical.ruleset import Hygiene, RuleSet
from clinical.visiting import VISITS, Group
from ingest.fhir import clinical as fhir_clinical
from ingest.fhir.clinical import CommunicationFacts, FlagFacts, TaskFacts, flag_identifier


def flag_facts(flag: FlagState, ruleset: RuleSet, *, flag_id: str | None = None) -> FlagFacts:
    """The plain facts :mod:`ingest.fhir.clinical` renders."""
    spec = ruleset.rules.get(flag.rule)
    return FlagFacts(
        resident=flag.resident,
        rule=flag.rule,
        rule_set=flag.rule_set,
        severity=flag.severity.value,
        is_open=flag.is_open,
        summary=flag.summary,
        opened_at=flag.opened_at,
        closed_at=flag.closed_at,
        rule_display=spec.title_en if spec else flag.rule,
        id=flag_id or flag.id,
    )


def flag_resource(
    flag: FlagState, ruleset: RuleSet, *, flag_id: str | None = None
) -> dict[str, Any]:
    """A FHIR ``Flag`` for a stored flag (active while open)."""
    return fhir_clinical.flag(flag_facts(flag, ruleset, flag_id=flag_id))


def _flag_key(flag: FlagState) -> str:
    return flag_identifier(flag.resident, flag.rule, flag.opened_at)


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
    return fhir_clinical.risk_assessment(
        flag_facts(flag, ruleset, flag_id=flag_id),
        outcome=f"{spec.title_ko} / {spec.title_en}" if spec else flag.rule,
        evidence_refs=evidence_refs,
        note=f"{spec.action_ko} / {spec.action_en} (source: {spec.source})" if spec else None,
    )


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
    return fhir_clinical.task(
        TaskFacts(
            identifier=task_key(flag, role, welfare_check=welfare_check),
            status=status,
            business_status=business,
            severity=severity.value,
            code=code,
            description=description,
            resident=flag.resident,
            authored_on=flag.opened_at,
            last_modified=now or flag.alerted_at,
            due=due,
            role=role,
            owner=owner,
            focus_flag=None if liaison else (flag_id or flag.id),
        )
    )


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
    return fhir_clinical.task(
        TaskFacts(
            identifier=f"{resident}/visit-group/{now.strftime('%Y%m%dT%H%M%SZ')}",
            status="requested",
            business_status="open",
            business_text=False,
            severity=Severity.ROUTINE.value,
            code="visit-schedule",
            description=text,
            resident=resident,
            authored_on=now,
            due=now + timedelta(days=30),
            role=Recipient.LIAISON.value,
            owner=owner,
        )
    )


def digest_identifier(d: Digest) -> str:
    year, week, _ = d.week.isocalendar()
    return f"digest-{d.recipient}-{year}-W{week:02d}"


def digest_resource(d: Digest, digest_id: int | None = None) -> dict[str, Any]:
    """The FHIR ``Communication`` of a nurse's weekly digest (sent when it is delivered)."""
    start, end = period(d.week)
    return fhir_clinical.communication(
        CommunicationFacts(
            identifier=digest_identifier(d),
            recipient=d.recipient,
            sent=d.deliver_after,
            period_start=start,
            period_end=end - timedelta(days=1),
            flags=[str(i.flag_id) for i in d.items],
            text=d.text(),
            id=None if digest_id is None else str(digest_id),
        )
    )
