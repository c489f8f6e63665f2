"""News as received, each item with its headline sentiment and catalyst labels (newest first).

``since`` bounds ``received_at`` (what we knew when), not the provider's ``published_at``, so what
this returns for a past ``since`` is what a decision at that time could have seen.

The live part is gated by ``domain.entitlements.news_visible_until``: news received in the last
``TS_NEWS_PUBLIC_DELAY_MIN`` minutes is for premium callers (and, with ``symbol=``, the holder of an
upgrade in force to a signal on that symbol). Anyone else gets the older items — the bound is part
of the store's query, so pages stay full — and a ``delayed`` field saying so (never a silent gap).
The features route answers such callers as known at the same bound.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from tradesignals.api.auth import IdentityDep
from tradesignals.api.deps import AppServices, ServicesDep
from tradesignals.api.schemas import MAX_INT64, ErrorOut
from tradesignals.domain.entitlements import Caller, news_visible_until
from tradesignals.domain.market import NS_PER_SECOND, to_datetime, to_ns
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


class DelayedOut(BaseModel):
    """Present when the caller's tier holds back the newest news: what it sees ends at ``until``."""

    minutes: int
    until: datetime
    reason: str


class NewsPage(BaseModel):
    items: list[NewsOut]
    delayed: DelayedOut | None = None


class NewsFeaturesOut(BaseModel):
    symbol: str
    at: datetime
    features: dict[str, float]
    delayed: DelayedOut | None = None


def _upgraded_symbol(services: AppServices, caller: Caller, symbol: str | None) -> bool:
    """Whether the caller holds an upgrade in force to a signal on ``symbol`` (a few id look-ups)."""
    if symbol is None or not caller.upgrades:
        return False
    for signal_id in sorted(caller.upgrades):
        signal = services.signals.get(signal_id)
        if signal is not None and signal.symbol == symbol:
            return True
    return False


def _bound(
    services: AppServices, caller: Caller, symbol: str | None, now_ns: int
) -> tuple[int, DelayedOut] | None:
    """The caller's entitlement bound on ``received_at`` (ns) and how the response states it; None:
    no delay."""
    minutes = services.settings.news_public_delay_min
    if minutes == 0:
        return None  # all news public: nothing to gate or to state
    upgraded = _upgraded_symbol(services, caller, symbol)
    until = news_visible_until(caller, now_ns, minutes * 60 * NS_PER_SECOND, upgraded_symbol=upgraded)
    if until is None:
        return None
    return until, DelayedOut(
        minutes=minutes,
        until=to_datetime(until),
        reason=f"news received in the last {minutes} minutes is for premium members "
        "(or holders of an upgrade to a signal on that symbol); older news is shown",
    )


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
    ident: IdentityDep,
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
    now_ns = time.time_ns()
    at_ns = _ns("at", at) if at is not None else now_ns
    sym = symbol.upper()
    bound = await asyncio.to_thread(_bound, services, ident.caller, sym, now_ns)
    delayed = None
    if bound is not None and at_ns > bound[0]:
        at_ns, delayed = bound  # a time before the bound holds nothing back
    values = services.news_features.features(sym, at_ns)
    return NewsFeaturesOut(symbol=sym, at=to_datetime(at_ns), features=values, delayed=delayed)


@router.get("", response_model=NewsPage, responses={422: {"model": ErrorOut}, 503: {"model": ErrorOut}})
async def list_news(
    services: ServicesDep,
    ident: IdentityDep,
    symbol: Annotated[str | None, Query(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9.\-]+$")] = None,
    since: Annotated[
        datetime | None,
        Query(description="Only items received at or after this ISO-8601 time (with offset)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> NewsPage:
    """Received news, newest first, with sentiment and catalysts; filter by symbol and `since`.

    Anonymous and free callers get news received before the last `TS_NEWS_PUBLIC_DELAY_MIN` minutes,
    and `delayed` says so; premium callers (and upgrade holders asking about that symbol) get all.
    """
    if since is not None and (since.tzinfo is None or since.utcoffset() is None):
        raise HTTPException(422, detail="since: give a time zone (e.g. 2020-06-01T00:00:00Z)")
    repo = services.news
    if repo is None:
        raise HTTPException(503, detail="news store not configured on this node")
    sym = symbol.upper() if symbol else None
    bound = await asyncio.to_thread(_bound, services, ident.caller, sym, time.time_ns())
    query = NewsQuery(
        symbol=sym,
        since_ns=_ns("since", since) if since is not None else None,
        until_ns=bound[0] if bound is not None else None,
        limit=limit,
    )
    items = await asyncio.to_thread(repo.query, query)
    return NewsPage(items=[NewsOut.of(s) for s in items], delayed=bound[1] if bound is not None else None)
