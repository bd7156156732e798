"""Flag lifecycle and alarm hygiene (clinical-rules.md §10.2) through the pure state machine."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime, timedelta

import pytest

from clinical import engine
from clinical.assess import add_reading, parse_profile
from clinical.errors import LifecycleError
from clinical.evaluation import ResidentResult, resident_results
from clinical.flags import FlagStatus, Severity
from clinical.lifecycle import (
    ActionKind,
    FlagState,
    Notice,
    Transition,
    acknowledge,
    reached,
    resolve,
    snooze,
    step,
    tick,
)
from clinical.model import Cohort, ReadingsBuilder
from clinical.ruleset import DEFAULT_RULESET
from tests.clinical.cases import KST, NOW, bp, glu, home_week, profile, reading

M = timedelta(minutes=1)
H = timedelta(hours=1)
RS = DEFAULT_RULESET


def run(
    readings: list[dict],
    fresh: Iterable[int],
    now: datetime,
    prof: dict | None = None,
    since: datetime | None = None,
) -> ResidentResult:
    """Evaluate like the runner: ``fresh`` are the indices that arrived since last time."""
    fresh = set(fresh)
    b = ReadingsBuilder()
    for i, r in enumerate(readings):
        add_reading(b, r, i, fresh=i in fresh)
    cohort = Cohort.from_profiles([parse_profile(prof or profile())])
    ev = engine.evaluate(cohort, b.build(), engine.epoch(now))
    s = None if since is None else {0: engine.epoch(since)}
    return resident_results(ev, [0], since=s)[0]


class Flags:
    """A resident's flags as the runner would keep them between evaluations."""

    def __init__(self) -> None:
        self.by_rule: dict[str, FlagState] = {}

    def apply(self, t: Transition) -> Transition:
        for f in t.states:
            self.by_rule[f.rule] = f
        return t

    def step(self, result: ResidentResult, now: datetime) -> Transition:
        return self.apply(step("R1", list(self.by_rule.values()), result, now, RS))

    def tick(self, now: datetime) -> Transition:
        return self.apply(tick("R1", list(self.by_rule.values()), now, RS))

    def __getitem__(self, rule: str) -> FlagState:
        return self.by_rule[rule]

    def set(self, flag: FlagState) -> None:
        self.by_rule[flag.rule] = flag


def notices(t: Transition, rule: str | None = None) -> list[tuple[ActionKind, Notice]]:
    return [(a.kind, a.notice) for a in t.actions if rule is None or a.rule == rule]


T0 = datetime(2026, 3, 10, 10, 0, tzinfo=KST)  # a Tuesday morning, staffed hours


def test_critical_flag_opens_notifies_and_makes_a_task():
    flags = Flags()
    t = flags.step(run([bp(T0, 190, 100)], {0}, T0 + M), T0 + M)
    assert flags["BP-CRISIS"].status is FlagStatus.OPEN
    assert flags["BP-CRISIS"].rule_set == RS.version
    assert (ActionKind.NOTIFY, Notice.RAISED) in notices(t, "BP-CRISIS")
    assert (ActionKind.OPEN_TASK, Notice.RAISED) in notices(t, "BP-CRISIS")
    notify = next(a for a in t.actions if a.kind is ActionKind.NOTIFY)
    assert notify.targets == ("nurse",)
    assert notify.not_before is None


def test_same_data_twice_raises_nothing_new():
    flags = Flags()
    readings = [bp(T0, 190, 100)]
    flags.step(run(readings, {0}, T0 + M), T0 + M)
    again = flags.step(run(readings, set(), T0 + 2 * M), T0 + 2 * M)
    assert notices(again, "BP-CRISIS") == []
    assert flags["BP-CRISIS"].evidence == (0,)


def test_one_open_flag_per_rule_with_evidence_attached():
    flags = Flags()
    r = [bp(T0, 190, 100)]
    flags.step(run(r, {0}, T0 + M), T0 + M)
    r.append(bp(T0 + 5 * M, 186, 100))
    t = flags.step(run(r, {1}, T0 + 6 * M), T0 + 6 * M)
    assert flags["BP-CRISIS"].evidence == (0, 1)
    assert notices(t, "BP-CRISIS") == []  # not acknowledged yet; the 15-min re-send covers it


def test_critical_resend_and_escalation_until_acknowledged():
    flags = Flags()
    flags.step(run([bp(T0, 190, 100)], {0}, T0), T0)
    assert notices(flags.tick(T0 + 14 * M)) == []
    assert notices(flags.tick(T0 + 15 * M)) == [(ActionKind.NOTIFY, Notice.REMINDER)]
    assert notices(flags.tick(T0 + 29 * M)) == []
    t30 = flags.tick(T0 + 30 * M)
    assert notices(t30) == [(ActionKind.NOTIFY, Notice.ESCALATED_LEAD)]
    assert t30.actions[0].targets == ("nurse_lead",)
    assert notices(flags.tick(T0 + 45 * M)) == [(ActionKind.NOTIFY, Notice.REMINDER)]
    t60 = flags.tick(T0 + 60 * M)
    assert (ActionKind.OPEN_TASK, Notice.ESCALATED_LIAISON) in notices(t60)
    assert next(a for a in t60.actions if a.kind is ActionKind.OPEN_TASK).targets == ("liaison",)
    assert flags["BP-CRISIS"].escalation == 2


def test_acknowledgement_stops_resends_and_escalation_once_the_resident_is_reached():
    flags = Flags()
    flags.step(run([bp(T0, 190, 100)], {0}, T0), T0)
    flags.set(acknowledge(flags["BP-CRISIS"], "nurse-07", T0 + 10 * M))
    flags.set(reached(flags["BP-CRISIS"], "nurse-07", T0 + 20 * M))
    for minutes in (15, 30, 45, 60, 120):
        assert notices(flags.tick(T0 + minutes * M)) == []


def test_acknowledged_but_not_reached_at_60_minutes_asks_the_liaison_officer():
    """§0: "If the resident cannot be reached within 60 min, the liaison officer is asked for a
    welfare check": acknowledging stops the re-sends and the team-lead escalation, not that."""
    flags = Flags()
    flags.step(run([bp(T0, 190, 100)], {0}, T0), T0)
    flags.set(acknowledge(flags["BP-CRISIS"], "nurse-07", T0 + 10 * M))
    for minutes in (15, 30, 45, 59):
        assert notices(flags.tick(T0 + minutes * M)) == []
    t60 = flags.tick(T0 + 60 * M)
    assert notices(t60) == [
        (ActionKind.OPEN_TASK, Notice.ESCALATED_LIAISON),
        (ActionKind.NOTIFY, Notice.ESCALATED_LIAISON),
    ]
    assert {a.targets for a in t60.actions} == {("liaison",)}
    assert notices(flags.tick(T0 + 75 * M)) == []  # asked once


def test_cool_down_and_worsening_after_acknowledgement():
    flags = Flags()
    r = [bp(T0, 185, 100)]
    flags.step(run(r, {0}, T0), T0)
    flags.set(reached(flags["BP-CRISIS"], "nurse-07", T0 + 5 * M))  # acknowledged, reached
    # 1 h later, 10 mmHg higher: inside the 6 h cool-down and not ≥ 20 higher → silent
    r.append(bp(T0 + H, 195, 100))
    assert notices(flags.step(run(r, {1}, T0 + H), T0 + H), "BP-CRISIS") == []
    # 2 h later, SBP 205 = acknowledged 185 + 20 → notify (more extreme)
    r.append(bp(T0 + 2 * H, 205, 100))
    t = flags.step(run(r, {2}, T0 + 2 * H), T0 + 2 * H)
    assert notices(t, "BP-CRISIS") == [(ActionKind.NOTIFY, Notice.WORSENED)]
    # after the cool-down a new qualifying reading re-raises the alert
    r.append(bp(T0 + 7 * H, 184, 100))
    t = flags.step(run(r, {3}, T0 + 7 * H), T0 + 7 * H)
    assert notices(t, "BP-CRISIS") == [(ActionKind.NOTIFY, Notice.RERAISED)]
    assert flags["BP-CRISIS"].status is FlagStatus.OPEN  # needs a new acknowledgement


def test_no_reraise_after_cool_down_without_new_data():
    flags = Flags()
    r = [bp(T0, 185, 100)]
    flags.step(run(r, {0}, T0), T0)
    flags.set(reached(flags["BP-CRISIS"], "nurse-07", T0 + 5 * M))
    assert notices(flags.step(run(r, set(), T0 + 8 * H), T0 + 8 * H)) == []
    assert notices(flags.tick(T0 + 9 * H)) == []


def test_severity_rise_within_a_rule_notifies_and_needs_new_acknowledgement():
    flags = Flags()
    r = [reading(T0, "fall", injury=False)]
    t = flags.step(run(r, {0}, T0), T0)
    assert flags["FR-FALL"].severity is Severity.ROUTINE
    assert not any(a.kind is ActionKind.NOTIFY for a in t.actions)  # routine never pushes
    flags.set(acknowledge(flags["FR-FALL"], "nurse-07", T0 + H))
    r.append(reading(T0 + 2 * H, "fall", injury=True))
    t = flags.step(run(r, {1}, T0 + 2 * H), T0 + 2 * H)
    assert flags["FR-FALL"].severity is Severity.URGENT
    assert flags["FR-FALL"].status is FlagStatus.OPEN
    assert (ActionKind.NOTIFY, Notice.SEVERITY_ROSE) in notices(t, "FR-FALL")
    assert (ActionKind.UPDATE_TASK, Notice.SEVERITY_ROSE) in notices(t, "FR-FALL")


def test_a_new_symptom_event_notifies_even_inside_the_cool_down():
    flags = Flags()
    r = [reading(T0, "fall", injury=False)]
    flags.step(run(r, {0}, T0), T0)
    flags.set(acknowledge(flags["FR-FALL"], "nurse-07", T0 + 10 * M))
    r.append(reading(T0 + H, "fall", injury=False))
    t = flags.step(run(r, {1}, T0 + H), T0 + H)
    assert notices(t, "FR-FALL") == [(ActionKind.NOTIFY, Notice.SYMPTOM)]


def test_escalation_is_a_separate_rule_opening():
    # BP-GRADE3 → BP-CRISIS is a rise in severity: the crisis flag opens and notifies
    flags = Flags()
    r = [bp(T0, 180, 100)]
    flags.step(run(r, {0}, T0), T0)
    flags.set(acknowledge(flags["BP-GRADE3"], "nurse-07", T0 + 5 * M))
    r.append(bp(T0 + 30 * M, 182, 100))
    t = flags.step(run(r, {1}, T0 + 30 * M), T0 + 30 * M)
    assert (ActionKind.NOTIFY, Notice.RAISED) in notices(t, "BP-CRISIS")


def test_snooze_needs_a_reason_and_keeps_quiet_until_it_ends():
    flags = Flags()
    r = [glu(T0, 50)]
    flags.step(run(r, {0}, T0), T0)
    with pytest.raises(LifecycleError):
        snooze(flags["GLU-HYPO-L2"], "nurse-07", T0 + 2 * H, "  ", T0)
    with pytest.raises(LifecycleError):
        snooze(flags["GLU-HYPO-L2"], "nurse-07", T0 - M, "resident at hospital", T0)
    flags.set(snooze(flags["GLU-HYPO-L2"], "nurse-07", T0 + 12 * H, "resident at hospital", T0 + M))
    assert flags["GLU-HYPO-L2"].status is FlagStatus.SNOOZED
    assert notices(flags.tick(T0 + 30 * M)) == []  # no re-send, no escalation
    r.append(glu(T0 + 8 * H, 51))
    assert notices(flags.step(run(r, {1}, T0 + 8 * H), T0 + 8 * H), "GLU-HYPO-L2") == []
    r.append(glu(T0 + 13 * H, 52))
    t = flags.step(run(r, {2}, T0 + 13 * H), T0 + 13 * H)
    assert notices(t, "GLU-HYPO-L2") == [(ActionKind.NOTIFY, Notice.RERAISED)]


def test_resolved_immediate_flag_reopens_only_on_new_data():
    flags = Flags()
    r = [glu(T0, 50)]
    flags.step(run(r, {0}, T0), T0)
    flags.set(resolve(flags["GLU-HYPO-L2"], "nurse-07", "phoned, ate, recheck 98", T0 + H))
    assert not flags["GLU-HYPO-L2"].is_open
    with pytest.raises(LifecycleError):
        acknowledge(flags["GLU-HYPO-L2"], "nurse-07", T0 + 2 * H)
    assert notices(flags.step(run(r, set(), T0 + 2 * H), T0 + 2 * H)) == []
    r.append(glu(T0 + 3 * H, 49))
    t = flags.step(run(r, {1}, T0 + 3 * H), T0 + 3 * H)
    assert flags["GLU-HYPO-L2"].is_open
    assert flags["GLU-HYPO-L2"].evidence == (1,)
    assert (ActionKind.NOTIFY, Notice.RAISED) in notices(t, "GLU-HYPO-L2")


def test_resolved_aggregate_flag_reopens_only_after_its_criteria_cleared():
    week = home_week(150, 95)  # home mean 150/95: BP-HOME-HTN met
    flags = Flags()
    flags.step(run(week, range(len(week)), NOW), NOW)
    flags.set(resolve(flags["BP-HOME-HTN"], "nurse-07", "referred to clinic", NOW + H))
    # still met the next day: does not reopen
    assert "BP-HOME-HTN" not in {
        a.rule for a in flags.step(run(week, set(), NOW + H * 2), NOW + 2 * H).actions
    }
    assert not flags["BP-HOME-HTN"].is_open
    # the mean drops into the hysteresis band (132/80): criteria no longer met → re-armed
    band = week + home_week(132, 80, end_days_ago=-7, dates=7)
    flags.step(run(band, range(len(week), len(band)), NOW + 7 * 24 * H), NOW + 7 * 24 * H)
    assert flags["BP-HOME-HTN"].rearmed
    high = band + home_week(150, 95, end_days_ago=-14, dates=7)
    flags.step(run(high, range(len(band), len(high)), NOW + 14 * 24 * H), NOW + 14 * 24 * H)
    assert flags["BP-HOME-HTN"].is_open


def test_hysteresis_keeps_home_htn_open_until_below_130_82():
    later = NOW + 7 * 24 * H
    week = home_week(150, 95)
    flags = Flags()
    flags.step(run(week, range(len(week)), NOW), NOW)
    assert flags["BP-HOME-HTN"].is_open
    # next week's mean 132/80 is below 135/85 but not below 130/82: stays open
    band = week + home_week(132, 80, end_days_ago=-7, dates=7)
    flags.step(run(band, range(len(week), len(band)), later), later)
    assert flags["BP-HOME-HTN"].is_open
    # the week after at 128/80 (< 130/82): resolves by itself and closes its tasks
    low = band + home_week(128, 80, end_days_ago=-14, dates=7)
    t = flags.step(run(low, range(len(band), len(low)), later + 7 * 24 * H), later + 7 * 24 * H)
    assert flags["BP-HOME-HTN"].status is FlagStatus.RESOLVED
    assert (ActionKind.CLOSE_TASKS, Notice.RESOLVED) in notices(t, "BP-HOME-HTN")


def test_an_auto_closed_flag_that_qualifies_again_soon_reopens_silently():
    day = 24 * H
    week = home_week(150, 95)
    flags = Flags()
    flags.step(run(week, range(len(week)), NOW), NOW)
    first = flags["BP-HOME-HTN"]
    low = week + home_week(125, 78, end_days_ago=-7, dates=7)
    flags.step(run(low, range(len(week), len(low)), NOW + 7 * day), NOW + 7 * day)
    assert flags["BP-HOME-HTN"].status is FlagStatus.RESOLVED
    high = low + home_week(152, 95, end_days_ago=-10, dates=3, per_day=6)
    t = flags.step(run(high, range(len(low), len(high)), NOW + 10 * day), NOW + 10 * day)
    again = flags["BP-HOME-HTN"]
    assert again.is_open
    assert again.opened_at == first.opened_at  # the same flag (and so the same task)
    assert notices(t, "BP-HOME-HTN") == [(ActionKind.UPDATE_TASK, Notice.REOPENED)]


def test_office_htn_is_superseded_by_a_home_mean():
    office = [
        bp(NOW - 20 * 24 * H, 150, 95, setting="centre"),
        bp(NOW - 10 * 24 * H, 150, 95, setting="centre"),
    ]
    flags = Flags()
    flags.step(run(office, {0, 1}, NOW - 9 * 24 * H), NOW - 9 * 24 * H)
    assert flags["BP-OFFICE-HTN"].is_open
    both = office + home_week(128, 78)
    t = flags.step(run(both, range(2, len(both)), NOW), NOW)
    assert flags["BP-OFFICE-HTN"].status is FlagStatus.SUPERSEDED
    assert (ActionKind.CLOSE_TASKS, Notice.SUPERSEDED) in notices(t, "BP-OFFICE-HTN")
    assert flags["BP-WHITECOAT"].is_open  # the correct one opens in its place


def test_no_data_clears_when_data_resume():
    prof = profile(home_monitoring=True)
    r = [bp(NOW - 200 * H, 128, 80)]
    flags = Flags()
    t = flags.step(run(r, {0}, NOW, prof), NOW)
    assert flags["ADH-NO-DATA"].is_open
    task = next(a for a in t.actions if a.rule == "ADH-NO-DATA")
    assert task.kind is ActionKind.OPEN_TASK
    assert task.targets == ("liaison",)
    r.append(bp(NOW + H, 126, 80))
    flags.step(run(r, {1}, NOW + 2 * H, prof), NOW + 2 * H)
    assert flags["ADH-NO-DATA"].status is FlagStatus.RESOLVED


def test_unreliable_high_is_pending_then_raised_then_cleared_by_a_valid_repeat():
    r = [bp(T0, 195, 100, device_status=["body_movement"])]
    flags = Flags()
    flags.step(run(r, {0}, T0 + 10 * M), T0 + 10 * M)
    assert "BP-UNRELIABLE-HIGH" not in flags.by_rule  # pending for 30 minutes
    # no new data, but the 30 minutes have passed since the previous evaluation
    flags.step(run(r, set(), T0 + 35 * M, since=T0 + 10 * M), T0 + 35 * M)
    assert flags["BP-UNRELIABLE-HIGH"].is_open
    r.append(bp(T0 + 50 * M, 150, 90))
    flags.step(run(r, {1}, T0 + 50 * M, since=T0 + 35 * M), T0 + 50 * M)
    assert flags["BP-UNRELIABLE-HIGH"].status is FlagStatus.RESOLVED


def test_routine_and_info_never_push_and_info_gets_no_task():
    flags = Flags()
    r = [reading(T0, "waist", cm=95), reading(T0, "screen", instrument="PHQ-9", total=12, item9=0)]
    t = flags.step(run(r, {0, 1}, T0 + M), T0 + M)
    assert not any(a.kind is ActionKind.NOTIFY for a in t.actions)
    assert (ActionKind.OPEN_TASK, Notice.RAISED) in notices(t, "SCR-DEP")
    assert notices(t, "OB-WAIST") == []  # info: dashboard only


def test_resident_prompts_are_not_staff_flags():
    flags = Flags()
    r = [bp(T0, 145, 85)]
    t = flags.step(run(r, {0}, T0 + M), T0 + M)
    assert notices(t, "BP-RECHECK") == [(ActionKind.PROMPT_RESIDENT, Notice.PROMPT)]
    prompt = flags["BP-RECHECK"]
    assert not prompt.is_open  # a record of the prompt, nothing for staff to close
    assert [r.value for r in prompt.recipients] == ["resident"]
    # the same reading shown again (a re-read after a crash) does not prompt again
    assert notices(flags.step(run(r, {0}, T0 + 2 * M), T0 + 2 * M)) == []
    r.append(bp(T0 + H, 146, 85))
    t = flags.step(run(r, {1}, T0 + H), T0 + H)
    assert notices(t, "BP-RECHECK") == [(ActionKind.PROMPT_RESIDENT, Notice.PROMPT)]


def test_rejected_reading_prompts_a_remeasurement_once():
    flags = Flags()
    r = [bp(T0, 120, 125)]
    t = flags.step(run(r, {0}, T0 + M), T0 + M)
    assert notices(t) == [(ActionKind.PROMPT_RESIDENT, Notice.REMEASURE)]
    assert notices(flags.step(run(r, {0}, T0 + 2 * M), T0 + 2 * M)) == []


def test_a_resolved_flag_ignores_its_own_readings_shown_again():
    flags = Flags()
    r = [glu(T0, 50)]
    flags.step(run(r, {0}, T0), T0)
    flags.set(resolve(flags["GLU-HYPO-L2"], "nurse-07", "ate, recheck 98", T0 + H))
    again = flags.step(run(r, {0}, T0 + 2 * H), T0 + 2 * H)  # still "fresh" (re-read margin)
    assert notices(again) == []
    assert not flags["GLU-HYPO-L2"].is_open


def test_quiet_hours():
    night = datetime(2026, 3, 10, 23, 30, tzinfo=KST)
    flags = Flags()
    t = flags.step(run([glu(night, 60), glu(night + M, 40)], {0, 1}, night + 2 * M), night + 2 * M)
    by_rule = {a.rule: a for a in t.actions if a.kind is ActionKind.NOTIFY}
    assert by_rule["GLU-HYPO-L2"].not_before is None  # §10.2.7: critical always notifies
    # §10.2.1: urgent is a same-day worklist item, never a push, by night or by day
    assert "GLU-HYPO-L1" not in by_rule
    assert (ActionKind.OPEN_TASK, Notice.RAISED) in notices(t, "GLU-HYPO-L1")


def test_a_notice_outside_critical_waits_for_the_end_of_quiet_hours():
    # §10.2.3: a new symptom event notifies staff even for a routine flag; §10.2.7: routine
    # never notifies at night, so the notice is delivered at the end of quiet hours (08:00)
    flags = Flags()
    r = [reading(T0, "fall", injury=False)]
    flags.step(run(r, {0}, T0), T0)
    night = datetime(2026, 3, 10, 23, 0, tzinfo=KST)
    r.append(reading(night, "fall", injury=False))
    t = flags.step(run(r, {1}, night), night)
    (note,) = [a for a in t.actions if a.kind is ActionKind.NOTIFY]
    assert note.notice is Notice.SYMPTOM
    assert note.not_before == datetime(2026, 3, 11, 8, 0, tzinfo=KST)


def test_urgent_flags_are_worklist_items_not_pushes():
    # §10.2.1: "Only critical pushes and re-raises. urgent is a same-day worklist item with one
    # end-of-day reminder." §0: urgent = "Nurse worklist item due today".
    flags = Flags()
    r = [glu(T0, 60)]  # GLU-HYPO-L1 (54-69 mg/dL), urgent
    t = flags.step(run(r, {0}, T0 + M), T0 + M)
    assert notices(t, "GLU-HYPO-L1") == [(ActionKind.OPEN_TASK, Notice.RAISED)]
    flags.set(acknowledge(flags["GLU-HYPO-L1"], "nurse-07", T0 + H))
    # §10.2.3: a new qualifying reading after the 6 h cool-down is attached to the open flag;
    # for an urgent flag the worklist task is due again, with no push
    r.append(glu(T0 + 8 * H, 62))
    t = flags.step(run(r, {1}, T0 + 8 * H), T0 + 8 * H)
    assert notices(t, "GLU-HYPO-L1") == [(ActionKind.UPDATE_TASK, Notice.RERAISED)]
    assert flags["GLU-HYPO-L1"].evidence == (0, 1)


def test_a_critical_flag_shows_the_resident_emergency_instructions():
    # §0 critical: "The resident's app shows emergency instructions at once"
    flags = Flags()
    t = flags.step(run([bp(T0, 190, 100)], {0}, T0 + M), T0 + M)
    assert (ActionKind.PROMPT_RESIDENT, Notice.PROMPT) in notices(t, "BP-CRISIS")
    # an urgent flag does not (the resident's prompt for non-critical readings is BP-RECHECK)
    t = Flags().step(run([bp(T0, 180, 100)], {0}, T0 + M), T0 + M)
    assert (ActionKind.PROMPT_RESIDENT, Notice.PROMPT) not in notices(t, "BP-GRADE3")


def test_urgent_gets_one_end_of_day_reminder():
    flags = Flags()
    flags.step(run([glu(T0, 60)], {0}, T0 + M), T0 + M)
    assert notices(flags.tick(T0 + 6 * H)) == []  # 16:00
    five_pm = datetime(2026, 3, 10, 17, 0, tzinfo=KST)
    assert notices(flags.tick(five_pm)) == [(ActionKind.NOTIFY, Notice.REMINDER)]
    assert notices(flags.tick(five_pm + H)) == []


def test_flags_keep_the_rule_set_that_raised_them():
    flags = Flags()
    flags.step(run([glu(T0, 50)], {0}, T0), T0)
    old = flags["GLU-HYPO-L2"]
    flags.set(dataclasses.replace(old, rule_set="2025.1-0"))
    flags.step(run([glu(T0, 50), glu(T0 + H, 45)], {1}, T0 + H), T0 + H)
    assert flags["GLU-HYPO-L2"].rule_set == "2025.1-0"
