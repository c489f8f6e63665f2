"""The with/without-news protocol: it finds an effect where news moves prices, and only through news.

The real-data figures (``bench/news_features.py``, the model card) say "no effect"; that reading is
only worth something if the same protocol does find an effect where there is one. Here the bars
are a random walk except after a news item: the five sessions after a positive (negative) item
drift up (down), so a long signal decided at the close the item arrived by wins more (less) often.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tradesignals.domain.market import Timeframe
from tradesignals.domain.news import NewsItem, ScoredNews
from tradesignals.marketdata.calendar import calendar_for, utc_date_ns
from tradesignals.models.dataset import decision_times
from tradesignals.models.news_study import compare
from tradesignals.models.train import TrainConfig


def market_moved_by_news(seed: int) -> tuple[pd.DataFrame, list[ScoredNews]]:
    rng = np.random.default_rng(seed)
    cal = calendar_for("SYN")
    ts = np.array([s.label for s in cal.sessions_between(utc_date_ns(2014, 1, 1), utc_date_ns(2016, 12, 31))])
    n = len(ts)
    frames, news = [], []
    for k in range(5):
        symbol = f"N{k}"
        tone = np.zeros(n)
        days = np.flatnonzero(rng.random(n) < 0.12)  # a story on about one session in eight
        signs = rng.choice([-1.0, 1.0], size=days.size)
        drift = np.zeros(n)
        for d, sign in zip(days.tolist(), signs.tolist(), strict=True):
            tone[d] = sign
            drift[d + 1 : d + 6] += sign * 0.006
        sigma = 0.012
        close = 50.0 * np.exp(np.cumsum(sigma * rng.standard_normal(n) + drift))
        prev = np.r_[close[0], close[:-1]]
        open_ = prev * np.exp(0.1 * sigma * rng.standard_normal(n))
        high = np.maximum(open_, close) * np.exp(0.4 * sigma * np.abs(rng.standard_normal(n)))
        low = np.minimum(open_, close) * np.exp(-0.4 * sigma * np.abs(rng.standard_normal(n)))
        bars = pd.DataFrame(
            {
                "ts": ts,
                "symbol": symbol,
                "open": open_,
                "high": high,
                "low": low,
                "close": close,
                "volume": rng.lognormal(12, 0.3, n),
            }
        )
        frames.append(bars)
        closes = decision_times(bars, Timeframe.D1, cal)
        for d, sign in zip(days.tolist(), signs.tolist(), strict=True):
            t = int(closes[d]) - 600_000_000_000  # received ten minutes before that session's close
            item = NewsItem(f"syn:{symbol}:{d}", "syn", t, t, (symbol,), f"story {d}")
            news.append(ScoredNews(item, "positive" if sign > 0 else "negative", 0.9, ("none",), t))
    bars = pd.concat(frames, ignore_index=True).sort_values(["ts", "symbol"], kind="stable")
    return bars.reset_index(drop=True), news


def test_news_that_moves_prices_shows_up_in_the_hold_out_and_only_with_news() -> None:
    bars, news = market_moved_by_news(seed=11)
    cfg = TrainConfig(
        n_splits=2,
        min_data_in_leaf=50,
        max_rounds=60,
        early_stopping_rounds=15,
        isotonic_min_rows=300,
        num_threads=1,
    )
    out = compare(bars, news, "2014-03-01", "2016-12-20", "2016-01-01", config=cfg)
    assert out["holdout_rows"] > 1000 and out["train_rows"] > 2000
    with_news, without = out["with_news"], out["without_news"]
    assert with_news["features"] == without["features"] + 31
    assert without["top_gain_news_share"] == 0.0 and with_news["top_gain_news_share"] > 0.3
    # Without the news the walk is unpredictable; with it the model ranks the hold-out.
    assert without["holdout"]["auc"] < 0.56
    assert with_news["holdout"]["auc"] > 0.6
    diff = out["with_minus_without"]
    assert diff["auc"]["lo"] > 0.0  # the whole interval above zero
    assert diff["log_loss"]["hi"] < 0.0


def test_the_live_engine_refuses_a_model_trained_with_news(tmp_path) -> None:
    """Its scorer computes bar features only: a news model is refused at load, in one line."""
    import pytest

    from tradesignals.engine.model_scorer import ModelScorer
    from tradesignals.features.catalog import CORE_NEWS_V1
    from tradesignals.models.dataset import build_dataset
    from tradesignals.models.registry import ModelRegistry
    from tradesignals.models.train import train_dataset

    bars, news = market_moved_by_news(seed=5)
    ds = build_dataset(bars, feature_set=CORE_NEWS_V1, news=news)
    cfg = TrainConfig(n_splits=2, min_data_in_leaf=50, max_rounds=30, early_stopping_rounds=10, num_threads=1)
    train_dataset(ds, tmp_path, config=cfg)
    loaded = ModelRegistry(tmp_path).load("swing")
    with pytest.raises(ValueError, match=r"needs features the engine lacks: \['news_count_1d'"):
        ModelScorer(loaded, Timeframe.D1)
