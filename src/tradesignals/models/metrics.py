"""The numbers a probability is judged by, computed one way everywhere (training OOF, evaluate, the card).

A signal's confidence is a promise ("70 % of these hit the first target"), so ranking (AUC) is not
enough: the card must show whether the promise is kept. Hence ECE and the hit rate by predicted
decile beside the proper scores (log loss, Brier).

Conventions, chosen so that a figure cannot flatter:

* **Undefined is ``None``, never a made-up number.** AUC of a set holding one class is undefined, as
  is the precision of an empty selection; JSON has no NaN, and a 0.5 or 0.0 stand-in would read as
  a measurement.
* **ECE, two ways, both labelled.** ``ece`` uses 10 equal-*width* bins on ``[0, 1]`` (``[0, .1),
  [.1, .2) … [.9, 1]``): the weighted mean over bins of ``|hit rate - mean predicted|``, the promise
  per displayed confidence level. But a model whose predictions all sit in 0.19–0.35 fills two such
  bins, and its ECE collapses to ``|base rate - mean p|``: it cannot see a miscalibrated *slope*.
  ``ece_equal_mass`` therefore cuts the rows by rank into 10 bins of equal weight (the deciles below,
  ties shared pro rata) and averages ``|hit rate - mean predicted|`` over them.
* **Calibration intercept and slope** are the logistic recalibration fit ``logit P(y) = a + b·logit(p)``
  (both fitted together, unpenalised, by Newton's method): a calibrated ``p`` has ``a ≈ 0, b ≈ 1``;
  ``b < 1`` means over-confident (spread too wide), ``b > 1`` under-confident (shrunk toward the
  mean). ``None`` when undefined: one class only, predictions without spread, or a separable sample.
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
    "calibration_intercept_slope",
    "equal_mass_ece",
    "evaluate_predictions",
    "expected_calibration_error",
    "hit_rate_by_decile",
]

DEFAULT_THRESHOLD = 0.6
N_BINS = 10
N_DECILES = 10
_EPS = 1e-15
_LOGIT_CLIP = 1e-6

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
    ``base_rate``, ``mean_p``, ``auc``, ``log_loss``, ``brier``, ``ece`` (equal-width bins),
    ``ece_equal_mass``, ``calibration_intercept``, ``calibration_slope``, ``precision_at_threshold``
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
            "ece_equal_mass": None,
            "calibration_intercept": None,
            "calibration_slope": None,
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
    intercept, slope = calibration_intercept_slope(ya, pa, wa)
    return {
        "n": n,
        "base_rate": float(np.sum(wa * ya) / total),
        "mean_p": float(np.sum(wa * pa) / total),
        "auc": _auc(ya, pa, wa),
        "log_loss": log_loss,
        "brier": float(np.sum(wa * (pa - ya) ** 2) / total),
        "ece": expected_calibration_error(ya, pa, wa),
        "ece_equal_mass": equal_mass_ece(ya, pa, wa),
        "calibration_intercept": intercept,
        "calibration_slope": slope,
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


def equal_mass_ece(
    y: npt.ArrayLike, p: npt.ArrayLike, w: npt.ArrayLike | None = None, *, n_bins: int = N_BINS
) -> float | None:
    """Weighted mean over ``n_bins`` equal-mass bins (by rank of ``p``, ties shared pro rata) of
    ``|hit rate - mean prediction|``; ``None`` for no rows.

    Equal mass puts as many rows in each bin wherever the predictions lie, so a model squeezed into
    a narrow range is still judged bin by bin across that range (see the module docstring).
    """
    ya, pa, wa = _arrays(y, p, w)
    if ya.size == 0 or wa.sum() <= 0:
        return None
    hits, means, mass = _rank_bins(ya, pa, wa, n_bins)
    total = float(mass.sum())
    gaps = [
        m * abs(h - q) for h, q, m in zip(hits, means, mass, strict=True) if h is not None and q is not None
    ]
    return float(sum(gaps) / total)


def calibration_intercept_slope(
    y: npt.ArrayLike, p: npt.ArrayLike, w: npt.ArrayLike | None = None
) -> tuple[float | None, float | None]:
    """``(a, b)`` of the logistic fit ``logit P(y = 1) = a + b·logit(p)``, unpenalised.

    Newton's method with step halving on the (weighted) log likelihood; ``p`` is clipped to
    ``[1e-6, 1 - 1e-6]`` first so that a stray 0 or 1 cannot dominate. ``(None, None)`` when the
    fit is undefined: no rows, one class, no spread in ``p``, or no convergence (separable data).
    """
    ya, pa, wa = _arrays(y, p, w)
    total = float(wa.sum())
    if total <= 0 or not (np.any((ya == 1) & (wa > 0)) and np.any((ya == 0) & (wa > 0))):
        return None, None
    q = np.clip(pa, _LOGIT_CLIP, 1.0 - _LOGIT_CLIP)
    z = np.log(q / (1.0 - q))
    z_mean = float(np.sum(wa * z) / total)
    if float(np.sum(wa * (z - z_mean) ** 2) / total) < 1e-12:
        return None, None
    design = np.column_stack([np.ones_like(z), z])

    def loglik(beta: FloatArray) -> float:
        eta = design @ beta
        return float(np.sum(wa * (ya * eta - np.logaddexp(0.0, eta))))

    beta = np.zeros(2)
    current = loglik(beta)
    converged = False
    for _ in range(100):
        mu = 0.5 * (1.0 + np.tanh(0.5 * (design @ beta)))  # the logistic, without overflow
        grad = design.T @ (wa * (ya - mu))
        hess = (design * (wa * mu * (1.0 - mu))[:, None]).T @ design
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            return None, None
        t = 1.0
        while t > 1e-10 and loglik(beta + t * step) < current - 1e-12 * max(1.0, abs(current)):
            t /= 2.0
        moved = float(np.max(np.abs(t * step)))
        beta = beta + t * step
        current = loglik(beta)
        if moved < 1e-10:
            converged = True
            break
    if not converged:
        return None, None
    if not np.all(np.isfinite(beta)) or float(np.max(np.abs(beta))) > 1e3:
        return None, None
    return float(beta[0]), float(beta[1])


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
    hits, means, _ = _rank_bins(ya, pa, wa, N_DECILES)
    return (hits, means) if with_mean_p else hits


def _rank_bins(
    ya: FloatArray, pa: FloatArray, wa: FloatArray, n_bins: int
) -> tuple[list[float | None], list[float | None], FloatArray]:
    """Hit rate, mean prediction and weight of ``n_bins`` equal-weight bins by rank of ``pa``.

    A run of tied predictions straddling a cut is split pro rata over the bins it covers (its hit
    rate spread with it), the expectation over every way of breaking the tie.
    """
    values, inverse = np.unique(pa, return_inverse=True)
    g_w = np.bincount(inverse, weights=wa, minlength=values.size)
    g_y = np.bincount(inverse, weights=wa * ya, minlength=values.size)
    hi = np.cumsum(g_w)
    lo = hi - g_w
    total = hi[-1]
    hits: list[float | None] = []
    means: list[float | None] = []
    mass = np.zeros(n_bins)
    for k in range(n_bins):
        a, b = total * k / n_bins, total * (k + 1) / n_bins
        overlap = np.clip(np.minimum(hi, b) - np.maximum(lo, a), 0.0, None)
        share = np.divide(overlap, g_w, out=np.zeros_like(overlap), where=g_w > 0)
        weight = float(overlap.sum())
        mass[k] = weight
        if weight <= 0:
            hits.append(None)
            means.append(None)
            continue
        hits.append(float(np.sum(share * g_y) / weight))
        means.append(float(np.sum(overlap * values) / weight))
    return hits, means, mass


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
