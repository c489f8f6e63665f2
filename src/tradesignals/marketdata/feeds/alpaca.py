"""Alpaca market data v2 stock stream: trades as Ticks, minute bars as Bars.

Wire format, from Alpaca's "Real-time Stock Data" / "WebSocket Stream" documentation
(``wss://stream.data.alpaca.markets/v2/{feed}``, feed ``iex``, ``sip``, ``delayed_sip`` or
``test``):

* every server frame is a JSON array of messages, each with a type in ``T``; control messages
  (``success``, ``error``, ``subscription``) come alone, data may come batched;
* the server greets ``[{"T":"success","msg":"connected"}]``; the client has ~10 s to send
  ``{"action":"auth","key":..,"secret":..}``, answered ``[{"T":"success","msg":"authenticated"}]``
  or ``[{"T":"error","code":402,"msg":"auth failed"}]``;
* ``{"action":"subscribe","trades":[..],"quotes":[..],"bars":[..]}`` is answered with the whole
  current subscription ``[{"T":"subscription","trades":[..],..}]``;
* trade ``{"T":"t","S":sym,"i":id,"x":exch,"p":price,"s":size,"c":[..],"t":RFC-3339 ns,"z":tape}``,
  minute bar ``{"T":"b","S":sym,"o","h","l","c","v","t":bar start,"n","vw"}``;
* errors: 400 invalid syntax, 401 not authenticated, 402 auth failed, 403 already authenticated,
  404 auth timeout, 405 symbol limit exceeded, 406 connection limit exceeded, 407 slow client,
  408 v2 not enabled, 409 insufficient subscription, 410 invalid subscribe action, 500 internal.
  Most plans allow one connection per endpoint, so a reconnect may meet 406 until the server
  reaps the old one: that is retried with backoff; what retrying cannot fix (402, 405, 408, 409,
  and our own protocol mistakes 400/401/410) ends ``stream()`` with a one-line ``FeedError``.

Why not alpaca-py's ``StockDataStream``, which does accept ``url_override``: we read its source
(0.44) and it does not fit a feed that must run inside our event loop and never hide a failure.
A bad key is caught by a blanket ``except Exception`` in ``_run_forever`` and retried forever
with a logged traceback, with no hook to learn of it; ``stop_ws()`` is only noticed when its
receive loop next wakes (up to 5 s); a frame that fails to decode is swallowed with a log line, so
it cannot be counted; the backoff lives in private attributes; it speaks MessagePack over the
deprecated ``websockets.legacy`` client; and subscribing while running blocks on
``run_coroutine_threadsafe(...).result()``, which deadlocks when called from its own loop; and on
Python 3.11 its ``asyncio.wait_for(recv)`` swallows a ``cancel()`` that lands as a frame arrives,
so even cancelling its task can take more than one try (the SDK test has to loop). So
this module implements the documented protocol (JSON, the documented default) on ``websockets``;
the integration tests drive the real ``StockDataStream`` against the same local server to check
that the server speaks what the SDK expects.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
import structlog
from websockets.asyncio.client import ClientConnection

from tradesignals.domain.market import NS_PER_SECOND, Bar, Tick, Timeframe
from tradesignals.marketdata.feeds._reconnect import (
    Backoff,
    ReconnectingFeed,
    Timeouts,
    TransientFeedError,
    as_float,
    as_symbol,
    validate_url,
)
from tradesignals.marketdata.feeds.base import FeedError, MarketEvent

log = structlog.get_logger(__name__)

DEFAULT_URL = "wss://stream.data.alpaca.markets/v2/{feed}"
FEEDS = ("iex", "sip", "delayed_sip", "test")
CHANNELS = ("trades", "bars")
# Codes after which reconnecting with the same settings cannot succeed.
_FATAL_CODES = {
    400: "our message did not follow the protocol",
    401: "we subscribed before authenticating",
    402: "check the API key and secret",
    405: "more symbols than the plan allows",
    408: "the account has no access to market data v2",
    409: "this feed is not in the plan; the free plan has 'iex'",
    410: "invalid subscribe action",
}
# Data types we do not subscribe to but may see (quotes, updated and daily bars, statuses, LULD,
# corrections, cancels, order books, news): ignored, not counted as malformed.
_IGNORED_TYPES = frozenset({"q", "u", "d", "s", "l", "c", "x", "o", "n"})
_SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9.\-/]*")


class AlpacaFeed(ReconnectingFeed[MarketEvent]):
    """Stock trades and minute bars from one Alpaca data feed (``iex`` on the free plan)."""

    name = "alpaca"

    def __init__(
        self,
        symbols: Iterable[str],
        *,
        key: str,
        secret: str,
        feed: str = "iex",
        url: str | None = None,
        channels: Sequence[str] = CHANNELS,
        backoff: Backoff | None = None,
        max_retries: int | None = None,
        timeouts: Timeouts | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(backoff=backoff, max_retries=max_retries, timeouts=timeouts, rng=rng)
        if not key or not secret:
            raise FeedError("alpaca: key and secret are required")
        if feed not in FEEDS:
            raise FeedError(f"alpaca: unknown feed {feed!r}; expected one of {', '.join(FEEDS)}")
        unknown = [c for c in channels if c not in CHANNELS]
        if unknown or not channels:
            raise FeedError(f"alpaca: channels must be among {', '.join(CHANNELS)}, got {list(channels)}")
        self._symbols = _normalise_symbols(symbols)
        self._channels = list(dict.fromkeys(channels))
        self._key = key
        self._secret = secret
        self._feed = feed
        self._endpoint = validate_url(self.name, url or DEFAULT_URL.format(feed=feed))
        self._last_bar: dict[str, int] = {}

    def symbols(self) -> list[str]:
        return list(self._symbols)

    def _url(self) -> str:
        return self._endpoint

    async def _handshake(self, ws: ClientConnection) -> None:
        subscribe: dict[str, Any] = {"action": "subscribe"}
        for channel in self._channels:
            subscribe[channel] = self._symbols
        await alpaca_handshake(ws, "alpaca", self._key, self._secret, subscribe, self._error)
        # The ``subscription`` answer arrives as the first data-phase frame; _decode logs it.

    def _error(self, item: dict[str, Any]) -> Exception:
        return alpaca_error(item, "alpaca", self._endpoint, _FATAL_CODES)

    def _decode(self, message: str | bytes) -> list[MarketEvent]:
        try:
            items = orjson.loads(message)
        except orjson.JSONDecodeError:
            self.rejected["invalid json"] += 1
            return []
        if not isinstance(items, list):
            self.rejected["unexpected shape"] += 1
            return []
        out: list[MarketEvent] = []
        for item in items:
            if not isinstance(item, dict):
                self.rejected["unexpected shape"] += 1
                continue
            kind = item.get("T")
            try:
                if kind == "t":
                    out.append(self._trade(item))
                elif kind == "b":
                    bar = self._bar(item)
                    if bar is not None:
                        out.append(bar)
                elif kind == "error":
                    self._stream_error(item)
                elif kind == "subscription":
                    log.info("feed.subscribed", feed=self.name, **{c: item.get(c) for c in self._channels})
                elif kind != "success" and kind not in _IGNORED_TYPES:
                    self.rejected["unknown message type"] += 1
            except KeyError:
                self.rejected["missing field"] += 1
            except (TypeError, ValueError):
                self.rejected["bad value"] += 1
        return out

    def _trade(self, item: dict[str, Any]) -> Tick:
        return Tick(
            symbol=as_symbol(item["S"]),
            ts=rfc3339_ns(item["t"]),
            price=as_float(item["p"]),
            size=as_float(item["s"]),
        )

    def _bar(self, item: dict[str, Any]) -> Bar | None:
        bar = Bar(
            symbol=as_symbol(item["S"]),
            timeframe=Timeframe.M1,
            ts=rfc3339_ns(item["t"]),
            open=as_float(item["o"]),
            high=as_float(item["h"]),
            low=as_float(item["l"]),
            close=as_float(item["c"]),
            volume=as_float(item["v"]),
        )
        if bar.ts <= self._last_bar.get(bar.symbol, -1):
            self.rejected["duplicate"] += 1
            return None
        self._last_bar[bar.symbol] = bar.ts
        return bar

    def _stream_error(self, item: dict[str, Any]) -> None:
        error = self._error(item)
        if isinstance(error, FeedError):
            raise error
        # 406/407/500 mid-stream: the server is about to drop us, and the reconnect loop follows.
        log.warning("feed.server_error", feed=self.name, code=item.get("code"), msg=item.get("msg"))


async def alpaca_handshake(
    ws: ClientConnection,
    label: str,
    key: str,
    secret: str,
    subscribe: dict[str, Any],
    error: Callable[[dict[str, Any]], Exception],
) -> None:
    """The control protocol every Alpaca stream shares (market data v2, news): greeting, auth,
    subscribe. ``error`` turns an ``{"T":"error"}`` answer into the exception to raise."""
    await _expect(ws, "connected", label, error)
    await ws.send(orjson.dumps({"action": "auth", "key": key, "secret": secret}).decode())
    await _expect(ws, "authenticated", label, error)
    await ws.send(orjson.dumps(subscribe).decode())


async def _expect(
    ws: ClientConnection, msg: str, label: str, error: Callable[[dict[str, Any]], Exception]
) -> None:
    raw = await ws.recv()
    try:
        items = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise TransientFeedError(f"{label}: unreadable reply while waiting for {msg!r}") from None
    for item in items if isinstance(items, list) else [items]:
        if not isinstance(item, dict):
            continue
        if item.get("T") == "success" and item.get("msg") == msg:
            return
        if item.get("T") == "error":
            raise error(item)
    raise TransientFeedError(f"{label}: expected {msg!r}, got {str(raw)[:200]}")


def alpaca_error(item: dict[str, Any], label: str, endpoint: str, fatal: dict[int, str]) -> Exception:
    """``FeedError`` (one line, naming the endpoint and what to check) for a code retrying cannot
    fix, else ``TransientFeedError``."""
    code, msg = item.get("code"), item.get("msg", "")
    if isinstance(code, int) and code in fatal:
        return FeedError(f"{label}: {code} {msg} from {endpoint} ({fatal[code]})")
    return TransientFeedError(f"{label}: {code} {msg}")


def rfc3339_ns(value: Any) -> int:
    """Nanoseconds since the epoch for ``2021-02-22T15:51:45.335689322Z`` (or ``±HH:MM``).

    ``datetime`` stops at microseconds and Alpaca sends nanoseconds, so the fraction is read as
    digits; the whole-second part repeats across a burst of trades, hence the cache.
    """
    if not isinstance(value, str) or len(value) < 20 or value[10] not in "Tt":
        raise ValueError(f"not an RFC-3339 timestamp: {value!r}")
    seconds = _epoch_seconds(value[:19])
    rest = value[19:]
    fraction = 0
    if rest.startswith("."):
        end = 1
        while end < len(rest) and rest[end].isdigit():
            end += 1
        digits = rest[1:end]
        if not digits or len(digits) > 9:
            raise ValueError(f"bad fraction in {value!r}")
        fraction = int(digits.ljust(9, "0"))
        rest = rest[end:]
    if rest in ("Z", "z"):
        offset = 0
    elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":" and rest[1:3].isdigit() and rest[4:].isdigit():
        offset = (int(rest[1:3]) * 3600 + int(rest[4:]) * 60) * (1 if rest[0] == "+" else -1)
    else:
        raise ValueError(f"bad zone in {value!r}")
    return (seconds - offset) * NS_PER_SECOND + fraction


@lru_cache(maxsize=4096)
def _epoch_seconds(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def _normalise_symbols(symbols: Iterable[str]) -> list[str]:
    out: list[str] = []
    for raw in symbols:
        symbol = raw.strip().upper()
        if not _SYMBOL.fullmatch(symbol):
            raise FeedError(f"alpaca: {raw!r} is not a stock symbol (e.g. AAPL, BRK.B)")
        if symbol not in out:
            out.append(symbol)
    if not out:
        raise FeedError("alpaca: no symbols given")
    return out
