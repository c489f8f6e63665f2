"""WebSocket ``/ws``: subscribe/unsubscribe/ping over JSON, every subscription checked server-side.

Client → server: ``{"op": "subscribe", "channels": [...], "since": SEQ?}``, ``{"op": "unsubscribe",
"channels": [...]}``, ``{"op": "ping"}``. Server → client: ``{"channel", "seq", "type", "data"}`` and
``{"type": "error", "code", "message"}``. Bad input gets an error frame, never a dropped socket; a
client that cannot keep up is closed with 1013 so it can reconnect and resume with ``since``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from tradesignals.api.broadcast import SIGNALS_CHANNEL
from tradesignals.api.hub import Hub, HubClient
from tradesignals.domain.tiers import PUBLIC_CHANNELS

router = APIRouter()

MAX_FRAME = 64 * 1024
_KNOWN = re.compile(
    r"^(signals|system:alerts|market:status|market:[A-Z0-9.\-_/]{1,32}:updates"
    r"|user:\d+:(signals|watchlist|notifications)|signal:[0-9a-f]{22}:live)$"
)


def entitlement_error(channel: str) -> tuple[str, str] | None:
    """Why this (anonymous) connection may not subscribe to ``channel``; None when it may.

    Accounts arrive with the accounts issue; until then only public channels and the ``signals``
    demo channel are open, and per-user or per-signal channels are refused, never trusted.
    """
    if not _KNOWN.match(channel):
        return ("unknown_channel", f"no such channel {channel!r}")
    if channel in PUBLIC_CHANNELS or channel == SIGNALS_CHANNEL or channel.startswith("market:"):
        return None
    return ("forbidden", f"channel {channel!r} needs an authenticated, entitled user")


def _error(code: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "code": code, "message": message})


async def _sender(ws: WebSocket, client: HubClient) -> None:
    while True:
        payload = await client.queue.get()
        if client.dropped:
            await ws.close(code=1013, reason=client.drop_reason[:120])
            return
        if payload:
            await ws.send_text(payload.decode())


def _handle(hub: Hub, client: HubClient, raw: str) -> bytes | None:
    """Apply one client frame; returns a direct reply (ack or error) or None."""
    if len(raw) > MAX_FRAME:
        return _error("frame_too_large", f"frames are limited to {MAX_FRAME} bytes")
    try:
        msg: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _error("bad_json", f"not JSON: {exc.msg} at position {exc.pos}")
    if not isinstance(msg, dict):
        return _error("bad_request", "a frame must be a JSON object with an 'op'")
    op = msg.get("op")
    if op == "ping":
        return orjson.dumps({"type": "pong"})
    if op not in ("subscribe", "unsubscribe"):
        return _error("bad_op", f"unknown op {op!r}; expected subscribe, unsubscribe or ping")
    channels = msg.get("channels")
    if not isinstance(channels, list) or not channels or not all(isinstance(c, str) for c in channels):
        return _error("bad_request", "'channels' must be a non-empty list of strings")
    since = msg.get("since")
    if since is not None and (not isinstance(since, int) or isinstance(since, bool) or since < 0):
        return _error("bad_request", "'since' must be a non-negative integer sequence number")
    if op == "unsubscribe":
        for channel in channels:
            hub.unsubscribe(client, channel)
        return orjson.dumps({"type": "unsubscribed", "channels": channels})
    for channel in channels:
        err = entitlement_error(channel)
        if err is not None:
            return _error(err[0], err[1])
    seqs = {}
    for channel in channels:
        seqs[channel] = hub.subscribe(client, channel, since)
    return orjson.dumps({"type": "subscribed", "channels": channels, "seq": seqs})


@router.websocket("/ws")
async def websocket_endpoint(ws: WebSocket) -> None:
    hub: Hub = ws.app.state.services.hub
    await ws.accept()
    client = hub.new_client()
    sender = asyncio.create_task(_sender(ws, client))
    try:
        while True:
            raw = await ws.receive_text()
            reply = _handle(hub, client, raw)
            if reply is not None and not client.offer(reply):
                break
    except WebSocketDisconnect:
        pass
    finally:
        hub.remove(client)
        if client.dropped:
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(sender, timeout=1.0)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
