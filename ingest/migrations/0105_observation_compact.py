"""Issue 17: move every stored resource into ``template_id`` + ``remainder`` (after 0104).

Python, not SQL: the template of a stored resource is found by ingest's own renderer
(:func:`ingest.fhir.stored.stored_form`), and a row takes a template only when the template
renders it back byte for byte as PostgreSQL served it (``resource::text``); any other row keeps
that text whole in ``remainder`` and is listed in the log. So nothing is served differently.

Month by month, in batches of :data:`BATCH` rows, each batch its own transaction: a large
database migrates without one giant transaction, and an interrupted run resumes where it
stopped (rows already moved have ``resource`` NULL). On TimescaleDB a compressed chunk is
decompressed first and compressed again once its rows are moved.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from ingest.fhir.stored import Columns, stored_form
from ingest.store.templates import CONSTANT_NOTES, ensure_templates

logger = logging.getLogger("ingest.migrations.0105")

BATCH = 5_000
_LISTED = 20  # rows stored whole that the log names

_SELECT = (
    "SELECT id::text, effective_at, identifier, status, received_at, resident_id, device_id, "
    "gateway_id, resource::text FROM observation "
    "WHERE effective_at >= %s AND effective_at < %s AND resource IS NOT NULL AND id > %s::uuid "
    "ORDER BY id LIMIT %s"
)
_UPDATE = (
    "UPDATE observation o SET template_id = k.template_id, remainder = k.remainder, "
    "resource = NULL "
    "FROM unnest(%s::uuid[], %s::timestamptz[], %s::integer[], %s::text[]) "
    "AS k(id, effective_at, template_id, remainder) "
    "WHERE o.id = k.id AND o.effective_at = k.effective_at"
)


async def _windows(conn: AsyncConnection[Any]) -> list[tuple[datetime, datetime]]:
    row = await (
        await conn.execute(
            "SELECT min(effective_at), max(effective_at) FROM observation "
            "WHERE resource IS NOT NULL"
        )
    ).fetchone()
    if row is None or row[0] is None:
        return []
    low, high = row[0], row[1]
    out: list[tuple[datetime, datetime]] = []
    start = low
    while start <= high:
        end = start + timedelta(days=31)
        out.append((start, end))
        start = end
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
    """Move every row (``conn`` is in autocommit mode; each batch commits on its own)."""
    compressed = await _compressed_chunks(conn)
    for chunk in compressed:
        await conn.execute("SELECT decompress_chunk(%s::regclass, if_compressed => true)", (chunk,))
    moved = whole = 0
    listed: list[str] = []
    for low, high in await _windows(conn):
        last = "00000000-0000-0000-0000-000000000000"
        while True:
            async with conn.transaction():
                cur = await conn.execute(_SELECT, (low, high, last, BATCH))
                rows = await cur.fetchall()
                if not rows:
                    break
                ids: list[str] = []
                times: list[datetime] = []
                template_ids: list[int | None] = []
                remainders: list[str | None] = []
                templates = {}
                for obs_id, at, ident, status, received, resident, device, gateway, text in rows:
                    columns = Columns(
                        obs_id, ident, status, at, received, resident, device, gateway
                    )
                    # the reference is the text served until now, byte for byte
                    template, remainder = stored_form(text, columns, CONSTANT_NOTES, served=text)
                    if template is None:
                        whole += 1
                        if len(listed) < _LISTED:
                            listed.append(obs_id)
                    else:
                        templates[template.id] = template
                    ids.append(obs_id)
                    times.append(at)
                    template_ids.append(None if template is None else template.id)
                    remainders.append(remainder)
                await ensure_templates(conn, templates.values())
                await conn.execute(_UPDATE, (ids, times, template_ids, remainders))
                moved += len(rows)
                last = ids[-1]
            logger.info("0105: %d observations moved (%d stored whole)", moved, whole)
    for chunk in compressed:
        await conn.execute(
            "SELECT compress_chunk(%s::regclass, if_not_compressed => true)", (chunk,)
        )
    if whole:
        logger.warning(
            "0105: %d of %d observations keep their whole resource (no template renders them "
            "byte for byte), e.g. %s",
            whole,
            moved,
            ", ".join(listed),
        )
    logger.info("0105: %d observations moved to template + remainder", moved)
