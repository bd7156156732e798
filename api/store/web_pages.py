"""Data for the staff pages: the resident page, reviews and notes, home visits, the rehab view.

Each page function checks the actor's capability and scope, reads in a few batched queries and
writes one audit event per resident shown (``entity`` = the page), in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from api.store import access, rows
from api.store.access import Actor, Capability, InvalidRequest, NotFound
from api.store.web_station import READING_COLUMNS, Reading, reading

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
    SELECT r.id, r.display_name, r.neighbourhood, r.birth_date, r.sex,
           r.height_cm::float8 AS height_cm, r.nurse_id, n.display_name AS nurse_name,
           r.liaison_id, l.display_name AS liaison_name, r.rehab, r.active
    FROM resident r
    LEFT JOIN app_user n ON n.id = r.nurse_id
    LEFT JOIN app_user l ON l.id = r.liaison_id
"""


async def resident_detail(conn: Conn, actor: Actor, resident_id: str) -> ResidentDetail:
    await access.require_resident(conn, actor, resident_id, Capability.READ_PATIENT)
    row = await rows.fetch_one(
        conn, ResidentDetail, (_DETAIL_SQL + " WHERE r.id = %s").encode(), (resident_id,)
    )
    if row is None:
        raise NotFound(f"resident {resident_id}")
    return row


async def resident_page(
    conn: Conn, actor: Actor, resident_id: str, *, days: int = 180, limit: int = 3000
) -> ResidentPage:
    """Everything the resident page shows for the last ``days`` days (audited once)."""
    await access.require_resident(conn, actor, resident_id, Capability.READ_HEALTH)
    detail = await resident_detail(conn, actor, resident_id)
    readings = await rows.build_all(
        conn,
        reading,
        f"""SELECT {READING_COLUMNS} FROM observation o
            WHERE o.resident_id = %s AND o.effective_at >= now() - %s
            ORDER BY o.effective_at DESC LIMIT %s""".encode(),
        (resident_id, timedelta(days=days), limit),
    )
    last = await rows.scalar(
        conn,
        """SELECT effective_at FROM observation WHERE resident_id = %s
             AND status <> 'entered-in-error' ORDER BY effective_at DESC LIMIT 1""",
        (resident_id,),
    )
    reviews = await _reviews(conn, resident_id, 10)
    visits = await _visits(conn, resident_id, 10)
    await access.record_audit(
        conn, actor, subtype="read", action="R", entity="page:resident", residents=[resident_id]
    )
    return ResidentPage(detail, tuple(readings), last, reviews, visits)


async def _reviews(conn: Conn, resident_id: str, limit: int) -> tuple[Review, ...]:
    found = await rows.fetch_all(
        conn,
        Review,
        """SELECT v.at, v.user_id, u.display_name AS user_name, v.note FROM resident_review v
           JOIN app_user u ON u.id = v.user_id
           WHERE v.resident_id = %s ORDER BY v.at DESC LIMIT %s""",
        (resident_id, limit),
    )
    return tuple(found)


async def _visits(conn: Conn, resident_id: str, limit: int) -> tuple[Visit, ...]:
    found = await rows.fetch_all(
        conn,
        Visit,
        """SELECT v.id, v.visited_on, v.kind, v.user_id, u.display_name AS user_name, v.note
           FROM home_visit v JOIN app_user u ON u.id = v.user_id
           WHERE v.resident_id = %s AND v.cancelled_at IS NULL
           ORDER BY v.visited_on DESC, v.id DESC LIMIT %s""",
        (resident_id, limit),
    )
    return tuple(found)


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
    visit_id = await rows.scalar(
        conn,
        """INSERT INTO home_visit (resident_id, user_id, visited_on, kind, note)
           VALUES (%s, %s, %s, %s, %s) RETURNING id""",
        (resident_id, actor.user_id, visited_on, kind, (note or "").strip() or None),
    )
    await access.record_audit(
        conn, actor, subtype="create", action="C", entity="Visit", residents=[resident_id]
    )
    return int(visit_id)


async def cancel_visit(conn: Conn, actor: Actor, visit_id: int) -> None:
    """Mark a visit entered in error (kept for the record)."""
    resident_id = await rows.scalar(
        conn, "SELECT resident_id FROM home_visit WHERE id = %s", (visit_id,)
    )
    if resident_id is None:
        raise NotFound(f"visit {visit_id}")
    await access.require_resident(conn, actor, resident_id, Capability.WRITE_READINGS)
    await conn.execute(
        "UPDATE home_visit SET cancelled_at = now() WHERE id = %s AND cancelled_at IS NULL",
        (visit_id,),
    )
    await access.record_audit(
        conn, actor, subtype="update", action="U", entity="Visit/cancel", residents=[resident_id]
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
    resident_id: str
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


def _resident_reading(*, resident_id: str, **fields: Any) -> tuple[str, Reading]:
    return resident_id, reading(**fields)


async def rehab_overview(conn: Conn, actor: Actor) -> tuple[RehabRow, ...]:
    """Rehab-room residents in scope with their latest body-composition and function values."""
    actor.require(Capability.READ_HEALTH)
    where, params = access.scope_predicate(actor)
    details = await rows.fetch_all(
        conn,
        ResidentDetail,
        (
            _DETAIL_SQL + f" WHERE r.rehab AND r.active AND {where} ORDER BY r.neighbourhood, r.id"
        ).encode(),
        params,
    )
    ids = [d.id for d in details]
    found = await rows.build_all(
        conn,
        _resident_reading,
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
    for rid, one in found:
        if one.code in latest[rid]:
            previous[rid][one.code] = one
        else:
            latest[rid][one.code] = one
    rehab_flags = await rows.fetch_all(
        conn,
        RehabFlag,
        """SELECT resident_id, rule, severity, state, summary, opened_at FROM risk_flag
           WHERE resident_id = ANY(%s) AND 'rehab' = ANY(recipients)
             AND state IN ('open', 'acknowledged', 'snoozed')
           ORDER BY array_position(ARRAY['critical','urgent','routine','info'], severity),
                    opened_at DESC""",
        (ids,),
    )
    flags: dict[str, list[RehabFlag]] = {}
    for flag in rehab_flags:
        flags.setdefault(flag.resident_id, []).append(flag)
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


@dataclass(frozen=True, slots=True)
class _LiaisonResident:
    id: str
    display_name: str
    neighbourhood: str
    consent_id: str | None


async def liaison_overview(conn: Conn, actor: Actor) -> tuple[LiaisonRow, ...]:
    """Assigned residents with an active consent, and what follow-up they need (never values)."""
    actor.require(Capability.READ_NEEDS)
    where, params = access.scope_predicate(actor)
    found = await rows.fetch_all(
        conn,
        _LiaisonResident,
        f"""SELECT r.id, r.display_name, r.neighbourhood,
                   (SELECT c.id::text FROM consent c WHERE c.resident_id = r.id
                      AND c.purpose = 'liaison-sharing' AND c.withdrawn_at IS NULL
                    ORDER BY c.recorded_at DESC LIMIT 1) AS consent_id
            FROM resident r WHERE {where} ORDER BY r.display_name, r.id""".encode(),
        params,
    )
    needs = await _liaison_needs(conn, [r.id for r in found])
    await access.record_audit(
        conn,
        actor,
        subtype="search-type",
        action="E",
        entity="page:liaison",
        residents=[r.id for r in found],
    )
    return tuple(
        LiaisonRow(r.id, r.display_name, r.neighbourhood, needs.get(r.id, ()), r.consent_id)
        for r in found
    )


def _resident_need(*, resident_id: str, **fields: Any) -> tuple[str, Need]:
    return resident_id, Need(**fields)


async def _liaison_needs(conn: Conn, resident_ids: list[str]) -> dict[str, tuple[Need, ...]]:
    """Open liaison tasks per resident, due first."""
    found = await rows.build_all(
        conn,
        _resident_need,
        """SELECT resident_id, id AS task_id, description AS topic, due_at AS due, status
           FROM follow_up_task
           WHERE resident_id = ANY(%s) AND role = 'liaison' AND closed_at IS NULL
           ORDER BY due_at, id""",
        (resident_ids,),
    )
    out: dict[str, list[Need]] = {}
    for resident_id, need in found:
        out.setdefault(resident_id, []).append(need)
    return {k: tuple(v) for k, v in out.items()}
