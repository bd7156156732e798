"""The alert stream's loop (api.alerts.stream) with a scripted snapshot: no change is missed
while a look is running, and a stream that ends on time tells the page to reconnect. The
same stream against the real app and database: tests/api/test_alert_push.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from api.alerts import AlertHub, HubLimits, stream
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
