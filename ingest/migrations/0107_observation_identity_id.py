"""Issue 17: the identity row narrowed to the Observation id (after 0106).

``observation_identity`` was keyed by the PHD conditional-create identifier as text (~45 bytes,
with ``created_at`` and the value digest as 16 hex characters): ~206 bytes a row with its
primary key. An Observation's id is the UUIDv5 of its identifier (:func:`ingest.fhir.resource_id`,
122 bits of SHA-1), so the id is the identity. The new row:

- ``observation_id`` uuid: the identity;
- ``key_time``: the identifier's own time part (:func:`ingest.fhir.ids.identity_time`), the same
  for every gateway and replay of the identifier whatever their clock corrections;
- ``effective_at``: the stored row's time (its partition or chunk);
- ``value_key`` bigint: the 64-bit value digest (:func:`ingest.store.observations.value_key`),
  the same number as the hex text 0102 kept, so replays and conflicting duplicates are told
  apart as before; NULL (rows stored before 0102) stays NULL and compares as a replay.

Stock PostgreSQL: an ordinary table, primary key ``observation_id``. TimescaleDB: a hypertable
on ``key_time`` (30-day chunks; its unique key must hold the time, and ``key_time`` is a
function of the identifier, so ``(observation_id, key_time)`` is as unique as the id) with the
columnstore ordered by ``key_time`` and the same 30-day columnstore policy as ``observation``:
an identity row compresses to ~30 bytes, and an insert meeting a compressed chunk checks only
the batch whose time range holds its ``key_time``.

In batches of :data:`BATCH` identifiers, each batch its own transaction with its progress in
``daon_meta``, so an interrupted run resumes where it stopped; the last transaction checks that
every identifier moved, drops the old table and renames the new one (on TimescaleDB the chunks
past the policy's age are then compressed). Two identifiers under one Observation id (a SHA-1
collision, or a row not written by Daon) stop the migration with the primary key's error
instead of merging them. Stop ingest and the api while it runs.
"""

from __future__ import annotations

import logging
from typing import Any

from psycopg import AsyncConnection

from ingest.fhir.ids import identity_time

logger = logging.getLogger("ingest.migrations.0107")

BATCH = 20_000
_PROGRESS = "migration_0107_after"  # daon_meta key: the last identifier moved

_CREATE = """
CREATE TABLE IF NOT EXISTS observation_identity_id (
    observation_id uuid        NOT NULL,   -- UUIDv5 of the conditional-create identifier
    key_time       timestamptz NOT NULL,   -- the identifier's time part (ids.identity_time)
    effective_at   timestamptz NOT NULL,   -- the stored row's time (its partition or chunk)
    value_key      bigint,                 -- 64-bit digest of value, unit and components
    CONSTRAINT observation_identity_id_pkey PRIMARY KEY ({key})
)"""
_HYPERTABLE = (
    "SELECT create_hypertable('observation_identity_id', by_range('key_time', "
    "INTERVAL '30 days'), if_not_exists => true)",
    "ALTER TABLE observation_identity_id SET (timescaledb.enable_columnstore = true, "
    "timescaledb.segmentby = '', timescaledb.orderby = 'key_time')",
)
_POLICY = (
    "CALL add_columnstore_policy('observation_identity', after => INTERVAL '30 days', "
    "if_not_exists => true)"
)
_COMPRESS = (
    "SELECT compress_chunk(c, if_not_compressed => true) "
    "FROM show_chunks('observation_identity', older_than => now() - INTERVAL '30 days') c"
)
_BATCH = (
    "SELECT identifier, observation_id, effective_at, "
    "CASE WHEN value_key ~ '^[0-9a-f]{16}$' THEN ('x' || value_key)::bit(64)::bigint END "
    "FROM observation_identity WHERE identifier > %s ORDER BY identifier LIMIT %s"
)
_INSERT = (
    "INSERT INTO observation_identity_id (observation_id, key_time, effective_at, value_key) "
    "SELECT * FROM unnest(%s::uuid[], %s::timestamptz[], %s::timestamptz[], %s::bigint[])"
)
_CHECK = """
DO $$
BEGIN
    IF (SELECT count(*) FROM observation_identity)
       <> (SELECT count(*) FROM observation_identity_id) THEN
        RAISE EXCEPTION 'identity rows differ after the move: migration 0107 did not finish';
    END IF;
END $$"""


async def _columns(conn: AsyncConnection[Any], table: str) -> set[str]:
    cur = await conn.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s",
        (table,),
    )
    return {str(r[0]) for r in await cur.fetchall()}


async def create(conn: AsyncConnection[Any]) -> bool:
    """Create the new table if it is not there (in one transaction); True on TimescaleDB."""
    row = await (await conn.execute("SELECT value FROM daon_meta WHERE key = 'backend'")).fetchone()
    timescale = row is not None and row[0] == "timescaledb"
    async with conn.transaction():
        exists = await (
            await conn.execute("SELECT to_regclass('observation_identity_id')")
        ).fetchone()
        if exists is None or exists[0] is None:
            key = "observation_id, key_time" if timescale else "observation_id"
            await conn.execute(_CREATE.format(key=key).encode())
            if timescale:
                for statement in _HYPERTABLE:
                    await conn.execute(statement.encode())
    return timescale


async def run(conn: AsyncConnection[Any]) -> None:
    """Move every identity row (``conn`` is in autocommit; each batch is a transaction)."""
    if "identifier" not in await _columns(conn, "observation_identity"):
        return  # already swapped
    timescale = await create(conn)
    row = await (
        await conn.execute("SELECT value FROM daon_meta WHERE key = %s", (_PROGRESS,))
    ).fetchone()
    after = str(row[0]) if row else ""
    moved = 0
    while True:
        async with conn.transaction():
            rows = await (await conn.execute(_BATCH, (after, BATCH))).fetchall()
            if not rows:
                break
            await conn.execute(
                _INSERT,
                (
                    [r[1] for r in rows],
                    [identity_time(r[0]) for r in rows],
                    [r[2] for r in rows],
                    [r[3] for r in rows],
                ),
            )
            after = str(rows[-1][0])
            await conn.execute(
                "INSERT INTO daon_meta (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (_PROGRESS, after),
            )
        moved += len(rows)
        logger.info("0107: %d identity rows moved", moved)
    async with conn.transaction():
        await conn.execute(_CHECK)
        await conn.execute("DROP TABLE observation_identity")
        await conn.execute("ALTER TABLE observation_identity_id RENAME TO observation_identity")
        await conn.execute(
            "ALTER TABLE observation_identity "
            "RENAME CONSTRAINT observation_identity_id_pkey TO observation_identity_pkey"
        )
        await conn.execute("DELETE FROM daon_meta WHERE key = %s", (_PROGRESS,))
        if timescale:
            await conn.execute(_POLICY)
    if timescale:
        await conn.execute(_COMPRESS)
