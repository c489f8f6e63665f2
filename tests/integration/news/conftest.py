"""Scripted servers on 127.0.0.1 for the news adapters: HTTP for the REST ones (real sockets, real
httpx), WebSocket for Alpaca's news stream (real ``websockets`` on both ends)."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest


class NewsServer:
    """Answers each request with the next scripted (status, headers, body); records every path."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str], bytes]] = []
        self.requests: list[str] = []
        self.headers: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                server.headers.append(dict(self.headers.items()))
                if server.script:
                    status, headers, body = server.script.pop(0)
                else:
                    status, headers, body = 200, {}, b'{"status":"OK","results":[],"count":0}'
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def add(self, status: int = 200, body: bytes | str = b"", headers: dict[str, str] | None = None) -> None:
        self.script.append((status, headers or {}, body.encode() if isinstance(body, str) else body))

    def query(self, n: int) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.requests[n]).query)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[NewsServer]:
    s = NewsServer()
    yield s
    s.close()


# ---- Alpaca's news stream ---------------------------------------------------------------------

WIRE = Path(__file__).resolve().parents[2] / "fixtures" / "wire" / "alpaca_news"
WAIT_S = 5.0
DROP = object()  # in a plan: abort the TCP connection, as a network fault does


def wire_fixture(name: str) -> Any:
    """``tests/fixtures/wire/alpaca_news/<name>.json``."""
    return json.loads((WIRE / f"{name}.json").read_text())


class AlpacaNewsServer:
    """Speaks the documented handshake (greeting, auth, subscribe → subscription), then plays the
    n-th plan to the n-th connection: frames (JSON; a ``str`` is sent as is) or ``DROP``. Every
    client message is recorded per connection in ``received``; ``auth_replies[n]`` replaces the
    answer to the n-th connection's auth (then the server closes it)."""

    def __init__(
        self, key: str, secret: str, plans: list[list[Any]], auth_replies: list[Any] | None = None
    ) -> None:
        from websockets.asyncio.server import Server

        self.key, self.secret = key, secret
        self.plans = plans
        self.auth_replies = auth_replies or []
        self.received: list[list[Any]] = []
        self._server: Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"ws://{host}:{port}/v1beta1/news"

    async def start(self) -> None:
        from websockets.asyncio.server import serve

        self._server = await serve(self._handle, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, conn: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        control = wire_fixture("control")
        index = len(self.received)
        got: list[Any] = []
        self.received.append(got)
        try:
            await conn.send(json.dumps(control["connected"]))
            auth = json.loads(await conn.recv())
            got.append(auth)
            if index < len(self.auth_replies):
                await conn.send(json.dumps(self.auth_replies[index]))
                await conn.close(1008, "refused")
                return
            if (auth.get("key"), auth.get("secret")) != (self.key, self.secret):
                await conn.send(json.dumps(control["auth_failed"]))
                await conn.close(1008, "auth failed")
                return
            await conn.send(json.dumps(control["authenticated"]))
            subscribe = json.loads(await conn.recv())
            got.append(subscribe)
            await conn.send(json.dumps([{"T": "subscription", "news": subscribe.get("news", [])}]))
            for step in self.plans[index] if index < len(self.plans) else []:
                if step is DROP:
                    conn.transport.abort()
                    return
                await conn.send(step if isinstance(step, str) else json.dumps(step))
            await conn.wait_closed()
        except ConnectionClosed:
            pass


@pytest.fixture
async def alpaca_news() -> AsyncIterator[Any]:
    """``await alpaca_news(key, secret, plans, auth_replies=None)`` → a started server."""
    started: list[AlpacaNewsServer] = []

    async def make(
        key: str, secret: str, plans: list[list[Any]], auth_replies: list[Any] | None = None
    ) -> AlpacaNewsServer:
        server = AlpacaNewsServer(key, secret, plans, auth_replies)
        await server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        await server.stop()


@pytest.fixture
def news_wire() -> Any:
    """The recorded Alpaca news wire fixtures, by name (``control``, ``stream``, ``malformed``)."""
    return wire_fixture


@pytest.fixture
def drop() -> object:
    """The plan step that aborts the connection (``DROP``)."""
    return DROP
