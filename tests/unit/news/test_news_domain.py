"""NewsItem invariants, symbol normalisation and cross-source de-duplication."""

from __future__ import annotations

import pytest

from tradesignals.domain.news import Deduplicator, NewsItem, headline_key, normalise_symbols, url_key

H = 3600 * 10**9


def item(
    ident: str, headline: str, *, symbols: tuple[str, ...] = ("AAPL",), t: int = 0, url: str = ""
) -> NewsItem:
    return NewsItem(
        id=ident,
        source=ident.split(":")[0],
        published_at=t,
        received_at=t,
        symbols=symbols,
        headline=headline,
        url=url,
    )


def test_item_needs_symbol_and_headline() -> None:
    with pytest.raises(ValueError, match="no symbol"):
        item("a:1", "x", symbols=())
    with pytest.raises(ValueError, match="no headline"):
        item("a:1", "  ")


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("aapl", ("AAPL",)),
        ("$AAPL, msft", ("AAPL", "MSFT")),
        (["BRK.B", "brk.b", "GOOG"], ("BRK.B", "GOOG")),
        (["not a ticker!", 5, "X"], ("X",)),
        ("", ()),
        (None, ()),
        (3.0, ()),
    ],
)
def test_normalise_symbols(raw: object, want: tuple[str, ...]) -> None:
    assert normalise_symbols(raw) == want


def test_keys_ignore_cosmetics() -> None:
    assert headline_key("Apple To Acquire Startup!") == headline_key("apple to acquire  startup")
    assert url_key("https://www.x.com/a/?utm=1#f") == url_key("http://x.com/a")
    assert url_key("") == ""


def test_dedup_by_id_url_and_headline_within_window() -> None:
    d = Deduplicator()
    assert d.admit(item("polygon:1", "Apple beats", url="https://x.com/a"))
    assert not d.admit(item("polygon:1", "different text"))
    assert not d.admit(item("benzinga:9", "Other words", url="http://www.x.com/a?ref=2"))
    assert not d.admit(item("benzinga:10", "APPLE BEATS.", t=2 * H))
    # Same words for another symbol, or a day later (a recurring headline), are new stories.
    assert d.admit(item("benzinga:11", "Apple beats", symbols=("MSFT",)))
    assert d.admit(item("benzinga:12", "Apple beats", t=30 * H))
    assert d.duplicates == {"id": 1, "url": 1, "headline": 1}


def test_dedup_memory_is_bounded() -> None:
    d = Deduplicator(capacity=3)
    for n in range(10):
        assert d.admit(item(f"s:{n}", f"story {n}", url=f"https://x/{n}"))
    assert d.admit(item("s:0", "story 0", url="https://x/0"))  # forgotten, so admitted again
