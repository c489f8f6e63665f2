"""Train on 40 real S&P 500 symbols until 2016 and evaluate on 2017 onward: structure and sanity only.

Nothing here is tuned: the symbols are every 12th of the alphabetical list, the settings are the
defaults, and the bounds are the ones any honest daily-equity model lands in (an AUC far from 0.5
on this data would mean a leak, not a discovery).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from tradesignals.models.evaluate import evaluate
from tradesignals.models.train import TrainConfig, train

pytestmark = pytest.mark.realdata

SP500 = "sp500_daily_2013-2018.csv.gz"


def test_train_until_2016_then_evaluate_2017_onward(data_dir: Path, tmp_path: Path) -> None:
    raw = pd.read_csv(data_dir / SP500)
    names = sorted(raw["Name"].unique())[::12][:40]
    subset = tmp_path / "sp500_40.csv"
    raw[raw["Name"].isin(names)].to_csv(subset, index=False)

    # One thread: a shared machine's other jobs make OpenMP's spinning threads crawl.
    result = train(subset, tmp_path / "models", "swing", "2017-01-01", config=TrainConfig(num_threads=1))
    assert result.metadata.training_range[1] < "2017-01-01"
    assert 35 <= len(result.metadata.symbols) <= 40  # a symbol listed in 2017 has no training rows
    assert 0.4 <= result.metrics["auc"] <= 0.7
    assert len(result.folds) == 5

    report = evaluate(tmp_path / "models", subset)
    assert report["n"] > 1000
    assert report["scored"]["first"] >= "2017-01-01"
    assert report["skipped"]["inside_training_range"] > report["n"]  # four years trained, one scored
    assert 0.4 <= report["auc"] <= 0.7
    assert math.isfinite(report["ece"]) and 0.0 <= report["ece"] < 0.5
    assert math.isfinite(report["log_loss"]) and math.isfinite(report["brier"])
    assert 0.0 < report["base_rate"] < 1.0
    assert len(report["hit_rate_by_decile"]) == 10
    for name in ("always_long", "momentum_20"):
        base = report["baselines"][name]
        assert base["n"] == report["n"] and base["base_rate"] == report["base_rate"]
        assert 0.4 <= base["auc"] <= 0.7
