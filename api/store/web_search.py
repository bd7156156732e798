"""Finding a resident: by name (Korean, partial), resident id, centre card or phone number.

The search runs inside the actor's scope (:func:`api.store.access.scope_predicate`), so a nurse
finds only residents of her neighbourhoods and caseload, and a liaison officer only her
consented residents. Card and phone numbers are matched but never shown in full (the card is
a credential); the search is audited once per request with the residents it showed.

The unbound queue asks for suggestions here too: who was checked in at that station around the
time the reading arrived.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from api.store import access, rows
from api.store.access import Actor, Capability, Conn, Role

#: At most this many residents are listed for one search (the count says how many matched).
SEARCH_LIMIT = 30


@dataclass(frozen=True, slots=True)
class FoundResident:
    id: str
    display_name: str
    neighbourhood: str
    birth_date: date | None
    active: bool
    matched: str  # what matched: "id", "card", "phone" or "name"
    exact: bool  # the whole id / card / phone / name matched


@dataclass(frozen=True, slots=True)
class SearchResult:
    text: str
    residents: tuple[FoundResident, ...]
    total: int  # how many matched (more than listed when above SEARCH_LIMIT)


def may_search(actor: Actor) -> bool:
    """Staff with a view of residents may search (not stations or gateways)."""
    return actor.can(Capability.READ_PATIENT) or actor.can(Capability.READ_NEEDS)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_MATCH_SQL = """
    WITH m AS (
      SELECT r.id, r.display_name, r.neighbourhood, r.birth_date, r.active,
        CASE
          WHEN r.id = %(upper)s OR (%(id_prefix)s <> '' AND r.id ILIKE %(id_prefix)s) THEN 'id'
          WHEN %(digits)s <> '' AND r.card_number = %(digits)s THEN 'card'
          WHEN length(%(digits)s) >= 4 AND (
                 replace(r.mobile_phone, '-', '') LIKE %(digits_like)s
              OR replace(r.home_phone, '-', '') LIKE %(digits_like)s)
            THEN 'phone'
          WHEN %(name)s <> '' AND replace(r.display_name, ' ', '') ILIKE %(name_like)s THEN 'name'
        END AS matched,
        coalesce(r.id = %(upper)s OR r.card_number = %(digits)s
         OR replace(r.display_name, ' ', '') = %(name)s
         OR replace(r.mobile_phone, '-', '') = %(digits)s
         OR replace(r.home_phone, '-', '') = %(digits)s, false) AS exact
      FROM resident r WHERE {where}
    )
    SELECT *, count(*) OVER () AS total FROM m WHERE matched IS NOT NULL
    ORDER BY exact DESC, active DESC, display_name, id
    LIMIT %(limit)s
"""


@dataclass(frozen=True, slots=True)
class _Match:
    id: str
    display_name: str
    neighbourhood: str
    birth_date: date | None
    active: bool
    matched: str
    exact: bool
    total: int


def _params(text: str) -> dict[str, Any]:
    value = text.strip()
    digits = "".join(ch for ch in value if ch.isdigit())
    name = "".join(value.split())
    # only a query that looks like an id (a letter and digits) is matched as an id prefix
    id_prefix = _like_escape(value.upper()) + "%" if len(value) >= 3 and value.isascii() else ""
    return {
        "upper": value.upper(),
        "id_prefix": id_prefix if value[:1].isalpha() else "",
        "digits": digits if digits == value.replace("-", "").replace(" ", "") else "",
        "digits_like": "%" + digits + "%",
        "name": name if not digits else "",
        "name_like": "%" + _like_escape(name) + "%",
    }


async def find_residents(
    conn: Conn, actor: Actor, text: str, *, limit: int = SEARCH_LIMIT
) -> SearchResult:
    """Residents in the actor's scope matching ``text``; exact matches first."""
    if not may_search(actor):
        raise access.AccessDenied(actor, "search residents")
    value = text.strip()
    if len(value) < 1:
        return SearchResult(value, (), 0)
    if len(value) > 60:
        raise access.InvalidRequest("검색어가 너무 깁니다 / search text too long")
    where, params = access.scope_predicate(actor)
    params = {**params, **_params(value), "limit": max(1, min(limit, 200))}
    found = await rows.fetch_all(conn, _Match, _MATCH_SQL.format(where=where).encode(), params)
    residents = tuple(
        FoundResident(
            f.id, f.display_name, f.neighbourhood, f.birth_date, f.active, f.matched, f.exact
        )
        for f in found
    )
    await access.record_audit(
        conn,
        actor,
        subtype="search-type",
        action="E",
        entity="page:search",
        residents=[r.id for r in residents],
    )
    return SearchResult(value, residents, found[0].total if found else 0)


def resident_link(actor: Actor, resident_id: str) -> str:
    """Where a found resident leads for this role (a liaison officer has no resident page)."""
    if actor.role is Role.LIAISON:
        return f"/liaison#r-{resident_id}"
    return f"/residents/{resident_id}"


# --- suggestions for an unbound reading -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Suggestion:
    unbound_id: int
    resident_id: str
    display_name: str
    neighbourhood: str
    checked_in_at: datetime
    minutes_apart: int  # check-in time minus the reading's time, whole minutes


#: A check-in this long before or after a reading's time makes its resident a suggestion.
SUGGEST_BEFORE = timedelta(minutes=30)
SUGGEST_AFTER = timedelta(minutes=10)


async def unbound_suggestions(
    conn: Conn, actor: Actor, unbound_ids: list[int]
) -> dict[int, tuple[Suggestion, ...]]:
    """For each pending reading, the residents in scope checked in at its station near its time
    (measured time, else received time), nearest first."""
    actor.require(Capability.RESOLVE_UNBOUND)
    if not unbound_ids:
        return {}
    where, params = access.scope_predicate(actor)
    found = await rows.fetch_all(
        conn,
        Suggestion,
        f"""SELECT u.id AS unbound_id, r.id AS resident_id, r.display_name, r.neighbourhood,
                   c.at AS checked_in_at,
                   round(extract(epoch FROM c.at - coalesce(u.measured_at, u.received_at)) / 60)
                       ::int AS minutes_apart
            FROM unbound_reading u
            JOIN station_checkin c ON c.station_id = u.station_id
             AND c.at BETWEEN coalesce(u.measured_at, u.received_at) - %(before)s
                          AND coalesce(u.measured_at, u.received_at) + %(after)s
            JOIN resident r ON r.id = c.resident_id
            WHERE u.id = ANY(%(ids)s) AND {where}
            ORDER BY u.id, abs(extract(epoch FROM
                     c.at - coalesce(u.measured_at, u.received_at))), r.id""".encode(),
        {**params, "ids": unbound_ids, "before": SUGGEST_BEFORE, "after": SUGGEST_AFTER},
    )
    out: dict[int, list[Suggestion]] = {}
    for s in found:
        listed = out.setdefault(s.unbound_id, [])
        if all(x.resident_id != s.resident_id for x in listed) and len(listed) < 5:
            listed.append(s)
    return {k: tuple(v) for k, v in out.items()}
