"""Flag, RiskAssessment, Task and the weekly digest's Communication: the FHIR face of the risk
engine's flags and follow-up work.

Pure builders over plain values. The clinical core (numpy, stdlib) decides *what* is true of a
resident (severity, status, due time, wording); the runner (``clinical.resources``) turns its
``FlagState`` into :class:`FlagFacts` / :class:`TaskFacts` and calls these, and the API renders
a stored flag with the same functions, so one flag has one shape wherever it is served.

Clinical risk never goes into the device Observation (fhir-mapping-and-anchors.md §2.5): a flag
is a ``Flag`` (what is true now) and a ``RiskAssessment`` (the rule, its version, the readings it
rests on); each recipient gets a ``Task``. Times carry ``+09:00`` like Observations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ingest.fhir.ids import patient_reference, practitioner_reference
from ingest.fhir.vocab import (
    BUSINESS_STATUS_SYSTEM,
    COMMUNICATION_CATEGORY_SYSTEM,
    DIGEST_IDENTIFIER_SYSTEM,
    FLAG_CATEGORY_SYSTEM,
    FLAG_IDENTIFIER_SYSTEM,
    FLAG_PRIORITY,
    FLAG_PRIORITY_EXTENSION,
    FLAG_PRIORITY_SYSTEM,
    RISK_PROBABILITY,
    RISK_PROBABILITY_SYSTEM,
    ROLE_DISPLAY,
    ROLE_SYSTEM,
    RULE_SET_TAG,
    RULE_SYSTEM,
    TASK_CODE_SYSTEM,
    TASK_IDENTIFIER_SYSTEM,
    TASK_PRIORITY,
    kst,
)


def _when(moment: datetime) -> str:
    """Korea time with the precision the runner keeps (due times are read back from it)."""
    return kst(moment).isoformat()


@dataclass(frozen=True, slots=True)
class FlagFacts:
    """What a Flag and its RiskAssessment say; ``severity`` is a ``clinical.flags.Severity``."""

    resident: str
    rule: str
    rule_set: str
    severity: str
    is_open: bool
    summary: str
    opened_at: datetime
    closed_at: datetime | None = None
    rule_display: str | None = None  # the rule's English title
    id: str | None = None


def flag_identifier(resident: str, rule: str, opened_at: datetime) -> str:
    """The business identifier of a flag (stable across re-renders of the same flag)."""
    return f"{resident}/{rule}/{opened_at.strftime('%Y%m%dT%H%M%SZ')}"


def _rule_coding(f: FlagFacts) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": RULE_SYSTEM, "version": f.rule_set, "code": f.rule}
    coding["display"] = f.rule_display or f.rule
    return coding


def flag(f: FlagFacts) -> dict[str, Any]:
    """A FHIR ``Flag``: active while the flag is open."""
    code, display = FLAG_PRIORITY.get(f.severity, FLAG_PRIORITY["info"])
    period: dict[str, str] = {"start": _when(f.opened_at)}
    if f.closed_at is not None:
        period["end"] = _when(f.closed_at)
    res: dict[str, Any] = {"resourceType": "Flag"}
    if f.id:
        res["id"] = f.id
    res["meta"] = {"tag": [{"system": RULE_SET_TAG, "code": f.rule_set}]}
    res["extension"] = [
        {
            "url": FLAG_PRIORITY_EXTENSION,
            "valueCodeableConcept": {
                "coding": [{"system": FLAG_PRIORITY_SYSTEM, "code": code, "display": display}]
            },
        }
    ]
    res["identifier"] = [
        {
            "system": FLAG_IDENTIFIER_SYSTEM,
            "value": flag_identifier(f.resident, f.rule, f.opened_at),
        }
    ]
    res["status"] = "active" if f.is_open else "inactive"
    res["category"] = [
        {"coding": [{"system": FLAG_CATEGORY_SYSTEM, "code": "clinical", "display": "Clinical"}]}
    ]
    res["code"] = {"coding": [_rule_coding(f)], "text": f.summary}
    res["subject"] = {"reference": patient_reference(f.resident)}
    res["period"] = period
    return res


def risk_assessment(
    f: FlagFacts,
    *,
    outcome: str | None = None,
    evidence_refs: Sequence[str] = (),
    note: str | None = None,
) -> dict[str, Any]:
    """A FHIR ``RiskAssessment``: the rule, its rule-set version and the readings it rests on.

    ``evidence_refs`` are references such as ``Observation/…``; ``outcome`` is the rule's title
    (Korean / English), ``note`` the recommended action.
    """
    res: dict[str, Any] = {"resourceType": "RiskAssessment"}
    if f.id:
        res["id"] = f.id
        res["identifier"] = [
            {
                "system": FLAG_IDENTIFIER_SYSTEM,
                "value": flag_identifier(f.resident, f.rule, f.opened_at),
            }
        ]
    res["status"] = "final" if f.is_open else "amended"
    res["method"] = {"coding": [_rule_coding(f)]}
    res["subject"] = {"reference": patient_reference(f.resident)}
    res["occurrenceDateTime"] = _when(f.opened_at)
    if evidence_refs:
        res["basis"] = [{"reference": ref} for ref in evidence_refs]
    res["prediction"] = [
        {
            "outcome": {"text": outcome or f.rule},
            "qualitativeRisk": {
                "coding": [
                    {
                        "system": RISK_PROBABILITY_SYSTEM,
                        "code": RISK_PROBABILITY.get(f.severity, "low"),
                    }
                ]
            },
            "rationale": f.summary,
        }
    ]
    if note:
        res["note"] = [{"text": note}]
    return res


@dataclass(frozen=True, slots=True)
class TaskFacts:
    """What a follow-up Task says. ``severity`` picks Task.priority; ``role`` is a care role
    (nurse, rehab, liaison, nurse_lead); ``owner`` a staff account id, when one is assigned."""

    identifier: str
    status: str  # FHIR task-status
    business_status: str  # our flag-status code (open, acknowledged, escalated, ...)
    severity: str
    code: str  # follow-up-task code
    description: str
    resident: str
    authored_on: datetime
    due: datetime
    role: str
    last_modified: datetime | None = None
    owner: str | None = None
    focus_flag: str | None = None  # Flag id (never on a liaison officer's task)
    business_text: bool = True  # also put the code as businessStatus.text


def task(t: TaskFacts) -> dict[str, Any]:
    """A FHIR ``Task`` for one recipient role (owner when assigned, else ``performerType``)."""
    business: dict[str, Any] = {
        "coding": [{"system": BUSINESS_STATUS_SYSTEM, "code": t.business_status}]
    }
    if t.business_text:
        business["text"] = t.business_status
    res: dict[str, Any] = {
        "resourceType": "Task",
        "identifier": [{"system": TASK_IDENTIFIER_SYSTEM, "value": t.identifier}],
        "status": t.status,
        "businessStatus": business,
        "intent": "order",
        "priority": TASK_PRIORITY.get(t.severity, "routine"),
        "code": {"coding": [{"system": TASK_CODE_SYSTEM, "code": t.code}]},
        "description": t.description,
    }
    if t.focus_flag:
        res["focus"] = {"reference": f"Flag/{t.focus_flag}"}
    res["for"] = {"reference": patient_reference(t.resident)}
    res["authoredOn"] = _when(t.authored_on)
    if t.last_modified is not None:
        res["lastModified"] = _when(t.last_modified)
    res["performerType"] = [
        {
            "coding": [
                {"system": ROLE_SYSTEM, "code": t.role, "display": ROLE_DISPLAY.get(t.role, t.role)}
            ]
        }
    ]
    if t.owner:
        res["owner"] = {"reference": practitioner_reference(t.owner)}
    res["restriction"] = {"period": {"end": _when(t.due)}}
    return res


@dataclass(frozen=True, slots=True)
class CommunicationFacts:
    """A nurse's weekly digest (clinical.digest) as sent: to whom, about which flags, the text."""

    identifier: str
    recipient: str  # staff user id
    sent: datetime
    period_start: datetime
    period_end: datetime
    flags: Sequence[str]  # Flag ids the digest is about
    text: str
    id: str | None = None


def communication(c: CommunicationFacts) -> dict[str, Any]:
    """A FHIR R4 ``Communication``: the digest delivered to its nurse (``recipient``), ``about``
    each Flag of the week, ``topic`` the week, the text as ``payload``."""
    res: dict[str, Any] = {"resourceType": "Communication"}
    if c.id is not None:
        res["id"] = c.id
    res["identifier"] = [{"system": DIGEST_IDENTIFIER_SYSTEM, "value": c.identifier}]
    res["status"] = "completed"
    res["category"] = [
        {
            "coding": [
                {
                    "system": COMMUNICATION_CATEGORY_SYSTEM,
                    "code": "weekly-digest",
                    "display": "주간 요약 / Weekly digest",
                }
            ]
        }
    ]
    res["priority"] = "routine"
    res["topic"] = {
        "text": f"{kst(c.period_start):%Y-%m-%d} ~ {kst(c.period_end):%Y-%m-%d}",
    }
    res["about"] = [{"reference": f"Flag/{f}"} for f in c.flags]
    res["sent"] = _when(c.sent)
    res["recipient"] = [{"reference": practitioner_reference(c.recipient)}]
    res["payload"] = [{"contentString": c.text}]
    return res
