"""WebSocket ``/ws``: subscribe/unsubscribe/ping over JSON, every subscription checked server-side.

Client → server: ``{"op": "subscribe", "channels": [...], "since": SEQ?}``, ``{"op": "unsubscribe",
"channels": [...]}``, ``{"op": "ping"}``, ``{"op": "auth", "token": ACCESS_TOKEN}`` (or connect with
``?token=ACCESS_TOKEN``). Every subscription asks ``domain.entitlements.channel_error`` with the
caller's facts read afresh (an upgrade bought a moment ago counts; an anonymous socket gets public
channels only). Server → client: ``{"channel", "seq", "type", "data"}`` and
``{"type": "error", "code", "message"}``. Bad input gets an error frame, never a dropped socket; a
client that cannot keep up is closed with 1013 so it can reconnect and resume with ``since``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from tradesignals.accounts.tokens import InvalidToken
from tradesignals.api.hub import Hub, HubClient
from tradesignals.domain.entitlements import ANONYMOUS, Caller, channel_error

router = APIRouter()
log = structlog.get_logger(__name__)

MAX_FRAME = 64 * 1024


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


def _handle(hub: Hub, client: HubClient, raw: str, caller: Caller = ANONYMOUS) -> bytes | None:
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
        return _error("bad_op", f"unknown op {op!r}; expected auth, subscribe, unsubscribe or ping")
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
        err = channel_error(caller, channel)
        if err is not None:
            return _error(err[0], err[1])
    seqs = {}
    for channel in channels:
        seqs[channel] = hub.subscribe(client, channel, since)
    return orjson.dumps({"type": "subscribed", "channels": channels, "seq": seqs})


def _auth_frame(raw: str) -> str | None:
    """The token of an ``{"op": "auth", "token": ...}`` frame; "" for a malformed auth frame; None otherwise."""
    if '"auth"' not in raw or len(raw) > MAX_FRAME:
        return None
    try:
        msg: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(msg, dict) or msg.get("op") != "auth":
        return None
    token = msg.get("token")
    return token if isinstance(token, str) else ""


@router.websocket("/ws")
async def websocket_endpoint(ws: WebSocket) -> None:
    services = ws.app.state.services
    hub: Hub = services.hub
    user_id: int | None = None

    async def authenticate(token: str) -> bytes:
        nonlocal user_id
        try:
            user = await asyncio.to_thread(services.accounts.user_for, token)
        except InvalidToken as exc:
            return _error("unauthorized", str(exc))
        user_id = user.id
        return orjson.dumps({"type": "authenticated", "user_id": user.id})

    async def caller() -> Caller:
        if user_id is None:
            return ANONYMOUS
        user = await asyncio.to_thread(services.accounts.users.get, user_id)
        return await asyncio.to_thread(services.accounts.caller, user)  # None (deleted): anonymous

    async def recheck() -> None:
        """Entitlements end while a socket is open (refund, failed renewal, lapse, deleted account):
        every ``ws_recheck_s`` the channels this caller may no longer read are dropped, with an
        error frame naming each one."""
        while True:
            await asyncio.sleep(services.settings.ws_recheck_s)
            if user_id is None:
                continue  # an anonymous socket holds public channels only
            try:
                now = await caller()
            except Exception as exc:  # storage down: keep the socket, try again next round
                log.warning("ws.recheck_failed", error=type(exc).__name__)
                continue
            for channel in sorted(client.channels):
                err = channel_error(now, channel)
                if err is not None:
                    hub.unsubscribe(client, channel)
                    frame = {
                        "type": "error",
                        "code": err[0],
                        "channel": channel,
                        "message": "ended: " + err[1],
                    }
                    client.offer(orjson.dumps(frame))

    query_token = ws.query_params.get("token")
    await ws.accept()
    client = hub.new_client()
    sender = asyncio.create_task(_sender(ws, client))
    checker = asyncio.create_task(recheck())
    try:
        if query_token is not None:
            first = await authenticate(query_token)
            if user_id is None:
                client.offer(first)
        while True:
            raw = await ws.receive_text()
            token = _auth_frame(raw)
            if token is not None:
                reply: bytes | None = await authenticate(token)
            else:
                who = await caller() if user_id is not None and '"subscribe"' in raw else ANONYMOUS
                reply = _handle(hub, client, raw, who)
            if reply is not None and not client.offer(reply):
                break
    except WebSocketDisconnect:
        pass
    finally:
        checker.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await checker
        hub.remove(client)
        if client.dropped:
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(sender, timeout=1.0)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
