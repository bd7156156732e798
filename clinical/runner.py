"""The clinical runner (``daon clinical``): the only I/O module of :mod:`clinical`.

It wakes on ingest's ``NOTIFY daon_observations`` (a JSON array of resident ids), runs a
catch-up query at start and every few minutes, evaluates the residents touched in batches with
the same vectorized engine ``daon assess`` uses, advances their flags through the pure
lifecycle, and stores what the lifecycle says (flags, flag events, tasks, visiting group) in
one transaction per batch, then ``NOTIFY daon_flags`` with the residents whose flags changed.

The fast path (issue 11): ingest pre-screens every new reading with :mod:`clinical.prescreen`
(the critical rules' own thresholds) and names the residents whose readings may raise a
critical flag on ``daon_priority``; :class:`Runner` evaluates those in a lane of their own,
concurrently with the backlog (on its own pooled connection), so a crisis reading never waits
behind thousands of ordinary ones, the duty tick, a catch-up, or even the backlog chunk being
evaluated when it arrives.

Nothing is evaluated twice for the same data, and a crash loses nothing:

* each resident has a cursor (the newest ``observation.stored_at`` evaluated); readings stored
  after ``cursor − margin`` are *fresh*. The margin covers ingest transactions that committed
  after a later one (``stored_at`` is the transaction's start), so no reading is ever missed;
* the lifecycle ignores readings a flag already cites (open or closed), so the overlap the
  margin re-reads never raises or notifies twice;
* cursor, flags, events and tasks commit together: after a crash the batch simply runs again.

Single-reading rules act only on readings measured within ``single_max_age_h`` (72 h): a device
memory uploaded weeks late feeds the means and the record, but does not page a nurse about a
reading from last month (OPERATIONAL).

Observation codes read: :mod:`clinical.codes` (:data:`~clinical.codes.CODES`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import holidays
import psycopg

from clinical import digest as weekly
from clinical import engine
from clinical.alerts import AlertPolicy, Cover, policy_from, route
from clinical.assess import parse_profile
from clinical.codes import (
    A1C_IFCC,
    A1C_NGSP,
    BMD_T,
    BODY_FAT,
    BP_PANEL,
    CODES,
    DIASTOLIC,
    GLUCOSE,
    HDL,
    LOCAL_CODES,
    PHQ9_ITEM9,
    PHQ9_TOTAL,
    PULSE,
    SYSTOLIC,
    TG,
    WAIST,
    WEIGHT,
)
from clinical.errors import InvalidCaseError
from clinical.evaluation import ResidentResult, resident_results
from clinical.flags import FlagStatus, Recipient, Severity
from clinical.lifecycle import KST, Action, ActionKind, FlagState, Notice, flag_facts, step
from clinical.model import (
    Cohort,
    Instrument,
    Meal,
    Position,
    Profile,
    ReadingsBuilder,
    Setting,
)
from clinical.resources import (
    business_status,
    digest_resource,
    flag_resource,
    group_change_task,
    risk_assessment,
    task_key,
    task_resource,
)
from clinical.ruleset import DEFAULT_RULESET, DKA_SYMPTOMS, RuleSet
from clinical.visiting import Group, decide
from ingest import store
from ingest.store import clinical as db
from ingest.store.observations import (
    IF_SYMPTOMS_CHANNEL,
    NOTIFY_CHANNEL,
    PRIORITY_CHANNEL,
    Series,
    parse_notify_payload,
    series_many,
)

logger = logging.getLogger(__name__)

FLAGS_CHANNEL = "daon_flags"  # NOTIFY payload: JSON array of residents whose flags changed
SYMPTOM_CODE = LOCAL_CODES["symptom"]


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    """Everything the runner needs; the ``[clinical]`` TOML table may set any field but the URL."""

    database_url: str = field(repr=False)
    ruleset: RuleSet = DEFAULT_RULESET
    batch_size: int = 200  # residents per transaction (the priority queue's batch)
    backlog_chunk: int = 25  # backlog residents per transaction; the queues are re-read between
    give_way_max_s: float = 2.0  # the backlog lane waits at most this long for the urgent lane
    history_days: int = 400  # metabolic components and A1C look back 365 days
    margin_s: float = 600.0  # re-read window behind each cursor (in-flight ingest transactions)
    single_max_age_h: float = 72.0
    catch_up_interval_s: float = 300.0
    duty_interval_s: float = 60.0  # critical re-sends every 15 min need a tick well below that
    nightly_local_hour: int = 2  # re-evaluate everyone (daily tick; no-data flags)
    connect_timeout_s: float = 10.0
    write_timeout_s: float = 120.0  # one batch transaction
    retry_max_s: float = 30.0
    alerts: AlertPolicy = field(default_factory=lambda: alert_policy(None))


_SETTABLE = frozenset(f.name for f in fields(RunnerConfig)) - {"database_url", "ruleset"}


def korean_holidays(around: date | None = None) -> frozenset[date]:
    """Korean public holidays (substitute days included) from the maintained ``holidays``
    library, for the year before ``around`` to three years after it (a runner restarts far
    more often than that)."""
    year = (around or datetime.now(KST).date()).year
    days = holidays.country_holidays("KR", years=range(year - 1, year + 4))
    return frozenset(days.keys())


def alert_policy(table: Mapping[str, Any] | None) -> AlertPolicy:
    """The §0 chain's roster and staffed hours from ``[clinical.alerts]`` (defaults: weekdays
    09:00-18:00 Asia/Seoul, Korean public holidays, no roster)."""
    return policy_from(table, korean_holidays())


def config_from(database_url: str, table: Mapping[str, Any] | None = None) -> RunnerConfig:
    """The config from the ``[clinical]`` settings table; unknown keys raise ValueError. The
    ``alerts`` sub-table is the roster and staffed hours (:func:`alert_policy`)."""
    values = dict(table or {})
    unknown = set(values) - _SETTABLE
    if unknown:
        raise ValueError(f"unknown [clinical] settings: {sorted(unknown)}")
    if "alerts" in values:
        values["alerts"] = alert_policy(values["alerts"])
    return replace(RunnerConfig(database_url), **values)


@dataclass(slots=True)
class BatchReport:
    residents: int = 0
    skipped: list[str] = field(default_factory=list)
    opened: int = 0
    closed: int = 0
    notifications: int = 0
    tasks: int = 0
    group_changes: int = 0
    changed_residents: list[str] = field(default_factory=list)

    def add(self, other: BatchReport) -> None:
        self.residents += other.residents
        self.opened += other.opened
        self.closed += other.closed
        self.notifications += other.notifications
        self.tasks += other.tasks
        self.group_changes += other.group_changes
        self.skipped.extend(other.skipped)
        self.changed_residents.extend(other.changed_residents)


# --------------------------------------------------------------------------- conversions


def obs_key(observation_id: str) -> int:
    """A stable 60-bit integer for an Observation id: the engine's reading index."""
    return int(observation_id.replace("-", "")[:15], 16)


def _epoch(when: datetime) -> int:
    return int(when.timestamp())


def _profile(row: db.ResidentRow, today: date) -> Profile:
    if row.birth_date is None or row.sex is None:
        raise InvalidCaseError(f"resident {row.id}", "birth date and sex are required")
    b = row.birth_date
    age = today.year - b.year - ((today.month, today.day) < (b.month, b.day))
    return parse_profile({**row.profile, "age": age, "sex": row.sex, "height_cm": row.height_cm})


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


def add_series(
    b: ReadingsBuilder,
    s: Series,
    index_of: Mapping[str, int],
    fresh_after: Mapping[str, datetime],
    single_after: datetime,
) -> dict[int, str]:
    """Series rows → engine readings. Returns reading index → Observation id."""
    ids: dict[int, str] = {}
    pulses: dict[tuple[str, datetime], float] = {}
    for i in range(len(s)):
        if s.code[i] == PULSE and s.value[i] is not None:
            pulses[(s.resident_id[i], s.effective_at[i])] = float(s.value[i])  # type: ignore[arg-type]
    for i in range(len(s)):
        code = s.code[i]
        if code == PULSE:
            continue
        resident = s.resident_id[i]
        r = index_of[resident]
        t = _epoch(s.effective_at[i])
        idx = obs_key(s.id[i])
        ids[idx] = s.id[i]
        fresh = s.stored_at[i] > fresh_after[resident] and s.effective_at[i] >= single_after
        ctx = s.context[i] or {}
        quality = s.quality[i]
        b.received = _epoch(s.stored_at[i])
        value = s.value[i]
        home = ctx.get("setting", "home") == "home"
        if code == BP_PANEL:
            comp = s.components[i] or {}
            b.add_bp(
                r,
                t,
                idx,
                sys=_float(comp.get(SYSTOLIC)),
                dia=_float(comp.get(DIASTOLIC)),
                pulse=pulses.get((resident, s.effective_at[i])),
                unit="mmHg",
                setting={"centre": Setting.CENTRE, "visit": Setting.VISIT}.get(
                    ctx.get("setting", "home"), Setting.HOME
                ),
                position={"supine": Position.SUPINE, "standing": Position.STANDING}.get(
                    ctx.get("position", "sitting"), Position.SITTING
                ),
                minutes_standing=_float(ctx.get("minutes_after_standing")),
                status=quality,
                fresh=fresh,
            )
        elif code in GLUCOSE:
            meal = ctx.get("meal") or ("fasting" if GLUCOSE[code] else None)
            b.add_glucose(
                r,
                t,
                idx,
                value=_float(value),
                unit=s.unit[i] or "",
                meal={
                    "fasting": Meal.FASTING,
                    "preprandial": Meal.PREPRANDIAL,
                    "postprandial": Meal.POSTPRANDIAL,
                    "casual": Meal.CASUAL,
                    "bedtime": Meal.BEDTIME,
                }.get(meal or "", Meal.MISSING),
                whole_blood=str(ctx.get("sample_type", "")).endswith("whole_blood"),
                status=quality,
                home=home,
                fresh=fresh,
            )
        elif code == WEIGHT and value is not None:
            b.add_weight(
                r, t, idx, value=float(value), unit=s.unit[i] or "", home=home, fresh=fresh
            )
        elif code == BODY_FAT and value is not None:
            b.add_body_comp(r, t, idx, fat_pct=float(value), asm_kg=None, fresh=fresh)
        elif code == LOCAL_CODES["asm"] and value is not None:
            b.add_body_comp(
                r,
                t,
                idx,
                fat_pct=None,
                asm_kg=float(value),
                dxa=str(ctx.get("method", "")).upper() == "DXA",
                fresh=fresh,
            )
        elif code in WAIST and value is not None:
            b.add_waist(r, t, idx, cm=float(value), unit=s.unit[i] or "cm", fresh=fresh)
        elif code in (A1C_NGSP, A1C_IFCC) and value is not None:
            b.add_a1c(
                r,
                t,
                idx,
                value=float(value),
                unit="mmol/mol" if code == A1C_IFCC else "%",
                fresh=fresh,
            )
        elif code in (TG, HDL) and value is not None:
            unit = s.unit[i] or "mg/dL"
            b.add_lipid(
                r,
                t,
                idx,
                tg=float(value) if code == TG else None,
                hdl=float(value) if code == HDL else None,
                unit=unit,
                fresh=fresh,
            )
        elif code == PHQ9_TOTAL and value is not None:
            b.add_screen(r, t, idx, instrument=Instrument.PHQ9, score=float(value), fresh=fresh)
        elif code == PHQ9_ITEM9 and value is not None:
            b.add_screen(r, t, idx, instrument=Instrument.PHQ9, item9=float(value), fresh=fresh)
        elif code in BMD_T and value is not None:
            b.add_screen(r, t, idx, instrument=Instrument.BMD, t_score=float(value), fresh=fresh)
        elif code == LOCAL_CODES["cist"]:
            b.add_screen(
                r,
                t,
                idx,
                instrument=Instrument.CIST,
                score=_float(value),
                decline=ctx.get("result") == "decline",
                fresh=fresh,
            )
        elif code == LOCAL_CODES["frailty"] and value is not None:
            b.add_screen(r, t, idx, instrument=Instrument.FRAILTY, score=float(value), fresh=fresh)
        elif code == LOCAL_CODES["grip"] and value is not None:
            b.add_function(r, t, idx, grip_kg=float(value), fresh=fresh)
        elif code == LOCAL_CODES["gait"] and value is not None:
            b.add_function(r, t, idx, gait_m_s=float(value), fresh=fresh)
        elif code == LOCAL_CODES["chair"] and value is not None:
            b.add_function(r, t, idx, chair_s=float(value), fresh=fresh)
        elif code == LOCAL_CODES["sppb"] and value is not None:
            b.add_function(r, t, idx, sppb=float(value), fresh=fresh)
        elif code == LOCAL_CODES["symptom"]:
            b.add_event(r, t, idx, symptoms=[str(x) for x in ctx.get("symptoms", ())], fresh=fresh)
        elif code == LOCAL_CODES["fall"]:
            b.add_event(
                r,
                t,
                idx,
                fall=True,
                injury=bool(ctx.get("injury")) or bool(ctx.get("head_strike")),
                fresh=fresh,
            )
        else:
            ids.pop(idx, None)  # a code the rules do not use (or a value-less entry)
    b.received = -1
    return ids


def to_state(row: db.FlagRow) -> FlagState:
    return FlagState(
        resident=row.resident_id,
        rule=row.rule,
        rule_set=row.rule_set,
        severity=Severity(row.severity),
        recipients=tuple(Recipient(r) for r in row.recipients),
        status=FlagStatus(row.state),
        opened_at=row.opened_at,
        alerted_at=row.alerted_at,
        summary=row.summary,
        evidence=tuple(sorted(obs_key(e) for e in row.evidence)),
        last_evidence_at=row.last_evidence_at,
        last_notified_at=row.last_notified_at,
        peak_value=row.peak_value,
        reminders=row.reminders,
        escalation=row.escalation,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        acknowledged_value=row.acknowledged_value,
        snoozed_until=row.snoozed_until,
        snooze_reason=row.snooze_reason,
        reached_at=row.reached_at,
        closed_at=row.closed_at,
        close_reason=row.close_reason,
        rearmed=row.rearmed,
        id=None if row.id is None else str(row.id),
    )


def to_row(state: FlagState, uuid_of: Mapping[int, str]) -> db.FlagRow:
    return db.FlagRow(
        id=None if state.id is None else int(state.id),
        resident_id=state.resident,
        rule=state.rule,
        rule_set=state.rule_set,
        severity=state.severity.value,
        recipients=[r.value for r in state.recipients],
        state=state.status.value,
        opened_at=state.opened_at,
        alerted_at=state.alerted_at,
        summary=state.summary,
        evidence=[uuid_of[i] for i in state.evidence if i in uuid_of],
        last_evidence_at=state.last_evidence_at,
        last_notified_at=state.last_notified_at,
        peak_value=state.peak_value,
        reminders=state.reminders,
        escalation=state.escalation,
        acknowledged_at=state.acknowledged_at,
        acknowledged_by=state.acknowledged_by,
        acknowledged_value=state.acknowledged_value,
        snoozed_until=state.snoozed_until,
        snooze_reason=state.snooze_reason,
        closed_at=state.closed_at,
        close_reason=state.close_reason,
        rearmed=state.rearmed,
        reached_at=state.reached_at,
    )


# --------------------------------------------------------------------------- one batch


Pause = Callable[[], Awaitable[None]]


async def _no_pause() -> None:
    return None


async def evaluate_residents(
    conn: psycopg.AsyncConnection[Any],
    resident_ids: Sequence[str],
    now: datetime,
    config: RunnerConfig,
    *,
    pause: Pause = _no_pause,
) -> BatchReport:
    """Evaluate ``resident_ids`` at ``now`` and store the outcome, in one transaction.

    ``pause`` is awaited before the engine runs and between residents: the backlog lane gives
    way there to the urgent lane (:meth:`Runner.give_way`), since its CPU-bound stretches
    would otherwise hold the event loop the urgent lane runs on."""
    report = BatchReport()
    ruleset = config.ruleset
    async with conn.transaction():
        rows = await db.residents(conn, sorted(set(resident_ids)))
        today = now.astimezone(KST).date()
        profiles: list[Profile] = []
        kept: list[db.ResidentRow] = []
        for row in rows:
            try:
                profiles.append(_profile(row, today))
                kept.append(row)
            except InvalidCaseError as exc:
                logger.error("resident %s skipped: profile not usable: %s", row.id, exc)
                report.skipped.append(row.id)
        if not kept:
            return report
        ids = [r.id for r in kept]
        index_of = {rid: i for i, rid in enumerate(ids)}
        cursor_rows = await db.cursors(conn, ids)
        margin = timedelta(seconds=config.margin_s)
        epoch0 = datetime(1970, 1, 1, tzinfo=UTC)
        fresh_after = {
            rid: (cursor_rows[rid] - margin) if rid in cursor_rows else epoch0 for rid in ids
        }
        series = await series_many(conn, ids, CODES, now - timedelta(days=config.history_days))
        await pause()
        b = ReadingsBuilder()
        uuid_of = add_series(
            b, series, index_of, fresh_after, now - timedelta(hours=config.single_max_age_h)
        )
        ev = engine.evaluate(Cohort.from_profiles(profiles), b.build(), _epoch(now), ruleset)
        evaluated = await db.evaluated_at(conn, ids)
        since = {index_of[rid]: _epoch(t) for rid, t in evaluated.items()}
        results = resident_results(ev, since=since)
        flag_rows = await db.flags_for(
            conn,
            ids,
            closed_since=now - timedelta(days=ruleset.thresholds.visiting.hysteresis_days),
        )
        for f in flag_rows:
            for e in f.evidence:
                uuid_of.setdefault(obs_key(e), e)
        by_resident: dict[str, list[db.FlagRow]] = {}
        for f in flag_rows:
            by_resident.setdefault(f.resident_id, []).append(f)
        groups = await db.visiting_groups(conn, ids)
        visits = await db.last_visits(conn, ids)
        cursor_updates: list[tuple[str, datetime, datetime]] = []
        newest: dict[str, datetime] = {}
        for i in range(len(series)):
            rid = series.resident_id[i]
            if rid not in newest or series.stored_at[i] > newest[rid]:
                newest[rid] = series.stored_at[i]
        for rid in ids:
            await pause()
            r = index_of[rid]
            changed = await _advance(
                conn,
                kept[r],
                profiles[r],
                results[r],
                by_resident.get(rid, []),
                uuid_of,
                groups.get(rid),
                visits.get(rid),
                now,
                ruleset,
                report,
                config.alerts,
            )
            if changed:
                report.changed_residents.append(rid)
            mark = newest.get(rid, cursor_rows.get(rid, epoch0))
            cursor_updates.append((rid, mark, now))
        await db.set_cursors(conn, cursor_updates)
        report.residents = len(ids)
        if report.changed_residents:
            await conn.execute(
                "SELECT pg_notify(%s, %s)", (FLAGS_CHANNEL, json.dumps(report.changed_residents))
            )
    return report


@dataclass(frozen=True, slots=True)
class Excluded:
    """A stored reading the quality filters (clinical-rules.md §2) keep out of every rule."""

    observation_id: str
    rule: str  # "Q-02" … "Q-09"
    reason: str  # Korean / English, from clinical.quality.REASONS


async def quality_exclusions(
    conn: psycopg.AsyncConnection[Any],
    resident_id: str,
    start: datetime,
    now: datetime,
    ruleset: RuleSet = DEFAULT_RULESET,
) -> dict[str, Excluded]:
    """The readings of ``resident_id`` measured from ``start`` to ``now`` that the engine's
    quality filters reject or exclude, by Observation id: the same evaluation the runner
    makes (a day before ``start`` is read too, for Q-08's previous weight and Q-09's
    duplicates). Reads only; stores nothing."""
    rows = await db.residents(conn, [resident_id])
    if not rows:
        return {}
    try:
        profile = _profile(rows[0], now.astimezone(KST).date())
    except InvalidCaseError:
        return {}
    series = await series_many(conn, [resident_id], CODES, start - timedelta(days=1))
    b = ReadingsBuilder()
    epoch0 = datetime(1970, 1, 1, tzinfo=UTC)
    uuid_of = add_series(b, series, {resident_id: 0}, {resident_id: epoch0}, now)
    ev = engine.evaluate(Cohort.from_profiles([profile]), b.build(), _epoch(now), ruleset)
    result = resident_results(ev, [0])[0]
    out: dict[str, Excluded] = {}
    for rejected in result.rejected:
        observation = uuid_of.get(rejected.index)
        if observation is not None and rejected.at >= start:
            out[observation] = Excluded(observation, rejected.rule, rejected.reason)
    return out


async def _advance(
    conn: psycopg.AsyncConnection[Any],
    resident: db.ResidentRow,
    profile: Profile,
    result: ResidentResult,
    stored: list[db.FlagRow],
    uuid_of: dict[int, str],
    group: db.GroupRow | None,
    last_visit: date | None,
    now: datetime,
    ruleset: RuleSet,
    report: BatchReport,
    policy: AlertPolicy,
) -> bool:
    """One resident: lifecycle step, persistence of its actions, visiting group."""
    states = [to_state(f) for f in stored]
    cover = policy.cover(resident.neighbourhood)
    transition = step(resident.id, states, result, now, ruleset, cover)
    before = {(f.rule, f.id): f for f in states}
    changed_states = [s for s in transition.states if s.rule in transition.changed]
    rows = [to_row(s, uuid_of) for s in changed_states]
    new_ids = await db.save_flags(conn, rows)
    saved: dict[str, FlagState] = {}
    for s, flag_id in zip(changed_states, new_ids, strict=True):
        saved[s.rule] = replace(s, id=str(flag_id))
        if s.id is None and ruleset.rule(s.rule).clinical:  # resident prompts are not flags
            report.opened += 1
        elif not s.is_open and before.get((s.rule, s.id), s).is_open:
            report.closed += 1
    await db.save_flag_resources(
        conn,
        [
            (
                int(s.id or 0),
                flag_resource(s, ruleset),
                risk_assessment(
                    s,
                    ruleset,
                    evidence_refs=[f"Observation/{uuid_of[i]}" for i in s.evidence if i in uuid_of],
                ),
            )
            for s in saved.values()
        ],
    )
    await _store_actions(
        conn, resident, transition.actions, saved, states, now, ruleset, report, policy
    )
    # every changed flag's tasks mirror its state (priority, status, businessStatus)
    for s in saved.values():
        if s.is_open:
            await _upsert_tasks(conn, resident, s, ruleset, now, welfare=False, cover=cover)
        else:
            status, business = business_status(s)
            await db.close_tasks(conn, [int(s.id or 0)], status, business, now)
    changed = bool(saved)
    changed |= await _update_group(
        conn, resident, profile, states, saved, result, group, last_visit, now, ruleset, report
    )
    return changed


def _roles(flag: FlagState) -> list[str]:
    return [r.value for r in flag.recipients if r is not Recipient.RESIDENT]


async def _upsert_tasks(
    conn: psycopg.AsyncConnection[Any],
    resident: db.ResidentRow,
    flag: FlagState,
    ruleset: RuleSet,
    now: datetime,
    *,
    welfare: bool,
    cover: Cover | None = None,
) -> int:
    """The flag's Tasks, one per staff role (or the liaison welfare check). Their due time runs
    from when the chain's clock starts: an alert raised at night is due the next morning."""
    if flag.severity.rank < Severity.ROUTINE.rank and not welfare:
        return 0
    roles = [Recipient.LIAISON.value] if welfare else _roles(flag)
    rows = []
    for role in roles:
        owner = {"nurse": resident.nurse_id, "liaison": resident.liaison_id}.get(role)
        res = task_resource(
            flag,
            role,
            ruleset,
            owner=owner,
            flag_id=flag.id,
            welfare_check=welfare,
            now=now if welfare else (cover or Cover()).chain_start(flag.alerted_at),
        )
        status, business = business_status(flag)
        rows.append(
            db.TaskRow(
                identifier=task_key(flag, role, welfare_check=welfare),
                flag_id=int(flag.id) if flag.id else None,
                resident_id=resident.id,
                role=role,
                owner_id=owner,
                priority=res["priority"],
                status=status,
                business_status=business,
                due_at=datetime.fromisoformat(res["restriction"]["period"]["end"]),
                description=res["description"],
                resource=res,
                at=now,
            )
        )
    await db.upsert_tasks(conn, rows)
    return len(rows)


async def _store_actions(
    conn: psycopg.AsyncConnection[Any],
    resident: db.ResidentRow,
    actions: Sequence[Action],
    saved: Mapping[str, FlagState],
    states: Sequence[FlagState],
    now: datetime,
    ruleset: RuleSet,
    report: BatchReport,
    policy: AlertPolicy,
) -> None:
    current = {s.rule: s for s in states if s.is_open}
    events: list[db.FlagEventRow] = []
    duty = policy.duty(resident.neighbourhood)
    for a in actions:
        flag = saved.get(a.rule) or current.get(a.rule)
        flag_id = int(flag.id) if flag is not None and flag.id else None
        if a.kind is ActionKind.NOTIFY:
            report.notifications += 1
        if a.kind is ActionKind.OPEN_TASK and a.notice is Notice.ESCALATED_LIAISON and flag:
            report.tasks += await _upsert_tasks(conn, resident, flag, ruleset, a.at, welfare=True)
        elif a.kind is ActionKind.OPEN_TASK:
            report.tasks += len(a.targets)
        events.append(
            db.FlagEventRow(
                flag_id=flag_id,
                resident_id=resident.id,
                rule=a.rule,
                at=a.at,
                kind=a.kind.value,
                notice=a.notice.value,
                targets=a.targets,
                severity=None if a.severity is None else a.severity.value,
                deliver_after=a.not_before,
                recipients=route(
                    a.targets,
                    nurse=resident.nurse_id,
                    liaison=resident.liaison_id,
                    duty=duty,
                    staffed=policy.staffed(a.at),
                )
                if a.kind is ActionKind.NOTIFY
                else (),
            )
        )
    await db.insert_flag_events(conn, events)


async def _update_group(
    conn: psycopg.AsyncConnection[Any],
    resident: db.ResidentRow,
    profile: Profile,
    states: Sequence[FlagState],
    saved: Mapping[str, FlagState],
    result: ResidentResult,
    previous: db.GroupRow | None,
    last_visit: date | None,
    now: datetime,
    ruleset: RuleSet,
    report: BatchReport,
) -> bool:
    latest: dict[tuple[str, str | None], FlagState] = {(s.rule, s.id): s for s in states}
    for s in saved.values():
        latest[(s.rule, s.id)] = s
    facts = flag_facts(latest.values(), ruleset)
    today = now.astimezone(KST).date()
    cohort = Cohort.from_profiles([profile])
    since = previous.since if previous is not None else today
    decision = decide(
        cohort,
        facts,
        result.frailty,
        now,
        ruleset,
        last_visit=last_visit,
        group_since=since,
        today=today,
    )
    if previous is not None and previous.grp != decision.group.value:
        since = today  # a new group: its visit interval and reassessment start today
        decision = decide(
            cohort,
            facts,
            result.frailty,
            now,
            ruleset,
            last_visit=last_visit,
            group_since=since,
            today=today,
        )
    row = db.GroupRow(
        resident_id=resident.id,
        grp=decision.group.value,
        since=since,
        visits=decision.visits,
        reason=decision.reason,
        next_visit_due=decision.next_visit_due,
        reassess_by=decision.reassess_by,
        rule_set=ruleset.version,
        updated_at=now,
    )
    if previous is not None and (previous.grp, previous.reason, previous.next_visit_due) == (
        row.grp,
        row.reason,
        row.next_visit_due,
    ):
        return False
    await db.save_visiting_groups(conn, [row])
    if previous is not None and previous.grp != row.grp:
        report.group_changes += 1
        if resident.liaison_id and decision.group is not Group.NONE:
            res = group_change_task(resident.id, decision.group, now, owner=resident.liaison_id)
            await db.upsert_tasks(
                conn,
                [
                    db.TaskRow(
                        identifier=res["identifier"][0]["value"],
                        flag_id=None,
                        resident_id=resident.id,
                        role=Recipient.LIAISON.value,
                        owner_id=resident.liaison_id,
                        priority="routine",
                        status="requested",
                        business_status="open",
                        due_at=datetime.fromisoformat(res["restriction"]["period"]["end"]),
                        description=res["description"],
                        resource=res,
                        at=now,
                    )
                ],
            )
        await db.insert_flag_events(
            conn,
            [
                db.FlagEventRow(
                    flag_id=None,
                    resident_id=resident.id,
                    rule="VISITING-GROUP",
                    at=now,
                    kind="visiting_group",
                    notice=row.grp,
                    detail=f"{previous.grp} → {row.grp}",
                )
            ],
        )
    return True


# --------------------------------------------------------------------------- weekly digest


async def make_weekly_digests(
    conn: psycopg.AsyncConnection[Any], now: datetime, config: RunnerConfig
) -> int:
    """The routine tier's weekly digest (§0, :mod:`clinical.digest`): once the last week's
    digests are due at ``now`` (the first staffed opening after the week) and not made yet,
    make one per nurse with routine items and store them in one transaction; the outbox
    trigger queues their deliveries. Returns how many were made (0 when not due or done)."""
    week = weekly.last_week_due(now, config.alerts.hours)
    if week is None:
        return 0
    start, end = weekly.period(week)
    rules = config.ruleset.rules
    async with conn.transaction():
        if await db.digest_week_done(conn, week):
            return 0
        rows = await db.routine_flags(conn, start, end)
        items = [
            (
                r.nurse_id,
                weekly.DigestItem(
                    flag_id=r.flag_id,
                    resident_id=r.resident_id,
                    resident_name=r.resident_name,
                    rule=r.rule,
                    title_ko=rules[r.rule].title_ko if r.rule in rules else r.rule,
                    summary=r.summary,
                    opened_at=r.opened_at,
                    state=r.state,
                    closed_at=r.closed_at,
                ),
            )
            for r in rows
        ]
        digests = weekly.build(items, week, now, config.alerts.hours)
        made = await db.save_digests(
            conn,
            week,
            [
                db.DigestRow(
                    recipient_id=d.recipient,
                    week_start=week,
                    period_start=start,
                    period_end=end,
                    made_at=now,
                    deliver_after=d.deliver_after,
                    items=[i.as_json(week) for i in d.items],
                    communication=digest_resource(d),
                )
                for d in digests
            ],
            now,
        )
    if made:
        logger.info("weekly digests of the week of %s: %d nurses", week.isoformat(), made)
    return made


# --------------------------------------------------------------------------- the service


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


class Runner:
    """The service: a LISTEN connection, three work queues of residents, periodic duties.

    Queues (issue 11's fast path: a critical reading never waits behind a long backlog):

    1. ``priority``: residents whose new readings may raise a critical flag (ingest's
       ``NOTIFY daon_priority``, :mod:`clinical.prescreen`; and glucose ≥ 200 with a DKA-type
       symptom stored near it, ``daon_priority_if_symptoms``), evaluated at once in one batch,
       in a lane of their own (:meth:`urgent_step`);
    2. ``alerting``: residents with open critical or urgent flags, from the duty tick (re-sends
       every 15 min, escalation, reminders);
    3. ``pending``: everything else, oldest first (ordinary notifications, catch-up, the
       hourly safety nets of the duty tick, the nightly run), in chunks of ``backlog_chunk``.

    :meth:`work` runs two lanes at once, each with its own pooled connection: the urgent lane
    (queue 1) and the backlog lane (queues 2 then 3, a chunk per transaction). A backlog chunk
    spends most of its time waiting for the database (reads, then a few statements per
    resident), so before this the priority queue waited for the chunk in flight: measured with
    ``bench/alerts.py`` at 2,000 readings/s, most of a crisis reading's latency was that wait
    (a chunk of 25 took 0.15-0.55 s on an idle machine, seconds on a loaded one). A resident is
    never in both lanes at once (``inflight``): a crisis reading for a resident of the chunk in
    flight is evaluated right after it.

    Duties, catch-up and the nightly run only *enqueue* (one short query each); a catch-up's
    watermark moves once every resident it found has been evaluated.
    """

    def __init__(self, config: RunnerConfig) -> None:
        self.config = config
        self.priority: set[str] = set()
        self.if_symptoms: set[str] = set()
        self.alerting: dict[str, None] = {}
        self.pending: dict[str, None] = {}  # insertion-ordered: the oldest work first
        self.wake = asyncio.Event()  # backlog work arrived (or anything: the backlog lane)
        self.urgent = asyncio.Event()  # priority work arrived, or a lane finished a chunk
        self.inflight: set[str] = set()  # residents being evaluated now, in either lane
        self.urgent_idle = asyncio.Event()  # the urgent lane has nothing it can do now
        self.urgent_idle.set()
        self.batches = 0
        self.last_report: BatchReport | None = None
        self.caught_up = asyncio.Event()  # set when the catch-ups found so far are done
        self._marks: list[tuple[datetime, set[str]]] = []  # catch-up (started, not yet done)

    def queue(self, ids: Sequence[str]) -> None:
        """Add residents to the backlog (kept in arrival order, each once)."""
        for rid in ids:
            self.pending.setdefault(rid, None)
        if ids:
            self.wake.set()

    @property
    def idle(self) -> bool:
        return not (self.priority or self.if_symptoms or self.alerting or self.pending)

    @property
    def urgent_waiting(self) -> bool:
        """Priority work that the urgent lane can start now (not blocked by ``inflight``)."""
        return bool(self.if_symptoms or (self.priority - self.inflight))

    async def process(self, pool: Any, ids: Sequence[str], pause: Pause = _no_pause) -> BatchReport:
        """Evaluate ``ids`` in batches (each its own transaction, bounded by a timeout)."""
        total = BatchReport()
        ordered = sorted(set(ids))
        for start in range(0, len(ordered), self.config.batch_size):
            chunk = ordered[start : start + self.config.batch_size]
            for report in await self._batch_or_one_by_one(pool, chunk, pause):
                self.batches += 1
                self.last_report = report
                total.add(report)
        if total.residents:
            logger.info(
                "evaluated %d residents: %d flags opened, %d closed, %d notifications",
                total.residents,
                total.opened,
                total.closed,
                total.notifications,
            )
        return total

    async def _batch(self, pool: Any, chunk: Sequence[str], pause: Pause) -> BatchReport:
        async with asyncio.timeout(self.config.write_timeout_s):
            async with pool.connection() as conn:
                now = await db.db_now(conn)
                return await evaluate_residents(conn, chunk, now, self.config, pause=pause)

    async def _batch_or_one_by_one(
        self, pool: Any, chunk: Sequence[str], pause: Pause = _no_pause
    ) -> list[BatchReport]:
        """One transaction for the batch; if it fails for a reason other than an outage, each
        resident alone, so that one resident whose data the engine cannot take (a bug, a value
        the database refuses) does not hold everyone else's flags back. That resident is
        logged with the traceback and skipped; its readings stay stored and it is evaluated
        again with its next reading or the nightly run."""
        try:
            return [await self._batch(pool, chunk, pause)]
        except (psycopg.OperationalError, store.StoreUnavailable, TimeoutError):
            raise  # an outage: the caller keeps the work and retries
        except Exception:
            if len(chunk) == 1:
                logger.exception("resident %s could not be evaluated; skipped", chunk[0])
                return [BatchReport(skipped=list(chunk))]
            logger.exception(
                "a batch of %d residents failed; evaluating them one by one", len(chunk)
            )
        reports = []
        for rid in chunk:
            reports.extend(await self._batch_or_one_by_one(pool, [rid], pause))
        return reports

    async def catch_up(self, pool: Any) -> int:
        """Queue the residents with Observations stored since the runner watermark (minus the
        margin); the watermark moves to this catch-up's start once they are all evaluated."""
        async with asyncio.timeout(self.config.write_timeout_s), pool.connection() as conn:
            started = await db.db_now(conn)
            mark = await db.runner_watermark(conn)
            since = None if mark is None else mark - timedelta(seconds=self.config.margin_s)
            ids = await db.residents_stored_since(conn, since)
        self.caught_up.clear()
        self._marks.append((started, set(ids)))
        self.queue(ids)
        await self._done(pool, ())
        return len(ids)

    async def duties(self, pool: Any) -> None:
        """Time-driven work: re-sends, escalation and reminders (residents with open alerts,
        ahead of the backlog), pending safety nets (residents with readings of the last hour,
        in the backlog), and the weekly digests once they are due."""
        async with asyncio.timeout(self.config.write_timeout_s), pool.connection() as conn:
            now = await db.db_now(conn)
            alerting = await db.residents_with_alerts(conn)
            recent = await db.residents_stored_since(conn, now - timedelta(hours=1))
            await conn.commit()
            await make_weekly_digests(conn, now, self.config)
        for rid in alerting:
            self.alerting.setdefault(rid, None)
        self.queue(recent)

    async def nightly(self, pool: Any) -> None:
        async with asyncio.timeout(self.config.write_timeout_s), pool.connection() as conn:
            ids = await db.active_resident_ids(conn)
        self.queue(ids)

    async def listen(self, stop: asyncio.Event) -> None:
        """LISTEN to ingest's channels; notifications only add residents to the queues."""
        channels: dict[str, Callable[[list[str]], None]] = {
            NOTIFY_CHANNEL: self.queue,
            PRIORITY_CHANNEL: self._prioritise,
            IF_SYMPTOMS_CHANNEL: self._prioritise_if_symptoms,
        }
        async with asyncio.timeout(self.config.connect_timeout_s):
            conn = await store.connect(self.config.database_url, autocommit=True)
        try:
            for channel in channels:
                await conn.execute(f"LISTEN {channel}")
            while not stop.is_set():
                async for note in conn.notifies(timeout=1.0):
                    try:
                        ids = parse_notify_payload(note.payload)
                    except ValueError as exc:
                        logger.warning("ignored a malformed %s payload: %s", note.channel, exc)
                        continue
                    channels.get(note.channel, self.queue)(ids)
                    self.wake.set()  # tests wait on it for any notification
                # a dead connection surfaces here rather than waiting silently
                async with asyncio.timeout(self.config.connect_timeout_s):
                    await conn.execute("SELECT 1")
        finally:
            await conn.close()

    def _prioritise(self, ids: Sequence[str]) -> None:
        self.priority.update(ids)
        self.urgent.set()
        self.urgent_idle.clear()  # the backlog lane gives way until the urgent lane looked

    def _prioritise_if_symptoms(self, ids: Sequence[str]) -> None:
        self.if_symptoms.update(ids)
        self.urgent.set()
        self.urgent_idle.clear()

    async def give_way(self) -> None:
        """The backlog lane's pause between residents: let the event loop run the listener,
        then wait while the urgent lane has work (it runs on the same loop; without this a
        loaded machine stretched each CPU-bound step of a backlog chunk into the crisis
        reading's latency)."""
        await asyncio.sleep(0)
        with contextlib.suppress(TimeoutError):  # bounded: a flood never starves the backlog
            async with asyncio.timeout(self.config.give_way_max_s):
                await self.urgent_idle.wait()

    async def _promote(self, pool: Any) -> None:
        """Glucose ≥ 200 residents with a DKA-type symptom stored near it go first; the others
        are in the backlog already (their ordinary notification)."""
        ids = sorted(self.if_symptoms)
        self.if_symptoms.clear()
        g = self.config.ruleset.thresholds.glucose
        window = timedelta(hours=g.hyper_symptom_hours + self.config.single_max_age_h)
        try:
            async with asyncio.timeout(self.config.write_timeout_s), pool.connection() as conn:
                found = await db.residents_with_symptoms(
                    conn, ids, sorted(DKA_SYMPTOMS), SYMPTOM_CODE, window
                )
        except BaseException:
            self.if_symptoms.update(ids)
            raise
        self.priority.update(found)
        self.queue([rid for rid in ids if rid not in found])

    async def _run(
        self,
        pool: Any,
        ids: list[str],
        back: Callable[[list[str]], None],
        pause: Pause = _no_pause,
    ) -> None:
        """Evaluate ``ids``; on an outage they go back to their queue (``back``)."""
        for rid in ids:  # evaluated now: this evaluation sees every reading already notified
            self.pending.pop(rid, None)
            self.alerting.pop(rid, None)
        self.inflight.update(ids)
        try:
            await self.process(pool, ids, pause)
        except BaseException:
            back(ids)  # not lost: retried after the outage
            raise
        finally:
            self.inflight.difference_update(ids)
            self.urgent.set()  # a priority resident may have waited for this chunk
        await self._done(pool, ids)

    async def _done(self, pool: Any, ids: Sequence[str]) -> None:
        """Move the watermark past every catch-up whose residents are all evaluated now."""
        for _, remaining in self._marks:
            remaining.difference_update(ids)
        finished = None
        while self._marks and not self._marks[0][1]:
            finished = self._marks.pop(0)[0]
        if finished is not None:
            async with asyncio.timeout(self.config.write_timeout_s), pool.connection() as conn:
                await db.set_runner_watermark(conn, finished)
                await conn.commit()
        if not self._marks:
            self.caught_up.set()

    async def step(self, pool: Any) -> bool:
        """One unit of work, the most urgent first; False when there was nothing to do."""
        return await self.urgent_step(pool) or await self.backlog_step(pool)

    async def urgent_step(self, pool: Any) -> bool:
        """Evaluate the priority queue (residents not in flight in the other lane)."""
        if self.if_symptoms:
            await self._promote(pool)
        ready = sorted(self.priority - self.inflight)[: self.config.batch_size]
        if not ready:
            return False
        self.priority.difference_update(ready)
        await self._run(pool, ready, self._prioritise)
        return True

    def _take(self, queue: dict[str, None]) -> list[str]:
        """The oldest ``backlog_chunk`` of ``queue`` that neither lane holds (a priority
        resident is the urgent lane's: it drops out of the backlog when evaluated there)."""
        ids: list[str] = []
        for rid in queue:
            if rid not in self.inflight and rid not in self.priority:
                ids.append(rid)
                if len(ids) == self.config.backlog_chunk:
                    break
        return ids

    async def backlog_step(self, pool: Any, pause: Pause = _no_pause) -> bool:
        """One chunk of the alerting queue, else of the backlog."""
        if ids := self._take(self.alerting):
            for rid in ids:
                del self.alerting[rid]
            await self._run(
                pool, ids, lambda back: self.alerting.update(dict.fromkeys(back)), pause
            )
            return True
        if ids := self._take(self.pending):
            await self._run(pool, ids, self.queue, pause)
            return True
        return False

    async def urgent_lane(self, pool: Any, stop: asyncio.Event) -> None:
        """The fast path: wakes on ``daon_priority`` and evaluates at once."""
        try:
            while not stop.is_set():
                if not self.urgent_waiting:
                    self.urgent_idle.set()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(1.0):
                            await self.urgent.wait()
                self.urgent.clear()
                self.urgent_idle.clear()
                await self.urgent_step(pool)
        finally:
            self.urgent_idle.set()  # never leave the backlog lane waiting for a dead lane

    async def work(self, pool: Any, stop: asyncio.Event) -> None:
        """Both lanes until ``stop`` (an outage in either ends both: :func:`run` restarts)."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.urgent_lane(pool, stop))
            tg.create_task(self.backlog_lane(pool, stop))

    async def backlog_lane(self, pool: Any, stop: asyncio.Event) -> None:
        next_catch_up = time.monotonic() + self.config.catch_up_interval_s
        next_duty = time.monotonic() + self.config.duty_interval_s
        last_night: date | None = None
        while not stop.is_set():
            if not (self._take(self.alerting) or self._take(self.pending)):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self.wake.wait()
            self.wake.clear()
            await self.backlog_step(pool, self.give_way)
            mono = time.monotonic()
            if mono >= next_catch_up:
                await self.catch_up(pool)
                next_catch_up = mono + self.config.catch_up_interval_s
            if mono >= next_duty:
                await self.duties(pool)
                next_duty = mono + self.config.duty_interval_s
            local = datetime.now(KST)
            if local.hour == self.config.nightly_local_hour and last_night != local.date():
                await self.nightly(pool)
                last_night = local.date()


async def run(
    config: RunnerConfig,
    *,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Run until ``stop`` is set: catch up, then serve notifications and periodic duties.

    Outages (database down, connection lost) pause the runner with bounded backoff; the work
    set and the cursors make sure nothing is lost. ``ready`` is set once the catch-up ran and
    the LISTEN connection is up (tests, benchmarks, the demo).
    """
    stop = stop or asyncio.Event()
    runner = Runner(config)
    delay = 0.5
    while not stop.is_set():
        pool = None
        try:
            pool = await store.open_pool(
                config.database_url,
                min_size=3,  # each lane's connection ready, and one for the duties
                max_size=3,
                name="clinical",
                wait_s=config.connect_timeout_s,
            )
            async with asyncio.TaskGroup() as tg:
                listener = tg.create_task(runner.listen(stop))
                await runner.catch_up(pool)
                worker = tg.create_task(runner.work(pool, stop))
                if ready is not None:
                    waiter = tg.create_task(runner.caught_up.wait())
                    await asyncio.wait({worker, waiter}, return_when=asyncio.FIRST_COMPLETED)
                    if runner.caught_up.is_set():
                        ready.set()
                    waiter.cancel()
                delay = 0.5
                await worker
                listener.cancel()
        except* (psycopg.OperationalError, store.StoreUnavailable, TimeoutError) as group:
            for exc in group.exceptions:
                logger.warning("clinical runner paused: %s; retrying in %.1f s", exc, delay)
            await _sleep_or_stop(stop, delay)
            delay = min(delay * 2, config.retry_max_s)
        except* Exception:
            logger.exception("clinical runner failed; restarting in %.1f s", delay)
            await _sleep_or_stop(stop, delay)
            delay = min(delay * 2, config.retry_max_s)
        finally:
            if pool is not None:
                await pool.close()
    logger.info("clinical runner stopped (database %s)", store.redact_url(config.database_url))
