"""Residents' contact details for staff: phones, address, emergency contacts, lives alone.

Who sees them is the actor's scope (:func:`api.store.access.scope_predicate`), so a liaison
officer gets them only for her residents with an active consent, and loses them the moment the
consent is withdrawn. Contact details carry no clinical values, so this projection is safe for
every role that has :attr:`Capability.READ_CONTACTS`. Each read is audited.
"""

from __future__ import annotations

from collections.abc import Iterable

from api.store import access
from api.store.access import Actor, Capability, Conn
from ingest.store.registry import CONTACTS_SQL, ResidentContacts, contacts_from_row


async def contacts(
    conn: Conn, actor: Actor, resident_ids: Iterable[str], *, entity: str = "Patient.contact"
) -> dict[str, ResidentContacts]:
    """Contact details of those of ``resident_ids`` the actor may see (others left out).

    An actor without the capability gets an empty answer, not an error, so that pages can
    call this for any user and simply show nothing.
    """
    ids = sorted(set(resident_ids))
    if not ids or not actor.can(Capability.READ_CONTACTS):
        return {}
    where, params = access.scope_predicate(actor)
    cur = await conn.execute(
        (CONTACTS_SQL + f" WHERE r.id = ANY(%(ids)s) AND {where}").encode(),
        {**params, "ids": ids},
    )
    found = {c.resident_id: c for c in map(contacts_from_row, await cur.fetchall())}
    if found:
        await access.record_audit(
            conn, actor, subtype="read", action="R", entity=entity, residents=found
        )
    return found


async def resident_contacts(conn: Conn, actor: Actor, resident_id: str) -> ResidentContacts:
    """One resident's contact details; raises AccessDenied / NotFound like other reads."""
    await access.require_resident(conn, actor, resident_id, Capability.READ_CONTACTS)
    found = await contacts(conn, actor, [resident_id])
    if resident_id not in found:  # scope changed between the check and the read
        raise access.AccessDenied(actor, str(Capability.READ_CONTACTS), resident_id)
    return found[resident_id]
