"""Alpaca's real-time news stream (Benzinga stories) as a ``NewsFeed`` of ``NewsItem``.

Wire format, from Alpaca's "Real-time News" documentation
(``wss://stream.data.alpaca.markets/v1beta1/news``; sandbox ``stream.data.sandbox.alpaca.markets``);
the control protocol is the market-data stream's (``marketdata/feeds/alpaca.py``):

* every server frame is a JSON array of messages with a type in ``T``; the server greets
  ``[{"T":"success","msg":"connected"}]``; the client sends ``{"action":"auth","key","secret"}``,
  answered ``[{"T":"success","msg":"authenticated"}]`` or ``[{"T":"error","code":402,...}]``;
* ``{"action":"subscribe","news":["*"]}`` (or a list of symbols) is answered with the current
  subscription ``[{"T":"subscription","news":[...]}]``;
* a story is ``{"T":"n","id":int,"headline","summary","author","created_at","updated_at"
  (RFC 3339),"url","content","symbols":[...],"source":"benzinga"}``.

Normalised to ``NewsItem``: id ``alpaca:<id>``, source ``alpaca``, ``published_at`` = ``created_at``,
``received_at`` = our clock when the frame was decoded (the only time features may use). The HTML
``content`` is not kept: sentiment and catalysts read the headline. An item Alpaca sends again (a
re-delivery after a reconnect, or an ``updated_at`` revision of the same id) is dropped by id here
and counted ``duplicate``; a revision does not re-score a story we already used.

Bad input: an item without symbols, time or headline, or with a field of the wrong type, is counted
in ``rejected`` by ``RejectReason`` (``no symbol``, ``no time``, ``bad time``, ``no headline``,
``malformed``) and dropped; an unreadable frame counts ``malformed`` once. The reconnect loop is the
market feeds' (``_reconnect.ReconnectingFeed``: backoff with jitter, re-auth and re-subscribe on each
new socket). What retrying cannot fix (402 bad key, 409 no news in the plan, a refused upgrade)
ends ``stream()`` with a one-line ``NewsError`` naming the endpoint, never the secret.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import orjson
import structlog
from websockets.asyncio.client import ClientConnection

from tradesignals.domain.news import NewsError, NewsItem, RejectReason, normalise_symbols
from tradesignals.marketdata.feeds._reconnect import Backoff, ReconnectingFeed, Timeouts, validate_url
from tradesignals.marketdata.feeds.alpaca import alpaca_error, alpaca_handshake, rfc3339_ns
from tradesignals.marketdata.feeds.base import FeedError

log = structlog.get_logger(__name__)

DEFAULT_NEWS_URL = "wss://stream.data.alpaca.markets/v1beta1/news"
# After these, reconnecting with the same settings cannot succeed.
_FATAL_CODES = {
    400: "our message did not follow the protocol",
    401: "we subscribed before authenticating",
    402: "check the API key and secret",
    405: "more symbols than the plan allows",
    409: "news is not in this account's plan",
    410: "invalid subscribe action",
}
_SEEN_IDS = 100_000


class AlpacaNewsFeed(ReconnectingFeed[NewsItem]):
    """Stories for ``symbols`` (``*``: all) from Alpaca's news stream, across reconnects."""

    name = "alpaca-news"

    def __init__(
        self,
        symbols: Iterable[str] = ("*",),
        *,
        key: str,
        secret: str,
        url: str | None = None,
        clock: Callable[[], int] = time.time_ns,
        backoff: Backoff | None = None,
        max_retries: int | None = None,
        timeouts: Timeouts | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(backoff=backoff, max_retries=max_retries, timeouts=timeouts, rng=rng)
        if not key or not secret:
            raise NewsError("alpaca news: key and secret are required (TS_ALPACA_KEY, TS_ALPACA_SECRET)")
        wanted = [s.strip() for s in symbols if s.strip()]
        if "*" in wanted:
            self._symbols = ["*"]
        else:
            self._symbols = list(normalise_symbols(wanted))
            if not self._symbols or len(self._symbols) != len({s.upper().lstrip("$") for s in wanted}):
                raise NewsError(f"alpaca news: {wanted!r} are not all stock symbols (e.g. AAPL, BRK.B, or *)")
        self._key = key
        self._secret = secret
        self._clock = clock
        try:
            self._endpoint = validate_url(self.name, url or DEFAULT_NEWS_URL)
        except FeedError as exc:
            raise NewsError(str(exc)) from None
        self._seen: OrderedDict[int, None] = OrderedDict()

    def symbols(self) -> list[str]:
        return list(self._symbols)

    async def stream(self) -> AsyncIterator[NewsItem]:
        """Items as they arrive; a condition retrying cannot fix ends it with a ``NewsError``."""
        try:
            async for item in super().stream():
                yield item
        except FeedError as exc:
            raise NewsError(str(exc)) from None

    def _url(self) -> str:
        return self._endpoint

    async def _handshake(self, ws: ClientConnection) -> None:
        subscribe = {"action": "subscribe", "news": self._symbols}
        await alpaca_handshake(ws, "alpaca news", self._key, self._secret, subscribe, self._error)
        # The ``subscription`` answer arrives as the first data-phase frame; _decode logs it.

    def _error(self, item: dict[str, Any]) -> Exception:
        return alpaca_error(item, "alpaca news", self._endpoint, _FATAL_CODES)

    def _decode(self, message: str | bytes) -> list[NewsItem]:
        try:
            items = orjson.loads(message)
        except orjson.JSONDecodeError:
            self.rejected[RejectReason.MALFORMED] += 1
            return []
        if not isinstance(items, list):
            self.rejected[RejectReason.MALFORMED] += 1
            return []
        received: int | None = None  # one reading per frame that holds a story: batched items share it
        out: list[NewsItem] = []
        for item in items:
            if not isinstance(item, dict):
                self.rejected[RejectReason.MALFORMED] += 1
                continue
            kind = item.get("T")
            if kind == "n":
                if received is None:
                    received = self._clock()
                news = self._item(item, received)
                if news is not None:
                    out.append(news)
            elif kind == "error":
                error = self._error(item)
                if isinstance(error, FeedError):
                    raise error
                log.warning("news.server_error", feed=self.name, code=item.get("code"), msg=item.get("msg"))
            elif kind == "subscription":
                log.info("news.subscribed", feed=self.name, news=item.get("news"))
            elif kind != "success":
                self.rejected["unknown message type"] += 1
        return out

    def _item(self, raw: dict[str, Any], received: int) -> NewsItem | None:
        """One story, or None with the reason counted."""
        reason = self._problem(raw)
        if reason is not None:
            self.rejected[reason] += 1
            return None
        ident = int(raw["id"])
        if ident in self._seen:
            self.rejected[RejectReason.DUPLICATE] += 1
            return None
        self._seen[ident] = None
        if len(self._seen) > _SEEN_IDS:
            self._seen.popitem(last=False)
        return NewsItem(
            id=f"alpaca:{ident}",
            source="alpaca",
            published_at=rfc3339_ns(raw["created_at"]),
            received_at=received,
            symbols=normalise_symbols(raw["symbols"]),
            headline=" ".join(str(raw["headline"]).split()),
            summary=" ".join(str(raw.get("summary") or "").split()),
            url=str(raw.get("url") or ""),
        )

    @staticmethod
    def _problem(raw: dict[str, Any]) -> RejectReason | None:
        ident = raw.get("id")
        if type(ident) is not int:
            return RejectReason.MALFORMED
        for text in ("summary", "url"):
            if raw.get(text) is not None and not isinstance(raw[text], str):
                return RejectReason.MALFORMED
        if not isinstance(raw.get("symbols"), list) or not normalise_symbols(raw["symbols"]):
            return RejectReason.NO_SYMBOL
        created = raw.get("created_at")
        if created is None or created == "":
            return RejectReason.NO_TIME
        try:
            rfc3339_ns(created)
        except ValueError:
            return RejectReason.BAD_TIME
        headline = raw.get("headline")
        if not isinstance(headline, str) or not headline.strip():
            return RejectReason.NO_HEADLINE
        return None
