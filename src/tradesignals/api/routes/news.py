"""News as received, each item with its headline sentiment and catalyst labels (newest first).

``since`` bounds ``received_at`` (what we knew when), not the provider's ``published_at``, so what
this returns for a past ``since`` is what a decision at that time could have seen.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from tradesignals.api.deps import ServicesDep
from tradesignals.api.schemas import MAX_INT64, ErrorOut
from tradesignals.domain.market import to_datetime, to_ns
from tradesignals.domain.news import ScoredNews
from tradesignals.storage.base import NewsQuery

router = APIRouter(prefix="/api/news", tags=["news"])


class SentimentOut(BaseModel):
    label: str
    score: float


class NewsOut(BaseModel):
    id: str
    source: str
    published_at: datetime
    received_at: datetime
    symbols: list[str]
    headline: str
    summary: str
    url: str
    sentiment: SentimentOut
    catalysts: list[str]

    @classmethod
    def of(cls, s: ScoredNews) -> NewsOut:
        it = s.item
        return cls(
            id=it.id,
            source=it.source,
            published_at=to_datetime(it.published_at),
            received_at=to_datetime(it.received_at),
            symbols=list(it.symbols),
            headline=it.headline,
            summary=it.summary,
            url=it.url,
            sentiment=SentimentOut(label=s.sentiment, score=s.sentiment_score),
            catalysts=list(s.catalysts),
        )


class NewsPage(BaseModel):
    items: list[NewsOut]


class NewsFeaturesOut(BaseModel):
    symbol: str
    at: datetime
    features: dict[str, float]


def _ns(name: str, when: datetime) -> int:
    """Nanoseconds UTC, or a 422 past the int64 range the store keeps times in (never a 500)."""
    ns = to_ns(when)
    if not -MAX_INT64 - 1 <= ns <= MAX_INT64:
        raise HTTPException(
            422, detail=f"{name}: outside 1677-09-21 .. 2262-04-11, the range times are kept in"
        )
    return ns


@router.get("/features", response_model=NewsFeaturesOut, responses={422: {"model": ErrorOut}})
async def news_features(
    services: ServicesDep,
    symbol: Annotated[str, Query(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9.\-]+$")],
    at: Annotated[
        datetime | None,
        Query(
            description="As known at this ISO-8601 time (with offset); default now. Live state: "
            "answers for times at or after the symbol's newest item."
        ),
    ] = None,
) -> NewsFeaturesOut:
    """Rolling news features of a symbol (counts, sentiment mean and surprise, catalyst flags)."""
    if at is not None and (at.tzinfo is None or at.utcoffset() is None):
        raise HTTPException(422, detail="at: give a time zone (e.g. 2020-06-01T00:00:00Z)")
    at_ns = _ns("at", at) if at is not None else time.time_ns()
    values = services.news_features.features(symbol.upper(), at_ns)
    return NewsFeaturesOut(symbol=symbol.upper(), at=to_datetime(at_ns), features=values)


@router.get("", response_model=NewsPage, responses={422: {"model": ErrorOut}, 503: {"model": ErrorOut}})
async def list_news(
    services: ServicesDep,
    symbol: Annotated[str | None, Query(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9.\-]+$")] = None,
    since: Annotated[
        datetime | None,
        Query(description="Only items received at or after this ISO-8601 time (with offset)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> NewsPage:
    """Received news, newest first, with sentiment and catalysts; filter by symbol and `since`."""
    if since is not None and (since.tzinfo is None or since.utcoffset() is None):
        raise HTTPException(422, detail="since: give a time zone (e.g. 2020-06-01T00:00:00Z)")
    repo = services.news
    if repo is None:
        raise HTTPException(503, detail="news store not configured on this node")
    query = NewsQuery(
        symbol=symbol.upper() if symbol else None,
        since_ns=_ns("since", since) if since is not None else None,
        limit=limit,
    )
    items = await asyncio.to_thread(repo.query, query)
    return NewsPage(items=[NewsOut.of(s) for s in items])
