"""Migrations against a real PostgreSQL: idempotent, all-or-nothing, and the status they report."""

from __future__ import annotations

import psycopg
import pytest

from ingest import store
from ingest.store.migrate import Migration, discover
from tests.fix_db import timescaledb_setting

pytestmark = pytest.mark.db


async def test_migrate_twice_is_a_no_op(empty_db_url: str) -> None:
    first = await store.migrate(empty_db_url, timescaledb=timescaledb_setting())
    assert first.applied == tuple(m.version for m in discover(first.backend))
    second = await store.migrate(empty_db_url, timescaledb=timescaledb_setting())
    assert second.applied == ()
    assert second.version == first.version


async def test_stock_postgres_gets_monthly_partitions_and_a_daily_view(empty_db_url: str) -> None:
    report = await store.migrate(empty_db_url, timescaledb="off")
    assert report.backend == "postgresql"
    async with store.connection(empty_db_url) as conn:
        kind = await (
            await conn.execute("SELECT relkind FROM pg_class WHERE relname = 'observation'")
        ).fetchone()
        parts = await (
            await conn.execute(
                "SELECT count(*) FROM pg_inherits WHERE inhparent = 'observation'::regclass"
            )
        ).fetchone()
        view = await (
            await conn.execute("SELECT relkind FROM pg_class WHERE relname = 'observation_daily'")
        ).fetchone()
    assert kind == ("p",)  # declaratively partitioned
    assert parts is not None
    assert parts[0] >= 37  # 24 months back, 12 ahead, and the default
    assert view == ("m",)


async def test_a_failing_migration_leaves_the_previous_version(empty_db_url: str) -> None:
    good = Migration(1, "good", "CREATE TABLE kept (id int);")
    bad = Migration(2, "bad", "CREATE TABLE half_done (id int); SELECT no_such_function();")
    with pytest.raises(store.MigrationError) as caught:
        await store.migrate(empty_db_url, migrations=[good, bad])
    assert caught.value.version == 2
    async with store.connection(empty_db_url) as conn:
        assert await store.current_version(conn) == 1
        half = await (await conn.execute("SELECT to_regclass('half_done')")).fetchone()
        kept = await (await conn.execute("SELECT to_regclass('kept')")).fetchone()
    assert half == (None,)
    assert kept is not None
    assert kept[0] is not None


async def test_status_counts_stored_observations(db_url: str, db_backend: str) -> None:
    async with store.connection(db_url) as conn:
        await conn.execute(
            """INSERT INTO observation (id, effective_at, resident_id, code, code_system, value,
                   unit, status, identifier, remainder)
               VALUES (gen_random_uuid(), now(), 'R0000001', '8867-4', 'http://loinc.org', 72,
                   '/min', 'final', 'x-1', '{}')"""
        )
        await conn.commit()
        status = await store.read_status(conn)
    assert status.counts["observations"] == 1
    assert status.schema_version >= 1
    assert status.backend == db_backend


async def test_unreachable_database_is_one_clear_error() -> None:
    url = "postgresql://postgres:secret@127.0.0.1:1/daon"
    with pytest.raises(store.StoreUnavailable) as caught:
        await store.migrate(url)
    message = str(caught.value)
    assert "127.0.0.1:1" in message
    assert "DAON_DATABASE_URL" in message
    assert "secret" not in message


def test_an_observation_identifier_is_unique(db_url: str) -> None:
    # the identity is the Observation id (the UUIDv5 of the identifier), whatever the time
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO observation_identity (observation_id, key_time, effective_at) "
            "VALUES ('6f3b0c1e-0d2a-5a2f-9a64-f3b7a9a2c1d0', '2025-03-04', now())"
        )
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO observation_identity (observation_id, key_time, effective_at) "
                "VALUES ('6f3b0c1e-0d2a-5a2f-9a64-f3b7a9a2c1d0', '2025-03-04', "
                "now() - interval '1 hour')"
            )
