"""The unbound queue: assign through the consumer's own path, discard, restore, all reversible."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from ingest import store
from ingest.errors import Reason
from ingest.fhir.encoding import loads
from ingest.pipeline import process_message
from ingest.store import registry
from ingest.store.observations import write_outcomes
from ingest.store.templates import served_observations
from ingest.store.unbound import (
    AssignRejected,
    UnboundConflict,
    UnboundNotFound,
    assign_unbound,
    discard_unbound,
    get_unbound,
    history,
    list_unbound,
    restore_unbound,
)
from tests.ingest import payloads as p
from tests.ingest import world

pytestmark = pytest.mark.db
TOPIC = f"daon/gw/{world.GATEWAY}/readings"


async def queue(url: str, *readings: dict[str, Any]) -> list[int]:
    async with store.connection(url, autocommit=True) as conn:
        snapshot = await registry.load_registry(conn)
        outcome = process_message(TOPIC, p.batch(list(readings)), snapshot)
        async with conn.transaction():
            await write_outcomes(conn, [outcome])
        items = await list_unbound(conn)
    return [item.id for item in sorted(items, key=lambda i: i.reading_id)]


async def rows(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    async with store.connection(url, autocommit=True) as conn:
        return await (await conn.execute(sql.encode(), args)).fetchall()


def unbound_bp(reading_id: str, minutes_ago: int = 5) -> dict[str, Any]:
    return p.reading(reading_id, [(p.BPM, p.bp(world.measured(minutes_ago)))], resident=None)


async def test_assigning_stores_the_observations_with_staff_provenance(db_url: str) -> None:
    await world.seed(db_url)
    [item] = await queue(db_url, unbound_bp("u1"))
    async with store.connection(db_url, autocommit=True) as conn:
        ids = await assign_unbound(conn, item, "R0001235", "nurse-07", note="체크인 누락")
        assigned = await get_unbound(conn, item)
        assert await list_unbound(conn) == []
    assert len(ids) == 3  # panel, pulse, status bits
    assert assigned.state == "assigned"
    assert assigned.resident_id == "R0001235"
    async with store.connection(db_url) as conn:
        stored = await served_observations(conn)
    assert {r.resident_id for r, _ in stored} == {"R0001235"}
    # staff assignment: the resident is not claimed as performer
    assert all("performer" not in loads(text) for _, text in stored)
    provenance = await rows(
        db_url, "SELECT method, by_user, cardinality(observation_ids) FROM binding_provenance"
    )
    assert provenance == [("staff", "nurse-07", 3)]


async def test_restore_retracts_in_the_open_and_reassign_revives(db_url: str) -> None:
    await world.seed(db_url)
    [item] = await queue(db_url, unbound_bp("u1"))
    async with store.connection(db_url, autocommit=True) as conn:
        ids = await assign_unbound(conn, item, "R0001235", "nurse-07")
        retracted = await restore_unbound(conn, item, "nurse-07", note="다른 주민이었음")
        assert sorted(retracted) == sorted(ids)
        states = {(r.status, loads(text)["status"]) for r, text in await served_observations(conn)}
        assert states == {("entered-in-error", "entered-in-error")}
        assert (await get_unbound(conn, item)).state == "pending"
        # assigned to the right resident now: new Observations, the wrong ones stay retracted
        right = await assign_unbound(conn, item, "R0001234", "nurse-07")
        assert set(right).isdisjoint(ids)
        await restore_unbound(conn, item, "nurse-07")
        # and back to the first resident again: the same identifiers, revived, not duplicated
        again = await assign_unbound(conn, item, "R0001235", "nurse-07")
        assert sorted(again) == sorted(ids)
        actions = [h["action"] for h in await history(conn, item)]
    assert actions == ["assign", "restore", "assign", "restore", "assign"]
    final = await rows(
        db_url, "SELECT resident_id, status, count(*) FROM observation GROUP BY 1, 2 ORDER BY 1"
    )
    assert final == [("R0001234", "entered-in-error", 3), ("R0001235", "final", 3)]


async def test_discard_and_restore(db_url: str) -> None:
    await world.seed(db_url)
    [item] = await queue(db_url, unbound_bp("u1"))
    async with store.connection(db_url, autocommit=True) as conn:
        await discard_unbound(conn, item, "시험 측정 (test measurement)", "nurse-07")
        assert (await get_unbound(conn, item)).state == "discarded"
        with pytest.raises(UnboundConflict):
            await assign_unbound(conn, item, "R0001234", "nurse-07")
        assert await restore_unbound(conn, item, "nurse-07") == ()
        assert (await get_unbound(conn, item)).state == "pending"
        with pytest.raises(UnboundConflict):
            await restore_unbound(conn, item, "nurse-07")
        with pytest.raises(UnboundNotFound):
            await discard_unbound(conn, 999_999, "x", "nurse-07")
        with pytest.raises(UnboundConflict):
            await assign_unbound(conn, item, "R9999999", "nurse-07")


async def test_an_implausible_time_needs_the_staff_to_confirm_the_reception_time(
    db_url: str,
) -> None:
    await world.seed(db_url)
    future = (datetime.now(p.KST) + timedelta(days=3)).replace(tzinfo=None, microsecond=0)
    reading = p.reading("u1", [(p.BPM, p.bp(future))], resident="R0001234")
    [item] = await queue(db_url, reading)
    async with store.connection(db_url, autocommit=True) as conn:
        queued = await get_unbound(conn, item)
        assert queued.reason == Reason.IMPLAUSIBLE_TIME.value
        assert queued.suggested_resident == "R0001234"
        with pytest.raises(AssignRejected) as caught:
            await assign_unbound(conn, item, "R0001234", "nurse-07")
        assert caught.value.reason is Reason.IMPLAUSIBLE_TIME
        ids = await assign_unbound(conn, item, "R0001234", "nurse-07", use_received_time=True)
    assert len(ids) == 3
    [(effective, received)] = await rows(
        db_url,
        "SELECT effective_at, received_at FROM observation WHERE code = '85354-9'",
    )
    assert abs(effective - received) < timedelta(seconds=1)
