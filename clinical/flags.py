"""The risk-flag vocabulary shared with the API: severities, recipients, statuses, the flag value.

Kept small, stable and standard-library only, because ``api/`` imports it (house-style §3.2).
The rule engine, lifecycle and FHIR output live elsewhere in :mod:`clinical`.

Liaison officers may see *that* a resident needs follow-up but never the clinical values
(clinical-rules.md §0, §10.2.8): :func:`liaison_label` gives the plain-language topic for a rule
id, and nothing else about the flag should be shown to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Severity(StrEnum):
    """clinical-rules.md §0: who is notified and how fast."""

    CRITICAL = "critical"  # possible emergency: push, re-raise every 15 min, escalate
    URGENT = "urgent"  # same working day
    ROUTINE = "routine"  # within 7 days or the next visit
    INFO = "info"  # dashboard / resident app only, never a staff notification

    @property
    def rank(self) -> int:
        """Higher is more severe: info 0 … critical 3."""
        return _RANK[self]

    @classmethod
    def from_rank(cls, rank: int) -> Severity:
        return _BY_RANK[rank]


_RANK = {Severity.INFO: 0, Severity.ROUTINE: 1, Severity.URGENT: 2, Severity.CRITICAL: 3}
_BY_RANK = {v: k for k, v in _RANK.items()}


class Recipient(StrEnum):
    """Who a flag is for (clinical-rules.md §0)."""

    NURSE = "nurse"  # visiting / centre nurse
    REHAB = "rehab"  # rehabilitation therapist
    LIAISON = "liaison"  # liaison officer: plain-language tasks only, never values
    RESIDENT = "resident"  # a prompt in the resident's app


class FlagStatus(StrEnum):
    """Lifecycle of one flag (clinical-rules.md §10): one open flag per resident and rule."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"  # staff documented the follow-up, or the condition cleared (hysteresis)
    SUPERSEDED = "superseded"  # newer data made the premise false; counts as never met (§0, §9)

    @property
    def is_open(self) -> bool:
        return self in (FlagStatus.OPEN, FlagStatus.ACKNOWLEDGED, FlagStatus.SNOOZED)


@dataclass(frozen=True, slots=True)
class RiskFlag:
    """One stored flag as other layers see it.

    ``rule_set`` is the version of the rule set whose thresholds raised it, so that a flag can
    always be traced to the thresholds the clinical lead signed off.
    """

    resident: str
    rule: str
    severity: Severity
    recipients: tuple[Recipient, ...]
    rule_set: str
    summary: str
    raised_at: datetime
    status: FlagStatus = FlagStatus.OPEN
    evidence: tuple[str, ...] = ()


#: Plain-language topics for liaison officers, by rule-id prefix (longest prefix wins).
#: Mental-health and cognition screening stay generic (clinical-rules.md §12.7).
_LIAISON_TOPICS: tuple[tuple[str, str], ...] = (
    ("BP-", "혈압 관리 지원 필요 / blood pressure follow-up"),
    ("GLU-", "혈당 관리 지원 필요 / blood sugar follow-up"),
    ("A1C-", "혈당 관리 지원 필요 / blood sugar follow-up"),
    ("OB-", "체중·영양 관리 지원 / weight and nutrition support"),
    ("BC-", "체중·영양 관리 지원 / weight and nutrition support"),
    ("WT-", "체중·영양 관리 지원 / weight and nutrition support"),
    ("SAR-", "근력·운동 지원 / strength and exercise support"),
    ("FR-", "낙상·허약 예방 지원 / falls and frailty support"),
    ("MS-", "대사건강 관리 지원 / metabolic health support"),
    ("MH-", "모바일 헬스케어 참여 안내 / mobile-healthcare programme invitation"),
    ("SCR-", "건강 상담 연계 필요 / health counselling link-up"),
    ("ADH-", "측정 중단·기기 확인 / stopped measuring, check the device"),
)


def liaison_label(rule: str) -> str:
    """The plain-language topic a liaison officer may see for ``rule`` (no values, no diagnosis)."""
    best = ""
    label = "건강 상담 연계 필요 / health follow-up"
    for prefix, text in _LIAISON_TOPICS:
        if rule.startswith(prefix) and len(prefix) > len(best):
            best, label = prefix, text
    return label
