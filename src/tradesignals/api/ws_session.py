"""The WebSocket protocol of ``/ws``, whatever server carries the socket.

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

Two servers carry this protocol and share one ``Hub``: the API's ASGI route (``ws.py``, same
origin as the web app) and, where ``ws_port`` is set, the dedicated fan-out server
(``ws_server.py``). Both drive a ``WsSession``, so a rule here holds on either.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
import structlog

from tradesignals.accounts.tokens import InvalidToken
from tradesignals.api.hub import Hub, HubClient
from tradesignals.config import Settings
from tradesignals.domain.entitlements import ANONYMOUS, Caller, channel_error

if TYPE_CHECKING:
    from tradesignals.wiring import Services

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


class WsSession:
    """One socket's protocol state: who it is, what it may read; the server moves the bytes."""

    def __init__(self, services: Services, client: HubClient) -> None:
        self.services = services
        self.settings: Settings = services.settings
        self.hub: Hub = services.hub
        self.client = client
        self.user_id: int | None = None

    async def open(self, headers: Any, query_token: str | None) -> None:
        """Admission: the Origin, this node's capacity, a ``?token=``; a refusal sets ``closing``."""
        settings, client = self.settings, self.client
        if not origin_allowed(headers, allowed_origins(settings)):
            client.closing = (CLOSE_POLICY, "origin not allowed")
        elif len(self.hub.clients) > settings.ws_max_connections:
            client.closing = (CLOSE_CAPACITY, f"server at capacity ({settings.ws_max_connections} sockets)")
        elif query_token is not None:
            first = await self.authenticate(query_token)
            if self.user_id is None:  # refused: say why (then, past the per-account bound, close)
                client.offer(first)

    async def authenticate(self, token: str) -> bytes:
        services, settings, client = self.services, self.settings, self.client
        try:
            user = await asyncio.to_thread(services.accounts.user_for, token)
        except InvalidToken as exc:
            return _error("unauthorized", str(exc))
        if (
            user.id != client.user_id
            and self.hub.per_user.get(user.id, 0) >= settings.ws_max_connections_per_user
        ):
            client.closing = (
                CLOSE_POLICY,
                f"too many connections for this account (max {settings.ws_max_connections_per_user})",
            )
            return _error("too_many_connections", client.closing[1])
        self.user_id = user.id
        self.hub.set_user(client, user.id)
        return orjson.dumps({"type": "authenticated", "user_id": user.id})

    async def caller(self) -> Caller:
        if self.user_id is None:
            return ANONYMOUS
        accounts = self.services.accounts
        user = await asyncio.to_thread(accounts.users.get, self.user_id)
        return await asyncio.to_thread(accounts.caller, user)  # None (deleted): anonymous

    async def recheck(self) -> None:
        """Entitlements end while a socket is open (refund, failed renewal, lapse, deleted account):
        the channels this caller may no longer read are dropped, with an error frame naming each one
        (the last message of that channel on this socket). Servers call it every ``ws_recheck_s``."""
        if self.user_id is None:
            return  # an anonymous socket holds public channels only
        try:
            now = await self.caller()
        except Exception as exc:  # storage down: keep the socket, try again next round
            log.warning("ws.recheck_failed", error=type(exc).__name__)
            return
        client = self.client
        for channel in sorted(client.channels):
            err = channel_error(now, channel)
            if err is not None:
                self.hub.unsubscribe(client, channel)
                frame = {"type": "error", "code": err[0], "channel": channel, "message": "ended: " + err[1]}
                client.offer(orjson.dumps(frame))

    async def on_text(self, raw: str) -> None:
        """One text frame from the client: its reply is queued (or written) in order."""
        settings = self.settings
        if (token := _auth_frame(raw, settings.ws_max_frame_bytes)) is not None:
            reply: bytes | None = await self.authenticate(token)
        else:
            who = await self.caller() if self.user_id is not None and '"subscribe"' in raw else ANONYMOUS
            reply = await handle_frame(self.hub, self.client, raw, who, settings)
        self.reply(reply)

    def on_binary(self) -> None:
        self.reply(_error("bad_request", "binary frames are not accepted: send JSON text"))

    def reply(self, frame: bytes | None) -> None:
        if frame is not None and not self.client.offer(frame):
            self.client.closing = (CLOSE_SLOW, "slow consumer: replies are not being read")

    def closed(self) -> tuple[int, str] | None:
        """The close code and reason, counted once per socket; None while it stays open."""
        closing = self.client.closing
        if closing is not None:
            code, reason = closing
            self.hub.closes[code] = self.hub.closes.get(code, 0) + 1
            log.info("ws.closed", code=code, reason=reason)
        return closing


__all__ = [
    "CLOSE_CAPACITY",
    "CLOSE_IDLE",
    "CLOSE_INTERNAL",
    "CLOSE_POLICY",
    "CLOSE_SLOW",
    "WsSession",
    "allowed_origins",
    "handle_frame",
    "origin_allowed",
    "utf8_length_over",
]
