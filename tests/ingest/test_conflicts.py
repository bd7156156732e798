"""Conflicting duplicates (issue 12.4): the same device, resident, code and device-time second
with another value is not a replay. The first value stays; the second becomes a dead letter with
both values and the reason, counted per gateway and in ``daon status``. A true replay stays a
no-op. Real PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ingest import store
from ingest.errors import Reason
from ingest.pipeline import process_message
from ingest.store import registry
from ingest.store.observations import (
    read_counters,
    store_observations,
    value_text,
    write_outcomes,
)
from ingest.store.status import read_status
from tests.ingest import corpus, world
from tests.ingest import payloads as p

pytestmark = pytest.mark.db
TOPIC = f"daon/gw/{world.GATEWAY}/readings"
AT = world.measured(45)

# Glucose concentration SFLOAT in kg/L (ble-profiles.md §4.1): exponent -5 (0xB), so mg/dL.
MG_DL_100 = "64b0"  # 0xB064: 100 × 10^-5 kg/L = 100 mg/dL
MG_DL_400 = "90b1"  # 0xB190: 400 × 10^-5 kg/L = 400 mg/dL


def glucose(reading_id: str, concentration: str, sequence: int) -> dict[str, object]:
    """A GLS record; its record number joins the identifier's time part (ingest.fhir), so the
    same number and second with another value is the conflict (a meter after a memory reset)."""
    data = p.glucose(AT, sequence, concentration=concentration)
    return p.reading(reading_id, [(p.GLUCOSE, data)], device=world.GLUCOMETER)


async def write(url: str, *readings: dict[str, object]) -> Any:
    async with store.connection(url) as conn:
        snapshot = await registry.load_registry(conn)
    outcome = process_message(TOPIC, p.batch(list(readings)), snapshot)
    async with store.connection(url) as conn, conn.transaction():
        return await write_outcomes(conn, [outcome])


async def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    async with store.connection(url) as conn:
        return await (await conn.execute(sql.encode())).fetchall()


async def test_another_value_in_the_same_second_is_a_dead_letter_with_both_values(
    db_url: str,
) -> None:
    await world.seed(db_url)
    first = await write(db_url, glucose("g1", MG_DL_100, 1))
    second = await write(db_url, glucose("g2", MG_DL_400, 1))
    assert first.observations == 1
    assert (second.observations, second.duplicates, second.conflicts) == (0, 0, 1)
    counts = second.counts[world.GATEWAY]
    assert (counts.stored, counts.duplicate, counts.conflict, counts.dead_lettered) == (0, 0, 1, 1)
    # the first value is kept
    assert await rows(db_url, "SELECT value, unit FROM observation") == [(100.0, "mg/dL")]
    # the second is kept as a dead letter, with both values and the reason
    [(reason, reading_id, detail, raw)] = await rows(
        db_url, "SELECT reason, reading_id, detail, raw FROM dead_letter"
    )
    assert reason == Reason.CONFLICTING_DUPLICATE.value
    assert reading_id == "g2"
    assert "100 mg/dL" in detail
    assert "400 mg/dL" in detail
    assert b'"id": "g2"' in bytes(raw) or b'"id":"g2"' in bytes(raw)
    # counted per gateway and in daon status
    async with store.connection(db_url) as conn:
        assert (await read_counters(conn))[world.GATEWAY]["conflict"] == 1
        status = await read_status(conn)
    assert status.counts["conflicting_duplicates"] == 1
    assert status.counts["dead_letters"] == 1


async def test_a_true_replay_stays_a_no_op(db_url: str) -> None:
    await world.seed(db_url)
    await write(db_url, glucose("g1", MG_DL_100, 1))
    again = await write(db_url, glucose("g1-resent", MG_DL_100, 1))
    assert (again.observations, again.duplicates, again.conflicts) == (0, 1, 0)
    assert again.counts[world.GATEWAY].duplicate == 1
    assert await rows(db_url, "SELECT count(*) FROM dead_letter") == [(0,)]
    async with store.connection(db_url) as conn:
        assert (await read_status(conn)).counts["conflicting_duplicates"] == 0


async def test_a_conflict_inside_one_batch_keeps_the_first(db_url: str) -> None:
    await world.seed(db_url)
    result = await write(
        db_url,
        glucose("g1", MG_DL_100, 1),
        glucose("g1-again", MG_DL_100, 1),
        glucose("g2", MG_DL_400, 1),
    )
    counts = result.counts[world.GATEWAY]
    assert (counts.stored, counts.duplicate, counts.conflict) == (1, 1, 1)
    assert await rows(db_url, "SELECT value FROM observation") == [(100.0,)]
    [(reading_id, detail)] = await rows(db_url, "SELECT reading_id, detail FROM dead_letter")
    assert reading_id == "g2"
    assert "100 mg/dL" in detail
    assert "400 mg/dL" in detail


async def test_a_conflict_sent_again_is_one_dead_letter_seen_twice(db_url: str) -> None:
    await world.seed(db_url)
    await write(db_url, glucose("g1", MG_DL_100, 1))
    conflicting = glucose("g2", MG_DL_400, 1)
    await write(db_url, conflicting)
    await write(db_url, conflicting)  # a redelivery of the same message
    assert await rows(db_url, "SELECT count(*), sum(occurrences) FROM dead_letter") == [(1, 2)]


async def test_corrected_times_that_differ_between_gateways_are_the_same_reading(
    db_url: str,
) -> None:
    # Issue 17: the identity is the Observation id and the identifier's own time, never the
    # corrected time, which two gateways may set apart (here 3 weeks: another partition or
    # chunk). The same value through the second gateway is a replay; another value is the
    # conflict, named against the first.
    first = next(r for r, _, _ in corpus.mapped() if r.value is not None and r.resident_id)
    other = first._replace(
        effective_at=first.effective_at - timedelta(days=21), gateway_id="pil-gw-2"
    )
    async with store.connection(db_url) as conn, conn.transaction():
        stored = await store_observations(conn, [first])
    async with store.connection(db_url) as conn, conn.transaction():
        again = await store_observations(conn, [other])
        changed = await store_observations(conn, [other._replace(value=first.value + 1)])
    assert [o.id for o in stored.new] == [first.id]
    assert (again.new, again.same, again.conflicts) == ([], [other], [])
    assert changed.new == []
    assert [c.first for c in changed.conflicts] == [
        value_text(first.value, first.unit, first.component_values)
    ]
    found = await rows(db_url, "SELECT id::text, effective_at FROM observation")
    assert found == [(first.id, first.effective_at)]
