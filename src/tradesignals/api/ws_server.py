"""The dedicated WebSocket fan-out server: the ``/ws`` protocol on its own port, on picows.

Why a second server: through ASGI every frame to every socket is a task switch and an ASGI
message (``ws.py``); at thousands of sockets that, not the network, bounds how fast one message
reaches the last client. Here a socket is a picows listener (frame parsing and framing in C), and
the hub writes a message to every socket that can take it in one pass (``HubClient.writer``), the
frame encoded once. A socket that cannot (its send buffer is over the high-water mark: the peer
is not reading) falls back to the hub's queue and slow-consumer policy, drained by a task that
runs only while there is something to drain. ADR 0029 records the measurement that chose it.

The protocol is the same (``ws_session.WsSession``: admission, auth, subscribe, entitlements,
error frames, close codes) and the hub is the same, so a socket here and one on the ASGI route
get the same channels, seqs and bytes. What the ASGI server did for us is done here:

- frames: text frames are handled in order, one task per socket while it has frames waiting;
  fragmented messages are reassembled up to the protocol bound (4 × ``ws_max_frame_bytes``, as
  uvicorn's ``ws_max_size``), beyond which the socket is closed 1009 by picows; reading pauses
  while a socket has more than ``_INBOX_MAX`` frames waiting (a flood cannot grow memory);
- timeouts: one sweep per node closes idle sockets (4000) and re-checks entitlements every
  ``ws_recheck_s``; protocol pings (``ws_ping_interval_s``, ``ws_ping_timeout_s``) by picows;
- the handshake: only ``GET /ws`` is upgraded (404 otherwise), within 5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import structlog
from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    ws_create_server,
)

from tradesignals.api.hub import Hub, HubClient
from tradesignals.api.ws_session import CLOSE_IDLE, CLOSE_INTERNAL, CLOSE_SLOW, WsSession

if TYPE_CHECKING:
    from tradesignals.wiring import Services

log = structlog.get_logger(__name__)

_INBOX_MAX = 32  # text frames waiting per socket before its reading pauses
_CLOSE_FLUSH_FRAMES = 1000  # pending replies written before a close (an error frame that explains)


class Connection(WSListener):
    """One socket: bytes in and out for its ``WsSession``."""

    def __init__(self, server: FanoutServer, request: WSUpgradeRequest) -> None:
        super().__init__()
        self.server = server
        self.request = request
        self.transport: WSTransport | None = None
        # A placeholder until the upgrade succeeds (picows asks for the listener before it checks the
        # upgrade headers): a refused handshake must leave nothing in the hub.
        self.client = HubClient()
        self.session = WsSession(server.services, self.client)
        self.inbox: deque[str | None] = deque()  # text frames; None: a binary frame
        self.partial: bytearray | None = None  # a fragmented message being reassembled
        self.partial_text = True
        self.paused = False  # the socket's send buffer is over its high-water mark
        self.resumed = asyncio.Event()
        self.last_frame = time.monotonic()
        self.worker: asyncio.Task[None] | None = None  # handles the inbox, then drains the queue
        self.ended = False

    # --- picows callbacks (synchronous, on the event loop) ----------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.client = self.server.hub.new_client()
        self.session = WsSession(self.server.services, self.client)
        self.client.writer = self._write
        self.server.connections.add(self)
        self._start(self._open())

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        self.last_frame = time.monotonic()
        kind = frame.msg_type
        if kind == WSMsgType.CLOSE:
            with contextlib.suppress(Exception):
                transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
            return
        if kind in (WSMsgType.PING, WSMsgType.PONG):
            return  # picows answers pings; a pong is the answer to ours
        if kind == WSMsgType.CONTINUATION:
            if self.partial is None:
                return  # a continuation of nothing: ignored, as the RFC's receivers may
            self.partial += frame.get_payload_as_bytes()
            if frame.fin:
                data, self.partial = bytes(self.partial), None
                self._received(data, text=self.partial_text)
            return
        if not frame.fin:
            self.partial, self.partial_text = bytearray(frame.get_payload_as_bytes()), kind == WSMsgType.TEXT
            return
        if kind == WSMsgType.TEXT:
            self._received(frame.get_payload_as_bytes(), text=True)
        else:
            self._received(b"", text=False)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.ended = True
        self.resumed.set()
        self.client.writer = None
        if self.client.closing is None:
            self.client.closing = (1006, "disconnected")  # the peer went: nothing to say to it
        self.client.wake.set()
        self.server.connections.discard(self)
        self.server.hub.remove(self.client)

    def pause_writing(self) -> None:
        self.paused = True
        self.resumed.clear()

    def resume_writing(self) -> None:
        self.paused = False
        self.resumed.set()
        if self.client.queue or self.client.catching_up:
            self.client.wake.set()

    # --- the hub's writer -------------------------------------------------------------------------

    def _write(self, frame: bytes) -> bool:
        """Write one text frame now; False when the socket cannot take it (the hub queues it)."""
        if self.paused or self.ended or self.client.closing is not None or self.transport is None:
            return False
        self.transport.send(WSMsgType.TEXT, frame)
        return True

    # --- the socket's task -------------------------------------------------------------------------

    def _received(self, data: bytes, *, text: bool) -> None:
        if not text:
            self.inbox.append(None)
        else:
            try:
                self.inbox.append(data.decode())
            except UnicodeDecodeError:  # RFC 6455: invalid UTF-8 in a text frame fails the connection
                self.client.closing = (1007, "text frames must be UTF-8")
                self.client.wake.set()
                return
        if len(self.inbox) > _INBOX_MAX and self.transport is not None:
            self.transport.underlying_transport.pause_reading()
        self.client.wake.set()

    def _start(self, coro: Any) -> None:
        self.worker = asyncio.get_running_loop().create_task(coro)

    async def _open(self) -> None:
        try:
            query = parse_qs(urlsplit(self.request.path.decode("latin-1")).query)
            token = query.get("token", [None])[-1]
            await self.session.open(self.request.headers, token)
            await self._serve()
        except Exception as exc:  # a bug or storage away: said, not silent
            if self.client.closing is None:
                log.warning("ws.failed", error=repr(exc)[:300])
                self.client.closing = (CLOSE_INTERNAL, "internal error; reconnect and resume with since")
        finally:
            self._close()

    async def _serve(self) -> None:
        """Frames in, in order; then what the hub could not write at once, with the send timeout."""
        client, hub, timeout_s = self.client, self.server.hub, self.server.services.settings.ws_send_timeout_s
        while client.closing is None:
            if self.inbox:
                item = self.inbox.popleft()
                if not self.inbox and self.transport is not None:
                    self.transport.underlying_transport.resume_reading()
                if item is None:
                    self.session.on_binary()
                else:
                    await self.session.on_text(item)
                continue
            if self.paused and (client.queue or client.catching_up):
                try:
                    async with asyncio.timeout(timeout_s):
                        await self.resumed.wait()
                except TimeoutError:
                    client.closing = (CLOSE_SLOW, f"slow consumer: no progress sending for {timeout_s:g} s")
                continue
            frame = client.pop()
            if frame is not None:
                self._send_text(frame)
                continue
            if client.catching_up:
                for replayed in await hub.catch_up(client):
                    self._send_text(replayed)
                continue
            client.wake.clear()
            await client.wake.wait()

    def _send_text(self, frame: str) -> None:
        if self.transport is not None and not self.ended:
            self.transport.send(WSMsgType.TEXT, frame.encode())

    def _close(self) -> None:
        """Say why (the pending replies, then the close code) and let the socket go."""
        closing = self.session.closed() if not self.ended else None
        transport = self.transport
        if closing is not None and transport is not None:
            code, reason = closing
            with contextlib.suppress(Exception):
                if code != CLOSE_SLOW:
                    for _ in range(_CLOSE_FLUSH_FRAMES):
                        frame = self.client.pop()
                        if frame is None:
                            break
                        transport.send(WSMsgType.TEXT, frame.encode())
                transport.send_close(WSCloseCode(code), reason[:120].encode())
            transport.disconnect()
        self.client.writer = None
        self.server.connections.discard(self)
        self.server.hub.remove(self.client)

    def close(self, code: int, reason: str) -> None:
        """Close from outside the socket's task (the sweep): the task says why and ends."""
        if self.client.closing is None:
            self.client.closing = (code, reason)
        self.client.wake.set()
        self.resumed.set()


class FanoutServer:
    """The listening socket, its connections, and the sweep for idle sockets and re-checks."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.hub: Hub = services.hub
        self.connections: set[Connection] = set()
        self.server: asyncio.Server | None = None

    def _listener(self, request: WSUpgradeRequest) -> Connection | None:
        path = urlsplit(request.path.decode("latin-1")).path
        if request.method != b"GET" or path != "/ws":
            return None  # 404
        return Connection(self, request)

    async def start(self, host: str, port: int) -> int:
        settings = self.services.settings
        self.server = await ws_create_server(
            self._listener,
            host,
            port,
            websocket_handshake_timeout=5,
            enable_auto_ping=True,
            auto_ping_idle_timeout=settings.ws_ping_interval_s,
            auto_ping_reply_timeout=settings.ws_ping_timeout_s,
            max_frame_size=4 * settings.ws_max_frame_bytes,
            logger_name="ws-fanout",
        )
        sockets = self.server.sockets or ()
        return int(sockets[0].getsockname()[1]) if sockets else port

    async def sweep(self, stop: asyncio.Event) -> None:
        """Idle sockets closed (4000); entitlements re-checked every ``ws_recheck_s``."""
        settings = self.services.settings
        idle_s, recheck_s = settings.ws_idle_timeout_s, settings.ws_recheck_s
        tick = max(0.05, min(idle_s / 4, recheck_s, 5.0))
        next_recheck = time.monotonic() + recheck_s
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=tick)
            now = time.monotonic()
            for conn in list(self.connections):
                if now - conn.last_frame > idle_s:
                    conn.close(CLOSE_IDLE, f"idle: no frame for {idle_s:g} s")
            if now >= next_recheck:
                next_recheck = now + recheck_s
                for conn in list(self.connections):
                    if conn.session.user_id is not None and not conn.ended:
                        await conn.session.recheck()

    async def close(self) -> None:
        """Every socket told 1001 (going away: reconnect, to another node, with ``since``), bounded."""
        workers = []
        for conn in list(self.connections):
            conn.close(1001, "server stopping")
            if conn.worker is not None:
                workers.append(conn.worker)
        if workers:
            await asyncio.wait(workers, timeout=2.0)
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), timeout=5.0)


async def serve_fanout(services: Services, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
    """Run the dedicated server on ``ws_host:ws_port`` until ``stop``; ``ready`` once it listens."""
    settings = services.settings
    assert settings.ws_port is not None
    server = FanoutServer(services)
    port = await server.start(settings.ws_host or settings.host, settings.ws_port)
    services.ws_port_bound = port
    log.info("ws.fanout_listening", host=settings.ws_host or settings.host, port=port)
    if ready is not None:
        ready.set()
    try:
        await server.sweep(stop)
    finally:
        await server.close()


__all__ = ["Connection", "FanoutServer", "serve_fanout"]
