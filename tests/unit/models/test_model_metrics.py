"""Metrics on cases small enough to work out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tradesignals.models.metrics import (
    calibration_intercept_slope,
    equal_mass_ece,
    evaluate_predictions,
    expected_calibration_error,
    hit_rate_by_decile,
)


def test_ece_is_the_weighted_gap_between_hit_rate_and_prediction_per_bin() -> None:
    # Bin [0, .1): p .05, hits 1 of 2 → gap .45 on half the rows; bin [.9, 1]: p .95, hits 2 of 2 → .05.
    y = [1, 0, 1, 1]
    p = [0.05, 0.05, 0.95, 0.95]
    assert expected_calibration_error(y, p) == pytest.approx(0.5 * 0.45 + 0.5 * 0.05)


def test_ece_puts_a_probability_of_one_in_the_last_bin_and_is_zero_when_calibrated() -> None:
    assert expected_calibration_error([1, 1], [1.0, 0.95]) == pytest.approx(0.025)
    # 30 % predicted, 3 of 10 hit: perfectly calibrated.
    assert expected_calibration_error([1, 1, 1] + [0] * 7, [0.3] * 10) == pytest.approx(0.0)


def test_ece_bins_are_equal_width_not_pooled() -> None:
    # Pooled, these rows average p .5 and hit .5 (a gap of 0); per bin each is off by .4 and .4.
    assert expected_calibration_error([0, 1], [0.1, 0.9]) == pytest.approx(0.1)
    assert expected_calibration_error([1, 0], [0.1, 0.9]) == pytest.approx(0.9)


def test_auc_on_a_hand_example_and_undefined_for_one_class() -> None:
    # Positives .35 and .8 against negatives .1 and .4: 3 of 4 pairs ordered right.
    out = evaluate_predictions([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert out["auc"] == pytest.approx(0.75)
    assert evaluate_predictions([1, 1, 1], [0.2, 0.5, 0.9])["auc"] is None
    assert evaluate_predictions([0, 1, 0, 1], [0.3] * 4)["auc"] == pytest.approx(0.5)


def test_log_loss_brier_and_base_rate_by_hand() -> None:
    out = evaluate_predictions([1, 0], [0.8, 0.4])
    assert out["n"] == 2
    assert out["base_rate"] == pytest.approx(0.5)
    assert out["mean_p"] == pytest.approx(0.6)
    assert out["log_loss"] == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    assert out["brier"] == pytest.approx((0.2**2 + 0.4**2) / 2)


def test_precision_at_threshold_names_its_threshold_and_how_many_rows_reached_it() -> None:
    out = evaluate_predictions([1, 0, 1, 0, 0], [0.9, 0.65, 0.6, 0.59, 0.1], threshold=0.6)
    pat = out["precision_at_threshold"]
    assert pat["threshold"] == 0.6
    assert pat["n_above"] == 3  # .6 itself counts
    assert pat["precision"] == pytest.approx(2 / 3)
    assert pat["share_above"] == pytest.approx(0.6)
    none_above = evaluate_predictions([1, 0], [0.2, 0.3])["precision_at_threshold"]
    assert none_above["n_above"] == 0 and none_above["precision"] is None


def test_deciles_rank_the_predictions_lowest_first() -> None:
    p = np.arange(100) / 100.0
    y = (p >= 0.5).astype(float)
    hits, means = hit_rate_by_decile(y, p, with_mean_p=True)
    assert hits == pytest.approx([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    assert means[0] == pytest.approx(0.045) and means[9] == pytest.approx(0.945)
    assert len(evaluate_predictions(y, p)["hit_rate_by_decile"]) == 10


def test_a_constant_predictor_has_the_base_rate_in_every_decile_whatever_the_row_order() -> None:
    y = np.array([1, 1, 1] + [0] * 7, dtype=float)  # the hits all come first
    assert hit_rate_by_decile(y, np.full(10, 0.4)) == pytest.approx([0.3] * 10)


def test_ties_straddling_a_decile_cut_are_shared_pro_rata() -> None:
    # 15 rows at .2 (3 hits) and 5 rows at .9 (5 hits); deciles are 2 rows each.
    # Deciles 1–7 hold only the .2 group (20 %); decile 8 holds 1 row of each (60 %); 9–10 are .9 (100 %).
    y = np.array([1] * 3 + [0] * 12 + [1] * 5, dtype=float)
    p = np.array([0.2] * 15 + [0.9] * 5)
    hits = hit_rate_by_decile(y, p)
    assert hits[:7] == pytest.approx([0.2] * 7)
    assert hits[7] == pytest.approx((0.5 * 0.2 * 2 + 0.5 * 1.0 * 2) / 2)
    assert hits[8:] == pytest.approx([1.0, 1.0])


def test_weights_equal_repeating_rows() -> None:
    y, p, w = [1, 0, 1], [0.7, 0.2, 0.4], [2, 1, 3]
    weighted = evaluate_predictions(y, p, w)
    repeated = evaluate_predictions([1, 1, 0, 1, 1, 1], [0.7, 0.7, 0.2, 0.4, 0.4, 0.4])
    for key in ("base_rate", "auc", "log_loss", "brier", "ece", "ece_equal_mass", "calibration_slope"):
        assert weighted[key] == pytest.approx(repeated[key]), key
    assert weighted["hit_rate_by_decile"] == pytest.approx(repeated["hit_rate_by_decile"])


def test_no_rows_gives_undefined_metrics_not_zeros() -> None:
    out = evaluate_predictions([], [])
    assert out["n"] == 0
    assert out["auc"] is None and out["ece"] is None and out["base_rate"] is None
    assert out["hit_rate_by_decile"] == [None] * 10


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([1, 2], [0.5, 0.5], "only 0 and 1"),
        ([1, float("nan")], [0.5, 0.5], "only 0 and 1"),
        ([1, 0], [0.5, float("nan")], "probabilities"),
        ([1, 0], [0.5, 1.2], "probabilities"),
        ([1, 0], [0.5], "one value per row"),
    ],
)
def test_bad_inputs_are_refused_not_scored(y: list[float], p: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_predictions(y, p)


def _calibrated_sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits z, calibrated probabilities sigmoid(z) and labels drawn from them."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-0.8, 0.6, n)
    p = 1.0 / (1.0 + np.exp(-z))
    return z, p, (rng.random(n) < p).astype(float)


def test_a_calibrated_predictor_has_slope_one_and_intercept_zero() -> None:
    _, p, y = _calibrated_sample(200_000, seed=0)
    out = evaluate_predictions(y, p)
    assert out["calibration_slope"] == pytest.approx(1.0, abs=0.03)
    assert out["calibration_intercept"] == pytest.approx(0.0, abs=0.03)
    assert out["ece_equal_mass"] < 0.01


def test_a_shrunk_predictor_has_slope_above_one_and_an_overconfident_one_below() -> None:
    z, _, y = _calibrated_sample(200_000, seed=1)
    shrunk = 1.0 / (1.0 + np.exp(-(-0.8 + 0.5 * (z + 0.8))))  # half the spread of the truth
    wide = 1.0 / (1.0 + np.exp(-(-0.8 + 2.0 * (z + 0.8))))
    # logit(truth) = z = -0.8 + 2 (logit(shrunk) + 0.8): slope 2, intercept 0.8.
    a, b = calibration_intercept_slope(y, shrunk)
    assert b == pytest.approx(2.0, abs=0.06) and a == pytest.approx(0.8, abs=0.06)
    assert calibration_intercept_slope(y, wide)[1] == pytest.approx(0.5, abs=0.02)


def test_calibration_fit_is_undefined_without_two_classes_or_spread() -> None:
    assert calibration_intercept_slope([1, 1, 1], [0.2, 0.5, 0.9]) == (None, None)
    assert calibration_intercept_slope([0, 1, 0, 1], [0.3] * 4) == (None, None)
    assert calibration_intercept_slope([0, 1], [0.2, 0.8]) == (None, None)  # separable: no finite fit
    assert calibration_intercept_slope([], []) == (None, None)


def test_equal_mass_ece_sees_a_wrong_slope_that_equal_width_bins_hide() -> None:
    """Predictions squeezed into 0.31–0.39 fill one equal-width bin, whose ECE is then |base rate -
    mean p| = 0 here; ten equal-mass bins see the slope: p is 0.31 where the truth is 0.15, 0.39
    where it is 0.55."""
    p = np.repeat(np.linspace(0.31, 0.39, 10), 1000)
    truth = np.repeat(np.linspace(0.15, 0.55, 10), 1000)
    y = (np.arange(p.size) % 1000 < np.round(truth * 1000)).astype(float)  # exact rates, no noise
    assert expected_calibration_error(y, p) == pytest.approx(abs(y.mean() - p.mean()), abs=1e-12)
    assert expected_calibration_error(y, p) < 1e-9
    gaps = np.abs(y.reshape(10, 1000).mean(axis=1) - np.linspace(0.31, 0.39, 10))
    assert gaps.mean() > 0.08
    assert equal_mass_ece(y, p) == pytest.approx(gaps.mean())


def test_equal_mass_ece_of_a_constant_predictor_is_its_gap_to_the_base_rate() -> None:
    y = np.array([1, 1, 1] + [0] * 7, dtype=float)  # hits first: ties must not turn row order into skill
    assert equal_mass_ece(y, np.full(10, 0.4)) == pytest.approx(0.1)
    assert equal_mass_ece([], []) is None
