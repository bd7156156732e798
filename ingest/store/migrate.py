"""Versioned migrations: discover, choose the backend variant, apply each in its own transaction.

The backend (TimescaleDB or stock PostgreSQL) is decided once, by the first migration run, and
recorded in ``daon_meta``; later runs use the same variant whatever the server offers, so a
database never mixes the two layouts.
"""

from __future__ import annotations

import hashlib
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
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(timescale|postgres))?\.sql$")
_LOCK_KEY = 0x6461_6F6E  # "daon": serialises concurrent migrators


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

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
        version, name, which = int(match[1]), match[2], match[3]
        if which is not None and which != variant:
            continue
        if version in by_version and which is None:
            continue  # a backend-specific file wins over a shared one of the same number
        by_version[version] = Migration(version, name, entry.read_text(encoding="utf-8"))
    return [by_version[v] for v in sorted(by_version)]


async def _choose_backend(conn: psycopg.AsyncConnection[Any], timescaledb: str) -> Backend:
    row = await (await conn.execute("SELECT value FROM daon_meta WHERE key = 'backend'")).fetchone()
    if row is not None:
        recorded = str(row[0])
        if recorded not in ("timescaledb", "postgresql"):
            raise StoreError(f"daon_meta records an unknown backend {recorded!r}")
        return "timescaledb" if recorded == "timescaledb" else "postgresql"
    if timescaledb == "off":
        return "postgresql"
    available = await (
        await conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    ).fetchone()
    if available is None:
        if timescaledb == "on":
            raise StoreError(
                "timescaledb=on but the TimescaleDB extension is not installed on this server"
            )
        return "postgresql"
    try:
        async with conn.transaction():
            await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error as exc:
        if timescaledb == "on":
            raise StoreError(f"cannot enable TimescaleDB: {exc}") from exc
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
                    async with conn.transaction():
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
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return MigrationReport(backend=backend, applied=tuple(applied), version=version)
