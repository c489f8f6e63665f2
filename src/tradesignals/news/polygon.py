"""Polygon (Massive) news REST adapter: polls ``GET /v2/reference/news`` and follows its cursor.

Wire format, from Polygon's REST documentation for "Ticker News" (``/v2/reference/news``):

* query ``ticker``, ``published_utc.gte``, ``order`` (asc|desc), ``sort`` (``published_utc``),
  ``limit`` (max 1000) and ``apiKey``;
* answer ``{"status": "OK", "request_id", "count", "results": [...], "next_url"}`` where
  ``next_url`` (absent on the last page) carries an opaque ``cursor`` and must be requested with
  the ``apiKey`` added again;
* each result ``{"id", "publisher": {"name", ...}, "title", "author", "published_utc":
  "2024-06-24T18:33:53Z", "article_url", "tickers": [...], "description", "keywords", ...}``.

Each poll asks for everything published at or after the newest ``published_utc`` already seen
(ascending), walks ``next_url`` pages, and drops what it has seen by id (the ``gte`` overlap is
deliberate: two stories can share a second). A 429 waits ``Retry-After`` seconds (capped) and
retries the same page; a 5xx or a broken connection backs off and retries a few times, then the
poll ends and the next one starts from the watermark. Only a rejected key (401/403) stops the
stream, with a one-line ``NewsError``. Everything else is counted in ``rejected`` and skipped.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import structlog

from tradesignals.domain.market import to_ns
from tradesignals.domain.news import Deduplicator, NewsError, NewsItem, RejectReason, normalise_symbols
from tradesignals.news._http import JsonPoller
from tradesignals.news.names import CompanyNames

log = structlog.get_logger(__name__)

DEFAULT_BASE_URL = "https://api.polygon.io"
NEWS_PATH = "/v2/reference/news"


class PolygonNewsFeed(JsonPoller):
    """Polls Polygon's news endpoint every ``interval_s``; ``stream()`` never ends until ``close()``."""

    name = "polygon-news"

    def __init__(
        self,
        *,
        key: str,
        tickers: Iterable[str] = (),
        base_url: str = DEFAULT_BASE_URL,
        interval_s: float = 60.0,
        limit: int = 100,
        max_pages: int = 50,
        max_retries: int = 3,
        retry_after_cap_s: float = 60.0,
        backoff_s: float = 1.0,
        since_ns: int | None = None,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], int] = time.time_ns,
        names: CompanyNames | None = None,
    ) -> None:
        if not key:
            raise NewsError("polygon-news: an API key is required")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise NewsError(f"polygon-news: base URL must be http(s)://host, got {base_url!r}")
        if not 1 <= limit <= 1000:
            raise NewsError(f"polygon-news: limit must be 1..1000, got {limit}")
        super().__init__(
            client=client,
            max_retries=max_retries,
            backoff_s=backoff_s,
            retry_after_cap_s=retry_after_cap_s,
            fatal={401: f"{base_url} rejected the API key", 403: f"{base_url} rejected the API key"},
        )
        self._key = key
        self._tickers = [t.upper() for t in tickers]
        self._base = base_url.rstrip("/")
        self._interval = interval_s
        self._limit = limit
        self._max_pages = max_pages
        self._clock = clock
        self.dedup = Deduplicator()
        self.names = names
        self.mapped_by_name = 0  # items that had no ticker and got one from a company name
        # ISO text of the newest published_utc seen: the next poll's ``published_utc.gte``.
        self.watermark: str | None = (
            datetime.fromtimestamp(since_ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            if since_ns is not None
            else None
        )

    def first_url(self) -> str:
        params: dict[str, str] = {"order": "asc", "sort": "published_utc", "limit": str(self._limit)}
        if self._tickers:
            # One ticker per request is what the endpoint filters on; several are polled in turn
            # by separate feeds. With none, the whole market's news is polled.
            params["ticker"] = self._tickers[0]
        if self.watermark:
            params["published_utc.gte"] = self.watermark
        return f"{self._base}{NEWS_PATH}?{urlencode(params)}"

    def _with_key(self, url: str) -> str:
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "apiKey"]
        query.append(("apiKey", self._key))
        return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))

    async def poll_once(self) -> list[NewsItem]:
        """One poll: every page from the watermark on; new items in published order."""
        out: list[NewsItem] = []
        url: str | None = self.first_url()
        pages = 0
        while url and pages < self._max_pages and not self._closed.is_set():
            body = await self._get(url)
            if body is None:
                break
            pages += 1
            results = body.get("results")
            if results is None:
                results = []
            if not isinstance(results, list):
                self.rejected["unexpected shape"] += 1
                break
            for raw in results:
                item = self._item(raw)
                if item is None:
                    continue
                if not self.dedup.admit(item):
                    self.rejected[RejectReason.DUPLICATE] += 1
                    continue
                out.append(item)
            nxt = body.get("next_url")
            url = self._next(nxt)
        return out

    def _next(self, nxt: object) -> str | None:
        if not nxt:
            return None
        if not isinstance(nxt, str):
            self.rejected["unexpected shape"] += 1
            return None
        parts = urlsplit(nxt)
        if not parts.scheme:
            return f"{self._base}{nxt if nxt.startswith('/') else '/' + nxt}"
        # Follow the cursor on the host we were configured with (tests, proxies), not a host the
        # answer names: the key must only ever go to the configured host.
        base = urlsplit(self._base)
        return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, ""))

    async def _get(self, url: str) -> dict[str, Any] | None:
        body = await self._get_json(self._with_key(url))
        if body is not None and body.get("status") not in ("OK", "DELAYED", None):
            self.rejected["status not ok"] += 1
            return None
        return body

    def _item(self, raw: object) -> NewsItem | None:
        if not isinstance(raw, dict):
            self.rejected[RejectReason.MALFORMED] += 1
            return None
        ident = raw.get("id")
        title = raw.get("title")
        if not isinstance(ident, str) or not ident:
            self.rejected[RejectReason.MALFORMED] += 1
            return None
        symbols = normalise_symbols(raw.get("tickers"))
        if not symbols and self.names is not None and isinstance(title, str):
            symbols = self.names.match(title)
            self.mapped_by_name += bool(symbols)
        if not symbols:
            self.rejected[RejectReason.NO_SYMBOL] += 1
            return None
        published = raw.get("published_utc")
        if not isinstance(published, str) or not published:
            self.rejected[RejectReason.NO_TIME] += 1
            return None
        try:
            published_ns = to_ns(datetime.fromisoformat(published.replace("Z", "+00:00")))
        except ValueError:
            self.rejected[RejectReason.BAD_TIME] += 1
            return None
        if not isinstance(title, str) or not title.strip():
            self.rejected[RejectReason.NO_HEADLINE] += 1
            return None
        if self.watermark is None or published > self.watermark:
            self.watermark = published
        description = raw.get("description")
        url = raw.get("article_url")
        return NewsItem(
            id=f"polygon:{ident}",
            source="polygon",
            published_at=published_ns,
            received_at=self._clock(),
            symbols=symbols,
            headline=title.strip(),
            summary=description.strip() if isinstance(description, str) else "",
            url=url if isinstance(url, str) else "",
        )

    async def stream(self) -> AsyncIterator[NewsItem]:
        while not self._closed.is_set():
            for item in await self.poll_once():
                yield item
            await self._sleep(self._interval)
