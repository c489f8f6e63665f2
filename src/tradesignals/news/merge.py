"""Several news sources as one feed, de-duplicated across them.

The same story reaches us from more than one place (a wire story on Polygon and Benzinga, a
filing and the press release about it): each source drops its own repeats, and this feed drops a
story another source already delivered, by the shared ``Deduplicator`` rules (id, URL, or the
same headline on a shared symbol within a day). Items are passed on as they arrive from any
source; one source ending or failing does not stop the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Sequence

import structlog

from tradesignals.domain.news import Deduplicator, NewsError, NewsFeed, NewsItem, RejectReason

log = structlog.get_logger(__name__)
_DONE = object()


class MergedNewsFeed:
    """``stream()`` yields each source's items as they come, minus cross-source repeats."""

    def __init__(self, feeds: Sequence[NewsFeed]) -> None:
        if not feeds:
            raise NewsError("merged news feed: no sources")
        self.feeds = list(feeds)
        self.name = "+".join(f.name for f in self.feeds)
        self.dedup = Deduplicator()
        self._own: Counter[str] = Counter()

    @property
    def rejected(self) -> Counter[str]:
        """Every source's counts plus the cross-source duplicates (under ``duplicate``)."""
        total: Counter[str] = Counter()
        for f in self.feeds:
            total.update({str(k): v for k, v in f.rejected.items()})
        total.update(self._own)
        return total

    async def _pump(self, feed: NewsFeed, queue: asyncio.Queue[object]) -> None:
        try:
            async for item in feed.stream():
                await queue.put(item)
        except NewsError as exc:
            self._own["source failed"] += 1
            log.warning("news.source_failed", source=feed.name, error=str(exc))
        finally:
            await queue.put(_DONE)

    async def stream(self) -> AsyncIterator[NewsItem]:
        queue: asyncio.Queue[object] = asyncio.Queue(maxsize=1000)
        pumps = [asyncio.create_task(self._pump(f, queue), name=f"news-{f.name}") for f in self.feeds]
        running = len(pumps)
        try:
            while running:
                got = await queue.get()
                if got is _DONE:
                    running -= 1
                    continue
                assert isinstance(got, NewsItem)
                if self.dedup.admit(got):
                    yield got
                else:
                    self._own[RejectReason.DUPLICATE.value] += 1
        finally:
            for p in pumps:
                p.cancel()
            for p in pumps:
                with contextlib.suppress(asyncio.CancelledError):
                    await p

    async def close(self) -> None:
        for f in self.feeds:
            await f.close()
