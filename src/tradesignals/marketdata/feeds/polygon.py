"""Polygon (now Massive) WebSocket: stock trades (``T``) and minute aggregates (``AM``), and the
crypto equivalents (``XT``, ``XA``), as Ticks and 1-minute Bars.

Wire format, from Polygon's WebSocket documentation (``wss://socket.polygon.io/{cluster}``; the
same protocol is served as ``socket.massive.com`` since the rebrand):

* every server frame is a JSON array of events, each with its type in ``ev``;
* the server greets ``[{"ev":"status","status":"connected","message":"Connected Successfully"}]``;
  the client sends ``{"action":"auth","params":"<API key>"}`` and gets ``status`` ``auth_success``
  or ``auth_failed`` (then the connection is closed); ``max_connections`` means the account's
  single connection per cluster is still held;
* ``{"action":"subscribe","params":"T.AAPL,AM.AAPL"}`` is acknowledged per channel with
  ``status`` ``success``, ``"subscribed to: T.AAPL"``;
* stock trade ``{"ev":"T","sym","x","i","z","p","s","c":[..],"t":ms,"q",..}``; minute aggregate
  ``{"ev":"AM","sym","v","av","op","vw","o","c","h","l","a","z","s":start ms,"e":end ms}``;
  crypto trade ``{"ev":"XT","pair":"BTC-USD","p","t":ms,"s","c","i","x","r"}`` and aggregate
  ``{"ev":"XA","pair","o","c","h","l","v","vw","s","e","z"}``.

Crypto pairs are given and subscribed in Polygon's spelling (``BTC-USD``) and emitted in ours
(``BTCUSD``), since the dash cannot be put back reliably. A rejected key ends ``stream()`` with a
one-line ``FeedError``; anything else that ends a connection is retried with backoff and the
subscription is sent again on the new one.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import structlog
from websockets.asyncio.client import ClientConnection

from tradesignals.domain.market import Bar, Tick, Timeframe
from tradesignals.marketdata.feeds._reconnect import (
    Backoff,
    ReconnectingFeed,
    Timeouts,
    TransientFeedError,
    as_float,
    as_int,
    as_symbol,
    validate_url,
)
from tradesignals.marketdata.feeds.base import FeedError, MarketEvent

log = structlog.get_logger(__name__)

DEFAULT_URL = "wss://socket.polygon.io/{cluster}"
# Channels per cluster: (trades, minute aggregates) and the field naming the instrument.
CLUSTERS: dict[str, tuple[tuple[str, ...], str]] = {
    "stocks": (("T", "AM"), "sym"),
    "crypto": (("XT", "XA"), "pair"),
}
_TRADES = frozenset({"T", "XT"})
_MINUTE_AGGREGATES = frozenset({"AM", "XA"})
# Events of channels we do not subscribe to (quotes, second aggregates, LULD, imbalances, fair
# market value, crypto books): ignored, not counted as malformed.
_IGNORED_EVENTS = frozenset({"Q", "A", "LULD", "NOI", "FMV", "XQ", "XAS", "XL2"})
_NS_PER_MS = 1_000_000
_STOCK = re.compile(r"[A-Z0-9][A-Z0-9.\-]*")
_PAIR = re.compile(r"([A-Z0-9]+)-([A-Z0-9]+)")


class PolygonFeed(ReconnectingFeed[MarketEvent]):
    """Trades and minute aggregates for stocks (``AAPL``) or crypto pairs (``BTC-USD``)."""

    name = "polygon"

    def __init__(
        self,
        symbols: Iterable[str],
        *,
        key: str,
        cluster: str = "stocks",
        url: str | None = None,
        channels: Sequence[str] | None = None,
        backoff: Backoff | None = None,
        max_retries: int | None = None,
        timeouts: Timeouts | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(backoff=backoff, max_retries=max_retries, timeouts=timeouts, rng=rng)
        if not key:
            raise FeedError("polygon: an API key is required")
        if cluster not in CLUSTERS:
            raise FeedError(
                f"polygon: unsupported cluster {cluster!r}; expected one of {', '.join(CLUSTERS)}"
            )
        allowed, self._instrument_field = CLUSTERS[cluster]
        chosen = list(dict.fromkeys(channels if channels is not None else allowed))
        if not chosen or any(c not in allowed for c in chosen):
            raise FeedError(f"polygon: {cluster} channels must be among {', '.join(allowed)}, got {chosen}")
        self._key = key
        self._cluster = cluster
        self._channels = chosen
        # Polygon's spelling -> ours (identical for stocks, dash dropped for crypto pairs).
        self._ours = _normalise_symbols(symbols, cluster)
        self._endpoint = validate_url(self.name, url or DEFAULT_URL.format(cluster=cluster))
        self._last_bar: dict[str, int] = {}

    def symbols(self) -> list[str]:
        return list(self._ours.values())

    def _url(self) -> str:
        return self._endpoint

    def subscription(self) -> str:
        """The ``params`` of the subscribe message, e.g. ``T.AAPL,AM.AAPL``."""
        return ",".join(f"{channel}.{theirs}" for theirs in self._ours for channel in self._channels)

    async def _handshake(self, ws: ClientConnection) -> None:
        await self._expect(ws, "connected")
        await ws.send(orjson.dumps({"action": "auth", "params": self._key}).decode())
        await self._expect(ws, "auth_success")
        await ws.send(orjson.dumps({"action": "subscribe", "params": self.subscription()}).decode())

    async def _expect(self, ws: ClientConnection, wanted: str) -> None:
        raw = await ws.recv()
        try:
            items = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise TransientFeedError(f"polygon: unreadable reply while waiting for {wanted!r}") from None
        for item in items if isinstance(items, list) else [items]:
            if not isinstance(item, dict) or item.get("ev") != "status":
                continue
            status = item.get("status")
            if status == wanted:
                return
            if status == "auth_failed":
                raise self._auth_failed(item)
            if status == "max_connections":
                raise TransientFeedError(f"polygon: max_connections ({item.get('message', '')})")
        raise TransientFeedError(f"polygon: expected status {wanted!r}, got {str(raw)[:200]}")

    def _auth_failed(self, item: dict[str, Any]) -> FeedError:
        message = str(item.get("message", "")).strip() or "authentication failed"
        return FeedError(f"polygon: {self._endpoint} rejected the API key ({message})")

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
            kind = item.get("ev")
            try:
                if kind in _TRADES:
                    out.append(self._trade(item))
                elif kind in _MINUTE_AGGREGATES:
                    bar = self._aggregate(item)
                    if bar is not None:
                        out.append(bar)
                elif kind == "status":
                    self._status(item)
                elif kind not in _IGNORED_EVENTS:
                    self.rejected["unknown event"] += 1
            except KeyError:
                self.rejected["missing field"] += 1
            except (TypeError, ValueError):
                self.rejected["bad value"] += 1
        return out

    def _symbol(self, item: dict[str, Any]) -> str:
        theirs = as_symbol(item[self._instrument_field])
        return self._ours.get(theirs) or theirs.replace("-", "")

    def _trade(self, item: dict[str, Any]) -> Tick:
        return Tick(
            symbol=self._symbol(item),
            ts=as_int(item["t"]) * _NS_PER_MS,
            price=as_float(item["p"]),
            size=as_float(item["s"]),
        )

    def _aggregate(self, item: dict[str, Any]) -> Bar | None:
        bar = Bar(
            symbol=self._symbol(item),
            timeframe=Timeframe.M1,
            ts=as_int(item["s"]) * _NS_PER_MS,
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

    def _status(self, item: dict[str, Any]) -> None:
        status = item.get("status")
        if status == "auth_failed":
            raise self._auth_failed(item)
        if status in ("max_connections", "error"):
            log.warning("feed.server_status", feed=self.name, status=status, message=item.get("message"))
        else:
            log.info("feed.server_status", feed=self.name, status=status, message=item.get("message"))


def _normalise_symbols(symbols: Iterable[str], cluster: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in symbols:
        theirs = raw.strip().upper()
        if cluster == "crypto":
            pair = _PAIR.fullmatch(theirs)
            if pair is None:
                raise FeedError(f"polygon: crypto pair {raw!r} must be written BASE-QUOTE, e.g. BTC-USD")
            out[theirs] = pair.group(1) + pair.group(2)
        elif _STOCK.fullmatch(theirs):
            out[theirs] = theirs
        else:
            raise FeedError(f"polygon: {raw!r} is not a stock symbol (e.g. AAPL, BRK.B)")
    if not out:
        raise FeedError("polygon: no symbols given")
    return out
