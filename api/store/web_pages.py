"""Data for the staff pages: the resident page, reviews and notes, home visits, the rehab view.

Each page function checks the actor's capability and scope, reads in a few batched queries and
writes one audit event per resident shown (``entity`` = the page), in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from api.store import access
from api.store.access import Actor, Capability, InvalidRequest, NotFound
from api.store.web_station import READING_COLUMNS, Reading, reading_from_row

Conn = AsyncConnection[Any]


@dataclass(frozen=True, slots=True)
class ResidentDetail:
    id: str
    display_name: str
    neighbourhood: str
    birth_date: date | None
    sex: str | None
    height_cm: float | None
    nurse_id: str | None
    nurse_name: str | None
    liaison_id: str | None
    liaison_name: str | None
    rehab: bool
    active: bool

    def age_on(self, day: date) -> int | None:
        if self.birth_date is None:
            return None
        b = self.birth_date
        return day.year - b.year - ((day.month, day.day) < (b.month, b.day))


@dataclass(frozen=True, slots=True)
class Review:
    at: datetime
    user_id: str
    user_name: str
    note: str | None


@dataclass(frozen=True, slots=True)
class Visit:
    id: int
    visited_on: date
    kind: str
    user_id: str
    user_name: str
    note: str | None


@dataclass(frozen=True, slots=True)
class ResidentPage:
    resident: ResidentDetail
    readings: tuple[Reading, ...]  # newest first, within the period
    last_measured: datetime | None
    reviews: tuple[Review, ...]
    visits: tuple[Visit, ...]


_DETAIL_SQL = """
    SELECT r.id, r.display_name, r.neighbourhood, r.birth_date, r.sex, r.height_cm::float8,
           r.nurse_id, n.display_name, r.liaison_id, l.display_name, r.rehab, r.active
    FROM resident r
    LEFT JOIN app_user n ON n.id = r.nurse_id
    LEFT JOIN app_user l ON l.id = r.liaison_id
"""


async def resident_detail(conn: Conn, actor: Actor, resident_id: str) -> ResidentDetail:
    await access.require_resident(conn, actor, resident_id, Capability.READ_PATIENT)
    cur = await conn.execute((_DETAIL_SQL + " WHERE r.id = %s").encode(), (resident_id,))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"resident {resident_id}")
    return ResidentDetail(*row)


async def resident_page(
    conn: Conn, actor: Actor, resident_id: str, *, days: int = 180, limit: int = 3000
) -> ResidentPage:
    """Everything the resident page shows for the last ``days`` days (audited once)."""
    await access.require_resident(conn, actor, resident_id, Capability.READ_HEALTH)
    detail = await resident_detail(conn, actor, resident_id)
    cur = await conn.execute(
        f"""SELECT {READING_COLUMNS} FROM observation o
            WHERE o.resident_id = %s AND o.effective_at >= now() - %s
            ORDER BY o.effective_at DESC LIMIT %s""".encode(),
        (resident_id, timedelta(days=days), limit),
    )
    readings = tuple(reading_from_row(r) for r in await cur.fetchall())
    cur = await conn.execute(
        """SELECT effective_at FROM observation WHERE resident_id = %s
             AND status <> 'entered-in-error' ORDER BY effective_at DESC LIMIT 1""",
        (resident_id,),
    )
    last = await cur.fetchone()
    reviews = await _reviews(conn, resident_id, 10)
    visits = await _visits(conn, resident_id, 10)
    await access.record_audit(
        conn, actor, subtype="read", action="R", entity="page:resident", residents=[resident_id]
    )
    return ResidentPage(detail, readings, last[0] if last else None, reviews, visits)


async def _reviews(conn: Conn, resident_id: str, limit: int) -> tuple[Review, ...]:
    cur = await conn.execute(
        """SELECT v.at, v.user_id, u.display_name, v.note FROM resident_review v
           JOIN app_user u ON u.id = v.user_id
           WHERE v.resident_id = %s ORDER BY v.at DESC LIMIT %s""",
        (resident_id, limit),
    )
    return tuple(Review(*r) for r in await cur.fetchall())


async def _visits(conn: Conn, resident_id: str, limit: int) -> tuple[Visit, ...]:
    cur = await conn.execute(
        """SELECT v.id, v.visited_on, v.kind, v.user_id, u.display_name, v.note
           FROM home_visit v JOIN app_user u ON u.id = v.user_id
           WHERE v.resident_id = %s AND v.cancelled_at IS NULL
           ORDER BY v.visited_on DESC, v.id DESC LIMIT %s""",
        (resident_id, limit),
    )
    return tuple(Visit(*r) for r in await cur.fetchall())


async def record_review(conn: Conn, actor: Actor, resident_id: str, note: str | None) -> None:
    """ "Reviewed by me, now" (TIDE's last-reviewed), optionally with a note."""
    await access.require_resident(conn, actor, resident_id, Capability.MANAGE_FLAGS)
    text = (note or "").strip() or None
    if text is not None and len(text) > 2000:
        raise InvalidRequest("메모는 2000자 이내 / note too long (2000 characters at most)")
    await conn.execute(
        "INSERT INTO resident_review (resident_id, user_id, note) VALUES (%s, %s, %s)",
        (resident_id, actor.user_id, text),
    )
    await access.record_audit(
        conn, actor, subtype="create", action="C", entity="Review", residents=[resident_id]
    )


VISIT_KINDS = ("home", "phone", "centre")


async def record_visit(
    conn: Conn, actor: Actor, resident_id: str, visited_on: date, kind: str, note: str | None
) -> int:
    """A home visit (or phone / centre contact) by the nurse; counts for the visit plan."""
    await access.require_resident(conn, actor, resident_id, Capability.WRITE_READINGS)
    if kind not in VISIT_KINDS:
        raise InvalidRequest(f"visit kind must be one of {', '.join(VISIT_KINDS)}")
    if visited_on > date.today() + timedelta(days=1):
        raise InvalidRequest("방문일이 미래입니다 / the visit date is in the future")
    cur = await conn.execute(
        """INSERT INTO home_visit (resident_id, user_id, visited_on, kind, note)
           VALUES (%s, %s, %s, %s, %s) RETURNING id""",
        (resident_id, actor.user_id, visited_on, kind, (note or "").strip() or None),
    )
    row = await cur.fetchone()
    assert row is not None
    await access.record_audit(
        conn, actor, subtype="create", action="C", entity="Visit", residents=[resident_id]
    )
    return int(row[0])


async def cancel_visit(conn: Conn, actor: Actor, visit_id: int) -> None:
    """Mark a visit entered in error (kept for the record)."""
    cur = await conn.execute("SELECT resident_id FROM home_visit WHERE id = %s", (visit_id,))
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"visit {visit_id}")
    await access.require_resident(conn, actor, str(row[0]), Capability.WRITE_READINGS)
    await conn.execute(
        "UPDATE home_visit SET cancelled_at = now() WHERE id = %s AND cancelled_at IS NULL",
        (visit_id,),
    )
    await access.record_audit(
        conn, actor, subtype="update", action="U", entity="Visit/cancel", residents=[str(row[0])]
    )


# --- rehabilitation therapist's view ----------------------------------------------------------

#: Codes of the therapist's view: weight, BMI, body fat %, muscle mass, muscle %
#: (fhir-mapping-and-anchors.md §1.1) and the function tests entered by staff under local codes
#: (grip, 6 m gait speed, 5× chair stand; api.store.web_readings.FUNCTION_TESTS).
REHAB_CODES = (
    "29463-7",
    "39156-5",
    "41982-0",
    "73964-9",
    "73965-6",
    "daon-grip",
    "daon-gait-speed",
    "daon-chair-stand",
)


@dataclass(frozen=True, slots=True)
class RehabFlag:
    rule: str
    severity: str
    state: str
    summary: str
    opened_at: datetime


@dataclass(frozen=True, slots=True)
class RehabRow:
    resident: ResidentDetail
    latest: dict[str, Reading]  # code -> newest reading of that code
    previous: dict[str, Reading]  # code -> the one before it (for the trend arrow)
    flags: tuple[RehabFlag, ...]  # open flags for the therapist (sarcopenia, frailty, falls, ...)


async def rehab_overview(conn: Conn, actor: Actor) -> tuple[RehabRow, ...]:
    """Rehab-room residents in scope with their latest body-composition and function values."""
    actor.require(Capability.READ_HEALTH)
    where, params = access.scope_predicate(actor)
    cur = await conn.execute(
        (
            _DETAIL_SQL + f" WHERE r.rehab AND r.active AND {where} ORDER BY r.neighbourhood, r.id"
        ).encode(),
        params,
    )
    details = [ResidentDetail(*r) for r in await cur.fetchall()]
    ids = [d.id for d in details]
    cur = await conn.execute(
        f"""SELECT x.* FROM unnest(%(ids)s::text[]) AS rid
            CROSS JOIN unnest(%(codes)s::text[]) AS c(code)
            CROSS JOIN LATERAL (
                SELECT {READING_COLUMNS}, o.resident_id FROM observation o
                WHERE o.resident_id = rid AND o.code = c.code AND o.status <> 'entered-in-error'
                ORDER BY o.effective_at DESC LIMIT 2) x
            ORDER BY x.resident_id, x.code, x.effective_at DESC""".encode(),
        {"ids": ids, "codes": list(REHAB_CODES)},
    )
    latest: dict[str, dict[str, Reading]] = {i: {} for i in ids}
    previous: dict[str, dict[str, Reading]] = {i: {} for i in ids}
    for row in await cur.fetchall():
        reading = reading_from_row(row[:8])
        rid = row[8]
        if reading.code in latest[rid]:
            previous[rid][reading.code] = reading
        else:
            latest[rid][reading.code] = reading
    cur = await conn.execute(
        """SELECT resident_id, rule, severity, state, summary, opened_at FROM risk_flag
           WHERE resident_id = ANY(%s) AND 'rehab' = ANY(recipients)
             AND state IN ('open', 'acknowledged', 'snoozed')
           ORDER BY array_position(ARRAY['critical','urgent','routine','info'], severity),
                    opened_at DESC""",
        (ids,),
    )
    flags: dict[str, list[RehabFlag]] = {}
    for row in await cur.fetchall():
        flags.setdefault(str(row[0]), []).append(RehabFlag(*row[1:]))
    await access.record_audit(
        conn, actor, subtype="search-type", action="E", entity="page:rehab", residents=ids
    )
    return tuple(
        RehabRow(d, latest[d.id], previous[d.id], tuple(flags.get(d.id, ()))) for d in details
    )


# --- liaison officer's view -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Need:
    """A follow-up a liaison officer may know about: plain-language request and due date only
    (the task text the clinical runner writes for liaison officers carries no values)."""

    task_id: int
    topic: str
    due: datetime
    status: str  # FHIR Task.status: requested, accepted, in-progress, ...


@dataclass(frozen=True, slots=True)
class LiaisonRow:
    resident_id: str
    display_name: str
    neighbourhood: str
    needs: tuple[Need, ...]
    consent_id: str | None  # the active sharing consent (the officer may record its withdrawal)


async def liaison_overview(conn: Conn, actor: Actor) -> tuple[LiaisonRow, ...]:
    """Assigned residents with an active consent, and what follow-up they need (never values)."""
    actor.require(Capability.READ_NEEDS)
    where, params = access.scope_predicate(actor)
    cur = await conn.execute(
        f"""SELECT r.id, r.display_name, r.neighbourhood,
                   (SELECT c.id::text FROM consent c WHERE c.resident_id = r.id
                      AND c.purpose = 'liaison-sharing' AND c.withdrawn_at IS NULL
                    ORDER BY c.recorded_at DESC LIMIT 1)
            FROM resident r WHERE {where} ORDER BY r.display_name, r.id""".encode(),
        params,
    )
    rows = await cur.fetchall()
    needs = await _liaison_needs(conn, [str(r[0]) for r in rows])
    await access.record_audit(
        conn,
        actor,
        subtype="search-type",
        action="E",
        entity="page:liaison",
        residents=[str(r[0]) for r in rows],
    )
    return tuple(
        LiaisonRow(str(r[0]), str(r[1]), str(r[2]), needs.get(str(r[0]), ()), r[3]) for r in rows
    )


async def _liaison_needs(conn: Conn, resident_ids: list[str]) -> dict[str, tuple[Need, ...]]:
    """Open liaison tasks per resident, due first."""
    cur = await conn.execute(
        """SELECT resident_id, id, description, due_at, status FROM follow_up_task
           WHERE resident_id = ANY(%s) AND role = 'liaison' AND closed_at IS NULL
           ORDER BY due_at, id""",
        (resident_ids,),
    )
    out: dict[str, list[Need]] = {}
    for row in await cur.fetchall():
        out.setdefault(str(row[0]), []).append(Need(int(row[1]), row[2], row[3], row[4]))
    return {k: tuple(v) for k, v in out.items()}
