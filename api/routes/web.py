"""Sign-in, sign-out and the role's home page.

The other pages live in their own modules (worklist, resident, rehab, liaison, station,
unbound, reports, admin) and are included from here, so ``api.main`` includes one router.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.templating import Jinja2Templates

from api import glossary
from api.config import ApiConfig
from api.deps import Config, Conn, CsrfChecked, WebSession, client_address, short_connection
from api.security import (
    SESSION_COOKIE,
    HashSlots,
    hash_password_async,
    needs_rehash,
    verify_password_async,
)
from api.store import access, throttle
from api.store.access import Role

router = APIRouter(include_in_schema=False)

LOGIN_CSRF_COOKIE = "daon_login_csrf"

HOME: dict[Role, str] = {
    Role.NURSE: "/worklist",
    Role.ADMIN: "/worklist",
    Role.THERAPIST: "/rehab",
    Role.LIAISON: "/liaison",
    Role.STATION: "/station",
}


logger = logging.getLogger(__name__)


def templates(request: Request) -> Jinja2Templates:
    found: Jinja2Templates = request.app.state.templates
    return found


SLOW_RENDER_S = 0.2  # a page render longer than this holds the event loop: logged


def render(
    request: Request, name: str, context: dict[str, object], status_code: int = 200
) -> Response:
    started = time.perf_counter()
    response = templates(request).TemplateResponse(request, name, context, status_code=status_code)
    took = time.perf_counter() - started
    if took > SLOW_RENDER_S:  # rendering runs in the event loop: nothing else runs meanwhile
        logger.info("rendering %s took %.0f ms", name, took * 1000)
    return response


def _secure(request: Request) -> bool:
    """Cookies are Secure when configured so, and whenever the request came over https,
    directly or through a trusted proxy (whose X-Forwarded-Proto api.main believes)."""
    config: ApiConfig = request.app.state.config
    return config.cookie_secure or request.url.scheme == "https"


def _login_page(
    request: Request, error: str | None = None, status: int = 200, username: str = ""
) -> Response:
    """The sign-in form; after a failed attempt it keeps the user name (issue 15.5)."""
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        {"actor": None, "error": error, "login_csrf": token, "username": username},
        status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request)
    )
    return response


@router.get("/login")
async def login_form(request: Request) -> Response:
    return _login_page(request)


def _too_many(request: Request, wait: timedelta) -> Response:
    seconds = max(1, round(wait.total_seconds()))
    when = f"{seconds}초" if seconds < 120 else f"{round(seconds / 60)}분"
    response = _login_page(
        request, str(glossary.message("login", "too-many", when=when, seconds=seconds)), 429
    )
    response.headers["Retry-After"] = str(seconds)
    return response


@router.post("/login")
async def login(
    request: Request,
    config: Config,
    username: Annotated[str, Form(max_length=100)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    login_csrf: Annotated[str, Form()] = "",
) -> Response:
    """Sign in. The source (client address, from a trusted proxy's header only) is slowed
    down after a few failures; the account is never locked, so nobody can lock a nurse out.
    No database connection is held while the password hash is computed (api.security)."""
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not cookie or not secrets.compare_digest(cookie, login_csrf):
        return _login_page(request, str(glossary.message("login", "expired")), 400)
    client = client_address(request)
    async with short_connection(request) as conn:
        wait = await throttle.admit(conn, throttle.LOGIN, client, config.login_policy)
        found = await access.credentials(conn, username) if wait is None else None
    if wait is not None:
        return _too_many(request, wait)
    slots: HashSlots = request.app.state.hash_slots
    ok = await verify_password_async(
        password, found.password_hash if found else None, config.password_params, slots
    )
    ok = ok and found is not None and found.active
    rehash = None
    if (
        ok
        and found
        and found.password_hash
        and needs_rehash(found.password_hash, config.password_params)
    ):
        rehash = await hash_password_async(password, config.password_params, slots)
    async with short_connection(request) as conn:
        actor = await access.load_actor(conn, found.user_id) if ok and found else None
        if actor is not None:
            await throttle.succeeded(conn, throttle.LOGIN, client)
            if rehash is not None:
                await access.set_password_hash(conn, actor.user_id, rehash)
        await access.record_audit(
            conn,
            actor,
            subtype="login",
            action="E",
            entity="Session",
            outcome=access.Outcome.SUCCESS if actor else access.Outcome.MINOR_FAILURE,
            type_code=access.TYPE_USER_AUTHENTICATION,
            client_digest=access.digest(client),
        )
        if actor is None:
            return _login_page(
                request,
                str(glossary.message("login", "wrong")),
                401,
                username=username,
            )
        if actor.role is Role.GATEWAY:
            return _login_page(request, str(glossary.message("login", "service-account")), 403)
        session = await access.create_session(conn, actor.user_id, lifetime=config.session_lifetime)
    response = RedirectResponse(HOME[actor.role], status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session.token,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        max_age=int(config.session_lifetime.total_seconds()),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request, conn: Conn, session: CsrfChecked) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await access.end_session(conn, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/")
async def home(session: WebSession) -> Response:
    target = HOME.get(session.actor.role)
    if target is None:
        raise access.AccessDenied(session.actor, "use the web application")
    return RedirectResponse(target, status_code=303)
