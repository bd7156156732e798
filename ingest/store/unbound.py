"""The unbound-readings queue staff resolve: assign to a resident, discard, restore.

A reading lands here when no resident is bound to it (a station reading outside a check-in
session, a personal device's unmapped user slot) or when its time cannot be right. Every
decision is reversible and recorded (``unbound_event``), never a silent edit
(fhir-mapping-and-anchors.md §5.1):

- :func:`assign_unbound` runs the reading through the consumer's own path (decode → bind as
  ``staff`` → transform → the same identity de-duplication), stores the Observations and a
  binding Provenance, and wakes the clinical runner;
- :func:`discard_unbound` sets it aside with a reason;
- :func:`restore_unbound` puts it back in the queue; if it had been assigned, its Observations
  become ``entered-in-error`` (status column and resource), so a wrong binding is corrected in
  the open. Assigning it again to the same resident revives those Observations.

Each function runs in a transaction of its own (a savepoint inside the caller's, if one is
open: then the caller commits). ``conn`` may be a pool connection or an autocommit one.

Errors (subclasses of :class:`ingest.store.errors.StoreError`)::

    StoreError
    └── UnboundError            base of the queue's errors
        ├── UnboundNotFound     no such queue item
        ├── UnboundConflict     the item is not in a state that allows this (or not a resident)
        └── AssignRejected      the reading cannot become Observations (reason from ingest)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from devices.errors import WireError
from devices.wire import reading_from_json
from ingest.errors import Reason
from ingest.fhir.encoding import dumps
from ingest.fhir.ids import identity_time
from ingest.pipeline import Bound, process_reading
from ingest.store.errors import StoreError
from ingest.store.observations import (
    conflict_letter,
    insert_provenance,
    notify_residents,
    provenance_rows,
    store_observations,
)

Conn = AsyncConnection[Any]


class UnboundError(StoreError):
    """Base of the unbound queue's errors."""


class UnboundNotFound(UnboundError):
    def __init__(self, unbound_id: int) -> None:
        self.unbound_id = unbound_id
        super().__init__(f"미배정 측정값 {unbound_id}이(가) 없습니다 (no such unbound reading)")


class UnboundConflict(UnboundError):
    def __init__(self, unbound_id: int, reason: str) -> None:
        self.unbound_id = unbound_id
        self.reason = reason
        super().__init__(f"unbound reading {unbound_id}: {reason}")


class AssignRejected(UnboundError):
    """The reading cannot be stored for the resident; ``reason`` is an ingest Reason."""

    def __init__(self, unbound_id: int, reason: Reason, detail: str) -> None:
        self.unbound_id = unbound_id
        self.reason = reason
        self.detail = detail
        super().__init__(f"unbound reading {unbound_id} cannot be assigned: {reason}: {detail}")


@dataclass(frozen=True, slots=True)
class UnboundItem:
    """One queue row as staff see it."""

    id: int
    gateway_id: str
    reading_id: str
    centre_id: str | None
    station_id: str | None
    device_id: str
    kind: str
    reason: str
    detail: str | None
    measured_at: datetime | None
    received_at: datetime
    summary: str
    suggested_resident: str | None
    state: str
    resident_id: str | None
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str | None


_ITEM_COLUMNS = (
    "id, gateway_id, reading_id, centre_id, station_id, device_id, kind, reason, detail, "
    "measured_at, received_at, summary, suggested_resident, state, resident_id, decided_by, "
    "decided_at, decision_note"
)


async def list_unbound(
    conn: Conn,
    *,
    state: str = "pending",
    centre_id: str | None = None,
    limit: int = 100,
) -> list[UnboundItem]:
    """Queue items, newest first."""
    cur = await conn.execute(
        f"SELECT {_ITEM_COLUMNS} FROM unbound_reading WHERE state = %s "
        "AND (%s::text IS NULL OR centre_id = %s) ORDER BY received_at DESC, id DESC LIMIT %s",
        (state, centre_id, centre_id, limit),
    )
    return [UnboundItem(*row) for row in await cur.fetchall()]


async def get_unbound(conn: Conn, unbound_id: int) -> UnboundItem:
    cur = await conn.execute(
        f"SELECT {_ITEM_COLUMNS} FROM unbound_reading WHERE id = %s", (unbound_id,)
    )
    row = await cur.fetchone()
    if row is None:
        raise UnboundNotFound(unbound_id)
    return UnboundItem(*row)


async def _lock(conn: Conn, unbound_id: int) -> tuple[str, dict[str, Any], str, list[str] | None]:
    cur = await conn.execute(
        "SELECT state, reading, gateway_id, observation_ids::text[] FROM unbound_reading "
        "WHERE id = %s FOR UPDATE",
        (unbound_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise UnboundNotFound(unbound_id)
    return row[0], row[1], row[2], row[3]


async def _event(
    conn: Conn, unbound_id: int, action: str, by_user: str, resident: str | None, note: str | None
) -> None:
    await conn.execute(
        "INSERT INTO unbound_event (unbound_id, action, by_user, resident_id, note) "
        "VALUES (%s, %s, %s, %s, %s)",
        (unbound_id, action, by_user, resident, note),
    )


@dataclass(frozen=True, slots=True)
class _Gateway:
    centre_id: str | None
    mode: str


@dataclass(frozen=True, slots=True)
class _Device:
    calibration: str | None
    centre_id: str | None


class _OneReadingRegistry:
    """The registry facts one assignment needs, read in the same transaction."""

    def __init__(self, gateway: _Gateway | None, device: _Device | None) -> None:
        self._gateway = gateway
        self._device = device

    def gateway(self, gateway_id: str) -> _Gateway | None:
        return self._gateway

    def device(self, device_id: str) -> _Device | None:
        return self._device

    def resident_known(self, resident_id: str) -> bool:
        return True

    def resolve(self, device_id: str, user_index: int | None, at: datetime) -> str | None:
        return None

    def multi_user(self, device_id: str) -> bool:
        return False

    def station_centre(self, station_id: str) -> str | None:
        return None  # the reading's centre was checked when it was queued


async def assign_unbound(
    conn: Conn,
    unbound_id: int,
    resident_id: str,
    by_user: str,
    *,
    note: str | None = None,
    use_received_time: bool = False,
) -> tuple[str, ...]:
    """Assign a pending reading to a resident; returns the Observation ids (new or revived).

    A reading held for an implausible time is refused unless ``use_received_time`` (staff
    confirm it was measured when received), which places it at its reception time.
    """
    async with conn.transaction():
        state, reading_json, gateway_id, _ = await _lock(conn, unbound_id)
        if state != "pending":
            raise UnboundConflict(unbound_id, f"is {state}, not pending (restore it first)")
        known = await (
            await conn.execute("SELECT 1 FROM resident WHERE id = %s", (resident_id,))
        ).fetchone()
        if known is None:
            raise UnboundConflict(unbound_id, f"no resident {resident_id!r}")
        try:
            reading = reading_from_json(reading_json)
        except WireError as exc:
            raise AssignRejected(unbound_id, Reason.INVALID_MESSAGE, str(exc)) from exc
        gw = await (
            await conn.execute("SELECT centre_id, mode FROM gateway WHERE id = %s", (gateway_id,))
        ).fetchone()
        dev = await (
            await conn.execute(
                "SELECT d.calibration, s.centre_id FROM device d "
                "LEFT JOIN station s ON s.id = d.station_id WHERE d.id = %s",
                (reading.device.id,),
            )
        ).fetchone()
        gateway = _Gateway(gw[0], gw[1]) if gw is not None else _Gateway(None, "station")
        registry = _OneReadingRegistry(gateway, _Device(*dev) if dev is not None else None)
        staff = Bound(resident_id, "staff", None, reading.station, by_user)
        outcome = process_reading(
            reading,
            gateway_id,
            gateway.centre_id,
            registry,
            mode=gateway.mode,
            staff=staff,
            use_received_time=use_received_time,
        )
        if outcome.dead is not None:
            raise AssignRejected(unbound_id, outcome.dead.reason, outcome.dead.detail)
        if outcome.unbound is not None:
            raise AssignRejected(unbound_id, outcome.unbound.reason, outcome.unbound.detail)
        done = await store_observations(conn, outcome.observations)
        if done.conflicts:
            letter = conflict_letter(outcome, done.conflicts, "")
            raise AssignRejected(unbound_id, letter.reason, letter.detail)
        if done.same:
            # revive a retracted assignment; the identity row gives each row's time, so only
            # that chunk is touched (a compressed chunk is not decompressed whole)
            await conn.execute(
                "UPDATE observation o SET status = 'final', "
                "remainder = CASE WHEN o.template_id IS NULL "
                "THEN jsonb_set(o.remainder::jsonb, '{status}', '\"final\"')::text "
                "ELSE o.remainder END "
                "FROM observation_identity i WHERE i.observation_id = ANY(%s::uuid[]) "
                "AND i.key_time = ANY(%s::timestamptz[]) "
                "AND o.id = i.observation_id AND o.effective_at = i.effective_at "
                "AND o.status = 'entered-in-error'",
                (
                    [o.id for o in done.same],
                    sorted({identity_time(o.identifier) for o in done.same}),
                ),
            )
        ids = tuple(o.id for o in outcome.observations)
        times = [o.effective_at for o in outcome.observations]
        patient_ids = [o.id for o in outcome.observations if o.resident_id]
        await insert_provenance(
            conn, provenance_rows([(gateway_id, reading.id, staff, patient_ids)])
        )
        await conn.execute(
            "UPDATE unbound_reading SET state = 'assigned', resident_id = %s, decided_by = %s, "
            "decided_at = now(), decision_note = %s, observation_ids = %s::uuid[], "
            "observation_times = %s::timestamptz[] WHERE id = %s",
            (resident_id, by_user, note, list(ids), times, unbound_id),
        )
        await _event(conn, unbound_id, "assign", by_user, resident_id, note)
        await notify_residents(conn, [resident_id])
    return ids


async def discard_unbound(conn: Conn, unbound_id: int, reason: str, by_user: str) -> None:
    """Set a pending reading aside (kept, with the reason; restore brings it back)."""
    async with conn.transaction():
        state, _, _, _ = await _lock(conn, unbound_id)
        if state != "pending":
            raise UnboundConflict(unbound_id, f"is {state}, not pending")
        await conn.execute(
            "UPDATE unbound_reading SET state = 'discarded', decided_by = %s, "
            "decided_at = now(), decision_note = %s WHERE id = %s",
            (by_user, reason, unbound_id),
        )
        await _event(conn, unbound_id, "discard", by_user, None, reason)


async def restore_unbound(
    conn: Conn, unbound_id: int, by_user: str, *, note: str | None = None
) -> tuple[str, ...]:
    """Put an assigned or discarded reading back in the queue.

    Returns the Observation ids marked ``entered-in-error`` (empty for a discarded reading).
    """
    async with conn.transaction():
        state, _, _, observation_ids = await _lock(conn, unbound_id)
        if state == "pending":
            raise UnboundConflict(unbound_id, "is already pending")
        retracted: tuple[str, ...] = ()
        residents: list[str] = []
        if state == "assigned" and observation_ids:
            # by (id, time): only the chunks holding them are touched (migration 0102 filled
            # observation_times of earlier assignments)
            cur = await conn.execute(
                "UPDATE observation o SET status = 'entered-in-error', "
                "remainder = CASE WHEN o.template_id IS NULL "
                "THEN jsonb_set(o.remainder::jsonb, '{status}', '\"entered-in-error\"')::text "
                "ELSE o.remainder END "
                "FROM unbound_reading u, unnest(u.observation_ids, u.observation_times) "
                "AS k(id, effective_at) WHERE u.id = %s "
                "AND o.id = k.id AND o.effective_at = k.effective_at "
                "AND o.status <> 'entered-in-error' "
                "RETURNING o.id::text, o.resident_id",
                (unbound_id,),
            )
            rows = await cur.fetchall()
            retracted = tuple(r[0] for r in rows)
            residents = sorted({r[1] for r in rows if r[1]})
        await conn.execute(
            "UPDATE unbound_reading SET state = 'pending', resident_id = NULL, "
            "decided_by = NULL, decided_at = NULL, decision_note = NULL, observation_ids = NULL, "
            "observation_times = NULL "
            "WHERE id = %s",
            (unbound_id,),
        )
        await _event(conn, unbound_id, "restore", by_user, None, note)
        if residents:
            await notify_residents(conn, residents)
    return retracted


async def history(conn: Conn, unbound_id: int) -> list[dict[str, Any]]:
    """The decisions taken on a queue item, oldest first."""
    cur = await conn.execute(
        "SELECT action, by_user, at, resident_id, note FROM unbound_event "
        "WHERE unbound_id = %s ORDER BY at, id",
        (unbound_id,),
    )
    return [
        {"action": r[0], "by_user": r[1], "at": r[2], "resident_id": r[3], "note": r[4]}
        for r in await cur.fetchall()
    ]


def describe(item: UnboundItem) -> str:
    """One line for logs and the CLI."""
    return dumps({"id": item.id, "reason": item.reason, "summary": item.summary})
