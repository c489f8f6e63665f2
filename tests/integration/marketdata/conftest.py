"""Local stand-ins for the Binance, Alpaca and Polygon WebSocket endpoints, on 127.0.0.1.

Each server speaks its provider's documented handshake (the paths it serves, the greeting, the key
check, the subscribe answer), then plays a *plan* for that connection: the n-th plan for the n-th
client connection. A plan is a list of steps built with the ``wire`` fixture:

* ``wire.send(*frames)`` — each frame sent as JSON (a ``str`` is sent as is, to send broken JSON);
* ``wire.drop()`` — abort the TCP connection without a closing handshake, as a network fault does;
* ``wire.ping(b"..")`` — a ping the client must answer; answered pings are counted in ``pongs``;
* ``wire.await_connections(n)`` — hold until the n-th client has completed the handshake;
* ``wire.await_received(n)`` — hold until this client has sent n messages after its handshake.

``auth_replies`` (Alpaca, Polygon) replace the answer to the n-th connection's auth message, e.g.
a connection-limit error, after which the server closes that connection.

After its plan a connection stays open until the client leaves. Everything a client sends is
recorded per connection (``server.sessions[i].received``) so tests can assert what was subscribed
on the first connection and again after every reconnect. The Alpaca server also speaks
MessagePack when the client asks for it (``Content-Type: application/msgpack``), as alpaca-py does.

These are fixtures rather than an importable module on purpose: test directories have no
``__init__.py``, and pytest loads conftest files by path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "wire"
WAIT_S = 5.0


@dataclass(frozen=True)
class _Send:
    frame: Any


@dataclass(frozen=True)
class _Drop:
    pass


@dataclass(frozen=True)
class _Ping:
    payload: bytes


@dataclass(frozen=True)
class _AwaitConnections:
    count: int


@dataclass(frozen=True)
class _AwaitReceived:
    count: int


Step = _Send | _Drop | _Ping | _AwaitConnections | _AwaitReceived


@dataclass
class Session:
    """One client connection as the server saw it."""

    path: str
    headers: Headers
    received: list[Any] = field(default_factory=list)
    greeted: bool = False
    msgpack: bool = False


class WireServer:
    """A provider endpoint: ``url`` to point the client at, ``sessions`` to inspect afterwards."""

    def __init__(
        self,
        provider: str,
        plans: Sequence[Sequence[Step]],
        *,
        key: str = "",
        secret: str = "",
        path: str = "",
        auth_replies: Sequence[Any] = (),
    ) -> None:
        self.provider = provider
        self.auth_replies = list(auth_replies)
        self.plans = [list(p) for p in plans]
        self.key = key
        self.secret = secret
        self.path = path
        self.sessions: list[Session] = []
        self.pongs = 0
        self._server: Server | None = None
        self._changed = asyncio.Condition()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"ws://{host}:{port}{self.path}"

    async def start(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", 0, process_request=self._check_path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def greeted(self) -> int:
        return sum(1 for s in self.sessions if s.greeted)

    async def wait_for_greeted(self, count: int) -> None:
        async with asyncio.timeout(WAIT_S), self._changed:
            await self._changed.wait_for(lambda: self.greeted() >= count)

    async def wait_for_received(self, session: Session, count: int) -> None:
        async with asyncio.timeout(WAIT_S), self._changed:
            await self._changed.wait_for(lambda: len(session.received) >= count)

    # ---- per provider -------------------------------------------------------------------------

    def _check_path(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        wanted = "/stream" if self.provider == "binance" else self.path
        if path != wanted:
            return connection.respond(HTTPStatus.NOT_FOUND, f"no endpoint at {path}\n")
        return None

    async def _greet(self, conn: ServerConnection, session: Session) -> bool:
        if self.provider == "binance":
            return True  # the subscription is in the URL; SUBSCRIBE messages are answered by _record
        if self.provider == "alpaca":
            return await self._greet_alpaca(conn, session)
        return await self._greet_polygon(conn, session)

    async def _greet_alpaca(self, conn: ServerConnection, session: Session) -> bool:
        control = fixture("alpaca", "control")
        await self._send(conn, session, control["connected"])
        auth = await self._recv(conn, session)
        if await self._refused(conn, session):
            return False
        if auth.get("action") != "auth" or (auth.get("key"), auth.get("secret")) != (self.key, self.secret):
            await self._send(conn, session, control["auth_failed"])
            await conn.close(1008, "auth failed")
            return False
        await self._send(conn, session, control["authenticated"])
        subscribe = await self._recv(conn, session)
        current = {ch: list(subscribe.get(ch, [])) for ch in ("trades", "quotes", "bars")}
        await self._send(conn, session, [{"T": "subscription", **current}])
        return True

    async def _greet_polygon(self, conn: ServerConnection, session: Session) -> bool:
        control = fixture("polygon", "control")
        await self._send(conn, session, control["connected"])
        auth = await self._recv(conn, session)
        if await self._refused(conn, session):
            return False
        if auth != {"action": "auth", "params": self.key}:
            await self._send(conn, session, control["auth_failed"])
            await conn.close(1008, "authentication failed")
            return False
        await self._send(conn, session, control["auth_success"])
        subscribe = await self._recv(conn, session)
        template = control["subscribed"]
        acks = [
            {**template, "message": template["message"].format(channel=channel)}
            for channel in str(subscribe.get("params", "")).split(",")
        ]
        await self._send(conn, session, acks)
        return True

    async def _refused(self, conn: ServerConnection, session: Session) -> bool:
        index = self.sessions.index(session)
        if index >= len(self.auth_replies):
            return False
        await self._send(conn, session, self.auth_replies[index])
        await conn.close(1008, "refused")
        return True

    # ---- the connection ---------------------------------------------------------------------------

    async def _handle(self, conn: ServerConnection) -> None:
        request = conn.request
        assert request is not None
        session = Session(path=request.path, headers=request.headers)
        session.msgpack = request.headers.get("Content-Type") == "application/msgpack"
        self.sessions.append(session)
        index = len(self.sessions) - 1
        recorder: asyncio.Task[None] | None = None
        try:
            if not await self._greet(conn, session):
                return
            greeting_messages = len(session.received)
            async with self._changed:
                session.greeted = True
                self._changed.notify_all()
            recorder = asyncio.create_task(self._record(conn, session))
            for step in self.plans[index] if index < len(self.plans) else []:
                if isinstance(step, _Send):
                    await self._send(conn, session, step.frame)
                elif isinstance(step, _Drop):
                    conn.transport.abort()
                    return
                elif isinstance(step, _Ping):
                    pong = await conn.ping(step.payload)
                    await asyncio.wait_for(pong, WAIT_S)
                    self.pongs += 1
                elif isinstance(step, _AwaitConnections):
                    await self.wait_for_greeted(step.count)
                else:
                    await self.wait_for_received(session, greeting_messages + step.count)
            await conn.wait_closed()
        except ConnectionClosed:
            pass
        finally:
            if recorder is not None:
                recorder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await recorder

    async def _record(self, conn: ServerConnection, session: Session) -> None:
        """Keep reading after the handshake: record, and answer Binance SUBSCRIBE requests."""
        with contextlib.suppress(ConnectionClosed):
            while True:
                message = await self._recv(conn, session)
                if self.provider == "binance" and message.get("method") == "SUBSCRIBE":
                    await self._send(conn, session, {"result": None, "id": message.get("id")})

    async def _recv(self, conn: ServerConnection, session: Session) -> Any:
        raw = await conn.recv()
        if session.msgpack:
            import msgpack

            message = msgpack.unpackb(raw)
        else:
            message = json.loads(raw)
        async with self._changed:
            session.received.append(message)
            self._changed.notify_all()
        return message

    async def _send(self, conn: ServerConnection, session: Session, frame: Any) -> None:
        if isinstance(frame, str):
            await conn.send(frame)
        elif session.msgpack:
            await conn.send(_to_msgpack(frame))
        else:
            await conn.send(json.dumps(frame))


def _to_msgpack(frame: Any) -> bytes:
    """Alpaca's MessagePack frames carry times as MessagePack timestamps, not strings."""
    import msgpack

    from tradesignals.marketdata.feeds.alpaca import rfc3339_ns

    def convert(item: Any) -> Any:
        if isinstance(item, dict) and isinstance(item.get("t"), str):
            return {**item, "t": msgpack.Timestamp.from_unix_nano(rfc3339_ns(item["t"]))}
        return item

    items = [convert(i) for i in frame] if isinstance(frame, list) else convert(frame)
    return msgpack.packb(items)


def fixture(provider: str, name: str) -> Any:
    """A recorded wire fixture, ``tests/fixtures/wire/<provider>/<name>.json``."""
    return json.loads((FIXTURES / provider / f"{name}.json").read_text())


class Wire:
    """Starts fake provider servers for one test and builds their plans."""

    def __init__(self) -> None:
        self._servers: list[WireServer] = []

    fixture = staticmethod(fixture)

    @staticmethod
    def send(*frames: Any) -> list[Step]:
        return [_Send(f) for f in frames]

    @staticmethod
    def drop() -> list[Step]:
        return [_Drop()]

    @staticmethod
    def ping(payload: bytes) -> list[Step]:
        return [_Ping(payload)]

    @staticmethod
    def await_connections(count: int) -> list[Step]:
        return [_AwaitConnections(count)]

    @staticmethod
    def await_received(count: int) -> list[Step]:
        return [_AwaitReceived(count)]

    async def binance(self, *plans: list[Step]) -> WireServer:
        return await self._start(WireServer("binance", plans))

    async def alpaca(
        self, *plans: list[Step], key: str, secret: str, feed: str = "iex", auth_replies: Sequence[Any] = ()
    ) -> WireServer:
        server = WireServer(
            "alpaca", plans, key=key, secret=secret, path=f"/v2/{feed}", auth_replies=auth_replies
        )
        return await self._start(server)

    async def polygon(
        self, *plans: list[Step], key: str, cluster: str = "stocks", auth_replies: Sequence[Any] = ()
    ) -> WireServer:
        return await self._start(
            WireServer("polygon", plans, key=key, path=f"/{cluster}", auth_replies=auth_replies)
        )

    async def _start(self, server: WireServer) -> WireServer:
        await server.start()
        self._servers.append(server)
        return server

    async def stop(self) -> None:
        for server in self._servers:
            await server.stop()


@pytest.fixture
async def wire() -> AsyncIterator[Wire]:
    servers = Wire()
    try:
        yield servers
    finally:
        await servers.stop()
