"""Corporate-action and glitch flags on synthetic closes: what is flagged, under which reason, and
what must not be (genuine big moves, in a calm and in a volatile series)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tradesignals.domain.bar_quality import QualityReason as R
from tradesignals.marketdata.corporate_actions import (
    ActionRules,
    detect_corporate_actions,
    flag_closes,
    near_flags,
)

EVENT = 120
CODES = {1: R.REVERSED_JUMP, 2: R.SPLIT_RATIO, 3: R.LEVEL_DROP}


def walk(n: int = 200, sigma: float = 0.01, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 50.0 * np.exp(np.cumsum(rng.normal(0.0, sigma, n)))


def flagged(close: np.ndarray) -> dict[int, R]:
    codes = flag_closes(close)
    return {int(i): CODES[int(codes[i])] for i in np.flatnonzero(codes)}


def test_a_calm_random_walk_has_no_flag() -> None:
    for seed in range(20):
        assert flagged(walk(seed=seed)) == {}


def test_an_unadjusted_2_for_1_split_is_a_split_ratio_flag_on_its_day_only() -> None:
    c = walk()
    c[EVENT:] /= 2.0
    assert flagged(c) == {EVENT: R.SPLIT_RATIO}


def test_a_reverse_split_1_for_3_is_a_split_ratio_flag() -> None:
    c = walk()
    c[EVENT:] *= 3.0
    assert flagged(c) == {EVENT: R.SPLIT_RATIO}


def test_a_spin_off_minus_57_percent_that_stays_is_a_level_drop() -> None:
    c = walk()
    c[EVENT:] *= 0.43
    assert flagged(c) == {EVENT: R.LEVEL_DROP}


def test_a_one_day_glitch_that_reverses_is_flagged_once_and_its_undoing_is_not() -> None:
    for factor in (1.3, 0.7, 0.5):  # up, down, and one at a split ratio: the reversal decides
        c = walk()
        c[EVENT] *= factor
        assert flagged(c) == {EVENT: R.REVERSED_JUMP}, factor


def test_genuine_big_moves_are_not_flagged() -> None:
    # Calm series: a -25 % earnings gap that stays, a +18 % jump that partly fades, a -12 % day
    # undone over the next week: far beyond volatility, but no reversal, split ratio or deep drop.
    c = walk()
    c[80:] *= 0.75
    c[120:] *= 1.18
    c[121:] *= 0.95
    c[160:] *= 0.88
    c[161:] *= 1.04
    c[162:] *= 1.04
    c[163:] *= 1.04
    assert flagged(c) == {}
    # Volatile series (5 % a day): -30 %, +35 %, -25 % and +40 % days are ordinary for it, even a
    # -30 % day followed by a +25 % rebound.
    v = walk(400, sigma=0.05, seed=3)
    for at, move in ((100, 0.70), (150, 1.35), (200, 0.75), (250, 1.40), (300, 0.70), (301, 1.25)):
        v[at:] *= move
    assert flagged(v) == {}


def test_short_or_broken_histories_are_never_judged_and_nan_closes_are_skipped() -> None:
    assert flagged(np.array([10.0, 5.0, 10.0])) == {}
    c = walk()
    c[EVENT:] /= 2.0
    c[[30, 31, EVENT + 5]] = np.nan  # missing closes neither flag nor hide the split
    c[40] = -1.0
    assert flagged(c) == {EVENT: R.SPLIT_RATIO}


def test_rules_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="min_history"):
        ActionRules(window=10, min_history=20)
    with pytest.raises(ValueError, match="drop_ratio"):
        ActionRules(drop_ratio=1.5)


def test_detect_works_on_interleaved_symbols_and_counts_by_reason() -> None:
    n = 200
    a, b, c = walk(n, seed=1), walk(n, seed=2), walk(n, seed=3)
    a[EVENT:] /= 2.0
    b[EVENT + 10] *= 1.4
    c[EVENT:] *= 0.43
    days = pd.date_range("2020-01-01", periods=n, freq="D").asi8
    frame = pd.DataFrame(
        {
            "ts": np.repeat(days, 3),
            "symbol": np.tile(["A", "B", "C"], n),
            "close": np.column_stack([a, b, c]).ravel(),
        }
    )
    flags = detect_corporate_actions(frame)
    hits = frame.loc[flags.mask, ["symbol", "ts"]]
    assert list(zip(hits["symbol"], hits["ts"], strict=True)) == [
        ("A", days[EVENT]),
        ("C", days[EVENT]),
        ("B", days[EVENT + 10]),
    ]
    assert flags.counts() == {R.REVERSED_JUMP: 1, R.SPLIT_RATIO: 1, R.LEVEL_DROP: 1}
    reasons = [r for r in flags.reasons() if r is not None]
    assert reasons == [R.SPLIT_RATIO, R.LEVEL_DROP, R.REVERSED_JUMP]
    masked = flags.masked(frame.assign(open=1.0, high=1.0, low=1.0))
    assert masked.loc[flags.mask, "close"].isna().all()
    assert masked.loc[~flags.mask, "close"].equals(frame.loc[~flags.mask, "close"])


def test_near_flags_looks_ahead_and_behind_within_the_symbol_only() -> None:
    # Rows deliberately out of time order and interleaved: X at days 0..9, Y at days 0..9.
    ts = np.r_[np.arange(10), np.arange(10)][::-1].copy()
    sym = np.array(["X"] * 10 + ["Y"] * 10)[::-1].copy()
    flag = (sym == "X") & (ts == 5)
    ahead = near_flags(sym, ts, flag, ahead=2)
    assert sorted(ts[ahead & (sym == "X")].tolist()) == [3, 4, 5]  # their next 2 bars hold day 5
    assert not ahead[sym == "Y"].any()
    behind = near_flags(sym, ts, flag, ahead=0, behind=3)
    assert sorted(ts[behind].tolist()) == [5, 6, 7, 8]
    assert not near_flags(sym, ts, np.zeros(20, dtype=bool), ahead=5).any()
    with pytest.raises(ValueError, match="ahead and behind"):
        near_flags(sym, ts, flag, ahead=-1)
