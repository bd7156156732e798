"""Issue 17, migration 0107: ``observation_identity`` keyed by the Observation id instead of the
identifier text. A database of the previous schema (0106: rows as templates, identity rows as
the previous writer stored them, digests as 0102's hex text, some rows from before 0102 without
one) is migrated with ``daon db migrate`` in small batches, interrupted once and resumed; after
it the same readings are replays, another value under a stored identifier is a conflicting
duplicate naming both values, and searches by identifier serve what they served before.
"""

from __future__ import annotations

import hashlib
import importlib
from typing import Any

import psycopg
import pytest

from api.store import queries
from api.store.access import Actor, Role
from ingest import store
from ingest.fhir.ids import identity_time
from ingest.fhir.observations import StoredObservation
from ingest.store import registry as reg
from ingest.store.migrate import discover
from ingest.store.observations import copy_observations, store_observations, value_text
from tests.ingest import corpus, world

pytestmark = pytest.mark.db

ADMIN = Actor("admin-1", Role.ADMIN, "관리자")
_OLD_SEARCH = (  # the previous API's identifier search (identity by identifier text)
    "SELECT o.id::text FROM observation o WHERE (o.id, o.effective_at) IN "
    "(SELECT observation_id, effective_at FROM observation_identity WHERE identifier = %s) "
    "ORDER BY o.effective_at DESC, o.id::text DESC"
)


def _old_value_key(o: StoredObservation) -> str:
    """What migration 0102's writer kept: 8 bytes of BLAKE2b of value|unit|components, hex."""
    text = f"{o.value!r}|{o.unit}|{o.component_values}"
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _rows() -> list[StoredObservation]:
    unique: dict[str, StoredObservation] = {}
    for row, _, _ in corpus.mapped():
        unique.setdefault(row.identifier, row)
    for row, _ in corpus.hand_entered():
        unique.setdefault(row.identifier, row)
    return list(unique.values())


async def _served(url: str, ids: list[str]) -> dict[str, str]:
    async with store.connection(url) as conn:
        out = {i: (await queries.read_observation(conn, ADMIN, i)).json for i in ids}
        await conn.rollback()
    return out


async def test_identity_rows_move_to_ids_and_dedup_as_before(
    empty_db_url: str, db_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous = [m for m in discover(db_backend) if m.version != 107]
    await store.migrate(empty_db_url, migrations=previous)
    await world.seed(empty_db_url)
    rows = _rows()
    residents = sorted({r.resident_id for r in rows if r.resident_id is not None})
    no_digest = {r.identifier for r in rows[::17]}  # stored before 0102 kept digests
    async with store.connection(empty_db_url) as conn:
        await reg.upsert_residents(
            conn, [reg.Resident(r, f"주민{i}", "약수동") for i, r in enumerate(residents)]
        )
        await copy_observations(conn, rows)
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO observation_identity (identifier, observation_id, effective_at, "
                "value_key) VALUES (%s, %s, %s, %s)",
                [
                    (
                        r.identifier,
                        r.id,
                        r.effective_at,
                        None if r.identifier in no_digest else _old_value_key(r),
                    )
                    for r in rows
                ],
            )
        await conn.commit()
        searched = rows[::9]
        before_search = {}
        for r in searched:
            cur = await conn.execute(_OLD_SEARCH, (r.identifier,))
            before_search[r.identifier] = [x[0] for x in await cur.fetchall()]
    assert len(rows) > 150
    before = await _served(empty_db_url, [r.id for r in rows])

    # interrupted: a row in the new table collides with a later batch (the migration stops
    # with the primary key's error), then resumed from its recorded progress
    module = importlib.import_module("ingest.migrations.0107_observation_identity_id")
    monkeypatch.setattr(module, "BATCH", 40)
    by_identifier = sorted(rows, key=lambda r: r.identifier)
    async with store.connection(empty_db_url, autocommit=True) as conn:
        collation_order = [
            str(x[0])
            for x in await (
                await conn.execute("SELECT identifier FROM observation_identity ORDER BY 1")
            ).fetchall()
        ]
        late = {r.identifier: r for r in by_identifier}[collation_order[100]]
        await module.create(conn)
        await conn.execute(
            "INSERT INTO observation_identity_id (observation_id, key_time, effective_at) "
            "VALUES (%s, %s, %s)",
            (late.id, identity_time(late.identifier), late.effective_at),
        )
    with pytest.raises(store.MigrationError):
        await store.migrate(empty_db_url)
    async with store.connection(empty_db_url, autocommit=True) as conn:
        progress = await (
            await conn.execute("SELECT value FROM daon_meta WHERE key = 'migration_0107_after'")
        ).fetchone()
        assert progress == (collation_order[79],)  # two batches committed before the third
        await conn.execute(
            "DELETE FROM observation_identity_id WHERE observation_id = %s", (late.id,)
        )
    report = await store.migrate(empty_db_url)
    assert report.applied == (107,)

    async with store.connection(empty_db_url) as conn:
        facts = await (
            await conn.execute(
                "SELECT count(*), count(DISTINCT observation_id), count(value_key), "
                "(SELECT count(*) FROM information_schema.columns "
                " WHERE table_name = 'observation_identity' AND column_name = 'identifier'), "
                "(SELECT count(*) FROM daon_meta WHERE key = 'migration_0107_after') "
                "FROM observation_identity"
            )
        ).fetchone()
        assert facts == (len(rows), len(rows), len(rows) - len(no_digest), 0, 0)
        if db_backend == "timescaledb":  # the replays below meet compressed identity chunks
            chunks = await (
                await conn.execute(
                    "SELECT count(*) FILTER (WHERE is_compressed), count(*) "
                    "FROM timescaledb_information.chunks "
                    "WHERE hypertable_name = 'observation_identity'"
                )
            ).fetchone()
            assert chunks is not None
            assert chunks[0] == chunks[1] > 0
        # the same readings again: replays, nothing stored twice
        done = await store_observations(conn, rows)
        assert (len(done.new), len(done.same), len(done.conflicts)) == (0, len(rows), 0)
        # another value under a stored identifier (with a digest): a conflict naming both
        first = next(r for r in rows if r.value is not None and r.identifier not in no_digest)
        other = first._replace(value=first.value + 1)  # type: ignore[operator]
        done = await store_observations(conn, [other])
        assert done.new == []
        assert done.same == []
        assert [(c.observation, c.first) for c in done.conflicts] == [
            (other, value_text(first.value, first.unit, first.component_values))
        ]
        # a row stored before digests were kept compares as a replay, as before
        legacy = next(r for r in rows if r.value is not None and r.identifier in no_digest)
        done = await store_observations(conn, [legacy._replace(value=legacy.value + 1)])  # type: ignore[operator]
        assert len(done.same) == 1
        after_search = {}
        for r in searched:
            page = await queries.search_observations(
                conn,
                ADMIN,
                queries.ObservationQuery(identifiers=(queries.Token(r.identifier),)),
            )
            after_search[r.identifier] = [x.id for x in page.resources]
            assert all(x.json == before[x.id] for x in page.resources)
        await conn.rollback()
    assert after_search == before_search
    assert await _served(empty_db_url, [r.id for r in rows]) == before
    # a second run does nothing
    assert (await store.migrate(empty_db_url)).applied == ()


async def test_a_new_database_has_the_narrow_identity(db_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        cur = await conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'observation_identity' ORDER BY ordinal_position"
        )
        columns: list[tuple[Any, ...]] = [tuple(r) for r in await cur.fetchall()]
    assert columns == [
        ("observation_id", "uuid"),
        ("key_time", "timestamp with time zone"),
        ("effective_at", "timestamp with time zone"),
        ("value_key", "bigint"),
    ]
