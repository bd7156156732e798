"""The delivering service against real receiver processes and the real database.

Receivers are ``simulators.resthook`` processes (real HTTP over loopback); notify events are
``flag_event`` rows as the clinical runner writes them. Time-dependent behaviour (backoff, a
receiver down for an hour) runs on a controllable clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import AsyncConnection

from api import subscription
from api.delivery import Deliverer, DeliveryConfig
from api.store import delivery
from daon.embedded import free_port
from tests.api.resthook import Receiver, notify, open_flag, receiver
from tests.api.world import IN_HWANGHAK, IN_YAKSU, World, build_world

pytestmark = pytest.mark.db


class Clock:
    """Real time plus an offset the test moves forward by hand (the database stamps new
    events with its own clock, so the service's clock must not fall behind it)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    @property
    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[AsyncConnection[Any]]:
    async with await AsyncConnection.connect(db_url, autocommit=True) as c:
        yield c


@pytest.fixture
async def world(conn: AsyncConnection[Any]) -> World:
    return await build_world(conn)


@contextlib.asynccontextmanager
async def running(
    url: str, clock: Callable[[], datetime] | None = None, **config: Any
) -> AsyncIterator[Deliverer]:
    settings = {"poll": 0.5, "total_timeout": 2.0, "read_timeout": 2.0, **config}
    deliverer = Deliverer(DeliveryConfig(url, **settings), **({"clock": clock} if clock else {}))
    stop = asyncio.Event()
    task = asyncio.create_task(deliverer.run(stop))
    try:
        await asyncio.wait_for(deliverer.active.wait(), 10)
        yield deliverer
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def subscribe(conn: AsyncConnection[Any], world: World, endpoint: str, **fields: Any) -> str:
    resource = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "district SMS relay",
        "criteria": fields.pop("criteria", "Flag"),
        "channel": {"type": "rest-hook", "endpoint": endpoint, **fields},
    }
    stored = await delivery.create_subscription(
        conn, world.actor("A01"), subscription.parse(resource)
    )
    return stored.id


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await check()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.05)


def got(rx: Receiver, n: int) -> Callable[[], Awaitable[list[dict[str, Any]]]]:
    async def check() -> list[dict[str, Any]]:
        found = await asyncio.to_thread(rx.received)
        return found if len(found) >= n else []

    return check


async def status_of(conn: AsyncConnection[Any], sub_id: str) -> tuple[str, int, str | None]:
    cur = await conn.execute(
        "SELECT status, failures, error FROM subscription WHERE id = %s", (sub_id,)
    )
    row = await cur.fetchone()
    assert row is not None
    return row[0], row[1], row[2]


async def test_payload_subscription_gets_the_flag_by_put_with_an_idempotency_key(
    conn: AsyncConnection[Any], world: World, db_url: str
) -> None:
    with receiver() as rx:
        sub = await subscribe(conn, world, rx.url, payload="application/fhir+json",
                              header=["Authorization: Bearer relay-secret"])  # fmt: skip
        async with running(db_url):
            flag = await open_flag(conn, IN_YAKSU)
            (event,) = await notify(conn, flag, IN_YAKSU)
            (request,) = await eventually(got(rx, 1))
        assert request["method"] == "PUT"  # R4: a payload is sent as an update of the resource
        assert request["path"] == f"/hook/Flag/{flag}"
        assert request["headers"]["idempotency-key"] == f"{sub}-{event}"
        assert request["headers"]["authorization"] == "Bearer relay-secret"
        assert request["headers"]["content-type"].startswith("application/fhir+json")
        cur = await conn.execute("SELECT fhir_flag FROM risk_flag WHERE id = %s", (flag,))
        row = await cur.fetchone()
        assert row is not None
        assert json.loads(request["body"]) == row[0]  # the stored Flag, as stored
        assert (await status_of(conn, sub))[0] == "active"
        cur = await conn.execute(
            "SELECT d.state, d.attempts, a.outcome, a.status_code FROM delivery d "
            "JOIN delivery_attempt a ON a.delivery_id = d.id WHERE d.subscription_id = %s",
            (sub,),
        )
        assert await cur.fetchall() == [("delivered", 1, "delivered", 200)]
        cur = await conn.execute(
            "SELECT agent_user_id, resident_id, outcome FROM audit_event "
            "WHERE subtype = 'notify' AND entity = %s",
            (f"Subscription/{sub}",),
        )
        assert await cur.fetchall() == [("A01", IN_YAKSU, "0")]


async def test_without_payload_an_empty_post(
    conn: AsyncConnection[Any], world: World, db_url: str
) -> None:
    with receiver() as rx:
        await subscribe(conn, world, rx.url)
        async with running(db_url):
            flag = await open_flag(conn, IN_YAKSU)
            await notify(conn, flag, IN_YAKSU)
            (request,) = await eventually(got(rx, 1))
        assert (request["method"], request["path"], request["body"]) == ("POST", "/hook", "")


async def test_one_notification_per_notify_event_of_a_matching_flag(
    conn: AsyncConnection[Any], world: World, db_url: str
) -> None:
    with receiver() as everyone, receiver() as one:
        await subscribe(conn, world, everyone.url)
        await subscribe(conn, world, one.url, criteria=f"Flag?patient=Patient/{IN_HWANGHAK}")
        async with running(db_url):
            yaksu = await open_flag(conn, IN_YAKSU)
            hwanghak = await open_flag(conn, IN_HWANGHAK)
            await notify(conn, yaksu, IN_YAKSU, notice="raised")
            await notify(conn, yaksu, IN_YAKSU, kind="acknowledge", notice="acknowledge")
            await notify(conn, hwanghak, IN_HWANGHAK, notice="raised")
            await notify(conn, hwanghak, IN_HWANGHAK, notice="reminder", count=2)
            all_requests = await eventually(got(everyone, 4))
            mine = await eventually(got(one, 3))
            await asyncio.sleep(1.0)  # nothing more arrives
        assert len(await asyncio.to_thread(everyone.received)) == 4  # not the acknowledgement
        assert len(await asyncio.to_thread(one.received)) == 3
        assert [r["headers"]["x-daon-notice"] for r in mine] == ["raised", "reminder", "reminder"]
        keys = [r["headers"]["idempotency-key"] for r in all_requests]
        assert len(set(keys)) == 4


async def test_events_made_while_the_service_is_down_are_delivered_when_it_starts(
    conn: AsyncConnection[Any], world: World, db_url: str
) -> None:
    with receiver() as rx:
        await subscribe(conn, world, rx.url)
        flag = await open_flag(conn, IN_YAKSU)
        await notify(conn, flag, IN_YAKSU, count=3)
        async with running(db_url):
            assert len(await eventually(got(rx, 3))) == 3


async def test_a_failing_receiver_backs_off_is_marked_and_holds_up_nobody(
    conn: AsyncConnection[Any], world: World, db_url: str
) -> None:
    clock = Clock()
    with receiver(mode="500") as bad, receiver() as good:
        bad_sub = await subscribe(conn, world, bad.url)
        await subscribe(conn, world, good.url)
        flag = await open_flag(conn, IN_YAKSU)
        async with running(db_url, clock) as deliverer:
            await notify(conn, flag, IN_YAKSU)
            assert await eventually(got(good, 1))
            # Each round the bad receiver fails once, then waits out its backoff (1, 2, 4, 8 s)
            for failures in range(1, subscription.ERROR_AFTER + 1):
                assert await eventually(
                    lambda f=failures: _failures_at_least(conn, bad_sub, f)  # type: ignore[misc]
                )
                await notify(conn, flag, IN_YAKSU)  # more events meanwhile: good gets each
                assert await eventually(got(good, failures + 1))
                clock.advance(subscription.retry_delay(failures))
                deliverer.wake()
            state, failures_now, error = await status_of(conn, bad_sub)
            assert state == "error"
            assert failures_now >= subscription.ERROR_AFTER
            assert error is not None
            assert "HTTP 500" in error
            bad.mode("ok")
            clock.advance(subscription.BACKOFF_CAP)
            deliverer.wake()
            received = await eventually(got(bad, subscription.ERROR_AFTER + 1))
        assert len(received) == subscription.ERROR_AFTER + 1  # every event, once, in order
        assert (await status_of(conn, bad_sub))[:2] == ("active", 0)
        cur = await conn.execute(
            "SELECT count(*) FROM delivery_attempt a JOIN delivery d ON d.id = a.delivery_id "
            "WHERE d.subscription_id = %s AND a.outcome = 'http-error'",
            (bad_sub,),
        )
        row = await cur.fetchone()
        assert row is not None
        assert row[0] >= subscription.ERROR_AFTER


async def _failures_at_least(conn: AsyncConnection[Any], sub: str, n: int) -> bool:
    return (await status_of(conn, sub))[1] >= n


async def test_a_hanging_receiver_times_out_without_delaying_others(
    conn: AsyncConnection[Any], world: World, db_url: str
) -> None:
    with receiver(mode="hang") as hung, receiver() as good:
        hung_sub = await subscribe(conn, world, hung.url)
        await subscribe(conn, world, good.url)
        flag = await open_flag(conn, IN_YAKSU)
        async with running(db_url, total_timeout=1.5):
            loop = asyncio.get_running_loop()
            for i in range(3):
                start = loop.time()
                await notify(conn, flag, IN_YAKSU)
                assert await eventually(got(good, i + 1))
                assert loop.time() - start < 1.0  # not behind the 1.5 s timeout
            assert await eventually(lambda: _failures_at_least(conn, hung_sub, 1), within=5)
        cur = await conn.execute(
            "SELECT a.outcome, a.duration_ms FROM delivery_attempt a "
            "JOIN delivery d ON d.id = a.delivery_id WHERE d.subscription_id = %s",
            (hung_sub,),
        )
        outcomes = await cur.fetchall()
        assert outcomes
        assert all(o == "timeout" for o, _ in outcomes)
        assert all(1400 <= ms < 3000 for _, ms in outcomes)


@pytest.mark.parametrize(("mode", "outcome"), [("redirect", "redirect"), ("refused", "refused")])
async def test_redirects_and_refusals_are_failures(
    conn: AsyncConnection[Any], world: World, db_url: str, mode: str, outcome: str
) -> None:
    with receiver(mode="redirect" if mode == "redirect" else "ok") as rx:
        url = rx.url if mode == "redirect" else f"http://127.0.0.1:{free_port()}/hook"
        sub = await subscribe(conn, world, url)
        flag = await open_flag(conn, IN_YAKSU)
        async with running(db_url):
            await notify(conn, flag, IN_YAKSU)
            assert await eventually(lambda: _failures_at_least(conn, sub, 1))
        assert await asyncio.to_thread(rx.received) == []  # the redirect was not followed
    cur = await conn.execute(
        "SELECT a.outcome FROM delivery_attempt a JOIN delivery d ON d.id = a.delivery_id "
        "WHERE d.subscription_id = %s",
        (sub,),
    )
    assert {r[0] for r in await cur.fetchall()} == {outcome}


async def test_a_receiver_down_for_an_hour_gets_everything_afterwards(
    conn: AsyncConnection[Any], world: World, db_url: str
) -> None:
    clock = Clock()
    port = free_port()
    sub = await subscribe(conn, world, f"http://127.0.0.1:{port}/hook")
    flag = await open_flag(conn, IN_YAKSU)
    async with running(db_url, clock) as deliverer:
        down_until = clock.now + timedelta(hours=1)
        sent = 0
        while clock.now < down_until:  # an event a minute, nobody listening
            await notify(conn, flag, IN_YAKSU)
            sent += 1
            clock.advance(timedelta(minutes=1))
            deliverer.wake()
            await asyncio.sleep(0.02)
        cur = await conn.execute(
            "SELECT count(*) FROM delivery_attempt a JOIN delivery d ON d.id = a.delivery_id "
            "WHERE d.subscription_id = %s",
            (sub,),
        )
        row = await cur.fetchone()
        assert row is not None
        # capped exponential backoff: about one try per 5 minutes once the cap is reached
        assert 5 <= row[0] <= 25
        assert (await status_of(conn, sub))[0] == "error"
        with receiver(port=port) as rx:
            clock.advance(subscription.BACKOFF_CAP)
            deliverer.wake()
            received = await eventually(got(rx, sent), within=20)
    assert len(received) == sent
    keys = [r["headers"]["idempotency-key"] for r in received]
    assert len(set(keys)) == sent  # each once, none lost
    assert (await status_of(conn, sub))[0] == "active"


async def test_a_restart_mid_send_resends_with_the_same_key(
    conn: AsyncConnection[Any], world: World, db_url: str
) -> None:
    with receiver(mode="hang") as rx:
        sub = await subscribe(conn, world, rx.url)
        flag = await open_flag(conn, IN_YAKSU)
        (event,) = await notify(conn, flag, IN_YAKSU)
        async with running(db_url, total_timeout=30.0, read_timeout=30.0):
            await asyncio.sleep(1.0)  # the request is in flight when the service stops
        rx.mode("ok")
        async with running(db_url):
            (request,) = await eventually(got(rx, 1))
        assert request["headers"]["idempotency-key"] == f"{sub}-{event}"


async def test_database_connections_lost_the_service_reconnects_and_delivers(
    conn: AsyncConnection[Any], world: World, db_url: str
) -> None:
    with receiver() as rx:
        await subscribe(conn, world, rx.url)
        flag = await open_flag(conn, IN_YAKSU)
        async with running(db_url, outage_backoff_cap=0.5) as deliverer:
            await notify(conn, flag, IN_YAKSU)
            assert await eventually(got(rx, 1))
            # an outage as the service sees it: the server drops all its connections
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            await notify(conn, flag, IN_YAKSU)
            assert await eventually(deliverer.active.wait, within=15)
            assert len(await eventually(got(rx, 2), within=15)) == 2


async def test_a_deleted_subscription_gets_nothing_more(
    conn: AsyncConnection[Any], world: World, db_url: str
) -> None:
    with receiver() as rx:
        sub = await subscribe(conn, world, rx.url)
        flag = await open_flag(conn, IN_YAKSU)
        async with running(db_url):
            await notify(conn, flag, IN_YAKSU)
            assert await eventually(got(rx, 1))
            await delivery.delete_subscription(conn, world.actor("A01"), sub)
            await notify(conn, flag, IN_YAKSU)
            await asyncio.sleep(1.5)
        assert len(await asyncio.to_thread(rx.received)) == 1


async def deliveries(conn: AsyncConnection[Any], sub: str) -> list[tuple[str, str | None]]:
    cur = await conn.execute(
        "SELECT state, expired_reason FROM delivery WHERE subscription_id = %s ORDER BY id",
        (sub,),
    )
    return [(r[0], r[1]) for r in await cur.fetchall()]


async def test_a_subscription_past_its_end_goes_off_and_its_pending_deliveries_expire(
    conn: AsyncConnection[Any], world: World, db_url: str
) -> None:
    """R4: ``end`` is the time for the server to turn the subscription off. What a receiver
    that was down had not received by then is resolved explicitly (``expired``, when and why,
    counted on the administrators' page), never sent afterwards and never left pending."""
    clock = Clock()
    port = free_port()  # nobody listens: every attempt is refused, deliveries stay pending
    end = clock.now + timedelta(minutes=30)
    admin = world.actor("A01")
    stored = await delivery.create_subscription(
        conn,
        admin,
        subscription.parse(
            {
                "resourceType": "Subscription",
                "status": "requested",
                "reason": "district SMS relay, until the end of the pilot",
                "criteria": "Flag",
                "end": end.isoformat(),
                "channel": {"type": "rest-hook", "endpoint": f"http://127.0.0.1:{port}/hook"},
            }
        ),
    )
    sub = stored.id
    flag = await open_flag(conn, IN_YAKSU)
    async with running(db_url, clock) as deliverer:
        await notify(conn, flag, IN_YAKSU, count=3)
        assert await eventually(lambda: _failures_at_least(conn, sub, 1))
        assert [s for s, _ in await deliveries(conn, sub)] == ["pending"] * 3
        clock.advance(timedelta(minutes=31))  # past the end
        deliverer.wake()
        assert await eventually(lambda: _status_is(conn, sub, "off"))
        expired = await eventually(lambda: _all_expired(conn, sub, 3))
        assert len(expired) == 3
        when = end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert {why for _, why in expired} == {f"subscription ended at {when}"}
        # the receiver comes back: nothing of an ended subscription is sent, and an event
        # after the end makes no delivery for it at all
        with receiver(port=port) as rx:
            await notify(conn, flag, IN_YAKSU)
            clock.advance(subscription.BACKOFF_CAP)
            deliverer.wake()
            await asyncio.sleep(1.5)
            assert await asyncio.to_thread(rx.received) == []
        assert len(await deliveries(conn, sub)) == 3
    cur = await conn.execute(
        "SELECT count(*) FROM delivery WHERE subscription_id = %s AND (state <> 'expired' "
        "OR expired_at IS NULL OR delivered_at IS NOT NULL)",
        (sub,),
    )
    row = await cur.fetchone()
    assert row is not None
    assert row[0] == 0
    (listed,) = [s for s in await delivery.receivers(conn, admin) if s.id == sub]
    assert (listed.status, listed.pending, listed.expired) == ("off", 0, 3)
    read = subscription.resource(await delivery.read_subscription(conn, admin, sub))
    assert read["status"] == "off"
    assert read["end"] == end.astimezone(UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


async def _status_is(conn: AsyncConnection[Any], sub: str, status: str) -> bool:
    return (await status_of(conn, sub))[0] == status


async def _all_expired(
    conn: AsyncConnection[Any], sub: str, n: int
) -> list[tuple[str, str | None]]:
    found = await deliveries(conn, sub)
    return found if len(found) == n and all(s == "expired" for s, _ in found) else []


async def test_deleting_a_subscription_expires_what_was_pending_for_it(
    conn: AsyncConnection[Any], world: World, db_url: str
) -> None:
    port = free_port()
    sub = await subscribe(conn, world, f"http://127.0.0.1:{port}/hook")
    flag = await open_flag(conn, IN_YAKSU)
    await notify(conn, flag, IN_YAKSU, count=2)
    assert [s for s, _ in await deliveries(conn, sub)] == ["pending", "pending"]
    await delivery.delete_subscription(conn, world.actor("A01"), sub)
    assert await deliveries(conn, sub) == [("expired", "subscription deleted")] * 2
    with receiver(port=port) as rx:
        async with running(db_url):
            await asyncio.sleep(1.5)
        assert await asyncio.to_thread(rx.received) == []
