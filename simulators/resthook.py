"""A rest-hook receiver to test and benchmark alert delivery against: a real HTTP server process.

Run ``python -m simulators.resthook --port 0``; it prints ``LISTENING <port>`` and then records
every POST/PUT it receives (method, path, headers, body, arrival time). Control and inspection
over the same port (loopback only):

- ``GET /_received?after=N`` → JSON list of the requests received from index N on;
- ``POST /_mode`` with body ``ok`` | ``500`` | ``redirect`` | ``hang`` → how it answers next
  (``hang`` waits 120 s before answering; ``redirect`` answers 302 to ``/elsewhere``).

It plays a district SMS / 알림톡 relay in tests and in ``bench/alerts.py``; it sends nothing on.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_lock = threading.Lock()
_received: list[dict[str, Any]] = []
_mode = ["ok"]
_listeners: list[Callable[[dict[str, Any]], None]] = []


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/_received":
            self._reply(404)
            return
        after = int(parse_qs(parts.query).get("after", ["0"])[0])
        with _lock:
            body = json.dumps(_received[after:], ensure_ascii=False).encode()
        self._reply(200, body, {"Content-Type": "application/json"})

    def _notification(self) -> None:
        body = self._body()
        if self.path == "/_mode":
            with _lock:
                _mode[0] = body.decode().strip()
            self._reply(204)
            return
        record = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
            "at": time.time(),
        }
        with _lock:
            mode = _mode[0]
            if mode == "ok":
                _received.append(record)
                for listener in _listeners:
                    listener(record)
        if mode == "500":
            self._reply(500, b"relay broken")
        elif mode == "redirect":
            self._reply(302, b"", {"Location": "/elsewhere"})
        elif mode == "hang":
            time.sleep(120)
            self._reply(200)
        else:
            self._reply(200)

    do_POST = _notification
    do_PUT = _notification


def serve_in_thread(
    port: int = 0, on_request: Callable[[dict[str, Any]], None] | None = None
) -> ThreadingHTTPServer:
    """Run the receiver on a daemon thread (the demo's relay); stop it with ``shutdown()``
    and ``server_close()``. ``on_request`` sees every notification it acknowledges."""
    if on_request is not None:
        _listeners.append(on_request)
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
    ).start()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mode", default="ok")
    args = parser.parse_args(argv)
    _mode[0] = args.mode
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _Handler)
    server.daemon_threads = True
    print(f"LISTENING {server.server_address[1]}", flush=True)  # noqa: T201 - the handshake
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
