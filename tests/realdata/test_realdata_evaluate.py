"""Evaluate on the real S&P file: only rows after the training cut by default; in-period rows of
untrained symbols only on request and apart; real share-class twins (GOOG/GOOGL, DISCA/DISCK,
FOX/FOXA, NWS/NWSA, UA/UAA) count as seen and Boeing/Bank of America (BA/BAC) do not.

Structure only: the symbols are fixed by rule (every 15th of the alphabetical list plus one class of
each twin pair and BA), the settings are the defaults, nothing is tuned; the twin thresholds were set
in ``models.share_classes`` before this file was read.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from tradesignals.models.evaluate import InsideTrainingPeriod, evaluate
from tradesignals.models.train import TrainConfig, train

pytestmark = pytest.mark.realdata

SP500 = "sp500_daily_2013-2018.csv.gz"
TRAINED_CLASSES = ["GOOGL", "DISCA", "FOXA", "NWSA", "UAA", "BA"]
OTHER_CLASSES = {"GOOG": "GOOGL", "DISCK": "DISCA", "FOX": "FOXA", "NWS": "NWSA", "UA": "UAA"}


def test_cut_flag_and_real_share_class_twins(data_dir: Path, tmp_path: Path) -> None:
    raw = pd.read_csv(data_dir / SP500)
    names = sorted(raw["Name"].unique())
    fresh = ["AAPL", "BAC", "XOM"]  # never trained on; BAC shares a "root" with BA by name only
    trained = sorted((set(names[::15]) | set(TRAINED_CLASSES)) - set(OTHER_CLASSES) - set(fresh))
    train_file = tmp_path / "train.csv"
    raw[raw["Name"].isin(trained)].to_csv(train_file, index=False)
    eval_file = tmp_path / "eval.csv"
    raw[raw["Name"].isin(trained + list(OTHER_CLASSES) + fresh)].to_csv(eval_file, index=False)

    result = train(train_file, tmp_path / "models", "swing", "2017-01-01", config=TrainConfig(num_threads=1))
    cut = pd.Timestamp(result.metadata.training_range[1]).value
    assert cut < pd.Timestamp("2017-01-01", tz="UTC").value

    plain = evaluate(tmp_path / "models", eval_file)
    assert pd.Timestamp(plain["scored"]["first"]).value > cut
    assert plain["scored"]["of_symbols_not_trained_on"] > 0  # 2017 rows of GOOG, BAC, ... count
    assert "in_period_unseen_symbols" not in plain
    assert math.isfinite(plain["ece_equal_mass"]) and plain["calibration_slope"] is not None
    iv = plain["intervals"]
    assert iv["auc"]["lo"] <= plain["auc"] <= iv["auc"]["hi"]
    assert set(iv["baselines"]) == {"always_long", "momentum_20"}

    flagged = evaluate(tmp_path / "models", eval_file, include_unseen_symbols_in_period=True)
    extra = flagged["in_period_unseen_symbols"]
    assert flagged["n"] == plain["n"] and flagged["auc"] == plain["auc"]
    twins = {t["symbol"]: t for t in extra["twins"]}
    assert {s: t["twin_of"] for s, t in twins.items()} == OTHER_CLASSES
    assert all(t["reason"] == "name and returns" for t in twins.values())
    assert extra["symbols"] == fresh
    assert extra["n"] > 0 and extra["rows_of_twins"] > 0

    early = tmp_path / "early.csv"
    raw[raw["Name"].isin(trained) & (raw["date"] < "2016-01-01")].to_csv(early, index=False)
    with pytest.raises(InsideTrainingPeriod):
        evaluate(tmp_path / "models", early)
