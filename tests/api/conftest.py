"""Fixtures for the api tests: a migrated database with the small world, and a TestClient
run as a context manager (so the lifespan opens the real pool)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient
from psycopg import AsyncConnection

from api.config import ApiConfig, MqttTarget
from api.main import create_app
from api.security import SESSION_COOKIE
from api.store import access
from tests.api.world import FAST, USERS, World, build_world

T = TypeVar("T")


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
