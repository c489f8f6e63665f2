"""Training on a synthetic market with a planted signal: it finds the signal out of sample, finds
nothing when the labels are shuffled, calibrates on out-of-fold rows only, and saves what it scored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from tradesignals.features.catalog import latest as latest_feature_set
from tradesignals.marketdata.calendar import calendar_for, utc_date_ns
from tradesignals.models.dataset import Dataset, build_dataset
from tradesignals.models.inference import IsotonicCalibrator, PlattCalibrator
from tradesignals.models.registry import ModelRegistry
from tradesignals.models.train import (
    MEMBER_NAMES,
    TrainConfig,
    TrainError,
    TrainProgress,
    TrainResult,
    calibration_bins,
    fit_calibrator,
    parse_until,
    train_dataset,
)
from tradesignals.models.validation import time_holdout

UNTIL = "2017-01-01"
FAST = TrainConfig(max_rounds=150, early_stopping_rounds=25, num_threads=1)


def planted_bars(
    n_symbols: int, start: tuple[int, int, int], end: tuple[int, int, int], seed: int
) -> pd.DataFrame:
    """Daily bars whose drift follows the sign of the last five days' return (a momentum the
    ``ret_5`` feature can see): after an up week the next days drift up by 0.3 sigma a day."""
    cal = calendar_for("SYN")
    ts = np.array([s.label for s in cal.sessions_between(utc_date_ns(*start), utc_date_ns(*end))])
    n = len(ts)
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n_symbols):
        sigma = 0.01 + 0.01 * rng.random()
        eps = rng.standard_normal(n)
        r = np.zeros(n)
        for t in range(n):
            r[t] = 0.3 * sigma * np.sign(r[max(0, t - 5) : t].sum()) + sigma * eps[t]
        close = 50.0 * np.exp(np.cumsum(r))
        prev = np.r_[close[0], close[:-1]]
        open_ = prev * np.exp(0.2 * sigma * rng.standard_normal(n))
        high = np.maximum(open_, close) * np.exp(0.5 * sigma * np.abs(rng.standard_normal(n)))
        low = np.minimum(open_, close) * np.exp(-0.5 * sigma * np.abs(rng.standard_normal(n)))
        frames.append(
            pd.DataFrame(
                {
                    "ts": ts,
                    "symbol": f"P{k:02d}",
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": rng.lognormal(13, 0.3, n),
                }
            )
        )
    return (
        pd.concat(frames, ignore_index=True)
        .sort_values(["ts", "symbol"], kind="stable")
        .reset_index(drop=True)
    )


@pytest.fixture(scope="module")
def full() -> Dataset:
    return build_dataset(planted_bars(16, (2015, 1, 1), (2017, 9, 30), seed=5))


@pytest.fixture(scope="module")
def steps() -> list[TrainProgress]:
    return []


@pytest.fixture(scope="module")
def trained(
    full: Dataset, tmp_path_factory: pytest.TempPathFactory, steps: list[TrainProgress]
) -> TrainResult:
    out = tmp_path_factory.mktemp("models")
    return train_dataset(full, out, until=UNTIL, config=FAST, progress=steps.append)


@pytest.fixture(scope="module")
def shuffled_full(full: Dataset) -> Dataset:
    return full.with_labels(np.random.default_rng(99).permutation(full.y))


@pytest.fixture(scope="module")
def shuffled(shuffled_full: Dataset, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train_dataset(shuffled_full, tmp_path_factory.mktemp("shuffled"), until=UNTIL, config=FAST)


def out_of_sample(full: Dataset, result: TrainResult) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose label window starts after the last bar any training label saw: true labels, scores."""
    last = int(result.metrics["training"]["last_t_end_ns"])
    rows = np.flatnonzero(full.ts > last)
    scores = result.scorer.score_batch(full.matrix(result.scorer.feature_names)[rows])
    assert scores.warm.all()
    return full.y[rows], scores.probability


def test_the_planted_signal_is_found_out_of_fold_and_out_of_sample(
    full: Dataset, trained: TrainResult
) -> None:
    assert trained.metrics["auc"] > 0.6  # OOF, folds 2–5, prior-fold calibrated
    assert trained.metrics["oof_raw"]["auc"] > 0.6
    for fold in trained.folds:
        assert fold["model_raw"]["auc"] > 0.58, fold["fold"]
    y, p = out_of_sample(full, trained)
    assert len(y) > 1000
    assert roc_auc_score(y, p) > 0.6


def test_shuffled_labels_leave_nothing_to_learn(shuffled_full: Dataset, shuffled: TrainResult) -> None:
    """The pipeline cannot see its answers: with labels shuffled the AUC falls to chance.

    Graded against the shuffled labels it was given. (Against the true labels a model of noise can
    still rank well by luck: any small random weight on the planted ``ret_5`` orders rows by it.)
    """
    assert shuffled.metrics["auc"] == pytest.approx(0.5, abs=0.04)
    assert shuffled.metrics["oof_raw"]["auc"] == pytest.approx(0.5, abs=0.04)
    for fold in shuffled.folds:
        assert fold["model_raw"]["auc"] == pytest.approx(0.5, abs=0.06), fold["fold"]
    y, p = out_of_sample(shuffled_full, shuffled)
    assert roc_auc_score(y, p) == pytest.approx(0.5, abs=0.05)


def test_until_keeps_only_rows_whose_label_window_closed_before_it(
    full: Dataset, trained: TrainResult
) -> None:
    cut = parse_until(UNTIL)
    assert cut is not None
    assert (trained.dataset.t_end < cut).all()
    assert len(trained.dataset) == time_holdout(full.ts, full.t_end, cut).train_idx.size
    assert trained.metadata.training_range[1] < "2017-01-01"
    assert trained.metrics["training"]["until"].startswith("2017-01-01")
    # Rows just before the cut whose window straddles it were left out, not trained on.
    straddling = (full.ts < cut) & (full.t_end >= cut)
    assert straddling.any()


def test_the_calibrator_is_fitted_on_the_most_recent_out_of_fold_predictions_only(
    trained: TrainResult,
) -> None:
    oof = trained.oof
    assert isinstance(trained.scorer.calibrator, IsotonicCalibrator)
    # Exactly an isotonic regression of the last fold's OOF ensemble predictions (binned) on their
    # labels: the last fold alone holds more than isotonic_min_rows rows here.
    recent = oof[oof["fold"] == FAST.n_splits]
    assert len(recent) >= FAST.isotonic_min_rows
    x_bin, rate, count = calibration_bins(recent["p_raw"].to_numpy(), recent["label"].to_numpy(), FAST)
    assert count.sum() == len(recent)
    ref = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(x_bin, rate, sample_weight=count)
    np.testing.assert_array_equal(trained.scorer.calibrator.x, ref.X_thresholds_)
    np.testing.assert_array_equal(trained.scorer.calibrator.y, ref.y_thresholds_)
    assert trained.metrics["training"]["calibration_rows"] == len(recent)
    assert trained.metrics["training"]["calibration"]["folds"] == [FAST.n_splits]
    # ...each predicted by a fold model that never trained on it: OOF rows lie in their test fold.
    ts = trained.dataset.ts[oof["row"].to_numpy()]
    for fold in trained.folds:
        in_fold = oof["fold"].to_numpy() == fold["fold"]
        first = pd.Timestamp(fold["test_first"]).value
        last = pd.Timestamp(fold["test_last"]).value
        assert ((ts[in_fold] >= first) & (ts[in_fold] <= last)).all()
        assert pd.Timestamp(fold["train_last_t_end"]).value < first
    assert oof["row"].is_unique
    # And not on in-sample predictions, which would give a different (over-confident) curve.
    final = trained.scorer.reference_predict(trained.dataset.matrix())
    x_in, rate_in, count_in = calibration_bins(final.uncalibrated, trained.dataset.y, FAST)
    in_sample = IsotonicRegression(out_of_bounds="clip").fit(x_in, rate_in, sample_weight=count_in)
    assert not np.array_equal(in_sample.X_thresholds_, trained.scorer.calibrator.x)


def test_oof_figures_are_calibrated_by_earlier_folds_only(trained: TrainResult) -> None:
    oof = trained.oof
    assert oof.loc[oof["fold"] == 1, "p_prior_cal"].isna().all()
    assert trained.folds[0]["model"] is None  # no earlier fold to calibrate fold 1
    for k in (2, 4):
        earlier = oof[oof["fold"] == k - 1]  # the most recent earlier fold (enough rows alone)
        assert len(earlier) >= FAST.isotonic_min_rows
        cal = fit_calibrator(earlier["p_raw"].to_numpy(), earlier["label"].to_numpy(), FAST)
        mine = oof[oof["fold"] == k]
        np.testing.assert_allclose(mine["p_prior_cal"], cal.predict(mine["p_raw"].to_numpy()))
    assert trained.metrics["n"] == int((oof["fold"] > 1).sum())


def test_the_saved_model_reloads_and_scores_as_the_reference(trained: TrainResult) -> None:
    loaded = ModelRegistry(Path(trained.location).parent.parent).load(trained.name)
    assert loaded.version == trained.version
    x = trained.dataset.matrix(loaded.scorer.feature_names)[:2000]
    fast = loaded.scorer.score_batch(x)
    ref = trained.scorer.reference_predict(x)  # LightGBM/XGBoost predict, sklearn pipeline, isotonic
    np.testing.assert_allclose(fast.probability, ref.probability, atol=1e-6)
    np.testing.assert_allclose(fast.members, ref.members, atol=1e-6)
    np.testing.assert_allclose(
        fast.disagreement, ref.members.max(axis=1) - ref.members.min(axis=1), atol=1e-6
    )
    # The members are the final refit with the folds' median number of rounds.
    rounds = trained.metrics["training"]["rounds"]
    assert trained.scorer.members[0].booster.num_trees() == rounds["lightgbm"]
    assert loaded.scorer.member_names == MEMBER_NAMES


def test_metadata_records_what_it_was_trained_on(trained: TrainResult, steps: list[TrainProgress]) -> None:
    meta = trained.metadata
    assert meta.feature_set == latest_feature_set().ref.to_dict()
    assert meta.signal_type == "swing" and meta.name == "swing"
    assert list(meta.symbols) == trained.dataset.symbols
    for key in (
        "n",
        "base_rate",
        "auc",
        "log_loss",
        "brier",
        "ece",
        "precision_at_threshold",
        "hit_rate_by_decile",
    ):
        assert key in meta.metrics
    assert set(meta.metrics["baselines"]) == {"always_long", "momentum_20"}
    assert len(meta.metrics["folds"]) == FAST.n_splits
    assert meta.metrics["training"]["feature_names"] == list(trained.scorer.feature_names)
    assert [s.done for s in steps] == list(range(1, FAST.n_splits + 2))
    assert steps[-1].stage == "final" and all(s.total == FAST.n_splits + 1 for s in steps)


def test_platt_below_the_isotonic_minimum_and_isotonic_above() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(2000)
    y = (rng.random(2000) < p).astype(float)
    assert isinstance(fit_calibrator(p[:300], y[:300]), PlattCalibrator)
    assert isinstance(fit_calibrator(p, y), IsotonicCalibrator)


def test_isotonic_never_promises_certainty_from_a_few_unlucky_rows() -> None:
    """A dozen low predictions without a hit must not become a calibrated 0 %."""
    rng = np.random.default_rng(1)
    p = np.r_[np.full(12, 0.01), rng.uniform(0.2, 0.5, 3000)]
    y = np.r_[np.zeros(12), (rng.random(3000) < 0.3).astype(float)]
    cal = fit_calibrator(p, y)
    low = float(cal.predict(np.array([0.0]))[0])
    assert 0.1 < low < 0.4  # the lowest bin pools its 12 rows with ~40 others at a 30 % hit rate
    _, rate, count = calibration_bins(p, y)
    assert count.min() >= 50 and count.sum() == p.size
    assert rate.min() > 0.0 and rate.max() < 1.0


def test_refuses_what_cannot_be_trained(full: Dataset, tmp_path: Path) -> None:
    with pytest.raises(TrainError, match="no row's label window ends before 2014-01-01"):
        train_dataset(full, tmp_path, until="2014-01-01", config=FAST)
    with pytest.raises(TrainError, match="nothing to learn"):
        train_dataset(full.with_labels(np.zeros(len(full))), tmp_path, config=FAST)
    with pytest.raises(TrainError, match="bad date 'last tuesday'"):
        parse_until("last tuesday")
    with pytest.raises(TrainError, match="cannot cut 5 walk-forward folds"):
        train_dataset(full.subset(np.arange(3)), tmp_path, config=FAST)
