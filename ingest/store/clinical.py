"""Clinical tables (migrations 0200, 0210): risk flags, flag events, follow-up tasks, visiting
groups and the runner's cursors. Written by ``clinical.runner`` and, for staff actions, by
``clinical.staff`` (which runs the pure lifecycle and stores what it says: there is no second
copy of the lifecycle in SQL here).

Plain values in and out (no clinical types: ingest never imports clinical).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from typing import Any, Final

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

Conn = AsyncConnection[Any]

OPEN_STATES: Final = ("open", "acknowledged", "snoozed")


# --------------------------------------------------------------------------- residents


@dataclass(frozen=True, slots=True)
class ResidentRow:
    id: str
    birth_date: date | None
    sex: str | None
    height_cm: float | None
    profile: dict[str, Any]
    nurse_id: str | None
    liaison_id: str | None
    neighbourhood: str | None = None


async def residents(conn: Conn, ids: Sequence[str]) -> list[ResidentRow]:
    """Registration facts of active residents (unknown or inactive ids are left out)."""
    async with conn.cursor(row_factory=class_row(ResidentRow)) as cur:
        await cur.execute(
            "SELECT id, birth_date, sex, height_cm::float8 AS height_cm, "
            # the registry's lives_alone (migration 0003) is the one home of that fact
            "CASE WHEN lives_alone IS NULL THEN profile "
            "ELSE profile || jsonb_build_object('lives_alone', lives_alone) END AS profile, "
            "nurse_id, liaison_id, neighbourhood FROM resident "
            "WHERE id = ANY(%s) AND active ORDER BY id",
            (list(ids),),
        )
        return await cur.fetchall()


async def active_resident_ids(conn: Conn) -> list[str]:
    cur = await conn.execute("SELECT id FROM resident WHERE active ORDER BY id")
    return [str(r[0]) for r in await cur.fetchall()]


async def db_now(conn: Conn) -> datetime:
    """The database clock (the runner's ``now`` for freshness against ``stored_at``)."""
    cur = await conn.execute("SELECT clock_timestamp()")
    row = await cur.fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


# --------------------------------------------------------------------------- cursors


async def cursors(conn: Conn, ids: Sequence[str]) -> dict[str, datetime]:
    """Per resident, the newest ``observation.stored_at`` already evaluated."""
    cur = await conn.execute(
        "SELECT resident_id, watermark FROM clinical_cursor WHERE resident_id = ANY(%s)",
        (list(ids),),
    )
    return {str(r[0]): r[1] for r in await cur.fetchall()}


async def evaluated_at(conn: Conn, ids: Sequence[str]) -> dict[str, datetime]:
    """Per resident, when the runner last evaluated them (for rules that fire with time)."""
    cur = await conn.execute(
        "SELECT resident_id, evaluated_at FROM clinical_cursor WHERE resident_id = ANY(%s)",
        (list(ids),),
    )
    return {str(r[0]): r[1] for r in await cur.fetchall()}


async def set_cursors(conn: Conn, rows: Sequence[tuple[str, datetime, datetime]]) -> None:
    """(resident, watermark, evaluated_at); a watermark never moves backwards."""
    if not rows:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO clinical_cursor AS c (resident_id, watermark, evaluated_at) "
            "VALUES (%s, %s, %s) ON CONFLICT (resident_id) DO UPDATE SET "
            "watermark = greatest(c.watermark, excluded.watermark), "
            "evaluated_at = excluded.evaluated_at",
            list(rows),
        )


async def runner_watermark(conn: Conn) -> datetime | None:
    cur = await conn.execute("SELECT value FROM clinical_runner WHERE key = 'catch_up'")
    row = await cur.fetchone()
    return None if row is None else row[0]


async def set_runner_watermark(conn: Conn, value: datetime) -> None:
    await conn.execute(
        "INSERT INTO clinical_runner AS r (key, value) VALUES ('catch_up', %s) "
        "ON CONFLICT (key) DO UPDATE SET value = greatest(r.value, excluded.value)",
        (value,),
    )


async def residents_stored_since(conn: Conn, since: datetime | None) -> list[str]:
    """Residents with Observations stored at or after ``since`` (all of them when None)."""
    cur = await conn.execute(
        "SELECT DISTINCT resident_id FROM observation WHERE resident_id IS NOT NULL "
        "AND (%s::timestamptz IS NULL OR stored_at >= %s) ORDER BY resident_id",
        (since, since),
    )
    return [str(r[0]) for r in await cur.fetchall()]


# --------------------------------------------------------------------------- flags


@dataclass(frozen=True, slots=True)
class FlagRow:
    """One ``risk_flag`` row. ``id`` is None for a flag not yet stored."""

    id: int | None
    resident_id: str
    rule: str
    rule_set: str
    severity: str
    recipients: list[str]
    state: str
    opened_at: datetime
    alerted_at: datetime
    summary: str
    evidence: list[str] = field(default_factory=list)  # Observation ids
    last_evidence_at: datetime | None = None
    last_notified_at: datetime | None = None
    peak_value: float | None = None
    reminders: int = 0
    escalation: int = 0
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    acknowledged_value: float | None = None
    snoozed_until: datetime | None = None
    snooze_reason: str | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None
    rearmed: bool = True
    reached_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


_FLAG_COLUMNS: Final = tuple(f.name for f in fields(FlagRow))
_FLAG_SELECT: Final = ", ".join(
    "evidence::text[] AS evidence" if c == "evidence" else c for c in _FLAG_COLUMNS
)


async def flags_for(conn: Conn, ids: Sequence[str], *, closed_since: datetime) -> list[FlagRow]:
    """Open flags, flags closed since ``closed_since`` (visiting-group hysteresis) and the
    latest closed flag of every rule (re-arming and evidence already handled)."""
    async with conn.cursor(row_factory=class_row(FlagRow)) as cur:
        await cur.execute(
            f"""
            SELECT {_FLAG_SELECT} FROM risk_flag f
            WHERE resident_id = ANY(%(ids)s) AND (
                state IN ('open', 'acknowledged', 'snoozed')
                OR closed_at >= %(since)s
                OR id IN (SELECT DISTINCT ON (resident_id, rule) id FROM risk_flag
                          WHERE resident_id = ANY(%(ids)s) AND closed_at IS NOT NULL
                          ORDER BY resident_id, rule, closed_at DESC, id DESC))
            ORDER BY resident_id, rule, opened_at, id
            FOR UPDATE OF f
            """.encode(),
            {"ids": list(ids), "since": closed_since},
        )
        return await cur.fetchall()


async def open_flags(conn: Conn, resident_id: str) -> list[FlagRow]:
    """A resident's open flags, most severe and most recent first (for the api)."""
    async with conn.cursor(row_factory=class_row(FlagRow)) as cur:
        await cur.execute(
            f"SELECT {_FLAG_SELECT} FROM risk_flag WHERE resident_id = %s "
            "AND state IN ('open', 'acknowledged', 'snoozed') "
            "ORDER BY array_position(ARRAY['critical','urgent','routine','info'], severity), "
            "alerted_at DESC".encode(),
            (resident_id,),
        )
        return await cur.fetchall()


async def flag(conn: Conn, flag_id: int, *, for_update: bool = False) -> FlagRow | None:
    """One flag; ``for_update`` locks it until the transaction ends (a staff action and the
    runner never overwrite each other: the runner locks the flags it evaluates too)."""
    lock = " FOR UPDATE" if for_update else ""
    async with conn.cursor(row_factory=class_row(FlagRow)) as cur:
        await cur.execute(
            f"SELECT {_FLAG_SELECT} FROM risk_flag WHERE id = %s{lock}".encode(), (flag_id,)
        )
        return await cur.fetchone()


def _flag_values(row: FlagRow) -> list[Any]:
    return [getattr(row, c) for c in _FLAG_COLUMNS if c != "id"]


async def save_flags(conn: Conn, rows: Sequence[FlagRow]) -> list[int]:
    """Insert new flags (``id`` None) and update stored ones; the ids, in ``rows`` order."""
    out: list[int] = []
    cols = [c for c in _FLAG_COLUMNS if c != "id"]
    insert = (
        f"INSERT INTO risk_flag ({', '.join(cols)}) VALUES "
        f"({', '.join('%s::uuid[]' if c == 'evidence' else '%s' for c in cols)}) RETURNING id"
    ).encode()
    update = (
        "UPDATE risk_flag SET "
        + ", ".join(f"{c} = %s::uuid[]" if c == "evidence" else f"{c} = %s" for c in cols)
        + ", updated_at = now() WHERE id = %s"
    ).encode()
    for row in rows:
        if row.id is None:
            cur = await conn.execute(insert, _flag_values(row))
            new = await cur.fetchone()
            assert new is not None
            out.append(int(new[0]))
        else:
            await conn.execute(update, [*_flag_values(row), row.id])
            out.append(row.id)
    return out


async def save_flag_resources(
    conn: Conn, rows: Sequence[tuple[int, dict[str, Any], dict[str, Any]]]
) -> None:
    """(flag id, FHIR Flag, FHIR RiskAssessment) as rendered by the runner (migration 0201)."""
    if not rows:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "UPDATE risk_flag SET fhir_flag = %s, fhir_risk_assessment = %s WHERE id = %s",
            [(Jsonb(f), Jsonb(r), i) for i, f, r in rows],
        )


async def flag_resources(conn: Conn, flag_id: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The stored FHIR Flag and RiskAssessment of a flag (clinical staff only)."""
    cur = await conn.execute(
        "SELECT fhir_flag, fhir_risk_assessment FROM risk_flag WHERE id = %s", (flag_id,)
    )
    row = await cur.fetchone()
    if row is None or row[0] is None:
        return None
    return dict(row[0]), dict(row[1])


@dataclass(frozen=True, slots=True)
class FlagEventRow:
    flag_id: int | None
    resident_id: str
    rule: str
    at: datetime
    kind: str
    notice: str
    targets: Sequence[str] = ()
    severity: str | None = None
    actor: str | None = None
    detail: str | None = None
    deliver_after: datetime | None = None
    recipients: Sequence[str] = ()  # app_user ids a notify event reaches (migration 0210)


async def insert_flag_events(conn: Conn, rows: Sequence[FlagEventRow]) -> None:
    if not rows:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO flag_event (flag_id, resident_id, rule, at, kind, notice, targets, "
            "severity, actor, detail, deliver_after, recipients) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    r.flag_id,
                    r.resident_id,
                    r.rule,
                    r.at,
                    r.kind,
                    r.notice,
                    list(r.targets),
                    r.severity,
                    r.actor,
                    r.detail,
                    r.deliver_after,
                    list(r.recipients),
                )
                for r in rows
            ],
        )


async def flag_events(conn: Conn, flag_id: int) -> list[FlagEventRow]:
    async with conn.cursor(row_factory=class_row(FlagEventRow)) as cur:
        await cur.execute(
            "SELECT flag_id, resident_id, rule, at, kind, notice, targets, severity, actor, "
            "detail, deliver_after, recipients FROM flag_event WHERE flag_id = %s "
            "ORDER BY at, id",
            (flag_id,),
        )
        return await cur.fetchall()


async def residents_with_alerts(conn: Conn) -> list[str]:
    """Residents whose open critical/urgent flags or snoozes may need time-driven duties:
    re-sends and escalation of unacknowledged ones, and the welfare check of a critical flag
    whose resident nobody has reached yet (acknowledged or not)."""
    cur = await conn.execute(
        "SELECT DISTINCT resident_id FROM risk_flag WHERE (state IN ('open', 'snoozed') "
        "AND severity IN ('critical', 'urgent')) OR (state = 'acknowledged' "
        "AND severity = 'critical' AND escalation < 2 AND reached_at IS NULL) "
        "ORDER BY resident_id"
    )
    return [str(r[0]) for r in await cur.fetchall()]


async def residents_with_symptoms(
    conn: Conn, ids: Sequence[str], symptoms: Sequence[str], code: str, window: timedelta
) -> set[str]:
    """Those of ``ids`` with a symptom event (``code``, ``context.symptoms``) naming one of
    ``symptoms`` measured within ``window`` before now (the runner's fast path)."""
    if not ids:
        return set()
    cur = await conn.execute(
        "SELECT DISTINCT resident_id FROM observation WHERE resident_id = ANY(%s) "
        "AND code = %s AND effective_at >= now() - %s AND status <> 'entered-in-error' "
        "AND context -> 'symptoms' ?| %s::text[]",
        (list(ids), code, window, list(symptoms)),
    )
    return {str(r[0]) for r in await cur.fetchall()}


# --------------------------------------------------------------------------- staff actions


async def staff_event(
    conn: Conn, flag_id: int, at: datetime, action: str, user_id: str, detail: str | None
) -> None:
    """The audit trail of a staff action on a flag (acknowledge, snooze, reached, resolve)."""
    await conn.execute(
        "INSERT INTO flag_event (flag_id, resident_id, rule, at, kind, notice, actor, detail) "
        "SELECT id, resident_id, rule, %s, 'staff', %s, %s, %s FROM risk_flag WHERE id = %s",
        (at, action, user_id, detail, flag_id),
    )


# --------------------------------------------------------------------------- tasks


@dataclass(frozen=True, slots=True)
class TaskRow:
    identifier: str
    flag_id: int | None
    resident_id: str
    role: str
    owner_id: str | None
    priority: str
    status: str
    business_status: str
    due_at: datetime
    description: str
    resource: dict[str, Any]
    at: datetime


async def upsert_tasks(conn: Conn, rows: Sequence[TaskRow]) -> None:
    """Create tasks, or refresh status, priority and resource of ones that exist. A task a
    person completed (``closed_by = 'staff'``) is left exactly as she left it; one the runner
    closed itself re-opens with its flag (§10.2)."""
    if not rows:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO follow_up_task AS t (identifier, flag_id, resident_id, role, owner_id, "
            "priority, status, business_status, due_at, description, resource, created_at, "
            "updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (identifier) DO UPDATE SET priority = excluded.priority, "
            "status = excluded.status, business_status = excluded.business_status, "
            "due_at = least(t.due_at, excluded.due_at), resource = excluded.resource, "
            "updated_at = excluded.updated_at, closed_at = NULL, closed_by = NULL "
            "WHERE t.closed_by IS DISTINCT FROM 'staff'",
            [
                (
                    r.identifier,
                    r.flag_id,
                    r.resident_id,
                    r.role,
                    r.owner_id,
                    r.priority,
                    r.status,
                    r.business_status,
                    r.due_at,
                    r.description,
                    Jsonb(r.resource),
                    r.at,
                    r.at,
                )
                for r in rows
            ],
        )


async def set_task_status(
    conn: Conn, flag_id: int, status: str, business_status: str, at: datetime
) -> None:
    """Mirror a flag's state on its open tasks (FHIR status and businessStatus too)."""
    await conn.execute(
        "UPDATE follow_up_task SET status = %(s)s, business_status = %(b)s, updated_at = %(at)s, "
        "resource = jsonb_set(jsonb_set(resource, '{status}', to_jsonb(%(s)s::text)), "
        "'{businessStatus}', jsonb_build_object('coding', jsonb_build_array(jsonb_build_object("
        "'system', resource #>> '{businessStatus,coding,0,system}', 'code', %(b)s::text)), "
        "'text', %(b)s::text)) "
        "WHERE flag_id = %(f)s AND closed_at IS NULL",
        {"s": status, "b": business_status, "at": at, "f": flag_id},
    )


async def close_tasks(
    conn: Conn,
    flag_ids: Iterable[int],
    status: str,
    business_status: str,
    at: datetime,
    *,
    by: str = "runner",
) -> None:
    """Close the open tasks of flags; ``by`` is 'staff' when a person closed them (a resolve)
    and 'runner' when the flag closed by itself."""
    ids = list(flag_ids)
    if not ids:
        return
    for flag_id in ids:
        await set_task_status(conn, flag_id, status, business_status, at)
    await conn.execute(
        "UPDATE follow_up_task SET closed_at = %s, closed_by = %s "
        "WHERE flag_id = ANY(%s) AND closed_at IS NULL",
        (at, by, ids),
    )


@dataclass(frozen=True, slots=True)
class TaskSummary:
    id: int
    identifier: str
    flag_id: int | None
    resident_id: str
    role: str
    owner_id: str | None
    priority: str
    status: str
    business_status: str
    due_at: datetime
    description: str
    created_at: datetime
    closed_at: datetime | None


async def tasks(
    conn: Conn,
    *,
    resident_id: str | None = None,
    role: str | None = None,
    owner_id: str | None = None,
    open_only: bool = True,
) -> list[TaskSummary]:
    """Tasks by resident, role and/or owner; due first."""
    async with conn.cursor(row_factory=class_row(TaskSummary)) as cur:
        await cur.execute(
            "SELECT id, identifier, flag_id, resident_id, role, owner_id, priority, status, "
            "business_status, due_at, description, created_at, closed_at FROM follow_up_task "
            "WHERE (%(r)s::text IS NULL OR resident_id = %(r)s) "
            "AND (%(role)s::text IS NULL OR role = %(role)s) "
            "AND (%(o)s::text IS NULL OR owner_id = %(o)s) "
            "AND (NOT %(open)s OR closed_at IS NULL) ORDER BY due_at, id",
            {"r": resident_id, "role": role, "o": owner_id, "open": open_only},
        )
        return await cur.fetchall()


async def task_resource(conn: Conn, identifier: str) -> dict[str, Any] | None:
    cur = await conn.execute(
        "SELECT resource FROM follow_up_task WHERE identifier = %s", (identifier,)
    )
    row = await cur.fetchone()
    return None if row is None else dict(row[0])


# --------------------------------------------------------------------------- visiting group


@dataclass(frozen=True, slots=True)
class GroupRow:
    resident_id: str
    grp: str
    since: date
    visits: str
    reason: str
    next_visit_due: date | None
    reassess_by: date | None
    rule_set: str
    updated_at: datetime


async def visiting_groups(conn: Conn, ids: Sequence[str]) -> dict[str, GroupRow]:
    async with conn.cursor(row_factory=class_row(GroupRow)) as cur:
        await cur.execute(
            "SELECT resident_id, grp, since, visits, reason, next_visit_due, reassess_by, "
            "rule_set, updated_at FROM visiting_group WHERE resident_id = ANY(%s)",
            (list(ids),),
        )
        return {r.resident_id: r for r in await cur.fetchall()}


async def save_visiting_groups(conn: Conn, rows: Sequence[GroupRow]) -> None:
    if not rows:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO visiting_group AS g (resident_id, grp, since, visits, reason, "
            "next_visit_due, reassess_by, rule_set, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (resident_id) DO UPDATE SET "
            "grp = excluded.grp, since = excluded.since, visits = excluded.visits, "
            "reason = excluded.reason, next_visit_due = excluded.next_visit_due, "
            "reassess_by = excluded.reassess_by, rule_set = excluded.rule_set, "
            "updated_at = excluded.updated_at",
            [
                (
                    r.resident_id,
                    r.grp,
                    r.since,
                    r.visits,
                    r.reason,
                    r.next_visit_due,
                    r.reassess_by,
                    r.rule_set,
                    r.updated_at,
                )
                for r in rows
            ],
        )


async def last_visits(conn: Conn, ids: Sequence[str]) -> dict[str, date]:
    """The latest (not cancelled) home visit per resident (migration 0301)."""
    cur = await conn.execute(
        "SELECT resident_id, max(visited_on) FROM home_visit WHERE resident_id = ANY(%s) "
        "AND cancelled_at IS NULL GROUP BY resident_id",
        (list(ids),),
    )
    return {str(r[0]): r[1] for r in await cur.fetchall()}


# --------------------------------------------------------------------------- weekly digests


@dataclass(frozen=True, slots=True)
class RoutineFlagRow:
    """A routine flag addressed to a nurse, with her and the resident's name (the digest)."""

    nurse_id: str
    flag_id: int
    resident_id: str
    resident_name: str
    rule: str
    summary: str
    opened_at: datetime
    state: str
    closed_at: datetime | None


async def routine_flags(conn: Conn, start: datetime, end: datetime) -> list[RoutineFlagRow]:
    """Routine flags for the nurse that were open at some moment of ``[start, end)``, of
    active residents with a nurse. A flag closed as superseded never met its criterion
    (clinical-rules.md §0, clarification 2): it is left out."""
    async with conn.cursor(row_factory=class_row(RoutineFlagRow)) as cur:
        await cur.execute(
            """SELECT r.nurse_id, f.id AS flag_id, f.resident_id,
                      r.display_name AS resident_name, f.rule, f.summary, f.opened_at,
                      f.state, f.closed_at
               FROM risk_flag f JOIN resident r ON r.id = f.resident_id
               WHERE f.severity = 'routine' AND 'nurse' = ANY(f.recipients)
                 AND r.active AND r.nurse_id IS NOT NULL
                 AND f.opened_at < %(end)s
                 AND (f.closed_at IS NULL OR f.closed_at >= %(start)s)
                 AND f.state <> 'superseded'
               ORDER BY r.nurse_id, r.display_name, f.resident_id, f.opened_at""",
            {"start": start, "end": end},
        )
        return await cur.fetchall()


async def digest_week_done(conn: Conn, week: date) -> bool:
    cur = await conn.execute("SELECT 1 FROM digest_run WHERE week_start = %s", (week,))
    return await cur.fetchone() is not None


@dataclass(frozen=True, slots=True)
class DigestRow:
    recipient_id: str
    week_start: date
    period_start: datetime
    period_end: datetime
    made_at: datetime
    deliver_after: datetime
    items: list[dict[str, Any]]
    communication: dict[str, Any]  # without its id: set here from the row's id


async def save_digests(conn: Conn, week: date, digests: Sequence[DigestRow], now: datetime) -> int:
    """Store a week's digests and mark the week done, at most once (a second runner, or a
    restart, stores nothing more); the outbox trigger of migration 0403 makes their deliveries.
    Returns how many were stored."""
    cur = await conn.execute(
        "INSERT INTO digest_run (week_start, made_at, digests) VALUES (%s, %s, %s) "
        "ON CONFLICT DO NOTHING RETURNING week_start",
        (week, now, len(digests)),
    )
    if await cur.fetchone() is None:
        return 0
    stored = 0
    for d in digests:
        cur = await conn.execute(
            """INSERT INTO digest (recipient_id, week_start, period_start, period_end, made_at,
                                   deliver_after, items, communication)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (recipient_id, week_start) DO NOTHING RETURNING id""",
            (
                d.recipient_id,
                d.week_start,
                d.period_start,
                d.period_end,
                d.made_at,
                d.deliver_after,
                Jsonb(d.items),
                Jsonb(d.communication),
            ),
        )
        row = await cur.fetchone()
        if row is None:
            continue
        await conn.execute(
            "UPDATE digest SET communication = jsonb_set(communication, '{id}', to_jsonb(id::text))"
            " WHERE id = %s",
            (row[0],),
        )
        stored += 1
    return stored
