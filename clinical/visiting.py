"""Visiting-programme classification (방문건강관리 건강관리군, clinical-rules.md §9).

The group is a pure function of the resident's flags and profile:

* **intensive** (집중관리군) if (a) a critical or urgent flag was raised in the last 30 days,
  (b) BP-HOME-HTN or BP-OFFICE-HTN is open, (c) an uncontrolled or unconfirmed diabetes flag is
  open, or (d) frailty ≥ 4 with FR-FALL, WT-LOSS, SAR-CONFIRMED, SAR-SEVERE or BP-ORTHO open;
* else **regular** (정기관리군) with a diagnosed chronic condition or an open routine clinical flag
  outside the risk-only set;
* else **self-management** (자기역량지원군) with a lifestyle risk factor or a risk-only flag;
* else **none**.

Moving down from intensive needs 30 days without any intensive criterion (hysteresis, applied to
every move out of intensive); flags closed as *superseded* count as never having met their
criterion (clarification 2). Long-term-care grade holders are excluded from the programme.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

import numpy as np

from clinical._seg import BoolArray, FloatArray, IntArray
from clinical.flags import Severity
from clinical.model import Cohort
from clinical.ruleset import (
    INTENSIVE_BP,
    INTENSIVE_DM,
    INTENSIVE_FRAILTY,
    RISK_ONLY,
    SELF_MANAGEMENT_FLAGS,
    RuleSet,
    VisitingRules,
)


class Group(StrEnum):
    INTENSIVE = "intensive"
    REGULAR = "regular"
    SELF_MANAGEMENT = "self_management"
    NONE = "none"


_ORDER = (Group.INTENSIVE, Group.REGULAR, Group.SELF_MANAGEMENT, Group.NONE)

VISITS: dict[Group, str] = {
    Group.INTENSIVE: "3개월 내 8회 이상 방문 / ≥ 8 visits within 3 months",
    Group.REGULAR: "3개월마다 1회 이상 방문 / ≥ 1 visit every 3 months",
    Group.SELF_MANAGEMENT: "6개월마다 1회 이상 방문 / ≥ 1 visit every 6 months",
    Group.NONE: "방문건강관리 대상 아님 / not indicated for the visiting programme",
}
_GROUP_KO = {
    Group.INTENSIVE: "집중관리군",
    Group.REGULAR: "정기관리군",
    Group.SELF_MANAGEMENT: "자기역량지원군",
    Group.NONE: "해당 없음",
}


@dataclass(frozen=True, slots=True)
class FlagFact:
    """What classification needs to know about one flag (open now, or closed recently)."""

    rule: str
    severity: Severity
    raised_at: datetime
    is_open: bool
    closed_at: datetime | None = None
    superseded: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class GroupInputs:
    """Per-resident facts, as arrays (n residents)."""

    open_rules: Mapping[str, BoolArray]  # flag open now
    open_severity_rules: Mapping[str, IntArray]  # Severity.rank of the open flag (-1 if none)
    acute: BoolArray  # (a) a critical/urgent flag raised in the last 30 days
    recent_intensive: BoolArray  # a (b)-(d) flag open at some time in the last 30 days
    frailty: FloatArray  # latest frailty score ≤ 365 d, NaN if none


@dataclass(frozen=True, slots=True)
class GroupDecision:
    group: Group
    visits: str
    reason: str
    next_visit_due: date | None = None
    reassess_by: date | None = None


def classify(
    cohort: Cohort, inputs: GroupInputs, rules: VisitingRules, *, explain: bool = True
) -> tuple[IntArray, list[list[str]]]:
    """Group index (into INTENSIVE, REGULAR, SELF_MANAGEMENT, NONE) and the criteria that
    decided it, per resident."""
    n = cohort.n
    zeros = np.zeros(n, dtype=bool)

    def any_open(rules_: frozenset[str]) -> BoolArray:
        out = zeros.copy()
        for r in rules_:
            out |= inputs.open_rules.get(r, zeros)
        return out

    with np.errstate(invalid="ignore"):
        frail = inputs.frailty >= rules.frailty
    crit_b = any_open(INTENSIVE_BP)
    crit_c = any_open(INTENSIVE_DM)
    crit_d = frail & any_open(INTENSIVE_FRAILTY)
    intensive_now = inputs.acute | crit_b | crit_c | crit_d
    hysteresis = ~intensive_now & inputs.recent_intensive
    intensive = intensive_now | hysteresis

    routine_open = zeros.copy()
    for rule, sev in inputs.open_severity_rules.items():
        if rule in RISK_ONLY:
            continue
        routine_open |= sev >= Severity.ROUTINE.rank
    regular = cohort.chronic | routine_open
    self_mgmt = cohort.risk_factor | any_open(SELF_MANAGEMENT_FLAGS)

    group = np.select([cohort.excluded, intensive, regular, self_mgmt], [3, 0, 1, 2], 3)
    reasons: list[list[str]] = []
    for i in range(n if explain else 0):
        why: list[str] = []
        g = int(group[i])
        if cohort.excluded[i]:
            why.append("장기요양등급 보유로 제외 / excluded: long-term-care grade holder")
        elif g == 0:
            if inputs.acute[i]:
                why.append("최근 30일 내 긴급 경보 / critical or urgent flag in the last 30 days")
            for r in sorted(INTENSIVE_BP | INTENSIVE_DM):
                if inputs.open_rules.get(r, zeros)[i]:
                    why.append(r)
            if crit_d[i]:
                why.append(
                    "허약 + "
                    + ", ".join(
                        r for r in sorted(INTENSIVE_FRAILTY) if inputs.open_rules.get(r, zeros)[i]
                    )
                )
            if hysteresis[i]:
                why.append(
                    "30일 내 집중관리 기준 충족 (하향 유예) / an intensive criterion was met "
                    "within 30 days (hysteresis)"
                )
        elif g == 1:
            if cohort.chronic[i]:
                why.append("진단된 만성질환 / diagnosed chronic condition")
            why.extend(
                r
                for r, sev in sorted(inputs.open_severity_rules.items())
                if r not in RISK_ONLY and sev[i] >= Severity.ROUTINE.rank
            )
        elif g == 2:
            if cohort.risk_factor[i]:
                why.append("생활습관 위험요인 / lifestyle risk factor")
            why.extend(
                r for r in sorted(SELF_MANAGEMENT_FLAGS) if inputs.open_rules.get(r, zeros)[i]
            )
        else:
            why.append("관리 기준 해당 없음 / no criterion met")
        reasons.append(why)
    return group.astype(np.int64), reasons


def inputs_from_facts(
    facts: Sequence[FlagFact], frailty: float | None, now: datetime, rules: VisitingRules
) -> GroupInputs:
    """Inputs for one resident from the flags the runner (or a replay) keeps."""
    acute_since = now - timedelta(days=rules.acute_days)
    hyst_since = now - timedelta(days=rules.hysteresis_days)
    intensive_rules = INTENSIVE_BP | INTENSIVE_DM | INTENSIVE_FRAILTY
    open_rules: dict[str, BoolArray] = {}
    sev_rules: dict[str, IntArray] = {}
    acute = False
    recent = False
    for f in facts:
        if f.superseded:
            continue  # clarification 2: as if the criterion was never met
        if f.is_open:
            open_rules[f.rule] = np.ones(1, dtype=bool)
            prev = int(sev_rules.get(f.rule, np.array([-1]))[0])
            sev_rules[f.rule] = np.array([max(prev, f.severity.rank)], dtype=np.int64)
        if f.severity.rank >= Severity.URGENT.rank and f.raised_at >= acute_since:
            acute = True
        if f.rule in intensive_rules and (
            f.is_open or (f.closed_at is not None and f.closed_at >= hyst_since)
        ):
            if f.rule in INTENSIVE_FRAILTY and not (
                frailty is not None and frailty >= rules.frailty
            ):
                continue
            recent = True
    return GroupInputs(
        open_rules=open_rules,
        open_severity_rules=sev_rules,
        acute=np.array([acute]),
        recent_intensive=np.array([recent]),
        frailty=np.array([np.nan if frailty is None else frailty]),
    )


def decide(
    cohort: Cohort,
    facts: Sequence[FlagFact],
    frailty: float | None,
    now: datetime,
    ruleset: RuleSet,
    *,
    last_visit: date | None = None,
    group_since: date | None = None,
    today: date | None = None,
) -> GroupDecision:
    """The group for one resident (a cohort of one) and the next visit due date."""
    rules = ruleset.thresholds.visiting
    group_idx, reasons = classify(cohort, inputs_from_facts(facts, frailty, now, rules), rules)
    group = _ORDER[int(group_idx[0])]
    today = today or now.date()
    return GroupDecision(
        group=group,
        visits=VISITS[group],
        reason=f"{_GROUP_KO[group]} / {group.value}: " + "; ".join(reasons[0]),
        next_visit_due=next_visit_due(group, last_visit, group_since or today, rules),
        reassess_by=(group_since or today) + timedelta(days=rules.reassess_days)
        if group is Group.INTENSIVE
        else None,
    )


def next_visit_due(
    group: Group, last_visit: date | None, group_since: date, rules: VisitingRules
) -> date | None:
    """Next visit: the group's interval after the last visit (or after joining the group)."""
    interval = {
        Group.INTENSIVE: rules.intensive_interval_days,
        Group.REGULAR: rules.regular_interval_days,
        Group.SELF_MANAGEMENT: rules.self_management_interval_days,
    }.get(group)
    if interval is None:
        return None
    base = last_visit if last_visit is not None else group_since
    return base + timedelta(days=interval)


def group_of(index: int) -> Group:
    return _ORDER[index]
