"""Purged walk-forward splits: no training row's label window may overlap a test row's."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradesignals.models.validation import Split, purged_walk_forward, time_holdout

DAY = 86_400 * 10**9


def overlapping_pairs(ts: np.ndarray, t_end: np.ndarray, split: Split) -> list[tuple[int, int]]:
    """(train, test) rows whose label windows [ts, t_end] share an instant."""
    tr, te = split.train_idx, split.test_idx
    clash = (ts[tr][:, None] <= t_end[te][None, :]) & (t_end[tr][:, None] >= ts[te][None, :])
    return [(int(tr[i]), int(te[j])) for i, j in zip(*np.nonzero(clash), strict=True)]


def test_purging_removes_every_training_row_whose_label_reaches_the_test_fold() -> None:
    # One symbol, ten days, every label two days long (the last ones cut at the data end).
    ts = np.arange(10) * DAY
    t_end = np.minimum(np.arange(10) + 2, 9) * DAY
    # Without purging, rows 1 and 2 (labels ending on days 3 and 4) would train fold 1, whose test
    # starts on day 3: their labels were decided by the test fold's prices.
    assert [int(t) for t in t_end[:3]] == [2 * DAY, 3 * DAY, 4 * DAY]

    first, second = purged_walk_forward(ts, t_end, 2)

    # Ten days, default initial span 10 // 3 = 3 days, then test folds of days 3–6 and 7–9.
    assert first.test_idx.tolist() == [3, 4, 5, 6]
    assert (first.test_start, first.test_end, first.test_label_end) == (3 * DAY, 6 * DAY, 8 * DAY)
    assert first.train_idx.tolist() == [0]
    assert second.test_idx.tolist() == [7, 8, 9]
    assert second.train_idx.tolist() == [0, 1, 2, 3, 4]  # rows 5, 6 end on days 7, 8: purged
    for split in (first, second):
        assert overlapping_pairs(ts, t_end, split) == []


def test_without_t_end_a_naive_split_would_leak_and_this_one_does_not() -> None:
    ts = np.arange(30) * DAY
    t_end = ts + 5 * DAY
    for split in purged_walk_forward(ts, t_end, 3):
        naive_train = np.flatnonzero(ts < split.test_start)
        assert overlapping_pairs(ts, t_end, Split(naive_train, split.test_idx, 0, 0, 0)) != []
        assert overlapping_pairs(ts, t_end, split) == []


def test_embargo_drops_rows_just_after_the_test_fold_when_training_uses_later_data() -> None:
    ts = np.arange(20) * DAY
    t_end = ts + DAY
    plain = purged_walk_forward(ts, t_end, 3, min_train=1, train_after=True)
    embargoed = purged_walk_forward(ts, t_end, 3, min_train=1, train_after=True, embargo=timedelta(days=3))
    # Fold 2 tests days 7–13; its labels end on day 14.
    assert plain[1].test_idx.tolist() == list(range(7, 14))
    assert plain[1].test_label_end == 14 * DAY
    # Purged: row 6 (label ends day 7, inside the fold) and row 14 (starts on the fold's last label day).
    assert plain[1].train_idx.tolist() == [0, 1, 2, 3, 4, 5, *range(15, 20)]
    # Embargo of 3 days after day 14: rows starting on days 15–17 are dropped as well.
    assert embargoed[1].train_idx.tolist() == [0, 1, 2, 3, 4, 5, 18, 19]
    assert embargoed[1].test_idx.tolist() == plain[1].test_idx.tolist()
    # The same embargo in int ns.
    as_ns = purged_walk_forward(ts, t_end, 3, min_train=1, train_after=True, embargo=3 * DAY)
    assert [s.train_idx.tolist() for s in as_ns] == [s.train_idx.tolist() for s in embargoed]


def test_embargo_changes_nothing_in_a_plain_walk_forward() -> None:
    ts = np.arange(40) * DAY
    t_end = ts + 3 * DAY
    plain = purged_walk_forward(ts, t_end, 4)
    embargoed = purged_walk_forward(ts, t_end, 4, embargo=timedelta(days=10))
    assert [s.train_idx.tolist() for s in plain] == [s.train_idx.tolist() for s in embargoed]
    for s in plain:
        assert ts[s.train_idx].max() < s.test_start


def test_folds_are_ordered_disjoint_and_cover_everything_after_the_initial_span() -> None:
    ts = np.arange(50) * DAY
    splits = purged_walk_forward(ts, ts + 2 * DAY, 4, min_train=0.2)
    assert splits[0].test_start == 10 * DAY  # 20 % of 50 days train only
    tested = np.concatenate([s.test_idx for s in splits])
    assert tested.tolist() == list(range(10, 50))
    for a, b in itertools.pairwise(splits):
        assert a.test_end < b.test_start
        assert not set(a.test_idx.tolist()) & set(b.test_idx.tolist())
    # Expanding: each fold trains on at least what the previous one did.
    for a, b in itertools.pairwise(splits):
        assert set(a.train_idx.tolist()) <= set(b.train_idx.tolist())


def test_rows_of_many_symbols_at_one_time_stay_in_one_fold_whatever_their_order() -> None:
    rng = np.random.default_rng(3)
    days = np.repeat(np.arange(24), 3)  # three symbols, interleaved by time
    perm = rng.permutation(days.size)
    ts = days[perm] * DAY
    t_end = ts + rng.integers(1, 4, size=ts.size) * DAY
    splits = purged_walk_forward(ts, t_end, 3)
    for s in splits:
        in_fold = (ts >= s.test_start) & (ts <= s.test_end)
        assert sorted(s.test_idx.tolist()) == np.flatnonzero(in_fold).tolist()
        assert overlapping_pairs(ts, t_end, s) == []
    # Same answer as on the time-sorted rows, mapped through the permutation.
    order = np.argsort(ts, kind="stable")
    sorted_splits = purged_walk_forward(ts[order], t_end[order], 3)
    for s, q in zip(splits, sorted_splits, strict=True):
        assert sorted(s.train_idx.tolist()) == sorted(order[q.train_idx].tolist())


def test_rolling_window_keeps_only_the_latest_initial_span() -> None:
    ts = np.arange(12) * DAY
    expanding = purged_walk_forward(ts, ts, 2, min_train=4)
    rolling = purged_walk_forward(ts, ts, 2, min_train=4, window="rolling")
    assert expanding[1].train_idx.tolist() == list(range(8))
    assert rolling[1].train_idx.tolist() == [4, 5, 6, 7]
    assert rolling[0].train_idx.tolist() == [0, 1, 2, 3]


def test_bad_input_is_refused_with_a_reason() -> None:
    ts = np.arange(10) * DAY
    with pytest.raises(ValueError, match=r"row 3: t_end \d+ is before its ts"):
        purged_walk_forward(ts, np.where(np.arange(10) == 3, 0, ts), 2)
    with pytest.raises(ValueError, match="integer ns"):
        purged_walk_forward(ts.astype(float), ts, 2)
    with pytest.raises(ValueError, match="too few for 20 test folds"):
        purged_walk_forward(ts, ts, 20)
    with pytest.raises(ValueError, match="no training rows left after purging"):
        purged_walk_forward(ts, np.full(10, 9 * DAY), 2)
    with pytest.raises(ValueError, match="embargo must be >= 0"):
        purged_walk_forward(ts, ts, 2, embargo=-1)
    with pytest.raises(ValueError, match="n_splits must be >= 1"):
        purged_walk_forward(ts, ts, 0)
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\)"):
        purged_walk_forward(ts, ts, 2, min_train=1.5)
    with pytest.raises(ValueError, match="t_end has 9"):
        purged_walk_forward(ts, ts[:9], 2)
    with pytest.raises(ValueError, match="naive datetime"):
        time_holdout(ts, ts, datetime(2020, 1, 1))  # naive: refused, never guessed


def test_time_holdout_trains_only_on_labels_closed_before_the_cut() -> None:
    ts = np.arange(10) * DAY
    t_end = ts + 2 * DAY
    split = time_holdout(ts, t_end, 5 * DAY)
    assert split.train_idx.tolist() == [0, 1, 2]  # row 3's label ends on day 5: not before the cut
    assert split.test_idx.tolist() == [5, 6, 7, 8, 9]  # rows 3, 4 are neither
    assert (split.test_start, split.test_end, split.test_label_end) == (5 * DAY, 9 * DAY, 11 * DAY)
    assert overlapping_pairs(ts, t_end, split) == []
    by_date = time_holdout(ts, t_end, datetime(1970, 1, 6, tzinfo=UTC))
    assert by_date.train_idx.tolist() == split.train_idx.tolist()
    after_all = time_holdout(ts, t_end, 100 * DAY)
    assert after_all.test_idx.size == 0 and after_all.train_idx.size == 10


@st.composite
def label_windows(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(4, 80))
    ts = np.array(draw(st.lists(st.integers(0, 60), min_size=n, max_size=n)), dtype=np.int64)
    length = np.array(draw(st.lists(st.integers(0, 8), min_size=n, max_size=n)), dtype=np.int64)
    return ts, ts + length


@settings(max_examples=300, deadline=None)
@given(
    label_windows(),
    st.integers(1, 4),
    st.integers(0, 6),
    st.booleans(),
    st.sampled_from(["expanding", "rolling"]),
)
def test_no_training_label_overlaps_a_test_label_for_any_data(
    windows: tuple[np.ndarray, np.ndarray],
    n_splits: int,
    embargo: int,
    train_after: bool,
    window: Literal["expanding", "rolling"],
) -> None:
    ts, t_end = windows
    refused = ""
    try:
        splits = purged_walk_forward(
            ts, t_end, n_splits, embargo=embargo, train_after=train_after, window=window
        )
    except ValueError as err:
        refused = str(err)
    if refused:  # too few distinct times, or a fold purged bare: said, never an empty train set
        assert "too few" in refused or "no training rows left" in refused
        return
    assert len(splits) == n_splits
    first_test = splits[0].test_start
    tested = np.sort(np.concatenate([s.test_idx for s in splits]))
    assert tested.tolist() == np.flatnonzero(ts >= first_test).tolist()
    for k, s in enumerate(splits):
        assert s.test_idx.size and s.train_idx.size
        assert not set(s.train_idx.tolist()) & set(s.test_idx.tolist())
        assert ts[s.test_idx].min() == s.test_start and ts[s.test_idx].max() == s.test_end
        assert t_end[s.test_idx].max() == s.test_label_end
        assert overlapping_pairs(ts, t_end, s) == []
        tr_ts = ts[s.train_idx]
        assert not ((tr_ts > s.test_label_end) & (tr_ts <= s.test_label_end + embargo)).any()
        if not train_after:
            assert (tr_ts < s.test_start).all()
        if k:
            assert splits[k - 1].test_end < s.test_start
        # Purging removes nothing it need not: every row left out of an expanding fold is in the
        # test fold or inside the purged span.
        if window == "expanding":
            left_out = np.setdiff1d(np.arange(ts.size), np.r_[s.train_idx, s.test_idx])
            candidates = left_out[(ts[left_out] < s.test_start) | train_after]
            in_purge = (ts[candidates] <= s.test_label_end + embargo) & (t_end[candidates] >= s.test_start)
            assert in_purge.all()
