"""Company names → tickers (``news/names.py``) on a few dozen real SEC rows: precision first."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tradesignals.domain.news import NewsError
from tradesignals.news.names import CompanyNames, normalise_title, primary_ticker
from tradesignals.news.replay import ReplayNewsFeed

FIXTURE = Path(__file__).parents[2] / "fixtures" / "company_tickers.json"


@pytest.fixture(scope="module")
def names() -> CompanyNames:
    return CompanyNames.load(FIXTURE)


def test_the_fixture_is_in_secs_wire_format() -> None:
    data = orjson.loads(FIXTURE.read_bytes())
    assert list(data) == [str(i) for i in range(len(data))] and len(data) >= 40
    assert data["1"] == {"cik_str": 320193, "ticker": "AAPL", "title": "Apple Inc."}
    assert all(set(row) == {"cik_str", "ticker", "title"} for row in data.values())


@pytest.mark.parametrize(
    ("title", "words"),
    [
        ("Apple Inc.", ("apple",)),
        ("BANK OF AMERICA CORP /DE/", ("bank", "of", "america")),
        ("JPMORGAN CHASE & CO", ("jpmorgan", "chase")),
        ("JOHNSON & JOHNSON", ("johnson", "and", "johnson")),
        ("PROGRESSIVE CORP/OH/", ("progressive",)),
        ("AMAZON COM INC", ("amazon",)),
        ("Alphabet Inc. Class C", ("alphabet",)),
        ("Meta Platforms, Inc.", ("meta", "platforms")),
    ],
)
def test_titles_lose_legal_and_listing_suffixes(title: str, words: tuple[str, ...]) -> None:
    assert normalise_title(title) == words


@pytest.mark.parametrize(
    ("headline", "tickers"),
    [
        ("Apple Unveils New iPhone Lineup", ("AAPL",)),
        ("Apple's Services Revenue Hits Record", ("AAPL",)),
        ("Amazon.com Raises Prime Fee", ("AMZN",)),
        ("Coca-Cola Beats Q3 Estimates", ("KO",)),
        ("Johnson & Johnson Recalls Sunscreen", ("JNJ",)),
        ("Bank of America Downgrades Boeing to Neutral", ("BA",)),  # the broker is not the subject
        ("Bank Of America On Aaron's: Upside From Leasing", ()),
        ("Bank of America Posts Higher Profit", ("BAC",)),
        ("Agilent Q2 EPS Beats", ("A",)),  # "Agilent Technologies" also indexed without "Technologies"
        ("Meta Platforms Shares Slide", ("META",)),
        ("Advance Auto Parts Reports Q1 Loss", ("AAP",)),
        ("American Airlines Cuts Capacity", ("AAL",)),
        # share classes: one company, its primary ticker (the other classes' root)
        ("Alphabet Class C Shares Rise", ("GOOG",)),
        ("Alphabet To Split Stock", ("GOOG",)),
        ("Berkshire Hathaway Buys Back Shares", ("BRK-B",)),
        ("Under Armour Names New CEO", ("UA",)),
        # precision: ordinary words that are also company names are not matched alone
        ("Morgan Stanley Raises Price Target On Agilent To $95", ("A",)),
        ("Goldman Maintains Buy, Lowers Price Target to $120", ()),
        ("The Gap Between Growth And Value Widens", ()),
        ("Visa Applications Fall At Consulates", ()),
        ("Block Trade Hits Tape In Energy Name", ()),
        ("Snap Election Called In UK", ()),
        ("Progressive Policies Weigh On Utilities", ()),
        ("News Corp Said To Explore Sale", ()),  # "News" alone is a word; nothing else names it
        ("General Motors Recalls SUVs", ("GM",)),  # a two-word name of common words is specific
        ("General Market Update For Tuesday", ()),
        # a sentence-case headline: "apple" in lower case is fruit, not the company
        ("farmers report a record apple harvest", ()),
        ("Stocks To Watch This Week", ()),
    ],
)
def test_headlines_map_conservatively(names: CompanyNames, headline: str, tickers: tuple[str, ...]) -> None:
    assert names.match(headline) == tickers


def test_target_the_company_only_by_a_longer_name_never_by_the_word(names: CompanyNames) -> None:
    assert names.match("Target Cuts Outlook") == ()  # one word that is also "price target": dropped
    assert "TGT" not in names.names.values()


def test_a_name_two_companies_share_is_dropped() -> None:
    data = {
        "0": {"cik_str": 1, "ticker": "ACME", "title": "Acmewidget Corp"},
        "1": {"cik_str": 2, "ticker": "ACMW", "title": "ACMEWIDGET INC"},
        "2": {"cik_str": 3, "ticker": "ZZQX", "title": "Zyqorp Holdings Inc"},
        "3": "not a row",
        "4": {"cik_str": "4", "ticker": "BAD", "title": "String Cik Inc"},
    }
    names = CompanyNames.from_sec(data)
    assert names.match("Acmewidget Wins Contract") == ()
    assert ("acmewidget",) in names.ambiguous
    assert names.match("Zyqorp Holdings Raises Guidance") == ("ZZQX",)
    assert names.match("String Cik Rallies") == ()  # the malformed row was skipped


def test_primary_ticker_follows_the_share_class_rule() -> None:
    assert primary_ticker(["GOOGL", "GOOG"]) == "GOOG"
    assert primary_ticker(["FOXA", "FOX"]) == "FOX"
    assert primary_ticker(["BRK-B", "BRK-A"]) == "BRK-B"  # no listed root: the first listed
    assert primary_ticker(["AAPL"]) == "AAPL"


def test_provider_symbols_are_kept_as_given(names: CompanyNames) -> None:
    assert names.map_missing(("MSFT",), "Apple Unveils iPhone") == ("MSFT",)
    assert names.map_missing((), "Apple Unveils iPhone") == ("AAPL",)


def test_unreadable_files_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "company_tickers.json"
    bad.write_text("{not json")
    with pytest.raises(NewsError) as info:
        CompanyNames.load(bad)
    assert "company_tickers.json" in str(info.value) and "\n" not in str(info.value)
    bad.write_text("[1, 2]")
    with pytest.raises(NewsError, match="expected a JSON object"):
        CompanyNames.load(bad)
    with pytest.raises(NewsError):
        CompanyNames.load(tmp_path / "missing.json")


BENZINGA = """,title,date,stock
0,Apple Shares Rise After Keynote,2020-05-21 16:30:00-04:00,
1,Stocks Moving In Thursday's Session,2020-05-21 16:31:00-04:00,
2,Agilent Q2 EPS Beats,2020-05-21 16:32:00-04:00,A
3,Benchmark Raises Price Target To $50,2020-05-21 16:33:00-04:00,
"""


def test_replay_gives_a_symbol_from_the_name_and_still_drops_items_with_neither(
    tmp_path: Path, names: CompanyNames
) -> None:
    path = tmp_path / "b.csv"
    path.write_text(BENZINGA)
    feed = ReplayNewsFeed(path, names=names)
    items = {i.id: i.symbols for i in feed.load()}
    assert items == {"benzinga:0": ("AAPL",), "benzinga:2": ("A",)}
    assert feed.mapped_by_name == 1
    assert feed.rejected == {"no symbol": 2}
    plain = ReplayNewsFeed(path)  # without the names file: the old behaviour, counted
    assert [i.id for i in plain.load()] == ["benzinga:2"] and plain.rejected == {"no symbol": 3}
