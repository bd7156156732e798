"""The production server's settings (``daon api``, bench/api.py): uvloop and httptools when they
import, asyncio and h11 otherwise; and on either, every accepted connection has TCP_NODELAY, the
option whose absence made a small response wait 40 ms for the client's delayed ACK.

The servers here are real uvicorn servers, under the loop the config names, answered by a real
HTTP/1.1 client, on a listening socket made without ``IPPROTO_TCP`` as uvicorn made it for
``--workers`` before it passed the protocol (0.55 passes it, and then asyncio sets the option
itself): the harder case, where only the loop or the protocol can switch Nagle off."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from typing import Any

import pytest
import uvicorn

from daon.commands import api as api_command


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


def _serve_once(options: dict[str, Any]) -> tuple[bytes, list[int], type, type]:
    """One GET against a uvicorn server built from ``options``: the response, TCP_NODELAY as
    the server's side of each accepted connection had it once the protocol had taken it over,
    and the protocol class and event loop class that served."""
    config = uvicorn.Config(
        _hello, host="127.0.0.1", port=0, lifespan="off", log_level="warning", **options
    )
    config.load()
    base: type = config.http_protocol_class
    seen: list[int] = []

    class Observed(base):  # type: ignore[misc]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    config.http_protocol_class = Observed
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # proto 0, see the module's doc
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(config)

    async def main() -> tuple[bytes, type]:
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            async with asyncio.timeout(10):
                # uvicorn.Server has only a flag for "listening", no event to wait on.
                while not server.started:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                try:
                    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    await writer.drain()
                    response = await reader.read()
                finally:
                    writer.close()
                    await writer.wait_closed()
        finally:
            server.should_exit = True
            async with asyncio.timeout(10):
                await serving
        return response, type(asyncio.get_running_loop())

    factory = config.get_loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        response, loop_class = runner.run(main())
    sock.close()
    return response, seen, base, loop_class


def test_production_server_is_uvloop_and_httptools_and_sets_nodelay() -> None:
    import uvloop
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    options = api_command.server_options()
    assert options == {"loop": "uvloop", "http": "httptools"}
    response, nodelay, protocol, loop_class = _serve_once(options)
    assert response.startswith(b"HTTP/1.1 200 ")
    assert response.endswith(b"\r\n\r\nok")
    assert protocol is HttpToolsProtocol
    assert issubclass(loop_class, uvloop.Loop)
    assert len(nodelay) == 1
    assert nodelay[0] != 0


def test_without_uvloop_the_server_falls_back_to_asyncio_h11_with_nodelay(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # None in sys.modules makes ``import uvloop`` raise ImportError, as on a platform without it.
    monkeypatch.setitem(sys.modules, "uvloop", None)
    with caplog.at_level(logging.WARNING, logger=api_command.__name__):
        options = api_command.server_options()
    assert options["loop"] == "asyncio"
    assert options["http"] is api_command.NoDelayH11Protocol
    lines = [r.getMessage() for r in caplog.records if r.name == api_command.__name__]
    assert lines == [
        "uvloop을(를) 불러올 수 없어 asyncio + h11로 서비스합니다 (읽기가 느립니다) / "
        "uvloop not importable: serving on asyncio + h11 (slower reads)"
    ]

    response, nodelay, protocol, loop_class = _serve_once(options)
    assert response.startswith(b"HTTP/1.1 200 ")
    assert response.endswith(b"\r\n\r\nok")
    assert protocol is api_command.NoDelayH11Protocol
    assert loop_class.__module__.startswith("asyncio")
    assert len(nodelay) == 1
    assert nodelay[0] != 0


def test_plain_h11_on_a_bound_socket_leaves_nagle_on() -> None:
    """Why the fallback's protocol exists: uvicorn's own h11 protocol on asyncio, on such a
    socket, leaves Nagle on (if this starts failing, asyncio or uvicorn now sets the option
    whatever the socket and ``NoDelayH11Protocol`` can go)."""
    response, nodelay, _, _ = _serve_once({"loop": "asyncio", "http": "h11"})
    assert response.startswith(b"HTTP/1.1 200 ")
    assert nodelay == [0]
