"""Issue 17, migration 0109: the binding facts of ``context`` (setting, binding, session,
station, reading) move to columns. A database of the previous schema (0108: the whole object
in ``context``) is migrated with ``daon db migrate``; afterwards every reader sees the same
object (the clinical series, the binding's Provenance), new rows are written split, and a
second run does nothing.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from ingest import store
from ingest.fhir.observations import StoredObservation
from ingest.store.migrate import discover
from ingest.store.observations import (
    copy_observations,
    provenance_for_observation,
    series_many,
)
from ingest.store.templates import ensure_templates, stored_columns
from tests.ingest import corpus, world

pytestmark = pytest.mark.db

_OLD_INSERT = (
    "INSERT INTO observation (id, effective_at, resident_id, code, code_system, value, unit, "
    "component_values, device_id, gateway_id, centre_id, status, identifier, template_id, "
    "remainder, received_at, quality, context) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, "
    "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)"
)

_OLD_SERIES = (  # the previous clinical series (ingest.store.observations.series_many)
    "SELECT id::text, context FROM observation "
    "WHERE resident_id = ANY(%s) AND code = ANY(%s) AND effective_at >= %s "
    "AND status <> 'entered-in-error' ORDER BY resident_id, effective_at, code"
)


def _rows() -> list[StoredObservation]:
    unique: dict[str, StoredObservation] = {}
    for row, _, _ in corpus.mapped():
        unique.setdefault(row.identifier, row)
    for row, _ in corpus.hand_entered():
        unique.setdefault(row.identifier, row)
    rows = list(unique.values())
    # edge cases: a fact that is not a string stays in the object; only facts (nothing left);
    # facts beside other keys (a symptom list)
    edge = [
        '{"setting":3,"binding":"registry","meal":"fasting"}',
        '{"setting":"home","binding":"registry"}',
        '{"symptoms":["thirst","nausea"],"binding":"staff","reading":"r-9"}',
    ]
    for i, context in enumerate(edge):
        rows[i] = rows[i]._replace(context=context)
    return rows


async def _contexts(url: str, sql: str) -> dict[str, Any]:
    async with store.connection(url) as conn:
        cur = await conn.execute(sql.encode())
        return {str(r[0]): r[1] for r in await cur.fetchall()}


async def test_context_facts_move_to_columns_and_read_back_the_same(
    empty_db_url: str, db_backend: str
) -> None:
    previous = [m for m in discover(db_backend) if m.version != 109]
    await store.migrate(empty_db_url, migrations=previous)
    await world.seed(empty_db_url)
    rows = _rows()
    residents = sorted({r.resident_id for r in rows if r.resident_id})
    codes = sorted({r.code for r in rows})
    since = min(r.effective_at for r in rows) - timedelta(days=1)
    async with store.connection(empty_db_url) as conn:
        stored = [stored_columns(o) for o in rows]
        await ensure_templates(conn, {t.id: t for t, _ in stored if t is not None}.values())
        async with conn.cursor() as cur:
            await cur.executemany(
                _OLD_INSERT,
                [
                    (
                        o.id,
                        o.effective_at,
                        o.resident_id,
                        o.code,
                        o.code_system,
                        o.value,
                        o.unit,
                        o.component_values,
                        o.device_id,
                        o.gateway_id,
                        o.centre_id,
                        o.status,
                        o.identifier,
                        None if t is None else t.id,
                        remainder,
                        o.received_at,
                        list(o.quality) if o.quality else None,
                        o.context,
                    )
                    for o, (t, remainder) in zip(rows, stored, strict=True)
                ],
            )
        await conn.commit()
        if db_backend == "timescaledb":  # the migration must see through the columnstore
            await conn.execute("SELECT compress_chunk(c) FROM show_chunks('observation') c")
            await conn.commit()
        cur = await conn.execute(_OLD_SERIES, (residents, codes, since))
        before_series = [(str(r[0]), r[1]) for r in await cur.fetchall()]
    before = await _contexts(empty_db_url, "SELECT id, context FROM observation")
    assert before == {o.id: json.loads(o.context) if o.context else None for o in rows}

    report = await store.migrate(empty_db_url)
    assert report.applied == (109,)

    after = await _contexts(
        empty_db_url,
        "SELECT id, daon_observation_context(context, setting, binding, session_id, "
        "station_id, reading_id) FROM observation",
    )
    assert after == before
    left = await _contexts(
        empty_db_url,
        "SELECT id, context FROM observation WHERE context ?| "
        "ARRAY['setting', 'binding', 'session', 'station', 'reading']",
    )
    assert left == {rows[0].id: {"setting": 3, "meal": "fasting"}}  # not a string: kept
    async with store.connection(empty_db_url) as conn:
        facts = await (
            await conn.execute(
                "SELECT context, setting, binding, session_id, station_id, reading_id "
                "FROM observation WHERE id = %s",
                (rows[1].id,),
            )
        ).fetchone()
        assert facts == (None, "home", "registry", None, None, None)
        after_series = await series_many(conn, residents, codes, since)
        # (rows of one resident, time and code come in either order, before as after)
        assert len(after_series) == len(before_series) > 150
        assert dict(zip(after_series.id, after_series.context, strict=True)) == dict(before_series)
        checked = [
            o for o in rows if o.resident_id and o.context and '"binding":"check-in"' in o.context
        ][:5]
        assert checked
        for o in checked:
            provenance = await provenance_for_observation(conn, o.id)
            assert provenance is not None
            context = json.loads(o.context or "{}")
            assert provenance["entity"][0]["what"]["identifier"]["value"] == context["session"]
            assert f"Observation/{o.id}" in [t["reference"] for t in provenance["target"]]
        # new rows are written split, and read back the same object
        fresh = rows[-1]._replace(
            id="0b6f6d41-3c0e-5d3a-8f57-6c3f4b2f6a11",
            identifier=rows[-1].identifier + "-x",
            context='{"setting":"centre","binding":"check-in","session":"s-7","station":'
            '"pil-station-2","reading":"w-1","user_index":2}',
        )
        await copy_observations(conn, [fresh])
        written = await (
            await conn.execute(
                "SELECT context, setting, binding, session_id, station_id, reading_id, "
                "daon_observation_context(context, setting, binding, session_id, station_id, "
                "reading_id) FROM observation WHERE id = %s",
                (fresh.id,),
            )
        ).fetchone()
        assert written == (
            {"user_index": 2},
            "centre",
            "check-in",
            "s-7",
            "pil-station-2",
            "w-1",
            json.loads(fresh.context or "{}"),
        )
        await conn.rollback()
    if db_backend == "timescaledb":  # compressed again after the move
        async with store.connection(empty_db_url) as conn:
            loose = await (
                await conn.execute(
                    "SELECT count(*) FROM timescaledb_information.chunks "
                    "WHERE hypertable_name = 'observation' AND NOT is_compressed"
                )
            ).fetchone()
        assert loose == (0,)
    assert (await store.migrate(empty_db_url)).applied == ()
