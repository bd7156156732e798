"""``daon api``: run the web application and FHIR API with uvicorn.

Thin: settings → :class:`api.config.ApiConfig` (:func:`api_config`, also used by ``daon
demo``), migrate, serve. uvicorn's access log is off: :mod:`api.main` logs one line per
request with the route template, never the concrete path (which may carry resident ids).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import os
import socket
import sys
from typing import Any

from daon.brokerauth import API_USER
from daon.embedded import EmbeddedError
from daon.logsetup import configure_logging
from daon.runtime import demo_broker_url, endpoints
from daon.settings import MqttUrl, Settings, SettingsError, load_settings
from ingest import store


def add_parser(sub: Any, name: str, help_text: str) -> None:
    parser = sub.add_parser(
        name,
        help=help_text,
        description="Serve the staff and station web application and the FHIR R4 API "
        "(/fhir) on DAON_API_HOST:DAON_API_PORT (default 127.0.0.1:8000). Station check-ins "
        "are published to DAON_MQTT_URL (or the demo's broker when it is running). Applies "
        "pending migrations first.",
    )
    parser.add_argument("--host", help="bind address (default: settings api_host)")
    parser.add_argument("--port", type=int, help="port (default: settings api_port)")
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes (default 1; 2 on a 2-core host)"
    )
    parser.set_defaults(handler=run)


def api_config(settings: Settings, database_url: str, mqtt_url: str | None) -> Any:
    """The api's configuration from the process settings and the resolved endpoints."""
    from api.config import ApiConfig, MqttTarget

    mqtt = None
    if mqtt_url:
        parsed = MqttUrl.parse(mqtt_url)
        mqtt = MqttTarget(
            host=parsed.host,
            port=parsed.port,
            tls=parsed.tls,
            username=parsed.username,
            password=parsed.password,
        )
    config = ApiConfig(database_url=database_url, mqtt=mqtt, topic_root=settings.topic_root)
    return config.with_overrides(settings.api)


_log = logging.getLogger(__name__)


def server_options() -> dict[str, Any]:
    """The event loop and HTTP parser of the production server (``daon api``, bench/api.py).

    uvloop and httptools (dependencies, wheels for the usual platforms) when both import:
    the loop and the parser in C, about half of a Patient read's CPU in the server
    (docs/reads.md). uvloop switches Nagle off on every TCP connection it accepts itself.
    Otherwise asyncio and h11 with :data:`NoDelayH11Protocol`, and one log line saying so.
    """
    missing = []
    for name in ("uvloop", "httptools"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if not missing:
        return {"loop": "uvloop", "http": "httptools"}
    names = " and ".join(missing)
    _log.warning(
        "%s을(를) 불러올 수 없어 asyncio + h11로 서비스합니다 (읽기가 느립니다) / "
        "%s not importable: serving on asyncio + h11 (slower reads)",
        names,
        names,
    )
    return {"loop": "asyncio", "http": _nodelay_protocol_class()}


def _nodelay_protocol() -> type:
    """uvicorn's HTTP/1.1 protocol with TCP_NODELAY on every connection (the fallback of
    :func:`server_options`).

    With ``--workers`` uvicorn before 0.55 binds the listening socket itself without
    ``IPPROTO_TCP``, so asyncio does not switch Nagle off on accepted connections, and a small
    response written as headers then body waits for the client's delayed ACK: 40 ms per
    request (bench/api.py; tests/api/test_server.py).
    Built on first use so that ``daon --help`` does not import uvicorn.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class NoDelayH11Protocol(H11Protocol):
        def connection_made(self, transport: Any) -> None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().connection_made(transport)

    NoDelayH11Protocol.__module__ = __name__
    NoDelayH11Protocol.__qualname__ = "NoDelayH11Protocol"
    return NoDelayH11Protocol


def __getattr__(name: str) -> Any:
    """``NoDelayH11Protocol`` resolves lazily (uvicorn pickles it by name for its workers)."""
    if name == "NoDelayH11Protocol":
        cls = _nodelay_protocol()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


def _nodelay_protocol_class() -> type:
    cls: type = __getattr__("NoDelayH11Protocol")
    return cls


def asgi_app() -> Any:
    """The app for uvicorn worker processes (``--workers``): settings from the environment,
    which :func:`run` fills with the endpoints it resolved."""
    from api.main import create_app

    settings = load_settings()
    if not settings.database_url:
        raise SettingsError("DAON_DATABASE_URL is not set for the api worker")
    return create_app(api_config(settings, settings.database_url, settings.mqtt_url))


def run(args: argparse.Namespace) -> int:
    configure_logging(max(args.verbose, 1))
    try:
        import uvicorn

        from api.main import create_app

        settings = load_settings(args.config)
        with endpoints(settings, need_mqtt=False) as ep:
            mqtt_url = ep.mqtt_url or settings.mqtt_url
            if mqtt_url is None:
                mqtt_url = demo_broker_url(settings, API_USER)
            asyncio.run(store.migrate(ep.database_url, timescaledb=settings.timescaledb))
            config = api_config(settings, ep.database_url, mqtt_url)
            host = args.host or settings.api_host
            port = args.port or settings.api_port
            print(f"Daon web application: http://{host}:{port}/  (FHIR: /fhir/metadata)")
            if mqtt_url is None:
                print("no MQTT broker: station check-ins are recorded but not sent to gateways")
            common: dict[str, Any] = {
                "host": host,
                "port": port,
                "access_log": False,
                "log_level": "info" if args.verbose else "warning",
                # forwarded headers are believed only from [api] trusted_proxies, by the app
                # itself (api.main), never from whoever connects over loopback
                "proxy_headers": False,
                **server_options(),
            }
            if args.workers > 1:
                os.environ["DAON_DATABASE_URL"] = ep.database_url
                if mqtt_url:
                    os.environ["DAON_MQTT_URL"] = mqtt_url
                uvicorn.run(
                    "daon.commands.api:asgi_app", factory=True, workers=args.workers, **common
                )
            else:
                uvicorn.run(create_app(config), **common)
    except (SettingsError, EmbeddedError, store.StoreError, ValueError) as exc:
        print(f"daon api: {exc}", file=sys.stderr)
        return 1
    return 0
