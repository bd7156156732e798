"""Connections: the async pool every service opens at start-up, and one-off connections."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from ingest.store.errors import StoreUnavailable

CONNECT_TIMEOUT_S = 10.0


def redact_url(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def _reason(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else exc.__class__.__name__


async def connect(url: str, *, autocommit: bool = False) -> psycopg.AsyncConnection[Any]:
    """One connection, with a bounded connect time and a clear error when it fails."""
    try:
        conn = await psycopg.AsyncConnection.connect(
            url, autocommit=autocommit, connect_timeout=int(CONNECT_TIMEOUT_S)
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
        kwargs={"connect_timeout": int(CONNECT_TIMEOUT_S)},
    )
    await pool.open(wait=True, timeout=wait_s)
    return pool
