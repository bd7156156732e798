"""Attempt throttles: slow a login source down, lock a station's card reader after guessing.

Each attempt is counted BEFORE it is evaluated, in its own short transaction holding the
throttle row's lock, so parallel attempts are admitted one after another against the limit
(30 parallel wrong passwords against a limit of 5 get 5 evaluations). A success clears the
count (:func:`succeeded`). The decision itself is :func:`decide`, a pure function:

    login-source   the first ``free`` failures within ``window`` pass at once; every further
                   attempt waits ``first_delay`` doubled per failure, up to ``max_delay``
                   (progressive delay per client address, never a lockout of the account)
    station-card   after ``free`` unknown cards the card reader is locked for ``max_delay``
                   or until staff clear it (:func:`clear`), and staff see it (:func:`blocked`)

Keys are stored as SHA-256 digests; the label (a station id) only for stations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from api.store import access, rows
from api.store.access import Actor, Capability, Role

Conn = AsyncConnection[Any]

LOGIN = "login-source"
STATION_CARD = "station-card"


@dataclass(frozen=True, slots=True)
class Policy:
    free: int = 5
    first_delay: timedelta = timedelta(seconds=1)
    max_delay: timedelta = timedelta(minutes=15)
    window: timedelta = timedelta(minutes=15)

    def delay(self, failures: int) -> timedelta:
        """How long after the ``failures``-th failure the next attempt must wait."""
        if failures < self.free:
            return timedelta(0)
        doublings = min(failures - self.free, 30)
        wait: timedelta = min(self.first_delay * (2**doublings), self.max_delay)
        return wait


#: Defaults: a login source gets 5 free failures, then 1 s, 2 s, 4 s, ... up to 15 minutes;
#: a station's card reader locks after 10 unknown cards within 10 minutes, for 12 hours or
#: until staff clear it.
LOGIN_POLICY = Policy()
STATION_POLICY = Policy(
    free=10,
    first_delay=timedelta(hours=12),
    max_delay=timedelta(hours=12),
    window=timedelta(minutes=10),
)


@dataclass(frozen=True, slots=True)
class State:
    failures: int
    refused: int
    window_start: datetime
    blocked_until: datetime
    now: datetime


@dataclass(frozen=True, slots=True)
class Decision:
    admitted: bool
    wait: timedelta  # until the next attempt may be evaluated (0 when admitted now)
    failures: int  # counting this attempt when admitted
    window_start: datetime
    blocked_until: datetime


def decide(state: State, policy: Policy) -> Decision:
    """Admit or refuse one attempt (pure)."""
    if state.blocked_until > state.now:
        return Decision(
            False,
            state.blocked_until - state.now,
            state.failures,
            state.window_start,
            state.blocked_until,
        )
    expired = state.window_start <= state.now - policy.window
    failures = 1 if expired else state.failures + 1
    start = state.now if expired else state.window_start
    return Decision(True, timedelta(0), failures, start, state.now + policy.delay(failures))


async def _count(conn: Conn, kind: str, key: str, policy: Policy, label: str | None) -> Decision:
    """Count one attempt under the row's lock (held until the caller's transaction ends)."""
    digest = access.digest(key)
    await conn.execute(
        "INSERT INTO throttle (kind, key_digest, label) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
        (kind, digest, label),
    )
    state = await rows.fetch_one(
        conn,
        State,
        """SELECT failures, refused, window_start, blocked_until, clock_timestamp() AS now
           FROM throttle WHERE kind = %s AND key_digest = %s FOR UPDATE""",
        (kind, digest),
    )
    assert state is not None
    decision = decide(state, policy)
    await conn.execute(
        """UPDATE throttle SET failures = %s, window_start = %s, blocked_until = %s,
               refused = refused + %s
           WHERE kind = %s AND key_digest = %s""",
        (
            decision.failures,
            decision.window_start,
            decision.blocked_until,
            0 if decision.admitted else 1,
            kind,
            digest,
        ),
    )
    return decision


async def admit(
    conn: Conn, kind: str, key: str, policy: Policy, *, label: str | None = None
) -> timedelta | None:
    """Count an attempt before it is evaluated; None when admitted, else how long to wait.

    Runs in a transaction of its own on ``conn`` (which must not be inside another), so the
    row lock is held only for this step.
    """
    async with conn.transaction():
        decision = await _count(conn, kind, key, policy, label)
    return None if decision.admitted else max(decision.wait, timedelta(seconds=1))


async def blocked_for(conn: Conn, kind: str, key: str) -> timedelta | None:
    """How long ``key`` stays blocked (None when it is not), locking its row until the end of
    the caller's transaction so that concurrent attempts are decided one after another."""
    wait = await rows.scalar(
        conn,
        """SELECT blocked_until - clock_timestamp() FROM throttle
           WHERE kind = %s AND key_digest = %s FOR UPDATE""",
        (kind, access.digest(key)),
    )
    return wait if isinstance(wait, timedelta) and wait > timedelta(0) else None


async def failed(
    conn: Conn, kind: str, key: str, policy: Policy, *, label: str | None = None
) -> None:
    """Count a failed attempt (in the caller's transaction), blocking ``key`` past the limit."""
    await _count(conn, kind, key, policy, label)


async def succeeded(conn: Conn, kind: str, key: str) -> None:
    """The attempt succeeded: the source starts afresh."""
    await conn.execute(
        "DELETE FROM throttle WHERE kind = %s AND key_digest = %s", (kind, access.digest(key))
    )


@dataclass(frozen=True, slots=True)
class Blocked:
    station_id: str
    failures: int
    refused: int
    blocked_until: datetime


def _station_scope(actor: Actor) -> tuple[str, dict[str, Any]]:
    """Stations staff may see and clear: admins all, nurses those of their neighbourhoods."""
    if actor.role is Role.ADMIN:
        return "TRUE", {}
    return (
        "EXISTS (SELECT 1 FROM station s JOIN centre c ON c.id = s.centre_id"
        " WHERE s.id = t.label AND c.neighbourhood = ANY(%(nbs)s))",
        {"nbs": list(actor.neighbourhoods)},
    )


async def blocked_stations(conn: Conn, actor: Actor) -> list[Blocked]:
    """Card readers locked now, within the actor's scope."""
    actor.require(Capability.CHECK_IN)
    if actor.role is Role.STATION:
        raise access.AccessDenied(actor, "see station lockouts (staff only)")
    where, params = _station_scope(actor)
    return await rows.fetch_all(
        conn,
        Blocked,
        f"""SELECT t.label AS station_id, t.failures, t.refused, t.blocked_until
            FROM throttle t WHERE t.kind = 'station-card' AND t.blocked_until > now()
              AND {where} ORDER BY t.label""".encode(),
        params,
    )


async def clear_station(conn: Conn, actor: Actor, station_id: str) -> None:
    """Staff unlock a station's card reader (audited)."""
    actor.require(Capability.CHECK_IN)
    if actor.role is Role.STATION:
        raise access.AccessDenied(actor, "clear a station lockout (staff only)")
    where, params = _station_scope(actor)
    cur = await conn.execute(
        f"""DELETE FROM throttle t WHERE t.kind = 'station-card' AND t.key_digest = %(key)s
              AND {where}""".encode(),
        {**params, "key": access.digest(station_id)},
    )
    if cur.rowcount == 0:
        raise access.NotFound(f"station lockout {station_id}")
    await access.record_audit(
        conn, actor, subtype="update", action="U", entity=f"Station/unlock:{station_id}"
    )
