"""Visiting-programme classification (clinical-rules.md §9) and the next visit date."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from clinical.assess import parse_profile
from clinical.flags import Severity
from clinical.model import Cohort
from clinical.ruleset import DEFAULT_RULESET
from clinical.visiting import FlagFact, Group, decide, next_visit_due
from tests.clinical.cases import KST, profile

NOW = datetime(2026, 3, 10, 20, 0, tzinfo=KST)
D = timedelta(days=1)


def group(facts, prof=None, frailty=None):
    cohort = Cohort.from_profiles([parse_profile(prof or profile(diagnoses=[]))])
    return decide(cohort, facts, frailty, NOW, DEFAULT_RULESET).group


def open_(rule, severity=Severity.ROUTINE, raised=NOW - 40 * D):
    return FlagFact(rule, severity, raised, is_open=True)


def closed(rule, days_ago, severity=Severity.ROUTINE, superseded=False):
    return FlagFact(
        rule,
        severity,
        NOW - 60 * D,
        is_open=False,
        closed_at=NOW - days_ago * D,
        superseded=superseded,
    )


@pytest.mark.parametrize(
    ("facts", "frailty", "expected"),
    [
        # (a) a critical or urgent flag raised in the last 30 days, even if closed since
        (
            [FlagFact("GLU-HYPO-L1", Severity.URGENT, NOW - 29 * D, False, NOW - 28 * D)],
            None,
            Group.INTENSIVE,
        ),
        (
            [FlagFact("GLU-HYPO-L1", Severity.URGENT, NOW - 31 * D, False, NOW - 31 * D)],
            None,
            Group.NONE,
        ),
        # (b) uncontrolled or unconfirmed hypertension
        ([open_("BP-HOME-HTN")], None, Group.INTENSIVE),
        ([open_("BP-OFFICE-HTN")], None, Group.INTENSIVE),
        # (c) diabetes not controlled or unconfirmed
        ([open_("GLU-FPG-DM-RANGE")], None, Group.INTENSIVE),
        ([open_("A1C-DM-RANGE")], None, Group.INTENSIVE),
        ([open_("GLU-FASTING-ABOVE-TARGET")], None, Group.INTENSIVE),
        # (d) frailty ≥ 4 with a fall, weight loss, sarcopenia or orthostatic hypotension
        ([open_("FR-FALL")], 4.0, Group.INTENSIVE),
        ([open_("SAR-SEVERE")], 6.0, Group.INTENSIVE),
        ([open_("FR-FALL")], 3.0, Group.REGULAR),  # routine flag open → regular
        ([open_("FR-FRAIL")], 5.0, Group.REGULAR),
        # risk-only flags are self-management, not regular
        ([open_("GLU-FPG-IFG")], None, Group.SELF_MANAGEMENT),
        ([open_("BP-WHITECOAT")], None, Group.SELF_MANAGEMENT),
        ([open_("OB-BMI-PREOBESE", Severity.INFO)], None, Group.SELF_MANAGEMENT),
        ([open_("ADH-NO-DATA")], None, Group.NONE),
        ([open_("OB-BMI-OBESE")], None, Group.REGULAR),
        ([open_("BP-LOW-SUSTAINED")], None, Group.REGULAR),
        ([], None, Group.NONE),
    ],
)
def test_group_from_flags(facts, frailty, expected):
    assert group(facts, frailty=frailty) is expected


def test_diagnosis_alone_is_regular():
    assert group([], profile(diagnoses=["arthritis"])) is Group.REGULAR
    assert group([], profile(diagnoses=["unknown_condition"])) is Group.NONE


def test_lifestyle_risk_factor_is_self_management():
    assert group([], profile(smoker=True)) is Group.SELF_MANAGEMENT
    assert group([], profile(high_risk_drinking=True)) is Group.SELF_MANAGEMENT


def test_long_term_care_grade_holders_are_excluded():
    assert group([open_("BP-HOME-HTN")], profile(long_term_care_grade=3)) is Group.NONE


@pytest.mark.parametrize(
    ("days_ago", "superseded", "expected"),
    [
        (10, False, Group.INTENSIVE),  # cleared 10 days ago: < 30 days, stay intensive
        (29, False, Group.INTENSIVE),
        (31, False, Group.REGULAR),  # 30 days without an intensive criterion: move down
        (10, True, Group.REGULAR),  # superseded: as if never met (clarification 2)
    ],
)
def test_hysteresis_out_of_intensive(days_ago, superseded, expected):
    facts = [closed("BP-OFFICE-HTN", days_ago, superseded=superseded)]
    assert group(facts, profile(diagnoses=["hypertension"])) is expected


def test_moving_up_is_immediate():
    assert (
        group([open_("GLU-RANDOM-DM-RANGE", raised=NOW - D)], profile(smoker=True))
        is Group.INTENSIVE
    )


@pytest.mark.parametrize(
    ("g", "last_visit", "expected"),
    [
        (Group.INTENSIVE, date(2026, 3, 1), date(2026, 3, 12)),  # ≥ 8 visits in 3 months
        (Group.REGULAR, date(2026, 3, 1), date(2026, 5, 31)),  # every 3 months (91 d)
        (Group.SELF_MANAGEMENT, date(2026, 3, 1), date(2026, 8, 30)),  # every 6 months
        (Group.NONE, date(2026, 3, 1), None),
        (Group.INTENSIVE, None, date(2026, 3, 21)),  # no visit yet: from joining the group
    ],
)
def test_next_visit_due(g, last_visit, expected):
    rules = DEFAULT_RULESET.thresholds.visiting
    assert next_visit_due(g, last_visit, date(2026, 3, 10), rules) == expected


def test_decision_wording():
    cohort = Cohort.from_profiles([parse_profile(profile())])
    d = decide(
        cohort, [open_("BP-HOME-HTN")], None, NOW, DEFAULT_RULESET, last_visit=date(2026, 3, 1)
    )
    assert d.group is Group.INTENSIVE
    assert "BP-HOME-HTN" in d.reason
    assert d.reason.startswith("집중관리군")
    assert "8" in d.visits
    assert d.next_visit_due == date(2026, 3, 12)
    assert d.reassess_by == date(2026, 6, 9)
