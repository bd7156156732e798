"""The unbound-readings queue for staff, on top of :mod:`ingest.store.unbound`.

Adds what the queue itself does not know: who may act (RESOLVE_UNBOUND), that the resident a
reading is assigned to must be in the actor's scope, and the audit trail. The decisions
(assign, discard, restore) are ingest's own functions, so an assignment goes through the same
decode → bind → transform → identity path as any reading, and every decision is reversible and
recorded in ``unbound_event``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from api.store import access, rows
from api.store.access import Actor, Capability, InvalidRequest, NotFound
from ingest.store import unbound

Conn = AsyncConnection[Any]

STATES = ("pending", "assigned", "discarded")


@dataclass(frozen=True, slots=True)
class QueueEvent:
    action: str
    by_user: str
    at: Any
    resident_id: str | None
    note: str | None


async def queue(
    conn: Conn, actor: Actor, *, state: str = "pending", limit: int = 100
) -> list[unbound.UnboundItem]:
    """Queue items in ``state``, newest first."""
    actor.require(Capability.RESOLVE_UNBOUND)
    if state not in STATES:
        raise InvalidRequest(f"state must be one of {', '.join(STATES)}")
    items = await unbound.list_unbound(conn, state=state, limit=limit)
    await access.record_audit(
        conn,
        actor,
        subtype="search-type",
        action="E",
        entity=f"page:unbound?{state}",
        residents=[i.resident_id for i in items if i.resident_id],
    )
    return items


async def resolve_resident(conn: Conn, actor: Actor, text: str) -> str:
    """A resident id (``R0001234``) or a centre card number, to a resident in scope."""
    value = text.strip()
    digits = "".join(ch for ch in value if ch in "0123456789")
    found = await rows.scalar(
        conn,
        "SELECT id FROM resident WHERE id = %s OR (%s <> '' AND card_number = %s)",
        (value.upper(), digits, digits),
    )
    if found is None:
        raise NotFound("resident (주민 번호 또는 카드 번호를 확인하세요 / check the id or card)")
    resident_id = str(found)
    await access.require_resident(conn, actor, resident_id, Capability.RESOLVE_UNBOUND)
    return resident_id


async def assign(
    conn: Conn,
    actor: Actor,
    unbound_id: int,
    resident_id: str,
    *,
    note: str | None = None,
    use_received_time: bool = False,
) -> tuple[str, ...]:
    """Bind a pending reading to a resident (in scope); returns the Observation ids."""
    actor.require(Capability.RESOLVE_UNBOUND)
    await access.require_resident(conn, actor, resident_id, Capability.RESOLVE_UNBOUND)
    try:
        ids = await unbound.assign_unbound(
            conn,
            unbound_id,
            resident_id,
            actor.user_id,
            note=note or None,
            use_received_time=use_received_time,
        )
    except unbound.UnboundNotFound as exc:
        raise NotFound(f"unbound reading {unbound_id}") from exc
    except unbound.UnboundError as exc:
        raise InvalidRequest(str(exc)) from exc
    await access.record_audit(
        conn,
        actor,
        subtype="update",
        action="U",
        entity="Unbound/assign",
        residents=[resident_id],
    )
    return ids


async def discard(conn: Conn, actor: Actor, unbound_id: int, reason: str) -> None:
    actor.require(Capability.RESOLVE_UNBOUND)
    if not reason.strip():
        raise InvalidRequest("버리는 이유를 적어 주세요 / give a reason to discard")
    try:
        await unbound.discard_unbound(conn, unbound_id, reason.strip(), actor.user_id)
    except unbound.UnboundNotFound as exc:
        raise NotFound(f"unbound reading {unbound_id}") from exc
    except unbound.UnboundError as exc:
        raise InvalidRequest(str(exc)) from exc
    await access.record_audit(conn, actor, subtype="update", action="U", entity="Unbound/discard")


async def restore(conn: Conn, actor: Actor, unbound_id: int, note: str | None = None) -> None:
    """Undo an assignment (its Observations become entered-in-error) or a discard."""
    actor.require(Capability.RESOLVE_UNBOUND)
    try:
        item = await unbound.get_unbound(conn, unbound_id)
    except unbound.UnboundNotFound as exc:
        raise NotFound(f"unbound reading {unbound_id}") from exc
    if item.resident_id:
        await access.require_resident(conn, actor, item.resident_id, Capability.RESOLVE_UNBOUND)
    try:
        await unbound.restore_unbound(conn, unbound_id, actor.user_id, note=note or None)
    except unbound.UnboundError as exc:
        raise InvalidRequest(str(exc)) from exc
    await access.record_audit(
        conn,
        actor,
        subtype="update",
        action="U",
        entity="Unbound/restore",
        residents=[item.resident_id] if item.resident_id else [],
    )


async def events(conn: Conn, actor: Actor, unbound_id: int) -> list[QueueEvent]:
    actor.require(Capability.RESOLVE_UNBOUND)
    return [QueueEvent(**e) for e in await unbound.history(conn, unbound_id)]
