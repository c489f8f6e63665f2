"""WebSocket ``/ws`` on the API's own origin (ASGI): the protocol of ``ws_session.py``.

Here each socket runs three tasks — receive (with the idle timeout), send (the hub's queue and
catch-up reads, with the send timeout) and the entitlement re-check — through the ASGI server.
That costs a task switch and an ASGI message per frame; the dedicated fan-out server
(``ws_server.py``) writes a message to every socket that can take it in one pass instead.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from fastapi import APIRouter, WebSocket

from tradesignals.api.hub import Hub, HubClient
from tradesignals.api.ws_session import (
    CLOSE_CAPACITY,
    CLOSE_IDLE,
    CLOSE_INTERNAL,
    CLOSE_POLICY,
    CLOSE_SLOW,
    WsSession,
    utf8_length_over,
)
from tradesignals.config import Settings

router = APIRouter()
log = structlog.get_logger(__name__)


async def _send(ws: WebSocket, frame: str) -> None:
    await ws.send({"type": "websocket.send", "text": frame})


async def _sender(ws: WebSocket, hub: Hub, client: HubClient, send_timeout_s: float) -> None:
    """Send queued frames, then catch-up reads from the log; close a client that stops reading."""
    try:
        while client.closing is None:
            frame = client.pop()
            if frame is not None:
                async with asyncio.timeout(send_timeout_s):
                    await _send(ws, frame)
                continue
            if client.catching_up:
                for replayed in await hub.catch_up(client):
                    async with asyncio.timeout(send_timeout_s):
                        await _send(ws, replayed)
                continue
            client.wake.clear()
            await client.wake.wait()
    except TimeoutError:
        client.closing = (CLOSE_SLOW, f"slow consumer: no progress sending for {send_timeout_s:g} s")


@router.websocket("/ws")
async def websocket_endpoint(ws: WebSocket) -> None:
    services = ws.app.state.services
    settings: Settings = services.settings
    hub: Hub = services.hub

    async def recheck() -> None:
        while True:
            await asyncio.sleep(settings.ws_recheck_s)
            await session.recheck()

    async def receive() -> None:
        while client.closing is None:
            try:
                msg = await asyncio.wait_for(ws.receive(), timeout=settings.ws_idle_timeout_s)
            except TimeoutError:
                client.closing = (CLOSE_IDLE, f"idle: no frame for {settings.ws_idle_timeout_s:g} s")
                return
            if msg["type"] == "websocket.disconnect":
                return
            raw = msg.get("text")
            if raw is None:
                session.on_binary()
            else:
                await session.on_text(raw)

    await ws.accept()
    client = hub.new_client()
    session = WsSession(services, client)
    try:
        await session.open(ws.headers, ws.query_params.get("token"))
        if client.closing is None:
            tasks = {
                asyncio.create_task(receive()),
                asyncio.create_task(_sender(ws, hub, client, settings.ws_send_timeout_s)),
                asyncio.create_task(recheck()),
            }
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    exc = task.exception()
                    if exc is not None and client.closing is None:  # a bug or storage away: said, not silent
                        log.warning("ws.failed", error=repr(exc)[:300])
                        client.closing = (CLOSE_INTERNAL, "internal error; reconnect and resume with since")
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
        closing = session.closed()
        if closing is not None:
            code, reason = closing
            with contextlib.suppress(Exception):
                # the pending replies first (an error frame that explains), bounded
                while (frame := client.pop()) is not None and code != CLOSE_SLOW:
                    async with asyncio.timeout(1.0):
                        await _send(ws, frame)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code=code, reason=reason[:120]), timeout=2.0)
    finally:
        hub.remove(client)


__all__ = [
    "CLOSE_CAPACITY",
    "CLOSE_IDLE",
    "CLOSE_INTERNAL",
    "CLOSE_POLICY",
    "CLOSE_SLOW",
    "router",
    "utf8_length_over",
]
