"""replay -> score (sentiment + catalysts) -> SQL store, counting what the file could not give."""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
from pathlib import Path

from tradesignals.features.news import NewsFeatureState
from tradesignals.news.pipeline import NewsScorer, run_news
from tradesignals.news.replay import ReplayNewsFeed
from tradesignals.news.sentiment import train
from tradesignals.storage.base import NewsQuery
from tradesignals.storage.db import make_engine, migrate
from tradesignals.storage.news import SqlNewsRepository

TRAIN = [
    ("shares soar after earnings beat", 1),
    ("stock jumps on record revenue", 1),
    ("upgrade lifts shares", 1),
    ("shares plunge after earnings miss", 0),
    ("stock falls on weak revenue", 0),
    ("downgrade sinks shares", 0),
    ("company to present at conference", 2),
    ("annual meeting scheduled", 2),
    ("files quarterly report", 2),
]
NEWS = """,title,date,stock
0,Agilent Shares Soar After Q2 EPS Beat,2020-05-21 16:30:00-04:00,A
1,Credit Suisse Downgrades Advance Auto Parts to Neutral,2020-05-22 09:00:00-04:00,AAP
2,No ticker,2020-05-22 09:00:00-04:00,
3,No time,,A
"""


def model(tmp_path: Path) -> NewsScorer:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["text", "label"])
    w.writerows(TRAIN * 2)
    path = tmp_path / "train.csv.gz"
    path.write_bytes(gzip.compress(buf.getvalue().encode()))
    return NewsScorer(train(path))


def test_replay_is_scored_and_stored(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'app.db'}")
    migrate(engine)
    repo = SqlNewsRepository(engine)
    news = tmp_path / "news.csv"
    news.write_text(NEWS)
    feed = ReplayNewsFeed(news)
    features = NewsFeatureState(live=False)
    stats = asyncio.run(run_news(feed, model(tmp_path), repo, asyncio.Event(), batch=1, features=features))
    assert (stats.received, stats.stored) == (2, 2)
    assert feed.rejected == {"no symbol": 1, "no time": 1}
    [a] = repo.query(NewsQuery(symbol="A"))
    assert a.sentiment == "positive" and a.catalysts == ("earnings",)
    [aap] = repo.query(NewsQuery(symbol="AAP"))
    assert aap.catalysts == ("analyst",)
    assert aap.scored_at >= aap.item.received_at  # replay: received = published (2020), scored now
    f = features.features("AAP", aap.item.received_at)
    assert f["news_count_1d"] == 1.0 and f["news_analyst_1d"] == 1.0
    assert features.features("AAP", aap.item.received_at - 1)["news_count_1d"] == 0.0
    # Replaying again stores nothing new (idempotent by id).
    again = asyncio.run(run_news(ReplayNewsFeed(news), model(tmp_path), repo, asyncio.Event()))
    assert (again.received, again.stored) == (2, 0)
    engine.dispose()


def test_unreadable_file_stops_only_the_news_task(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'app.db'}")
    migrate(engine)
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n")
    stats = asyncio.run(
        run_news(ReplayNewsFeed(bad), model(tmp_path), SqlNewsRepository(engine), asyncio.Event())
    )
    assert stats.errors == {"feed": 1} and stats.received == 0
    engine.dispose()
