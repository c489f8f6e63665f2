"""Do news features change the out-of-sample figures? One fixed protocol, with and without them.

The question the model card answers: on the symbols and years where we have news, does a model
that also sees the rolling news features (``core_news`` v1) score the hold-out better than the
same model without them (``core`` v2)? Everything but the columns is held equal, so a difference
can only come from the news:

* **same rows**: one dataset is built with the news columns; the model without news reads the very
  same rows, labels and weights and leaves those columns out (``without_news``);
* **same labels**: the rulebook's (``models.labels``: filled at the next open, stop / 3R / five
  sessions, net of costs; a win is net R > 0), long only;
* **same model and settings**: ``train.train_dataset`` with the default ``TrainConfig`` (purged
  walk-forward, out-of-fold calibration, final refit) — nothing searched, here or for this study;
* **same time-based hold-out**: trained on rows whose label window closed before ``holdout_from``,
  scored on every row decided from it on (``validation.time_holdout``). The cut dates below were
  written down with the study, before any run, from where each file's news starts and ends; they
  are not to be moved after looking at a result.

News is read point in time on ``received_at`` at each bar's close (``features/news.py``); a replay
file's items are taken as received when published. Sentiment is the TF-IDF + SVM headline model
trained on the Twitter financial news train split (``news/sentiment.py``) in this process;
catalysts are ``domain/catalysts.py``'s rules.

Intervals: the circular block bootstrap over dates of ``models/bootstrap.py`` (20-date blocks,
1,000 resamples), on the difference ``with − without`` in log loss and AUC per hold-out row.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd

from tradesignals.domain.news import ScoredNews
from tradesignals.domain.signals import Direction
from tradesignals.features.catalog import CORE_NEWS_V1, CORE_V2
from tradesignals.models.bootstrap import BlockBootstrap, interval_report
from tradesignals.models.dataset import Dataset, build_dataset, load_bars, model_columns
from tradesignals.models.inference import Scorer, TreeMember
from tradesignals.models.metrics import evaluate_predictions
from tradesignals.models.train import TrainConfig, parse_until, train_dataset
from tradesignals.models.validation import time_holdout
from tradesignals.news.pipeline import NewsScorer
from tradesignals.news.replay import ReplayNewsFeed
from tradesignals.news.sentiment import SentimentModel

__all__ = ["STUDIES", "NewsStudy", "compare", "run_study", "score_news"]

_DAY_NS = 86_400 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class NewsStudy:
    """One file of news over one file of daily bars, and where its hold-out starts.

    Rows are the decisions from ``rows_from`` to ``rows_to`` (the span the news file covers);
    bars are read from ``warmup_days`` before it (indicator warm-up) to ``tail_days`` after it
    (so the last rows' five-session labels can close).
    """

    name: str
    bars_file: str
    news_file: str
    symbols: tuple[str, ...]
    rows_from: str
    rows_to: str
    holdout_from: str
    warmup_days: int = 150
    tail_days: int = 20


STUDIES: tuple[NewsStudy, ...] = (
    # StockNet tweets: 14 large caps, 2014-01-01 to 2016-03-31. Train on the first 18 months,
    # hold out the last 9.
    NewsStudy(
        name="stocknet_tweets",
        bars_file="sp500_daily_2013-2018.csv.gz",
        news_file="stocknet_tweets_14tickers_2014-2016.csv.gz",
        symbols=(
            "AAPL",
            "AMZN",
            "BA",
            "CSCO",
            "FB",
            "GE",
            "GOOG",
            "INTC",
            "JNJ",
            "JPM",
            "MSFT",
            "PFE",
            "WFC",
            "XOM",
        ),
        rows_from="2014-01-01",
        rows_to="2016-03-31",
        holdout_from="2015-07-01",
    ),
    # Benzinga headlines: the four tickers of the sample that are in the S&P file, over the whole
    # file, with the model card's own cut (train to 2016, hold out 2017 to Feb 2018).
    NewsStudy(
        name="benzinga_headlines",
        bars_file="sp500_daily_2013-2018.csv.gz",
        news_file="news_headlines_benzinga_sample.csv.gz",
        symbols=("A", "AAP", "ABBV", "ABC"),
        rows_from="2013-02-08",
        rows_to="2018-02-07",
        holdout_from="2017-01-01",
    ),
)


def score_news(
    path: Path, symbols: Sequence[str], model: SentimentModel
) -> tuple[list[ScoredNews], dict[str, int]]:
    """The file's items naming any of ``symbols``, scored as the live pipeline scores them."""
    feed = ReplayNewsFeed(path)
    wanted = set(symbols)
    scorer = NewsScorer(model, clock=lambda: 0)
    items = [scorer.score(i) for i in feed.load() if wanted.intersection(i.symbols)]
    counts = {"items": len(items), **{f"rejected_{k}": v for k, v in sorted(feed.rejected.items())}}
    return items, counts


def run_study(
    study: NewsStudy,
    data_dir: Path,
    sentiment: SentimentModel,
    *,
    config: TrainConfig = TrainConfig(),
    bootstrap: BlockBootstrap = BlockBootstrap(),
) -> dict[str, Any]:
    """Train with and without the news columns on the same rows; score the same hold-out. JSON-ready."""
    lo = _ns(study.rows_from) - study.warmup_days * _DAY_NS
    hi = _ns(study.rows_to) + study.tail_days * _DAY_NS
    bars = load_bars(data_dir / study.bars_file)
    bars = bars[bars["symbol"].isin(study.symbols) & (bars["ts"] >= lo) & (bars["ts"] <= hi)]
    bars = bars.reset_index(drop=True)
    news, news_counts = score_news(data_dir / study.news_file, study.symbols, sentiment)

    out: dict[str, Any] = {
        "study": study.name,
        "bars": study.bars_file,
        "news": study.news_file,
        "symbols": list(study.symbols),
        "news_items": news_counts,
    }
    out.update(
        compare(
            bars, news, study.rows_from, study.rows_to, study.holdout_from, config=config, bootstrap=bootstrap
        )
    )
    return out


def compare(
    bars: pd.DataFrame,
    news: Sequence[ScoredNews],
    rows_from: str,
    rows_to: str,
    holdout_from: str,
    *,
    config: TrainConfig = TrainConfig(),
    bootstrap: BlockBootstrap = BlockBootstrap(),
) -> dict[str, Any]:
    """The protocol on given bars and scored news (see the module docstring). JSON-ready."""
    full = build_dataset(bars, feature_set=CORE_NEWS_V1, news=news)
    ts = full.ts
    span = np.flatnonzero((ts >= _ns(rows_from)) & (ts < _ns(rows_to) + _DAY_NS))
    with_news = full.subset(span)
    without_news = dataclasses.replace(
        with_news, feature_names=model_columns(CORE_V2, (Direction.LONG,)), feature_set=CORE_V2
    )
    cut = _ns(holdout_from)
    split = time_holdout(with_news.ts, with_news.t_end, cut)
    if not split.test_idx.size or not split.train_idx.size:
        raise ValueError(f"the cut {holdout_from} leaves no training or hold-out rows")

    test = with_news.subset(split.test_idx)
    y = test.y
    out: dict[str, Any] = {
        "rows": {"from": rows_from, "to": rows_to, "n": len(with_news)},
        "holdout_from": holdout_from,
        "train_rows": int(split.train_idx.size),
        "holdout_rows": int(split.test_idx.size),
        "holdout_last": _iso(int(test.ts.max())),
        "news_coverage": _coverage(with_news.subset(split.train_idx), test),
        "labels": "rulebook: long, next-open fill, stop 1.5 ATR / 3R / 5 sessions, net of costs; win = net R > 0",
        "config": "TrainConfig() defaults (nothing tuned)",
    }
    probs: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key, ds in (("without_news", without_news), ("with_news", with_news)):
            result = train_dataset(ds, Path(tmp), until=cut, name=key.replace("_", "-"), config=config)
            scores = result.scorer.score_batch(test.matrix(ds.feature_names))
            p = np.where(scores.warm, scores.probability, np.nan)
            probs[key] = p
            oof = result.metrics
            out[key] = {
                "feature_set": str(ds.feature_set.ref),
                "features": len(ds.feature_names),
                "out_of_fold": {
                    "rows": oof.get("n"),
                    "auc": _r(oof.get("auc")),
                    "log_loss": _r(oof.get("log_loss")),
                    "always_long_log_loss": _r(oof["baselines"]["always_long"]["log_loss"]),
                },
                "top_gain_news_share": _news_gain_share(result.scorer, ds.feature_names),
            }
        base_rate = float(with_news.subset(split.train_idx).y.mean())
    scored = np.isfinite(probs["with_news"]) & np.isfinite(probs["without_news"])
    out["holdout_scored_rows"] = int(scored.sum())
    ys, ts_s = y[scored], test.ts[scored]
    always = np.full(ys.shape, base_rate)
    for key in ("without_news", "with_news"):
        out[key]["holdout"] = _figures(ys, probs[key][scored])
    out["always_long"] = {"p": round(base_rate, 4), "holdout": _figures(ys, always)}
    report = interval_report(
        ys, probs["with_news"][scored], {"without_news": probs["without_news"][scored]}, ts_s, bootstrap
    )
    diff = report["baselines"]["without_news"]
    out["with_minus_without"] = {
        "log_loss": _interval(diff["log_loss_diff"]),
        "auc": _interval(diff["auc_diff"]),
        "bootstrap": f"circular blocks of {report['block_dates']} dates, {report['n_resamples']} resamples",
    }
    return out


def _figures(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    m = evaluate_predictions(y, p)
    return {
        "win_rate": _r(m["base_rate"]),
        "mean_p": _r(m["mean_p"]),
        "auc": _r(m["auc"]),
        "log_loss": _r(m["log_loss"]),
        "brier": _r(m["brier"]),
        "ece_equal_mass": _r(m["ece_equal_mass"]),
    }


def _coverage(train: Dataset, test: Dataset) -> dict[str, Any]:
    def share(ds: Dataset, col: str) -> float:
        return round(float((ds.frame[col] > 0).mean()), 4) if len(ds) else 0.0

    return {
        "train_rows_with_news_1d": share(train, "news_count_1d"),
        "holdout_rows_with_news_1d": share(test, "news_count_1d"),
        "holdout_rows_with_news_5d": share(test, "news_count_5d"),
        "holdout_mean_count_1d": round(float(test.frame["news_count_1d"].mean()), 3) if len(test) else 0.0,
    }


def _news_gain_share(scorer: Scorer, names: Sequence[str]) -> float | None:
    """Share of the LightGBM member's total split gain spent on news columns (0 without any)."""
    for member in scorer.members:
        if not isinstance(member, TreeMember) or not isinstance(member.booster, lightgbm.Booster):
            continue
        gain = np.asarray(member.booster.feature_importance(importance_type="gain"), dtype=np.float64)
        total = float(gain.sum())
        if total <= 0 or len(gain) != len(names):
            return 0.0
        news = float(sum(g for g, n in zip(gain.tolist(), names, strict=True) if n.startswith("news_")))
        return round(news / total, 4)
    return None


def _interval(d: dict[str, Any]) -> dict[str, float | None]:
    return {k: _r(v) for k, v in d.items() if k in ("estimate", "lo", "hi")}


def _r(value: Any) -> float | None:
    return None if value is None else round(float(value), 4)


def _ns(day: str) -> int:
    cut = parse_until(day)
    assert cut is not None
    return cut


def _iso(ns: int) -> str:
    return pd.Timestamp(ns, unit="ns", tz="UTC").date().isoformat()
