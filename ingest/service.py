"""The ingest service: the reconnection loop around the consumer (``daon ingest``, ``daon demo``).

Outages of the broker or the database pause the service and it resumes by itself, with
bounded exponential backoff (the database's bounded by ``db_retry_max_s`` and jittered, so a
promoted standby is found within about a second); at start and every time the database comes
back it makes sure the observation partitions around today exist. ``stop`` ends it cleanly:
the batch in hand is committed and acknowledged, the rest stays with the broker for the next
start.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging

import psycopg
from psycopg_pool import PoolTimeout

from devices.errors import MqttError
from devices.mqttlink import MqttLink
from ingest.config import IngestConfig
from ingest.consumer import Consumer
from ingest.errors import ConsumerError
from ingest.store.db import LeaderPool, redact_url, retry_delays
from ingest.store.errors import StoreUnavailable
from ingest.store.observations import ensure_partitions, refresh_daily

logger = logging.getLogger(__name__)

_REPEAT_LOG_S = 30.0  # the same pause reason is logged again only after this long
_GC_YOUNG = 20_000  # allocations between young-generation collections (default 700)

_OUTAGES = (
    ConsumerError,
    MqttError,
    StoreUnavailable,
    psycopg.OperationalError,
    PoolTimeout,
    OSError,
    TimeoutError,
)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


async def _prepare(pool: LeaderPool, config: IngestConfig) -> None:
    async with asyncio.timeout(config.write_timeout_s):
        async with pool.connection() as conn:
            created = await ensure_partitions(conn)
    if created:
        logger.info("created %d observation partitions", created)


async def _maintain(pool: LeaderPool, config: IngestConfig, stop: asyncio.Event) -> None:
    """Every ``maintenance_s``: partitions ahead of time and the daily summaries (stock PG)."""
    while not stop.is_set():
        await _sleep_or_stop(stop, config.maintenance_s)
        if stop.is_set():
            return
        try:
            await _prepare(pool, config)
            async with asyncio.timeout(config.write_timeout_s):
                async with pool.connection() as conn:
                    await refresh_daily(conn)
        except (psycopg.Error, PoolTimeout, TimeoutError) as exc:
            logger.warning(
                "maintenance skipped (%s); next try in %.0f s", exc, config.maintenance_s
            )


async def run(
    config: IngestConfig,
    *,
    stop: asyncio.Event | None = None,
    consumer_ready: asyncio.Future[Consumer] | None = None,
) -> None:
    """Run until ``stop`` is set. ``consumer_ready`` receives the Consumer (tests, demo)."""
    stop = stop or asyncio.Event()
    delay = 0.5
    db_delays = retry_delays(config.db_retry_max_s)
    said: dict[str, float] = {}  # pause reason -> when it was last logged
    broker_attempt = 0  # which node of a broker cluster to try next
    pool: LeaderPool | None = None
    consumer: Consumer | None = None
    maintenance: asyncio.Task[None] | None = None
    try:
        while not stop.is_set():
            try:
                if pool is None:
                    opening = LeaderPool(
                        config.database_url,
                        min_size=1,
                        max_size=3,
                        name="ingest",
                        wait_s=config.connect_timeout_s,
                    )
                    await opening.open()
                    pool = opening
                    await _prepare(pool, config)
                    consumer = Consumer(config, pool)
                    await consumer.refresh_registry()
                    # The long-lived objects (modules, registry, templates) need no more
                    # garbage collection: keeps full collections short on the hot path.
                    gc.freeze()
                    # A reading allocates tens of objects, nearly all freed by reference
                    # counting once its batch is written; a young collection every 700
                    # allocations (the default) walks the batch in hand again and again
                    # (about a tenth of the mapping's CPU, measured in-process). Cycles are
                    # still collected, less often.
                    gc.set_threshold(_GC_YOUNG, 20, 50)
                    maintenance = asyncio.create_task(_maintain(pool, config, stop))
                    if consumer_ready is not None and not consumer_ready.done():
                        consumer_ready.set_result(consumer)
                assert consumer is not None
                link = MqttLink(
                    config.broker(broker_attempt),
                    client_id=config.mqtt_client_id,
                    timeout=config.connect_timeout_s,
                    manual_ack=True,
                    max_inflight=config.max_inflight,
                )
                async with link:
                    delay = 0.5
                    db_delays = retry_delays(config.db_retry_max_s)
                    said.clear()
                    await consumer.serve(link, stop)
            except* _OUTAGES as group:
                database = _database_failed(group)
                wait = next(db_delays) if database else delay
                now = asyncio.get_running_loop().time()
                for exc in group.exceptions:
                    if now - said.get(str(exc), -_REPEAT_LOG_S) >= _REPEAT_LOG_S:
                        said[str(exc)] = now
                        logger.warning("ingest paused: %s; retrying in %.1f s", exc, wait)
                await _sleep_or_stop(stop, wait)
                if database:
                    if pool is not None and await pool.reconnect():
                        logger.warning("database connection renewed")
                else:
                    broker_attempt += 1  # a broker node went away: try the next one
                    delay = min(delay * 2, config.retry_max_s)
            except* Exception:
                # A bug, not an outage: log it with its traceback and start over (bounded).
                logger.exception("ingest failed; restarting in %.1f s", delay)
                await _sleep_or_stop(stop, delay)
                delay = min(delay * 2, config.retry_max_s)
    finally:
        if maintenance is not None:
            maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await maintenance
        if consumer is not None:
            consumer.close()
        if pool is not None:
            await pool.close()
    logger.info("ingest stopped (database %s)", redact_url(config.database_url))


def _database_failed(group: BaseExceptionGroup[BaseException]) -> bool:
    return any(
        isinstance(e, StoreUnavailable | psycopg.OperationalError | PoolTimeout)
        for e in group.exceptions
    )
