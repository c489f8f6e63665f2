"""The online recalibration measured as it would have run: prequentially, on held-out rows.

``OnlineAdapter`` (``models.online``) nudges the batch probability toward a River model that learns
from resolved outcomes. Judging it on rows it has learnt would flatter it, so each row is **scored
before its outcome is learnt**, and an outcome is learnt only once it was known: rows are taken in
time order, one timestamp at a time; before the rows of timestamp ``t`` are scored, the adapter learns
every earlier row whose label resolved strictly before ``t`` (``t_end < t``), in the order they
resolved. A label resolving on bar ``t`` itself is not yet used at ``t``: the engine decides at the
bar's close and cannot be sure the outcome was processed first.

Differences from live use, stated rather than hidden: live, the adapter learns only the outcomes of
signals the engine actually emitted; here it learns every held-out row (every signal the engine
could have emitted), so it sees more outcomes than it would live. Its drift monitor does not change
probabilities and is not fed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tradesignals.models.online import OnlineAdapter

__all__ = ["PrequentialResult", "prequential_online"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class PrequentialResult:
    """``p``: the blended probability shown for each row (input order); ``weight``: the online
    model's weight in that blend when the row was scored; ``learned``: outcomes learnt in all."""

    p: FloatArray
    weight: FloatArray
    learned: int


def prequential_online(
    p_batch: npt.ArrayLike,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    ts: npt.ArrayLike,
    t_end: npt.ArrayLike,
    feature_names: Sequence[str],
    *,
    adapter: Callable[[Sequence[str]], OnlineAdapter] | None = None,
) -> PrequentialResult:
    """Score every row with a fresh adapter's blend, learning outcomes only once resolved (see the
    module docstring). ``adapter`` builds the adapter from the feature names (default: the engine's
    defaults, ``OnlineAdapter(feature_names)``)."""
    pb = np.asarray(p_batch, dtype=np.float64).reshape(-1)
    xm = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64).reshape(-1)
    ts_a = np.asarray(ts, dtype=np.int64).reshape(-1)
    end_a = np.asarray(t_end, dtype=np.int64).reshape(-1)
    n = pb.size
    if not (xm.shape[0] == ya.size == ts_a.size == end_a.size == n):
        raise ValueError("p_batch, x, y, ts and t_end must have one entry per row")
    online = (adapter or OnlineAdapter)(list(feature_names))
    p_out = np.full(n, np.nan)
    w_out = np.zeros(n)
    by_time = np.argsort(ts_a, kind="stable")
    by_end = np.lexsort((ts_a, end_a))  # resolution order; ties by entry time
    cut_points = np.flatnonzero(np.diff(ts_a[by_time])) + 1
    learned = 0
    for group in np.split(by_time, cut_points):
        now = int(ts_a[group[0]])
        while learned < n and end_a[by_end[learned]] < now:
            i = int(by_end[learned])
            online.learn(xm[i], bool(ya[i] == 1), p_batch=float(pb[i]))
            learned += 1
        weight = online.weight
        for i in group.tolist():
            p_out[i] = online.blend(float(pb[i]), xm[i])
            w_out[i] = weight
    return PrequentialResult(p_out, w_out, learned)
