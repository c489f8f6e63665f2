"""``replay:PATH`` news: the three layouts, counted rejections by reason, ordering, merge, errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from tradesignals.domain.news import NewsError
from tradesignals.news.replay import ReplayNewsFeed, parse_time

BENZINGA = """,title,date,stock
0,Agilent Q2 EPS Beats,2020-05-21 16:30:00-04:00,A
1,No ticker here,2020-05-21 16:31:00-04:00,
2,No time here,,A
3,Earlier story,2020-05-20 09:00:00-04:00,AAP
4,agilent q2 eps beats!,2020-05-21 17:00:00-04:00,A
5,Naive time,2020-05-21 16:30:00,A
"""

STOCKNET = """ticker,file_date,tweet_id,created_at,text,lang
AAPL,2014-01-01,11,Wed Jan 01 03:59:03 +0000 2014,$AAPL and $GOOG up,en
GOOG,2014-01-01,11,Wed Jan 01 03:59:03 +0000 2014,$AAPL and $GOOG up,en
MSFT,2014-01-01,12,Wed Jan 01 01:00:00 +0000 2014,MSFT news,en
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    if name.endswith(".gz"):
        p.write_bytes(gzip.compress(text.encode()))
    else:
        p.write_text(text)
    return p


def test_benzinga_layout_counts_rejections_and_sorts(tmp_path: Path) -> None:
    feed = ReplayNewsFeed(write(tmp_path, "b.csv.gz", BENZINGA))
    items = feed.load()
    assert [i.id for i in items] == ["benzinga:3", "benzinga:0"]
    assert items[1].published_at == parse_time("2020-05-21T20:30:00Z")
    assert items[1].received_at == items[1].published_at
    assert feed.rejected == {"no symbol": 1, "no time": 1, "bad time": 1, "duplicate": 1}


def test_stocknet_merges_one_tweet_per_ticker(tmp_path: Path) -> None:
    items = ReplayNewsFeed(write(tmp_path, "t.csv", STOCKNET)).load()
    assert [(i.id, i.symbols) for i in items] == [("twitter:12", ("MSFT",)), ("twitter:11", ("AAPL", "GOOG"))]
    assert items[1].source == "stocknet"


def test_native_jsonl_with_received_at_and_malformed_lines(tmp_path: Path) -> None:
    lines = [
        {
            "id": "x1",
            "source": "wire",
            "published_at": "2024-01-02T10:00:00Z",
            "received_at": "2024-01-02T10:05:00Z",
            "symbols": ["aapl"],
            "headline": "Apple news",
            "summary": "s",
            "url": "https://a/1",
        },
        {"published_at": 5, "symbols": "MSFT", "headline": "Int ns time"},
        {"published_at": "2024-01-02T10:00:00Z", "symbols": [], "headline": "no symbol"},
        {"published_at": "2024-01-02T10:00:00Z", "symbols": ["A"], "headline": ""},
    ]
    body = "\n".join(orjson.dumps(x).decode() for x in lines) + "\nnot json\n[1,2]\n\n"
    feed = ReplayNewsFeed(write(tmp_path, "n.jsonl", body))
    items = feed.load()
    assert [i.id for i in items] == ["replay:n.jsonl#1", "wire:x1"]
    assert items[1].received_at - items[1].published_at == 300 * 10**9
    assert feed.rejected == {"malformed": 2, "no symbol": 1, "no headline": 1}


async def test_stream_yields_in_order_and_close_stops(tmp_path: Path) -> None:
    feed = ReplayNewsFeed(write(tmp_path, "b.csv", BENZINGA))
    got = []
    async for i in feed.stream():
        got.append(i.id)
        await feed.close()
    assert got == ["benzinga:3"]


def test_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(NewsError, match="no such file"):
        ReplayNewsFeed(tmp_path / "missing.csv")
    with pytest.raises(NewsError, match=r"has columns \['a', 'b'\]"):
        ReplayNewsFeed(write(tmp_path, "x.csv", "a,b\n1,2\n")).load()
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(NewsError, match=r"cannot read bad\.csv\.gz"):
        ReplayNewsFeed(bad).load()


def test_parse_time_forms() -> None:
    assert parse_time("1970-01-01T00:00:01Z") == 10**9
    assert parse_time("Thu Jan 01 00:00:02 +0000 1970") == 2 * 10**9
    assert parse_time(7) == 7 and parse_time("8") == 8
    assert parse_time(None) is None and parse_time("") is None
    with pytest.raises(ValueError, match="naive"):
        parse_time("2020-01-01 10:00:00")
