"""Limits on what one HTTP client can make a node hold: body size, time to send a request, header
size, and requests in flight.

* **Body size** (``TS_HTTP_MAX_BODY_BYTES``, 1 MiB): ``BodyLimit``, an ASGI middleware, answers 413
  from the ``Content-Length`` alone, before reading a byte of the body, and counts a chunked body
  as it arrives, refusing it the moment it passes the limit. The 413 closes the connection, so the
  rest of a 200 MB upload is never read.
* **Time to send a request** (``TS_HTTP_REQUEST_TIMEOUT_S``): uvicorn has no header-read timeout
  (a half-sent request, or a connection that sends nothing, is held forever; its keep-alive timer
  runs only after a response). ``GuardedHttpTools`` arms a timer when a connection opens and when
  a request begins, and disarms it when the request (head and body) is complete: a request not
  complete in time is answered 408 and the connection closed.
* **Header size** (``TS_HTTP_MAX_HEADER_BYTES``): the httptools parser sets no limit on the request
  line and headers; past it the request is answered 431 and the connection closed.
* **Requests in flight** (``TS_HTTP_MAX_CONCURRENCY``): uvicorn's ``limit_concurrency`` — past it,
  503 at once instead of queueing. uvicorn counts open connections, WebSockets included.

``uvicorn_config`` is the one place that turns these settings into a server.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tradesignals.config import Settings


def _reply(status: int, reason: bytes, detail: str) -> bytes:
    body = ('{"detail":"' + detail + '"}').encode()
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n" % (status, reason, len(body))
    ) + body


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413 (and close), never buffering past it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.detail = f"request body larger than {max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._refuse(send, 400, "content-length is not a number")
                    return
                if declared > self.max_bytes:
                    await self._refuse(send, 413, self.detail)
                    return
        seen = 0
        started = refused = False

        async def counted() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Answer now, from here: the app may swallow an exception raised while it reads
                    # (FastAPI turns it into a 400). To the app the client has gone away.
                    refused = True
                    if not started:
                        await self._refuse(send, 413, self.detail)
                    return {"type": "http.disconnect"}
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 is the answer
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except Exception:
            if not refused:
                raise  # a disconnect raised in the app after the refusal is the refusal's, not a bug

    async def _refuse(self, send: Send, status: int, detail: str) -> None:
        body = ('{"detail":"' + detail + '"}').encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),  # the rest of the body is never read
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a request-read timeout and a header-size limit."""

    request_timeout_s: float = 30.0
    max_header_bytes: int = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0

    def _arm(self) -> None:
        if self._read_timer is None:
            self._read_timer = self.loop.call_later(self.request_timeout_s, self._read_timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _refuse(self, status: int, reason: bytes, detail: str) -> None:
        self._disarm()
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(_reply(status, reason, detail))
        self.transport.close()

    def _read_timed_out(self) -> None:
        self._read_timer = None
        self._refuse(408, b"Request Timeout", f"request not received within {self.request_timeout_s:g} s")

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a complete request is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._arm()  # after a keep-alive pause: the next request must also arrive in time

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        if self._head_bytes > self.max_header_bytes:
            self._refuse(414, b"URI Too Long", f"request line longer than {self.max_header_bytes} bytes")
            return
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self.max_header_bytes:
            self._refuse(
                431, b"Request Header Fields Too Large", f"headers larger than {self.max_header_bytes} bytes"
            )
            return
        super().on_header(name, value)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return  # refused: nothing more is parsed or buffered
        super().data_received(data)

    def on_headers_complete(self) -> None:
        if self.transport.is_closing():
            return  # refused mid-parse: no request is started
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self.transport.is_closing() or self.cycle is None:
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm()
        if self.transport.is_closing() or self.cycle is None:
            return
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the socket is the WebSocket protocol's now, with its own timeouts
        super().handle_websocket_upgrade()


def guarded_protocol(settings: Settings) -> type[GuardedHttpTools]:
    """The protocol class with this node's limits (uvicorn instantiates it per connection)."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpTools,),
        {
            "request_timeout_s": settings.http_request_timeout_s,
            "max_header_bytes": settings.http_max_header_bytes,
        },
    )


def uvicorn_config(app: ASGIApp, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """A uvicorn config for ``app`` with every HTTP limit of ``settings`` applied."""
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": "warning",
        "lifespan": "on",
        "ws": "auto",
        # Protocol-level bounds of a WebSocket (ws.py applies the JSON-level ones, with error frames):
        # a message over 4× the frame limit is refused by the protocol (1009) before it is buffered.
        "ws_max_size": 4 * settings.ws_max_frame_bytes,
        "ws_ping_interval": settings.ws_ping_interval_s,
        "ws_ping_timeout": settings.ws_ping_timeout_s,
        "http": guarded_protocol(settings),
        "timeout_keep_alive": settings.http_keep_alive_s,
        "limit_concurrency": settings.http_max_concurrency,
        "h11_max_incomplete_event_size": settings.http_max_header_bytes,  # should h11 ever be chosen
    }
    options.update(overrides)
    return uvicorn.Config(BodyLimit(app, settings.http_max_body_bytes), **options)


__all__ = ["BodyLimit", "GuardedHttpTools", "guarded_protocol", "uvicorn_config"]
