"""The routine tier's weekly digest (clinical-rules.md §0: routine → worklist and a weekly digest).

Pure: when a week's digest is due (staffed hours, a Monday public holiday from the ``holidays``
library), what it holds. Against a real PostgreSQL on a controllable clock: the runner's duty
makes one digest per nurse once, only when due; and the delivering service sends it to a real
rest-hook receiver subscribed to ``Communication`` as a FHIR Communication, with an
Idempotency-Key, while a subscription on Flag gets nothing of it.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime, timedelta
from typing import Any

import holidays
import psycopg
import pytest
from fhir.resources.R4B.communication import Communication

from api import subscription
from api.store import delivery
from clinical import digest, runner
from clinical.alerts import KST, AlertPolicy, StaffedHours
from tests.api.resthook import receiver
from tests.api.test_delivery import eventually, got, running
from tests.api.world import IN_YAKSU, build_world

KR = frozenset(holidays.country_holidays("KR", years=[2026]).keys())
HOURS = StaffedHours(holidays=KR)  # weekdays 09:00-18:00 Asia/Seoul
WEEK = date(2026, 11, 23)  # Monday; the next Monday, 30 November 2026, is a working day
HOLIDAY_WEEK = date(2026, 9, 28)  # the next Monday, 5 October 2026, is a substitute holiday


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=KST)


# --------------------------------------------------------------------------- pure


def test_a_weeks_digest_is_due_at_the_first_staffed_opening_after_it() -> None:
    assert date(2026, 10, 5) in KR  # the library says so (National Foundation Day, substitute)
    assert digest.due(WEEK, HOURS) == at(date(2026, 11, 30), 9)
    assert digest.due(HOLIDAY_WEEK, HOURS) == at(date(2026, 10, 6), 9)  # Tuesday
    assert digest.due(WEEK, None) == at(date(2026, 11, 30), 0)  # staffed around the clock
    # over the weekend and before 09:00 on Monday the week before last is the one due
    assert digest.last_week_due(at(date(2026, 11, 29), 12), HOURS) == WEEK - timedelta(days=7)
    assert digest.last_week_due(at(date(2026, 11, 30), 8, 59), HOURS) is None
    assert digest.last_week_due(at(date(2026, 11, 30), 9), HOURS) == WEEK
    assert digest.last_week_due(at(date(2026, 10, 5), 10), HOURS) is None  # holiday Monday
    assert digest.last_week_due(at(date(2026, 10, 6), 9), HOURS) == HOLIDAY_WEEK


def item(flag: int, resident: str, opened: datetime, closed: datetime | None = None):
    return digest.DigestItem(
        flag_id=flag,
        resident_id=resident,
        resident_name=f"주민{resident[-1]}",
        rule="BP-HOME-HTN",
        title_ko="가정혈압 평균 고혈압 범위",
        summary="가정혈압 평균 138/86",
        opened_at=opened,
        state="open" if closed is None else "resolved",
        closed_at=closed,
    )


def test_one_digest_per_nurse_with_the_items_open_during_the_week() -> None:
    start, end = digest.period(WEEK)
    items = [
        ("N01", item(1, "R1", start + timedelta(days=2))),  # new this week, still open
        ("N01", item(2, "R2", start - timedelta(days=20))),  # from before, still open
        ("N01", item(3, "R2", start - timedelta(days=9), start + timedelta(days=1))),  # closed
        ("N01", item(4, "R3", start - timedelta(days=9), start - timedelta(days=1))),  # before
        ("N01", item(5, "R3", end + timedelta(hours=1))),  # after the week
        ("N02", item(6, "R4", start + timedelta(days=6))),
        ("N03", item(7, "R5", end)),  # opened at the end: next week's
    ]
    made = at(date(2026, 11, 30), 9, 1)
    found = digest.build(items, WEEK, made, HOURS)
    assert [d.recipient for d in found] == ["N01", "N02"]  # N03's item is next week's
    n01 = next(d for d in found if d.recipient == "N01")
    assert [i.flag_id for i in n01.items] == [1, 2, 3]
    assert (n01.new, n01.still_open, n01.closed) == (1, 2, 1)
    assert n01.deliver_after == made
    text = n01.text()
    assert text.startswith("[다온] 주간 요약 2026-11-23~11-29: 일상 관리 항목 3건")
    assert "주민1 (R1): 가정혈압 평균 고혈압 범위 (새)" in text
    assert "(종료)" in text


# --------------------------------------------------------------------------- with the store


async def routine_flag(
    conn: Any,
    resident: str,
    opened: datetime,
    *,
    rule: str = "BP-HOME-HTN",
    severity: str = "routine",
    state: str = "open",
    closed: datetime | None = None,
) -> int:
    cur = await conn.execute(
        """INSERT INTO risk_flag (resident_id, rule, rule_set, severity, recipients, state,
                                  opened_at, alerted_at, summary, closed_at)
           VALUES (%s, %s, 'test', %s, '{nurse}', %s, %s, %s, '가정혈압 평균 138/86', %s)
           RETURNING id""",
        (resident, rule, severity, state, opened, opened, closed),
    )
    row = await cur.fetchone()
    return int(row[0])


def config(url: str, hours: StaffedHours | None = HOURS) -> runner.RunnerConfig:
    return runner.RunnerConfig(url, alerts=AlertPolicy(hours=hours))


async def digests(conn: Any) -> list[tuple[str, date, datetime, list[int]]]:
    cur = await conn.execute(
        "SELECT recipient_id, week_start, deliver_after, items FROM digest ORDER BY id"
    )
    return [(r[0], r[1], r[2], [i["flag_id"] for i in r[3]]) for r in await cur.fetchall()]


@pytest.mark.db
async def test_the_runner_makes_each_nurses_digest_once_when_it_is_due(db_url: str) -> None:
    start, _ = digest.period(HOLIDAY_WEEK)
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await build_world(conn)
        new = await routine_flag(conn, IN_YAKSU, start + timedelta(days=1))
        older = await routine_flag(conn, IN_YAKSU, start - timedelta(days=30), rule="BP-OFFICE-HTN")
        await routine_flag(  # critical: pushed on its own, never in a digest
            conn, IN_YAKSU, start + timedelta(days=2), rule="BP-CRISIS", severity="critical"
        )
        await routine_flag(  # superseded: treated as never having met its criterion
            conn,
            IN_YAKSU,
            start + timedelta(days=2),
            rule="BP-WHITECOAT",
            state="superseded",
            closed=start + timedelta(days=3),
        )
        cfg = config(db_url)
        # the Monday after the week is a public holiday: nothing at 09:00 or during the day
        for when in (at(date(2026, 10, 5), 9), at(date(2026, 10, 5), 17)):
            assert await runner.make_weekly_digests(conn, when, cfg) == 0
        # the next staffed opening, Tuesday 09:00: one digest for the resident's nurse
        tuesday = at(date(2026, 10, 6), 9, 0)
        assert await runner.make_weekly_digests(conn, tuesday, cfg) == 1
        assert await runner.make_weekly_digests(conn, tuesday + timedelta(minutes=1), cfg) == 0
        assert await digests(conn) == [("N01", HOLIDAY_WEEK, tuesday, [older, new])]
        cur = await conn.execute("SELECT id, communication FROM digest")
        row = await cur.fetchone()
        digest_id, resource = row
        Communication.model_validate(resource)  # a valid R4(B) Communication
        assert resource["recipient"] == [{"reference": "Practitioner/N01"}]
        assert [a["reference"] for a in resource["about"]] == [f"Flag/{older}", f"Flag/{new}"]
        assert resource["payload"][0]["contentString"].startswith("[다온] 주간 요약 2026-09-28")
        assert resource["id"] == str(digest_id)
        assert resource["identifier"][0]["value"] == "digest-N01-2026-W40"


@pytest.mark.db
async def test_the_digest_goes_out_through_the_outbox_to_communication_subscribers(
    db_url: str,
) -> None:
    """A real receiver subscribed to Communication gets the digest once (PUT
    <endpoint>/Communication/<id>, the Communication in the body, X-Daon-Notice weekly_digest,
    an Idempotency-Key); a Flag subscriber gets nothing of it, and a Flag notify event does not
    reach the Communication subscriber; the disclosure is audited per resident."""
    from tests.api.resthook import notify, open_flag

    start, _ = digest.period(WEEK)
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        world = await build_world(conn)
        admin = world.actor("A01")
        await routine_flag(conn, IN_YAKSU, start + timedelta(days=1))
        with receiver() as digests_rx, receiver() as flags_rx:

            async def subscribe(endpoint: str, criteria: str) -> str:
                stored = await delivery.create_subscription(
                    conn,
                    admin,
                    subscription.parse(
                        {
                            "resourceType": "Subscription",
                            "status": "requested",
                            "reason": "주간 요약 중계 / digest relay",
                            "criteria": criteria,
                            "channel": {
                                "type": "rest-hook",
                                "endpoint": endpoint,
                                "payload": "application/fhir+json",
                            },
                        }
                    ),
                )
                return stored.id

            digest_sub = await subscribe(digests_rx.url, "Communication?recipient=N01")
            await subscribe(flags_rx.url, "Flag")
            async with running(db_url):
                made = await runner.make_weekly_digests(
                    conn, at(date(2026, 11, 30), 9, 5), config(db_url)
                )
                assert made == 1
                flag = await open_flag(conn, IN_YAKSU, rule="BP-CRISIS")
                await notify(conn, flag, IN_YAKSU)
                (request,) = await eventually(got(digests_rx, 1))
                (flag_request,) = await eventually(got(flags_rx, 1))
                await asyncio.sleep(1.0)  # nothing more arrives
            assert len(await asyncio.to_thread(digests_rx.received)) == 1
            assert len(await asyncio.to_thread(flags_rx.received)) == 1
        cur = await conn.execute("SELECT id, communication FROM digest")
        row = await cur.fetchone()
        digest_id, resource = row
        assert request["method"] == "PUT"
        assert request["path"] == f"/hook/Communication/{digest_id}"
        assert request["headers"]["x-daon-notice"] == "weekly_digest"
        assert request["headers"]["idempotency-key"] == f"{digest_sub}-digest-{digest_id}"
        assert json.loads(request["body"]) == resource
        assert flag_request["path"] == f"/hook/Flag/{flag}"
        cur = await conn.execute(
            "SELECT resident_id, outcome FROM audit_event WHERE subtype = 'notify' AND entity = %s",
            (f"Subscription/{digest_sub}",),
        )
        assert await cur.fetchall() == [(IN_YAKSU, "0")]


def test_communication_criteria_are_validated() -> None:
    base = {
        "resourceType": "Subscription",
        "reason": "digest relay",
        "channel": {"type": "rest-hook", "endpoint": "https://relay.example.org/x"},
    }
    parsed = subscription.parse({**base, "criteria": "Communication?recipient=Practitioner/N01"})
    assert (parsed.criteria, parsed.recipient_id, parsed.resident_id) == (
        "Communication?recipient=N01",
        "N01",
        None,
    )
    assert subscription.parse({**base, "criteria": "Communication"}).recipient_id is None
    for bad in ("Communication?patient=R1", "Communication?recipient=a b", "Observation"):
        with pytest.raises(subscription.InvalidSubscription) as caught:
            subscription.parse({**base, "criteria": bad})
        assert caught.value.element == "criteria"


@pytest.mark.db
async def test_the_runners_duty_tick_makes_the_digest_on_its_pooled_connection(
    db_url: str,
) -> None:
    """The wiring as the service runs it (the database clock, a pooled connection that is not
    in autocommit): the duty tick stores the digest of the last week due, and only once."""
    from ingest import store

    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await build_world(conn)
        now = datetime.now(KST)
        await routine_flag(conn, IN_YAKSU, now - timedelta(days=20))  # open in any last week
        r = runner.Runner(config(db_url))
        pool = await store.open_pool(db_url, max_size=2, wait_s=10)
        try:
            await r.duties(pool)
            await r.duties(pool)
        finally:
            await pool.close()
        due = digest.last_week_due(now, HOURS)  # None on a Monday morning before 09:00
        found = await digests(conn)
        assert [(d[0], d[1]) for d in found] == ([] if due is None else [("N01", due)])


@pytest.mark.db
def test_the_nurse_reads_her_digest_on_its_page(db_url: str) -> None:
    """The web channel: /digest shows the nurse her delivered digests (residents still in her
    scope), Korean first; another nurse's digest is not hers; the read is audited."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.security import SESSION_COOKIE
    from api.store import access
    from tests.api.conftest import make_config, run_db

    url = db_url

    async def prepare(conn: Any) -> str:
        await build_world(conn)
        start, _ = digest.period(WEEK)
        await routine_flag(conn, IN_YAKSU, start + timedelta(days=1))
        await runner.make_weekly_digests(conn, at(date(2026, 11, 30), 9, 5), config(url))
        session = await access.create_session(conn, "N01", lifetime=timedelta(hours=1))
        await conn.commit()
        return session.token

    token = run_db(url, prepare)
    with TestClient(create_app(make_config(url))) as client:
        client.cookies.set(SESSION_COOKIE, token)
        page = client.get("/digest")
        assert page.status_code == 200
        assert "주간 요약" in page.text
        assert "2026-11-23 ~ 11-29" in page.text
        assert "가정혈압 평균 고혈압 범위" in page.text
        assert f'href="/residents/{IN_YAKSU}"' in page.text
        assert "새 항목 / new" in page.text
        worklist = client.get("/worklist")
        assert 'href="/digest"' in worklist.text

    async def audited(conn: Any) -> list[Any]:
        cur = await conn.execute("SELECT resident_id FROM audit_event WHERE entity = 'page:digest'")
        return [r[0] for r in await cur.fetchall()]

    assert run_db(url, audited) == [IN_YAKSU]
