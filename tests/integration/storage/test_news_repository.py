"""The news store on SQLite and PostgreSQL: idempotent adds, symbol/since reads newest first."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from tradesignals.domain.news import NewsItem, ScoredNews
from tradesignals.storage.base import NewsQuery
from tradesignals.storage.news import SqlNewsRepository

S = 10**9


def scored(ident: str, t: int, symbols: tuple[str, ...] = ("AAPL",), label: str = "positive") -> ScoredNews:
    item = NewsItem(
        id=ident,
        source="test",
        published_at=t * S - 5,
        received_at=t * S,
        symbols=symbols,
        headline=f"headline {ident}",
        summary="s",
        url=f"https://x/{ident}",
    )
    return ScoredNews(item, label, 0.9, ("earnings", "guidance"), t * S + 1)


def test_add_is_idempotent_and_roundtrips(engine: Engine) -> None:
    repo = SqlNewsRepository(engine)
    first = scored("t:1", 100, ("AAPL", "MSFT"))
    assert repo.add([first, scored("t:2", 101)]) == 2
    assert repo.add([first, scored("t:3", 102, label="negative")]) == 1
    assert repo.add([]) == 0
    [got] = repo.query(NewsQuery(symbol="MSFT"))
    assert got == first  # every field, ns times exact


def test_query_by_symbol_since_newest_first_and_limit(engine: Engine) -> None:
    repo = SqlNewsRepository(engine)
    repo.add([scored(f"t:{n}", 100 + n, ("AAPL",) if n % 2 else ("AAPL", "GOOG")) for n in range(10)])
    aapl = repo.query(NewsQuery(symbol="AAPL"))
    assert [s.item.id for s in aapl] == [f"t:{n}" for n in range(9, -1, -1)]
    goog = repo.query(NewsQuery(symbol="GOOG", since_ns=104 * S))
    assert [s.item.id for s in goog] == ["t:8", "t:6", "t:4"]
    assert [s.item.id for s in repo.query(NewsQuery(limit=2))] == ["t:9", "t:8"]
    assert repo.query(NewsQuery(symbol="TSLA")) == []
    assert len(repo.query(NewsQuery(limit=10_000))) == 10
