"""Connections: the async pool every service opens at start-up, and one-off connections.

:class:`LeaderPool` keeps a writer's pool on the writable leader of a Patroni cluster (libpq
multi-host URL with ``target_session_attrs=read-write``) and notices a promoted standby within
a bounded, jittered delay (:func:`retry_delays`).
"""

from __future__ import annotations

import contextlib
import random
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ingest.store.errors import StoreUnavailable

CONNECT_TIMEOUT_S = 10.0  # when the URL names no connect_timeout of its own


def redact_url(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _reason(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else exc.__class__.__name__


def _connect_kwargs(url: str) -> dict[str, Any]:
    """``connect_timeout`` unless the URL sets one (a keyword would override the URL's: a
    cluster's URL keeps its short per-host timeout, so a dead host is passed over quickly)."""
    try:
        given = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        given = {}
    return {} if "connect_timeout" in given else {"connect_timeout": int(CONNECT_TIMEOUT_S)}


async def connect(url: str, *, autocommit: bool = False) -> psycopg.AsyncConnection[Any]:
    """One connection, with a bounded connect time and a clear error when it fails."""
    try:
        conn = await psycopg.AsyncConnection.connect(
            url, autocommit=autocommit, **_connect_kwargs(url)
        )
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(redact_url(url), _reason(exc)) from exc
    return conn


@asynccontextmanager
async def connection(
    url: str, *, autocommit: bool = False
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """``async with connection(url) as conn``: connect, yield, close."""
    conn = await connect(url, autocommit=autocommit)
    try:
        yield conn
    finally:
        await conn.close()


async def open_pool(
    url: str, *, min_size: int = 1, max_size: int = 10, name: str = "daon", wait_s: float = 30.0
) -> AsyncConnectionPool:
    """Open an async pool (``open=False`` then ``await open()``, as psycopg recommends).

    Checks one connection first so a wrong URL fails fast with :class:`StoreUnavailable`
    instead of the pool retrying in the background.
    """
    async with connection(url):
        pass
    pool = AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        name=name,
        timeout=wait_s,
        open=False,
        kwargs=_connect_kwargs(url),
    )
    try:
        await pool.open(wait=True, timeout=wait_s)
    except BaseException:
        await pool.close(timeout=1.0)
        raise
    return pool


def retry_delays(
    ceiling_s: float, first_s: float = 0.2, rng: random.Random | None = None
) -> Iterator[float]:
    """Waits between attempts to reach the database: ``first_s`` doubling up to ``ceiling_s``,
    each drawn at random from the upper half of its step (never above ``ceiling_s``), so the
    workers that lost the same leader do not all knock at the promoted one in the same instant.
    Start a new iterator after a success."""
    draw = rng or random.Random()
    step = min(first_s, ceiling_s)
    while True:
        yield draw.uniform(step / 2, step)
        step = min(step * 2, ceiling_s)


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection (or the server behind it) is gone, as when a
    cluster's leader dies, rather than a refusal on a working connection (a full disk)."""
    if isinstance(exc, PoolTimeout | TimeoutError | StoreUnavailable):
        return True
    if isinstance(exc, psycopg.OperationalError):
        state = exc.sqlstate
        # no SQLSTATE: libpq lost or could not open the connection; 08: connection exception;
        # 57P01-57P03: the server is shutting down, crashed, or cannot take connections yet
        return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")
    return False


class LeaderPool:
    """A service's pool that follows the writable leader of a database cluster.

    psycopg_pool replaces a broken connection in the background, each replacement retrying
    with exponential backoff (1, 2, 4, 8, 16 s, ...). When a Patroni leader dies every
    connection breaks at once and the promoted standby takes writes about 20 s later, by which
    time the pool's next attempt can be 10 s away (``bench/ha.py`` measured 31.5 s from the kill
    to ingest's first commit, 12 s of it waiting for the pool). So after losing its connection
    the owner calls :meth:`reconnect` at its own pace (:func:`retry_delays`): one connection
    over the URL's hosts (libpq's ``target_session_attrs`` finds the leader) tells whether a
    writer is reachable now, and when one is, a fresh pool replaces the broken one.

    With a single server this is the same pool, replaced only after it lost its connections.
    """

    def __init__(
        self, url: str, *, min_size: int = 1, max_size: int = 10, name: str, wait_s: float
    ) -> None:
        self.url = url
        self.min_size = min_size
        self.max_size = max_size
        self.name = name
        self.wait_s = wait_s
        self.renewals = 0  # pools replaced after a lost connection (status, tests)
        self._pool: AsyncConnectionPool | None = None

    @property
    def pool(self) -> AsyncConnectionPool:
        if self._pool is None:
            raise StoreUnavailable(redact_url(self.url), "the pool is not open")
        return self._pool

    async def _open(self) -> AsyncConnectionPool:
        return await open_pool(
            self.url,
            min_size=self.min_size,
            max_size=self.max_size,
            name=self.name,
            wait_s=self.wait_s,
        )

    async def open(self) -> None:
        """Open the first pool; raises :class:`StoreUnavailable` when no writer answers."""
        self._pool = await self._open()

    def connection(self) -> AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        return self.pool.connection()

    async def reconnect(self) -> bool:
        """After a lost connection: a fresh pool on whichever node takes writes now, or False
        (the old pool stays) when none does yet."""
        try:
            fresh = await self._open()
        except (StoreUnavailable, psycopg.OperationalError, PoolTimeout, TimeoutError):
            return False
        old, self._pool = self._pool, fresh
        self.renewals += 1
        if old is not None:
            with contextlib.suppress(Exception):
                await old.close(timeout=1.0)
        return True

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
