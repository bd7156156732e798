"""The unbound-readings queue for staff, on top of :mod:`ingest.store.unbound`.

Adds what the queue itself does not know: who may act (RESOLVE_UNBOUND), the actor's scope
(:func:`item_scope`: a reading belongs to its centre's neighbourhood, and a decided one also to
the resident it went to), and the audit trail. The decisions
(assign, discard, restore) are ingest's own functions, so an assignment goes through the same
decode → bind → transform → identity path as any reading, and every decision is reversible and
recorded in ``unbound_event``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from api.store import access, rows, web_search
from api.store.access import Actor, Capability, InvalidRequest, NotFound, Role
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


def item_scope(actor: Actor, item: str = "u") -> tuple[str, dict[str, Any]]:
    """SQL condition over ``unbound_reading`` alias ``item`` that the actor may see and act on.

    A reading is in scope when the centre it was measured at (the item's, else its gateway's)
    lies in the actor's scope, and, once assigned, when its resident does too. Admins see all.
    """
    if actor.role is Role.ADMIN:
        return "TRUE", {}
    if actor.role is not Role.NURSE:
        return "FALSE", {}
    resident, params = access.scope_predicate(actor, "sr")
    sql = (
        f"(EXISTS (SELECT 1 FROM centre sc LEFT JOIN gateway sg ON sg.id = {item}.gateway_id"
        f" WHERE sc.id = coalesce({item}.centre_id, sg.centre_id)"
        " AND sc.neighbourhood = ANY(%(scope_nbs)s))"
        f" AND ({item}.resident_id IS NULL OR EXISTS (SELECT 1 FROM resident sr"
        f" WHERE sr.id = {item}.resident_id AND {resident})))"
    )
    return sql, params


_ITEM_COLUMNS = (
    "u.id, u.gateway_id, u.reading_id, u.centre_id, u.station_id, u.device_id, u.kind, u.reason,"
    " u.detail, u.measured_at, u.received_at, u.summary, u.suggested_resident, u.state,"
    " u.resident_id, u.decided_by, u.decided_at, u.decision_note"
)


async def queue(
    conn: Conn, actor: Actor, *, state: str = "pending", limit: int = 100
) -> list[unbound.UnboundItem]:
    """Queue items in ``state`` within the actor's scope, newest first."""
    actor.require(Capability.RESOLVE_UNBOUND)
    if state not in STATES:
        raise InvalidRequest(f"state must be one of {', '.join(STATES)}")
    where, params = item_scope(actor)
    items = await rows.fetch_all(
        conn,
        unbound.UnboundItem,
        f"""SELECT {_ITEM_COLUMNS} FROM unbound_reading u
            WHERE u.state = %(state)s AND {where}
            ORDER BY u.received_at DESC, u.id DESC LIMIT %(limit)s""".encode(),
        {**params, "state": state, "limit": limit},
    )
    await access.record_audit(
        conn,
        actor,
        subtype="search-type",
        action="E",
        entity=f"page:unbound?{state}",
        residents=[i.resident_id for i in items if i.resident_id],
    )
    return items


async def require_item(conn: Conn, actor: Actor, unbound_id: int) -> None:
    """Raise NotFound unless the item exists and is in the actor's scope (one answer for both,
    so ids outside the scope cannot be probed)."""
    actor.require(Capability.RESOLVE_UNBOUND)
    where, params = item_scope(actor)
    visible = await rows.scalar(
        conn,
        f"SELECT {where} FROM unbound_reading u WHERE u.id = %(id)s".encode(),
        {**params, "id": unbound_id},
    )
    if visible is None:
        raise NotFound(f"unbound reading {unbound_id}")
    if not visible:
        raise access.AccessDenied(actor, str(Capability.RESOLVE_UNBOUND))


class AmbiguousResident(InvalidRequest):
    """Several residents in scope match the text typed; ``candidates`` lists them."""

    def __init__(self, text: str, candidates: tuple[web_search.FoundResident, ...]) -> None:
        self.text = text
        self.candidates = candidates
        super().__init__(
            f"'{text}': 여러 주민이 일치합니다. 한 명을 고르세요 "
            "/ several residents match; choose one"
        )


async def resolve_resident(conn: Conn, actor: Actor, text: str) -> str:
    """A resident id (``R0001234``), a centre card number, a phone number or a name, to one
    resident in scope. Raises :class:`AmbiguousResident` when several match."""
    value = text.strip()
    if not value:
        raise InvalidRequest("주민을 입력하세요 / enter a resident")
    digits = "".join(ch for ch in value if ch in "0123456789")
    found = await rows.scalar(
        conn,
        "SELECT id FROM resident WHERE id = %s OR (%s <> '' AND card_number = %s)",
        (value.upper(), digits, digits),
    )
    if found is None:
        result = await web_search.find_residents(conn, actor, value, limit=10)
        if result.total == 0:
            raise NotFound(
                f"'{value}' (이름, 주민 번호, 카드 또는 전화번호를 확인하세요 "
                "/ check the name, id, card or phone)"
            )
        exact = [r for r in result.residents if r.exact]
        if result.total > 1 and len(exact) != 1:
            raise AmbiguousResident(value, result.residents)
        found = exact[0].id if exact else result.residents[0].id
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
    await require_item(conn, actor, unbound_id)
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
    await require_item(conn, actor, unbound_id)
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
    await require_item(conn, actor, unbound_id)
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
    await require_item(conn, actor, unbound_id)
    return [QueueEvent(**e) for e in await unbound.history(conn, unbound_id)]
