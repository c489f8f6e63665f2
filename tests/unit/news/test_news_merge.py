"""Two sources, one stream: a story delivered by both is passed on once; counts add up."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from tradesignals.news.merge import MergedNewsFeed
from tradesignals.news.replay import ReplayNewsFeed

BENZINGA = """,title,date,stock
0,Apple To Acquire Startup In $200M Deal,2024-06-24 14:40:00-04:00,AAPL
1,Microsoft Beats Q4 Estimates,2024-06-24 15:00:00-04:00,MSFT
2,No ticker,2024-06-24 15:00:00-04:00,
"""


def jsonl(rows: list[dict[str, object]]) -> str:
    return "\n".join(orjson.dumps(r).decode() for r in rows) + "\n"


async def collect(feed: MergedNewsFeed) -> list[str]:
    return [i.id async for i in feed.stream()]


def test_cross_source_repeats_are_dropped(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text(BENZINGA)
    (tmp_path / "w.jsonl").write_text(
        jsonl(
            [
                # The same story from another wire, an hour later, different punctuation: a repeat.
                {
                    "id": "w1",
                    "source": "wire",
                    "published_at": "2024-06-24T19:40:00Z",
                    "symbols": ["AAPL"],
                    "headline": "Apple to acquire startup in $200M deal!",
                },
                {
                    "id": "w2",
                    "source": "wire",
                    "published_at": "2024-06-24T20:00:00Z",
                    "symbols": ["GOOG"],
                    "headline": "Alphabet news",
                },
                {
                    "id": "w3",
                    "source": "wire",
                    "published_at": "2024-06-24T20:00:00Z",
                    "symbols": [],
                    "headline": "no symbol",
                },
            ]
        )
    )
    feed = MergedNewsFeed([ReplayNewsFeed(tmp_path / "b.csv"), ReplayNewsFeed(tmp_path / "w.jsonl")])
    ids = asyncio.run(collect(feed))
    assert sorted(ids) == ["benzinga:0", "benzinga:1", "wire:w2"]
    assert feed.rejected == {"no symbol": 2, "duplicate": 1}
    assert feed.name == "replay:b.csv+replay:w.jsonl"


def test_a_failing_source_does_not_stop_the_other(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text(BENZINGA)
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    feed = MergedNewsFeed([ReplayNewsFeed(tmp_path / "bad.csv"), ReplayNewsFeed(tmp_path / "b.csv")])
    assert sorted(asyncio.run(collect(feed))) == ["benzinga:0", "benzinga:1"]
    assert feed.rejected["source failed"] == 1
