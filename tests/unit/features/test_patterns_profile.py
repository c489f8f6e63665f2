"""Candlestick flags (TA-Lib's definitions, our encoding) and the rolling volume profile."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from tradesignals.domain.market import NS_PER_SECOND, Timeframe
from tradesignals.features import FeatureEngine, FeaturePanel
from tradesignals.features.batch import compute_features
from tradesignals.features.incremental import (
    FEATURE_INDEX,
    PROFILE_BARS,
    PROFILE_BINS,
    VALUE_AREA,
    profile_rows,
)
from tradesignals.marketdata.calendar import AlwaysOpen, utc_date_ns

HOUR = 3600 * NS_PER_SECOND
T0 = utc_date_ns(2024, 1, 1)


def features(rows: list[tuple[float, float, float, float, float]]) -> np.ndarray:
    """Streaming features for ``rows`` (o, h, l, c, v) on hourly crypto bars, checked against batch."""
    eng = FeatureEngine(Timeframe.H1, calendar=AlwaysOpen())
    got = np.array([eng.update_values("XUSDT", T0 + i * HOUR, *r).values for i, r in enumerate(rows)])
    df = pd.DataFrame(rows, columns=["open", "high", "low", "close", "volume"])
    df.insert(0, "symbol", "XUSDT")
    df.insert(0, "ts", T0 + np.arange(len(rows), dtype=np.int64) * HOUR)
    batch = compute_features(df, timeframe=Timeframe.H1, calendar=AlwaysOpen())
    np.testing.assert_array_equal(got, batch.drop(columns=["ts", "symbol", "warm", "status"]).to_numpy())
    return got


def candle(mid: float, body: float = 1.0, up: bool = False) -> tuple[float, float, float, float, float]:
    o, c = (mid - body / 2, mid + body / 2) if up else (mid + body / 2, mid - body / 2)
    return (o, max(o, c) + 0.5, min(o, c) - 0.5, c, 1000.0)


def downtrend(n: int, start: float = 120.0) -> list[tuple[float, float, float, float, float]]:
    return [candle(start - i) for i in range(n)]  # black bodies of 1, ranges of 2


def flags(rows: list[tuple[float, float, float, float, float]], name: str) -> np.ndarray:
    return features(rows)[:, FEATURE_INDEX[name]]


# -- candlesticks ----------------------------------------------------------------------------------


def test_engulfing_is_plus_one_bullish_minus_one_bearish_zero_otherwise() -> None:
    rows = downtrend(3)
    rows += [(105.0, 105.5, 99.5, 100.0, 1e3), (99.0, 106.5, 98.5, 106.0, 1e3)]  # black, then white engulfing
    rows += [
        (106.0, 108.5, 105.5, 108.0, 1e3),
        (108.5, 109.0, 104.5, 105.0, 1e3),
    ]  # white, then black engulfing
    rows += [(105.0, 106.5, 104.5, 106.0, 1e3)]  # white inside the black: no pattern
    got = flags(rows, "cdl_engulfing")
    assert np.isnan(got[:2]).all()  # TA-Lib's lookback
    assert got[4] == 1.0 and got[6] == -1.0 and got[7] == 0.0
    ta = talib.CDLENGULFING(*np.array(rows)[:, :4].T)
    np.testing.assert_array_equal(got[2:], np.sign(ta[2:]))


def test_doji_is_a_body_within_a_tenth_of_the_recent_range() -> None:
    rows = downtrend(10)  # ranges of 2: a doji's body is at most 0.2
    rows += [(109.0, 110.0, 108.0, 109.05, 1e3), (109.0, 110.0, 108.0, 109.5, 1e3)]
    got = flags(rows, "cdl_doji")
    assert np.isnan(got[:10]).all()
    assert got[10] == 1.0 and got[11] == 0.0


def test_hammer_is_a_small_body_at_the_lows_with_a_long_lower_shadow() -> None:
    rows = downtrend(11)
    low = rows[-1][2]
    hammer = (low, low + 0.35, low - 1.5, low + 0.3, 1e3)  # body 0.3, lower shadow 1.5, upper 0.05
    inverted = (low, low + 1.8, low - 0.05, low + 0.3, 1e3)  # the same body, shadow on top
    got_h = flags([*rows, hammer], "cdl_hammer")
    got_i = flags([*rows, inverted], "cdl_hammer")
    assert np.isnan(got_h[:11]).all()
    assert got_h[11] == 1.0 and got_i[11] == 0.0


# -- volume profile ----------------------------------------------------------------------------------


def bar_at(tp: float, vol: float) -> tuple[float, float, float, float, float]:
    """A bar whose typical price (h + l + c) / 3 is exactly ``tp``."""
    return (tp, tp + 0.5, tp - 0.5, tp, vol)


# Window range 100..110 (bin width 1). Bin volumes: 0:10 1:60 2:120 3:300 4:160 5:100 6:30 7:10
# 8:10 9:10, total 810. POC is bin 3; the value area grows to bin 4 (160 > 120), then bin 2
# (120 > 100), holding 580 >= 70 % of 810 = 567: bins 2..4.
HAND_MADE = [
    bar_at(100.5, 10),
    *[bar_at(101.5, 20)] * 3,
    *[bar_at(102.5, 60)] * 2,
    *[bar_at(103.25, 100)] * 3,
    *[bar_at(104.5, 80)] * 2,
    *[bar_at(105.5, 50)] * 2,
    *[bar_at(106.5, 15)] * 2,
    *[bar_at(107.5, 5)] * 2,
    *[bar_at(108.5, 5)] * 2,
    bar_at(109.5, 10),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_volume_profile_by_hand_in_any_bar_order(seed: int) -> None:
    rows = [HAND_MADE[i] for i in np.random.default_rng(seed).permutation(PROFILE_BARS)]
    got = features(rows)
    i = FEATURE_INDEX
    assert np.isnan(got[: PROFILE_BARS - 1, i["vp_poc"]]).all()
    assert got[-1, i["vp_poc"]] == 103.5
    assert got[-1, i["vp_vah"]] == 105.0
    assert got[-1, i["vp_val"]] == 102.0

    panel = FeaturePanel(Timeframe.H1, calendar=AlwaysOpen(), symbols=["XUSDT"])
    for k, r in enumerate(rows):
        step = panel.update([0], T0 + k * HOUR, *([x] for x in r))
    np.testing.assert_array_equal(step.values[0], got[-1])


def window(bins: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A 100..110 window (bin width 1) with ``count`` unit-volume bars in each bin's middle."""
    tp = np.array([100.5 + k for k, count in bins.items() for _ in range(count)])
    assert len(tp) == PROFILE_BARS
    return tp[None, :], np.ones((1, PROFILE_BARS))


LO, HI = np.array([100.0]), np.array([110.0])


def test_profile_poc_tie_goes_to_the_lowest_bin() -> None:
    poc, _, val = profile_rows(*window({2: 10, 7: 10}), LO, HI)
    assert poc[0] == 102.5 and val[0] == 102.0


def test_value_area_tie_grows_upwards() -> None:
    # From bin 5 (10 of 20): bins 4 and 6 tie at 2 -> up to 6 (12); then 7 (5) beats 4 (2): 17 >= 14.
    # Growing down first would have ended at bins 4..6 instead.
    poc, vah, val = profile_rows(*window({3: 1, 4: 2, 5: 10, 6: 2, 7: 5}), LO, HI)
    assert (poc[0], val[0], vah[0]) == (105.5, 105.0, 108.0)


def test_flat_and_out_of_range_windows() -> None:
    flat = profile_rows(
        np.full((1, PROFILE_BARS), 50.0), np.ones((1, PROFILE_BARS)), np.array([50.0]), np.array([50.0])
    )
    assert [x[0] for x in flat] == [50.0, 50.0, 50.0]
    # A quirky bar whose close is above every high lands in the top bin rather than nowhere.
    tp = np.full((1, PROFILE_BARS), 101.0)
    tp[0, -1] = 130.0
    v = np.ones((1, PROFILE_BARS))
    v[0, -1] = 100.0
    poc, _, _ = profile_rows(tp, v, np.array([100.0]), np.array([110.0]))
    assert poc[0] == 109.5


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0), min_size=PROFILE_BARS, max_size=PROFILE_BARS),
    st.lists(st.floats(1e-3, 1e6), min_size=PROFILE_BARS, max_size=PROFILE_BARS),
    st.floats(1.0, 1e4),
    st.floats(1e-3, 1e3),
)
def test_value_area_holds_seventy_percent_around_the_poc(
    where: list[float], vols: list[float], lo: float, span: float
) -> None:
    hi = lo + span
    tp = lo + np.array(where) * (hi - lo)
    v = np.array(vols)
    poc, vah, val = (x[0] for x in profile_rows(tp[None, :], v[None, :], np.array([lo]), np.array([hi])))
    width = (hi - lo) / PROFILE_BINS  # as profile_rows computes it: (lo + span) - lo is not span
    k = np.clip(np.trunc((tp - lo) / width), 0, PROFILE_BINS - 1).astype(int)
    bins = np.bincount(k, weights=v, minlength=PROFILE_BINS)
    top = int(np.argmax(bins))
    assert poc == pytest.approx(lo + (top + 0.5) * width, rel=1e-12)
    assert val <= poc <= vah
    first, last = round((val - lo) / width), round((vah - lo) / width) - 1
    assert first <= top <= last
    held, target = bins[first : last + 1].sum(), VALUE_AREA * bins.sum()
    assert held >= target * (1 - 1e-12)
    # Greedy and stopping at once: without the edge bin added last it held too little.
    assert last == first or held - max(bins[first], bins[last]) < target * (1 + 1e-12)
