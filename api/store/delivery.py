"""Subscriptions and the delivery outbox (migration 0400): the SQL of both halves.

The FHIR routes create, read, search and delete subscriptions (administrators, or bearer tokens
with the ``system/Subscription.*`` scope). The delivering service (:mod:`api.delivery`) claims
due deliveries in batches, records every attempt and its outcome, keeps each receiver's health
(consecutive failures, backoff, status ``error``) and audits each notification as a disclosure.
Outbox rows are created by the database trigger of migration 0400, in the notify event's own
transaction.

Times in the service's statements are the service's clock (``now`` parameters), so tests can
move time forward without waiting.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from api.store import access
from api.store.access import Actor, Capability, Conn, NotFound
from api.subscription import (
    ERROR_AFTER,
    InvalidSubscription,
    StoredSubscription,
    SubscriptionRequest,
    retry_delay,
)

_SUB_COLUMNS = """s.id, s.status, s.criteria, s.endpoint, s.headers, s.payload, s.reason,
    s.end_at, s.error, s.version, s.updated_at, s.failures, s.retry_at, s.last_success_at,
    s.last_failure_at,
    (SELECT count(*) FROM delivery d WHERE d.subscription_id = s.id AND d.state = 'pending'),
    (SELECT count(*) FROM delivery d WHERE d.subscription_id = s.id AND d.state = 'expired')"""


def _stored(row: Sequence[Any]) -> StoredSubscription:
    return StoredSubscription(
        id=row[0],
        status=row[1],
        criteria=row[2],
        endpoint=row[3],
        headers=tuple(row[4]),
        payload=row[5],
        reason=row[6],
        end=row[7],
        error=row[8],
        version=int(row[9]),
        updated_at=row[10],
        failures=int(row[11]),
        retry_at=row[12],
        last_success_at=row[13],
        last_failure_at=row[14],
        pending=int(row[15]),
        expired=int(row[16]),
    )


class Gone(NotFound):
    """The subscription existed and was deleted (HTTP 410)."""


# --- the FHIR API side ------------------------------------------------------------------------


async def create_subscription(
    conn: Conn, actor: Actor, request: SubscriptionRequest
) -> StoredSubscription:
    actor.require(Capability.MANAGE_SUBSCRIPTIONS)
    if request.resident_id is not None:
        cur = await conn.execute("SELECT 1 FROM resident WHERE id = %s", (request.resident_id,))
        if await cur.fetchone() is None:
            raise InvalidSubscription("criteria", f"no Patient {request.resident_id}")
    if request.recipient_id is not None:
        cur = await conn.execute("SELECT 1 FROM app_user WHERE id = %s", (request.recipient_id,))
        if await cur.fetchone() is None:
            raise InvalidSubscription("criteria", f"no Practitioner {request.recipient_id}")
    sub_id = secrets.token_hex(8)
    await conn.execute(
        """INSERT INTO subscription (id, status, criteria, resident_id, recipient_id, endpoint,
                                     headers, payload, reason, end_at, created_by)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            sub_id,
            request.status,
            request.criteria,
            request.resident_id,
            request.recipient_id,
            request.endpoint,
            list(request.headers),
            request.payload,
            request.reason,
            request.end,
            actor.user_id,
        ),
    )
    await access.record_audit(
        conn,
        actor,
        subtype="create",
        action="C",
        entity=f"Subscription/{sub_id}",
        residents=[request.resident_id] if request.resident_id else [],
    )
    return await _read(conn, sub_id)


async def _read(conn: Conn, sub_id: str) -> StoredSubscription:
    cur = await conn.execute(
        f"SELECT {_SUB_COLUMNS}, s.deleted_at FROM subscription s WHERE s.id = %s".encode(),
        (sub_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"Subscription/{sub_id}")
    if row[17] is not None:
        raise Gone(f"Subscription/{sub_id}")
    return _stored(row)


async def read_subscription(conn: Conn, actor: Actor, sub_id: str) -> StoredSubscription:
    actor.require(Capability.MANAGE_SUBSCRIPTIONS)
    found = await _read(conn, sub_id)
    await access.record_audit(
        conn, actor, subtype="read", action="R", entity=f"Subscription/{sub_id}"
    )
    return found


async def search_subscriptions(
    conn: Conn, actor: Actor, *, status: Sequence[str] = (), limit: int = 100
) -> list[StoredSubscription]:
    actor.require(Capability.MANAGE_SUBSCRIPTIONS)
    cur = await conn.execute(
        f"""SELECT {_SUB_COLUMNS} FROM subscription s
            WHERE s.deleted_at IS NULL
              AND (cardinality(%(status)s::text[]) = 0 OR s.status = ANY(%(status)s))
            ORDER BY s.created_at, s.id LIMIT %(limit)s""".encode(),
        {"status": list(status), "limit": limit},
    )
    found = [_stored(r) for r in await cur.fetchall()]
    await access.record_audit(conn, actor, subtype="search-type", action="E", entity="Subscription")
    return found


async def delete_subscription(conn: Conn, actor: Actor, sub_id: str) -> None:
    """Stop the subscription for good (status off); its delivery history stays for the audit,
    and what was still pending for it is expired (never sent) in the same transaction."""
    actor.require(Capability.MANAGE_SUBSCRIPTIONS)
    await _read(conn, sub_id)
    await conn.execute(
        """UPDATE subscription SET status = 'off', deleted_at = now(), updated_at = now(),
                  version = version + 1 WHERE id = %s""",
        (sub_id,),
    )
    await conn.execute(
        """UPDATE delivery SET state = 'expired', expired_at = now(), expired_reason = %s
           WHERE subscription_id = %s AND state = 'pending'""",
        (EXPIRED_DELETED, sub_id),
    )
    await access.record_audit(
        conn, actor, subtype="delete", action="D", entity=f"Subscription/{sub_id}"
    )


# --- the administrator's view -----------------------------------------------------------------


async def receivers(conn: Conn, actor: Actor) -> list[StoredSubscription]:
    """Every live subscription with its health, failing receivers first."""
    actor.require(Capability.MANAGE_SUBSCRIPTIONS)
    cur = await conn.execute(
        f"""SELECT {_SUB_COLUMNS} FROM subscription s WHERE s.deleted_at IS NULL
            ORDER BY s.status = 'error' DESC, s.failures DESC, s.created_at""".encode()
    )
    return [_stored(r) for r in await cur.fetchall()]


# --- the delivering service -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Due:
    """A delivery to attempt now, with what its request needs."""

    delivery_id: int
    subscription_id: str
    idempotency_key: str
    endpoint: str
    headers: tuple[str, ...]
    payload: str | None
    resource_type: str  # 'Flag' (a notify event) or 'Communication' (a weekly digest)
    resource_id: int | None
    resource_json: str | None
    notice: str
    created_by: str
    residents: tuple[str, ...]  # whose data the notification discloses (audited)


@dataclass(frozen=True, slots=True)
class Attempt:
    """The outcome of one attempt (``outcome`` as in delivery_attempt.outcome)."""

    due: Due
    at: datetime
    outcome: str
    status_code: int | None
    duration_ms: int
    detail: str | None

    @property
    def delivered(self) -> bool:
        return self.outcome == "delivered"


EXPIRED_ENDED = "subscription ended"  # delivery.expired_reason (+ " at <end>")
EXPIRED_DELETED = "subscription deleted"


@dataclass(frozen=True, slots=True)
class Expired:
    """Deliveries expired because their subscription ended (:func:`activate`)."""

    subscription_id: str
    end: datetime
    deliveries: int


async def activate(conn: Conn, now: datetime) -> list[Expired]:
    """The service takes up new subscriptions; ended ones go off (R4: ``end`` is when the
    server turns the subscription off), and their deliveries still pending are expired with
    the reason, in the same transaction: never sent, never left pending."""
    await conn.execute(
        """UPDATE subscription SET status = 'active', updated_at = %s, version = version + 1
           WHERE status = 'requested' AND deleted_at IS NULL""",
        (now,),
    )
    async with conn.transaction():
        cur = await conn.execute(
            """UPDATE subscription SET status = 'off', updated_at = %(now)s,
                      version = version + 1
               WHERE status <> 'off' AND end_at IS NOT NULL AND end_at <= %(now)s
               RETURNING id, end_at""",
            {"now": now},
        )
        ended = {str(r[0]): r[1] for r in await cur.fetchall()}
        # also any an earlier version left pending (before migration 0402)
        cur = await conn.execute(
            """UPDATE delivery d SET state = 'expired', expired_at = %(now)s,
                      expired_reason = CASE WHEN s.deleted_at IS NOT NULL THEN %(deleted)s
                          ELSE %(ended)s || ' at ' || to_char(s.end_at AT TIME ZONE 'UTC',
                                                              'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                      END
               FROM subscription s
               WHERE s.id = d.subscription_id AND d.state = 'pending' AND s.status = 'off'
               RETURNING d.subscription_id""",
            {"now": now, "deleted": EXPIRED_DELETED, "ended": EXPIRED_ENDED},
        )
        counts: dict[str, int] = {}
        for (sub_id,) in await cur.fetchall():
            counts[str(sub_id)] = counts.get(str(sub_id), 0) + 1
    return [Expired(sub_id, end, counts.get(sub_id, 0)) for sub_id, end in sorted(ended.items())]


async def claim_due(
    conn: Conn, now: datetime, *, busy: Iterable[str], limit: int, per_receiver: int
) -> list[Due]:
    """Due deliveries of receivers not backed off and not busy in this process, oldest first,
    at most ``per_receiver`` each (so one backlog cannot fill the batch)."""
    cur = await conn.execute(
        """SELECT d.id, d.subscription_id, d.idempotency_key, d.endpoint, d.headers,
                  d.payload,
                  CASE WHEN d.digest_id IS NULL THEN 'Flag' ELSE 'Communication' END,
                  coalesce(d.flag_id, d.digest_id),
                  coalesce(f.fhir_flag::text, g.communication::text),
                  coalesce(e.notice, 'weekly_digest'), d.created_by,
                  CASE WHEN d.digest_id IS NULL THEN ARRAY[d.resident_id]
                       ELSE ARRAY(SELECT DISTINCT i ->> 'resident_id'
                                  FROM jsonb_array_elements(g.items) AS i) END
           FROM (SELECT d.*, s.endpoint, s.headers, s.payload, s.created_by,
                        row_number() OVER (PARTITION BY d.subscription_id ORDER BY d.id) AS rn
                 FROM delivery d JOIN subscription s ON s.id = d.subscription_id
                 WHERE d.state = 'pending' AND d.due_at <= %(now)s
                   AND s.status IN ('active', 'error') AND s.deleted_at IS NULL
                   AND (s.retry_at IS NULL OR s.retry_at <= %(now)s)
                   AND NOT (d.subscription_id = ANY(%(busy)s))) d
           LEFT JOIN flag_event e ON e.id = d.event_id
           LEFT JOIN risk_flag f ON f.id = d.flag_id
           LEFT JOIN digest g ON g.id = d.digest_id
           WHERE d.rn <= %(per)s
           ORDER BY d.id LIMIT %(limit)s""",
        {"now": now, "busy": list(busy), "per": per_receiver, "limit": limit},
    )
    return [
        Due(
            delivery_id=int(r[0]),
            subscription_id=r[1],
            idempotency_key=r[2],
            endpoint=r[3],
            headers=tuple(r[4]),
            payload=r[5],
            resource_type=r[6],
            resource_id=None if r[7] is None else int(r[7]),
            resource_json=r[8],
            notice=r[9],
            created_by=r[10],
            residents=tuple(x for x in r[11] if x),
        )
        for r in await cur.fetchall()
    ]


async def next_due(conn: Conn, now: datetime, *, busy: Iterable[str]) -> datetime | None:
    """When the next delivery becomes due (for the service's sleep), or None."""
    cur = await conn.execute(
        """SELECT min(greatest(d.due_at, coalesce(s.retry_at, d.due_at)))
           FROM delivery d JOIN subscription s ON s.id = d.subscription_id
           WHERE d.state = 'pending' AND s.status IN ('active', 'error')
             AND s.deleted_at IS NULL AND NOT (d.subscription_id = ANY(%(busy)s))""",
        {"busy": list(busy)},
    )
    row = await cur.fetchone()
    return None if row is None else row[0]


async def record(conn: Conn, subscription_id: str, attempts: Sequence[Attempt]) -> None:
    """Record one receiver's attempts of a round, its health, and the audit trail, at once.

    The receiver's outcome is its last attempt (a round stops at the first failure).
    """
    if not attempts:
        return
    last = attempts[-1]
    async with conn.transaction():
        async with conn.cursor() as cur:
            await cur.executemany(
                """INSERT INTO delivery_attempt (delivery_id, at, outcome, status_code,
                                                 duration_ms, detail)
                   VALUES (%s, %s, %s, %s, %s, %s)""",
                [
                    (a.due.delivery_id, a.at, a.outcome, a.status_code, a.duration_ms, a.detail)
                    for a in attempts
                ],
            )
            await cur.executemany(
                """UPDATE delivery SET attempts = attempts + 1, last_status = %s,
                          last_error = %s,
                          state = CASE WHEN %s THEN 'delivered' ELSE state END,
                          delivered_at = CASE WHEN %s THEN %s ELSE delivered_at END,
                          expired_at = CASE WHEN %s THEN NULL ELSE expired_at END,
                          expired_reason = CASE WHEN %s THEN NULL ELSE expired_reason END
                   WHERE id = %s""",
                [
                    (
                        a.status_code,
                        None if a.delivered else a.detail,
                        a.delivered,
                        a.delivered,
                        a.at,
                        a.delivered,  # sent while its subscription ended: it was delivered
                        a.delivered,
                        a.due.delivery_id,
                    )
                    for a in attempts
                ],
            )
        if last.delivered:
            await conn.execute(
                """UPDATE subscription SET failures = 0, retry_at = NULL,
                          last_success_at = %(at)s, error = NULL,
                          status = CASE WHEN status = 'error' THEN 'active' ELSE status END,
                          version = version + CASE WHEN status = 'error' THEN 1 ELSE 0 END,
                          updated_at = CASE WHEN status = 'error' THEN %(at)s ELSE updated_at END
                   WHERE id = %(id)s""",
                {"at": last.at, "id": subscription_id},
            )
        else:
            cur2 = await conn.execute(
                "SELECT failures FROM subscription WHERE id = %s FOR UPDATE", (subscription_id,)
            )
            row = await cur2.fetchone()
            failures = (int(row[0]) if row else 0) + 1
            error = (
                f"{failures} consecutive failed notifications; last: {last.detail}"
                if failures >= ERROR_AFTER
                else None
            )
            await conn.execute(
                """UPDATE subscription SET failures = %(failures)s, retry_at = %(retry)s,
                          last_failure_at = %(at)s,
                          error = coalesce(%(error)s, error),
                          version = version + CASE WHEN %(error)s::text IS NOT NULL
                                                    AND status <> 'error' THEN 1 ELSE 0 END,
                          updated_at = CASE WHEN %(error)s::text IS NOT NULL
                                             AND status <> 'error' THEN %(at)s
                                            ELSE updated_at END,
                          status = CASE WHEN %(error)s::text IS NOT NULL AND status <> 'off'
                                        THEN 'error' ELSE status END
                   WHERE id = %(id)s""",
                {
                    "failures": failures,
                    "retry": last.at + retry_delay(failures),
                    "at": last.at,
                    "error": error,
                    "id": subscription_id,
                },
            )
        # The disclosure of each resident's flag (or of each resident in a digest) to the
        # receiver, audited like a read.
        audited = [(a, rid) for a in attempts for rid in a.due.residents or (None,)]
        await conn.execute(
            """INSERT INTO audit_event (recorded, type_code, subtype, action, outcome,
                                        agent_user_id, agent_role, purpose_of_use, resident_id,
                                        entity)
               SELECT at, '110106', 'notify', 'E', outcome, agent, 'subscription', 'TREAT',
                      rid, entity
               FROM unnest(%s::timestamptz[], %s::text[], %s::text[], %s::text[], %s::text[])
                    AS t(at, outcome, agent, rid, entity)""",
            (
                [a.at for a, _ in audited],
                ["0" if a.delivered else "4" for a, _ in audited],
                [a.due.created_by for a, _ in audited],
                [rid for _, rid in audited],
                [f"Subscription/{a.due.subscription_id}" for a, _ in audited],
            ),
        )
