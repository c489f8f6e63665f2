"""TS_NEWS_FEED chooses the news source; a bad one is one line naming the variable."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tradesignals.config import ConfigError, load_settings
from tradesignals.news.alpaca import AlpacaNewsFeed
from tradesignals.news.edgar import EdgarFilingsFeed
from tradesignals.news.polygon import PolygonNewsFeed
from tradesignals.news.replay import ReplayNewsFeed
from tradesignals.wiring import build_news_feed, build_news_scorer


def test_no_news_feed_by_default(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    assert build_news_feed(settings) is None and build_news_scorer(settings) is None


def test_each_kind(tmp_path: Path) -> None:
    news = tmp_path / "n.csv"
    news.write_text("published_at,symbols,headline\n")
    assert isinstance(
        build_news_feed(load_settings(home=tmp_path, news_feed=f"replay:{news}")), ReplayNewsFeed
    )
    polygon = build_news_feed(load_settings(home=tmp_path, news_feed="polygon:AAPL", polygon_key="k"))
    assert isinstance(polygon, PolygonNewsFeed) and "ticker=AAPL" in polygon.first_url()
    sec = build_news_feed(
        load_settings(home=tmp_path, news_feed="sec:320193,789019", sec_user_agent="Acme ops@acme.com")
    )
    assert isinstance(sec, EdgarFilingsFeed) and sec.url(789019).endswith("/submissions/CIK0000789019.json")
    alpaca = build_news_feed(
        load_settings(home=tmp_path, news_feed="alpaca:aapl,TSLA", alpaca_key="k", alpaca_secret="s")
    )
    assert isinstance(alpaca, AlpacaNewsFeed) and alpaca.symbols() == ["AAPL", "TSLA"]
    everything = build_news_feed(
        load_settings(home=tmp_path, news_feed="alpaca", alpaca_key="k", alpaca_secret="s")
    )
    assert isinstance(everything, AlpacaNewsFeed) and everything.symbols() == ["*"]
    for feed in (polygon, sec, alpaca, everything):
        asyncio.run(feed.close())  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"news_feed": "kafka:x"}, "TS_NEWS_FEED: unknown news feed 'kafka:x'"),
        ({"news_feed": "sec:apple"}, "TS_NEWS_FEED: unknown news feed 'sec:apple'"),
        ({"news_feed": "replay:/no/news.csv"}, "news replay file /no/news.csv does not exist"),
    ],
)
def test_bad_values_are_one_line(tmp_path: Path, overrides: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(")):
        load_settings(home=tmp_path, **overrides)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"news_feed": "polygon:AAPL"}, "TS_NEWS_FEED: polygon-news: an API key is required"),
        ({"news_feed": "sec:320193"}, "TS_NEWS_FEED: sec-edgar: the SEC requires a User-Agent"),
        ({"news_feed": "alpaca"}, "TS_NEWS_FEED: alpaca news: key and secret are required"),
    ],
)
def test_missing_credentials_at_start(tmp_path: Path, overrides: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        build_news_feed(load_settings(home=tmp_path, **overrides))


def test_news_feed_without_model_or_data_says_how(tmp_path: Path) -> None:
    news = tmp_path / "n.csv"
    news.write_text("published_at,symbols,headline\n")
    with pytest.raises(ConfigError, match=r"TS_NEWS_FEED: no sentiment model at .* and no training data"):
        build_news_scorer(
            load_settings(home=tmp_path, news_feed=f"replay:{news}", data_dir=tmp_path / "none")
        )


def test_several_sources_are_merged(tmp_path: Path) -> None:
    from tradesignals.news.merge import MergedNewsFeed

    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for p in (a, b):
        p.write_text("published_at,symbols,headline\n")
    feed = build_news_feed(load_settings(home=tmp_path, news_feed=f"replay:{a}+replay:{b}"))
    assert isinstance(feed, MergedNewsFeed) and len(feed.feeds) == 2
    with pytest.raises(ConfigError, match="unknown news feed 'kafka'"):
        load_settings(home=tmp_path, news_feed=f"replay:{a}+kafka")


def test_company_tickers_reach_the_feeds_and_a_bad_file_is_one_line(tmp_path: Path) -> None:
    news = tmp_path / "n.csv"
    news.write_text(",title,date,stock\n0,Apple Shares Rise,2020-05-21 16:30:00-04:00,\n")
    tickers = Path(__file__).parents[2] / "fixtures" / "company_tickers.json"
    feed = build_news_feed(load_settings(home=tmp_path, news_feed=f"replay:{news}", company_tickers=tickers))
    assert isinstance(feed, ReplayNewsFeed) and [i.symbols for i in feed.load()] == [("AAPL",)]
    bad = tmp_path / "company_tickers.json"
    bad.write_text("{oops")
    with pytest.raises(ConfigError) as info:
        build_news_feed(load_settings(home=tmp_path, news_feed=f"replay:{news}", company_tickers=bad))
    assert str(info.value).startswith("TS_COMPANY_TICKERS: company tickers: cannot read company_tickers.json")
