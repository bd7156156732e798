"""Reading rows by name: every query of the web app's store returns typed rows, never row[N].

Rows come back as instances of a dataclass (psycopg's ``class_row``: column names must match
the field names, so each SELECT names its columns with ``AS``) or, where a value needs turning
into a richer type (a role enum, a tuple), through a keyword-argument builder (``kwargs_row``).
Single values come back through ``scalar_row``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, LiteralString, TypeVar

from psycopg import AsyncConnection
from psycopg.abc import Params
from psycopg.pq import TransactionStatus
from psycopg.rows import class_row, kwargs_row, scalar_row

Conn = AsyncConnection[Any]
IDLE = TransactionStatus.IDLE
T = TypeVar("T")
#: A query: a literal string, or bytes (an f-string with only trusted SQL, encoded).
Query = LiteralString | bytes


async def fetch_all(
    conn: Conn, cls: type[T], query: Query, params: Params | None = None
) -> list[T]:
    """All rows of ``query`` as ``cls`` instances (columns named like its fields)."""
    async with conn.cursor(row_factory=class_row(cls)) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


async def fetch_one(
    conn: Conn, cls: type[T], query: Query, params: Params | None = None
) -> T | None:
    """The first row of ``query`` as a ``cls`` instance, or None."""
    async with conn.cursor(row_factory=class_row(cls)) as cur:
        await cur.execute(query, params)
        return await cur.fetchone()


async def build_all(
    conn: Conn, build: Callable[..., T], query: Query, params: Params | None = None
) -> list[T]:
    """All rows of ``query`` passed to ``build`` as keyword arguments (one per column)."""
    async with conn.cursor(row_factory=kwargs_row(build)) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


async def build_one(
    conn: Conn, build: Callable[..., T], query: Query, params: Params | None = None
) -> T | None:
    async with conn.cursor(row_factory=kwargs_row(build)) as cur:
        await cur.execute(query, params)
        return await cur.fetchone()


async def fetch_committed(
    conn: Conn, cls: type[T], query: Query, params: Params | None = None, *, commit: bool
) -> list[T]:
    """All rows of ``query`` as ``cls`` instances; with ``commit`` the transaction is committed
    before they are returned, so whatever it wrote (a read's audit rows) is durable by then. If
    the statement or the commit fails, this raises and returns nothing.

    When no transaction is open the statement runs as a transaction of its own (autocommit for
    this statement): one round trip, the server commits before it reports the statement done
    (and reports a failed commit as the statement's error), instead of BEGIN, the statement and
    COMMIT as three."""
    if commit and not conn.autocommit and conn.info.transaction_status is IDLE:
        await conn.set_autocommit(True)
        try:
            return await fetch_all(conn, cls, query, params)
        finally:
            await conn.set_autocommit(False)
    found = await fetch_all(conn, cls, query, params)
    if commit:
        await conn.commit()
    return found


async def scalar(conn: Conn, query: Query, params: Params | None = None) -> Any:
    """The first column of the first row (None when there is no row)."""
    async with conn.cursor(row_factory=scalar_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchone()


async def scalars(conn: Conn, query: Query, params: Params | None = None) -> list[Any]:
    """The first column of every row."""
    async with conn.cursor(row_factory=scalar_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()
