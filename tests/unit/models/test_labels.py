"""Labels: the lifecycle's outcome for a signal decided at each bar, checked rule by rule by hand.

Hand cases use daily bars on the always-open clock (a swing signal decided at bar t's close fills at
bar t+1's open and lives through bars t+1 … t+N, the last closing exactly at expiry), a decision close
of 100 and ATR 2: stop 97, targets 103 / 106 / 109 (1.5 ATR = 3 = 1R), and no costs unless a test is
about costs. ``test_labels_lifecycle.py`` holds labels to the lifecycle on random paths.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradesignals.domain.costs import DEFAULT_SCHEDULE, NO_COSTS, CostSchedule
from tradesignals.domain.market import Timeframe, to_ns
from tradesignals.domain.sessions import ALWAYS_OPEN, DAY_NS, SessionCalendar, utc_date_ns
from tradesignals.domain.signals import Direction, SignalType
from tradesignals.domain.trade_plan import PlanParams
from tradesignals.marketdata.calendar import exchange_calendar
from tradesignals.models.labels import (
    LABEL_COLUMNS,
    LabelSpec,
    Outcome,
    labelled_mask,
    outcome_counts,
    triple_barrier_labels,
)

NY = ZoneInfo("America/New_York")
HOUR_NS = 3_600 * 10**9
T0 = utc_date_ns(2026, 3, 2)
ATR = 2.0
LONG, SHORT = Direction.LONG, Direction.SHORT
Ohlc = tuple[float, float, float, float]


def frame(
    ohlc: list[Ohlc], *, symbol: str = "A", atr: float = ATR, start: int = T0, step: int = DAY_NS
) -> pd.DataFrame:
    o, h, lo, c = (list(x) for x in zip(*ohlc, strict=True))
    n = len(ohlc)
    return pd.DataFrame(
        {
            "ts": start + step * np.arange(n, dtype=np.int64),
            "symbol": symbol,
            "open": o,
            "high": h,
            "low": lo,
            "close": c,
            "volume": 1e6,
            "atr": atr,
        }
    )


def flat(n: int, price: float = 100.0) -> list[Ohlc]:
    """Bars that never move far enough to touch a level 3.0 away."""
    return [(price, price + 1, price - 1, price)] * n


DECIDE: Ohlc = (100, 100, 100, 100)


def label(
    bars: pd.DataFrame,
    *,
    sessions: int = 5,
    direction: Direction = LONG,
    costs: CostSchedule = NO_COSTS,
    kind: SignalType = SignalType.SWING,
    timeframe: Timeframe = Timeframe.D1,
    calendar: SessionCalendar | None = ALWAYS_OPEN,
    exclude: Any = None,
) -> pd.DataFrame:
    spec = LabelSpec(signal_type=kind, plan=PlanParams(swing_sessions=sessions), costs=costs)
    return triple_barrier_labels(
        bars, direction=direction, spec=spec, timeframe=timeframe, calendar=calendar, exclude=exclude
    )


def row(labels: pd.DataFrame, i: int) -> dict[str, Any]:
    return {str(k): v for k, v in labels.iloc[i].items()}


# ---- fill and exit -------------------------------------------------------------------------------


def test_final_target_exits_at_the_target_price_after_a_fill_at_the_next_open() -> None:
    bars = frame([DECIDE, (100, 101, 99, 100.5), (101, 109.5, 100.5, 109), *flat(4)])
    r = row(label(bars), 0)
    assert r["outcome"] == Outcome.TARGET and r["label"] == 1.0
    assert r["fill_price"] == 100.0 and r["exit_price"] == 109.0
    assert r["gross_r"] == 3.0 and r["net_r"] == 3.0 and r["ret"] == pytest.approx(0.09)
    assert r["t_end"] == bars.ts[2]


def test_the_first_target_does_not_end_the_label() -> None:
    # 1R (103) is touched on bar 1, the stop on bar 2: the plan holds to the last target.
    bars = frame([DECIDE, (100, 104, 99, 103.5), (103, 103.5, 96, 96.5), *flat(4)])
    r = row(label(bars), 0)
    assert r["outcome"] == Outcome.STOP and r["label"] == 0.0 and r["exit_price"] == 97.0
    assert r["gross_r"] == -1.0 and r["t_end"] == bars.ts[2]


def test_stop_first_exits_at_the_stop_price() -> None:
    bars = frame([DECIDE, (100, 100.5, 96.5, 97), (97, 110, 96, 109), *flat(4)])
    r = row(label(bars), 0)
    assert r["label"] == 0.0 and r["outcome"] == Outcome.STOP
    assert r["exit_price"] == 97.0 and r["gross_r"] == -1.0 and r["ret"] == pytest.approx(-0.03)
    assert r["t_end"] == bars.ts[1]


def test_a_bar_touching_both_levels_counts_as_the_stop() -> None:
    bars = frame([DECIDE, (100, 110, 96, 101), *flat(5)])
    r = row(label(bars), 0)
    assert r["outcome"] == Outcome.STOP and r["label"] == 0.0
    assert r["exit_price"] == 97.0 and r["t_end"] == bars.ts[1]


def test_a_gap_through_the_stop_fills_at_the_open() -> None:
    bars = frame([DECIDE, (100, 101, 99, 100), (95, 99, 94, 98), *flat(4)])
    r = row(label(bars), 0)
    assert r["outcome"] == Outcome.STOP
    assert r["exit_price"] == 95.0  # worse than the 97 stop: the gap's loss is real
    assert r["gross_r"] == pytest.approx(-5 / 3) and r["ret"] == pytest.approx(-0.05)


def test_a_gap_through_the_final_target_fills_at_the_open_even_if_the_bar_later_falls() -> None:
    bars = frame([DECIDE, (100, 101, 99, 100), (110, 111, 96, 97), *flat(4)])
    r = row(label(bars), 0)
    assert r["outcome"] == Outcome.TARGET and r["label"] == 1.0
    assert r["exit_price"] == 110.0 and r["gross_r"] == pytest.approx(10 / 3)


def test_r_is_measured_with_the_plans_risk_from_a_worse_fill() -> None:
    # Decided at 100, filled at 101 (next open): the stop at 97 is 4 away, i.e. -4/3 R.
    bars = frame([DECIDE, (101, 101.5, 96.5, 97), *flat(5)])
    r = row(label(bars), 0)
    assert r["fill_price"] == 101.0 and r["exit_price"] == 97.0
    assert r["gross_r"] == pytest.approx(-4 / 3) and r["ret"] == pytest.approx(-4 / 101)


def test_expiry_at_exactly_a_bars_close_uses_that_bar() -> None:
    # Three sessions: bars 1–3; bar 3 closes at expiry, so its close is the exit. Bar 4 is not used.
    bars = frame([DECIDE, *flat(2), (100, 102, 99, 101.5), (101.5, 110, 101, 109.5)])
    r = row(label(bars, sessions=3), 0)
    assert r["outcome"] == Outcome.EXPIRED and r["exit_price"] == 101.5
    assert r["gross_r"] == pytest.approx(0.5) and r["label"] == 1.0
    assert r["t_end"] == bars.ts[3]


def test_bar_ts_own_range_is_never_used() -> None:
    bars = frame([(100, 110, 90, 100), *flat(5)])
    r = row(label(bars), 0)
    assert r["outcome"] == Outcome.EXPIRED and r["t_end"] == bars.ts[5] and r["exit_price"] == 100.0


def test_a_bar_straddling_expiry_is_not_used_beyond_its_open() -> None:
    # Crypto day signals expire at 00:00 UTC. Hourly bars opening on the half hour: the 23:30 bar
    # closes at 00:30, after expiry, so only its open (before expiry) is used, not its range.
    start = T0 - 2 * HOUR_NS - HOUR_NS // 2  # 21:30 UTC
    bars = frame(
        [DECIDE, (100, 101, 99, 100), (100.5, 120, 80, 100)], symbol="BTCUSDT", start=start, step=HOUR_NS
    )
    r = row(label(bars, kind=SignalType.DAY, timeframe=Timeframe.H1), 0)
    assert r["outcome"] == Outcome.EXPIRED and r["exit_price"] == 100.5
    assert r["t_end"] == bars.ts[2]


# ---- not filled ----------------------------------------------------------------------------------


@pytest.mark.parametrize("next_open", [97.0, 95.0, 103.0, 105.0])
def test_a_next_open_at_or_beyond_the_stop_or_first_target_is_not_filled(next_open: float) -> None:
    bars = frame([DECIDE, (next_open, next_open + 1, next_open - 1, next_open), *flat(5)])
    r = row(label(bars), 0)
    assert r["outcome"] == Outcome.NOT_FILLED and np.isnan(r["label"])
    assert r["t_end"] == bars.ts[1]  # known at that open
    assert np.isnan(r["fill_price"]) and np.isnan(r["net_r"]) and np.isnan(r["weight"])


def test_a_next_open_just_inside_the_levels_fills() -> None:
    bars = frame([DECIDE, (102.99, 102.99, 97.01, 97.01), *flat(5, 97.01)])
    r = row(label(bars, sessions=1), 0)
    assert r["outcome"] == Outcome.EXPIRED and r["fill_price"] == 102.99 and r["exit_price"] == 97.01


# ---- costs and the win ---------------------------------------------------------------------------

TARGET_PATH = [DECIDE, (100, 101, 99, 100.5), (101, 109.5, 100.5, 109), *flat(4)]  # fill 100, exit 109


def test_equity_and_crypto_costs_are_chosen_by_symbol() -> None:
    equity = row(label(frame(TARGET_PATH, symbol="AAPL"), costs=DEFAULT_SCHEDULE), 0)
    crypto = row(label(frame(TARGET_PATH, symbol="BTCUSDT"), costs=DEFAULT_SCHEDULE), 0)
    eq_costs = 5 * (100 + 109) / 100 / 100  # percent of the fill: 5 bp a side
    cr_costs = 13 * (100 + 109) / 100 / 100  # 13 bp a side
    assert equity["gross_r"] == crypto["gross_r"] == 3.0
    assert equity["net_r"] == pytest.approx((9.0 - eq_costs) / 3, rel=1e-12)
    assert crypto["net_r"] == pytest.approx((9.0 - cr_costs) / 3, rel=1e-12)
    assert equity["ret"] == pytest.approx((9.0 - eq_costs) / 100, rel=1e-12)


def test_shorts_pay_borrow_for_the_days_held() -> None:
    # Short: stop 103, targets 97/94/91. Filled at bar 1's open, last target inside bar 2: held two days.
    bars = frame([DECIDE, (100, 101, 99, 100), (100, 100.5, 90.5, 91), *flat(4, 91)], symbol="AAPL")
    r = row(label(bars, direction=SHORT, costs=DEFAULT_SCHEDULE), 0)
    assert r["outcome"] == Outcome.TARGET and r["exit_price"] == 91.0
    costs = (5 * (100 + 91) / 100 + 2 * 50 / 365) / 100
    assert r["net_r"] == pytest.approx((9.0 - costs) / 3, rel=1e-12)


def test_the_label_is_net_of_costs() -> None:
    # Expires 0.05 % up: a gross gain, but 5 bp a side costs more: not a win.
    bars = frame([DECIDE, (100, 100.1, 99.9, 100.05), *flat(3)], symbol="AAPL")
    r = row(label(bars, sessions=1, costs=DEFAULT_SCHEDULE), 0)
    assert r["outcome"] == Outcome.EXPIRED and r["gross_r"] > 0
    costs = 5 * (100 + 100.05) / 100 / 100
    assert r["net_r"] == pytest.approx((0.05 - costs) / 3) and r["label"] == 0.0
    # without costs the same trade is a win
    assert row(label(bars, sessions=1), 0)["label"] == 1.0


# ---- short mirrors long --------------------------------------------------------------------------


def mirror(bars: pd.DataFrame, around: float) -> pd.DataFrame:
    """Prices reflected around ``around``: a rise becomes a fall, the high becomes the low."""
    out = bars.copy()
    out["open"], out["close"] = around - bars["open"], around - bars["close"]
    out["high"], out["low"] = around - bars["low"], around - bars["high"]
    return out


def test_short_is_the_long_of_the_mirrored_prices() -> None:
    bars = frame(
        [DECIDE, (100, 101, 99, 100), (100, 100.5, 96.5, 97), (97, 98, 92, 93), *flat(6, 93)], atr=ATR
    )
    long_ = label(bars, direction=LONG, sessions=3)
    short = label(mirror(bars, 200.0), direction=SHORT, sessions=3)
    assert long_["outcome"].tolist() == short["outcome"].tolist()
    pd.testing.assert_series_equal(long_["label"], short["label"])
    pd.testing.assert_series_equal(long_["t_end"], short["t_end"])
    pd.testing.assert_series_equal(long_["weight"], short["weight"])
    np.testing.assert_allclose(long_["gross_r"], short["gross_r"])
    np.testing.assert_allclose(200.0 - long_["exit_price"], short["exit_price"])


# ---- what gets no label --------------------------------------------------------------------------


def test_windows_past_the_data_end_are_censored_unless_resolved() -> None:
    bars = frame([*flat(4), (100, 109.5, 99.5, 109), (109, 109.5, 108.5, 109)])
    out = label(bars, sessions=3)
    # Row 0: bars 1–3, flat → expired at 100 (net 0: not a win). Rows 1–3 reach bar 4, which hits
    # 109; row 3's window (4–6) runs past the data, but resolved at bar 4. Row 4 (levels around 109)
    # fills at bar 5 and the data ends: unknown. Row 5 has no next bar.
    assert out["outcome"].tolist()[:4] == ["expired", "target", "target", "target"]
    assert out["label"].tolist()[:4] == [0.0, 1.0, 1.0, 1.0]
    assert out["label"].isna().tolist() == [False, False, False, False, True, True]
    assert out["t_end"].isna().tolist() == out["label"].isna().tolist()
    assert labelled_mask(out).tolist() == [True, True, True, True, False, False]


def test_nan_atr_and_unseen_bars_give_no_label_never_an_exception() -> None:
    bars = frame(flat(8))
    bars.loc[0, "atr"] = np.nan
    bars.loc[1, "atr"] = 0.0
    bars.loc[5, ["open", "high", "low"]] = np.nan  # a vendor hole: rows 2–3's windows, row 4's fill
    out = label(bars, sessions=3)
    # rows 0–1: no plan; 2–4: the hole; 5–7: the data ends before expiry
    assert out["label"].isna().all() and out["outcome"].isna().all()
    # A hole after the label resolved does not matter.
    bars = frame([DECIDE, (100, 109.5, 99, 109), *flat(3)])
    bars.loc[2, ["open", "high", "low", "close"]] = np.nan
    assert row(label(bars, sessions=3), 0)["outcome"] == Outcome.TARGET


def test_excluded_bars_decide_nothing_and_end_windows_that_reach_them() -> None:
    bars = frame(flat(10))
    exclude = np.zeros(10, dtype=bool)
    exclude[4] = True
    out = label(bars, sessions=3, exclude=exclude)
    # row 0 (bars 1–3) and rows 5–6 (6–8, 7–9) are clear; rows 1–3 reach bar 4; row 4 is the bar
    # itself; rows 7–9 run past the data.
    assert out["label"].isna().tolist() == [False, True, True, True, True, False, False, True, True, True]
    assert out["outcome"].tolist()[0] == "expired"
    with pytest.raises(ValueError, match=r"exclude has shape \(3,\); expected \(10,\)"):
        label(bars, exclude=np.zeros(3, dtype=bool))


def test_a_short_whose_target_would_be_below_zero_is_not_a_signal() -> None:
    bars = frame([(1.0, 1.0, 1.0, 1.0), (1, 1.1, 0.9, 1.0), *flat(5, 1.0)], atr=0.3)
    # risk 0.45: targets 0.55, 0.10, -0.35 → no plan
    assert np.isnan(row(label(bars, direction=SHORT), 0)["label"])
    assert not np.isnan(row(label(bars.assign(atr=0.01), direction=SHORT), 0)["label"])


def test_bad_input_is_refused_with_a_reason() -> None:
    bars = frame(flat(3))
    with pytest.raises(ValueError, match=f"two rows for symbol 'A' at ts {T0 + DAY_NS}"):
        label(pd.concat([bars, bars.iloc[[1]]]))
    with pytest.raises(ValueError, match="row 1 has no symbol"):
        label(bars.assign(symbol=pd.Series(["A", np.nan, "A"])))
    with pytest.raises(ValueError, match="lack column 'high'"):
        label(bars.drop(columns="high"))
    with pytest.raises(ValueError, match="ATR column 'atr_14'"):
        triple_barrier_labels(bars, "atr_14", calendar=ALWAYS_OPEN)
    with pytest.raises(ValueError, match="one value per bar"):
        triple_barrier_labels(bars, np.ones(2), calendar=ALWAYS_OPEN)
    with pytest.raises(ValueError, match="no label definition for event"):
        LabelSpec(signal_type=SignalType.EVENT)
    with pytest.raises(ValueError, match="swing_sessions must be 1–7"):
        PlanParams(swing_sessions=8)


def test_the_same_time_on_two_symbols_is_not_a_duplicate() -> None:
    out = label(pd.concat([frame(flat(3), symbol="A"), frame(flat(3), symbol="B")], ignore_index=True))
    assert len(out) == 6


def test_empty_input_gives_an_empty_frame() -> None:
    out = label(frame(flat(1)).iloc[:0])
    assert list(out.columns) == list(LABEL_COLUMNS) and out.empty


# ---- calendars: day labels end with the session, swing labels see their last session -----------


def ny(d: int, hh: int, mm: int, month: int = 1) -> int:
    return to_ns(datetime(2024, month, d, hh, mm, tzinfo=NY))


def timed_bars(times: list[int], ohlc: list[Ohlc], symbol: str = "AAPL") -> pd.DataFrame:
    bars = frame(ohlc, symbol=symbol)
    bars["ts"] = np.array(times, dtype=np.int64)
    return bars


XNYS = exchange_calendar("XNYS")


def test_a_day_label_ends_at_the_session_close_and_none_is_decided_at_the_bell() -> None:
    # 2024-01-02 15:56–15:59 New York, then the next session; its 09:30 bar would hit the target.
    times = [ny(2, 15, m) for m in (56, 57, 58, 59)] + [ny(3, 9, 30), ny(3, 9, 31)]
    bars = timed_bars(times, [*flat(4), (104, 110, 103, 109), (109, 109, 109, 109)])
    out = label(bars, kind=SignalType.DAY, timeframe=Timeframe.M1, calendar=XNYS)
    assert out["outcome"].tolist()[:3] == ["expired"] * 3
    assert (out["t_end"].iloc[:3] == ny(2, 15, 59)).all()
    # Row 3 is decided at 16:00, the closing bell: no day signal, no label. Rows 4–5 run past the data.
    assert out["label"].isna().tolist() == [False, False, False, True, True, True]
    assert pd.isna(out["outcome"].iloc[3])


def test_a_sessions_short_last_hourly_bar_is_used() -> None:
    # Hourly bars 09:30 … 15:30 New York; the 15:30 bar ends at the 16:00 close, exactly at expiry.
    times = [ny(2, 9 + k, 30) for k in range(7)] + [ny(3, 9, 30)]
    bars = timed_bars(times, [*flat(5), DECIDE, (100, 110, 99.5, 109.5), DECIDE], symbol="MSFT")
    out = label(bars, kind=SignalType.DAY, timeframe=Timeframe.H1, calendar=None)  # MSFT → NYSE
    r = row(out, 5)
    assert r["outcome"] == Outcome.TARGET and r["exit_price"] == 109.0 and r["t_end"] == ny(2, 15, 30)
    assert pd.isna(out["outcome"].iloc[6])  # decided at 16:00: no day signal


def test_bars_outside_sessions_get_no_day_label_and_no_price_before_expiry_is_not_filled() -> None:
    times = [ny(2, 7, 0), ny(2, 7, 1), ny(2, 10, 0), ny(2, 10, 1), ny(3, 10, 0)]
    bars = timed_bars(times, flat(5))
    out = label(bars, kind=SignalType.DAY, timeframe=Timeframe.M1, calendar=XNYS)
    # 07:00 is pre-market: no session, no plan. 10:00 fills at 10:01 and expires at 16:00 at the
    # last close. 10:01's next bar is the next day, after its expiry: never filled. The last is censored.
    assert out["outcome"].tolist()[2:4] == ["expired", "not_filled"]
    assert pd.isna(out["outcome"].iloc[0]) and pd.isna(out["outcome"].iloc[1])
    assert out["label"].isna().tolist() == [True, True, False, True, True]
    assert out["t_end"].iloc[3] == ny(3, 10, 0)


def test_crypto_day_labels_end_at_utc_midnight() -> None:
    start = T0 + DAY_NS - 3 * HOUR_NS  # 21:00 UTC, hourly bars across midnight
    bars = frame(flat(6), symbol="BTCUSDT", start=start, step=HOUR_NS)
    out = label(bars, kind=SignalType.DAY, timeframe=Timeframe.H1, calendar=None)  # BTCUSDT → 24/7
    assert out["t_end"].iloc[:2].tolist() == [T0 + DAY_NS - HOUR_NS] * 2
    # row 2 is decided at midnight: a new day's signal, whose window runs past the data
    assert out["label"].isna().tolist() == [False, False, True, True, True, True]


def test_the_fifth_session_of_a_swing_label_is_seen_on_daily_equity_bars() -> None:
    """Wave 1's bug: a daily bar closing at midnight straddled a 16:00 expiry and was never used."""
    # Decided at Jul 3's close (a half day); Jul 4 is a holiday; 5 sessions: Jul 5, 8, 9, 10, 11.
    days = [3, 5, 8, 9, 10, 11, 12]
    times = [utc_date_ns(2024, 7, d) for d in days]
    bars = timed_bars(times, [DECIDE, *flat(4), (100, 109.5, 99.5, 109), (109, 130, 80, 120)])
    r = row(label(bars, calendar=XNYS), 0)
    assert r["outcome"] == Outcome.TARGET and r["exit_price"] == 109.0 and r["label"] == 1.0
    assert r["t_end"] == utc_date_ns(2024, 7, 11)
    quiet = timed_bars(times, [DECIDE, *flat(4), (100, 101, 99, 100.7), (100, 130, 80, 120)])
    q = row(label(quiet, calendar=XNYS), 0)
    assert q["outcome"] == Outcome.EXPIRED and q["exit_price"] == 100.7
    assert q["t_end"] == utc_date_ns(2024, 7, 11)


# ---- uniqueness weights and row order ------------------------------------------------------------


def test_uniqueness_weights_by_hand() -> None:
    # Two sessions, flat prices, 6 bars: rows 0–3 span bars {1,2}, {2,3}, {3,4}, {4,5}. Row 4 fills
    # at bar 5 and is censored, but it is known open at bar 5, so it counts there; row 5 opens
    # nothing. Concurrency per bar: 1:1, 2:2, 3:2, 4:2, 5:2.
    out = label(frame(flat(6)), sessions=2)
    assert out["weight"].iloc[:4].tolist() == [(1 + 1 / 2) / 2, 0.5, 0.5, 0.5]
    assert out["weight"].iloc[4:].isna().all()


def test_uniqueness_with_an_early_exit_and_a_lone_label() -> None:
    # Row 0 stops at bar 1 ({1}); rows 1–3 (levels around 97) span {2,3}, {3,4}, {4,5}; censored
    # row 4 is open at {5}. Concurrency: 1:1, 2:1, 3:2, 4:2, 5:2 → 1, (1 + 1/2)/2, 1/2, 1/2.
    bars = frame([DECIDE, (100, 100, 96, 97), (97, 98, 96, 97), *flat(3, 97)])
    out = label(bars, sessions=2)
    assert out["outcome"].tolist()[:4] == ["stop", "expired", "expired", "expired"]
    assert out["weight"].iloc[:4].tolist() == [1.0, 0.75, 0.5, 0.5]


def test_symbols_do_not_share_concurrency_and_row_order_is_preserved() -> None:
    a = frame(flat(6), symbol="A")
    b = frame([(50, 50, 50, 50), (50, 51, 46, 47), *flat(4, 47)], symbol="B")
    alone = pd.concat([label(a, sessions=2), label(b, sessions=2)], ignore_index=True)
    both = pd.concat([a, b], ignore_index=True)
    shuffled = both.sample(frac=1.0, random_state=7)
    out = label(shuffled, sessions=2)
    assert out.index.tolist() == shuffled.index.tolist()  # results follow the input rows
    pd.testing.assert_frame_equal(out.sort_index(), alone)


def test_outcome_counts_lists_every_outcome() -> None:
    bars = frame([DECIDE, (100, 101, 99, 100), (95, 96, 94, 95), *flat(2, 95)])
    out = label(bars, sessions=1)
    # row 0 expires at bar 1's close (100); row 1 (levels around 100) sees bar 2 open at 95, beyond
    # its stop: not filled; rows 2–3 (levels around 95) expire at the next close; row 4 is censored.
    assert out["outcome"].tolist()[:4] == ["expired", "not_filled", "expired", "expired"]
    assert pd.isna(out["outcome"].iloc[4])
    assert outcome_counts(out) == {"target": 0, "stop": 0, "expired": 3, "not_filled": 1}


# ---- properties ----------------------------------------------------------------------------------


@st.composite
def ohlc_paths(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 25))
    price = 100.0
    rows = []
    for _ in range(n):
        o = price * (1 + draw(st.floats(-0.06, 0.06)))
        c = o * (1 + draw(st.floats(-0.06, 0.06)))
        hi = max(o, c) * (1 + draw(st.floats(0, 0.04)))
        lo = min(o, c) * (1 - draw(st.floats(0, 0.04)))
        rows.append((o, hi, lo, c))
        price = c
    bars = frame(rows)
    atrs = draw(st.lists(st.one_of(st.floats(0.2, 6.0), st.just(np.nan)), min_size=n, max_size=n))
    bars["atr"] = atrs
    return bars


@settings(max_examples=150, deadline=None)
@given(ohlc_paths(), st.sampled_from([LONG, SHORT]), st.integers(1, 7))
def test_label_columns_agree_with_each_other(bars: pd.DataFrame, direction: Direction, sessions: int) -> None:
    out = label(bars, direction=direction, sessions=sessions, costs=DEFAULT_SCHEDULE)
    labelled = out["label"].notna()
    traded = out["outcome"].isin(["target", "stop", "expired"])
    assert (labelled == traded).all()
    assert out.loc[labelled, "label"].isin([0.0, 1.0]).all()
    assert ((out.loc[labelled, "label"] == 1.0) == (out.loc[labelled, "net_r"] > 0)).all()
    assert ((out.loc[labelled, "weight"] > 0) & (out.loc[labelled, "weight"] <= 1)).all()
    ts = bars["ts"].to_numpy()
    assert (out.loc[labelled, "t_end"].to_numpy(np.int64) > ts[labelled.to_numpy()]).all()
    # costs are charged: net below gross on every trade
    assert (out.loc[labelled, "net_r"] < out.loc[labelled, "gross_r"]).all()
    assert (
        out.loc[~labelled, ["fill_price", "exit_price", "gross_r", "net_r", "ret", "weight"]]
        .isna()
        .all()
        .all()
    )
    # the fill is the next bar's open
    idx = np.flatnonzero(labelled.to_numpy())
    np.testing.assert_array_equal(out["fill_price"].to_numpy()[idx], bars["open"].to_numpy()[idx + 1])


@settings(max_examples=150, deadline=None)
@given(ohlc_paths(), st.sampled_from([LONG, SHORT]), st.integers(1, 7), st.data())
def test_labels_never_use_data_after_t_end_nor_bar_ts_own_range(
    bars: pd.DataFrame, direction: Direction, sessions: int, data: st.DataObject
) -> None:
    before = label(bars, direction=direction, sessions=sessions)
    labelled = np.flatnonzero(before["label"].notna().to_numpy())
    if not labelled.size:
        return
    t = int(data.draw(st.sampled_from(labelled.tolist())))
    end = int(np.searchsorted(bars["ts"].to_numpy(), before["t_end"].iloc[t]))

    changed = bars.copy()
    later = np.arange(len(bars)) > end
    noise = data.draw(st.floats(0.5, 2.0))
    for col in ("open", "high", "low", "close", "atr"):
        changed.loc[later, col] = bars.loc[later, col] * noise  # a different future, same bars exist
    after = label(changed, direction=direction, sessions=sessions)
    # The weight too: concurrency at bar j counts trades known open at j, which bars up to j decide.
    pd.testing.assert_series_equal(before.iloc[t], after.iloc[t])

    changed = bars.copy()
    changed.loc[t, ["high", "low"]] = bars.loc[t, ["high", "low"]].to_numpy() * [1.5, 0.5]
    own_range = label(changed, direction=direction, sessions=sessions)
    # Not the weight: bar t's range can end an *earlier* trade and so change the concurrency.
    cols = ["label", "outcome", "t_end", "fill_price", "exit_price", "net_r", "ret"]
    pd.testing.assert_series_equal(before[cols].iloc[t], own_range[cols].iloc[t])


@settings(max_examples=300, deadline=None)
@given(
    prices=st.lists(st.floats(1e-4, 1e6, allow_nan=False), min_size=1, max_size=50),
    atr_frac=st.floats(1e-5, 0.5),
    direction=st.sampled_from(list(Direction)),
)
def test_vectorised_levels_are_the_plans_levels_bit_for_bit(
    prices: list[float], atr_frac: float, direction: Direction
) -> None:
    from tradesignals.domain.trade_plan import PlanParams, levels, round_price
    from tradesignals.models.labels import _levels, round_prices

    close = np.asarray(prices)
    atr = close * atr_frac
    plan = PlanParams()
    entry, stop, first, final = _levels(close, atr, direction, plan)
    for i, (c, a) in enumerate(zip(close, atr, strict=True)):
        want = levels(float(c), float(a), direction, plan)
        if want is None:
            assert np.isnan(entry[i]) and np.isnan(stop[i])
        else:
            assert (entry[i], stop[i], first[i], final[i]) == (
                want.entry,
                want.stop,
                want.targets[0],
                want.targets[-1],
            )
    halves = np.asarray([0.125, 1.005, 2.675, 1234.5675, 99.9999995, 1000.0, 0.001])
    assert round_prices(halves).tolist() == [round_price(float(h)) for h in halves]
