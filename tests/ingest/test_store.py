"""The store on a real PostgreSQL: idempotent batches, dead letters, counters, NOTIFY, series."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest import store
from ingest.errors import Reason
from ingest.fhir import render
from ingest.fhir.encoding import loads, validate
from ingest.fhir.stored import jsonb_text
from ingest.pipeline import MessageOutcome, process_message
from ingest.store import deadletter, registry
from ingest.store.observations import (
    NOTIFY_CHANNEL,
    notify_payloads,
    parse_notify_payload,
    provenance_for_observation,
    read_counters,
    refresh_daily,
    series,
    series_many,
    write_outcomes,
)
from ingest.store.templates import served_observations
from tests.ingest import payloads as p
from tests.ingest import world

pytestmark = pytest.mark.db
TOPIC = f"daon/gw/{world.GATEWAY}/readings"


async def process(url: str, *payloads: bytes) -> list[MessageOutcome]:
    async with store.connection(url) as conn:
        snapshot = await registry.load_registry(conn)
    return [process_message(TOPIC, payload, snapshot) for payload in payloads]


async def write(url: str, *payloads: bytes) -> Any:
    outcomes = await process(url, *payloads)
    async with store.connection(url) as conn, conn.transaction():
        result = await write_outcomes(conn, outcomes)
    return result


async def scalar(url: str, sql: str) -> Any:
    async with store.connection(url) as conn:
        row = await (await conn.execute(sql.encode())).fetchone()
    return row[0] if row else None


async def test_a_batch_is_stored_with_typed_columns_and_the_resource(db_url: str) -> None:
    await world.seed(db_url)
    readings = [p.reading(f"s{i}", [(p.BPM, p.bp(world.measured(30 + i)))]) for i in range(3)]
    result = await write(db_url, p.batch(readings))
    assert result.observations == 9  # panel, pulse and status bits (0x0005) each
    async with store.connection(db_url) as conn:
        rows = await (
            await conn.execute(
                "SELECT resident_id, code, unit, component_values, device_id, gateway_id, "
                "centre_id, status, quality, daon_observation_context(context, setting, binding, "
                "session_id, station_id, reading_id), template_id FROM observation "
                "WHERE code = '85354-9' "
                "ORDER BY effective_at LIMIT 1"
            )
        ).fetchall()
        [(_, text)] = await served_observations(
            conn, "o.code = '85354-9'", order="o.effective_at LIMIT 1"
        )
    resident, code, unit, components, device, gateway, centre, status, quality, ctx, tpl = rows[0]
    assert tpl is not None  # typed columns, a compiled template and a compact remainder
    assert (resident, code, unit, device, gateway, centre, status) == (
        "R0001234",
        "85354-9",
        "mm[Hg]",
        world.BP_CUFF,
        world.GATEWAY,
        "yaksu",
        "final",
    )
    assert components == {"8480-6": 120, "8462-4": 80, "8478-0": 93}
    assert quality == ["body_movement", "irregular_pulse"]
    assert ctx == {
        "setting": "centre",
        "binding": "check-in",
        "session": "session-s2",
        "station": "yaksu-station-1",
        "reading": "s2",  # the oldest of the three
    }
    # what the API serves is what ingest computed, byte for byte (as PostgreSQL's jsonb text)
    resource = loads(text)
    assert render(text) == render(resource)
    assert text == jsonb_text(resource)


async def test_replaying_a_batch_stores_nothing_twice(db_url: str) -> None:
    await world.seed(db_url)
    payload = p.batch(world.memory(5))
    first = await write(db_url, payload)
    again = await write(db_url, payload)
    assert (first.observations, again.observations) == (10, 0)
    assert again.counts[world.GATEWAY].duplicate == 5
    assert await scalar(db_url, "SELECT count(*) FROM observation") == 10
    assert await scalar(db_url, "SELECT count(*) FROM observation_identity") == 10


async def test_a_whole_memory_resend_stores_only_the_new_record(db_url: str) -> None:
    await world.seed(db_url)
    await write(db_url, p.batch(world.memory(10, prefix="first-")))
    # next connection: the cuff sends its whole memory again plus one new record, under new
    # outbox ids (a different gateway session)
    result = await write(db_url, p.batch(world.memory(11, prefix="second-")))
    counts = result.counts[world.GATEWAY]
    assert (counts.stored, counts.duplicate, result.observations) == (1, 10, 2)
    assert await scalar(db_url, "SELECT count(*) FROM observation WHERE code = '85354-9'") == 11


async def test_duplicates_inside_one_batch_count_once(db_url: str) -> None:
    await world.seed(db_url)
    reading = world.memory(1)[0]
    result = await write(db_url, p.batch([reading] * 50))
    counts = result.counts[world.GATEWAY]
    assert (counts.received, counts.stored, counts.duplicate) == (50, 1, 49)
    assert await scalar(db_url, "SELECT count(*) FROM observation") == 2


async def test_two_workers_writing_the_same_readings_store_them_once(db_url: str) -> None:
    await world.seed(db_url)
    outcomes = await process(db_url, p.batch(world.memory(20)))

    async def worker() -> int:
        async with store.connection(db_url) as conn, conn.transaction():
            return (await write_outcomes(conn, outcomes)).observations

    stored = await asyncio.gather(worker(), worker(), worker())
    assert sorted(stored) == [0, 0, 40]
    assert await scalar(db_url, "SELECT count(*) FROM observation") == 40


async def test_counters_and_last_seen(db_url: str) -> None:
    await world.seed(db_url)
    await write(db_url, p.batch(world.memory(2)), p.batch(world.memory(2)), b"{bad")
    async with store.connection(db_url) as conn:
        counters = (await read_counters(conn))[world.GATEWAY]
    assert counters["messages"] == 3
    assert (counters["received"], counters["stored"], counters["duplicate"]) == (4, 2, 2)
    assert counters["observations"] == 4
    assert counters["dead_lettered"] == 1
    assert counters["last_stored_at"] is not None
    assert await scalar(
        db_url, f"SELECT last_seen_at IS NOT NULL FROM device WHERE id = '{world.BP_CUFF}'"
    )


async def test_dead_letters_keep_the_bytes_and_count_redeliveries(db_url: str) -> None:
    await world.seed(db_url)
    await write(db_url, b"{bad json")
    await write(db_url, b"{bad json")  # the same message redelivered after a crash
    async with store.connection(db_url) as conn:
        [letter] = await deadletter.list_dead_letters(conn)
        assert letter.reason == Reason.MALFORMED_JSON.value
        assert letter.raw == b"{bad json"
        assert letter.occurrences == 2
        assert await deadletter.counts_by_reason(conn) == {"malformed_json": 1}
        assert await deadletter.dismiss_dead_letter(conn, letter.id, "admin-01")
        await conn.commit()
        assert await deadletter.list_dead_letters(conn) == []
        status = await store.read_status(conn)
    assert status.counts["dead_letters"] == 1  # kept for audit


async def test_unbound_readings_are_queued_once(db_url: str) -> None:
    await world.seed(db_url)
    reading = p.reading("u1", [(p.BPM, p.bp(world.measured(5)))], resident=None)
    await write(db_url, p.batch([reading]))
    await write(db_url, p.batch([reading]))
    async with store.connection(db_url) as conn:
        rows = await (
            await conn.execute(
                "SELECT reason, centre_id, station_id, state, record->>'summary', reading->>'id' "
                "FROM unbound_reading"
            )
        ).fetchall()
        status = await store.read_status(conn)
    assert rows == [("no_binding", "yaksu", "yaksu-station-1", "pending", rows[0][4], "u1")]
    assert rows[0][4].startswith("혈압")
    assert status.counts["unbound_readings"] == 1


async def test_a_check_in_binding_has_a_provenance(db_url: str) -> None:
    await world.seed(db_url)
    await write(db_url, p.batch(world.memory(2)))
    async with store.connection(db_url) as conn:
        ids = [
            r[0]
            for r in await (
                await conn.execute(
                    "SELECT id::text FROM observation WHERE reading_id = 'm1' ORDER BY id"
                )
            ).fetchall()
        ]
        provenance = await provenance_for_observation(conn, ids[0])
        unbound_id = "00000000-0000-5000-8000-000000000000"
        assert await provenance_for_observation(conn, unbound_id) is None
    assert provenance is not None
    validate(provenance)
    assert [t["reference"] for t in provenance["target"]] == [f"Observation/{i}" for i in ids]
    assert provenance["entity"][0]["what"]["identifier"]["value"] == "session-m1"
    assert provenance["agent"][0]["who"] == {"reference": f"Device/phg-{world.GATEWAY}"}
    assert "체크인" in provenance["activity"]["text"]


async def test_notify_wakes_listeners_with_the_residents_touched(db_url: str) -> None:
    await world.seed(db_url)
    listener = await psycopg.AsyncConnection.connect(db_url, autocommit=True)
    try:
        await listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        other = p.reading("x", [(p.BPM, p.bp(world.measured(3)))], resident="R0001235")
        readings = [*world.memory(2), other]
        await write(db_url, p.batch(readings))
        received: list[str] = []
        async with asyncio.timeout(10):
            async for note in listener.notifies(timeout=5, stop_after=1):
                received.extend(parse_notify_payload(note.payload))
        assert sorted(received) == ["R0001234", "R0001235"]
        await write(db_url, p.batch(readings))  # nothing new: no notification
        late = [n async for n in listener.notifies(timeout=0.5)]
        assert late == []
    finally:
        await listener.close()


@given(st.lists(st.from_regex(r"R[0-9]{7}", fullmatch=True), max_size=3000))
def test_notify_payloads_stay_under_postgres_limit(residents: list[str]) -> None:
    payloads = notify_payloads(residents)
    assert all(len(payload.encode()) < 8000 for payload in payloads)
    found = [r for payload in payloads for r in parse_notify_payload(payload)]
    assert sorted(found) == sorted(set(residents))


def test_array_literals_leave_null_and_words_needing_quotes_to_psycopg() -> None:
    """PostgreSQL reads an unquoted NULL (any case) in an array literal as a null element and
    splits on spaces and braces; such words must go through psycopg's quoting instead."""
    from ingest.store.observations import _array_literal

    assert _array_literal(["A-1", "b.2", "2025-03-04T09:15:00+09:00"]) == (
        "{A-1,b.2,2025-03-04T09:15:00+09:00}"
    )
    assert _array_literal(["A", "null"]) is None
    assert _array_literal(["NuLL", "B"]) is None
    assert _array_literal(["nullable", "x-null", "nul"]) == "{nullable,x-null,nul}"
    assert _array_literal(["a b"]) is None
    assert _array_literal(["{a}"]) is None


def test_the_prescreen_reads_the_context_where_the_rules_do() -> None:
    """BP-CRISIS from the components alone (SBP > 180); glucose ≥ 200 mg/dL plasma-equivalent
    (GLU-HYPER-SYMPTOMATIC's glucose half) needs the context's sample type: 185 mg/dL from a
    whole-blood sample is 205 (× 1.11, clinical-rules.md §1), from capillary plasma it is 185."""
    from devices.model import Component, Kind, Measurement
    from ingest.fhir import ReadingContext, to_observations
    from ingest.store.observations import screen

    at = datetime(2025, 3, 4, 9, 15)

    def rows(resident: str, m: Measurement) -> list[Any]:
        ctx = ReadingContext(
            device_id="C4:7C:8D:6A:1B:22",
            gateway_id="yaksu-gw-1",
            received_at=datetime(2025, 3, 4, 9, 20, tzinfo=p.KST),
            patient=resident,
            binding="check-in",
            setting="centre",
            session="s-1",
            reading_id=f"r-{resident}",
        )
        return to_observations(m, ctx)

    def glucose(sample: str) -> Measurement:
        return Measurement(
            Kind.GLUCOSE,
            (Component("glucose", Decimal("185"), "mg/dL"),),
            at,
            sequence_number=7,
            context=(("sample_type", sample),),
        )

    crisis = Measurement(
        Kind.BLOOD_PRESSURE,
        (
            Component("systolic", Decimal("190"), "mm[Hg]"),
            Component("diastolic", Decimal("95"), "mm[Hg]"),
            Component("pulse", Decimal("70"), "/min"),
        ),
        at,
    )
    calm = Measurement(
        Kind.BLOOD_PRESSURE,
        (
            Component("systolic", Decimal("120"), "mm[Hg]"),
            Component("diastolic", Decimal("80"), "mm[Hg]"),
        ),
        at,
    )
    found = screen(
        rows("RB1", crisis)
        + rows("RB2", calm)
        + rows("RG1", glucose("capillary_whole_blood"))
        + rows("RG2", glucose("capillary_plasma"))
    )
    assert found == ({"RB1"}, {"RG1"})


async def test_series_returns_columns_for_the_clinical_runner(db_url: str) -> None:
    await world.seed(db_url)
    await write(db_url, p.batch(world.memory(3)))
    since = datetime.now(p.KST) - timedelta(days=2)
    async with store.connection(db_url) as conn:
        bp = await series(conn, "R0001234", ["85354-9"], since)
        both = await series_many(conn, ["R0001234", "R0001235"], ["85354-9", "8867-4"], since)
    assert len(bp) == 3
    assert list(bp.effective_at) == sorted(bp.effective_at)
    assert bp.components[0] == {"8480-6": 120, "8462-4": 80, "8478-0": 93}
    assert bp.quality[0] == ()
    context = bp.context[0] or {}
    assert (context["setting"], context["binding"]) == ("centre", "check-in")
    assert len(both) == 6
    assert set(both.code) == {"85354-9", "8867-4"}
    assert both.value[both.code.index("8867-4")] == 72.0


async def test_registry_upserts_and_personal_device_resolution(db_url: str) -> None:
    await world.seed(db_url)
    await world.seed(db_url)  # idempotent
    now = datetime.now(p.KST)
    async with store.connection(db_url) as conn:
        assert await registry.resolve_patient(conn, world.HOME_SCALE, None, now) == "R0000007"
        assert await registry.resolve_patient(conn, world.BP_CUFF, None, now) is None
        await registry.upsert_device_users(
            conn,
            [
                registry.DeviceUser(world.HOME_SCALE, 2, "R0001235", now - timedelta(days=1)),
            ],
        )
        await conn.commit()
        # a multi-user device: slot 2 is mapped, slot 1 is not, and the owner is not a default
        assert await registry.resolve_patient(conn, world.HOME_SCALE, 2, now) == "R0001235"
        assert await registry.resolve_patient(conn, world.HOME_SCALE, 1, now) is None
        snapshot = await registry.load_registry(conn)
        device = await (
            await conn.execute("SELECT resource->>'id' FROM device WHERE id = %s", (world.BP_CUFF,))
        ).fetchone()
    assert snapshot.resolve(world.HOME_SCALE, 2, now) == "R0001235"
    assert snapshot.resolve(world.HOME_SCALE, 1, now) is None
    assert device == ("phd-C47C8D6A1B22",)


async def test_daily_summaries_are_refreshed_on_stock_postgres(db_url: str) -> None:
    await world.seed(db_url)
    await write(db_url, p.batch(world.memory(3)))
    async with store.connection(db_url, autocommit=True) as conn:
        backend = await (
            await conn.execute("SELECT value FROM daon_meta WHERE key = 'backend'")
        ).fetchone()
        refreshed = await refresh_daily(conn)
        again = await refresh_daily(conn)  # populated now: concurrently
        rows = await (
            await conn.execute(
                "SELECT sum(n)::int, round(avg(systolic_avg)) FROM observation_daily "
                "WHERE resident_id = 'R0001234' AND code = '85354-9'"
            )
        ).fetchone()
    if backend == ("timescaledb",):
        assert not refreshed
    else:
        assert refreshed
        assert again
        assert rows == (3, 120)


async def test_a_dead_letter_is_replayed_once_its_device_is_registered(db_url: str) -> None:
    await world.seed(db_url)
    stranger = "AB:CD:EF:00:11:22"
    reading = p.reading("late", [(p.BPM, p.bp(world.measured(7), status=None))], device=stranger)
    await write(db_url, p.batch([reading]))
    async with store.connection(db_url, autocommit=True) as conn:
        [letter] = await deadletter.list_dead_letters(conn)
        assert letter.reason == "unknown_device"
        failed = await deadletter.replay_dead_letter(conn, letter.id, "admin-01")
        assert failed.still == "unknown_device"  # nothing changed yet
        await registry.upsert_devices(conn, [registry.Device(stranger, "blood-pressure")])
        replayed = await deadletter.replay_dead_letter(conn, letter.id, "admin-01")
        assert (replayed.observations, replayed.still) == (2, None)
        assert await deadletter.list_dead_letters(conn) == []
        with pytest.raises(deadletter.ReplayConflict):
            await deadletter.replay_dead_letter(conn, letter.id, "admin-01")
    assert await scalar(db_url, "SELECT count(*) FROM observation") == 2
