"""The numbers a probability is judged by, computed one way everywhere (training OOF, evaluate, the card).

A signal's confidence is a promise ("70 % of these hit the first target"), so ranking (AUC) is not
enough: the card must show whether the promise is kept. Hence ECE and the hit rate by predicted
decile beside the proper scores (log loss, Brier).

Conventions, chosen so that a figure cannot flatter:

* **Undefined is ``None``, never a made-up number.** AUC of a set holding one class is undefined, as
  is the precision of an empty selection; JSON has no NaN, and a 0.5 or 0.0 stand-in would read as
  a measurement.
* **ECE** uses 10 equal-width bins on ``[0, 1]`` (``[0, .1), [.1, .2) … [.9, 1]``): the weighted
  mean over bins of ``|hit rate - mean predicted|``. Equal width, not equal mass, because the
  promise is made per displayed confidence level.
* **Deciles are by rank of the prediction, ties shared.** Rows are ordered by predicted probability
  and cut into ten groups of equal weight; a run of tied predictions that straddles a cut is split
  pro rata (its hit rate spread over the deciles it covers), which is the expectation over every way
  of breaking the tie. Without that, a constant predictor's deciles would show the arbitrary row
  order as if it were skill.
* **Precision at a threshold** reports its threshold and how many rows reached it: a precision over
  twelve rows is not one over twelve thousand.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score

__all__ = [
    "DEFAULT_THRESHOLD",
    "N_BINS",
    "N_DECILES",
    "evaluate_predictions",
    "expected_calibration_error",
    "hit_rate_by_decile",
]

DEFAULT_THRESHOLD = 0.6
N_BINS = 10
N_DECILES = 10
_EPS = 1e-15

FloatArray = npt.NDArray[np.float64]


def evaluate_predictions(
    y: npt.ArrayLike,
    p: npt.ArrayLike,
    w: npt.ArrayLike | None = None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """Every metric of a set of binary outcomes ``y`` (0/1) and predicted probabilities ``p``.

    ``w`` weights the rows (default 1 each; ``n`` is always the row count). Keys: ``n``,
    ``base_rate``, ``mean_p``, ``auc``, ``log_loss``, ``brier``, ``ece``, ``precision_at_threshold``
    (``{"threshold", "precision", "n_above", "share_above"}``), ``hit_rate_by_decile`` and
    ``mean_p_by_decile`` (lists of 10, lowest predictions first). JSON-ready: floats or ``None``.
    """
    ya, pa, wa = _arrays(y, p, w)
    n = int(ya.size)
    if n == 0:
        return {
            "n": 0,
            "base_rate": None,
            "mean_p": None,
            "auc": None,
            "log_loss": None,
            "brier": None,
            "ece": None,
            "precision_at_threshold": {
                "threshold": threshold,
                "precision": None,
                "n_above": 0,
                "share_above": None,
            },
            "hit_rate_by_decile": [None] * N_DECILES,
            "mean_p_by_decile": [None] * N_DECILES,
        }
    total = float(wa.sum())
    pc = np.clip(pa, _EPS, 1.0 - _EPS)
    log_loss = -float(np.sum(wa * (ya * np.log(pc) + (1.0 - ya) * np.log(1.0 - pc))) / total)
    above = pa >= threshold
    w_above = float(wa[above].sum())
    hit, mean_p = hit_rate_by_decile(ya, pa, wa, with_mean_p=True)
    return {
        "n": n,
        "base_rate": float(np.sum(wa * ya) / total),
        "mean_p": float(np.sum(wa * pa) / total),
        "auc": _auc(ya, pa, wa),
        "log_loss": log_loss,
        "brier": float(np.sum(wa * (pa - ya) ** 2) / total),
        "ece": expected_calibration_error(ya, pa, wa),
        "precision_at_threshold": {
            "threshold": threshold,
            "precision": float(np.sum(wa[above] * ya[above]) / w_above) if w_above > 0 else None,
            "n_above": int(above.sum()),
            "share_above": float(above.sum() / n),
        },
        "hit_rate_by_decile": hit,
        "mean_p_by_decile": mean_p,
    }


def expected_calibration_error(
    y: npt.ArrayLike, p: npt.ArrayLike, w: npt.ArrayLike | None = None, *, n_bins: int = N_BINS
) -> float | None:
    """Weighted mean over equal-width bins of ``|hit rate - mean prediction|``; ``None`` for no rows."""
    ya, pa, wa = _arrays(y, p, w)
    if ya.size == 0:
        return None
    idx = np.minimum((pa * n_bins).astype(np.int64), n_bins - 1)
    wb = np.bincount(idx, weights=wa, minlength=n_bins)
    yb = np.bincount(idx, weights=wa * ya, minlength=n_bins)
    pb = np.bincount(idx, weights=wa * pa, minlength=n_bins)
    filled = wb > 0
    return float(np.sum(np.abs(yb[filled] - pb[filled])) / wb.sum())


def hit_rate_by_decile(
    y: npt.ArrayLike,
    p: npt.ArrayLike,
    w: npt.ArrayLike | None = None,
    *,
    with_mean_p: bool = False,
) -> Any:
    """Hit rate per decile of predicted probability (10 values, lowest first; ``None`` if no rows).

    Ties straddling a decile cut are shared pro rata (see the module docstring). With
    ``with_mean_p`` also the mean prediction per decile, as a second list.
    """
    ya, pa, wa = _arrays(y, p, w)
    if ya.size == 0 or wa.sum() <= 0:
        empty: list[float | None] = [None] * N_DECILES
        return (empty, list(empty)) if with_mean_p else empty
    values, inverse = np.unique(pa, return_inverse=True)
    g_w = np.bincount(inverse, weights=wa, minlength=values.size)
    g_y = np.bincount(inverse, weights=wa * ya, minlength=values.size)
    hi = np.cumsum(g_w)
    lo = hi - g_w
    total = hi[-1]
    hits: list[float | None] = []
    means: list[float | None] = []
    for k in range(N_DECILES):
        a, b = total * k / N_DECILES, total * (k + 1) / N_DECILES
        overlap = np.clip(np.minimum(hi, b) - np.maximum(lo, a), 0.0, None)
        share = np.divide(overlap, g_w, out=np.zeros_like(overlap), where=g_w > 0)
        weight = float(overlap.sum())
        if weight <= 0:
            hits.append(None)
            means.append(None)
            continue
        hits.append(float(np.sum(share * g_y) / weight))
        means.append(float(np.sum(overlap * values) / weight))
    return (hits, means) if with_mean_p else hits


def _auc(y: FloatArray, p: FloatArray, w: FloatArray) -> float | None:
    if not (np.any((y == 1) & (w > 0)) and np.any((y == 0) & (w > 0))):
        return None
    value = float(roc_auc_score(y, p, sample_weight=w))
    return value if math.isfinite(value) else None


def _arrays(
    y: npt.ArrayLike, p: npt.ArrayLike, w: npt.ArrayLike | None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Validated float arrays: a NaN prediction or a label other than 0/1 is a caller's bug, refused."""
    ya = np.asarray(y, dtype=np.float64).reshape(-1)
    pa = np.asarray(p, dtype=np.float64).reshape(-1)
    wa = np.ones_like(ya) if w is None else np.asarray(w, dtype=np.float64).reshape(-1)
    if not (ya.shape == pa.shape == wa.shape):
        raise ValueError(f"y, p and w must have one value per row (got {ya.size}, {pa.size}, {wa.size})")
    if not np.all((ya == 0) | (ya == 1)):
        raise ValueError("y must hold only 0 and 1 (drop unlabelled rows first)")
    if not np.all(np.isfinite(pa)) or np.any((pa < 0) | (pa > 1)):
        raise ValueError("p must be probabilities in [0, 1] (drop unscored rows first)")
    if not np.all(np.isfinite(wa)) or np.any(wa < 0):
        raise ValueError("w must be finite and non-negative")
    return ya, pa, wa
