"""Station check-in and what the station screen shows.

A check-in identifies a resident by centre card at a station; it opens the gateway's binding
session (the api publishes the command) and, for :data:`access.CHECKIN_WINDOW`, lets that
station's screen show the resident's new readings. Every check-in is recorded, delivered to
the gateway or not; a failed card lookup is audited (outcome 4) without the card number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from api.store import access
from api.store.access import Actor, Capability, InvalidRequest, NotFound, Role

Conn = AsyncConnection[Any]


@dataclass(frozen=True, slots=True)
class CheckIn:
    id: str
    station_id: str
    station_name: str
    gateway_id: str | None
    resident_id: str
    display_name: str
    at: datetime
    expires_at: datetime
    delivered: bool
    delivery_note: str | None
    height_cm: float | None


@dataclass(frozen=True, slots=True)
class Reading:
    """One stored observation reduced to what a screen shows."""

    id: str
    effective_at: datetime
    code: str
    value: float | None
    unit: str | None
    components: dict[str, float]
    status: str
    display: str | None  # Observation.code display as stored


_CHECKIN_COLUMNS = """c.id::text, c.station_id, s.name, c.gateway_id, c.resident_id,
    r.display_name, c.at, c.expires_at, c.delivered, c.delivery_note, r.height_cm::float8"""


def _checkin(row: Any) -> CheckIn:
    return CheckIn(*row)


async def check_in(
    conn: Conn,
    actor: Actor,
    card_number: str,
    *,
    station_id: str | None = None,
    window: timedelta = access.CHECKIN_WINDOW,
) -> CheckIn:
    """Record a check-in by card at the actor's station (staff may name a station).

    Ends any earlier open check-in at that station. Raises NotFound for an unknown card.
    """
    actor.require(Capability.CHECK_IN)
    station = actor.station_id if actor.role is Role.STATION else station_id
    if not station:
        raise InvalidRequest("측정대를 선택해 주세요 / choose a station")
    digits = "".join(ch for ch in card_number if ch in "0123456789")
    cur = await conn.execute("SELECT id FROM resident WHERE card_number = %s AND active", (digits,))
    row = await cur.fetchone()
    if row is None or not digits:
        await access.record_audit(
            conn,
            actor,
            subtype="check-in",
            action="E",
            entity="Station/check-in",
            outcome=access.Outcome.MINOR_FAILURE,
        )
        raise NotFound("card")
    resident_id = str(row[0])
    if actor.role is not Role.STATION:
        await access.require_resident(conn, actor, resident_id, Capability.CHECK_IN)
    cur = await conn.execute("SELECT gateway_id FROM station WHERE id = %s", (station,))
    station_row = await cur.fetchone()
    if station_row is None:
        raise NotFound(f"station {station}")
    await conn.execute(
        "UPDATE station_checkin SET ended_at = now() WHERE station_id = %s AND ended_at IS NULL",
        (station,),
    )
    cur = await conn.execute(
        f"""WITH c AS (
               INSERT INTO station_checkin (station_id, gateway_id, resident_id, by_user_id,
                                            expires_at)
               VALUES (%s, %s, %s, %s, now() + %s) RETURNING *)
            SELECT {_CHECKIN_COLUMNS} FROM c JOIN station s ON s.id = c.station_id
            JOIN resident r ON r.id = c.resident_id""".encode(),
        (station, station_row[0], resident_id, actor.user_id, window),
    )
    created = await cur.fetchone()
    assert created is not None
    await access.record_audit(
        conn,
        actor,
        subtype="check-in",
        action="C",
        entity="Station/check-in",
        residents=[resident_id],
    )
    return _checkin(created)


async def check_in_resident(
    conn: Conn, actor: Actor, resident_id: str, station_id: str
) -> tuple[CheckIn, str]:
    """Staff check a resident in at a station from the resident page; returns the check-in and
    the card number (the gateway command carries it)."""
    await access.require_resident(conn, actor, resident_id, Capability.CHECK_IN)
    cur = await conn.execute("SELECT card_number FROM resident WHERE id = %s", (resident_id,))
    row = await cur.fetchone()
    if row is None or not row[0]:
        raise InvalidRequest("이 주민에게 카드 번호가 없습니다 / the resident has no card")
    card = str(row[0])
    return await check_in(conn, actor, card, station_id=station_id), card


@dataclass(frozen=True, slots=True)
class Station:
    id: str
    name: str
    centre_id: str
    gateway_id: str | None


async def list_stations(conn: Conn) -> tuple[Station, ...]:
    cur = await conn.execute("SELECT id, name, centre_id, gateway_id FROM station ORDER BY id")
    return tuple(Station(*r) for r in await cur.fetchall())


async def record_delivery(conn: Conn, checkin_id: str, delivered: bool, note: str) -> None:
    """Whether the gateway was told (and why not)."""
    await conn.execute(
        "UPDATE station_checkin SET delivered = %s, delivery_note = %s WHERE id::text = %s",
        (delivered, note or None, checkin_id),
    )


async def active_checkin(conn: Conn, actor: Actor) -> CheckIn | None:
    """The open check-in at the station account's station, if any."""
    actor.require(Capability.CHECK_IN)
    if actor.station_id is None:
        return None
    cur = await conn.execute(
        f"""SELECT {_CHECKIN_COLUMNS} FROM station_checkin c
            JOIN station s ON s.id = c.station_id JOIN resident r ON r.id = c.resident_id
            WHERE c.station_id = %s AND c.ended_at IS NULL AND c.expires_at > now()
            ORDER BY c.at DESC LIMIT 1""".encode(),
        (actor.station_id,),
    )
    row = await cur.fetchone()
    return _checkin(row) if row else None


async def end_checkin(conn: Conn, actor: Actor) -> None:
    """Finish the station's open check-in (the resident pressed "done")."""
    actor.require(Capability.CHECK_IN)
    await conn.execute(
        "UPDATE station_checkin SET ended_at = now() WHERE station_id = %s AND ended_at IS NULL",
        (actor.station_id,),
    )


READING_COLUMNS = """o.id::text, o.effective_at, o.code, o.value, o.unit,
    coalesce(o.component_values, '{}'::jsonb)::text, o.status,
    o.resource->'code'->'coding'->0->>'display'"""


def reading_from_row(row: Any) -> Reading:
    return Reading(
        id=row[0],
        effective_at=row[1],
        code=row[2],
        value=row[3],
        unit=row[4],
        components={k: float(v) for k, v in json.loads(row[5]).items() if v is not None},
        status=row[6],
        display=row[7],
    )


async def station_readings(conn: Conn, actor: Actor, checkin: CheckIn) -> tuple[Reading, ...]:
    """Readings of the checked-in resident stored since the check-in, newest first."""
    await access.require_resident(conn, actor, checkin.resident_id, Capability.READ_HEALTH)
    cur = await conn.execute(
        f"""SELECT {READING_COLUMNS} FROM observation o
            WHERE o.resident_id = %s AND o.stored_at >= %s AND o.effective_at >= %s
              AND o.status <> 'entered-in-error'
            ORDER BY o.effective_at DESC LIMIT 20""".encode(),
        (checkin.resident_id, checkin.at, checkin.at - timedelta(hours=1)),
    )
    rows = await cur.fetchall()
    await access.record_audit(
        conn,
        actor,
        subtype="read",
        action="R",
        entity="page:station",
        residents=[checkin.resident_id],
    )
    return tuple(reading_from_row(r) for r in rows)
