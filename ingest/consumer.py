"""The consumer: gateway batches off the broker → one database transaction per batch → acks.

Two tasks per connection, joined by a one-slot queue so the next batch is decoded and
transformed while the previous one is being written:

- *collect* takes messages as they arrive, runs each through :func:`ingest.pipeline.
  process_message` at once (CPU work overlaps the previous batch's database round trips) and
  closes a batch at ``batch_max_messages`` / ``batch_max_readings`` / ``batch_max_wait_s``;
- *write* stores a batch in one transaction (:func:`ingest.store.observations.write_outcomes`),
  and only after the commit publishes each gateway's acknowledgement (``devices.wire.
  encode_ack``) and acknowledges the messages to the broker.

A database outage makes *write* retry the same batch until it commits, waiting a bounded,
jittered delay (``db_retry_max_s``) between attempts and, after a lost connection, moving its
pool to whichever node takes writes now (:class:`ingest.store.db.LeaderPool`: a promoted
standby is written to within about a second of its promotion); meanwhile the broker's
in-flight window stops delivery and the shipped broker configuration queues the rest (nothing
lost). A batch whose write fails for a reason other than an outage is
retried message by message, and a message that still cannot be written is dead-lettered with
its raw bytes: a poison message never blocks the queue and never crashes the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from devices.errors import MqttError
from devices.mqttlink import Message, MqttLink
from devices.wire import encode_ack
from ingest.config import IngestConfig
from ingest.errors import ConsumerError, Reason
from ingest.pipeline import DeadLetter, MessageOutcome, Registry, process_message
from ingest.store.db import LeaderPool, connection_lost, retry_delays
from ingest.store.deadletter import insert_dead_letters
from ingest.store.observations import SeenThrottle, WriteResult, write_outcomes
from ingest.store.registry import RegistrySnapshot, load_registry

logger = logging.getLogger(__name__)

_MISSES = frozenset({Reason.UNKNOWN_DEVICE, Reason.UNKNOWN_GATEWAY, Reason.UNKNOWN_RESIDENT})
_MISS_RELOAD_S = 2.0  # reload the registry on an unknown id at most this often
_POLL_S = 0.002  # while the writer is busy, look for more messages this often
_OUTAGE_LOG_S = 30.0  # while the database stays away, say so this often (not every retry)


@dataclass(slots=True)
class Batch:
    messages: list[Message] = field(default_factory=list)
    outcomes: list[MessageOutcome] = field(default_factory=list)
    readings: int = 0
    first_at: float = 0.0


@dataclass(slots=True)
class Stats:
    """Running totals (logged, and read by tests and the benchmark)."""

    messages: int = 0
    readings: int = 0
    observations: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    unbound: int = 0
    batches: int = 0
    write_retries: int = 0
    acked: int = 0
    reconnects: int = 0  # pools moved to a new writable node after a lost connection


def _internal_dead_letter(
    message: Message, exc: BaseException, previous: MessageOutcome | None = None
) -> MessageOutcome:
    """The whole message as one dead letter. When it had been read (``previous``), its
    readings are still acknowledged to the gateway: they are kept here, raw, for staff."""
    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    out = MessageOutcome(topic=message.topic, gateway_id=None)
    if previous is not None:
        out.gateway_id = previous.gateway_id
        out.ack_ids = list(previous.ack_ids)
        out.received = previous.received
    out.dead.append(
        DeadLetter(
            Reason.INTERNAL_ERROR,
            f"처리 중 오류 (internal error while processing): {detail}"[:2000],
            message.payload,
            message.topic,
            out.gateway_id,
            None,
            None,
            type(exc).__name__,
        )
    )
    out.dead_readings = max(out.received, 1)
    return out


class Consumer:
    """Batches, writes and acknowledges; one instance lives across reconnections."""

    def __init__(
        self,
        config: IngestConfig,
        pool: LeaderPool,
        *,
        on_commit: Callable[[Batch, WriteResult], None] | None = None,
    ) -> None:
        self.config = config
        self.pool = pool
        self.stats = Stats()
        self.registry: RegistrySnapshot | None = None
        self._registry_at = 0.0
        self._on_commit = on_commit
        self.subscribed = asyncio.Event()  # set while a link is subscribed (tests, demo)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-transform")
        self._seen = SeenThrottle()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- registry ----------------------------------------------------------------------------

    async def refresh_registry(self) -> RegistrySnapshot:
        async with asyncio.timeout(self.config.write_timeout_s):
            async with self.pool.connection() as conn:
                self.registry = await load_registry(conn)
        self._registry_at = time.monotonic()
        return self.registry

    async def _registry(self) -> Registry:
        if self.registry is None or (
            time.monotonic() - self._registry_at > self.config.registry_refresh_s
        ):
            try:
                await self.refresh_registry()
            except (psycopg.OperationalError, PoolTimeout, TimeoutError) as exc:
                if self.registry is None:
                    raise
                logger.warning("registry refresh failed, keeping the previous one: %s", exc)
        assert self.registry is not None
        return self.registry

    async def _transform(self, message: Message, registry: Registry) -> MessageOutcome:
        # On a worker thread: the event loop keeps serving the database round trips of the
        # batch being written (the GIL switches every few milliseconds) instead of waiting for
        # a whole message's transform between them.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor,
            process_message,
            message.topic,
            message.payload,
            registry,
            self.config.policy,
        )

    async def _process(self, message: Message) -> MessageOutcome:
        registry = await self._registry()
        try:
            outcome = await self._transform(message, registry)
            if _missed(outcome) and time.monotonic() - self._registry_at > _MISS_RELOAD_S:
                # A device or resident registered moments ago: look again before dead-lettering.
                registry = await self.refresh_registry()
                outcome = await self._transform(message, registry)
        except (psycopg.OperationalError, PoolTimeout, TimeoutError):
            raise
        except Exception as exc:  # a poison message must not stop the consumer
            logger.exception("message on %s could not be processed", message.topic)
            outcome = _internal_dead_letter(message, exc)
        return outcome

    # --- the two tasks -----------------------------------------------------------------------

    async def serve(self, link: MqttLink, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set (drains the batch in hand) or the link drops."""
        await link.subscribe([(self.config.subscription, 1)])
        logger.info("consuming %s", self.config.subscription)
        self.subscribed.set()
        batches: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=1)
        try:
            async with asyncio.TaskGroup() as tasks:
                collector = tasks.create_task(self._collect(link, batches, stop))
                writer = tasks.create_task(self._write(link, batches))
                watcher = tasks.create_task(self._watch(link))
                await collector
                await writer
                watcher.cancel()
        finally:
            self.subscribed.clear()

    async def _watch(self, link: MqttLink) -> None:
        why = await link.wait_closed()
        raise ConsumerError(f"broker connection lost: {why}")

    async def _next(
        self, link: MqttLink, stop: asyncio.Event, wait_s: float | None
    ) -> Message | None:
        """The next message, or None on stop / timeout."""
        if not link.messages.empty():
            return link.messages.get_nowait()
        getter = asyncio.ensure_future(link.messages.get())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait(
                {getter, stopper}, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopper.cancel()
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        return None

    async def _collect(
        self, link: MqttLink, batches: asyncio.Queue[Batch | None], stop: asyncio.Event
    ) -> None:
        """Batch by size, or by time once the writer can take a batch.

        While the writer is busy the batch keeps growing (up to the size limits), so under
        load each transaction carries more readings instead of queueing small ones.
        """
        config = self.config
        while not stop.is_set():
            first = await self._next(link, stop, None)
            if first is None:
                break
            batch = Batch(first_at=time.monotonic())
            message: Message | None = first
            while True:
                if message is not None:
                    outcome = await self._process(message)
                    batch.messages.append(message)
                    batch.outcomes.append(outcome)
                    batch.readings += max(outcome.received, 1)
                    if (
                        len(batch.messages) >= config.batch_max_messages
                        or batch.readings >= config.batch_max_readings
                    ):
                        break
                elif stop.is_set():
                    break
                waited = time.monotonic() - batch.first_at
                if waited >= config.batch_max_wait_s and not batches.full():
                    break
                await asyncio.sleep(0)  # let the writer's I/O progress between messages
                message = await self._next(
                    link, stop, max(config.batch_max_wait_s - waited, _POLL_S)
                )
            await batches.put(batch)
        await batches.put(None)  # the writer finishes what it holds, then returns

    async def _write(self, link: MqttLink, batches: asyncio.Queue[Batch | None]) -> None:
        while True:
            batch = await batches.get()
            if batch is None:
                return
            result = await self._commit(batch)
            self._acknowledge(link, batch)
            self._count(batch, result)
            if self._on_commit is not None:
                self._on_commit(batch, result)

    async def _commit(self, batch: Batch) -> WriteResult:
        """Write the batch; retry outages forever (bounded, jittered), isolate poison messages."""
        delays = retry_delays(self.config.db_retry_max_s)
        since: float | None = None
        logged = 0.0
        while True:
            try:
                result = await self._transaction(batch.outcomes)
            except (psycopg.OperationalError, PoolTimeout, TimeoutError) as exc:
                self.stats.write_retries += 1
                now = time.monotonic()
                if since is None or now - logged >= _OUTAGE_LOG_S:
                    logger.warning(
                        "database unavailable for %.0f s (%s); retrying the batch of %d "
                        "messages every %.1f s at most",
                        0.0 if since is None else now - since,
                        _first_line(exc),
                        len(batch.messages),
                        self.config.db_retry_max_s,
                    )
                    logged = now
                since = now if since is None else since
                await self._outage(exc, next(delays))
                continue
            except psycopg.Error as exc:
                logger.error("batch write failed (%s); writing message by message", exc)
                return await self._commit_one_by_one(batch)
            if since is not None:
                logger.warning(
                    "database back after %.1f s; batch of %d messages written",
                    time.monotonic() - since,
                    len(batch.messages),
                )
            return result

    async def _outage(self, exc: BaseException, delay: float) -> None:
        """Wait ``delay``; after a lost connection, move the pool to the node that takes writes
        now (a promoted standby), or keep it when none does yet."""
        await asyncio.sleep(delay)
        if connection_lost(exc) and await self.pool.reconnect():
            self.stats.reconnects += 1
            logger.warning("database connection renewed (a new leader, or the same server back)")

    async def _transaction(self, outcomes: list[MessageOutcome]) -> WriteResult:
        async with asyncio.timeout(self.config.write_timeout_s):
            async with self.pool.connection() as conn, conn.transaction():
                return await write_outcomes(
                    conn, outcomes, worker=self.config.client_id, seen=self._seen
                )

    async def _commit_one_by_one(self, batch: Batch) -> WriteResult:
        total = WriteResult()
        for index, (message, outcome) in enumerate(
            zip(batch.messages, batch.outcomes, strict=True)
        ):
            delays = retry_delays(self.config.db_retry_max_s)
            while True:
                try:
                    result = await self._transaction([outcome])
                    break
                except (psycopg.OperationalError, PoolTimeout, TimeoutError) as exc:
                    await self._outage(exc, next(delays))
                except psycopg.Error as exc:
                    if outcome.dead and outcome.dead[0].reason is Reason.INTERNAL_ERROR:
                        # not even its dead letter can be written: keep it unacknowledged
                        # (the broker keeps it) and try again, slowly, rather than lose it
                        logger.critical(
                            "dead letter for %s cannot be stored: %s", message.topic, exc
                        )
                        await asyncio.sleep(self.config.retry_max_s)
                        continue
                    logger.error("message on %s cannot be stored: %s", message.topic, exc)
                    outcome = _internal_dead_letter(message, exc, outcome)
                    batch.outcomes[index] = outcome
            for gateway, counts in result.counts.items():
                mine = total.counts.setdefault(gateway, type(counts)())
                for name in counts.__slots__:
                    setattr(mine, name, getattr(mine, name) + getattr(counts, name))
            total.observations += result.observations
            total.duplicates += result.duplicates
            total.residents += result.residents
        return total

    def _acknowledge(self, link: MqttLink, batch: Batch) -> None:
        """After the commit: each gateway's ack, then the broker acks in arrival order."""
        ids: dict[str, list[str]] = {}
        for outcome in batch.outcomes:
            if outcome.gateway_id and outcome.ack_ids:
                ids.setdefault(outcome.gateway_id, []).extend(outcome.ack_ids)
        try:
            for gateway_id, reading_ids in ids.items():
                unique = list(dict.fromkeys(reading_ids))
                link.publish_nowait(
                    self.config.ack_topic(gateway_id), encode_ack(gateway_id, unique)
                )
            for message in batch.messages:
                if link.ack(message):
                    self.stats.acked += 1
        except MqttError as exc:
            # Committed but not acknowledged: the broker and the gateway will send it again
            # and the store will find it already there.
            logger.warning("acknowledgement not sent (%s); the batch will be redelivered", exc)

    def _count(self, batch: Batch, result: WriteResult) -> None:
        s = self.stats
        s.batches += 1
        s.messages += len(batch.messages)
        s.readings += result.total("received")
        s.observations += result.observations
        s.duplicates += result.total("duplicate")
        s.dead_lettered += result.total("dead_lettered")
        s.unbound += result.total("unbound")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _missed(outcome: MessageOutcome) -> bool:
    if any(d.reason in _MISSES for d in outcome.dead):
        return True
    return any(r.dead is not None and r.dead.reason in _MISSES for r in outcome.readings)


async def write_dead_letters(pool: AsyncConnectionPool, letters: list[DeadLetter]) -> None:
    """Store dead letters on their own (tools and tests)."""
    async with pool.connection() as conn, conn.transaction():
        await insert_dead_letters(conn, letters)


def describe(stats: Stats) -> dict[str, Any]:
    return {name: getattr(stats, name) for name in stats.__slots__}
