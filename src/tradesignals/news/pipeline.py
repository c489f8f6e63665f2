"""From a news feed to the store: score each item (sentiment + catalysts), write it, count.

Kept apart from the market-data path on purpose: a slow or failing news source must never hold up
bars or signals, so this runs as its own task, and a store error on one batch is logged and
counted, never raised into the feed loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from tradesignals.domain.catalysts import classify_item
from tradesignals.domain.news import NewsError, NewsFeed, NewsItem, ScoredNews
from tradesignals.news.sentiment import SentimentModel
from tradesignals.storage.base import NewsRepository, StorageError

log = structlog.get_logger(__name__)


@dataclass
class NewsScorer:
    """Sentiment of the headline (the summary is not scored: the model was trained on headlines)."""

    model: SentimentModel
    clock: Callable[[], int] = time.time_ns

    def score(self, item: NewsItem) -> ScoredNews:
        prediction = self.model.predict(item.headline)
        return ScoredNews(
            item=item,
            sentiment=prediction.label,
            sentiment_score=round(prediction.score, 4),
            catalysts=tuple(c.value for c in classify_item(item.headline, item.tags)),
            scored_at=self.clock(),
        )


class NewsFeatures(Protocol):
    """What the pipeline updates: ``features.news.NewsFeatureState`` (a layer above, so a protocol)."""

    def add(self, scored: ScoredNews) -> None: ...


@dataclass
class NewsStats:
    received: int = 0
    stored: int = 0
    errors: Counter[str] = field(default_factory=Counter)


async def run_news(
    feed: NewsFeed,
    scorer: NewsScorer,
    store: NewsRepository,
    stop: asyncio.Event,
    *,
    batch: int = 200,
    stats: NewsStats | None = None,
    features: NewsFeatures | None = None,
) -> NewsStats:
    """Consume ``feed`` until it ends or ``stop`` is set; writes in batches of up to ``batch``.

    ``features`` (the rolling per-symbol news features) is updated with each scored item as soon
    as it is scored; the store's row may follow up to one batch later.
    """
    stats = stats or NewsStats()
    pending: list[ScoredNews] = []

    async def flush() -> None:
        if not pending:
            return
        try:
            stats.stored += await asyncio.to_thread(store.add, list(pending))
        except StorageError as exc:
            stats.errors["store"] += 1
            log.warning("news.store_failed", error=str(exc), items=len(pending))
        pending.clear()

    try:
        async for item in feed.stream():
            stats.received += 1
            scored = scorer.score(item)
            if features is not None:
                features.add(scored)
            pending.append(scored)
            if len(pending) >= batch:
                await flush()
            if stop.is_set():
                break
            await asyncio.sleep(0)  # let the market path run between items
    except NewsError as exc:
        # A file that cannot be read stops the news task only, never the market path.
        stats.errors["feed"] += 1
        log.warning("news.feed_failed", error=str(exc))
    finally:
        await flush()
        await feed.close()
        log.info(
            "news.done",
            received=stats.received,
            stored=stats.stored,
            rejected={str(k): v for k, v in feed.rejected.items()},
        )
    return stats
