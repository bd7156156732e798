"""Versioned migrations: discover, choose the backend variant, apply each in its own transaction.

The backend (TimescaleDB or stock PostgreSQL) is decided once, by the first migration run, and
recorded in ``daon_meta``; later runs use the same variant whatever the server offers, so a
database never mixes the two layouts.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import psycopg

from ingest.store.db import connection
from ingest.store.errors import MigrationError, StoreError

logger = logging.getLogger(__name__)

Backend = Literal["timescaledb", "postgresql"]
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(timescale|postgres))?\.(sql|py)$")
_LOCK_KEY = 0x6461_6F6E  # "daon": serialises concurrent migrators


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration: SQL run in one transaction with its version row, or (``python`` set) the
    module ``ingest.migrations.<python>`` whose ``async run(conn)`` moves data in batches of
    its own transactions on the autocommit connection (resumable: it must skip what is done);
    its version row is written when it returns. ``sql`` is the text its checksum covers."""

    version: int
    name: str
    sql: str
    python: str | None = None

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class MigrationReport:
    backend: Backend
    applied: tuple[int, ...]
    version: int


def discover(backend: Backend) -> list[Migration]:
    """All migrations for ``backend``, in version order."""
    by_version: dict[int, Migration] = {}
    variant = "timescale" if backend == "timescaledb" else "postgres"
    for entry in resources.files("ingest.migrations").iterdir():
        match = _NAME.match(entry.name)
        if not match:
            continue
        version, name, which, suffix = int(match[1]), match[2], match[3], match[4]
        if which is not None and which != variant:
            continue
        if version in by_version and which is None:
            continue  # a backend-specific file wins over a shared one of the same number
        module = entry.name[: -len(".py")] if suffix == "py" else None
        by_version[version] = Migration(version, name, entry.read_text(encoding="utf-8"), module)
    return [by_version[v] for v in sorted(by_version)]


def preload_problem(shared_preload_libraries: str) -> str | None:
    """Why ``CREATE EXTENSION timescaledb`` cannot work on this server, or None.

    TimescaleDB must be preloaded: without it in ``shared_preload_libraries`` the server answers
    ``CREATE EXTENSION`` with FATAL and closes the connection (the normal state right after
    installing the package), so this is checked before trying.
    """
    names = [n.strip().strip('"') for n in shared_preload_libraries.split(",") if n.strip()]
    if "timescaledb" in names:
        return None
    wanted = ", ".join([*names, "timescaledb"])
    return (
        "TimescaleDB is installed but not preloaded (shared_preload_libraries = "
        f"'{shared_preload_libraries}'). Set shared_preload_libraries = '{wanted}' in "
        "postgresql.conf (or run timescaledb-tune), restart PostgreSQL, then run "
        "`daon db migrate` again"
    )


def plan_backend(timescaledb: str, available: bool, preload: str | None) -> Backend:
    """The backend for a new database: ``timescaledb`` is the setting (auto | on | off),
    ``available`` whether the server has the extension, ``preload`` the server's
    ``shared_preload_libraries``. ``on`` raises :class:`StoreError` saying what to change;
    ``auto`` falls back to stock PostgreSQL with a warning."""
    if timescaledb == "off":
        return "postgresql"
    if not available:
        if timescaledb == "on":
            raise StoreError(
                "timescaledb=on but the TimescaleDB extension is not installed on this server"
            )
        return "postgresql"
    problem = preload_problem(preload or "")
    if problem is not None:
        if timescaledb == "on":
            raise StoreError(f"timescaledb=on: {problem}")
        logger.warning("%s; using stock PostgreSQL (timescaledb=auto)", problem)
        return "postgresql"
    return "timescaledb"


async def _choose_backend(conn: psycopg.AsyncConnection[Any], timescaledb: str) -> Backend:
    row = await (await conn.execute("SELECT value FROM daon_meta WHERE key = 'backend'")).fetchone()
    if row is not None:
        recorded = str(row[0])
        if recorded not in ("timescaledb", "postgresql"):
            raise StoreError(f"daon_meta records an unknown backend {recorded!r}")
        return "timescaledb" if recorded == "timescaledb" else "postgresql"
    if timescaledb == "off":
        return "postgresql"
    facts = await (
        await conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'), "
            "current_setting('shared_preload_libraries')"
        )
    ).fetchone()
    available, preload = (bool(facts[0]), str(facts[1])) if facts else (False, "")
    if plan_backend(timescaledb, available, preload) == "postgresql":
        return "postgresql"
    try:
        async with conn.transaction():
            await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if timescaledb == "on" or conn.closed:
            # a closed connection cannot go on with stock PostgreSQL either: say so plainly
            raise StoreError(f"cannot enable TimescaleDB: {reason}") from exc
        logger.warning("TimescaleDB is installed but cannot be enabled (%s); using PostgreSQL", exc)
        return "postgresql"
    return "timescaledb"


async def current_version(conn: psycopg.AsyncConnection[Any]) -> int:
    """Highest applied migration, 0 for an empty database."""
    exists = await (await conn.execute("SELECT to_regclass('schema_migration')")).fetchone()
    if exists is None or exists[0] is None:
        return 0
    row = await (
        await conn.execute("SELECT coalesce(max(version), 0) FROM schema_migration")
    ).fetchone()
    return int(row[0]) if row else 0


async def migrate(
    url: str, *, timescaledb: str = "auto", migrations: Sequence[Migration] | None = None
) -> MigrationReport:
    """Apply every pending migration (``migrations`` defaults to the packaged ones).

    Running it again is a no-op.
    """
    async with connection(url, autocommit=True) as conn:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS daon_meta (key text PRIMARY KEY, value text NOT NULL)"
        )
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migration (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            backend = await _choose_backend(conn, timescaledb)
            await conn.execute(
                "INSERT INTO daon_meta (key, value) VALUES ('backend', %s) ON CONFLICT DO NOTHING",
                (backend,),
            )
            cur = await conn.execute("SELECT version, checksum FROM schema_migration")
            done = {int(v): str(c) for v, c in await cur.fetchall()}
            applied: list[int] = []
            for migration in migrations if migrations is not None else discover(backend):
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        logger.warning(
                            "migration %04d %s changed after it was applied (checksum %s, now %s)",
                            migration.version,
                            migration.name,
                            done[migration.version],
                            migration.checksum,
                        )
                    continue
                try:
                    if migration.python is not None:
                        module = importlib.import_module(f"ingest.migrations.{migration.python}")
                        await module.run(conn)
                    async with conn.transaction():
                        if migration.python is None:
                            await conn.execute(migration.sql.encode())
                        await conn.execute(
                            "INSERT INTO schema_migration (version, name, checksum) "
                            "VALUES (%s, %s, %s)",
                            (migration.version, migration.name, migration.checksum),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(
                        migration.version, migration.name, str(exc).strip()
                    ) from exc
                logger.info("applied migration %04d %s", migration.version, migration.name)
                applied.append(migration.version)
            version = await current_version(conn)
        finally:
            # a FATAL error closes the connection (and with it the lock): never let the unlock
            # hide the error that got us here
            if not conn.closed:
                try:
                    await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
                except psycopg.Error as exc:
                    logger.warning("could not release the migration lock: %s", exc)
    return MigrationReport(backend=backend, applied=tuple(applied), version=version)
