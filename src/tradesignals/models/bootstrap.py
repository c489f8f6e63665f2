"""Block-bootstrap intervals over dates: how much of a score difference is noise.

Rows of one date are not independent samples: 500 symbols move with one market, and a 5-bar label
shares four of its bars with the next day's label. Resampling rows as if independent would make
every interval far too narrow. So we resample **contiguous blocks of dates** (a circular block
bootstrap, Politis & Romano 1992): the distinct dates are laid on a circle; each resample draws
block starts uniformly and takes ``block_dates`` consecutive dates from each (wrapping at the end)
until it holds as many dates as the sample; a date drawn ``c`` times contributes all its rows ``c``
times. Whole dates keep the cross-section together; blocks of consecutive dates keep the overlap of
neighbouring labels together.

* ``block_dates`` defaults to 20 trading dates — four times the 5-bar swing horizon, so that most
  pairs of overlapping labels fall in one block — and is cut to a quarter of the dates when the
  sample is short, so that a resample still mixes at least four blocks.
* Intervals are percentile intervals (the 2.5th and 97.5th percentiles of ``n_resamples``
  bootstrap statistics), beside the estimate on the sample itself.
* Seeded (``numpy.random.default_rng(seed)``): the same rows give the same intervals.

A date is the UTC calendar date of a row's ``ts`` (daily bars are stamped at midnight UTC of their
session; US intraday sessions fall within one UTC date).

The statistics: the model's AUC; for each baseline, the log-loss difference ``model − baseline``
(negative: the model is better) and the AUC difference ``model − baseline``. Both are computed per
resample from per-row weights (the date counts), so the work per resample is one pass over the rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["NS_PER_DAY", "BlockBootstrap", "date_block_counts", "date_ids", "interval_report"]

NS_PER_DAY = 86_400 * 1_000_000_000
_PROB_CLIP = 1e-15

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class BlockBootstrap:
    """Settings of the circular block bootstrap over dates (see the module docstring)."""

    block_dates: int = 20
    n_resamples: int = 1000
    level: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if self.block_dates < 1 or self.n_resamples < 1 or not 0.0 < self.level < 1.0:
            raise ValueError("block_dates and n_resamples must be >= 1 and level in (0, 1)")


def date_ids(ts: npt.ArrayLike) -> tuple[IntArray, int]:
    """Each row's position among the sample's distinct UTC dates (time order), and their count."""
    days = np.asarray(ts, dtype=np.int64) // NS_PER_DAY
    unique, inverse = np.unique(days, return_inverse=True)
    return inverse.astype(np.int64), int(unique.size)


def date_block_counts(n_dates: int, cfg: BlockBootstrap) -> tuple[IntArray, int]:
    """``(counts, block)``: how often each date is drawn in each resample (``n_resamples × n_dates``)
    and the block length used."""
    block = max(1, min(cfg.block_dates, n_dates // 4))
    n_blocks = -(-n_dates // block)
    rng = np.random.default_rng(cfg.seed)
    starts = rng.integers(0, n_dates, size=(cfg.n_resamples, n_blocks))
    picks = (starts[:, :, None] + np.arange(block)[None, None, :]) % n_dates
    picks = picks.reshape(cfg.n_resamples, -1)[:, :n_dates]
    counts = np.zeros((cfg.n_resamples, n_dates), dtype=np.int64)
    for r in range(cfg.n_resamples):
        counts[r] = np.bincount(picks[r], minlength=n_dates)
    return counts, block


def interval_report(
    y: npt.ArrayLike,
    p: npt.ArrayLike,
    baselines: Mapping[str, npt.ArrayLike],
    ts: npt.ArrayLike,
    cfg: BlockBootstrap = BlockBootstrap(),
) -> dict[str, Any]:
    """Estimates and block-bootstrap intervals: the model's AUC, and per baseline the log-loss and
    AUC differences ``model − baseline``. JSON-ready; ``None`` where a statistic is undefined."""
    ya = np.asarray(y, dtype=np.float64).reshape(-1)
    pa = np.asarray(p, dtype=np.float64).reshape(-1)
    day, n_dates = date_ids(ts)
    out: dict[str, Any] = {
        "method": "circular block bootstrap over contiguous blocks of trading dates; percentile intervals",
        "level": cfg.level,
        "n_resamples": cfg.n_resamples,
        "seed": cfg.seed,
        "dates": n_dates,
        "block_dates": None,
    }
    if ya.size == 0:
        out["auc"] = _interval(None, None, cfg)
        out["baselines"] = {k: {"log_loss_diff": _interval(None, None, cfg)} for k in baselines}
        return out
    counts, block = date_block_counts(n_dates, cfg)
    out["block_dates"] = block
    rows_day = np.bincount(day, minlength=n_dates).astype(np.float64)
    model_auc = _AucByResample(ya, pa, day, n_dates)
    auc_model = model_auc.full()
    auc_model_bs = model_auc.resampled(counts)
    out["auc"] = _interval(auc_model, auc_model_bs, cfg)
    loss_model = _row_log_loss(ya, pa)
    out["baselines"] = {}
    for key, base in baselines.items():
        ba = np.asarray(base, dtype=np.float64).reshape(-1)
        diff = loss_model - _row_log_loss(ya, ba)
        per_day = np.bincount(day, weights=diff, minlength=n_dates)
        ll_bs = (counts @ per_day) / (counts @ rows_day)
        base_auc = _AucByResample(ya, ba, day, n_dates)
        auc_base = base_auc.full()
        auc_diff = None if auc_model is None or auc_base is None else auc_model - auc_base
        auc_diff_bs = auc_model_bs - base_auc.resampled(counts)
        out["baselines"][key] = {
            "log_loss_diff": _interval(float(diff.mean()), ll_bs, cfg),
            "auc_diff": _interval(auc_diff, auc_diff_bs, cfg),
        }
    return out


class _AucByResample:
    """Weighted AUC (ties count one half) of one predictor, for the sample and for each resample.

    Rows are pooled once into cells of (distinct prediction, date) holding their positive and
    negative counts; a resample then weights each cell by its date's count — two bincounts over the
    cells and a cumsum. A constant baseline has one cell per date, so its resamples cost nothing.
    """

    def __init__(self, y: FloatArray, p: FloatArray, day: IntArray, n_dates: int) -> None:
        values, group = np.unique(p, return_inverse=True)
        self._m = int(values.size)
        key = group.astype(np.int64) * n_dates + day
        cells, cell_of_row = np.unique(key, return_inverse=True)
        self._group = cells // n_dates
        self._day = cells % n_dates
        self._pos = np.bincount(cell_of_row, weights=(y == 1).astype(np.float64), minlength=cells.size)
        self._neg = np.bincount(cell_of_row, weights=(y != 1).astype(np.float64), minlength=cells.size)

    def _auc(self, w: FloatArray) -> float:
        gp = np.bincount(self._group, weights=w * self._pos, minlength=self._m)
        gn = np.bincount(self._group, weights=w * self._neg, minlength=self._m)
        total_p, total_n = float(gp.sum()), float(gn.sum())
        if total_p <= 0 or total_n <= 0:
            return math.nan
        below = np.cumsum(gn) - gn
        return float(np.sum(gp * (below + 0.5 * gn)) / (total_p * total_n))

    def full(self) -> float | None:
        value = self._auc(np.ones(self._day.size))
        return None if math.isnan(value) else value

    def resampled(self, counts: IntArray) -> FloatArray:
        out = np.empty(counts.shape[0])
        for r in range(counts.shape[0]):
            out[r] = self._auc(counts[r, self._day].astype(np.float64))
        return out


def _row_log_loss(y: FloatArray, p: FloatArray) -> FloatArray:
    q = np.clip(p, _PROB_CLIP, 1.0 - _PROB_CLIP)
    return np.asarray(-(y * np.log(q) + (1.0 - y) * np.log(1.0 - q)), dtype=np.float64)


def _interval(estimate: float | None, samples: Any, cfg: BlockBootstrap) -> dict[str, float | None]:
    """``{"estimate", "lo", "hi"}``; the bounds are ``None`` when the statistic is undefined in a
    resample (one class drawn only), rather than an interval over the resamples that happened to work."""
    if estimate is None or samples is None:
        return {"estimate": estimate, "lo": None, "hi": None}
    s = np.asarray(samples, dtype=np.float64)
    if not np.all(np.isfinite(s)):
        return {"estimate": estimate, "lo": None, "hi": None}
    alpha = (1.0 - cfg.level) / 2.0
    lo, hi = np.quantile(s, [alpha, 1.0 - alpha])
    return {"estimate": float(estimate), "lo": float(lo), "hi": float(hi)}
