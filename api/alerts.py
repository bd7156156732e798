"""The web channel of the alert chain (issue 11.3a): server push to open staff pages.

One :class:`AlertHub` per api process holds a single ``LISTEN daon_flags`` connection (the
clinical runner and every staff action NOTIFY it with the residents whose flags changed) and
wakes the open streams. Each stream (:func:`stream`) then asks the database, with the user's
own scope, which alerts are waiting for that user, and sends them as Server-Sent Events:

``alerts``   the user's unacknowledged alerts now (resident name and phone, what to do), the
             whole list each time it changes, so a page that acknowledged elsewhere drops its
             toast too
``count``    the number of open critical flags in the user's scope (the navigation badge)
``changed``  flags changed for a resident this user may see: live sections of the page may
             reload themselves (a change elsewhere in the district wakes the stream, which
             looks, but the page is not told: it reloads nothing for residents it cannot show)
``renew``    the stream ends in ``renew_before_s``: open the next one now (overlapping)
``reconnect`` the stream ends now (its lifetime is over): open the next one at once

Every stream is bounded: at most ``max_streams`` at once and ``per_user`` per user (503
beyond), each ends after ``lifetime_s`` (so a server shutdown never waits long for a stream),
and its registration is removed in ``finally`` whatever ends it (the page closed, the server
stopping, an error). Streams overlap, so a page is never without one: ``renew_before_s`` before
its end a stream says ``renew`` and the page opens the next, closing this one once the next has
sent its first look (the page drops repeats: a card is keyed by flag and event); at the end it says
``reconnect`` in case the page has not renewed. Left to EventSource's own reconnection
(``retry_ms``, the delay after an error), an alert raised in the gap waited a second or more
once every ``lifetime_s``, and even an immediate reconnect left a gap of seconds on a loaded
machine (bench/alerts.py's tail). Without the LISTEN connection (database restarting) streams
fall back to polling every ``poll_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from api.store.access import Actor
from ingest import store

logger = logging.getLogger(__name__)

CHANNEL = "daon_flags"  # clinical.runner.FLAGS_CHANNEL and clinical.staff NOTIFY it
RECENT_CHANGES = 512  # changes a stream can catch up on; one further behind is told "anyone"

#: Residents whose flags changed; None when unknown (a missed or unreadable notification).
Changed = frozenset[str] | None


def residents_of(payload: str) -> Changed:
    """The residents a ``daon_flags`` payload names (a JSON array of ids); None when it cannot
    be read, so a listener assumes anyone may be affected rather than missing a change."""
    try:
        ids = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return None
    return frozenset(ids)


class TooManyStreams(Exception):
    """The stream limit (total or per user) is reached."""


@dataclass(frozen=True, slots=True)
class HubLimits:
    max_streams: int = 200
    per_user: int = 6
    lifetime_s: float = 25.0
    poll_s: float = 5.0  # also how soon an alert held for the morning (deliver_after) shows
    heartbeat_s: float = 10.0
    retry_ms: int = 1000  # EventSource's reconnection delay after an error (not after an end)
    renew_before_s: float = 5.0  # the page opens the next stream this long before the end


class AlertHub:
    """Wakes open alert streams when flags change (one LISTEN connection per process)."""

    def __init__(self, database_url: str, limits: HubLimits | None = None) -> None:
        self.database_url = database_url
        self.limits = limits or HubLimits()
        self._wake = asyncio.Event()
        self._seq = 0  # changes so far
        self._recent: deque[tuple[int, Changed]] = deque(maxlen=RECENT_CHANGES)
        self._streams: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.listening = False
        self.notifications = 0
        self.opened = 0  # streams registered since start

    # -- registry ------------------------------------------------------------------------

    @property
    def active(self) -> int:
        return sum(self._streams.values())

    def active_for(self, user_id: str) -> int:
        return self._streams.get(user_id, 0)

    def register(self, user_id: str) -> None:
        if self.active >= self.limits.max_streams:
            raise TooManyStreams(f"{self.active} alert streams open")
        if self.active_for(user_id) >= self.limits.per_user:
            raise TooManyStreams(f"{self.active_for(user_id)} alert streams open for this user")
        self._streams[user_id] = self.active_for(user_id) + 1
        self.opened += 1

    def unregister(self, user_id: str) -> None:
        left = self.active_for(user_id) - 1
        if left > 0:
            self._streams[user_id] = left
        else:
            self._streams.pop(user_id, None)

    # -- waking ----------------------------------------------------------------------------

    def changed(self) -> asyncio.Event:
        """The event the current waiters wait on; set (and replaced) on the next change."""
        return self._wake

    @property
    def seq(self) -> int:
        """How many changes the hub has seen: a stream's starting point for ``changes_since``."""
        return self._seq

    def changes_since(self, seq: int) -> tuple[int, Changed]:
        """The residents of every change after ``seq`` (None when one was unknown or the
        stream fell further behind than the hub remembers), and the sequence number now."""
        if seq >= self._seq:
            return self._seq, frozenset()
        if seq < self._seq - len(self._recent):
            return self._seq, None
        names: set[str] = set()
        for at, residents in self._recent:
            if at <= seq:
                continue
            if residents is None:
                return self._seq, None
            names |= residents
        return self._seq, frozenset(names)

    def bump(self, residents: Changed = None) -> None:
        """A change for ``residents`` (None: anyone, e.g. after a gap in listening)."""
        self._seq += 1
        self._recent.append((self._seq, residents))
        woken, self._wake = self._wake, asyncio.Event()
        woken.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="alert-hub-listen")

    async def stop(self) -> None:
        self._stopping.set()
        self.bump()  # streams see stopping and end
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _listen(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            conn = None
            try:
                async with asyncio.timeout(10.0):
                    conn = await store.connect(self.database_url, autocommit=True)
                    await conn.execute(f"LISTEN {CHANNEL}")
                self.listening = True
                delay = 0.5
                self.bump()  # anything missed while not listening
                while not self._stopping.is_set():
                    async for note in conn.notifies(timeout=1.0):
                        self.notifications += 1
                        self.bump(residents_of(note.payload))
                    async with asyncio.timeout(10.0):
                        await conn.execute("SELECT 1")  # a dead connection shows here
            except (psycopg.Error, store.StoreUnavailable, TimeoutError, OSError) as exc:
                logger.warning("alert hub: LISTEN lost (%s); polling, retry in %.1f s", exc, delay)
            finally:
                self.listening = False
                if conn is not None:
                    await conn.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
            delay = min(delay * 2, 15.0)


Snapshot = Callable[[], Awaitable[tuple[list[dict[str, Any]], int | None]]]
#: Whether any of these residents (None: unknown) is one the stream's user may see.
Relevant = Callable[[Changed], Awaitable[bool]]


async def anyone(changed: Changed) -> bool:
    """A ``Relevant`` for callers without a scope: every change is theirs."""
    return changed is None or bool(changed)


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def admit(hub: AlertHub, user_id: str) -> None:
    """Refuse a new stream up front (the route answers 503) when the limits are reached."""
    if hub.active >= hub.limits.max_streams or hub.active_for(user_id) >= hub.limits.per_user:
        raise TooManyStreams(f"{hub.active} alert streams open")


async def stream(
    hub: AlertHub, actor: Actor, snapshot: Snapshot, relevant: Relevant = anyone
) -> AsyncIterator[bytes]:
    """The event stream of one open page: registered with the hub when it starts, and
    unregistered however it ends (so a stream that never started holds nothing). ``changed``
    is sent only when ``relevant`` says a change concerns a resident the user may see."""
    loop = asyncio.get_running_loop()
    try:
        hub.register(actor.user_id)
    except TooManyStreams:
        yield b"retry: 5000\n\n"
        return
    try:
        end = loop.time() + hub.limits.lifetime_s
        renew_at: float | None = end - min(hub.limits.renew_before_s, hub.limits.lifetime_s / 2)
        yield f"retry: {hub.limits.retry_ms}\n\n".encode()
        sent_alerts: list[dict[str, Any]] | None = None
        sent_count: int | None = -1
        seen = hub.seq
        last_write = loop.time()
        while not hub.stopping:
            # Taken before looking: a change while the look runs sets this very event, so the
            # stream looks again at once. (Taken after the look, a NOTIFY that arrived during
            # it was missed until the next change: under load, with the runner committing a
            # batch every few hundred ms and a look taking as long, a new alert waited about
            # one more batch, the page-side p50 of bench/alerts.py was ~1 s.)
            wake = hub.changed()
            seen, changed = hub.changes_since(seen)
            try:
                # shielded: a page closing mid-query must not cancel the query (that would
                # discard the pooled connection); the look finishes and returns it
                alerts, count = await asyncio.shield(snapshot())
                mine = changed != frozenset() and await asyncio.shield(relevant(changed))
            except (psycopg.Error, TimeoutError) as exc:
                logger.warning("alert stream for %s ended: %s", actor.user_id, exc)
                break  # the page's EventSource reconnects
            if alerts != sent_alerts:
                yield sse("alerts", alerts)
                sent_alerts = alerts
                last_write = loop.time()
            if count != sent_count:
                yield sse("count", {"critical": count})
                sent_count = count
                last_write = loop.time()
            if mine:
                yield sse("changed", {})
                last_write = loop.time()
            now = loop.time()
            if now >= end:
                yield sse("reconnect", {})
                break
            if renew_at is not None and now >= renew_at:
                yield sse("renew", {})
                renew_at = None
                last_write = now
            if now - last_write >= hub.limits.heartbeat_s:
                yield b": keep-alive\n\n"  # a closed page shows up as a failed write
                last_write = now
            timeout = min(hub.limits.poll_s, end - now, hub.limits.heartbeat_s)
            if renew_at is not None:
                timeout = min(timeout, renew_at - now)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(timeout, 0.05)):
                    await wake.wait()
    finally:
        hub.unregister(actor.user_id)
