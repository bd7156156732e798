"""The alert stream's loop (api.alerts.stream) with a scripted snapshot: no change is missed
while a look is running, and a stream that ends on time tells the page to reconnect. The
same stream against the real app and database: tests/api/test_alert_push.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from api.alerts import RECENT_CHANGES, AlertHub, HubLimits, residents_of, stream
from api.store.access import Actor, Role

NURSE = Actor("N01", Role.NURSE, "간호사", ("약수동",))


async def test_a_change_during_a_look_is_not_missed() -> None:
    """A NOTIFY that arrives while the stream is querying (here: the first look bumps the
    hub, as the runner's commit would mid-query) makes the stream look again at once, not
    at the next change or the poll (60 s here)."""
    hub = AlertHub("postgresql://unused", HubLimits(poll_s=60, heartbeat_s=60, lifetime_s=60))
    looks = 0

    async def snapshot() -> tuple[list[dict[str, Any]], int | None]:
        nonlocal looks
        looks += 1
        if looks == 1:
            hub.bump()  # the crisis flag commits while this look runs
            return [], 0
        return [{"flag": 7}], 1

    events: list[tuple[str, Any]] = []
    gen = stream(hub, NURSE, snapshot)

    async def read() -> None:
        async for chunk in gen:
            text = chunk.decode()
            if text.startswith("event: "):
                head, data = text.split("\n")[:2]
                events.append((head[7:], json.loads(data[6:])))
            if ("alerts", [{"flag": 7}]) in events:
                return

    await asyncio.wait_for(read(), 5)
    await gen.aclose()
    assert looks == 2
    assert hub.active == 0  # unregistered however it ends


async def test_a_stream_asks_for_its_successor_before_it_ends() -> None:
    """``renew`` ``renew_before_s`` before the end (the page opens the next stream while this
    one still runs), ``reconnect`` at the end."""
    hub = AlertHub(
        "postgresql://unused",
        HubLimits(lifetime_s=1.0, renew_before_s=0.4, heartbeat_s=10, poll_s=10),
    )

    async def snapshot() -> tuple[list[dict[str, Any]], int | None]:
        return [], 0

    loop = asyncio.get_running_loop()
    started = loop.time()
    at: dict[bytes, float] = {}
    async for chunk in stream(hub, NURSE, snapshot):
        at.setdefault(chunk, loop.time() - started)
    assert next(iter(at)) == b"retry: 1000\n\n"
    renew, reconnect = b"event: renew\ndata: {}\n\n", b"event: reconnect\ndata: {}\n\n"
    assert list(at)[-2:] == [renew, reconnect]
    assert 0.5 <= at[renew] < 0.9  # woken for it, not at the poll or heartbeat
    assert at[reconnect] >= 1.0
    assert hub.active == 0


def test_the_hub_tells_a_stream_whose_flags_changed_since_it_last_looked() -> None:
    hub = AlertHub("postgresql://unused")
    start = hub.seq
    assert hub.changes_since(start) == (start, frozenset())
    hub.bump(frozenset({"R1"}))
    hub.bump(frozenset({"R2", "R3"}))
    seq, changed = hub.changes_since(start)
    assert (seq, changed) == (start + 2, frozenset({"R1", "R2", "R3"}))
    assert hub.changes_since(seq) == (seq, frozenset())
    hub.bump(None)  # a gap in listening: anyone may have changed
    hub.bump(frozenset({"R4"}))
    assert hub.changes_since(seq)[1] is None
    assert hub.changes_since(seq + 1)[1] == frozenset({"R4"})


def test_a_stream_too_far_behind_is_told_anyone_changed() -> None:
    hub = AlertHub("postgresql://unused")
    for i in range(RECENT_CHANGES + 1):
        hub.bump(frozenset({f"R{i}"}))
    assert hub.changes_since(0)[1] is None
    assert hub.changes_since(1)[1] == frozenset(f"R{i}" for i in range(1, RECENT_CHANGES + 1))


def test_notification_payloads() -> None:
    assert residents_of('["R1", "R2"]') == frozenset({"R1", "R2"})
    assert residents_of("[]") == frozenset()
    for unreadable in ("", "not json", '{"R1": 1}', "[1, 2]", '"R1"'):
        assert residents_of(unreadable) is None


async def test_changed_is_sent_only_for_residents_the_user_may_see() -> None:
    """The stream asks ``relevant`` about the residents of the changes since its last look."""
    hub = AlertHub("postgresql://unused", HubLimits(poll_s=60, heartbeat_s=60, lifetime_s=60))
    asked: list[frozenset[str] | None] = []
    looked = asyncio.Event()

    async def snapshot() -> tuple[list[dict[str, Any]], int | None]:
        looked.set()
        return [], 0

    async def relevant(changed: frozenset[str] | None) -> bool:
        asked.append(changed)
        return changed is None or "MINE" in changed

    events: list[str] = []
    gen = stream(hub, NURSE, snapshot, relevant)

    async def read() -> None:
        async for chunk in gen:
            text = chunk.decode()
            if text.startswith("event: "):
                events.append(text.split("\n")[0][7:])
            if events.count("changed") == 1:
                return

    async def change() -> None:
        await looked.wait()
        hub.bump(frozenset({"OTHER"}))
        await asyncio.sleep(0.1)
        hub.bump(frozenset({"MINE"}))

    await asyncio.wait_for(asyncio.gather(read(), change()), 5)
    await gen.aclose()
    assert frozenset({"OTHER"}) in asked
    assert asked[-1] is not None
    assert "MINE" in asked[-1]
    assert events.count("changed") == 1
