"""Issue 17: the binding facts of ``context`` as columns (after 0108).

``context`` (jsonb) held, on every row bound at a station or by the registry, the setting, the
binding method, the check-in session, the station and the wire reading id: ~139 bytes of a
~380-byte row, most of it jsonb's own keys and offsets. These five go to text columns
(``setting``, ``binding``, ``session_id``, ``station_id``, ``reading_id``); ``context`` keeps
the rest (meal, sample type, user index, record number, symptoms ...), NULL when nothing is
left. ``daon_observation_context(...)`` gives back the object as it was (the clinical series
and the binding's Provenance read it), so what anything reads is unchanged.

Month by month, in batches of :data:`BATCH` rows, each its own transaction: rows still holding
one of the five keys as a string are moved, so an interrupted run resumes where it stopped. On
TimescaleDB compressed chunks are decompressed first and compressed again afterwards.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

logger = logging.getLogger("ingest.migrations.0109")

BATCH = 5_000

_SCHEMA = """
ALTER TABLE observation
    ADD COLUMN IF NOT EXISTS setting    text,   -- context.setting: home | centre
    ADD COLUMN IF NOT EXISTS binding    text,   -- context.binding: check-in | registry | staff
    ADD COLUMN IF NOT EXISTS session_id text,   -- context.session: the check-in session
    ADD COLUMN IF NOT EXISTS station_id text,   -- context.station
    ADD COLUMN IF NOT EXISTS reading_id text;   -- context.reading: the wire reading id

-- The reading's facts as one object, as ``context`` held them before 0109.
CREATE OR REPLACE FUNCTION daon_observation_context(
    context jsonb, setting text, binding text, session text, station text, reading text)
RETURNS jsonb LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN setting IS NULL AND binding IS NULL AND session IS NULL AND station IS NULL
             AND reading IS NULL THEN context
        ELSE jsonb_strip_nulls(jsonb_build_object('setting', setting, 'binding', binding,
                 'session', session, 'station', station, 'reading', reading))
             || coalesce(context, '{}'::jsonb)
    END
$$;
"""
_KEYS = "ARRAY['setting', 'binding', 'session', 'station', 'reading']"
_MOVE = """
WITH batch AS (
    SELECT id, effective_at FROM observation
    WHERE effective_at >= %s AND effective_at < %s AND id > %s::uuid
      AND context ?| ARRAY['setting', 'binding', 'session', 'station', 'reading']
    ORDER BY id LIMIT %s
), moved AS (
    UPDATE observation o SET
        setting = CASE WHEN jsonb_typeof(o.context -> 'setting') = 'string'
                       THEN o.context ->> 'setting' ELSE o.setting END,
        binding = CASE WHEN jsonb_typeof(o.context -> 'binding') = 'string'
                       THEN o.context ->> 'binding' ELSE o.binding END,
        session_id = CASE WHEN jsonb_typeof(o.context -> 'session') = 'string'
                          THEN o.context ->> 'session' ELSE o.session_id END,
        station_id = CASE WHEN jsonb_typeof(o.context -> 'station') = 'string'
                          THEN o.context ->> 'station' ELSE o.station_id END,
        reading_id = CASE WHEN jsonb_typeof(o.context -> 'reading') = 'string'
                          THEN o.context ->> 'reading' ELSE o.reading_id END,
        context = nullif(o.context - ARRAY(
            SELECT k FROM unnest(ARRAY['setting', 'binding', 'session', 'station', 'reading']) k
            WHERE jsonb_typeof(o.context -> k) = 'string'),
            '{}'::jsonb)
    FROM batch b WHERE o.id = b.id AND o.effective_at = b.effective_at
    RETURNING o.id
)
SELECT (array_agg(id ORDER BY id DESC))[1]::text, count(*) FROM moved"""


async def _windows(conn: AsyncConnection[Any]) -> list[tuple[datetime, datetime]]:
    row = await (
        await conn.execute(
            f"SELECT min(effective_at), max(effective_at) FROM observation WHERE context ?| {_KEYS}"
        )
    ).fetchone()
    if row is None or row[0] is None:
        return []
    out: list[tuple[datetime, datetime]] = []
    start, high = row[0], row[1]
    while start <= high:
        out.append((start, start + timedelta(days=31)))
        start += timedelta(days=31)
    return out


async def _compressed_chunks(conn: AsyncConnection[Any]) -> list[str]:
    backend = await (
        await conn.execute("SELECT value FROM daon_meta WHERE key = 'backend'")
    ).fetchone()
    if backend is None or backend[0] != "timescaledb":
        return []
    cur = await conn.execute(
        "SELECT format('%I.%I', chunk_schema, chunk_name) FROM timescaledb_information.chunks "
        "WHERE hypertable_name = 'observation' AND is_compressed"
    )
    return [str(r[0]) for r in await cur.fetchall()]


async def run(conn: AsyncConnection[Any]) -> None:
    """Move the five keys of every row (``conn`` is in autocommit; each batch commits)."""
    async with conn.transaction():
        await conn.execute(_SCHEMA.encode())
    windows = await _windows(conn)
    compressed = await _compressed_chunks(conn) if windows else []
    for chunk in compressed:
        await conn.execute("SELECT decompress_chunk(%s::regclass, if_compressed => true)", (chunk,))
    moved = 0
    for low, high in windows:
        last = "00000000-0000-0000-0000-000000000000"
        while True:
            async with conn.transaction():
                found = await (await conn.execute(_MOVE, (low, high, last, BATCH))).fetchone()
            if found is None or not found[1]:
                break
            last, moved = str(found[0]), moved + int(found[1])
            logger.info("0109: %d observations moved", moved)
    for chunk in compressed:
        await conn.execute(
            "SELECT compress_chunk(%s::regclass, if_not_compressed => true)", (chunk,)
        )
    logger.info("0109: the binding facts of %d observations moved to columns", moved)
