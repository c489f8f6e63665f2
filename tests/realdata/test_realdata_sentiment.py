"""Sentiment figures on the held-back Twitter validation split (a regression floor, not a target).

Measured when written: accuracy 0.8522, macro-F1 0.7952 (docs/decisions/0013). The floors sit well
below so noise never fails them, while a broken preprocessor or scorer (which drops macro-F1 to
~0.3-0.6) does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tradesignals.news.sentiment import TWITTER_TRAIN, TWITTER_VALID, evaluate, read_labelled, train

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def test_twitter_validation_floor(data_dir: Path) -> None:
    model = train(data_dir / TWITTER_TRAIN)
    texts, labels = read_labelled(data_dir / TWITTER_VALID)
    report = evaluate(lambda t: model.predict(t).label, texts, labels)
    assert report["n"] == 2388
    assert report["accuracy"] >= 0.80
    assert report["macro_f1"] >= 0.74
    assert all(c["f1"] >= 0.6 for c in report["per_class"].values())
