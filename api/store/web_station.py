"""Station check-in and what the station screen shows.

A check-in identifies a resident by centre card at a station; it opens the gateway's binding
session (the api publishes the command) and, for :data:`access.CHECKIN_WINDOW`, lets that
station's screen show the resident's new readings. Every check-in is recorded, delivered to
the gateway or not; a failed card lookup is audited (outcome 4) without the card number.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from api.store import access, rows, throttle
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
    replaced_other: bool = False  # it ended another resident's open check-in here


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


_CHECKIN_COLUMNS = """c.id::text AS id, c.station_id, s.name AS station_name, c.gateway_id,
    c.resident_id, r.display_name, c.at, c.expires_at, c.delivered, c.delivery_note,
    r.height_cm::float8 AS height_cm"""


@dataclass(frozen=True, slots=True)
class _StationGateway:
    gateway_id: str | None


class CardReaderLocked(InvalidRequest):
    """Too many unknown cards at this station: card entry waits for staff (throttle)."""


async def check_in(
    conn: Conn,
    actor: Actor,
    card_number: str,
    *,
    station_id: str | None = None,
    window: timedelta = access.CHECKIN_WINDOW,
    card_policy: throttle.Policy = throttle.STATION_POLICY,
) -> CheckIn:
    """Record a check-in by card at the actor's station (staff may name a station).

    Ends any earlier open check-in at that station. Raises NotFound for an unknown card; at a
    station account, unknown cards are counted per station and past the limit the card reader
    is locked (:class:`CardReaderLocked`) until it expires or staff clear it.
    """
    actor.require(Capability.CHECK_IN)
    station = actor.station_id if actor.role is Role.STATION else station_id
    if not station:
        raise InvalidRequest("측정대를 선택해 주세요 / choose a station")
    kiosk = actor.role is Role.STATION
    if kiosk and await throttle.blocked_for(conn, throttle.STATION_CARD, station) is not None:
        await access.record_audit(
            conn,
            actor,
            subtype="check-in",
            action="E",
            entity="Station/check-in:locked",
            outcome=access.Outcome.MINOR_FAILURE,
        )
        raise CardReaderLocked("카드 입력이 잠겼습니다 / card entry is locked at this station")
    digits = "".join(ch for ch in card_number if ch in "0123456789")
    found = await rows.scalar(
        conn, "SELECT id FROM resident WHERE card_number = %s AND active", (digits,)
    )
    if found is None or not digits:
        await access.record_audit(
            conn,
            actor,
            subtype="check-in",
            action="E",
            entity="Station/check-in",
            outcome=access.Outcome.MINOR_FAILURE,
        )
        if kiosk:
            await throttle.failed(conn, throttle.STATION_CARD, station, card_policy, label=station)
        raise NotFound("card")
    resident_id = str(found)
    if actor.role is not Role.STATION:
        await access.require_resident(conn, actor, resident_id, Capability.CHECK_IN)
    station_row = await rows.fetch_one(
        conn, _StationGateway, "SELECT gateway_id FROM station WHERE id = %s", (station,)
    )
    if station_row is None:
        raise NotFound(f"station {station}")
    await conn.execute(
        "UPDATE station_checkin SET ended_at = now() WHERE station_id = %s AND ended_at IS NULL",
        (station,),
    )
    created = await rows.fetch_one(
        conn,
        CheckIn,
        f"""WITH c AS (
               INSERT INTO station_checkin (station_id, gateway_id, resident_id, by_user_id,
                                            expires_at)
               VALUES (%s, %s, %s, %s, now() + %s) RETURNING *)
            SELECT {_CHECKIN_COLUMNS} FROM c JOIN station s ON s.id = c.station_id
            JOIN resident r ON r.id = c.resident_id""".encode(),
        (station, station_row.gateway_id, resident_id, actor.user_id, window),
    )
    assert created is not None
    await access.record_audit(
        conn,
        actor,
        subtype="check-in",
        action="C",
        entity="Station/check-in",
        residents=[resident_id],
    )
    return created


async def check_in_resident(
    conn: Conn, actor: Actor, resident_id: str, station_id: str
) -> tuple[CheckIn, str]:
    """Staff check a resident in at a station from the resident page; returns the check-in and
    the card number (the gateway command carries it). Not for station accounts: a kiosk
    checks in by card only."""
    if actor.role is Role.STATION:
        raise access.AccessDenied(actor, "check in by resident id (staff only)", resident_id)
    await access.require_resident(conn, actor, resident_id, Capability.CHECK_IN)
    card = await rows.scalar(conn, "SELECT card_number FROM resident WHERE id = %s", (resident_id,))
    if not card:
        raise InvalidRequest("이 주민에게 카드 번호가 없습니다 / the resident has no card")
    return await check_in(conn, actor, str(card), station_id=station_id), str(card)


@dataclass(frozen=True, slots=True)
class Station:
    id: str
    name: str
    centre_id: str
    gateway_id: str | None


async def list_stations(conn: Conn) -> tuple[Station, ...]:
    found = await rows.fetch_all(
        conn, Station, "SELECT id, name, centre_id, gateway_id FROM station ORDER BY id"
    )
    return tuple(found)


async def record_delivery(conn: Conn, checkin_id: str, delivered: bool, note: str) -> None:
    """Whether the gateway was told (and why not)."""
    await conn.execute(
        "UPDATE station_checkin SET delivered = %s, delivery_note = %s WHERE id::text = %s",
        (delivered, note or None, checkin_id),
    )


@dataclass(frozen=True, slots=True)
class Place:
    """Where a station screen stands: the resident reads it before checking in."""

    station_name: str
    centre_name: str


async def station_place(conn: Conn, actor: Actor) -> Place | None:
    """The station account's station and centre names (the kiosk names both on screen)."""
    actor.require(Capability.CHECK_IN)
    if actor.station_id is None:
        return None
    return await rows.fetch_one(
        conn,
        Place,
        """SELECT s.name AS station_name, c.name AS centre_name
           FROM station s JOIN centre c ON c.id = s.centre_id WHERE s.id = %s""",
        (actor.station_id,),
    )


async def active_checkin(conn: Conn, actor: Actor) -> CheckIn | None:
    """The open check-in at the station account's station, if any."""
    actor.require(Capability.CHECK_IN)
    if actor.station_id is None:
        return None
    return await rows.fetch_one(
        conn,
        CheckIn,
        f"""SELECT {_CHECKIN_COLUMNS},
                   EXISTS (SELECT 1 FROM station_checkin p
                           WHERE p.station_id = c.station_id AND p.ended_at = c.at
                             AND p.id <> c.id AND p.resident_id <> c.resident_id)
                     AS replaced_other
            FROM station_checkin c
            JOIN station s ON s.id = c.station_id JOIN resident r ON r.id = c.resident_id
            WHERE c.station_id = %s AND c.ended_at IS NULL AND c.expires_at > now()
            ORDER BY c.at DESC LIMIT 1""".encode(),
        (actor.station_id,),
    )


async def end_checkin(conn: Conn, actor: Actor) -> None:
    """Finish the station's open check-in (the resident pressed "done")."""
    actor.require(Capability.CHECK_IN)
    await conn.execute(
        "UPDATE station_checkin SET ended_at = now() WHERE station_id = %s AND ended_at IS NULL",
        (actor.station_id,),
    )


#: The columns of a :class:`Reading` (read with :func:`reading`) over ``observation o``.
READING_COLUMNS = """o.id::text AS id, o.effective_at, o.code, o.value, o.unit,
    coalesce(o.component_values, '{}'::jsonb)::text AS components, o.status,
    daon_observation_doc(o.template_id, o.remainder)->'code'->'coding'->0->>'display' AS display"""


def reading(*, components: str, **fields: Any) -> Reading:
    """A Reading from READING_COLUMNS (a ``kwargs_row`` builder)."""
    values = {k: float(v) for k, v in json.loads(components).items() if v is not None}
    return Reading(components=values, **fields)


async def station_readings(conn: Conn, actor: Actor, checkin: CheckIn) -> tuple[Reading, ...]:
    """Readings of the checked-in resident stored since the check-in, newest first: the
    current visit only, on the station's own open check-in (a kiosk never reads a history)."""
    actor.require(Capability.CHECK_IN)
    if actor.role is not Role.STATION or checkin.station_id != actor.station_id:
        raise access.AccessDenied(actor, "read another station's screen", checkin.resident_id)
    found = await rows.build_all(
        conn,
        reading,
        f"""SELECT {READING_COLUMNS} FROM observation o
            WHERE o.resident_id = %s AND o.stored_at >= %s AND o.effective_at >= %s
              AND o.status <> 'entered-in-error'
            ORDER BY o.effective_at DESC LIMIT 20""".encode(),
        (checkin.resident_id, checkin.at, checkin.at - timedelta(hours=1)),
    )
    await access.record_audit(
        conn,
        actor,
        subtype="read",
        action="R",
        entity="page:station",
        residents=[checkin.resident_id],
    )
    return tuple(found)


@dataclass(frozen=True, slots=True)
class ReadingFlag:
    reading_id: str
    rule: str
    severity: str
    nurse_told_after: datetime | None


def _reading_id(*, id: str) -> str:
    return id


async def raised_from(
    conn: Conn, actor: Actor, checkin: CheckIn, reading_ids: Sequence[str]
) -> tuple[frozenset[str], tuple[ReadingFlag, ...]]:
    """What the risk engine made of this visit's readings: the ids it has evaluated (its
    cursor passed them) and the flags and resident prompts citing them, each with when the
    nurse's first notification is due (issue 11.3c: the screen says what the flag says)."""
    if actor.role is not Role.STATION or checkin.station_id != actor.station_id:
        raise access.AccessDenied(actor, "read another station's screen", checkin.resident_id)
    if not reading_ids:
        return frozenset(), ()
    ids = list(reading_ids)
    evaluated = await rows.build_all(
        conn,
        _reading_id,
        """SELECT o.id::text AS id FROM observation o
           JOIN clinical_cursor c ON c.resident_id = o.resident_id AND c.watermark >= o.stored_at
           WHERE o.resident_id = %s AND o.id = ANY(%s::uuid[])""",
        (checkin.resident_id, ids),
    )
    flags = await rows.fetch_all(
        conn,
        ReadingFlag,
        """SELECT cited::text AS reading_id, f.rule, f.severity,
                  (SELECT e.deliver_after FROM flag_event e WHERE e.flag_id = f.id
                     AND e.kind = 'notify' ORDER BY e.id LIMIT 1) AS nurse_told_after
           FROM risk_flag f CROSS JOIN LATERAL unnest(f.evidence) AS cited
           WHERE f.resident_id = %s AND f.evidence && %s::uuid[] AND cited = ANY(%s::uuid[])
           ORDER BY array_position(ARRAY['critical','urgent','routine','info'], f.severity)""",
        (checkin.resident_id, ids, ids),
    )
    return frozenset(evaluated), tuple(flags)
