"""The model card's news figures (StockNet tweets, 14 large caps): the protocol on the real files.

``bench/news_features.py`` prints these figures; this test reruns the StockNet study and holds it to
them, so the card's "no effect" stays a reproducible statement and not a one-off reading. Pinned
values are the run of 2026-12-07 (the lock file's libraries); a tolerance of 0.002 absorbs nothing
bigger than float noise between machines.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tradesignals.models.news_study import STUDIES, run_study
from tradesignals.news.sentiment import TWITTER_TRAIN, train

# Each study trains the ensemble twice with its fixed settings and scores ~50k headlines: minutes,
# not the suite's default two, on a shared machine.
pytestmark = [pytest.mark.realdata, pytest.mark.slow, pytest.mark.timeout(900)]


def test_stocknet_with_and_without_news(data_dir: Path) -> None:
    study = next(s for s in STUDIES if s.name == "stocknet_tweets")
    out = run_study(study, data_dir, train(data_dir / TWITTER_TRAIN))
    # The protocol: the same rows on both sides, a hold-out strictly after the cut, news at most bars.
    assert out["train_rows"] == 5094 and out["holdout_rows"] == 2605
    assert out["holdout_scored_rows"] == out["holdout_rows"]
    assert out["holdout_last"] == "2016-03-31"
    assert out["news_coverage"]["holdout_rows_with_news_1d"] > 0.8
    assert out["with_news"]["top_gain_news_share"] > 0.0  # the model did use the news columns
    # The figures of the model card.
    approx = pytest.approx
    assert out["without_news"]["holdout"]["auc"] == approx(0.5122, abs=0.002)
    assert out["with_news"]["holdout"]["auc"] == approx(0.5011, abs=0.002)
    assert out["without_news"]["holdout"]["log_loss"] == approx(0.6950, abs=0.002)
    assert out["with_news"]["holdout"]["log_loss"] == approx(0.6999, abs=0.002)
    assert out["always_long"]["holdout"]["log_loss"] == approx(0.6923, abs=0.002)
    # No effect: the difference's interval holds zero.
    diff = out["with_minus_without"]
    assert diff["auc"]["lo"] < 0.0 < diff["auc"]["hi"]
    assert diff["log_loss"]["lo"] < 0.0 < diff["log_loss"]["hi"]


def test_benzinga_with_and_without_news(data_dir: Path) -> None:
    study = next(s for s in STUDIES if s.name == "benzinga_headlines")
    out = run_study(study, data_dir, train(data_dir / TWITTER_TRAIN))
    assert out["train_rows"] == 3692 and out["holdout_rows"] == 1081
    assert out["holdout_scored_rows"] == out["holdout_rows"]
    approx = pytest.approx
    assert out["without_news"]["holdout"]["auc"] == approx(0.5208, abs=0.002)
    assert out["with_news"]["holdout"]["auc"] == approx(0.5355, abs=0.002)
    assert out["without_news"]["holdout"]["log_loss"] == approx(0.7005, abs=0.002)
    assert out["with_news"]["holdout"]["log_loss"] == approx(0.7041, abs=0.002)
    diff = out["with_minus_without"]
    assert diff["auc"]["lo"] < 0.0 < diff["auc"]["hi"]
    assert diff["log_loss"]["lo"] < 0.0 < diff["log_loss"]["hi"]
