"""The polling HTTP loop the REST news adapters share (Polygon news, SEC EDGAR submissions).

One behaviour for every provider, so they count and stop alike: a 429 waits ``Retry-After``
seconds (capped; exponential backoff when the header is absent or unreadable) and retries; a 5xx
or a broken connection backs off and retries; after ``max_retries`` the poll gives up and the next
poll starts afresh. Every failed attempt is counted in ``rejected`` (``http 429``, ``http 5xx``,
``connection error``, ``invalid json``, ``unexpected shape``). Only the statuses the adapter calls
fatal (a rejected key, a refused client) end the stream, with a one-line ``NewsError``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Mapping
from typing import Any

import httpx
import orjson
import structlog

from tradesignals.domain.news import NewsError

log = structlog.get_logger(__name__)


class JsonPoller:
    """Base of the REST news adapters: ``_get_json`` with retries, ``_sleep`` that ``close`` ends."""

    name = "http"

    def __init__(
        self,
        *,
        client: httpx.AsyncClient | None,
        max_retries: int,
        backoff_s: float,
        retry_after_cap_s: float,
        fatal: Mapping[int, str],
    ) -> None:
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(10.0))
        self._own_client = client is None
        self._max_retries = max_retries
        self._backoff = backoff_s
        self._retry_cap = retry_after_cap_s
        self._fatal = dict(fatal)
        self._closed = asyncio.Event()
        self.rejected: Counter[str] = Counter()
        self.requests = 0

    async def _get_json(self, url: str, headers: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        """The answer's JSON object, or None when this poll should give up (counted)."""
        attempt = 0
        while not self._closed.is_set():
            attempt += 1
            self.requests += 1
            try:
                resp = await self._client.get(url, headers=dict(headers or {}))
            except httpx.HTTPError as err:
                self.rejected["connection error"] += 1
                log.warning("news_http_connection_error", feed=self.name, error=type(err).__name__)
                if attempt > self._max_retries:
                    return None
                await self._sleep(self._backoff * 2 ** (attempt - 1))
                continue
            status = resp.status_code
            if status in self._fatal:
                raise NewsError(f"{self.name}: {self._fatal[status]} (HTTP {status})")
            if status == 429:
                self.rejected["http 429"] += 1
                if attempt > self._max_retries:
                    return None
                await self._sleep(self._retry_after(resp.headers.get("Retry-After"), attempt))
                continue
            if status >= 500:
                self.rejected["http 5xx"] += 1
                if attempt > self._max_retries:
                    return None
                await self._sleep(self._backoff * 2 ** (attempt - 1))
                continue
            if status != 200:
                self.rejected[f"http {status}"] += 1
                return None
            try:
                body = orjson.loads(resp.content)
            except orjson.JSONDecodeError:
                self.rejected["invalid json"] += 1
                return None
            if not isinstance(body, dict):
                self.rejected["unexpected shape"] += 1
                return None
            return body
        return None

    def _retry_after(self, header: str | None, attempt: int) -> float:
        fallback = self._backoff * 2 ** (attempt - 1)
        try:
            wait = float(header) if header is not None else fallback
        except ValueError:
            wait = fallback
        return max(0.0, min(wait, self._retry_cap))

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), timeout=seconds)

    async def close(self) -> None:
        self._closed.set()
        if self._own_client:
            await self._client.aclose()
