"""Purged walk-forward splits with an embargo: no training row may know a test row's answer.

A triple-barrier label at ``ts`` is decided by prices up to its ``t_end``. Two leaks follow if rows
are split by ``ts`` alone (López de Prado, *Advances in Financial Machine Learning*, ch. 7):

* **Overlap.** A training row whose label window ``[ts, t_end]`` reaches into the test fold was
  labelled with the test fold's prices. Every such row is *purged*: removed from training when its
  window overlaps ``[test_start, test_label_end]``, the test fold's first bar to the last moment any
  test label looked at.
* **Serial correlation.** Features right after a test fold (a 20-bar return, an ATR) are made of the
  test fold's bars. When training also uses rows *after* a test fold (``train_after=True``: purged
  k-fold cross-validation, or an expanding window that reuses data after an earlier test fold), rows
  starting within ``embargo`` after ``test_label_end`` are dropped too. In a plain walk-forward, train
  rows all precede the test fold and the embargo changes nothing.

Folds are cut on *distinct timestamps*, never on rows, so the rows of many symbols at one time stay
in one fold and any row order works (rows interleaved by time, or sorted by symbol). Indices in the
splits are positions into the arrays given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import numpy.typing as npt

from tradesignals.domain.market import to_ns

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Split:
    """One fold: positions to train on and to test on, and the test fold's time span (ns UTC).

    ``test_start``/``test_end`` are the first and last ``ts`` in the test fold; ``test_label_end`` is
    the latest ``t_end`` among them — the end of the span purged from training.
    """

    train_idx: IntArray
    test_idx: IntArray
    test_start: int
    test_end: int
    test_label_end: int


def purged_walk_forward(
    ts: npt.ArrayLike,
    t_end: npt.ArrayLike,
    n_splits: int,
    *,
    embargo: timedelta | int = 0,
    min_train: int | float | None = None,
    window: Literal["expanding", "rolling"] = "expanding",
    train_after: bool = False,
) -> list[Split]:
    """``n_splits`` test folds in time order, each with a purged (and embargoed) training set.

    The distinct timestamps are cut into an initial training-only span and ``n_splits`` equal,
    contiguous test folds after it. ``min_train`` sizes the initial span: a fraction of the distinct
    timestamps (float in (0, 1)), a count of them (int ≥ 1), or by default one fold's worth (the
    timestamps cut into ``n_splits + 1`` equal parts).

    ``window="expanding"`` trains on everything before the test fold; ``"rolling"`` only on the last
    initial-span's worth of timestamps before it. ``train_after=True`` also trains on rows after the
    test fold (cross-validation use), purged and embargoed. ``embargo`` is a duration (timedelta or
    int ns) counted from ``test_label_end``.

    Raises ``ValueError`` when the arrays disagree, a label ends before it starts, there are too few
    distinct timestamps for the folds asked, or purging leaves a fold with nothing to train on.
    """
    ts_a, end_a = _check_arrays(ts, t_end)
    embargo_ns = _duration_ns(embargo)
    if embargo_ns < 0:
        raise ValueError(f"embargo must be >= 0 (got {embargo_ns} ns)")
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1 (got {n_splits})")
    if window not in ("expanding", "rolling"):
        raise ValueError(f"window must be 'expanding' or 'rolling' (got {window!r})")

    times = np.unique(ts_a)
    initial = _initial_span(len(times), n_splits, min_train)
    if len(times) - initial < n_splits:
        raise ValueError(
            f"{len(times)} distinct timestamps leave {len(times) - initial} after the initial training "
            f"span of {initial}: too few for {n_splits} test folds"
        )
    # Fold k's test times are times[bounds[k]:bounds[k + 1]].
    bounds = initial + np.linspace(0, len(times) - initial, n_splits + 1).round().astype(np.int64)
    # Position of each row's ts among the distinct times: folds compare small ints, not ns.
    pos = np.searchsorted(times, ts_a)

    splits: list[Split] = []
    for k in range(n_splits):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        test_mask = (pos >= lo) & (pos < hi)
        test_idx = np.flatnonzero(test_mask).astype(np.int64)
        test_start, test_end = int(times[lo]), int(times[hi - 1])
        test_label_end = int(end_a[test_idx].max())

        candidate = pos < lo
        if window == "rolling":
            candidate &= pos >= lo - initial
        if train_after:
            candidate |= pos >= hi
        purged = (ts_a <= test_label_end + embargo_ns) & (end_a >= test_start)
        train_idx = np.flatnonzero(candidate & ~purged & ~test_mask).astype(np.int64)
        if not train_idx.size:
            raise ValueError(
                f"fold {k + 1} of {n_splits} (test {test_start}..{test_end}) has no training rows left "
                "after purging; use fewer folds, a larger min_train or a shorter embargo"
            )
        splits.append(Split(train_idx, test_idx, test_start, test_end, test_label_end))
    return splits


def time_holdout(ts: npt.ArrayLike, t_end: npt.ArrayLike, until: datetime | int) -> Split:
    """Train on rows whose label window closed before ``until``; test on rows from ``until`` on.

    What ``tradesignals train --until DATE`` means: a row whose label was still open at ``until``
    (``ts < until <= t_end``) is in neither set — training on it would use prices from after the cut,
    and it is not an out-of-sample row either. ``until`` is an aware datetime or int ns UTC.
    """
    ts_a, end_a = _check_arrays(ts, t_end)
    cut = _instant_ns(until)
    train_idx = np.flatnonzero(end_a < cut).astype(np.int64)
    test_idx = np.flatnonzero(ts_a >= cut).astype(np.int64)
    if test_idx.size:
        start, end, label_end = (
            int(ts_a[test_idx].min()),
            int(ts_a[test_idx].max()),
            int(end_a[test_idx].max()),
        )
    else:
        start = end = label_end = cut
    return Split(train_idx, test_idx, start, end, label_end)


def _check_arrays(ts: npt.ArrayLike, t_end: npt.ArrayLike) -> tuple[IntArray, IntArray]:
    ts_a = np.asarray(ts)
    end_a = np.asarray(t_end)
    for name, arr in (("ts", ts_a), ("t_end", end_a)):
        if arr.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional (got shape {arr.shape})")
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(
                f"{name} must be integer ns (got {arr.dtype}); drop unlabelled rows before splitting"
            )
    if ts_a.shape != end_a.shape:
        raise ValueError(f"ts has {ts_a.size} rows but t_end has {end_a.size}")
    if not ts_a.size:
        raise ValueError("no rows to split")
    ts_a, end_a = ts_a.astype(np.int64), end_a.astype(np.int64)
    bad = end_a < ts_a
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"row {i}: t_end {int(end_a[i])} is before its ts {int(ts_a[i])}")
    return ts_a, end_a


def _initial_span(n_times: int, n_splits: int, min_train: int | float | None) -> int:
    """How many distinct timestamps precede the first test fold."""
    if min_train is None:
        return max(1, n_times // (n_splits + 1))
    if isinstance(min_train, bool):
        raise ValueError("min_train must be a fraction or a count of timestamps, not a bool")
    if isinstance(min_train, float):
        if not 0.0 < min_train < 1.0:
            raise ValueError(f"min_train as a fraction must be in (0, 1) (got {min_train})")
        return max(1, int(n_times * min_train))
    if min_train < 1:
        raise ValueError(f"min_train as a count of timestamps must be >= 1 (got {min_train})")
    return int(min_train)


def _duration_ns(value: timedelta | int) -> int:
    if isinstance(value, timedelta):
        return (value.days * 86_400 + value.seconds) * 1_000_000_000 + value.microseconds * 1_000
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value)
    raise ValueError(f"embargo must be a timedelta or int ns (got {type(value).__name__})")


def _instant_ns(value: datetime | int) -> int:
    if isinstance(value, datetime):
        return to_ns(value)  # refuses a naive datetime
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value)
    raise ValueError(f"until must be an aware datetime or int ns (got {type(value).__name__})")


__all__ = ["Split", "purged_walk_forward", "time_holdout"]
