"""Issue 17: ``daon db migrate`` moves a database of the previous schema (every Observation
stored whole as jsonb) to typed columns + template + remainder, and the API serves every
resource, search page and ``$lastn`` byte for byte as before.

The previous schema is built by the previous migrations (all but 0104-0107); observations are
written with the previous code's SQL (the ``resource`` column, rows from the mapping's dict
build and the hand-entry builders), some retracted the way the unbound queue did it
(``jsonb_set`` of the status); "before" is read with the previous API's SQL
(``resource::text``), "after" with the API's own store functions.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from api.store import queries
from api.store.access import Actor, Role
from ingest import store
from ingest.store import registry as reg
from ingest.store.migrate import discover
from tests.ingest import corpus, world

pytestmark = pytest.mark.db

NEW = (104, 105, 106, 107)  # 0107: the identity rows of the previous schema move too
ADMIN = Actor("admin-1", Role.ADMIN, "관리자")

_OLD_COLUMNS = (
    "id, effective_at, resident_id, code, code_system, value, unit, component_values, "
    "device_id, gateway_id, centre_id, status, identifier, resource, received_at, quality, "
    "context"
)
_OLD_SEARCH = (
    "SELECT o.id::text, o.resource::text FROM observation o WHERE o.resident_id = %s "
    "ORDER BY o.effective_at DESC, o.id::text DESC LIMIT 50"
)
_OLD_LASTN = """
    WITH RECURSIVE codes(code) AS (
        (SELECT code FROM observation
         WHERE resident_id = %(rid)s AND effective_at < now() + interval '1 day'
         ORDER BY code LIMIT 1)
        UNION ALL
        SELECT (SELECT o.code FROM observation o
                WHERE o.resident_id = %(rid)s AND o.code > c.code
                  AND o.effective_at < now() + interval '1 day'
                ORDER BY o.code LIMIT 1)
        FROM codes c WHERE c.code IS NOT NULL
    )
    SELECT last.id, last.resource
    FROM codes c CROSS JOIN LATERAL (
        SELECT o.id::text AS id, o.effective_at, o.resource::text AS resource, o.code
        FROM observation o
        WHERE o.resident_id = %(rid)s AND o.code = c.code
          AND o.effective_at < now() + interval '1 day'
          AND o.status <> 'entered-in-error'
        ORDER BY o.effective_at DESC LIMIT 1
    ) last
    WHERE c.code IS NOT NULL
    ORDER BY last.code, last.effective_at DESC"""


def _old_rows() -> list[tuple[Any, ...]]:
    """Rows as the previous code wrote them (resource: the text it computed)."""
    texts: dict[str, tuple[Any, str]] = {}
    for row, text, _ in corpus.mapped():
        texts.setdefault(row.identifier, (row, text))
    for row, text in corpus.hand_entered():
        texts.setdefault(row.identifier, (row, text))
    out = []
    for row, text in texts.values():
        out.append(
            (
                row.id,
                row.effective_at,
                row.resident_id,
                row.code,
                row.code_system,
                row.value,
                row.unit,
                row.component_values,
                row.device_id,
                row.gateway_id,
                row.centre_id,
                row.status,
                row.identifier,
                text,
                row.received_at,
                list(row.quality) if row.quality else None,
                row.context,
            )
        )
    return out


def _when_and_code(text: str) -> tuple[str, Any]:
    resource = json.loads(text)
    return resource["effectiveDateTime"], resource["code"]


async def _before(url: str, residents: list[str]) -> dict[str, Any]:
    async with store.connection(url) as conn:
        cur = await conn.execute("SELECT id::text, resource::text FROM observation")
        reads = dict(await cur.fetchall())
        searches = {}
        lastn = {}
        for rid in residents:
            cur = await conn.execute(_OLD_SEARCH, (rid,))
            searches[rid] = [tuple(r) for r in await cur.fetchall()]
            cur = await conn.execute(_OLD_LASTN, {"rid": rid})
            lastn[rid] = [tuple(r) for r in await cur.fetchall()]
    return {"reads": reads, "searches": searches, "lastn": lastn}


async def _after(url: str, residents: list[str], ids: list[str]) -> dict[str, Any]:
    async with store.connection(url) as conn:
        reads = {}
        for obs_id in ids:
            found = await queries.read_observation(conn, ADMIN, obs_id)
            reads[found.id] = found.json
        searches = {}
        lastn = {}
        for rid in residents:
            page = await queries.search_observations(
                conn, ADMIN, queries.ObservationQuery(residents=(rid,), count=50)
            )
            searches[rid] = [(r.id, r.json) for r in page.resources]
            lastn[rid] = [(r.id, r.json) for r in await queries.last_n(conn, ADMIN, rid)]
        await conn.rollback()
    return {"reads": reads, "searches": searches, "lastn": lastn}


async def test_migrate_serves_every_stored_observation_as_before(
    empty_db_url: str, db_backend: str
) -> None:
    previous = [m for m in discover(db_backend) if m.version not in NEW]
    await store.migrate(empty_db_url, migrations=previous)
    await world.seed(empty_db_url)
    rows = _old_rows()
    residents = sorted({r[2] for r in rows if r[2] is not None})
    async with store.connection(empty_db_url) as conn:
        await reg.upsert_residents(
            conn, [reg.Resident(r, f"주민{i}", "약수동") for i, r in enumerate(residents)]
        )
        async with conn.cursor() as cur:
            await cur.executemany(
                f"INSERT INTO observation ({_OLD_COLUMNS}) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, "
                "%s::jsonb)",
                rows,
            )
            await cur.executemany(
                "INSERT INTO observation_identity (identifier, observation_id, effective_at) "
                "VALUES (%s, %s, %s)",
                [(r[12], r[0], r[1]) for r in rows],
            )
        # a retracted assignment, as the previous unbound queue wrote it
        retracted = [r[0] for r in rows if r[2] == corpus.RESIDENT][:3]
        await conn.execute(
            "UPDATE observation o SET status = 'entered-in-error', "
            "resource = jsonb_set(o.resource, '{status}', '\"entered-in-error\"') "
            "WHERE o.id = ANY(%s::uuid[])",
            (retracted,),
        )
        await conn.commit()
        if db_backend == "timescaledb":  # the migration must see through the columnstore
            await conn.execute("SELECT compress_chunk(c) FROM show_chunks('observation') c")
            await conn.commit()
    before = await _before(empty_db_url, residents)
    assert len(before["reads"]) == len(rows) > 150

    report = await store.migrate(empty_db_url)
    assert set(NEW) <= set(report.applied)

    after = await _after(empty_db_url, residents, list(before["reads"]))
    assert after["reads"] == before["reads"]
    assert after["searches"] == before["searches"]
    # $lastn picks one of the newest of each code; with two readings of a code at the same
    # second (devices of a drawn corpus) either may be picked, before as after
    for rid, found in after["lastn"].items():
        assert [_when_and_code(t) for _, t in found] == [
            _when_and_code(t) for _, t in before["lastn"][rid]
        ]
        assert all(text == before["reads"][obs_id] for obs_id, text in found)
    async with store.connection(empty_db_url) as conn:
        kept = await (
            await conn.execute(
                "SELECT count(*) FILTER (WHERE template_id IS NULL), count(*), "
                "(SELECT count(*) FROM observation_template), "
                "(SELECT count(*) FROM information_schema.columns "
                " WHERE table_name = 'observation' AND column_name = 'resource')"
                " FROM observation"
            )
        ).fetchone()
        retracted_served = await (
            await conn.execute("SELECT count(*) FROM observation WHERE status = 'entered-in-error'")
        ).fetchone()
    assert kept is not None
    whole, total, templates, resource_column = kept
    assert whole == 1  # the FHIR client's create with its own identifier and coding
    assert total == len(rows)
    assert 40 <= templates < total // 2  # a diverse corpus: in a district, a few hundred
    assert resource_column == 0
    if db_backend == "timescaledb":  # compressed again after the move
        async with store.connection(empty_db_url) as conn:
            left = await (
                await conn.execute(
                    "SELECT count(*) FROM timescaledb_information.chunks "
                    "WHERE hypertable_name = 'observation' AND NOT is_compressed"
                )
            ).fetchone()
        assert left == (0,)
    assert retracted_served == (3,)
    for obs_id in retracted:
        assert json.loads(after["reads"][obs_id])["status"] == "entered-in-error"
    # a second run does nothing
    again = await store.migrate(empty_db_url)
    assert again.applied == ()
