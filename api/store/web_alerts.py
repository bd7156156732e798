"""What the web channel pushes to one user (issue 11.3a): her waiting alerts and the number of
open critical flags in her scope.

An alert waits for a user when a notify event of the runner names her among its recipients
(``flag_event.recipients``, resolved from the resident's nurse, liaison officer and the alert
roster), it is due (``deliver_after`` passed: an alert held for the morning shows in the
morning), the resident is in her scope, and its flag still needs her: unacknowledged for
clinical staff; for the liaison officer, a welfare check while nobody has reached the resident
and her welfare task is open.

Clinical staff see the rule's summary; a liaison officer gets plain language only, never a value
(§0, §10.2.8), and the welfare request reaches her for her own residents whether or not they
consented to sharing health data (it carries none); their phone number follows the consent, like
every contact detail (api.store.contacts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from api import glossary
from api.store import access, rows
from api.store.access import Actor, Capability, Conn, Role

_ORDER = "array_position(ARRAY['critical','urgent','routine','info'], f.severity)"


@dataclass(frozen=True, slots=True)
class WaitingAlert:
    flag_id: int
    resident_id: str
    display_name: str
    severity: str
    summary: str
    state: str
    event_id: int
    notice: str
    at: datetime


def _where(actor: Actor) -> tuple[str, dict[str, object]] | None:
    """Which residents' alerts may reach this actor (None: no alerts for this role)."""
    if actor.role is Role.LIAISON:
        return "r.active AND r.liaison_id = %(me)s AND e.notice = 'escalated_liaison'", {}
    if not actor.can(Capability.READ_FLAGS):
        return None
    where, params = access.scope_predicate(actor)
    return where, params


async def waiting(conn: Conn, actor: Actor, limit: int = 20) -> list[WaitingAlert]:
    """The alerts waiting for ``actor`` now, most severe and newest first."""
    found = _where(actor)
    if found is None:
        return []
    where, params = found
    query = f"""
        SELECT f.id AS flag_id, f.resident_id, r.display_name, f.severity, f.summary,
               f.state, e.id AS event_id, e.notice, e.at
        FROM risk_flag f
        JOIN resident r ON r.id = f.resident_id
        JOIN LATERAL (
            SELECT e.id, e.notice, e.at FROM flag_event e
            WHERE e.flag_id = f.id AND e.kind = 'notify'
              AND e.recipients @> ARRAY[%(me)s]::text[]
              AND (e.deliver_after IS NULL OR e.deliver_after <= now())
            ORDER BY e.id DESC LIMIT 1) e ON true
        WHERE f.state IN ('open', 'acknowledged', 'snoozed')
          AND CASE WHEN e.notice = 'escalated_liaison'
                   THEN f.reached_at IS NULL AND NOT EXISTS (
                        SELECT 1 FROM follow_up_task t WHERE t.flag_id = f.id
                        AND t.role = 'liaison' AND t.closed_at IS NOT NULL)
                   ELSE f.state = 'open' END
          AND {where}
        ORDER BY {_ORDER}, e.id DESC
        LIMIT %(limit)s
    """
    return await rows.fetch_all(
        conn,
        WaitingAlert,
        query.encode(),
        {**params, "me": actor.user_id, "limit": limit},
    )


async def concerns(conn: Conn, actor: Actor, residents: frozenset[str] | None) -> bool:
    """Whether a flag change for ``residents`` (None: unknown) may show on this actor's pages:
    one of them is in her scope (for a liaison officer, one of her own residents, whose welfare
    tasks she sees with or without consent). Tells the live page whether to reload."""
    if residents is None:
        return True
    if not residents:
        return False
    if actor.role is Role.LIAISON:
        where = "r.active AND r.liaison_id = %(scope_actor)s"
        params: dict[str, object] = {"scope_actor": actor.user_id}
    else:
        where, params = access.scope_predicate(actor)
    found = await rows.scalar(
        conn,
        f"""SELECT EXISTS (SELECT 1 FROM resident r
                           WHERE r.id = ANY(%(changed)s::text[]) AND {where})""".encode(),
        {**params, "changed": sorted(residents)},
    )
    return bool(found)


async def open_critical(conn: Conn, actor: Actor) -> int | None:
    """Open critical flags in the actor's scope (None for roles that do not see flags)."""
    if not actor.can(Capability.READ_FLAGS):
        return None
    where, params = access.scope_predicate(actor)
    found = await rows.scalar(
        conn,
        f"""SELECT count(*) FROM risk_flag f JOIN resident r ON r.id = f.resident_id
            WHERE f.state IN ('open', 'acknowledged', 'snoozed') AND f.severity = 'critical'
              AND {where}""".encode(),
        params,
    )
    return int(found or 0)


def describe(alert: WaitingAlert, actor: Actor, phone: str | None) -> dict[str, object]:
    """The JSON a page shows for one alert (plain language for a liaison officer)."""
    liaison = actor.role is Role.LIAISON
    return {
        "flag": alert.flag_id,
        "event": alert.event_id,
        "resident": alert.resident_id,
        "name": alert.display_name,
        "phone": phone,
        "severity": "welfare" if liaison else alert.severity,
        "notice": glossary.ALERT_NOTICES.get(alert.notice, alert.notice),
        "text": glossary.WELFARE_CHECK if liaison else glossary.flag_text(alert.summary),
        "at": alert.at.isoformat(),
        "ack": actor.can(Capability.MANAGE_FLAGS) and alert.state == "open",
        "link": "/liaison" if liaison else f"/residents/{alert.resident_id}",
    }


# --- the weekly digest (routine tier, §0) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DigestView:
    """One of the user's weekly digests as shown: its week and the items still in her scope."""

    id: int
    week_start: date
    deliver_after: datetime
    items: tuple[dict[str, object], ...]

    @property
    def week_end(self) -> date:
        return self.week_start + timedelta(days=6)

    @property
    def new(self) -> int:
        return sum(1 for i in self.items if i.get("new"))

    @property
    def still_open(self) -> int:
        return sum(1 for i in self.items if i.get("closed_at") is None)


async def digests(conn: Conn, actor: Actor, limit: int = 8) -> list[DigestView]:
    """The user's weekly digests already delivered (``deliver_after`` passed), newest first,
    each with only the residents still in her scope; the read is audited per resident."""
    actor.require(Capability.READ_FLAGS)
    cur = await conn.execute(
        """SELECT id, week_start, deliver_after, items FROM digest
           WHERE recipient_id = %s AND deliver_after <= now()
           ORDER BY week_start DESC LIMIT %s""",
        (actor.user_id, limit),
    )
    found = await cur.fetchall()
    residents = sorted({str(i["resident_id"]) for r in found for i in r[3]})
    where, params = access.scope_predicate(actor)
    cur = await conn.execute(
        f"SELECT r.id FROM resident r WHERE r.id = ANY(%(ids)s) AND {where}".encode(),
        {**params, "ids": residents},
    )
    visible = {str(r[0]) for r in await cur.fetchall()}
    await access.record_audit(
        conn, actor, subtype="search-type", action="E", entity="page:digest",
        residents=sorted(visible),
    )  # fmt: skip
    return [
        DigestView(
            id=int(r[0]),
            week_start=r[1],
            deliver_after=r[2],
            items=tuple(i for i in r[3] if str(i["resident_id"]) in visible),
        )
        for r in found
    ]
