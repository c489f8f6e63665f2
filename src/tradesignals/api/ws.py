"""WebSocket ``/ws``: subscribe/unsubscribe/ping over JSON, every subscription checked server-side.

Client → server (text frames, JSON): ``{"op": "subscribe", "channels": [...], "since": SEQ?}``,
``{"op": "unsubscribe", "channels": [...]}``, ``{"op": "ping"}``, ``{"op": "auth", "token": TOKEN}``
(or connect with ``?token=TOKEN``). Every subscription asks ``domain.entitlements.channel_error``
with the caller's facts read afresh. Server → client: ``{"seq", "channel", "type", "data"}``,
``{"type": "lagged" | "resync", "channel", "from_seq"}`` (see ``hub.py``) and
``{"type": "error", "code", "message"}``.

Bad input gets an error frame and the socket stays open: bad JSON, a binary frame, a frame over
``ws_max_frame_bytes`` (counted in UTF-8 bytes), an unknown op or channel, more than
``ws_max_channels`` channels, a ``since`` beyond a channel's current seq. Closes, with a reason:

- 1008 (policy): an ``Origin`` that is neither the API's own nor in ``ws_allowed_origins``; more
  than ``ws_max_connections_per_user`` sockets of one account;
- 1013 (try again later): the node holds ``ws_max_connections`` sockets already;
- 1011: an internal failure (storage unreachable): reconnect and resume with ``since``;
- 4000: idle — no frame from the client (``ping`` counts) for ``ws_idle_timeout_s``;
- 4008: slow consumer — a send made no progress for ``ws_send_timeout_s``.

A client with no ``Origin`` header is not a browser: the allow-list, which protects a signed-in
browser from another site's script, does not concern it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

import orjson
import structlog
from fastapi import APIRouter, WebSocket

from tradesignals.accounts.tokens import InvalidToken
from tradesignals.api.hub import Hub, HubClient
from tradesignals.config import Settings
from tradesignals.domain.entitlements import ANONYMOUS, Caller, channel_error

router = APIRouter()
log = structlog.get_logger(__name__)

CLOSE_POLICY = 1008
CLOSE_CAPACITY = 1013
CLOSE_INTERNAL = 1011
CLOSE_IDLE = 4000
CLOSE_SLOW = 4008


def _error(code: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "code": code, "message": message})


def utf8_length_over(text: str, limit: int) -> bool:
    """Whether ``text`` encodes to more than ``limit`` bytes, without encoding it when the length
    alone decides (a character is 1 to 4 bytes)."""
    if len(text) > limit:
        return True
    if 4 * len(text) <= limit:
        return False
    return len(text.encode()) > limit


def origin_allowed(headers: Any, allowed: frozenset[str]) -> bool:
    """No Origin (not a browser), the API's own origin, or one in the allow-list."""
    origin = headers.get("origin")
    if origin is None:
        return True
    origin = origin.strip().rstrip("/").lower()
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    host = (headers.get("host") or "").strip().lower()
    return (bool(netloc) and netloc == host) or origin in allowed


def allowed_origins(settings: Settings) -> frozenset[str]:
    return frozenset(
        o.strip().rstrip("/").lower() for o in settings.ws_allowed_origins.split(",") if o.strip()
    )


async def _subscribe(
    hub: Hub, client: HubClient, msg: dict[str, Any], caller: Caller, max_channels: int
) -> bytes:
    channels = msg.get("channels")
    if not isinstance(channels, list) or not channels or not all(isinstance(c, str) for c in channels):
        return _error("bad_request", "'channels' must be a non-empty list of strings")
    since = msg.get("since")
    if since is not None and (not isinstance(since, int) or isinstance(since, bool) or since < 0):
        return _error("bad_request", "'since' must be a non-negative integer sequence number")
    new = [c for c in dict.fromkeys(channels) if c not in client.last]
    if len(client.last) + len(new) > max_channels:
        return _error(
            "too_many_channels",
            f"a socket may hold {max_channels} channels; it holds {len(client.last)}, "
            f"this asks for {len(new)} more",
        )
    for channel in channels:
        err = channel_error(caller, channel)
        if err is not None:
            return _error(err[0], err[1])
    currents = {channel: await hub.log.current(channel) for channel in dict.fromkeys(channels)}
    if since is not None:
        for channel, current in currents.items():
            if since > current:
                return _error(
                    "bad_since", f"since {since} is beyond channel {channel!r}'s current seq {current}"
                )
    for channel, current in currents.items():
        if channel not in client.last:
            hub.subscribe(client, channel, current, since)
    return orjson.dumps({"type": "subscribed", "channels": channels, "seq": currents})


async def handle_frame(
    hub: Hub, client: HubClient, raw: str, caller: Caller, settings: Settings
) -> bytes | None:
    """Apply one client text frame; returns the direct reply (ack or error), or None."""
    if utf8_length_over(raw, settings.ws_max_frame_bytes):
        return _error("frame_too_large", f"frames are limited to {settings.ws_max_frame_bytes} bytes")
    try:
        msg: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _error("bad_json", f"not JSON: {exc.msg} at position {exc.pos}")
    if not isinstance(msg, dict):
        return _error("bad_request", "a frame must be a JSON object with an 'op'")
    op = msg.get("op")
    if op == "ping":
        return orjson.dumps({"type": "pong"})
    if op == "subscribe":
        return await _subscribe(hub, client, msg, caller, settings.ws_max_channels)
    if op == "unsubscribe":
        channels = msg.get("channels")
        if not isinstance(channels, list) or not channels or not all(isinstance(c, str) for c in channels):
            return _error("bad_request", "'channels' must be a non-empty list of strings")
        for channel in channels:
            hub.unsubscribe(client, channel)
        return orjson.dumps({"type": "unsubscribed", "channels": channels})
    return _error("bad_op", f"unknown op {op!r}; expected auth, subscribe, unsubscribe or ping")


def _auth_frame(raw: str, limit: int) -> str | None:
    """The token of an ``{"op": "auth", "token": ...}`` frame; "" for a malformed auth frame; None otherwise."""
    if '"auth"' not in raw or utf8_length_over(raw, limit):
        return None
    try:
        msg: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(msg, dict) or msg.get("op") != "auth":
        return None
    token = msg.get("token")
    return token if isinstance(token, str) else ""


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
    user_id: int | None = None

    async def authenticate(token: str) -> bytes:
        nonlocal user_id
        try:
            user = await asyncio.to_thread(services.accounts.user_for, token)
        except InvalidToken as exc:
            return _error("unauthorized", str(exc))
        if user.id != client.user_id and hub.per_user.get(user.id, 0) >= settings.ws_max_connections_per_user:
            client.closing = (
                CLOSE_POLICY,
                f"too many connections for this account (max {settings.ws_max_connections_per_user})",
            )
            return _error("too_many_connections", client.closing[1])
        user_id = user.id
        hub.set_user(client, user.id)
        return orjson.dumps({"type": "authenticated", "user_id": user.id})

    async def caller() -> Caller:
        if user_id is None:
            return ANONYMOUS
        user = await asyncio.to_thread(services.accounts.users.get, user_id)
        return await asyncio.to_thread(services.accounts.caller, user)  # None (deleted): anonymous

    async def recheck() -> None:
        """Entitlements end while a socket is open (refund, failed renewal, lapse, deleted account):
        every ``ws_recheck_s`` the channels this caller may no longer read are dropped, with an
        error frame naming each one (the last message of that channel on this socket)."""
        while True:
            await asyncio.sleep(settings.ws_recheck_s)
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
                reply: bytes | None = _error("bad_request", "binary frames are not accepted: send JSON text")
            elif (token := _auth_frame(raw, settings.ws_max_frame_bytes)) is not None:
                reply = await authenticate(token)
            else:
                who = await caller() if user_id is not None and '"subscribe"' in raw else ANONYMOUS
                reply = await handle_frame(hub, client, raw, who, settings)
            if reply is not None and not client.offer(reply):
                client.closing = (CLOSE_SLOW, "slow consumer: replies are not being read")

    await ws.accept()
    client = hub.new_client()
    try:
        if not origin_allowed(ws.headers, allowed_origins(settings)):
            client.closing = (CLOSE_POLICY, "origin not allowed")
        elif len(hub.clients) > settings.ws_max_connections:
            client.closing = (CLOSE_CAPACITY, f"server at capacity ({settings.ws_max_connections} sockets)")
        else:
            query_token = ws.query_params.get("token")
            if query_token is not None:
                first = await authenticate(query_token)
                if user_id is None:  # refused: say why (then, past the per-account bound, close)
                    client.offer(first)
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
        if client.closing is not None:
            code, reason = client.closing
            hub.closes[code] = hub.closes.get(code, 0) + 1
            log.info("ws.closed", code=code, reason=reason)
            with contextlib.suppress(Exception):
                # the pending replies first (an error frame that explains), bounded
                while (frame := client.pop()) is not None and code != CLOSE_SLOW:
                    async with asyncio.timeout(1.0):
                        await _send(ws, frame)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code=code, reason=reason[:120]), timeout=2.0)
    finally:
        hub.remove(client)
