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


async def test_a_stream_that_ends_on_time_says_reconnect() -> None:
    hub = AlertHub("postgresql://unused", HubLimits(lifetime_s=0.2, heartbeat_s=0.05))

    async def snapshot() -> tuple[list[dict[str, Any]], int | None]:
        return [], 0

    chunks = [c async for c in stream(hub, NURSE, snapshot)]
    assert chunks[0] == b"retry: 1000\n\n"
    assert chunks[-1] == b"event: reconnect\ndata: {}\n\n"
    assert hub.active == 0
