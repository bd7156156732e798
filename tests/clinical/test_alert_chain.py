"""The §0 alert chain against a controllable clock: staffed hours, a weekend, a Korean public
holiday (from the maintained ``holidays`` library), on-call cover and the roster.

Expected times are worked out by hand from clinical-rules.md §0 and §10.2 and the 2026 Korean
calendar (Chuseok 2026-09-24..26, a Thursday to Saturday; 2026-03-14 is a Saturday).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from clinical.alerts import AlertPolicy, Cover, Duty, StaffedHours, policy_from, route
from clinical.flags import FlagStatus
from clinical.lifecycle import ActionKind, Notice, acknowledge, step, tick
from clinical.ruleset import DEFAULT_RULESET
from clinical.runner import korean_holidays
from tests.clinical.cases import KST, bp, glu
from tests.clinical.test_lifecycle import Flags, notices, run

M = timedelta(minutes=1)
H = timedelta(hours=1)
RS = DEFAULT_RULESET
HOURS = StaffedHours(holidays=korean_holidays(date(2026, 6, 1)))
STAFFED = Cover(HOURS)
ON_CALL = Cover(HOURS, on_call=True)


class Clocked(Flags):
    """A resident's flags driven by the runner's calls, with a given cover."""

    def __init__(self, cover: Cover) -> None:
        super().__init__()
        self.cover = cover

    def step(self, result, now):  # type: ignore[no-untyped-def]
        return self.apply(step("R1", list(self.by_rule.values()), result, now, RS, self.cover))

    def tick(self, now):  # type: ignore[no-untyped-def]
        return self.apply(tick("R1", list(self.by_rule.values()), now, RS, self.cover))


def at(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=KST)


def timeline(flags: Clocked, start: datetime, end: datetime) -> list[tuple[int, Notice, tuple]]:
    """Tick every minute like the runner; (minutes after start, notice, targets) of each
    notification."""
    out = []
    t = start
    while t <= end:
        for a in flags.tick(t).actions:
            if a.kind is ActionKind.NOTIFY:
                out.append((int((t - start) / M), a.notice, a.targets))
        t += M
    return out


def test_the_library_knows_korean_public_holidays() -> None:
    days = korean_holidays(date(2026, 6, 1))
    assert {date(2026, 9, 24), date(2026, 9, 25), date(2026, 9, 26)} <= days  # Chuseok
    assert date(2026, 10, 3) in days
    assert date(2026, 12, 25) in days
    assert date(2026, 9, 23) not in days


@pytest.mark.parametrize(
    ("when", "staffed", "opens"),
    [
        (at(2026, 3, 10, 10), True, at(2026, 3, 10, 10)),  # Tuesday morning
        (at(2026, 3, 10, 8, 59), False, at(2026, 3, 10, 9)),  # before opening
        (at(2026, 3, 10, 18), False, at(2026, 3, 11, 9)),  # closing time is closed
        (at(2026, 3, 13, 19), False, at(2026, 3, 16, 9)),  # Friday evening → Monday
        (at(2026, 3, 14, 11), False, at(2026, 3, 16, 9)),  # Saturday
        (at(2026, 9, 23, 20), False, at(2026, 9, 28, 9)),  # eve of Chuseok → next Monday
        (at(2026, 9, 25, 10), False, at(2026, 9, 28, 9)),  # Chuseok itself
    ],
)
def test_staffed_hours_and_the_next_morning(when: datetime, staffed: bool, opens: datetime):
    assert HOURS.is_staffed(when) is staffed
    assert HOURS.next_open(when) == opens


def test_critical_in_staffed_hours_runs_the_whole_chain():
    flags = Clocked(STAFFED)
    t0 = at(2026, 3, 10, 10)
    raised = flags.step(run([bp(t0, 190, 100)], {0}, t0), t0)
    first = next(a for a in raised.actions if a.kind is ActionKind.NOTIFY)
    assert (first.notice, first.targets, first.not_before) == (Notice.RAISED, ("nurse",), None)
    assert (ActionKind.PROMPT_RESIDENT, Notice.PROMPT) in notices(raised, "BP-CRISIS")
    got = timeline(flags, t0 + M, t0 + 2 * H)
    assert got == [
        (14, Notice.REMINDER, ("nurse",)),
        (29, Notice.ESCALATED_LEAD, ("nurse_lead",)),
        (44, Notice.REMINDER, ("nurse",)),
        (59, Notice.ESCALATED_LIAISON, ("liaison",)),
        (74, Notice.REMINDER, ("nurse",)),
        (89, Notice.REMINDER, ("nurse",)),
        (104, Notice.REMINDER, ("nurse",)),
        (119, Notice.REMINDER, ("nurse",)),
    ]


def test_acknowledged_at_20_minutes_no_lead_but_welfare_check_when_not_reached():
    flags = Clocked(STAFFED)
    t0 = at(2026, 3, 10, 10)
    flags.step(run([bp(t0, 190, 100)], {0}, t0), t0)
    assert timeline(flags, t0 + M, t0 + 19 * M) == [(14, Notice.REMINDER, ("nurse",))]
    flags.set(acknowledge(flags["BP-CRISIS"], "N01", t0 + 20 * M))
    assert timeline(flags, t0 + 20 * M, t0 + 2 * H) == [
        (40, Notice.ESCALATED_LIAISON, ("liaison",))
    ]


def test_critical_on_a_saturday_night_waits_for_monday_morning():
    """§0: outside staffed hours the resident-facing instruction applies at once and the item
    opens the next morning's queue; the 15/30/60-minute clock starts then."""
    flags = Clocked(STAFFED)
    t0 = at(2026, 3, 14, 22)  # Saturday 22:00
    raised = flags.step(run([bp(t0, 190, 100)], {0}, t0), t0)
    assert (ActionKind.PROMPT_RESIDENT, Notice.PROMPT) in notices(raised, "BP-CRISIS")
    push = next(a for a in raised.actions if a.kind is ActionKind.NOTIFY)
    monday = at(2026, 3, 16, 9)
    assert push.not_before == monday
    assert timeline(flags, t0 + M, monday - M) == []  # a quiet Sunday
    got = timeline(flags, monday, monday + 61 * M)
    assert got == [
        (15, Notice.REMINDER, ("nurse",)),
        (30, Notice.ESCALATED_LEAD, ("nurse_lead",)),
        (45, Notice.REMINDER, ("nurse",)),
        (60, Notice.ESCALATED_LIAISON, ("liaison",)),
    ]


def test_critical_on_chuseok_waits_for_the_first_working_day_after_it():
    flags = Clocked(STAFFED)
    t0 = at(2026, 9, 25, 10)  # Chuseok (a Friday)
    raised = flags.step(run([glu(t0, 45)], {0}, t0), t0)
    push = next(a for a in raised.actions if a.kind is ActionKind.NOTIFY)
    assert push.not_before == at(2026, 9, 28, 9)
    assert timeline(flags, t0 + M, at(2026, 9, 28, 9, 14)) == []
    assert timeline(flags, at(2026, 9, 28, 9, 15), at(2026, 9, 28, 9, 15)) == [
        (0, Notice.REMINDER, ("nurse",))
    ]


def test_an_on_call_nurse_makes_the_chain_run_at_night():
    flags = Clocked(ON_CALL)
    t0 = at(2026, 3, 14, 22)
    raised = flags.step(run([bp(t0, 190, 100)], {0}, t0), t0)
    push = next(a for a in raised.actions if a.kind is ActionKind.NOTIFY)
    assert push.not_before is None
    got = timeline(flags, t0 + M, t0 + 31 * M)
    assert got == [(14, Notice.REMINDER, ("nurse",)), (29, Notice.ESCALATED_LEAD, ("nurse_lead",))]


def test_urgent_is_due_today_with_one_end_of_day_reminder():
    flags = Clocked(STAFFED)
    t0 = at(2026, 3, 10, 10)
    raised = flags.step(run([glu(t0, 60)], {0}, t0), t0)  # GLU-HYPO-L1: urgent
    assert flags["GLU-HYPO-L1"].status is FlagStatus.OPEN
    assert not any(a.kind is ActionKind.NOTIFY for a in raised.actions)  # no push
    assert (ActionKind.OPEN_TASK, Notice.RAISED) in notices(raised, "GLU-HYPO-L1")
    got = timeline(flags, t0 + M, at(2026, 3, 11, 18))
    assert got == [(419, Notice.REMINDER, ("nurse",))]  # 17:00 the same day, once


def test_urgent_on_a_holiday_is_reminded_at_the_end_of_the_next_working_day():
    flags = Clocked(STAFFED)
    t0 = at(2026, 9, 24, 11)  # the day before Chuseok, a holiday
    flags.step(run([glu(t0, 60)], {0}, t0), t0)
    got = timeline(flags, t0 + M, at(2026, 9, 29, 18))
    reminder = at(2026, 9, 28, 17)
    assert got == [(int((reminder - t0 - M) / M), Notice.REMINDER, ("nurse",))]


def test_routine_never_pushes():
    flags = Clocked(STAFFED)
    t0 = at(2026, 3, 10, 10)
    readings = [glu(t0 - timedelta(days=d), 130, meal="fasting") for d in (3, 1)]
    raised = flags.step(run(readings, {0, 1}, t0), t0)
    assert flags["GLU-FPG-DM-RANGE"].status is FlagStatus.OPEN
    assert not any(a.kind is ActionKind.NOTIFY for a in raised.actions)
    assert timeline(flags, t0 + M, t0 + 26 * H) == []


ROSTER = Duty(lead="N-LEAD", backup="N-BACKUP", on_call="N-ONCALL")


@pytest.mark.parametrize(
    ("roles", "nurse", "duty", "staffed", "expected"),
    [
        (("nurse",), "N01", ROSTER, True, ("N01",)),
        (("nurse",), "N01", ROSTER, False, ("N-ONCALL", "N01")),
        (("nurse",), "N01", Duty(), False, ("N01",)),  # no on-call: she sees it in the morning
        (("nurse",), None, ROSTER, True, ("N-LEAD",)),  # no assigned nurse: the lead
        (("nurse_lead",), "N01", ROSTER, True, ("N-LEAD",)),
        (("nurse_lead",), "N-LEAD", ROSTER, True, ("N-BACKUP",)),  # the lead is her nurse
        (("nurse_lead",), "N01", Duty(backup="N-BACKUP"), True, ("N-BACKUP",)),
        (("nurse_lead",), "N01", Duty(), True, ("N01",)),  # no roster: never dropped
        (("liaison",), "N01", ROSTER, True, ("L01",)),
    ],
)
def test_route(roles, nurse, duty, staffed, expected):
    assert route(roles, nurse=nurse, liaison="L01", duty=duty, staffed=staffed) == expected


def test_policy_from_settings_and_neighbourhood_overrides():
    policy = policy_from(
        {
            "staffed_start": "08:30",
            "staffed_end": "17:30",
            "staffed_weekdays": [0, 1, 2, 3, 4, 5],
            "team_lead": "N-LEAD",
            "backup_nurse": "N-BACKUP",
            "neighbourhood": {"약수동": {"team_lead": "N-YAKSU", "on_call_nurse": "N-NIGHT"}},
        },
        holidays=[date(2026, 3, 14)],
    )
    assert policy.hours is not None
    assert policy.hours.start == time(8, 30)
    assert 5 in policy.hours.weekdays
    assert not policy.staffed(at(2026, 3, 14, 10))  # the holiday given
    assert policy.staffed(at(2026, 3, 21, 10))  # a Saturday is staffed here
    assert policy.duty("약수동") == Duty("N-YAKSU", "N-BACKUP", "N-NIGHT")
    assert policy.duty("필동") == Duty("N-LEAD", "N-BACKUP", None)
    assert policy.cover("약수동").on_call
    assert not policy.cover("필동").on_call
    with pytest.raises(ValueError, match="unknown"):
        policy_from({"team_leed": "N1"})
    with pytest.raises(ValueError, match="HH:MM"):
        policy_from({"staffed_start": "nine"})
    assert AlertPolicy(hours=None).staffed(at(2026, 3, 14, 3))
