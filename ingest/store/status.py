"""What ``daon status`` reports: schema version, backend, and the counts staff care about."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from ingest.store.migrate import current_version

# (report key, table, WHERE clause). A table that a later capability has not created yet
# is reported as None rather than 0, so an operator can tell "none" from "not there".
_COUNTS: tuple[tuple[str, str, str], ...] = (
    ("observations", "observation", "TRUE"),
    # flags that reach a worklist (routine and above), and those for information only
    (
        "open_flags",
        "risk_flag",
        "state IN ('open', 'acknowledged', 'snoozed') AND severity <> 'info'",
    ),
    (
        "info_flags",
        "risk_flag",
        "state IN ('open', 'acknowledged', 'snoozed') AND severity = 'info'",
    ),
    ("unbound_readings", "unbound_reading", "state = 'pending'"),
    ("dead_letters", "dead_letter", "TRUE"),
    ("conflicting_duplicates", "dead_letter", "reason = 'conflicting_duplicate'"),
)


@dataclass(frozen=True, slots=True)
class Standby:
    """One streaming standby as its primary sees it (``pg_stat_replication``)."""

    name: str
    state: str
    sync_state: str  # sync, quorum, potential, async
    lag_bytes: int | None  # WAL written on the primary and not yet replayed there
    replay_lag_s: float | None  # PostgreSQL's own measure; None when idle or unknown


@dataclass(frozen=True, slots=True)
class Replication:
    """Where this connection landed and how far behind the standbys are.

    On a primary: its standbys. On a standby: ``in_recovery`` and how old its last replayed
    transaction is (``replay_age_s``; large on an idle primary too, so read it with the lag of
    the primary's view)."""

    in_recovery: bool
    standbys: tuple[Standby, ...] = ()
    replay_age_s: float | None = None


async def read_replication(conn: psycopg.AsyncConnection[Any]) -> Replication:
    """Replication state of the server behind ``conn`` (no extra privileges on a standby; on a
    primary, lag figures need ``pg_monitor`` or superuser, else they read as unknown)."""
    row = await (await conn.execute("SELECT pg_is_in_recovery()")).fetchone()
    if row and row[0]:
        age = await (
            await conn.execute(
                "SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8"
            )
        ).fetchone()
        return Replication(True, replay_age_s=None if not age or age[0] is None else float(age[0]))
    rows = await (
        await conn.execute(
            "SELECT application_name, coalesce(state, '?'), coalesce(sync_state, '?'),"
            " pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint,"
            " extract(epoch FROM replay_lag)::float8"
            " FROM pg_stat_replication ORDER BY application_name"
        )
    ).fetchall()
    standbys = tuple(
        Standby(
            str(name),
            str(state),
            str(sync),
            None if lag is None else int(lag),
            None if seconds is None else float(seconds),
        )
        for name, state, sync, lag, seconds in rows
    )
    return Replication(False, standbys)


@dataclass(frozen=True, slots=True)
class Status:
    schema_version: int
    backend: str
    backend_version: str
    server_version: str
    counts: dict[str, int | None]
    replication: Replication | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def read_status(conn: psycopg.AsyncConnection[Any]) -> Status:
    """Read the status; works on an empty (unmigrated) database too."""
    version = await current_version(conn)
    backend = "postgresql"
    if version:
        row = await (
            await conn.execute("SELECT value FROM daon_meta WHERE key = 'backend'")
        ).fetchone()
        backend = str(row[0]) if row else "postgresql"
    server = await (await conn.execute("SHOW server_version")).fetchone()
    server_version = str(server[0]) if server else "?"
    backend_version = f"PostgreSQL {server_version}"
    if backend == "timescaledb":
        ext = await (
            await conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
        ).fetchone()
        backend_version = f"TimescaleDB {ext[0] if ext else '?'} on PostgreSQL {server_version}"
    counts: dict[str, int | None] = {}
    for key, table, where in _COUNTS:
        exists = await (await conn.execute("SELECT to_regclass(%s)", (table,))).fetchone()
        if exists is None or exists[0] is None:
            counts[key] = None
            continue
        try:
            row = await (
                await conn.execute(f"SELECT count(*) FROM {table} WHERE {where}".encode())
            ).fetchone()
        except psycopg.errors.UndefinedColumn:
            await conn.rollback()
            row = await (await conn.execute(f"SELECT count(*) FROM {table}".encode())).fetchone()
        counts[key] = int(row[0]) if row else 0
    return Status(
        schema_version=version,
        backend=backend,
        backend_version=backend_version,
        server_version=server_version,
        counts=counts,
        replication=await read_replication(conn),
    )
