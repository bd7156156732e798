"""Request dependencies as Annotated aliases, so routes declare only domain parameters.

Config         the ApiConfig the app was created with
Conn           a pooled connection; one transaction per request, committed when the route
               returns (before the response is sent), rolled back if it raises
CurrentActor   the user of a bearer token or a web session (401 / login redirect if none), for
               the FHIR API: never a station account (a kiosk sees only its own screen)
WebSession     the web session's user and CSRF token (cookie only; never a gateway account)

The actor is also kept on ``request.state.actor`` so that the error handlers can give one
answer to "not yours" and "does not exist" (api.main).
CsrfChecked    a WebSession whose form carried the right CSRF token (POST forms)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from api.config import ApiConfig
from api.security import SESSION_COOKIE
from api.store import access
from api.store.access import Actor, Role

#: Prepare a statement on its second use on a connection (see api.main.SESSION_OPTIONS).
PREPARE_THRESHOLD = 1


class NotAuthenticated(Exception):
    """No valid session or token came with the request."""


class CsrfFailed(Exception):
    """A form was posted without the session's CSRF token."""


class ServiceBusy(Exception):
    """No database connection became free in time."""


def app_config(request: Request) -> ApiConfig:
    config: ApiConfig = request.app.state.config
    return config


async def get_config(request: Request) -> ApiConfig:
    # async though it never waits: FastAPI runs a plain ``def`` dependency in a worker thread
    return app_config(request)


Config = Annotated[ApiConfig, Depends(get_config)]


async def get_conn(request: Request) -> AsyncIterator[AsyncConnection[Any]]:
    pool: AsyncConnectionPool = request.app.state.pool
    config: ApiConfig = request.app.state.config
    try:
        async with pool.connection(timeout=config.pool_timeout_s) as conn:
            await _transactional(conn)
            yield conn
    except PoolTimeout as exc:
        raise ServiceBusy() from exc


Conn = Annotated[AsyncConnection[Any], Depends(get_conn, scope="function")]


@asynccontextmanager
async def short_connection(request: Request) -> AsyncIterator[AsyncConnection[Any]]:
    """A pooled connection for one short step of a route that must not hold one throughout
    (the login holds none while its password hash is computed); committed on exit."""
    pool: AsyncConnectionPool = request.app.state.pool
    config: ApiConfig = request.app.state.config
    try:
        async with pool.connection(timeout=config.pool_timeout_s) as conn:
            await _transactional(conn)
            yield conn
    except PoolTimeout as exc:
        raise ServiceBusy() from exc


async def _transactional(conn: AsyncConnection[Any]) -> None:
    """A request's connection: prepared statements, and one transaction per request. A lookup
    or read that runs as a transaction of its own switches autocommit on and back off
    (``access._lookup``, ``rows.fetch_committed``); should a cancelled one have left it on, the
    next request must still get its transaction (no round trip: a client-side setting)."""
    conn.prepare_threshold = PREPARE_THRESHOLD
    if conn.autocommit:
        await conn.set_autocommit(False)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@dataclass(frozen=True, slots=True)
class Session:
    actor: Actor
    csrf_token: str


async def _session(request: Request, conn: AsyncConnection[Any]) -> Session | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    config = app_config(request)
    info = await access.session_actor(conn, token, idle=config.session_idle)
    if info is None or info.actor.role is Role.GATEWAY:  # service accounts have no web pages
        return None
    actor = info.actor.with_client(client_address(request))
    request.state.actor = actor
    return Session(actor, info.csrf_token)


async def get_actor(request: Request, conn: Conn) -> Actor:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        found = await access.token_actor(conn, header[7:].strip())
        if found is None:
            raise NotAuthenticated()
        actor = found.with_client(client_address(request))
        request.state.actor = actor
    else:
        session = await _session(request, conn)
        if session is None:
            raise NotAuthenticated()
        actor = session.actor
    if actor.role is Role.STATION:
        raise access.AccessDenied(actor, "use the FHIR API (a station shows only its screen)")
    return actor


CurrentActor = Annotated[Actor, Depends(get_actor, scope="function")]


async def get_web_session(request: Request, conn: Conn) -> Session:
    session = await _session(request, conn)
    if session is None:
        raise NotAuthenticated()
    return session


WebSession = Annotated[Session, Depends(get_web_session, scope="function")]


async def get_checked_session(request: Request, session: WebSession) -> Session:
    form = await request.form()
    if form.get("csrf_token") != session.csrf_token:
        raise CsrfFailed()
    return session


CsrfChecked = Annotated[Session, Depends(get_checked_session, scope="function")]
