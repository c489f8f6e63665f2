"""The news store: SQL rows for received, scored news (tables ``news_items`` and ``news_symbols``).

Writes are idempotent by item id (a replay restarted, a poller overlapping its last page): the
first copy stays, later ones are counted as not new. Reads go newest first by ``received_at``,
through the (symbol, received_at) index when a symbol is given.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from tradesignals.domain.news import NewsItem, ScoredNews
from tradesignals.storage.base import NewsQuery
from tradesignals.storage.db import storage_errors, writer
from tradesignals.storage.tables import NewsItemRow, NewsSymbolRow

MAX_NEWS_LIMIT = 500


def _to_scored(row: NewsItemRow) -> ScoredNews:
    return ScoredNews(
        item=NewsItem(
            id=row.id,
            source=row.source,
            published_at=row.published_at,
            received_at=row.received_at,
            symbols=tuple(row.symbols),
            headline=row.headline,
            summary=row.summary,
            url=row.url,
        ),
        sentiment=row.sentiment,
        sentiment_score=row.sentiment_score,
        catalysts=tuple(row.catalysts),
        scored_at=row.scored_at,
    )


class SqlNewsRepository:
    """Implements ``storage.base.NewsRepository`` on SQLite and PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(writer(engine), expire_on_commit=False)

    def add(self, items: Iterable[ScoredNews]) -> int:
        batch = {s.item.id: s for s in items}
        if not batch:
            return 0
        with storage_errors("adding news", self.engine), self._write.begin() as session:
            known = set(session.scalars(sa.select(NewsItemRow.id).where(NewsItemRow.id.in_(list(batch)))))
            new = [s for i, s in batch.items() if i not in known]
            for s in new:
                it = s.item
                session.add(
                    NewsItemRow(
                        id=it.id,
                        source=it.source,
                        published_at=it.published_at,
                        received_at=it.received_at,
                        symbols=list(it.symbols),
                        headline=it.headline,
                        summary=it.summary,
                        url=it.url,
                        sentiment=s.sentiment,
                        sentiment_score=s.sentiment_score,
                        catalysts=list(s.catalysts),
                        scored_at=s.scored_at,
                    )
                )
            session.flush()
            for s in new:
                for symbol in s.item.symbols:
                    session.add(
                        NewsSymbolRow(news_id=s.item.id, symbol=symbol, received_at=s.item.received_at)
                    )
            return len(new)

    def query(self, query: NewsQuery) -> list[ScoredNews]:
        limit = max(1, min(query.limit, MAX_NEWS_LIMIT))
        if query.symbol is not None:
            stmt = (
                sa.select(NewsItemRow)
                .join(NewsSymbolRow, NewsSymbolRow.news_id == NewsItemRow.id)
                .where(NewsSymbolRow.symbol == query.symbol)
            )
            if query.since_ns is not None:
                stmt = stmt.where(NewsSymbolRow.received_at >= query.since_ns)
            if query.until_ns is not None:
                stmt = stmt.where(NewsSymbolRow.received_at <= query.until_ns)
            stmt = stmt.order_by(NewsSymbolRow.received_at.desc(), NewsItemRow.id.desc())
        else:
            stmt = sa.select(NewsItemRow)
            if query.since_ns is not None:
                stmt = stmt.where(NewsItemRow.received_at >= query.since_ns)
            if query.until_ns is not None:
                stmt = stmt.where(NewsItemRow.received_at <= query.until_ns)
            stmt = stmt.order_by(NewsItemRow.received_at.desc(), NewsItemRow.id.desc())
        with storage_errors("querying news", self.engine), self._read() as session:
            return [_to_scored(row) for row in session.scalars(stmt.limit(limit))]
