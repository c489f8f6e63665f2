"""Binance spot public market streams (no key): trades and closed klines as Ticks and Bars.

Wire format, from Binance's "WebSocket Streams" documentation:

* combined streams at ``/stream?streams=btcusdt@trade/btcusdt@kline_1m``; every event arrives
  wrapped as ``{"stream": "<name>", "data": <payload>}``; stream names are lower case, the ``s``
  field inside the payload is upper case (``BTCUSDT``), which is our symbol spelling too;
* trade ``{"e":"trade","E":ms,"s":..,"t":id,"p":"price","q":"qty","T":ms,"m":bool,..}`` and
  aggregate trade (``aggTrade``, id in ``a``): prices and quantities are *strings*, times are
  epoch milliseconds;
* kline ``{"e":"kline",..,"k":{"t":open ms,"T":close ms,"s":..,"i":"1m","o","c","h","l","v",
  "n","x":closed?,..}}`` is pushed every second or two while the candle forms; only the final
  push (``x: true``) is a bar we may use, the others would be counted twice downstream;
* more streams can be added on an open connection with
  ``{"method":"SUBSCRIBE","params":[..],"id":n}`` (answered ``{"result":null,"id":n}``); a
  connection takes at most 1024 streams and 5 incoming messages a second;
* the server pings every 20 s and drops a client that has not answered within a minute
  (``websockets`` answers pings itself); every connection is cut at 24 hours, and a
  ``serverShutdown`` event may announce an earlier cut.

So: subscriptions ride in the URL (the first ``max_url_streams``, the rest in paced SUBSCRIBE
messages) and are replayed on every reconnect; a connection is rotated make-before-break at
``max_connection_age`` (23.5 h, ahead of the cut) or on ``serverShutdown``; the overlap between the
old and new connection is dropped by trade id and kline open time, which Binance assigns in
increasing order per symbol.
"""

from __future__ import annotations

import asyncio
import random
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
    as_float,
    as_int,
    as_symbol,
    validate_url,
)
from tradesignals.marketdata.feeds.base import FeedError, MarketEvent

log = structlog.get_logger(__name__)

DEFAULT_URL = "wss://stream.binance.com:9443"
MAX_STREAMS_PER_CONNECTION = 1024
# The server allows 5 incoming messages a second (pings and pongs included); stay under it.
SUBSCRIBE_SPACING_S = 0.25
SUBSCRIBE_CHUNK = 200
_NS_PER_MS = 1_000_000
_TRADE_ID_FIELD = {"trade": "t", "aggTrade": "a"}


class BinanceFeed(ReconnectingFeed[MarketEvent]):
    """Ticks from ``trade``/``aggTrade`` streams and Bars from closed ``kline_<interval>`` streams."""

    name = "binance"

    def __init__(
        self,
        symbols: Iterable[str],
        *,
        streams: Sequence[str] = ("trade", "kline_1m"),
        url: str = DEFAULT_URL,
        max_connection_age: float | None = 23.5 * 3600,
        max_url_streams: int = 200,
        backoff: Backoff | None = None,
        max_retries: int | None = None,
        timeouts: Timeouts | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(
            backoff=backoff,
            max_retries=max_retries,
            timeouts=timeouts,
            max_connection_age=max_connection_age,
            rng=rng,
        )
        self._symbols = _normalise_symbols(symbols)
        kinds = _check_stream_kinds(streams)
        self._streams = [f"{s.lower()}@{kind}" for s in self._symbols for kind in kinds]
        if len(self._streams) > MAX_STREAMS_PER_CONNECTION:
            raise FeedError(
                f"binance: {len(self._streams)} streams exceed the {MAX_STREAMS_PER_CONNECTION} a connection "
                "may carry; split the symbols across several feeds"
            )
        if max_url_streams < 1:
            raise FeedError(f"binance: max_url_streams must be >= 1, got {max_url_streams}")
        self._base = validate_url(self.name, url.rstrip("/"))
        self._in_url = self._streams[:max_url_streams]
        self._by_message = self._streams[max_url_streams:]
        self._request_id = 0
        # Highest trade id / kline open time seen per (kind or interval, symbol): the overlap of a
        # rotation and any replay after a reconnect are dropped against these.
        self._last_id: dict[tuple[str, str], int] = {}
        self._last_open: dict[tuple[str, str], int] = {}

    def symbols(self) -> list[str]:
        return list(self._symbols)

    def _url(self) -> str:
        return f"{self._base}/stream?streams={'/'.join(self._in_url)}"

    async def _handshake(self, ws: ClientConnection) -> None:
        # Binance sends no greeting; the URL subscribed us. Streams beyond the URL go by message.
        for start in range(0, len(self._by_message), SUBSCRIBE_CHUNK):
            if start:
                await asyncio.sleep(SUBSCRIBE_SPACING_S)
            self._request_id += 1
            chunk = self._by_message[start : start + SUBSCRIBE_CHUNK]
            await ws.send(
                orjson.dumps({"method": "SUBSCRIBE", "params": chunk, "id": self._request_id}).decode()
            )

    def _decode(self, message: str | bytes) -> list[MarketEvent]:
        try:
            frame = orjson.loads(message)
        except orjson.JSONDecodeError:
            self.rejected["invalid json"] += 1
            return []
        if not isinstance(frame, dict):
            self.rejected["unexpected shape"] += 1
            return []
        data = frame.get("data")
        if isinstance(data, dict):
            return self._event(data)
        return self._control(frame)

    def _event(self, data: dict[str, Any]) -> list[MarketEvent]:
        kind = data.get("e")
        try:
            if kind in _TRADE_ID_FIELD:
                return self._trade(data, str(kind))
            if kind == "kline":
                return self._kline(data["k"])
        except KeyError:
            self.rejected["missing field"] += 1
            return []
        except (TypeError, ValueError):
            self.rejected["bad value"] += 1
            return []
        if kind == "serverShutdown":
            self.request_rotation("server_shutdown")
            return []
        self.rejected["unknown event"] += 1
        return []

    def _trade(self, data: dict[str, Any], kind: str) -> list[MarketEvent]:
        symbol = as_symbol(data["s"])
        trade_id = as_int(data[_TRADE_ID_FIELD[kind]])
        tick = Tick(
            symbol=symbol,
            ts=as_int(data["T"]) * _NS_PER_MS,
            price=as_float(data["p"]),
            size=as_float(data["q"]),
        )
        key = (kind, symbol)
        if trade_id <= self._last_id.get(key, -1):
            self.rejected["duplicate"] += 1
            return []
        self._last_id[key] = trade_id
        return [tick]

    def _kline(self, k: Any) -> list[MarketEvent]:
        if not isinstance(k, dict):
            raise TypeError("k is not an object")
        closed = k["x"]
        if closed is False:
            return []  # the candle is still forming; its final push will carry x: true
        if closed is not True:
            raise TypeError("x is not a boolean")
        symbol = as_symbol(k["s"])
        interval = str(k["i"])
        bar = Bar(
            symbol=symbol,
            timeframe=Timeframe(interval),
            ts=as_int(k["t"]) * _NS_PER_MS,
            open=as_float(k["o"]),
            high=as_float(k["h"]),
            low=as_float(k["l"]),
            close=as_float(k["c"]),
            volume=as_float(k["v"]),
        )
        key = (interval, symbol)
        if bar.ts <= self._last_open.get(key, -1):
            self.rejected["duplicate"] += 1
            return []
        self._last_open[key] = bar.ts
        return [bar]

    def _control(self, frame: dict[str, Any]) -> list[MarketEvent]:
        if "id" in frame and "result" in frame:
            return []  # answer to our SUBSCRIBE
        if "code" in frame and "msg" in frame:
            log.error("feed.server_error", feed=self.name, code=frame["code"], msg=frame["msg"])
            self.rejected["server error"] += 1
            return []
        event = frame.get("event")
        kind = event.get("e") if isinstance(event, dict) else frame.get("e")
        if kind == "serverShutdown":
            self.request_rotation("server_shutdown")
            return []
        self.rejected["unexpected shape"] += 1
        return []


def _normalise_symbols(symbols: Iterable[str]) -> list[str]:
    out: list[str] = []
    for raw in symbols:
        symbol = raw.strip().upper()
        if not symbol.isalnum():
            raise FeedError(f"binance: {raw!r} is not a Binance symbol (letters and digits, e.g. BTCUSDT)")
        if symbol not in out:
            out.append(symbol)
    if not out:
        raise FeedError("binance: no symbols given")
    return out


def _check_stream_kinds(streams: Sequence[str]) -> list[str]:
    kinds: list[str] = []
    for kind in streams:
        if kind in _TRADE_ID_FIELD:
            kinds.append(kind)
            continue
        interval = kind.removeprefix("kline_")
        if kind.startswith("kline_") and interval in {t.value for t in Timeframe}:
            kinds.append(kind)
            continue
        allowed = ", ".join([*_TRADE_ID_FIELD, *(f"kline_{t.value}" for t in Timeframe)])
        raise FeedError(f"binance: unsupported stream {kind!r}; expected one of {allowed}")
    if not kinds:
        raise FeedError("binance: no streams given")
    return kinds
