"""The clinical runner against a real PostgreSQL (tier 3): NOTIFY, catch-up, cursors, flags,
events, tasks and visiting groups stored exactly once."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.riskassessment import RiskAssessment

from clinical import runner, staff
from clinical.alerts import AlertPolicy
from clinical.runner import alert_policy
from devices.model import Component, Kind, Measurement
from ingest.fhir import ReadingContext, to_observations
from ingest.store import clinical as db
from ingest.store.observations import insert_observations, notify_residents

pytestmark = pytest.mark.db

KST = runner.KST


async def connect(url: str) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(url, autocommit=True)


async def add_resident(conn, rid="R1", **profile: Any) -> None:
    await conn.execute(
        "INSERT INTO resident (id, display_name, neighbourhood, birth_date, sex, height_cm, "
        "profile, nurse_id, liaison_id) VALUES (%s, %s, '약수동', '1952-05-01', 'M', 170.0, "
        "%s, 'N01', 'L01-02')",
        (rid, f"주민 {rid}", psycopg.types.json.Jsonb(profile)),
    )


def bp_obs(rid: str, when: datetime, sys: int, dia: int, *, setting="home", status=()):
    m = Measurement(
        kind=Kind.BLOOD_PRESSURE,
        components=(
            Component("systolic", Decimal(sys), "mm[Hg]"),
            Component("diastolic", Decimal(dia), "mm[Hg]"),
            Component("pulse", Decimal(72), "/min"),
        ),
        device_time=when.astimezone(KST).replace(tzinfo=None),
        status=tuple(status),
    )
    ctx = ReadingContext(
        device_id="C4:7C:8D:6A:1B:22",
        gateway_id="yaksu-gw-1",
        received_at=when + timedelta(seconds=30),
        patient=rid,
        setting=setting,
    )
    return to_observations(m, ctx)


async def store_obs(conn, observations, *, notify=True) -> None:
    async with conn.transaction():
        await insert_observations(conn, observations)
        if notify:
            await notify_residents(conn, {o.resident_id for o in observations if o.resident_id})


async def count(conn, sql: str, *args: Any) -> int:
    row = await (await conn.execute(sql, args)).fetchone()
    return int(row[0])


def config(url: str, **kw: Any) -> runner.RunnerConfig:
    """Staffed around the clock unless a test says otherwise: these tests run at the wall
    clock's time (tests/clinical/test_alert_chain.py times the §0 chain with its own clock)."""
    kw.setdefault("alerts", AlertPolicy(hours=None))
    return runner.RunnerConfig(url, **kw)


async def test_crisis_reading_raises_a_flag_a_notification_and_a_task_once(db_url):
    now = datetime.now(UTC)
    async with await connect(db_url) as conn:
        await add_resident(conn, diagnoses=["hypertension"])
        await store_obs(conn, bp_obs("R1", now - timedelta(minutes=5), 192, 104))
        report = await runner.evaluate_residents(conn, ["R1"], now, config(db_url))
        assert report.opened >= 1
        flags = await db.open_flags(conn, "R1")
        crisis = next(f for f in flags if f.rule == "BP-CRISIS")
        assert crisis.severity == "critical"
        assert crisis.rule_set == runner.DEFAULT_RULESET.version
        assert len(crisis.evidence) == 1
        events = await db.flag_events(conn, crisis.id)
        assert [(e.kind, e.notice) for e in events][:1] == [("notify", "raised")]
        tasks = await db.tasks(conn, resident_id="R1")
        nurse = next(t for t in tasks if t.flag_id == crisis.id)
        assert (nurse.role, nurse.owner_id, nurse.priority) == ("nurse", "N01", "stat")
        assert nurse.due_at == crisis.alerted_at + timedelta(hours=1)
        group = (await db.visiting_groups(conn, ["R1"]))["R1"]
        assert group.grp == "intensive"
        fhir_flag, fhir_risk = await db.flag_resources(conn, crisis.id)
        assert Flag.model_validate(fhir_flag).status == "active"
        basis = RiskAssessment.model_validate(fhir_risk).basis
        assert [b.reference for b in basis] == [f"Observation/{crisis.evidence[0]}"]

        # the same data again: nothing new (no second flag, event or task)
        n_events = await count(conn, "SELECT count(*) FROM flag_event")
        again = await runner.evaluate_residents(
            conn, ["R1"], now + timedelta(minutes=1), config(db_url)
        )
        assert again.opened == 0
        assert again.notifications == 0
        assert await count(conn, "SELECT count(*) FROM flag_event") == n_events
        assert await count(conn, "SELECT count(*) FROM risk_flag WHERE rule = 'BP-CRISIS'") == 1


async def test_escalation_and_acknowledgement_through_the_store(db_url):
    now = datetime.now(UTC)
    cfg = config(db_url)
    async with await connect(db_url) as conn:
        await add_resident(conn)
        await store_obs(conn, bp_obs("R1", now - timedelta(minutes=2), 195, 100))
        await runner.evaluate_residents(conn, ["R1"], now, cfg)
        report = await runner.evaluate_residents(conn, ["R1"], now + timedelta(minutes=16), cfg)
        assert report.notifications == 1  # the 15-minute re-send
        await runner.evaluate_residents(conn, ["R1"], now + timedelta(minutes=61), cfg)
        crisis = next(f for f in await db.open_flags(conn, "R1") if f.rule == "BP-CRISIS")
        assert crisis.escalation == 2
        liaison = await db.tasks(conn, resident_id="R1", role="liaison")
        welfare = [t for t in liaison if t.flag_id == crisis.id]
        assert len(welfare) == 1
        assert not any(ch.isdigit() for ch in welfare[0].description)
        assert welfare[0].owner_id == "L01-02"

        acked = await staff.acknowledge(conn, crisis.id, "N01", now + timedelta(minutes=62))
        assert acked is not None
        assert acked.state == "acknowledged"
        assert acked.acknowledged_value == 195.0
        nurse_task = next(t for t in await db.tasks(conn, resident_id="R1", role="nurse"))
        assert nurse_task.status == "accepted"
        quiet = await runner.evaluate_residents(conn, ["R1"], now + timedelta(minutes=90), cfg)
        assert quiet.notifications == 0

        resolved = await staff.resolve(
            conn, crisis.id, "N01", "called; clinic today", now + timedelta(hours=2)
        )
        assert resolved is not None
        assert resolved.state == "resolved"
        assert await db.tasks(conn, resident_id="R1", role="nurse") == []
        # a resolved flag does not come back for the readings it already cited
        later = await runner.evaluate_residents(conn, ["R1"], now + timedelta(hours=3), cfg)
        assert later.opened == 0


async def test_snooze_needs_a_reason(db_url):
    now = datetime.now(UTC)
    async with await connect(db_url) as conn:
        await add_resident(conn)
        await store_obs(conn, bp_obs("R1", now - timedelta(minutes=2), 195, 100))
        await runner.evaluate_residents(conn, ["R1"], now, config(db_url))
        crisis = next(f for f in await db.open_flags(conn, "R1") if f.rule == "BP-CRISIS")
        with pytest.raises(staff.LifecycleError, match="reason"):
            await staff.snooze(conn, crisis.id, "N01", now + timedelta(hours=2), " ", now)
        snoozed = await staff.snooze(
            conn, crisis.id, "N01", now + timedelta(hours=2), "resident in hospital", now
        )
        assert snoozed is not None
        assert snoozed.state == "snoozed"


async def test_a_late_commit_inside_the_margin_is_still_fresh(db_url):
    now = datetime.now(UTC)
    cfg = config(db_url)
    async with await connect(db_url) as conn:
        await add_resident(conn)
        await store_obs(conn, bp_obs("R1", now - timedelta(minutes=20), 128, 80))
        await runner.evaluate_residents(conn, ["R1"], now, cfg)
        # an ingest transaction that started before the one above committed after it:
        # its stored_at is older than the cursor, but inside the margin
        await store_obs(conn, bp_obs("R1", now - timedelta(minutes=15), 60, 40))
        await conn.execute(
            "UPDATE observation SET stored_at = now() - interval '3 minutes' "
            "WHERE resident_id = 'R1' AND (component_values ->> '8480-6') = '60'"
        )
        report = await runner.evaluate_residents(conn, ["R1"], now + timedelta(minutes=1), cfg)
        assert report.opened >= 1
        rules = {f.rule for f in await db.open_flags(conn, "R1")}
        assert "BP-LOW-SEVERE" in rules


async def test_a_crash_mid_batch_loses_nothing(db_url):
    now = datetime.now(UTC)
    async with await connect(db_url) as conn:
        await add_resident(conn)
        await store_obs(conn, bp_obs("R1", now - timedelta(minutes=2), 190, 100))

        class Boom(Exception):
            pass

        with contextlib.suppress(Boom):
            async with conn.transaction():
                await runner.evaluate_residents(conn, ["R1"], now, config(db_url))
                raise Boom  # the process dies before the commit
        assert await count(conn, "SELECT count(*) FROM risk_flag") == 0
        assert await count(conn, "SELECT count(*) FROM clinical_cursor") == 0
        report = await runner.evaluate_residents(conn, ["R1"], now, config(db_url))
        assert report.opened >= 1
        assert await count(conn, "SELECT count(*) FROM risk_flag WHERE rule = 'BP-CRISIS'") == 1


async def test_old_readings_feed_means_but_do_not_page(db_url):
    now = datetime.now(UTC)
    async with await connect(db_url) as conn:
        await add_resident(conn)
        await store_obs(conn, bp_obs("R1", now - timedelta(days=10), 200, 110))
        await runner.evaluate_residents(conn, ["R1"], now, config(db_url))
        assert "BP-CRISIS" not in {f.rule for f in await db.open_flags(conn, "R1")}


async def test_service_wakes_on_notify_and_catches_up_at_start(db_url):
    now = datetime.now(UTC)
    async with await connect(db_url) as conn:
        await add_resident(conn, "R1")
        await add_resident(conn, "R2")
        # stored before the runner starts, without a NOTIFY: found by the catch-up
        await store_obs(conn, bp_obs("R1", now - timedelta(minutes=3), 190, 100), notify=False)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        runner.run(config(db_url, duty_interval_s=3600), stop=stop, ready=ready)
    )
    try:
        async with asyncio.timeout(30):
            await ready.wait()
        async with await connect(db_url) as conn:
            assert "BP-CRISIS" in {f.rule for f in await db.open_flags(conn, "R1")}
            await store_obs(conn, bp_obs("R2", datetime.now(UTC), 60, 40))
            # woken by this NOTIFY (its duty interval is an hour); the runner's first look at
            # every resident after its start may also NOTIFY for R2, before this reading was
            # stored, so the test waits for the flag rather than for a NOTIFY naming R2
            for _ in range(150):  # 15 s
                if "BP-LOW-SEVERE" in {f.rule for f in await db.open_flags(conn, "R2")}:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("no BP-LOW-SEVERE flag for R2 within 15 s")
    finally:
        stop.set()
        async with asyncio.timeout(15):
            await task


def test_config_from_settings_table():
    cfg = runner.config_from("postgresql://x", {"batch_size": 50, "margin_s": 120})
    assert (cfg.batch_size, cfg.margin_s) == (50, 120)
    with pytest.raises(ValueError, match="unknown"):
        runner.config_from("postgresql://x", {"batchsize": 50})


async def test_one_resident_the_engine_cannot_take_does_not_hold_the_others_back(
    db_url, monkeypatch
):
    """A batch that fails for a reason other than an outage is evaluated one resident at a
    time: the others get their flags; the one that fails is skipped (its readings stay)."""
    from ingest import store

    now = datetime.now(UTC)
    async with await connect(db_url) as conn:
        for rid in ("R1", "R2", "R3"):
            await add_resident(conn, rid)
            await store_obs(conn, bp_obs(rid, now - timedelta(minutes=2), 190, 100))
    real = runner.evaluate_residents

    async def cannot_take_r2(conn, ids, at, cfg, **kw):
        if "R2" in ids:
            raise ValueError("the engine cannot take R2's data")  # a stand-in for a bug
        return await real(conn, ids, at, cfg, **kw)

    monkeypatch.setattr(runner, "evaluate_residents", cannot_take_r2)
    pool = await store.open_pool(db_url, max_size=2, wait_s=10)
    try:
        report = await runner.Runner(config(db_url)).process(pool, ["R1", "R2", "R3"])
    finally:
        await pool.close()
    assert report.skipped == ["R2"]
    assert report.residents == 2
    async with await connect(db_url) as conn:
        for rid, crisis in (("R1", True), ("R2", False), ("R3", True)):
            assert ("BP-CRISIS" in {f.rule for f in await db.open_flags(conn, rid)}) is crisis
        assert await count(conn, "SELECT count(*) FROM observation WHERE resident_id = 'R2'") >= 1


async def test_the_chain_through_the_store_on_a_weekend_with_a_roster(db_url):
    """The §0 chain as the runner stores it, with a controllable clock: a crisis on a Saturday
    evening (no on-call nurse) waits for Monday 09:00; its notify events name the people the
    roster says (resident's nurse, then the team lead, then the liaison officer)."""
    policy = alert_policy({"team_lead": "N-LEAD", "backup_nurse": "N-BACKUP"})
    cfg = config(db_url, alerts=policy)
    saturday = datetime(2026, 3, 14, 20, 0, tzinfo=KST)
    monday = datetime(2026, 3, 16, 9, 0, tzinfo=KST)
    async with await connect(db_url) as conn:
        await add_resident(conn)
        await store_obs(conn, bp_obs("R1", saturday - timedelta(minutes=2), 195, 100))
        await runner.evaluate_residents(conn, ["R1"], saturday, cfg)
        crisis = next(f for f in await db.open_flags(conn, "R1") if f.rule == "BP-CRISIS")
        raised = [e for e in await db.flag_events(conn, crisis.id) if e.kind == "notify"]
        assert [(e.notice, list(e.recipients), e.deliver_after) for e in raised] == [
            ("raised", ["N01"], monday)
        ]
        nurse = next(t for t in await db.tasks(conn, resident_id="R1") if t.role == "nurse")
        assert nurse.due_at == monday + timedelta(hours=1)
        for minutes in (60, 24 * 60, 36 * 60):  # Saturday night and Sunday: nothing
            report = await runner.evaluate_residents(
                conn, ["R1"], saturday + timedelta(minutes=minutes), cfg
            )
            assert report.notifications == 0
        for minutes in (15, 30, 60):
            await runner.evaluate_residents(conn, ["R1"], monday + timedelta(minutes=minutes), cfg)
        events = [e for e in await db.flag_events(conn, crisis.id) if e.kind == "notify"]
        assert [(e.notice, list(e.recipients), e.at) for e in events[1:]] == [
            ("reminder", ["N01"], monday + timedelta(minutes=15)),
            ("escalated_lead", ["N-LEAD"], monday + timedelta(minutes=30)),
            ("escalated_liaison", ["L01-02"], monday + timedelta(minutes=60)),
        ]
        assert all(e.deliver_after is None for e in events[1:])


# --------------------------------------------------------------------------- the fast path


def entered(rid: str, when: datetime, code: str, *, value=None, unit=None, ctx=None):
    """One stored Observation as staff entries make them (symptom events, glucose)."""
    import json
    import uuid

    from ingest.fhir import StoredObservation

    return StoredObservation(
        str(uuid.uuid4()),
        when,
        rid,
        code,
        "http://loinc.org",
        value,
        unit,
        None,
        None,
        None,
        None,
        "final",
        f"test-{uuid.uuid4()}",
        "{}",
        when,
        (),
        None if ctx is None else json.dumps(ctx),
    )


async def test_a_critical_reading_goes_before_a_long_backlog(db_url):
    """Ingest's pre-screen NOTIFY puts a crisis reading's resident in the priority queue; the
    next unit of work evaluates her, not the twelve residents queued before her; the backlog
    then drains in chunks."""
    from ingest import store

    now = datetime.now(UTC)
    backlog = [f"R{i:02d}" for i in range(12)]
    async with await connect(db_url) as conn:
        for rid in [*backlog, "RC"]:
            await add_resident(conn, rid)
        for rid in backlog:
            await store_obs(conn, bp_obs(rid, now - timedelta(minutes=5), 128, 82), notify=False)
    r = runner.Runner(config(db_url, backlog_chunk=4))
    r.queue(backlog)
    stop = asyncio.Event()
    listener = asyncio.create_task(r.listen(stop))
    pool = await store.open_pool(db_url, max_size=2, wait_s=10)
    try:
        await asyncio.sleep(0.5)  # LISTEN is up
        async with await connect(db_url) as conn:
            crisis = bp_obs("RC", now - timedelta(minutes=1), 186, 101)
            async with conn.transaction():
                await insert_observations(conn, crisis)
                await notify_residents(conn, ["RC"], crisis)
        async with asyncio.timeout(10):
            while "RC" not in r.priority:
                await r.wake.wait()  # the listener sets it for every notification
                r.wake.clear()
        assert list(r.pending) == [*backlog, "RC"]  # the ordinary notification queued her too
        assert await r.step(pool)
        async with await connect(db_url) as conn:
            assert "BP-CRISIS" in {f.rule for f in await db.open_flags(conn, "RC")}
            assert await count(conn, "SELECT count(*) FROM clinical_cursor") == 1
        assert list(r.pending) == backlog  # evaluated: no second look from the backlog
        for _ in range(3):
            assert await r.step(pool)
        assert not await r.step(pool)
        async with await connect(db_url) as conn:
            assert await count(conn, "SELECT count(*) FROM clinical_cursor") == 13
    finally:
        stop.set()
        await listener
        await pool.close()


async def test_glucose_over_200_goes_first_only_with_a_dka_symptom_stored(db_url):
    """GLU-HYPER-SYMPTOMATIC (≥ 200 with a DKA-type symptom within ± 24 h, clinical-rules.md
    §4) is critical: the runner looks the symptom up before putting the resident first."""
    from ingest import store
    from ingest.store.observations import screen

    now = datetime.now(UTC)
    readings = []
    async with await connect(db_url) as conn:
        for rid in ("RG1", "RG2"):
            await add_resident(conn, rid)
            readings.append(
                entered(rid, now - timedelta(minutes=3), "41653-7", value=250.0, unit="mg/dL")
            )
        nausea = entered(
            "RG1", now - timedelta(hours=2), "daon-symptom", ctx={"symptoms": ["nausea"]}
        )
        await store_obs(conn, [*readings, nausea], notify=False)
    critical, if_symptoms = screen(readings)
    assert (critical, if_symptoms) == (set(), {"RG1", "RG2"})
    r = runner.Runner(config(db_url))
    r.if_symptoms.update(if_symptoms)
    pool = await store.open_pool(db_url, max_size=2, wait_s=10)
    try:
        assert await r.step(pool)
        async with await connect(db_url) as conn:
            assert "GLU-HYPER-SYMPTOMATIC" in {f.rule for f in await db.open_flags(conn, "RG1")}
            assert await count(conn, "SELECT count(*) FROM clinical_cursor") == 1
        assert list(r.pending) == ["RG2"]  # no symptom: evaluated with the backlog
    finally:
        await pool.close()


async def test_the_catch_up_watermark_moves_when_its_residents_are_all_evaluated(db_url):
    from ingest import store

    now = datetime.now(UTC)
    async with await connect(db_url) as conn:
        for rid in ("R1", "R2", "R3"):
            await add_resident(conn, rid)
            await store_obs(conn, bp_obs(rid, now - timedelta(minutes=2), 128, 82), notify=False)
    r = runner.Runner(config(db_url, backlog_chunk=2))
    pool = await store.open_pool(db_url, max_size=2, wait_s=10)
    try:
        assert await r.catch_up(pool) == 3
        assert not r.caught_up.is_set()
        await r.step(pool)
        async with await connect(db_url) as conn:
            assert await db.runner_watermark(conn) is None  # R3 still waits
        await r.step(pool)
        assert r.caught_up.is_set()
        async with await connect(db_url) as conn:
            assert await db.runner_watermark(conn) is not None
    finally:
        await pool.close()


async def until(check: Any, within: float = 20.0) -> None:
    """Poll an async or sync predicate until it holds (TimeoutError after ``within`` s)."""
    async with asyncio.timeout(within):
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.02)


async def test_a_critical_reading_does_not_wait_for_the_backlog_chunk_in_flight(db_url):
    """The two lanes (issue 11's benchmark): a backlog chunk stuck in its transaction (here:
    blocked on a row lock another session holds on one of its residents' cursors) does not
    hold up a crisis reading: the urgent lane raises and commits its flag meanwhile, on its
    own connection; the chunk then finishes."""
    from ingest import store

    now = datetime.now(UTC)
    backlog = ["RB1", "RB2"]
    async with await connect(db_url) as conn:
        for rid in [*backlog, "RC"]:
            await add_resident(conn, rid)
        for rid in backlog:
            await store_obs(conn, bp_obs(rid, now - timedelta(minutes=5), 128, 82), notify=False)
        await conn.execute(
            "INSERT INTO clinical_cursor (resident_id, watermark, evaluated_at) "
            "VALUES ('RB2', '2000-01-01', '2000-01-01')"
        )
    r = runner.Runner(config(db_url, backlog_chunk=25))
    r.queue(backlog)
    stop = asyncio.Event()
    pool = await store.open_pool(db_url, max_size=3, wait_s=10)
    blocker = await psycopg.AsyncConnection.connect(db_url)
    watcher = await connect(db_url)

    async def waiting_for_a_lock() -> bool:
        return bool(
            await count(
                watcher,
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()",
            )
        )

    async def crisis_flagged() -> bool:
        return "BP-CRISIS" in {f.rule for f in await db.open_flags(watcher, "RC")}

    try:
        await blocker.execute("SELECT 1 FROM clinical_cursor WHERE resident_id = 'RB2' FOR UPDATE")
        work = asyncio.create_task(r.work(pool, stop))
        await until(lambda: set(r.inflight) == set(backlog))
        await until(waiting_for_a_lock)  # the chunk is stuck in its transaction
        await store_obs(watcher, bp_obs("RC", now - timedelta(minutes=1), 186, 101), notify=False)
        r._prioritise(["RC"])
        await until(crisis_flagged)
        notified = "SELECT count(*) FROM flag_event WHERE resident_id = 'RC' AND kind = 'notify'"
        assert await count(watcher, notified) == 1
        assert set(r.inflight) == set(backlog)  # still stuck
        await blocker.rollback()
        await until(lambda: not (r.inflight or r.pending))
        assert await count(watcher, "SELECT count(*) FROM clinical_cursor") == 3
    finally:
        stop.set()
        await blocker.close()
        await watcher.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(work, 10)
        await pool.close()


async def test_a_priority_resident_in_the_chunk_in_flight_is_evaluated_after_it(db_url):
    """Never one resident in both lanes at once: the urgent lane leaves a resident the backlog
    chunk holds, and the backlog lane leaves residents waiting in the priority queue."""
    r = runner.Runner(config(db_url, backlog_chunk=2))
    r.queue(["R1", "R2", "R3", "R4"])
    r.inflight.update(["R1", "R2"])
    r.priority.update(["R2", "R3"])
    assert r.urgent_waiting  # R3 can go now
    assert r._take(r.pending) == ["R4"]  # R1, R2 in flight; R3 is the urgent lane's
    r.priority.discard("R3")
    assert not r.urgent_waiting  # R2 waits for the chunk in flight
    r.inflight.clear()
    assert r.urgent_waiting


async def test_the_backlog_lane_gives_way_while_the_urgent_lane_has_work(db_url):
    """Both lanes share one event loop: the backlog chunk pauses before the engine and between
    residents (``pause``) and waits there while priority work is waiting or running, at most
    ``give_way_max_s``."""
    from ingest import store

    async with await connect(db_url) as conn:
        for rid in ("R1", "R2", "R3"):
            await add_resident(conn, rid)
    r = runner.Runner(config(db_url, give_way_max_s=5.0))
    await asyncio.wait_for(r.give_way(), 1)  # nothing urgent: no wait
    r._prioritise(["RC"])  # a notification arrived: wait until the urgent lane has looked
    waiting = asyncio.create_task(r.give_way())
    await asyncio.sleep(0.2)
    assert not waiting.done()
    r.urgent_idle.set()
    await asyncio.wait_for(waiting, 1)

    bounded = runner.Runner(config(db_url, give_way_max_s=0.2))
    bounded._prioritise(["RC"])
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(bounded.give_way(), 2)
    assert asyncio.get_running_loop().time() - started >= 0.2

    pauses = 0

    async def pause() -> None:
        nonlocal pauses
        pauses += 1

    pool = await store.open_pool(db_url, max_size=2, wait_s=10)
    try:
        await r.process(pool, ["R1", "R2", "R3"], pause)
    finally:
        await pool.close()
    assert pauses == 4  # before the engine, then before each resident
