"""Date-block bootstrap intervals: deterministic, centred on the sample's own figures, wide when
dates share their noise, and computed on whole dates."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tradesignals.models.bootstrap import NS_PER_DAY, BlockBootstrap, date_block_counts, interval_report

DAY0 = 17_000 * NS_PER_DAY


def sample(n_dates: int, per_date: int, seed: int, day_effect: float = 0.0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    ts = DAY0 + np.repeat(np.arange(n_dates), per_date) * NS_PER_DAY
    shock = np.repeat(rng.normal(0, day_effect, n_dates), per_date)  # a market move shared by a date
    z = rng.normal(-0.7, 0.5, ts.size)
    p = 1.0 / (1.0 + np.exp(-z))
    y = (rng.random(ts.size) < 1.0 / (1.0 + np.exp(-(z + shock)))).astype(float)
    return y, p, ts


def test_same_seed_same_intervals_and_estimates_are_the_samples_own() -> None:
    y, p, ts = sample(120, 50, seed=1)
    base = {"always_long": np.full(y.size, 0.33)}
    cfg = BlockBootstrap(n_resamples=200, seed=5)
    a = interval_report(y, p, base, ts, cfg)
    assert a == interval_report(y, p, base, ts, cfg)
    assert a != interval_report(y, p, base, ts, BlockBootstrap(n_resamples=200, seed=6))
    assert a["auc"]["estimate"] == pytest.approx(roc_auc_score(y, p))
    assert a["auc"]["lo"] < a["auc"]["estimate"] < a["auc"]["hi"]
    q = np.clip(p, 1e-15, 1 - 1e-15)
    ll = -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))
    ll_base = -np.mean(y * np.log(0.33) + (1 - y) * np.log(0.67))
    assert a["baselines"]["always_long"]["log_loss_diff"]["estimate"] == pytest.approx(ll - ll_base)
    assert a["baselines"]["always_long"]["auc_diff"]["estimate"] == pytest.approx(roc_auc_score(y, p) - 0.5)
    assert a["dates"] == 120 and a["block_dates"] == 20 and a["level"] == 0.95


def test_resamples_draw_whole_dates_in_contiguous_circular_blocks() -> None:
    counts, block = date_block_counts(100, BlockBootstrap(block_dates=10, n_resamples=50, seed=0))
    assert block == 10 and counts.shape == (50, 100)
    assert (counts.sum(axis=1) == 100).all()  # as many dates as the sample
    # A block covers 10 consecutive dates (mod 100): each draw adds one to a run of 10 neighbours,
    # so every resample's counts change only at block edges.
    diffs = np.count_nonzero(np.diff(np.concatenate([counts[:, -1:], counts], axis=1), axis=1), axis=1)
    assert (diffs <= 2 * 10).all()
    short, block = date_block_counts(12, BlockBootstrap(block_dates=20, n_resamples=5))
    assert block == 3 and (short.sum(axis=1) == 12).all()  # at least four blocks per resample


def test_dates_that_share_noise_widen_the_interval_as_they_should() -> None:
    """With a shock shared by all rows of a date, rows are not independent: resampling whole dates
    must give a wider AUC interval than the same number of rows with no shared noise."""
    cfg = BlockBootstrap(n_resamples=300, seed=2)
    y0, p0, ts0 = sample(200, 40, seed=3)
    y1, p1, ts1 = sample(200, 40, seed=3, day_effect=1.5)
    width = lambda r: r["hi"] - r["lo"]  # noqa: E731
    base0 = {"b": np.full(y0.size, y0.mean())}
    base1 = {"b": np.full(y1.size, y1.mean())}
    calm = interval_report(y0, p0, base0, ts0, cfg)
    shared = interval_report(y1, p1, base1, ts1, cfg)
    assert width(shared["baselines"]["b"]["log_loss_diff"]) > 1.5 * width(
        calm["baselines"]["b"]["log_loss_diff"]
    )


def test_no_rows_gives_undefined_intervals() -> None:
    out = interval_report([], [], {"always_long": []}, np.array([], dtype=np.int64))
    assert out["auc"] == {"estimate": None, "lo": None, "hi": None}
