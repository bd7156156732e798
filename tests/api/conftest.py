"""Fixtures for the api tests: a migrated database with the small world, and a TestClient
run as a context manager (so the lifespan opens the real pool); and ``demo_stack``, the whole
``daon demo`` started once per worker on a fresh database, for the tests of what each role sees
on a first start."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from psycopg import AsyncConnection

from api.config import ApiConfig, MqttTarget
from api.main import create_app
from api.security import SESSION_COOKIE
from api.store import access
from daon.demo import DemoReport, run_demo
from daon.embedded import free_port
from daon.settings import Settings
from tests.api.world import FAST, USERS, World, build_world
from tests.fix_db import _drop, _fresh_database

T = TypeVar("T")


def seoul_today() -> date:
    """Today where the district is: pages and forms count days in Asia/Seoul, a day ahead of
    the server's UTC from 00:00 to 09:00 there."""
    return datetime.now(ZoneInfo("Asia/Seoul")).date()


def run_db(url: str, work: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
    """Run ``work`` on a fresh autocommit connection (outside the app's event loop)."""

    async def go() -> T:
        async with await AsyncConnection.connect(url, autocommit=True) as conn:
            return await work(conn)

    return asyncio.run(go())


@dataclass
class Api:
    client: TestClient
    url: str
    world: World
    tokens: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, tuple[str, str]] = field(default_factory=dict)

    def bearer(self, user_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user_id]}"}

    def login_as(self, user_id: str) -> str:
        """Put the user's session cookie on the client; returns the CSRF token."""
        token, csrf = self.sessions[user_id]
        self.client.cookies.clear()
        self.client.cookies.set(SESSION_COOKIE, token)
        return csrf

    def db(self, work: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
        return run_db(self.url, work)


@pytest.fixture
def world_url(db_url: str) -> tuple[str, World]:
    return db_url, run_db(db_url, build_world)


def make_config(url: str, **changes: Any) -> ApiConfig:
    return ApiConfig(database_url=url, password_params=FAST, pool_min=1, pool_max=4, **changes)


@pytest.fixture
def api_factory(world_url: tuple[str, World]) -> Iterator[Callable[..., Api]]:
    """Start the app with optional config changes; stopped at the end of the test."""
    url, world = world_url
    stack: list[TestClient] = []

    async def credentials(conn: AsyncConnection[Any]) -> tuple[dict[str, str], dict[str, Any]]:
        tokens, sessions = {}, {}
        for user_id in USERS:
            tokens[user_id] = (await access.create_token(conn, user_id, "test")).token
            new = await access.create_session(conn, user_id, lifetime=timedelta(hours=1))
            sessions[user_id] = (new.token, new.csrf_token)
        return tokens, sessions

    def start(mqtt: MqttTarget | None = None, topic_root: str = "daon", **changes: Any) -> Api:
        config = make_config(url, mqtt=mqtt, topic_root=topic_root, **changes)
        client = TestClient(create_app(config), follow_redirects=False)
        client.__enter__()
        stack.append(client)
        tokens, sessions = run_db(url, credentials)
        return Api(client=client, url=url, world=world, tokens=tokens, sessions=sessions)

    yield start
    for client in reversed(stack):
        client.__exit__(None, None, None)


@pytest.fixture
def api(api_factory: Callable[..., Api]) -> Api:
    return api_factory()


@dataclass(frozen=True)
class DemoStack:
    """A running ``daon demo``: its web address (no trailing slash), database and banner."""

    base: str
    database_url: str
    report: DemoReport

    def session(self, user_id: str) -> str:
        """A session token for ``user_id``, made by the store as the login form does after
        the password check (the demo's scrypt cost is for people, not for 30 test logins)."""

        async def make(conn: AsyncConnection[Any]) -> str:
            return (await access.create_session(conn, user_id, lifetime=timedelta(hours=1))).token

        return run_db(self.database_url, make)


@pytest.fixture(scope="module")
def demo_stack(
    pg_server_url: str, mqtt_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoStack]:
    """``run_demo`` as ``make demo`` runs it (every service, the seed and the 90-day history
    written on the first start) on an empty database and state folder of its own, in a thread
    with its own event loop; stopped at the end of the module. Tests that use it carry
    ``pytest.mark.xdist_group("demo")`` so that one worker runs them.

    Module scope, not session: the demo's gateways reach its virtual BlueZ through the
    process's ``DBUS_SYSTEM_BUS_ADDRESS``, which bleak reads at every connection. A BLE test
    later in the same worker points that variable at its own bus, and a demo still running
    then connected and disconnected there (seen in CI: ``Device1.Disconnect`` from another
    client, "gone from BlueZ" warnings of demo devices during a glucose-meter test)."""
    name, url = _fresh_database(pg_server_url, None)
    state: Path = tmp_path_factory.mktemp("demo-state")
    settings = Settings(
        database_url=url,
        mqtt_url=mqtt_url,
        topic_root=f"daon-test/{uuid.uuid4().hex[:12]}",
        state_dir=state,
        api_port=free_port(),
    )
    ready: concurrent.futures.Future[DemoReport] = concurrent.futures.Future()
    control: dict[str, Any] = {}

    async def main() -> None:
        control["loop"] = asyncio.get_running_loop()
        control["stop"] = stop = asyncio.Event()
        await run_demo(settings, url, mqtt_url, stop=stop, on_ready=ready.set_result)

    def thread_main() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # handed to the waiting fixture, then re-raised
            if not ready.done():
                ready.set_exception(exc)
            raise
        finally:
            if not ready.done():
                ready.set_exception(RuntimeError("the demo stopped before it was ready"))

    thread = threading.Thread(target=thread_main, name="daon-demo", daemon=True)
    thread.start()
    try:
        report = ready.result(timeout=180)
        yield DemoStack(report.url.rstrip("/"), url, report)
    finally:
        loop = control.get("loop")
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(control["stop"].set)
        thread.join(timeout=60)
        _drop(pg_server_url, name)
