"""The shared news files replay as documented in shared/data/README.md."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tradesignals.news.replay import ReplayNewsFeed

pytestmark = pytest.mark.realdata


def test_benzinga_sample(data_dir: Path) -> None:
    feed = ReplayNewsFeed(data_dir / "news_headlines_benzinga_sample.csv.gz")
    items = feed.load()
    # 9,993 rows; 4 without a ticker (the README's "four rows") are counted, not guessed.
    assert feed.rejected["no symbol"] == 4
    assert len(items) + sum(feed.rejected.values()) == 9993
    assert len(items) > 9500
    assert all(a.received_at <= b.received_at for a, b in itertools.pairwise(items))
    assert {s for i in items for s in i.symbols} >= {"A", "AAP", "ABBV", "AAPL"}


def test_stocknet_tweets_merge_multi_ticker(data_dir: Path) -> None:
    feed = ReplayNewsFeed(data_dir / "stocknet_tweets_14tickers_2014-2016.csv.gz")
    items = feed.load()
    assert max(len(i.symbols) for i in items) > 1
    assert len({i.id for i in items}) == len(items)
    assert feed.rejected.get("no symbol", 0) == 0 and feed.rejected.get("no time", 0) == 0
