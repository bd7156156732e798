"""The delivering service: every notify event to every matching rest-hook receiver, at least once.

How it holds up (issue 11.1):

- The outbox rows exist from the notify event's own commit (trigger, migration 0400); this
  service only reads them, so a crash or restart loses nothing: what was not recorded as
  delivered is sent again, with the same ``Idempotency-Key``.
- It wakes on ``NOTIFY daon_delivery`` from that trigger, and also at the next due time and every
  ``poll`` seconds (a missed notification costs at most that).
- Per-receiver scheduling: each receiver (subscription) is drained by its own task, in event
  order, one request at a time, stopping at its first failure; the receiver then waits out its
  backoff (``api.subscription.retry_delay``) in the database, not in a task, so it holds up
  nobody. A global semaphore bounds concurrent requests; every request has connect, read and
  total timeouts; redirects are not followed (a redirect is a failure: the receiver must give
  the right URL).
- Database outage: the loop and each receiver's recording retry with a capped backoff; results
  of sends already made are kept in memory until recorded (or sent again after a crash).
- One active deliverer per database (a session advisory lock); a second instance waits as a
  standby and takes over when the first goes away.
- A subscription past its ``end`` goes ``off`` at the next round (R4), and what was still
  pending for it is marked ``expired`` with the reason (a deleted one likewise, at once):
  counted on the administrators' page, never sent, never left pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
from psycopg_pool import AsyncConnectionPool

from api.store import delivery as store
from api.subscription import notification

logger = logging.getLogger(__name__)

_LOCK_KEY = 0x6461_6F6E_0D  # "daon" + delivery: one active deliverer per database
CHANNEL = "daon_delivery"

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    database_url: str
    batch: int = 500  # deliveries claimed per round
    per_receiver: int = 50  # at most this many per receiver per round
    concurrency: int = 32  # requests in flight at once, all receivers together
    connect_timeout: float = 3.0
    read_timeout: float = 5.0
    total_timeout: float = 10.0  # a whole request, however slowly the receiver drips
    poll: float = 5.0  # wake at least this often without a notification
    outage_backoff_cap: float = 10.0


class Deliverer:
    """Runs until ``stop`` is set; see the module docstring."""

    def __init__(
        self,
        config: DeliveryConfig,
        *,
        clock: Clock = system_clock,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self._transport = transport
        self._wake = asyncio.Event()
        self._busy: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._limit = asyncio.Semaphore(config.concurrency)
        self.sent = 0  # attempts made (for logs and tests)
        self.active = asyncio.Event()  # set while this instance holds the deliverer lock

    def wake(self) -> None:
        """Look for due deliveries now (tests that move the clock call this)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            try:
                await self._run_locked(stop)
                delay = 0.5
            except (psycopg.OperationalError, psycopg.InterfaceError, OSError) as exc:
                logger.warning(
                    "delivery: database unavailable (%s); retrying in %.1f s", exc, delay
                )
                self.active.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, self.config.outage_backoff_cap)
            except Exception:  # a bug must not end delivery for good: log it and start over
                logger.exception("delivery: unexpected error; restarting in %.1f s", delay)
                self.active.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, self.config.outage_backoff_cap)
        await self._drain_tasks()

    async def _run_locked(self, stop: asyncio.Event) -> None:
        cfg = self.config
        async with await psycopg.AsyncConnection.connect(
            cfg.database_url, autocommit=True, connect_timeout=5
        ) as listen:
            while not stop.is_set():
                cur = await listen.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_KEY,))
                row = await cur.fetchone()
                if row and row[0]:
                    break
                with contextlib.suppress(TimeoutError):  # a standby: another deliverer runs
                    await asyncio.wait_for(stop.wait(), cfg.poll)
            if stop.is_set():
                return
            await listen.execute(f"LISTEN {CHANNEL}")
            self.active.set()
            logger.info("delivery: active")
            pool = AsyncConnectionPool(
                cfg.database_url,
                min_size=1,
                max_size=4,
                open=False,
                timeout=10.0,
                kwargs={"autocommit": True, "connect_timeout": 5},
            )
            await pool.open(wait=True, timeout=10.0)
            timeout = httpx.Timeout(
                cfg.total_timeout, connect=cfg.connect_timeout, read=cfg.read_timeout
            )
            limits = httpx.Limits(max_connections=cfg.concurrency * 2, max_keepalive_connections=64)
            try:
                async with httpx.AsyncClient(
                    timeout=timeout,
                    limits=limits,
                    follow_redirects=False,
                    transport=self._transport,
                    trust_env=False,
                ) as client:
                    listener = asyncio.create_task(self._listen(listen))
                    try:
                        await self._loop(stop, pool, client, listener)
                    finally:
                        listener.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await listener
                        await self._drain_tasks()
            finally:
                self.active.clear()
                await pool.close(timeout=5.0)

    async def _listen(self, conn: psycopg.AsyncConnection[Any]) -> None:
        async for _ in conn.notifies():
            self._wake.set()

    async def _loop(
        self,
        stop: asyncio.Event,
        pool: AsyncConnectionPool[Any],
        client: httpx.AsyncClient,
        listener: asyncio.Task[None],
    ) -> None:
        cfg = self.config
        while not stop.is_set():
            if listener.done():  # the listening connection died: reconnect from the top
                exc = listener.exception() if not listener.cancelled() else None
                raise psycopg.OperationalError(f"notification listener stopped: {exc}")
            self._wake.clear()
            now = self.clock()
            async with pool.connection(timeout=10.0) as conn:
                for ended in await store.activate(conn, now):
                    logger.info(
                        "delivery: Subscription/%s ended at %s (off); %d pending "
                        "deliveries expired, not sent",
                        ended.subscription_id,
                        ended.end.isoformat(),
                        ended.deliveries,
                    )
                due = await store.claim_due(
                    conn,
                    now,
                    busy=self._busy,
                    limit=cfg.batch,
                    per_receiver=cfg.per_receiver,
                )
                by_receiver: dict[str, list[store.Due]] = {}
                for item in due:
                    by_receiver.setdefault(item.subscription_id, []).append(item)
                for sub_id, items in by_receiver.items():
                    self._busy.add(sub_id)
                    task = asyncio.create_task(self._drain(pool, client, sub_id, items, stop))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                nxt = await store.next_due(conn, now, busy=self._busy)
            if len(due) >= cfg.batch:
                continue  # more waiting: claim again at once
            sleep = cfg.poll
            if nxt is not None:
                sleep = max(0.0, min(sleep, (nxt - self.clock()).total_seconds()))
            stopper = asyncio.create_task(stop.wait())
            waker = asyncio.create_task(self._wake.wait())
            try:
                await asyncio.wait({stopper, waker}, timeout=sleep, return_when="FIRST_COMPLETED")
            finally:
                stopper.cancel()
                waker.cancel()

    async def _drain(
        self,
        pool: AsyncConnectionPool[Any],
        client: httpx.AsyncClient,
        sub_id: str,
        items: list[store.Due],
        stop: asyncio.Event,
    ) -> None:
        """Send one receiver's due deliveries in order, stopping at its first failure."""
        attempts: list[store.Attempt] = []
        try:
            for item in items:
                if stop.is_set():
                    break
                attempt = await self._send(client, item)
                attempts.append(attempt)
                if not attempt.delivered:
                    logger.info(
                        "delivery: %s → %s failed (%s: %s)",
                        item.idempotency_key,
                        item.endpoint,
                        attempt.outcome,
                        attempt.detail,
                    )
                    break
            await self._record(pool, sub_id, attempts, stop)
        except Exception:  # a bug here must not stop other receivers
            logger.exception("delivery: receiver %s round failed", sub_id)
        finally:
            self._busy.discard(sub_id)
            self._wake.set()

    async def _send(self, client: httpx.AsyncClient, item: store.Due) -> store.Attempt:
        request = notification(
            endpoint=item.endpoint,
            headers=item.headers,
            payload=item.payload,
            idempotency_key=item.idempotency_key,
            resource_type=item.resource_type,
            resource_id=item.resource_id,
            resource_json=item.resource_json,
            notice=item.notice,
        )
        at = self.clock()
        started = time.monotonic()
        status: int | None = None
        async with self._limit:
            try:
                async with asyncio.timeout(self.config.total_timeout):
                    async with client.stream(
                        request.method,
                        request.url,
                        headers=list(request.headers),
                        content=request.body,
                    ) as response:
                        status = response.status_code
                outcome, detail = _classify(status)
            except (TimeoutError, httpx.TimeoutException):
                outcome, detail = "timeout", f"no answer within {self.config.total_timeout:g} s"
            except httpx.ConnectError as exc:
                outcome, detail = "refused", f"cannot connect: {exc}"[:300]
            except (httpx.HTTPError, OSError, ValueError) as exc:
                outcome, detail = "error", f"{type(exc).__name__}: {exc}"[:300]
        self.sent += 1
        elapsed = int((time.monotonic() - started) * 1000)
        return store.Attempt(item, at, outcome, status, elapsed, detail)

    async def _record(
        self,
        pool: AsyncConnectionPool[Any],
        sub_id: str,
        attempts: list[store.Attempt],
        stop: asyncio.Event,
    ) -> None:
        delay = 0.5
        while True:
            try:
                async with pool.connection(timeout=10.0) as conn:
                    await store.record(conn, sub_id, attempts)
                return
            except (psycopg.OperationalError, psycopg.InterfaceError, OSError) as exc:
                if stop.is_set():
                    logger.warning(
                        "delivery: %d attempt(s) of %s unrecorded at stop (%s); they will be "
                        "sent again",
                        len(attempts),
                        sub_id,
                        exc,
                    )
                    return
                logger.warning("delivery: cannot record (%s); retrying in %.1f s", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, self.config.outage_backoff_cap)

    async def _drain_tasks(self) -> None:
        tasks = list(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.config.total_timeout + 5)
            for task in pending:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*pending, return_exceptions=True)
        self._busy.clear()


def _classify(status: int) -> tuple[str, str | None]:
    if 200 <= status < 300:
        return "delivered", None
    if 300 <= status < 400:
        return "redirect", f"HTTP {status}: redirects are not followed"
    return "http-error", f"HTTP {status}"
