"""The nurse's worklist (TIDE-style triage), flag actions, the month's visit plan and the
case-meeting report. Reads the clinical runner's tables (migration 0200) through scope.

Triage, after Tidepool's TIDE (fhir-mapping-and-anchors.md §3, §5.6): every resident in scope
appears at most once, in the first category that matches, in this order::

    critical   an open critical flag (not snoozed)
    urgent     an open urgent flag
    routine    an open routine clinical flag
    no data    ADH-NO-DATA open (the risk engine's rule: enrolled in home monitoring and no
               valid home reading for 7 days, 3 when living alone; clinical-rules.md §8)
    device     ADH-QUALITY open, a home-device battery below 20 %, or a home device silent
               for DEVICE_SILENT_DAYS

A snoozed flag (until its time) does not place a resident; it is shown as snoozed. Each
category lists at most ``limit`` residents (most recent alert first) and counts the rest;
residents with none of these are "meeting targets" and only counted. Each listed row carries
the last reading (last *measured*, not last synced) and who reviewed the resident last; those
are read only for the listed rows, so the page costs the same for 500 or 5,000 residents.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from psycopg import AsyncConnection

from api.store import access, rows
from api.store.access import Actor, Capability, InvalidRequest, NotFound, Role
from clinical import staff
from ingest.store import clinical

Conn = AsyncConnection[Any]

DEVICE_SILENT_DAYS = 14
LOW_BATTERY_PCT = 20  # the partial index device_low_battery (migration 0302) has it too
LOOKBACK = timedelta(days=60)  # "last measured" is searched this far back (partition pruning)
DATA_RULES = ("ADH-NO-DATA",)
DEVICE_RULES = ("ADH-QUALITY",)


class Category(StrEnum):
    CRITICAL = "critical"
    URGENT = "urgent"
    ROUTINE = "routine"
    NO_DATA = "no-data"
    DEVICE = "device"


CATEGORY_ORDER = tuple(Category)


@dataclass(frozen=True, slots=True)
class OpenFlag:
    id: int
    rule: str
    severity: str
    state: str
    summary: str
    alerted_at: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    snoozed_until: datetime | None
    snooze_reason: str | None


@dataclass(frozen=True, slots=True)
class DeviceIssue:
    device_id: str
    model: str | None
    battery_pct: int | None
    last_seen_at: datetime | None


@dataclass(frozen=True, slots=True)
class WorklistRow:
    resident_id: str
    display_name: str
    neighbourhood: str
    category: Category
    flags: tuple[OpenFlag, ...]
    device_issues: tuple[DeviceIssue, ...]
    last_measured: datetime | None  # None: nothing within LOOKBACK
    reviewed_at: datetime | None
    reviewed_by: str | None
    group: str | None


@dataclass(frozen=True, slots=True)
class Worklist:
    sections: dict[Category, tuple[WorklistRow, ...]]
    more: dict[Category, int]  # residents in the category after the page shown
    in_scope: int
    meeting_targets: int
    neighbourhoods: tuple[str, ...]
    generated_at: datetime
    totals: dict[Category, int] = field(default_factory=dict)  # after the filters
    offset: int = 0  # of the rows shown (the same for each section shown)
    rules: tuple[str, ...] = ()  # rules of the open flags in scope (the rule filter's list)
    tasks: tuple[PlainTask, ...] = ()  # open nurse tasks without a flag (new residents, ...)


@dataclass(frozen=True, slots=True)
class PlainTask:
    """A nurse task no flag raised (a new resident to call): what, for whom, by when."""

    id: int
    resident_id: str
    display_name: str
    neighbourhood: str
    description: str
    due_at: datetime
    status: str


class Sort(StrEnum):
    """Worklist order within each category."""

    ALERT = "alert"  # most recent alert first (TIDE)
    NAME = "name"
    MEASURED = "measured"  # longest without a reading first
    REVIEWED = "reviewed"  # longest without a review first


GROUPS = ("intensive", "regular", "self_management", "none")


class FlagFacts(Protocol):
    """What triage looks at in a flag (an OpenFlag, or the light row read for every flag)."""

    @property
    def rule(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def snoozed_until(self) -> datetime | None: ...
    @property
    def alerted_at(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class _LightFlag:
    resident_id: str
    id: int
    rule: str
    severity: str
    state: str
    snoozed_until: datetime | None
    alerted_at: datetime


@dataclass(frozen=True, slots=True)
class _DeviceRow:
    resident_id: str
    device_id: str
    model: str | None
    battery_pct: int | None
    last_seen_at: datetime | None


@dataclass(frozen=True, slots=True)
class _Details:
    id: str
    display_name: str
    neighbourhood: str
    last_measured: datetime | None
    reviewed_at: datetime | None
    reviewed_by: str | None


@dataclass(slots=True)
class _Candidate:
    resident_id: str
    flags: list[_LightFlag] = field(default_factory=list)
    devices: list[DeviceIssue] = field(default_factory=list)


def triage(
    flags: Sequence[FlagFacts], devices: Sequence[DeviceIssue], now: datetime
) -> Category | None:
    """The first matching category for one resident (pure)."""
    live = [
        f for f in flags if not (f.state == "snoozed" and f.snoozed_until and f.snoozed_until > now)
    ]
    clinical_flags = [f for f in live if f.rule not in DATA_RULES + DEVICE_RULES]
    severities = {f.severity for f in clinical_flags}
    if "critical" in severities:
        return Category.CRITICAL
    if "urgent" in severities:
        return Category.URGENT
    if "routine" in severities:
        return Category.ROUTINE
    if any(f.rule in DATA_RULES for f in live):
        return Category.NO_DATA
    if any(f.rule in DEVICE_RULES for f in live) or devices:
        return Category.DEVICE
    return None


async def worklist(
    conn: Conn,
    actor: Actor,
    *,
    neighbourhood: str | None = None,
    mine: bool = True,
    limit: int = 50,
    group: str | None = None,
    rule: str | None = None,
    sort: Sort = Sort.ALERT,
    only: Category | None = None,
    page: int = 1,
) -> Worklist:
    """The triaged worklist of the residents the actor may see (nurses and admins).

    A nurse's worklist is her own caseload (``resident.nurse_id``) unless ``mine`` is False,
    when it covers everyone in her neighbourhoods (her scope); ``neighbourhood`` narrows
    either to one 동, ``group`` to a visiting group and ``rule`` to residents with an open flag
    of that rule. Each category lists ``limit`` residents; ``only`` shows one category, on
    page ``page``.
    """
    if group is not None and group not in GROUPS:
        raise InvalidRequest(f"group must be one of {', '.join(GROUPS)}")
    page = max(1, page)
    actor.require(Capability.MANAGE_FLAGS)
    if actor.role not in (Role.NURSE, Role.ADMIN):
        raise access.AccessDenied(actor, "use the nurse worklist")
    where, params = access.scope_predicate(actor)
    params["nb"] = neighbourhood
    scope_sql = (
        f"SELECT r.id, r.display_name, r.neighbourhood FROM resident r WHERE {where}"
        " AND (%(nb)s::text IS NULL OR r.neighbourhood = %(nb)s)"
    )
    if mine and actor.role is Role.NURSE:  # in the text, so the plan uses resident_nurse
        params["me"] = actor.user_id
        scope_sql += " AND r.nurse_id = %(me)s"
    in_scope = int(
        await rows.scalar(conn, f"SELECT count(*) FROM ({scope_sql}) s".encode(), params) or 0
    )
    areas = actor.neighbourhoods or await neighbourhoods(conn, actor)
    # 1. what triage needs, for everyone in scope: light flag rows and device problems
    light = await rows.fetch_all(
        conn,
        _LightFlag,
        f"""WITH s AS ({scope_sql})
            SELECT f.resident_id, f.id, f.rule, f.severity, f.state, f.snoozed_until,
                   f.alerted_at
            FROM risk_flag f JOIN s ON s.id = f.resident_id
            WHERE f.state IN ('open', 'acknowledged', 'snoozed') AND f.severity <> 'info'
              AND ('nurse' = ANY(f.recipients) OR f.rule = ANY(%(data_rules)s))""".encode(),
        {**params, "data_rules": list(DATA_RULES + DEVICE_RULES)},
    )
    candidates: dict[str, _Candidate] = {}
    for flag in light:
        c = candidates.get(flag.resident_id)
        if c is None:
            c = candidates[flag.resident_id] = _Candidate(flag.resident_id)
        c.flags.append(flag)
    device_rows = await rows.fetch_all(
        conn,
        _DeviceRow,
        f"""WITH s AS ({scope_sql})
            SELECT s.id AS resident_id, d.id AS device_id, d.model, d.battery_pct,
                   d.last_seen_at
            FROM device d JOIN s ON s.id = d.owner_id
            WHERE d.owner_id IS NOT NULL
              AND (d.battery_pct < 20 OR d.last_seen_at < now() - %(silent)s)""".encode(),
        {**params, "silent": timedelta(days=DEVICE_SILENT_DAYS)},
    )
    for d in device_rows:
        c = candidates.get(d.resident_id)
        if c is None:
            c = candidates[d.resident_id] = _Candidate(d.resident_id)
        c.devices.append(DeviceIssue(d.device_id, d.model, d.battery_pct, d.last_seen_at))
    now = await clinical.db_now(conn)
    rules = tuple(sorted({f.rule for c in candidates.values() for f in c.flags}))
    if rule:
        candidates = {k: c for k, c in candidates.items() if any(f.rule == rule for f in c.flags)}
    if group:
        in_group = await clinical.visiting_groups(conn, list(candidates))
        candidates = {
            k: c
            for k, c in candidates.items()
            if (in_group[k].grp if k in in_group else "none") == group
        }
    placed: dict[Category, list[_Candidate]] = {c: [] for c in CATEGORY_ORDER}
    for c in candidates.values():
        category = triage(c.flags, c.devices, now)
        if category is not None and (only is None or category is only):
            placed[category].append(c)
    flagged = sum(len(items) for items in placed.values())
    plain = await rows.fetch_all(
        conn,
        PlainTask,
        f"""WITH s AS ({scope_sql})
            SELECT t.id, s.id AS resident_id, s.display_name, s.neighbourhood, t.description,
                   t.due_at, t.status
            FROM follow_up_task t JOIN s ON s.id = t.resident_id
            WHERE t.flag_id IS NULL AND t.role IN ('nurse', 'nurse_lead')
              AND t.closed_at IS NULL
            ORDER BY t.due_at, t.id LIMIT 200""".encode(),
        params,
    )
    # sorting by name, last reading or last review needs those for every placed resident
    details = (
        await _details(conn, [c.resident_id for items in placed.values() for c in items])
        if sort is not Sort.ALERT
        else {}
    )
    offset = (page - 1) * limit if only is not None else 0
    chosen: dict[Category, list[_Candidate]] = {}
    more: dict[Category, int] = {}
    totals: dict[Category, int] = {}
    for category, items in placed.items():
        items.sort(key=_sort_key(sort, details))
        chosen[category] = items[offset : offset + limit]
        more[category] = max(0, len(items) - offset - limit)
        totals[category] = len(items)
    # 2. what the page shows, for the listed residents only
    listed = [c.resident_id for items in chosen.values() for c in items]
    listed += [t.resident_id for t in plain if t.resident_id not in listed]
    if sort is Sort.ALERT:
        details = await _details(conn, listed)
    flags = await _flag_details(
        conn, [f.id for items in chosen.values() for c in items for f in c.flags]
    )
    groups = await clinical.visiting_groups(conn, listed)
    sections: dict[Category, tuple[WorklistRow, ...]] = {}
    for category, items in chosen.items():
        listed_rows = []
        for c in items:
            detail = details[c.resident_id]
            shown = sorted(
                (flags[f.id] for f in c.flags if f.id in flags),
                key=lambda f: (_SEVERITY_RANK[f.severity], -f.alerted_at.timestamp()),
            )
            listed_rows.append(
                WorklistRow(
                    resident_id=c.resident_id,
                    display_name=detail.display_name,
                    neighbourhood=detail.neighbourhood,
                    category=category,
                    flags=tuple(shown),
                    device_issues=tuple(c.devices),
                    last_measured=detail.last_measured,
                    reviewed_at=detail.reviewed_at,
                    reviewed_by=detail.reviewed_by,
                    group=groups[c.resident_id].grp if c.resident_id in groups else None,
                )
            )
        sections[category] = tuple(listed_rows)
    await access.record_audit(
        conn, actor, subtype="search-type", action="E", entity="page:worklist", residents=listed
    )
    return Worklist(
        sections=sections,
        more=more,
        in_scope=in_scope,
        meeting_targets=in_scope - flagged if not (rule or group or only) else 0,
        neighbourhoods=areas,
        generated_at=now,
        totals=totals,
        offset=offset,
        rules=rules,
        tasks=tuple(plain),
    )


_SEVERITY_RANK = {"critical": 0, "urgent": 1, "routine": 2, "info": 3}


def _sort_key(sort: Sort, details: dict[str, _Details]) -> Any:
    """The order of one category's residents (ties broken by the alert order)."""
    if sort is Sort.ALERT:
        return _urgency_key
    never = datetime.min.replace(tzinfo=UTC)

    def key(c: _Candidate) -> tuple[Any, ...]:
        d = details.get(c.resident_id)
        if sort is Sort.NAME:
            return (d.display_name if d else "", c.resident_id)
        when = (d.last_measured if sort is Sort.MEASURED else d.reviewed_at) if d else None
        return (when or never, _urgency_key(c))

    return key


def _urgency_key(c: _Candidate) -> tuple[float, str]:
    """Most recent alert first; residents with only device problems by id."""
    latest = max((f.alerted_at for f in c.flags), default=None)
    return (-latest.timestamp() if latest is not None else 0.0, c.resident_id)


async def _details(conn: Conn, ids: Sequence[str]) -> dict[str, _Details]:
    """Name, 동, last reading within LOOKBACK, and last review (when, by whom) per resident.

    One index probe per resident for the last reading; the upper bound "before tomorrow" lets
    the partitions ahead of today be pruned."""
    if not ids:
        return {}
    found = await rows.fetch_all(
        conn,
        _Details,
        """SELECT r.id, r.display_name, r.neighbourhood, last.effective_at AS last_measured,
                  rv.at AS reviewed_at, rv.name AS reviewed_by
           FROM unnest(%s::text[]) AS rid JOIN resident r ON r.id = rid
           LEFT JOIN LATERAL (
               SELECT o.effective_at FROM observation o
               WHERE o.resident_id = rid AND o.effective_at > now() - %s
                 AND o.effective_at < now() + interval '1 day'
                 AND o.status <> 'entered-in-error'
               ORDER BY o.effective_at DESC LIMIT 1) last ON true
           LEFT JOIN LATERAL (
               SELECT v.at, u.display_name AS name FROM resident_review v
               JOIN app_user u ON u.id = v.user_id
               WHERE v.resident_id = rid ORDER BY v.at DESC LIMIT 1) rv ON true""",
        (list(ids), LOOKBACK),
    )
    return {d.id: d for d in found}


async def _flag_details(conn: Conn, flag_ids: Sequence[int]) -> dict[int, OpenFlag]:
    if not flag_ids:
        return {}
    found = await rows.fetch_all(
        conn,
        OpenFlag,
        """SELECT f.id, f.rule, f.severity, f.state, f.summary, f.alerted_at,
                  coalesce(ua.display_name, f.acknowledged_by) AS acknowledged_by,
                  f.acknowledged_at, f.snoozed_until, f.snooze_reason
           FROM risk_flag f LEFT JOIN app_user ua ON ua.id = f.acknowledged_by
           WHERE f.id = ANY(%s)""",
        (list(flag_ids),),
    )
    return {f.id: f for f in found}


async def neighbourhoods(conn: Conn, actor: Actor) -> tuple[str, ...]:
    """The neighbourhoods of the residents the actor may see."""
    where, params = access.scope_predicate(actor)
    found = await rows.scalars(
        conn,
        f"SELECT DISTINCT r.neighbourhood FROM resident r WHERE {where} ORDER BY 1".encode(),
        params,
    )
    return tuple(str(n) for n in found)


# --- flag actions -----------------------------------------------------------------------------


async def _flag_resident(conn: Conn, actor: Actor, flag_id: int) -> clinical.FlagRow:
    row = await clinical.flag(conn, flag_id)
    if row is None:
        raise NotFound(f"flag {flag_id}")
    await access.require_resident(conn, actor, row.resident_id, Capability.MANAGE_FLAGS)
    return row


async def _staff_action(
    conn: Conn,
    actor: Actor,
    flag_id: int,
    entity: str,
    run: Callable[[datetime], Awaitable[clinical.FlagRow | None]],
) -> None:
    """One staff action through the pure lifecycle (clinical.staff), audited."""
    row = await _flag_resident(conn, actor, flag_id)
    try:
        done = await run(await clinical.db_now(conn))
    except staff.LifecycleError as exc:
        raise InvalidRequest(f"처리할 수 없습니다 / not possible: {exc}") from exc
    if done is None:
        raise InvalidRequest("이미 닫힌 알림입니다 / the flag is already closed")
    await access.record_audit(
        conn, actor, subtype="update", action="U", entity=entity, residents=[row.resident_id]
    )


async def acknowledge(conn: Conn, actor: Actor, flag_id: int) -> None:
    await _staff_action(
        conn,
        actor,
        flag_id,
        "Flag/acknowledge",
        lambda now: staff.acknowledge(conn, flag_id, actor.user_id, now),
    )


async def reached(conn: Conn, actor: Actor, flag_id: int) -> None:
    await _staff_action(
        conn,
        actor,
        flag_id,
        "Flag/reached",
        lambda now: staff.reached(conn, flag_id, actor.user_id, now),
    )


async def snooze(conn: Conn, actor: Actor, flag_id: int, until: datetime, reason: str) -> None:
    await _staff_action(
        conn,
        actor,
        flag_id,
        "Flag/snooze",
        lambda now: staff.snooze(conn, flag_id, actor.user_id, until, reason, now),
    )


async def resolve(conn: Conn, actor: Actor, flag_id: int, note: str) -> None:
    if not note.strip():
        raise InvalidRequest("조치 내용을 적어 주세요 / document the follow-up to resolve")
    await _staff_action(
        conn,
        actor,
        flag_id,
        "Flag/resolve",
        lambda now: staff.resolve(conn, flag_id, actor.user_id, note.strip(), now),
    )


# --- resident flags and tasks history -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlagHistory:
    id: int
    rule: str
    severity: str
    state: str
    summary: str
    opened_at: datetime
    closed_at: datetime | None
    close_reason: str | None
    acknowledged_by: str | None


@dataclass(frozen=True, slots=True)
class TaskHistory:
    id: int
    role: str
    priority: str
    status: str
    business_status: str
    due_at: datetime
    description: str
    created_at: datetime
    closed_at: datetime | None


async def resident_flags_and_tasks(
    conn: Conn, actor: Actor, resident_id: str, *, limit: int = 50
) -> tuple[tuple[FlagHistory, ...], tuple[TaskHistory, ...]]:
    """The resident page's flags and tasks history (newest first; clinical staff)."""
    await access.require_resident(conn, actor, resident_id, Capability.READ_FLAGS)
    flags = await rows.fetch_all(
        conn,
        FlagHistory,
        """SELECT f.id, f.rule, f.severity, f.state, f.summary, f.opened_at, f.closed_at,
                  f.close_reason, coalesce(u.display_name, f.acknowledged_by) AS acknowledged_by
           FROM risk_flag f LEFT JOIN app_user u ON u.id = f.acknowledged_by
           WHERE f.resident_id = %s
           ORDER BY (f.state IN ('open', 'acknowledged', 'snoozed')) DESC, f.opened_at DESC
           LIMIT %s""",
        (resident_id, limit),
    )
    tasks = await rows.fetch_all(
        conn,
        TaskHistory,
        """SELECT id, role, priority, status, business_status, due_at, description, created_at,
                  closed_at FROM follow_up_task WHERE resident_id = %s
           ORDER BY (closed_at IS NULL) DESC, created_at DESC LIMIT %s""",
        (resident_id, limit),
    )
    return tuple(flags), tuple(tasks)


# --- the month's visit plan -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VisitPlanRow:
    resident_id: str
    display_name: str
    neighbourhood: str
    group: str
    visits_rule: str
    next_visit_due: date | None
    last_visit: date | None
    visits_this_month: int
    visits_90_days: int

    @property
    def never_visited(self) -> bool:
        return self.last_visit is None


def month_bounds(month: date) -> tuple[date, date]:
    first = month.replace(day=1)
    nxt = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first, nxt


async def visit_plan(
    conn: Conn, actor: Actor, month: date, *, neighbourhood: str | None = None
) -> tuple[VisitPlanRow, ...]:
    """Residents in scope in a visiting group whose next visit falls due by the month's end,
    with their visits so far.

    A resident never visited is due now, whatever the group's schedule says (the runner's
    ``next_visit_due`` counts from enrolment, which put a new regular-group resident three
    months out): the first visit is what the programme starts with (OPERATIONAL, issue 14.6).
    They are listed first, then by due date."""
    actor.require(Capability.CASE_REPORT)
    first, nxt = month_bounds(month)
    where, params = access.scope_predicate(actor)
    found = await rows.fetch_all(
        conn,
        VisitPlanRow,
        f"""SELECT r.id AS resident_id, r.display_name, r.neighbourhood, g.grp AS "group",
                   g.visits AS visits_rule, g.next_visit_due,
                   (SELECT max(v.visited_on) FROM home_visit v
                    WHERE v.resident_id = r.id AND v.cancelled_at IS NULL) AS last_visit,
                   (SELECT count(*) FROM home_visit v WHERE v.resident_id = r.id
                    AND v.cancelled_at IS NULL AND v.visited_on >= %(first)s
                    AND v.visited_on < %(next)s) AS visits_this_month,
                   (SELECT count(*) FROM home_visit v WHERE v.resident_id = r.id
                    AND v.cancelled_at IS NULL AND v.visited_on > %(next)s::date - 90
                    AND v.visited_on < %(next)s) AS visits_90_days
            FROM visiting_group g JOIN resident r ON r.id = g.resident_id
            WHERE g.grp <> 'none' AND {where}
              AND (%(nb)s::text IS NULL OR r.neighbourhood = %(nb)s)
              AND (g.next_visit_due IS NULL OR g.next_visit_due < %(next)s
                   OR NOT EXISTS (SELECT 1 FROM home_visit v WHERE v.resident_id = r.id
                                  AND v.cancelled_at IS NULL))
            ORDER BY EXISTS (SELECT 1 FROM home_visit v WHERE v.resident_id = r.id
                             AND v.cancelled_at IS NULL),
                     array_position(ARRAY['intensive','regular','self_management'], g.grp),
                     g.next_visit_due NULLS FIRST, r.id""".encode(),
        {**params, "first": first, "next": nxt, "nb": neighbourhood},
    )
    plan = tuple(found)
    await access.record_audit(
        conn,
        actor,
        subtype="search-type",
        action="E",
        entity="page:visit-plan",
        residents=[r.resident_id for r in plan],
    )
    return plan


# --- the case-meeting report ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportFlag:
    resident_id: str
    display_name: str
    rule: str
    severity: str
    state: str
    summary: str
    opened_at: datetime
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class ReportTask:
    resident_id: str
    display_name: str
    role: str
    priority: str
    business_status: str
    due_at: datetime
    description: str


@dataclass(frozen=True, slots=True)
class ReportVisit:
    resident_id: str
    display_name: str
    visited_on: date
    kind: str
    by: str
    note: str | None


@dataclass(frozen=True, slots=True)
class CaseMeetingReport:
    neighbourhood: str
    month: date
    flags: tuple[ReportFlag, ...]  # raised in the month, or still open
    tasks: tuple[ReportTask, ...]  # open now
    visits: tuple[ReportVisit, ...]  # done in the month
    severity_counts: dict[str, int]
    groups: dict[str, int]
    generated_at: datetime


@dataclass(frozen=True, slots=True)
class _GroupCount:
    grp: str
    n: int


async def case_meeting_report(
    conn: Conn, actor: Actor, neighbourhood: str, month: date
) -> CaseMeetingReport:
    """One neighbourhood's month for the integrated case meeting (printable)."""
    actor.require(Capability.CASE_REPORT)
    if actor.role is not Role.ADMIN and neighbourhood not in actor.neighbourhoods:
        raise access.AccessDenied(actor, f"print the report of {neighbourhood}")
    first, nxt = month_bounds(month)
    where, params = access.scope_predicate(actor)
    base = {**params, "nb": neighbourhood, "first": first, "next": nxt}
    scope = f"r.neighbourhood = %(nb)s AND {where}"
    flags = await rows.fetch_all(
        conn,
        ReportFlag,
        f"""SELECT r.id AS resident_id, r.display_name, f.rule, f.severity, f.state,
                   f.summary, f.opened_at, f.closed_at
            FROM risk_flag f JOIN resident r ON r.id = f.resident_id
            WHERE {scope} AND f.severity <> 'info'
              AND (f.state IN ('open', 'acknowledged', 'snoozed')
                   OR (f.opened_at >= %(first)s AND f.opened_at < %(next)s))
            ORDER BY array_position(ARRAY['critical','urgent','routine'], f.severity),
                     f.opened_at DESC""".encode(),
        base,
    )
    tasks = await rows.fetch_all(
        conn,
        ReportTask,
        f"""SELECT r.id AS resident_id, r.display_name, t.role, t.priority,
                   t.business_status, t.due_at, t.description
            FROM follow_up_task t JOIN resident r ON r.id = t.resident_id
            WHERE {scope} AND t.closed_at IS NULL ORDER BY t.due_at""".encode(),
        base,
    )
    visits = await rows.fetch_all(
        conn,
        ReportVisit,
        f"""SELECT r.id AS resident_id, r.display_name, v.visited_on, v.kind,
                   u.display_name AS "by", v.note
            FROM home_visit v JOIN resident r ON r.id = v.resident_id
            JOIN app_user u ON u.id = v.user_id
            WHERE {scope} AND v.cancelled_at IS NULL
              AND v.visited_on >= %(first)s AND v.visited_on < %(next)s
            ORDER BY v.visited_on, r.id""".encode(),
        base,
    )
    group_counts = await rows.fetch_all(
        conn,
        _GroupCount,
        f"""SELECT g.grp, count(*) AS n
            FROM visiting_group g JOIN resident r ON r.id = g.resident_id
            WHERE {scope} GROUP BY g.grp""".encode(),
        base,
    )
    groups = {g.grp: g.n for g in group_counts}
    counts: dict[str, int] = {}
    for f in flags:
        counts[f.severity] = counts.get(f.severity, 0) + 1
    touched = sorted(
        {f.resident_id for f in flags}
        | {t.resident_id for t in tasks}
        | {v.resident_id for v in visits}
    )
    await access.record_audit(
        conn,
        actor,
        subtype="search-type",
        action="E",
        entity="page:case-meeting",
        residents=touched,
    )
    return CaseMeetingReport(
        neighbourhood=neighbourhood,
        month=first,
        flags=tuple(flags),
        tasks=tuple(tasks),
        visits=tuple(visits),
        severity_counts=counts,
        groups=groups,
        generated_at=await clinical.db_now(conn),
    )


# --- the liaison officer's monthly visit plan (no clinical values) ----------------------------


@dataclass(frozen=True, slots=True)
class LiaisonVisit:
    """One resident on a liaison officer's month: whom to visit and why, never values."""

    resident_id: str
    display_name: str
    neighbourhood: str
    last_visit: date | None  # the last visit or call on record (anyone's)
    visits_this_month: int
    open_tasks: int  # plain-language liaison tasks ("월간 방문 계획에 반영")
    next_due: datetime | None  # the earliest due date of those tasks


async def liaison_visit_plan(conn: Conn, actor: Actor, month: date) -> tuple[LiaisonVisit, ...]:
    """Every resident a liaison officer may see (assigned, consented) for her monthly visits:
    those with open liaison tasks first, then those not visited this month. Category and due
    date only, as the rest of her view (clinical-rules.md §0: never values)."""
    actor.require(Capability.READ_NEEDS)
    if actor.role is not Role.LIAISON:
        raise access.AccessDenied(actor, "use the liaison officer's visit plan")
    first, nxt = month_bounds(month)
    where, params = access.scope_predicate(actor)
    found = await rows.fetch_all(
        conn,
        LiaisonVisit,
        f"""SELECT r.id AS resident_id, r.display_name, r.neighbourhood,
                   (SELECT max(v.visited_on) FROM home_visit v
                    WHERE v.resident_id = r.id AND v.cancelled_at IS NULL) AS last_visit,
                   (SELECT count(*) FROM home_visit v WHERE v.resident_id = r.id
                    AND v.cancelled_at IS NULL AND v.visited_on >= %(first)s
                    AND v.visited_on < %(next)s)::int AS visits_this_month,
                   (SELECT count(*) FROM follow_up_task t WHERE t.resident_id = r.id
                    AND t.role = 'liaison' AND t.closed_at IS NULL)::int AS open_tasks,
                   (SELECT min(t.due_at) FROM follow_up_task t WHERE t.resident_id = r.id
                    AND t.role = 'liaison' AND t.closed_at IS NULL) AS next_due
            FROM resident r WHERE {where}
            ORDER BY 6 DESC, 5, 7 NULLS LAST, r.display_name, r.id""".encode(),
        {**params, "first": first, "next": nxt},
    )
    await access.record_audit(
        conn,
        actor,
        subtype="search-type",
        action="E",
        entity="page:liaison-visits",
        residents=[r.resident_id for r in found],
    )
    return tuple(found)
