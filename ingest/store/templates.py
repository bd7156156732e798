"""Observation templates in the database, and rendering stored Observations (issue 17).

A stored Observation is its typed columns, ``template_id`` and ``remainder``
(:mod:`ingest.fhir.stored`). Templates are rows of ``observation_template`` under an id derived
from their text, so the writer stores a template once (:func:`ensure_templates`, nothing per
batch once a connection has seen it) and every reader compiles it once per process
(:func:`load_templates`). :func:`render_rows` turns rows read with :data:`RENDER_COLUMNS` into
the JSON text the FHIR API serves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from weakref import WeakKeyDictionary

from psycopg import AsyncConnection

from ingest.fhir.observations import KPA_NOTE, MANUAL_NOTE, StoredObservation
from ingest.fhir.stored import (
    Columns,
    ObservationTemplate,
    from_body,
    known,
    remember,
    render_served,
    stored_form,
)
from ingest.store.errors import StoreError

Conn = AsyncConnection[Any]

#: Notes a template may carry as constant text (any other note is someone's own text).
CONSTANT_NOTES: Final = (MANUAL_NOTE, KPA_NOTE)

#: What :func:`render_rows` needs of an ``observation o`` row, in :class:`ObservationRow` order.
RENDER_COLUMNS: Final = (
    "o.id::text AS id, o.effective_at, o.resident_id, o.identifier, o.status, o.received_at, "
    "o.device_id, o.gateway_id, o.template_id, o.remainder"
)

# template ids each connection has seen committed in its database
_ENSURED: WeakKeyDictionary[Conn, set[int]] = WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class ObservationRow:
    """A stored Observation as :data:`RENDER_COLUMNS` reads it."""

    id: str
    effective_at: datetime
    resident_id: str | None
    identifier: str
    status: str
    received_at: datetime | None
    device_id: str | None
    gateway_id: str | None
    template_id: int | None
    remainder: str | None

    def columns(self) -> Columns:
        return Columns(
            self.id,
            self.identifier,
            self.status,
            self.effective_at,
            self.received_at,
            self.resident_id,
            self.device_id,
            self.gateway_id,
        )


def stored_columns(o: StoredObservation) -> tuple[ObservationTemplate | None, str | None]:
    """(template, remainder) of a row to write: its compiled template, or for a resource built
    without one (hand entries, a client's create) the template :func:`stored_form` finds, or
    the whole served text."""
    if o.template is not None:
        return o.template, o.remainder
    if o.body is None:
        raise StoreError(f"Observation {o.id} has neither a template nor a body")
    return stored_form(o.body, o.columns(), CONSTANT_NOTES)


def _digest(body: str) -> str:
    return hashlib.md5(body.encode(), usedforsecurity=False).hexdigest()


#: Stores templates once; the parameters come from :func:`template_params`.
INSERT_TEMPLATES = (
    "INSERT INTO observation_template (id, body, skeleton, rest) "
    "SELECT * FROM unnest(%s::integer[], %s::text[], %s::jsonb[], %s::text[]) "
    "ON CONFLICT (id) DO NOTHING"
)


def template_params(
    templates: Mapping[int, ObservationTemplate],
) -> tuple[list[int], list[str], list[str], list[str]]:
    """The arrays :data:`INSERT_TEMPLATES` takes, in id order (the skeleton is the body read
    as jsonb)."""
    ids = sorted(templates)
    bodies = [templates[i].body for i in ids]
    return ids, bodies, bodies, [",".join(templates[i].rest) for i in ids]


async def ensure_templates(conn: Conn, templates: Iterable[ObservationTemplate]) -> None:
    """Make sure every template is stored (inside the caller's transaction).

    Ids found already committed are remembered per connection, so a running writer sends
    nothing here once it has met its shapes; ids this transaction inserts are checked again
    next time (the transaction may roll back). A different template under an existing id is
    refused rather than served wrongly.
    """
    seen = _ENSURED.setdefault(conn, set())
    wanted = {t.id: t for t in templates if t.id not in seen}
    if not wanted:
        return
    ids = sorted(wanted)
    cur = await conn.execute(INSERT_TEMPLATES + " RETURNING id", template_params(wanted))
    inserted = {int(r[0]) for r in await cur.fetchall()}
    existing = [i for i in ids if i not in inserted]
    if existing:
        cur = await conn.execute(
            "SELECT id, md5(body) FROM observation_template WHERE id = ANY(%s)", (existing,)
        )
        for template_id, digest in await cur.fetchall():
            if digest != _digest(wanted[int(template_id)].body):
                raise StoreError(f"observation template id {template_id} holds another template")
        seen.update(existing)


async def load_templates(conn: Conn, ids: Iterable[int | None]) -> dict[int, ObservationTemplate]:
    """The compiled templates of ``ids`` (from the process cache, else the table)."""
    found: dict[int, ObservationTemplate] = {}
    missing: list[int] = []
    for template_id in {i for i in ids if i is not None}:
        template = known(template_id)
        if template is None:
            missing.append(template_id)
        else:
            found[template_id] = template
    if missing:
        cur = await conn.execute(
            "SELECT id, body FROM observation_template WHERE id = ANY(%s)", (missing,)
        )
        for template_id, body in await cur.fetchall():
            template = from_body(str(body))
            if template.id != template_id:
                raise StoreError(f"observation template {template_id} does not match its id")
            found[template_id] = remember(template)
        absent = set(missing) - set(found)
        if absent:
            raise StoreError(f"observation templates {sorted(absent)} are missing")
    return found


async def render_rows(conn: Conn, rows: Sequence[ObservationRow]) -> list[str]:
    """The served JSON text of each row (its template filled, or its stored text)."""
    templates = await load_templates(conn, (r.template_id for r in rows))
    return [
        render_served(
            templates[r.template_id] if r.template_id is not None else None,
            r.columns(),
            r.remainder,
        )
        for r in rows
    ]


async def served_observations(
    conn: Conn, where: str = "TRUE", params: Sequence[Any] = (), *, order: str = "o.effective_at"
) -> list[tuple[ObservationRow, str]]:
    """Rows of ``observation o`` matching ``where`` with the text the API serves for each
    (support tools and tests; ``where`` and ``order`` are trusted SQL)."""
    from psycopg.rows import class_row

    async with conn.cursor(row_factory=class_row(ObservationRow)) as cur:
        await cur.execute(
            f"SELECT {RENDER_COLUMNS} FROM observation o WHERE {where} ORDER BY {order}".encode(),
            params,
        )
        found = await cur.fetchall()
    return list(zip(found, await render_rows(conn, found), strict=True))
