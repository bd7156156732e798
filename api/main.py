"""The FastAPI application: ``create_app(config)``.

The lifespan opens the database pool and the check-in publisher and keeps them on
``app.state`` (never import-time globals). Errors become OperationOutcome under /fhir and
Korean-first pages elsewhere; access denials are written to the audit trail on a connection
of their own, because the request's transaction is rolled back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psycopg
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from api import fhirjson, glossary, ui
from api.alerts import AlertHub
from api.checkin import CheckinPublisher
from api.config import ApiConfig
from api.deps import CsrfFailed, NotAuthenticated, ServiceBusy
from api.fhirsearch import SearchError
from api.routes import admin, resident, staff, station, subscription, unbound, web, worklist
from api.routes import alerts as alert_routes
from api.routes import fhir as fhir_routes
from api.security import SESSION_COOKIE, HashingBusy, HashSlots
from api.store import access
from ingest import store

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent

#: Session settings of the api's connections. Every statement is bounded; and statements are
#: prepared once per connection with a generic plan (deps.get_conn sets prepare_threshold),
#: because planning a query over the observation table's monthly partitions costs 15-20 ms
#: while running it costs 1-5 ms (bench/api.py); run-time partition pruning still applies.
SESSION_OPTIONS = "-c statement_timeout={timeout_ms} -c plan_cache_mode=force_generic_plan"


def _is_fhir(request: Request) -> bool:
    return request.url.path.startswith("/fhir")


def create_app(config: ApiConfig) -> FastAPI:
    """Build the application; nothing connects until the lifespan starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        conninfo = make_conninfo(
            config.database_url,
            options=SESSION_OPTIONS.format(timeout_ms=config.statement_timeout_ms),
            application_name="daon-api",
        )
        pool = await store.open_pool(
            conninfo,
            min_size=config.pool_min,
            max_size=config.pool_max,
            name="daon-api",
            wait_s=config.pool_timeout_s,
        )
        publisher = CheckinPublisher(config.mqtt, config.topic_root, config.mqtt_timeout_s)
        await publisher.start()
        hub = AlertHub(config.database_url)
        await hub.start()
        app.state.pool = pool
        app.state.publisher = publisher
        app.state.hash_slots = HashSlots(config.hash_concurrency, config.hash_wait_s)
        app.state.alert_hub = hub
        try:
            yield
        finally:
            await hub.stop()
            await publisher.stop()
            await pool.close()

    app = FastAPI(
        title="Daon",
        summary="행복다온 U-health: FHIR R4 API and the staff and station web application",
        version=version("daon"),
        lifespan=lifespan,
    )
    app.state.config = config
    templates = Jinja2Templates(directory=HERE / "templates")
    ui.install(templates)
    app.state.templates = templates
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(fhir_routes.router)
    for module in (
        web,
        station,
        resident,
        staff,
        unbound,
        worklist,
        alert_routes,
        subscription,
        admin,
    ):
        app.include_router(module.router)
    _install_error_handlers(app)
    app.add_middleware(RequestLog)
    if config.trusted_proxies:
        # outermost: the client address and scheme every layer sees (login limits, audit,
        # the Secure cookie) come from a forwarded header only when a trusted proxy sent it
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(config.trusted_proxies))
    return app


_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
)


class RequestLog:
    """Pure ASGI middleware: security headers on every response, and one INFO line per
    request with the route template, never the concrete path or query (which may carry
    resident ids). Cheaper than ``@app.middleware("http")``, which runs a task per request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_with_headers(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in _SECURITY_HEADERS if n not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            route = scope.get("route")
            logger.info(
                "%s %s -> %d in %.1f ms",
                scope.get("method"),
                getattr(route, "path", "(unrouted)"),
                status,
                (time.perf_counter() - started) * 1000,
            )


async def _signed_in(request: Request) -> tuple[access.Actor | None, str]:
    """The signed-in user of a failed page request (for the menu), on a connection of its own:
    the request's transaction is rolled back, and an unknown path never opened one."""
    pool: AsyncConnectionPool | None = getattr(request.app.state, "pool", None)
    token = request.cookies.get(SESSION_COOKIE)
    if pool is None or not token or _is_fhir(request):
        return None, ""
    config: ApiConfig = request.app.state.config
    try:
        async with pool.connection(timeout=5.0) as conn:
            info = await access.session_actor(conn, token, idle=config.session_idle)
    except (psycopg.Error, TimeoutError):
        return None, ""
    return (info.actor, info.csrf_token) if info else (None, "")


async def _error_page(
    request: Request, status: int, title: str, message: str, *, menu: bool = True
) -> Response:
    """A Korean-first error page that keeps the menu and the search box (no dead end); without
    ``menu`` when the database is the problem."""
    templates: Jinja2Templates = request.app.state.templates
    actor, csrf_token = await _signed_in(request) if menu else (None, "")
    return templates.TemplateResponse(
        request,
        "error.html",
        {"title": title, "message": message, "actor": actor, "csrf_token": csrf_token},
        status_code=status,
    )


def _outcome(status: int, code: str, text: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        fhirjson.dumps(fhirjson.operation_outcome(code, text)),
        status_code=status,
        media_type=fhirjson.MEDIA_TYPE,
        headers=headers,
    )


async def _audit_denial(request: Request, exc: access.AccessDenied) -> None:
    pool: AsyncConnectionPool | None = getattr(request.app.state, "pool", None)
    if pool is None:
        return
    route = request.scope.get("route")
    try:
        async with pool.connection(timeout=5.0) as conn:
            await access.record_audit(
                conn,
                exc.actor,
                subtype="denied",
                action="E",
                entity=f"{request.method} {getattr(route, 'path', '?')}",
                residents=[exc.resident] if exc.resident else [],
                outcome=access.Outcome.MINOR_FAILURE,
            )
    except (psycopg.Error, TimeoutError) as failure:  # the denial stands either way
        logger.warning("could not audit an access denial: %s", failure)


#: The one answer a member of staff gets for "not yours" and for "does not exist", so that
#: neither resident ids, cards, consent ids nor any other id can be probed (issue 13.6).
HIDDEN = glossary.ERRORS["hidden"]


def _sees_everything(request: Request) -> bool:
    """Admins see every record, so telling them "does not exist" reveals nothing."""
    actor = getattr(request.state, "actor", None)
    return isinstance(actor, access.Actor) and actor.role is access.Role.ADMIN


async def _hidden(request: Request) -> Response:
    if _is_fhir(request):
        return _outcome(403, "forbidden", HIDDEN)
    return await _error_page(request, 403, glossary.ERRORS["403"], HIDDEN)


#: Korean text of the framework's own HTTP errors on /fhir (the English detail follows it).
_FHIR_KOREAN = glossary.HTTP_KOREAN


def _install_error_handlers(app: FastAPI) -> None:
    async def denied(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, access.AccessDenied)
        await _audit_denial(request, exc)
        if not _sees_everything(request):
            return await _hidden(request)
        text = f"{glossary.ERRORS['forbidden']}: {exc.actor.role} may not {exc.what}"
        if _is_fhir(request):
            return _outcome(403, "forbidden", text)
        return await _error_page(request, 403, glossary.ERRORS["403"], text)

    async def not_found(request: Request, exc: Exception) -> Response:
        if getattr(request.state, "actor", None) is not None and not _sees_everything(request):
            return await _hidden(request)
        text = f"{glossary.ERRORS['not-found']}: {exc}"
        if _is_fhir(request):
            return _outcome(404, "not-found", text)
        return await _error_page(request, 404, glossary.ERRORS["404"], text)

    async def invalid(request: Request, exc: Exception) -> Response:
        text = str(exc)
        if _is_fhir(request):
            return _outcome(400, "invalid", text)
        return await _error_page(request, 400, glossary.ERRORS["400"], text)

    async def unauthenticated(request: Request, exc: Exception) -> Response:
        if _is_fhir(request) or request.method != "GET":
            text = glossary.ERRORS["login"]
            if _is_fhir(request):
                return _outcome(401, "login", text, {"WWW-Authenticate": "Bearer"})
            return await _error_page(request, 401, glossary.ERRORS["401"], text)
        return RedirectResponse("/login", status_code=303)

    async def csrf(request: Request, exc: Exception) -> Response:
        return await _error_page(
            request,
            403,
            glossary.ERRORS["csrf.title"],
            glossary.ERRORS["csrf"],
        )

    async def busy(request: Request, exc: Exception) -> Response:
        text = glossary.ERRORS["busy"]
        if _is_fhir(request):
            return _outcome(503, "transient", text, {"Retry-After": "5"})
        return await _error_page(request, 503, glossary.ERRORS["503"], text, menu=False)

    async def database_down(request: Request, exc: Exception) -> Response:
        logger.error("database error: %s", type(exc).__name__)
        text = glossary.ERRORS["database"]
        if _is_fhir(request):
            return _outcome(503, "transient", text, {"Retry-After": "10"})
        return await _error_page(request, 503, glossary.ERRORS["database.title"], text, menu=False)

    async def validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        parts = [
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', '')}"
            for err in exc.errors()
        ]
        text = glossary.ERRORS["invalid"] + ": " + "; ".join(parts)
        if _is_fhir(request):
            return _outcome(400, "invalid", text)
        return await _error_page(request, 400, glossary.ERRORS["400"], text)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if _is_fhir(request):
            code = {404: "not-found", 405: "not-supported", 406: "not-supported"}.get(
                exc.status_code, "processing"
            )
            text = str(exc.detail)
            if not any("\uac00" <= ch <= "\ud7a3" for ch in text):  # Korean first, always
                korean = _FHIR_KOREAN.get(exc.status_code, glossary.HTTP_KOREAN[0])
                text = f"{korean} / {text}"
            return _outcome(exc.status_code, code, text)
        if exc.status_code == 404:
            return await _error_page(
                request, 404, glossary.ERRORS["404"], glossary.ERRORS["no-page"]
            )
        # any other status of the framework's own (405 for a GET of a form's address ...):
        # the error page in Korean first, never the framework's English word alone
        korean = glossary.HTTP_KOREAN.get(exc.status_code, glossary.HTTP_KOREAN[0])
        page = await _error_page(
            request, exc.status_code, f"{korean} / {exc.detail}", f"{korean} / {exc.detail}"
        )
        for name, value in (exc.headers or {}).items():
            page.headers[name] = value
        return page

    async def unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.scope.get("route"))
        text = glossary.ERRORS["internal"]
        if _is_fhir(request):
            return _outcome(500, "exception", text)
        return await _error_page(request, 500, glossary.ERRORS["500"], text)

    handlers: list[tuple[Any, Callable[[Request, Exception], Awaitable[Response]]]] = [
        (access.AccessDenied, denied),
        (access.NotFound, not_found),
        (access.InvalidRequest, invalid),
        (SearchError, invalid),
        (NotAuthenticated, unauthenticated),
        (CsrfFailed, csrf),
        (ServiceBusy, busy),
        (HashingBusy, busy),
        (store.StoreUnavailable, database_down),
        (psycopg.OperationalError, database_down),
        (psycopg.DataError, invalid),  # a value the database cannot take (e.g. out of range)
        (RequestValidationError, validation),
        (StarletteHTTPException, http_error),
        (Exception, unexpected),
    ]
    for exc_class, handler in handlers:
        app.add_exception_handler(exc_class, handler)
