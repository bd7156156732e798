"""Flag lifecycle and alarm hygiene (clinical-rules.md §0, §10) as a pure state machine.

:func:`step` takes the flags a resident has (open ones and the last closed one per rule), a new
evaluation and ``now``, and returns the new flag states plus the :class:`Action` list the runner
must carry out (notify, open/update/close tasks, prompt the resident). The runner persists
exactly what it says; nothing here reads a clock or a database.

Rules of the game (§10.2):

* one open flag per (resident, rule); new qualifying readings are attached as evidence;
* tiering (§10.2.1): only critical flags push (when raised, every 15 min until acknowledged,
  and when a new qualifying reading arrives after the 6 h cool-down that follows an
  acknowledgement); an urgent flag is a worklist task due the same day with one end-of-day
  reminder (a qualifying reading after its cool-down re-opens the task, silently); routine
  flags are worklist tasks (and the weekly digest); info flags never reach staff;
* staff are notified again only when the severity rises (to urgent or critical), a new symptom
  event arrives, or the value is more extreme than the acknowledged one (SBP ≥ 20 mmHg
  higher) (§10.2.3-4); outside critical, such a notice waits for the end of quiet hours;
* a critical flag shows the resident its emergency instructions at once (§0);
* unacknowledged critical flags are re-sent every 15 min and go to the nurse team lead at 30
  min; a resident nobody has reached at 60 min becomes a welfare check for the liaison officer
  (a task and a notification). The clock starts when someone is on duty: outside staffed hours
  with no on-call nurse, the resident gets the instruction at once and the nurse's item opens
  the next staffed morning (:class:`clinical.alerts.Cover`);
* trend flags close only when their quantity is below threshold − margin (HOLD keeps them
  open); ADH-NO-DATA and BP-UNRELIABLE-HIGH clear by themselves; aggregate flags whose premise
  newer data made false close as *superseded*; immediate flags close when staff resolve them;
* a flag resolved by staff re-opens only once its entry criteria have stopped holding and then
  hold again (re-arming), so resolving a persistent condition does not bring it straight back.

Resident-only rules (BP-RECHECK, GLU-RECHECK, GLU-CONTEXT-MISSING) are prompts, not flags:
they produce a :attr:`ActionKind.PROMPT_RESIDENT` for fresh readings and no stored state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum

from clinical.alerts import ALWAYS, Cover
from clinical.errors import LifecycleError
from clinical.evaluation import Finding, ResidentResult, State
from clinical.flags import FlagStatus, Recipient, Severity
from clinical.ruleset import Closure, Hygiene, RuleSet, RuleSpec, Timing
from clinical.visiting import FlagFact

KST = timezone(timedelta(hours=9))
NURSE_LEAD = "nurse_lead"  # escalation target: the nurse team lead or backup nurse (§0)


class Notice(StrEnum):
    RAISED = "raised"
    SEVERITY_ROSE = "severity_rose"
    WORSENED = "worsened"
    SYMPTOM = "symptom"
    RERAISED = "reraised"  # a new qualifying reading after the cool-down
    REMINDER = "reminder"  # critical every 15 min; urgent once at the end of the day
    ESCALATED_LEAD = "escalated_lead"
    ESCALATED_LIAISON = "escalated_liaison"
    RESOLVED = "resolved"
    SUPERSEDED = "superseded"
    REOPENED = "reopened"  # an auto-closed aggregate flag qualifying again within the quiet days
    REMEASURE = "remeasure"  # a rejected reading: please measure again (§2)
    PROMPT = "prompt"


class ActionKind(StrEnum):
    NOTIFY = "notify"  # a notification to the targets (a push for critical flags)
    OPEN_TASK = "open_task"
    UPDATE_TASK = "update_task"  # priority or status changed
    CLOSE_TASKS = "close_tasks"
    PROMPT_RESIDENT = "prompt_resident"


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    resident: str
    rule: str
    at: datetime
    notice: Notice
    targets: tuple[str, ...] = ()
    severity: Severity | None = None
    not_before: datetime | None = None  # quiet hours: deliver at this time, not earlier


@dataclass(frozen=True, slots=True)
class FlagState:
    """One flag and its alarm-hygiene bookkeeping."""

    resident: str
    rule: str
    rule_set: str
    severity: Severity
    recipients: tuple[Recipient, ...]
    status: FlagStatus
    opened_at: datetime
    alerted_at: datetime  # start of the current alert (opening, severity rise, re-raise)
    summary: str
    evidence: tuple[int, ...] = ()
    last_evidence_at: datetime | None = None
    last_notified_at: datetime | None = None
    peak_value: float | None = None
    reminders: int = 0
    escalation: int = 0  # 0 none, 1 team lead, 2 liaison welfare check
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    acknowledged_value: float | None = None
    snoozed_until: datetime | None = None
    snooze_reason: str | None = None
    reached_at: datetime | None = None  # a nurse spoke with the resident (no welfare check)
    closed_at: datetime | None = None
    close_reason: str | None = None
    rearmed: bool = True  # a staff-resolved aggregate flag may reopen only once re-armed
    id: str | None = None  # the store's id, when persisted

    @property
    def is_open(self) -> bool:
        return self.status.is_open


@dataclass(frozen=True, slots=True)
class Transition:
    states: tuple[FlagState, ...]  # every flag whose state is new or changed, and the unchanged
    actions: tuple[Action, ...]
    changed: frozenset[str]  # rule ids whose flag changed (what the runner must write)


def flag_facts(flags: Iterable[FlagState], ruleset: RuleSet) -> list[FlagFact]:
    """What the visiting-group classification (§9) needs of a resident's staff flags; resident
    prompts and rules the rule set no longer has are left out."""
    return [
        FlagFact(
            rule=f.rule,
            severity=f.severity,
            raised_at=f.opened_at,
            is_open=f.is_open,
            closed_at=f.closed_at,
            superseded=f.status is FlagStatus.SUPERSEDED,
        )
        for f in flags
        if f.rule in ruleset.rules and ruleset.rule(f.rule).clinical
    ]


# --------------------------------------------------------------------------- staff actions


def acknowledge(flag: FlagState, by: str, now: datetime) -> FlagState:
    """Staff saw the flag; the rule stays silent for the cool-down unless it gets worse."""
    if not flag.is_open:
        raise LifecycleError(flag.rule, flag.status, "acknowledge")
    return dataclasses.replace(
        flag,
        status=FlagStatus.ACKNOWLEDGED,
        acknowledged_at=now,
        acknowledged_by=by,
        acknowledged_value=flag.peak_value,
        snoozed_until=None,
        snooze_reason=None,
    )


def snooze(flag: FlagState, by: str, until: datetime, reason: str, now: datetime) -> FlagState:
    """Acknowledge and keep quiet until ``until``; a reason is required (it is audited). A
    snooze is a decision taken knowing where the resident is ("in hospital"), so it also counts
    as having reached them: no welfare check follows."""
    if not flag.is_open:
        raise LifecycleError(flag.rule, flag.status, "snooze")
    if not reason.strip():
        raise LifecycleError(flag.rule, flag.status, "snooze without a reason")
    if until <= now:
        raise LifecycleError(flag.rule, flag.status, "snooze into the past")
    acked = acknowledge(flag, by, now)
    return dataclasses.replace(
        acked,
        status=FlagStatus.SNOOZED,
        snoozed_until=until,
        snooze_reason=reason.strip(),
        reached_at=acked.reached_at or now,
    )


def reached(flag: FlagState, by: str, now: datetime) -> FlagState:
    """A nurse spoke with the resident: acknowledged, and the 60-minute welfare check of a
    critical flag (§0) is no longer needed."""
    acked = acknowledge(flag, by, now) if flag.status is FlagStatus.OPEN else flag
    if not acked.is_open:
        raise LifecycleError(flag.rule, flag.status, "reached")
    return dataclasses.replace(acked, reached_at=acked.reached_at or now)


def resolve(flag: FlagState, by: str, note: str, now: datetime) -> FlagState:
    """Staff documented the follow-up (§10.2.6). An aggregate flag re-opens only after its
    criteria stop holding and then hold again."""
    if not flag.is_open:
        raise LifecycleError(flag.rule, flag.status, "resolve")
    return dataclasses.replace(
        flag,
        status=FlagStatus.RESOLVED,
        closed_at=now,
        close_reason=f"staff:{by}: {note}".strip(),
        rearmed=False,
        reached_at=flag.reached_at or now,
    )


# --------------------------------------------------------------------------- step


def _merge(findings: Sequence[Finding], spec: RuleSpec) -> Finding:
    """Several hits of one rule in one evaluation → one finding (highest severity)."""
    best = max(findings, key=lambda f: (f.severity.rank, f.at))
    evidence = tuple(sorted({i for f in findings for i in f.evidence}))
    values = [f.value for f in findings if f.value is not None]
    peak = _extreme(spec, values)
    return dataclasses.replace(
        best,
        evidence=evidence,
        value=peak,
        fresh=any(f.fresh for f in findings),
        symptom=any(f.symptom for f in findings),
        at=max(f.at for f in findings),
    )


def _extreme(spec: RuleSpec, values: Sequence[float]) -> float | None:
    if not values:
        return None
    low_is_worse = spec.id.startswith(("GLU-HYPO", "BP-LOW", "SCR-BMD"))
    return min(values) if low_is_worse else max(values)


def _staff_of(recipients: Sequence[Recipient]) -> tuple[str, ...]:
    return tuple(r.value for r in recipients if r is not Recipient.RESIDENT)


def _staff(spec: RuleSpec) -> tuple[str, ...]:
    return _staff_of(spec.recipients)


def _quiet(now: datetime, h: Hygiene) -> datetime | None:
    """The end of quiet hours if ``now`` falls in them (§10.2.7), else None."""
    local = now.astimezone(KST)
    if h.night_end_local_hour <= local.hour < h.night_start_local_hour:
        return None
    morning = local.replace(hour=h.night_end_local_hour, minute=0, second=0, microsecond=0)
    if local.hour >= h.night_start_local_hour:
        morning += timedelta(days=1)
    return morning


def _notify(
    flag: FlagState,
    notice: Notice,
    now: datetime,
    h: Hygiene,
    cover: Cover,
    *,
    force: bool = False,
) -> Action | None:
    """A staff notification: critical flags always push (§10.2.1); ``force`` lets a severity
    rise, a symptom or a worsening through for the other tiers too (§10.2.3-4), after quiet
    hours (§10.2.7). With nobody on duty (§0) a critical push waits for the next staffed
    morning (the resident has had the emergency instruction at once); other tiers never page
    an on-call nurse and wait for staffed hours too."""
    if flag.severity is not Severity.CRITICAL and not force:
        return None
    targets = _staff_of(flag.recipients)
    if not targets:
        return None
    if flag.severity is Severity.CRITICAL:
        later = cover.deliver_after(now)
    else:
        candidates = [t for t in (_quiet(now, h), cover.next_working_open(now)) if t is not None]
        later = max(candidates) if candidates else None
    return Action(
        ActionKind.NOTIFY,
        flag.resident,
        flag.rule,
        now,
        notice,
        targets,
        flag.severity,
        not_before=later,
    )


def step(
    resident: str,
    flags: Sequence[FlagState],
    result: ResidentResult,
    now: datetime,
    ruleset: RuleSet,
    cover: Cover = ALWAYS,
) -> Transition:
    """Advance one resident's flags by one evaluation (see the module docstring). ``cover``
    says when staff are on duty for this resident (§0 staffed hours, on-call)."""
    h = ruleset.thresholds.hygiene
    open_by_rule: dict[str, FlagState] = {}
    closed_by_rule: dict[str, FlagState] = {}
    seen: dict[str, set[int]] = {}  # readings cited by closed flags, per rule
    for f in flags:
        if not f.is_open:
            seen.setdefault(f.rule, set()).update(f.evidence)
        if f.is_open:
            open_by_rule[f.rule] = f
        elif f.rule not in closed_by_rule or (f.closed_at or f.opened_at) >= (
            closed_by_rule[f.rule].closed_at or closed_by_rule[f.rule].opened_at
        ):
            closed_by_rule[f.rule] = f

    by_rule: dict[str, list[Finding]] = {}
    for finding in result.findings:
        spec = ruleset.rule(finding.rule)
        if finding.timing is Timing.SINGLE and not finding.fresh:
            continue  # already handled when its data first arrived
        by_rule.setdefault(finding.rule, []).append(finding)

    actions: list[Action] = []
    out: dict[str, FlagState] = {}
    changed: set[str] = set()

    for rule_id, spec in ruleset.rules.items():
        current = open_by_rule.get(rule_id)
        closed = closed_by_rule.get(rule_id)
        found = by_rule.get(rule_id)
        merged = _merge(found, spec) if found else None
        state = result.states.get(rule_id)

        if not spec.clinical:
            # resident prompts: recorded as a flag closed at once, so that the readings it
            # cites never prompt again however often they are re-read
            if merged is None:
                continue
            unseen = tuple(i for i in merged.evidence if i not in seen.get(rule_id, set()))
            if not unseen:
                continue
            out[rule_id] = FlagState(
                resident=resident,
                rule=rule_id,
                rule_set=ruleset.version,
                severity=merged.severity,
                recipients=spec.recipients,
                status=FlagStatus.RESOLVED,
                opened_at=merged.at,
                alerted_at=now,
                summary=merged.summary,
                evidence=unseen,
                last_evidence_at=merged.at,
                last_notified_at=now,
                peak_value=merged.value,
                closed_at=now,
                close_reason="auto: resident prompted",
            )
            changed.add(rule_id)
            actions.append(
                Action(
                    ActionKind.PROMPT_RESIDENT,
                    resident,
                    rule_id,
                    now,
                    Notice.REMEASURE if rule_id == "Q-REMEASURE" else Notice.PROMPT,
                    (Recipient.RESIDENT.value,),
                    spec.severity,
                )
            )
            continue

        if current is None:
            if (
                closed is not None
                and not closed.rearmed
                and state is not None
                and state is not State.MET
            ):
                closed = dataclasses.replace(closed, rearmed=True)
                out[rule_id] = closed
                changed.add(rule_id)
            if merged is None:
                continue
            if spec.timing is Timing.AGGREGATE and closed is not None and not closed.rearmed:
                continue  # resolved by staff while still met: wait for the criteria to clear
            if spec.timing is Timing.SINGLE and rule_id in seen:
                # readings a closed flag already cited never open a new one, however often
                # the runner is shown them again (crash recovery re-reads a margin of data)
                unseen = tuple(i for i in merged.evidence if i not in seen[rule_id])
                if not unseen:
                    continue
                merged = dataclasses.replace(merged, evidence=unseen)
            if (
                spec.timing is Timing.AGGREGATE
                and closed is not None
                and closed.rearmed
                and (closed.close_reason or "").startswith("auto")
                and closed.closed_at is not None
                and now - closed.closed_at <= timedelta(days=h.reopen_quiet_days)
            ):
                flag = _reopen(closed, merged, now)
                actions.append(
                    Action(
                        ActionKind.UPDATE_TASK,
                        resident,
                        rule_id,
                        now,
                        Notice.REOPENED,
                        _staff(spec),
                        flag.severity,
                    )
                )
                if merged.severity.rank > closed.severity.rank:
                    _emit(actions, flag, Notice.SEVERITY_ROSE, now, h, cover, force=_rose(flag))
                out[rule_id] = flag
                changed.add(rule_id)
                continue
            flag = FlagState(
                resident=resident,
                rule=rule_id,
                rule_set=ruleset.version,
                severity=merged.severity,
                recipients=spec.recipients,
                status=FlagStatus.OPEN,
                opened_at=merged.at if spec.timing is Timing.SINGLE else now,
                alerted_at=now,
                summary=merged.summary,
                evidence=merged.evidence,
                last_evidence_at=merged.at,
                peak_value=merged.value,
            )
            note = _notify(flag, Notice.RAISED, now, h, cover)
            if note is not None:
                actions.append(note)
                flag = dataclasses.replace(flag, last_notified_at=now)
            if flag.severity.rank >= Severity.ROUTINE.rank and _staff(spec):
                actions.append(
                    Action(
                        ActionKind.OPEN_TASK,
                        resident,
                        rule_id,
                        now,
                        Notice.RAISED,
                        _staff(spec),
                        flag.severity,
                    )
                )
            if Recipient.RESIDENT in spec.recipients or flag.severity is Severity.CRITICAL:
                # §0: a critical flag shows the resident its emergency instructions at once
                actions.append(_prompt(flag, now))
            out[rule_id] = flag
            changed.add(rule_id)
            continue

        flag = current
        before = flag
        mark = len(actions)
        # a snooze that has run out behaves like an acknowledgement whose cool-down has passed
        if (
            flag.status is FlagStatus.SNOOZED
            and flag.snoozed_until is not None
            and flag.snoozed_until <= now
        ):
            flag = dataclasses.replace(flag, status=FlagStatus.ACKNOWLEDGED, snoozed_until=None)

        if merged is not None:
            new_evidence = tuple(sorted(set(flag.evidence) | set(merged.evidence)))
            has_new = new_evidence != flag.evidence
            peak = _extreme(spec, [v for v in (flag.peak_value, merged.value) if v is not None])
            flag = dataclasses.replace(
                flag,
                evidence=new_evidence,
                summary=merged.summary,
                peak_value=peak,
                last_evidence_at=max(flag.last_evidence_at or merged.at, merged.at),
            )
            quiet_until = _silent_until(flag, h)
            if merged.severity.rank > flag.severity.rank:
                flag = dataclasses.replace(
                    flag,
                    severity=merged.severity,
                    status=FlagStatus.OPEN,
                    alerted_at=now,
                    escalation=0,
                    reminders=0,
                    acknowledged_at=None,
                    acknowledged_value=None,
                    snoozed_until=None,
                    reached_at=None,
                )
                _emit(actions, flag, Notice.SEVERITY_ROSE, now, h, cover, force=_rose(flag))
                actions.append(
                    Action(
                        ActionKind.UPDATE_TASK,
                        resident,
                        rule_id,
                        now,
                        Notice.SEVERITY_ROSE,
                        _staff(spec),
                        flag.severity,
                    )
                )
                if flag.severity is Severity.CRITICAL:
                    actions.append(_prompt(flag, now))
            elif merged.symptom and has_new and merged.fresh:
                _emit(actions, flag, Notice.SYMPTOM, now, h, cover, force=True)
            elif (
                spec.worsening_sys_mmhg is not None
                and flag.acknowledged_value is not None
                and merged.value is not None
                and merged.value >= flag.acknowledged_value + spec.worsening_sys_mmhg
                and has_new
            ):
                flag = dataclasses.replace(flag, acknowledged_value=merged.value)
                _emit(actions, flag, Notice.WORSENED, now, h, cover, force=True)
            elif (
                spec.timing is Timing.SINGLE
                and has_new
                and merged.fresh
                and flag.status is FlagStatus.ACKNOWLEDGED
                and quiet_until is not None
                and now >= quiet_until
            ):
                flag = dataclasses.replace(
                    flag,
                    status=FlagStatus.OPEN,
                    alerted_at=now,
                    escalation=0,
                    reminders=0,
                    reached_at=None,
                )
                if flag.severity is Severity.CRITICAL:
                    _emit(actions, flag, Notice.RERAISED, now, h, cover)
                else:  # §10.2.1: only critical re-raises; the worklist task is due again
                    actions.append(
                        Action(
                            ActionKind.UPDATE_TASK,
                            resident,
                            rule_id,
                            now,
                            Notice.RERAISED,
                            _staff(spec),
                            flag.severity,
                        )
                    )
        else:
            closing = _closing_reason(flag, spec, state, result, ruleset)
            if closing is not None:
                status, reason = closing
                flag = dataclasses.replace(flag, status=status, closed_at=now, close_reason=reason)
                actions.append(
                    Action(
                        ActionKind.CLOSE_TASKS,
                        resident,
                        rule_id,
                        now,
                        Notice.SUPERSEDED if status is FlagStatus.SUPERSEDED else Notice.RESOLVED,
                        _staff(spec),
                        flag.severity,
                    )
                )

        if any(a.kind is ActionKind.NOTIFY and a.rule == rule_id for a in actions[mark:]):
            flag = dataclasses.replace(flag, last_notified_at=now)
        if flag.is_open:
            flag = _duties(flag, spec, now, h, cover, actions)
        out[rule_id] = flag
        if flag != before:
            changed.add(rule_id)

    return Transition(
        states=tuple(out.values()), actions=tuple(actions), changed=frozenset(changed)
    )


def tick(
    resident: str,
    flags: Sequence[FlagState],
    now: datetime,
    ruleset: RuleSet,
    cover: Cover = ALWAYS,
) -> Transition:
    """Time-driven duties only (no new evaluation): critical re-sends and escalation, urgent
    reminders, snoozes running out. The runner calls this every few minutes."""
    h = ruleset.thresholds.hygiene
    actions: list[Action] = []
    out: list[FlagState] = []
    changed: set[str] = set()
    for flag in flags:
        if not flag.is_open or flag.rule not in ruleset.rules:
            continue
        new = flag
        if (
            new.status is FlagStatus.SNOOZED
            and new.snoozed_until is not None
            and new.snoozed_until <= now
        ):
            new = dataclasses.replace(new, status=FlagStatus.ACKNOWLEDGED, snoozed_until=None)
        new = _duties(new, ruleset.rule(flag.rule), now, h, cover, actions)
        out.append(new)
        if new != flag:
            changed.add(flag.rule)
    return Transition(states=tuple(out), actions=tuple(actions), changed=frozenset(changed))


def _reopen(closed: FlagState, merged: Finding, now: datetime) -> FlagState:
    """The same flag again: its task, acknowledgement and escalation history carry on."""
    severity = max(closed.severity, merged.severity, key=lambda s: s.rank)
    status = FlagStatus.ACKNOWLEDGED if closed.acknowledged_at is not None else FlagStatus.OPEN
    rose = merged.severity.rank > closed.severity.rank
    return dataclasses.replace(
        closed,
        status=FlagStatus.OPEN if rose else status,
        severity=severity,
        closed_at=None,
        close_reason=None,
        summary=merged.summary,
        evidence=tuple(sorted(set(closed.evidence) | set(merged.evidence))),
        last_evidence_at=merged.at,
        alerted_at=now if rose else closed.alerted_at,
    )


def _rose(flag: FlagState) -> bool:
    """§10.2.3: a rise in severity notifies staff again, when it reaches a staff tier that acts
    the same day (urgent or critical); a rise into routine only updates the worklist task."""
    return flag.severity.rank >= Severity.URGENT.rank


def _prompt(flag: FlagState, now: datetime) -> Action:
    return Action(
        ActionKind.PROMPT_RESIDENT,
        flag.resident,
        flag.rule,
        now,
        Notice.PROMPT,
        (Recipient.RESIDENT.value,),
        flag.severity,
    )


def _silent_until(flag: FlagState, h: Hygiene) -> datetime | None:
    if flag.status is FlagStatus.SNOOZED:
        return flag.snoozed_until
    if flag.acknowledged_at is None:
        return None
    return flag.acknowledged_at + timedelta(hours=h.ack_cooldown_h)


def _emit(
    actions: list[Action],
    flag: FlagState,
    notice: Notice,
    now: datetime,
    h: Hygiene,
    cover: Cover,
    *,
    force: bool = False,
) -> None:
    note = _notify(flag, notice, now, h, cover, force=force)
    if note is not None:
        actions.append(note)


def _closing_reason(
    flag: FlagState,
    spec: RuleSpec,
    state: State | None,
    result: ResidentResult,
    ruleset: RuleSet,
) -> tuple[FlagStatus, str] | None:
    if spec.timing is Timing.SINGLE:
        if spec.closure is Closure.AUTO and flag.last_evidence_at is not None:
            # BP-UNRELIABLE-HIGH fires 30 min after its reading; any valid BP after that
            # reading is the repeat that clears it (§10.2.6)
            reading_at = flag.last_evidence_at - timedelta(
                minutes=ruleset.thresholds.bp.unreliable_wait_min
            )
            latest = result.latest_valid.get("bp")
            if latest is not None and latest > reading_at:
                return FlagStatus.RESOLVED, "auto: valid repeat reading"
        return None
    if state is State.CLEAR and spec.closure in (Closure.HYSTERESIS, Closure.AUTO):
        return FlagStatus.RESOLVED, "auto: condition cleared"
    if state is State.CLEAR or state is State.GONE:
        newest = max(
            (t for k, t in result.latest_valid.items() if k in spec.inputs and t is not None),
            default=None,
        )
        if (
            newest is not None
            and flag.last_evidence_at is not None
            and newest > flag.last_evidence_at
        ):
            return FlagStatus.SUPERSEDED, "auto: newer data made the premise false"
    return None


def _duties(
    flag: FlagState,
    spec: RuleSpec,
    now: datetime,
    h: Hygiene,
    cover: Cover,
    actions: list[Action],
) -> FlagState:
    """Time-driven duties of an open flag (§0): a critical flag is re-sent every 15 min until
    acknowledged, goes to the team lead when still unacknowledged at 30 min, and to the liaison
    officer for a welfare check when the resident has not been reached at 60 min; an urgent
    flag gets one end-of-day reminder. The clock starts when someone is on duty."""
    if flag.severity is Severity.CRITICAL:
        start = cover.chain_start(flag.alerted_at)
        if now < start:
            return flag  # nobody on duty: the morning queue starts the clock
        waited = now - start
        if (
            waited >= timedelta(minutes=h.critical_escalate_liaison_min)
            and flag.escalation < 2
            and flag.reached_at is None
        ):
            for kind in (ActionKind.OPEN_TASK, ActionKind.NOTIFY):
                actions.append(
                    Action(
                        kind,
                        flag.resident,
                        flag.rule,
                        now,
                        Notice.ESCALATED_LIAISON,
                        (Recipient.LIAISON.value,),
                        flag.severity,
                    )
                )
            if flag.escalation < 1 and flag.status is FlagStatus.OPEN:
                actions.append(_lead(flag, now))
            return dataclasses.replace(flag, escalation=2, last_notified_at=now)
        if flag.status is not FlagStatus.OPEN:
            return flag
        if waited >= timedelta(minutes=h.critical_escalate_lead_min) and flag.escalation < 1:
            actions.append(_lead(flag, now))
            return dataclasses.replace(flag, escalation=1, last_notified_at=now)
        last = max(flag.last_notified_at or start, start)
        if now - last >= timedelta(minutes=h.critical_renotify_min):
            _emit(actions, flag, Notice.REMINDER, now, h, cover)
            return dataclasses.replace(flag, last_notified_at=now)
        return flag
    if flag.status is not FlagStatus.OPEN:
        return flag
    if flag.severity is Severity.URGENT and flag.reminders == 0:
        due = _urgent_reminder(flag.alerted_at, h, cover)
        if due is None:
            return flag  # raised after the reminder hour: the morning queue picks it up
        if now >= due:
            actions.append(
                Action(
                    ActionKind.NOTIFY,
                    flag.resident,
                    flag.rule,
                    now,
                    Notice.REMINDER,
                    _staff(spec),
                    flag.severity,
                )
            )
            return dataclasses.replace(flag, reminders=1, last_notified_at=now)
    return flag


def _lead(flag: FlagState, now: datetime) -> Action:
    return Action(
        ActionKind.NOTIFY,
        flag.resident,
        flag.rule,
        now,
        Notice.ESCALATED_LEAD,
        (NURSE_LEAD,),
        flag.severity,
    )


def _urgent_reminder(raised: datetime, h: Hygiene, cover: Cover) -> datetime | None:
    """The one end-of-day reminder of an urgent item (§10.2.1): at the reminder hour of the
    staffed day it is worked on (raised on a weekend or holiday: the next working day's). None
    when it was raised on a staffed day after the reminder hour."""
    if cover.hours is None:
        local = raised.astimezone(KST)
        due = local.replace(hour=h.urgent_reminder_local_hour, minute=0, second=0, microsecond=0)
        return None if local >= due else due
    opened = cover.hours.next_open(raised).astimezone(cover.hours.tz)
    due = opened.replace(hour=h.urgent_reminder_local_hour, minute=0, second=0, microsecond=0)
    return None if opened >= due else due
