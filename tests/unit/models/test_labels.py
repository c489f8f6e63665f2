"""Triple-barrier labels: hand-made cases for every rule, then properties against a plain reference."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradesignals.domain.market import Bar, Timeframe, to_ns
from tradesignals.domain.signals import Direction, SignalType
from tradesignals.engine.decide import DecideParams, build_signal
from tradesignals.marketdata.calendar import DAY_NS, AlwaysOpen, exchange_calendar
from tradesignals.models.labels import (
    LABEL_COLUMNS,
    BarrierParams,
    Outcome,
    outcome_counts,
    triple_barrier_labels,
)

NY = ZoneInfo("America/New_York")
MIN_NS = 60 * 10**9
T0 = 1_700_000_000 * 10**9 // DAY_NS * DAY_NS  # a UTC midnight
ATR = 2.0  # with the default 1.5 ATR barriers: stop and target 3.0 away from entry
LONG, SHORT = Direction.LONG, Direction.SHORT


def frame(
    ohlc: list[tuple[float, float, float, float]],
    *,
    symbol: str = "A",
    atr: float = ATR,
    start: int = T0,
    step: int = DAY_NS,
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


def flat(n: int, price: float = 100.0) -> list[tuple[float, float, float, float]]:
    """Bars that never move far enough to touch a 3.0-away barrier."""
    return [(price, price + 1, price - 1, price)] * n


def swing(horizon: int = 5) -> BarrierParams:
    return BarrierParams(horizon_bars=horizon)


def row(labels: pd.DataFrame, i: int) -> dict[str, Any]:
    return {str(k): v for k, v in labels.iloc[i].items()}


# ---- which barrier first -----------------------------------------------------------------------


def test_target_first_exits_at_the_target_price() -> None:
    bars = frame([(100, 100, 100, 100), (100, 101, 99, 100.5), (101, 103.5, 100.5, 103), *flat(4)])
    out = triple_barrier_labels(bars, params=swing())
    r = row(out, 0)
    assert r["label"] == 1.0 and r["outcome"] == Outcome.TARGET
    assert r["t_end"] == bars.ts[2]
    assert r["exit_price"] == 103.0
    assert r["ret"] == pytest.approx(0.03)


def test_stop_first_exits_at_the_stop_price() -> None:
    bars = frame([(100, 100, 100, 100), (100, 100.5, 96.5, 97), (97, 104, 96, 103), *flat(4)])
    r = row(triple_barrier_labels(bars, params=swing()), 0)
    assert r["label"] == 0.0 and r["outcome"] == Outcome.STOP
    assert r["t_end"] == bars.ts[1]
    assert r["exit_price"] == 97.0
    assert r["ret"] == pytest.approx(-0.03)


def test_a_bar_touching_both_barriers_counts_as_the_stop() -> None:
    bars = frame([(100, 100, 100, 100), (100, 104, 96, 101), *flat(5)])
    r = row(triple_barrier_labels(bars, params=swing()), 0)
    assert r["outcome"] == Outcome.STOP and r["label"] == 0.0
    assert r["exit_price"] == 97.0 and r["t_end"] == bars.ts[1]


def test_neither_barrier_by_the_horizon_is_a_timeout_at_the_last_close() -> None:
    bars = frame([(100, 100, 100, 100), *flat(2), (100, 101, 99, 101.5), (101.5, 104, 101, 104)])
    r = row(triple_barrier_labels(bars, params=swing(3)), 0)
    # Bar 4 would hit the target, but the 3-bar window ends at bar 3.
    assert r["outcome"] == Outcome.TIMEOUT and r["label"] == 0.0
    assert r["t_end"] == bars.ts[3]
    assert r["exit_price"] == 101.5
    assert r["ret"] == pytest.approx(0.015)


def test_a_gap_through_the_stop_fills_at_the_open() -> None:
    bars = frame([(100, 100, 100, 100), (95, 99, 94, 98), *flat(5)])
    r = row(triple_barrier_labels(bars, params=swing()), 0)
    assert r["outcome"] == Outcome.STOP
    assert r["exit_price"] == 95.0  # worse than the 97 stop: the gap's loss is real
    assert r["ret"] == pytest.approx(-0.05)


def test_a_gap_through_the_target_fills_at_the_open_even_if_the_bar_later_touches_the_stop() -> None:
    # The open is the one price known to come first, so the target was filled before the low.
    bars = frame([(100, 100, 100, 100), (104, 105, 96, 97), *flat(5)])
    r = row(triple_barrier_labels(bars, params=swing()), 0)
    assert r["outcome"] == Outcome.TARGET and r["label"] == 1.0
    assert r["exit_price"] == 104.0


def test_bar_t_own_high_and_low_are_never_used() -> None:
    # Bar 0's range spans both barriers, but it happened before the entry at its close.
    bars = frame([(100, 110, 90, 100), *flat(5)])
    r = row(triple_barrier_labels(bars, params=swing()), 0)
    assert r["outcome"] == Outcome.TIMEOUT and r["t_end"] == bars.ts[5]


def test_the_barriers_are_the_engines_stop_and_first_target() -> None:
    assert BarrierParams() == BarrierParams.from_decide(DecideParams())
    decide = DecideParams(stop_atr=2.0, target_r=(1.5, 3.0))
    assert BarrierParams.from_decide(decide, target_index=1).target_atr == 6.0

    entry, atr = 100.0, 2.0
    sig = build_signal(
        Bar("A", Timeframe.D1, T0, entry, entry, entry, entry, 1.0), LONG, 0.6, atr, model_version="m"
    )
    assert sig is not None
    hit_stop = frame([(entry,) * 4, (99, 99.5, 90, 91), *flat(5)], atr=atr)
    hit_target = frame([(entry,) * 4, (101, 110, 100.5, 109), *flat(5)], atr=atr)
    assert row(triple_barrier_labels(hit_stop), 0)["exit_price"] == sig.stop
    assert row(triple_barrier_labels(hit_target), 0)["exit_price"] == sig.targets[0]


# ---- short mirrors long ------------------------------------------------------------------------


def mirror(bars: pd.DataFrame, around: float) -> pd.DataFrame:
    """Prices reflected around ``around``: a rise becomes a fall, the high becomes the low."""
    out = bars.copy()
    out["open"], out["close"] = around - bars["open"], around - bars["close"]
    out["high"], out["low"] = around - bars["low"], around - bars["high"]
    return out


def test_short_is_the_long_of_the_mirrored_prices() -> None:
    bars = frame(
        [(100, 100, 100, 100), (100, 101, 99, 100), (100, 100.5, 96.5, 97), (97, 98, 92, 93), *flat(6, 93)]
    )
    long_ = triple_barrier_labels(bars, direction=LONG, params=swing(3))
    short = triple_barrier_labels(mirror(bars, 200.0), direction=SHORT, params=swing(3))
    assert long_["outcome"].tolist() == short["outcome"].tolist()
    pd.testing.assert_series_equal(long_["label"], short["label"])
    pd.testing.assert_series_equal(long_["t_end"], short["t_end"])
    pd.testing.assert_series_equal(long_["weight"], short["weight"])
    np.testing.assert_allclose(200.0 - long_["exit_price"], short["exit_price"])


def test_short_stop_is_above_and_target_below() -> None:
    bars = frame([(100, 100, 100, 100), (100, 102, 96.5, 97), *flat(5)])
    r = row(triple_barrier_labels(bars, direction=SHORT), 0)
    assert r["outcome"] == Outcome.TARGET and r["exit_price"] == 97.0
    assert r["ret"] == pytest.approx(0.03)  # a gain for the short
    bars = frame([(100, 100, 100, 100), (104, 105, 99, 104), *flat(5)])
    r = row(triple_barrier_labels(bars, direction=SHORT), 0)
    assert r["outcome"] == Outcome.STOP and r["exit_price"] == 104.0  # gapped through 103
    assert r["ret"] == pytest.approx(-0.04)


# ---- what gets no label ------------------------------------------------------------------------


def test_windows_past_the_data_end_are_censored_unless_a_barrier_was_hit() -> None:
    bars = frame([*flat(4), (100, 104, 99.5, 103.5), (103.5, 104, 103, 103.5)])
    out = triple_barrier_labels(bars, params=swing(3))
    # Rows 0–2 have full windows; row 3's window (4..6) runs past bar 5 but bar 4 hits its target;
    # row 4's window runs past the data and nothing happened in bar 5: unknown, not a timeout.
    assert out["outcome"].tolist()[:4] == ["timeout", "target", "target", "target"]
    assert out["label"].isna().tolist() == [False, False, False, False, True, True]
    assert out["t_end"].isna().tolist() == out["label"].isna().tolist()


def test_nan_or_zero_atr_and_unseen_bars_give_no_label_never_an_exception() -> None:
    bars = frame(flat(8))
    bars.loc[0, "atr"] = np.nan
    bars.loc[1, "atr"] = 0.0
    bars.loc[5, ["open", "high", "low"]] = np.nan  # a vendor hole inside rows 2–4's windows
    out = triple_barrier_labels(bars, params=swing(3))
    assert out["label"].isna().tolist() == [True, True, True, True, True, True, True, True]
    # A hole after the label resolved does not matter.
    bars = frame([(100, 100, 100, 100), (100, 104, 99, 103.5), *flat(3)])
    bars.loc[2, ["open", "high", "low", "close"]] = np.nan
    assert row(triple_barrier_labels(bars, params=swing(3)), 0)["outcome"] == Outcome.TARGET


def test_a_short_whose_target_would_be_below_zero_is_not_a_signal() -> None:
    bars = frame([(1.0, 1.0, 1.0, 1.0), (1, 1.1, 0.9, 1.0), *flat(5, 1.0)], atr=1.0)
    assert np.isnan(row(triple_barrier_labels(bars, direction=SHORT), 0)["label"])
    assert not np.isnan(row(triple_barrier_labels(bars.assign(atr=0.1), direction=SHORT), 0)["label"])


def test_bad_input_is_refused_with_a_reason() -> None:
    bars = frame(flat(3))
    with pytest.raises(ValueError, match="two rows for symbol 'A'"):
        triple_barrier_labels(pd.concat([bars, bars.iloc[[1]]]))
    with pytest.raises(ValueError, match="row 1 has no symbol"):
        triple_barrier_labels(bars.assign(symbol=pd.Series(["A", np.nan, "A"])))
    with pytest.raises(ValueError, match="lack column 'high'"):
        triple_barrier_labels(bars.drop(columns="high"))
    with pytest.raises(ValueError, match="ATR column 'atr_14'"):
        triple_barrier_labels(bars, "atr_14")
    with pytest.raises(ValueError, match="one value per bar"):
        triple_barrier_labels(bars, np.ones(2))
    with pytest.raises(ValueError, match="horizon_bars must be 1–7"):
        BarrierParams(horizon_bars=8)
    with pytest.raises(ValueError, match="no barrier definition for event"):
        BarrierParams(signal_type=SignalType.EVENT)
    with pytest.raises(ValueError, match="stop_atr must be a positive"):
        BarrierParams(stop_atr=0.0)


def test_empty_input_gives_an_empty_frame() -> None:
    out = triple_barrier_labels(frame(flat(1)).iloc[:0])
    assert list(out.columns) == list(LABEL_COLUMNS) and out.empty


# ---- day labels end with the session -----------------------------------------------------------


def ny(d: int, hh: int, mm: int) -> int:
    return to_ns(datetime(2024, 1, d, hh, mm, tzinfo=NY))


def minute_bars(times: list[int], ohlc: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    bars = frame(ohlc, symbol="AAPL")
    bars["ts"] = np.array(times, dtype=np.int64)
    return bars


DAY = BarrierParams(signal_type=SignalType.DAY)


def test_a_day_label_ends_at_the_session_close() -> None:
    # 2024-01-02 15:56–15:59 New York, then the next session; the 09:30 bar would hit the target.
    times = [ny(2, 15, m) for m in (56, 57, 58, 59)] + [ny(3, 9, 30), ny(3, 9, 31)]
    bars = minute_bars(times, [*flat(4), (104, 105, 103, 104), (104, 104, 104, 104)])
    out = triple_barrier_labels(bars, params=DAY, calendar=exchange_calendar("XNYS"))
    assert out["outcome"].tolist()[:3] == ["timeout"] * 3
    assert (out["t_end"].iloc[:3] == ny(2, 15, 59)).all()
    # The session's last bar has nothing left to observe; the last session in the data is censored
    # unless a barrier is hit (09:31 cannot know whether 09:32… would have reached one).
    assert out["label"].isna().tolist() == [False, False, False, True, True, True]


def test_a_closing_print_bar_stamped_at_the_close_is_the_sessions_last_bar() -> None:
    times = [ny(2, 15, 58), ny(2, 15, 59), ny(2, 16, 0), ny(3, 9, 30)]
    bars = minute_bars(times, [*flat(2), (100, 100, 100, 101), (100, 100, 100, 100)])
    out = triple_barrier_labels(bars, params=DAY, calendar=exchange_calendar("XNYS"))
    r = row(out, 0)
    assert r["outcome"] == Outcome.TIMEOUT and r["t_end"] == ny(2, 16, 0) and r["exit_price"] == 101.0


def test_day_labels_hit_barriers_inside_the_session_and_default_to_the_symbols_calendar() -> None:
    times = [ny(2, 10, m) for m in range(5)] + [ny(3, 10, 0)]
    bars = minute_bars(times, [*flat(2), (100, 100.5, 96, 96.5), *flat(3, 96.5)])
    out = triple_barrier_labels(bars, params=DAY)  # AAPL → NYSE via calendar_for
    assert out["outcome"].tolist()[:2] == ["stop", "stop"]
    assert (out["t_end"].iloc[:2] == ny(2, 10, 2)).all()


def test_crypto_day_labels_end_at_utc_midnight() -> None:
    start = T0 + DAY_NS - 3 * 3_600 * 10**9  # 21:00 UTC, hourly bars across midnight
    bars = frame(flat(6), symbol="BTCUSDT", start=start, step=3_600 * 10**9)
    out = triple_barrier_labels(bars, params=DAY, calendar=AlwaysOpen())
    assert out["t_end"].iloc[:2].tolist() == [T0 + DAY_NS - 3_600 * 10**9] * 2
    assert out["label"].isna().tolist() == [False, False, True, True, True, True]


def test_bars_outside_sessions_get_no_day_label() -> None:
    times = [ny(2, 7, 0), ny(2, 7, 1), ny(2, 10, 0), ny(2, 10, 1), ny(3, 10, 0)]
    bars = minute_bars(times, flat(5))
    out = triple_barrier_labels(bars, params=DAY, calendar=exchange_calendar("XNYS"))
    assert out["label"].isna().tolist() == [True, True, False, True, True]


# ---- uniqueness weights ------------------------------------------------------------------------


def test_uniqueness_weights_by_hand() -> None:
    # Horizon 2, flat prices, 6 bars: rows 0–3 time out spanning bars {1,2}, {2,3}, {3,4}, {4,5}.
    # Row 4 is censored (its window runs past bar 5) but its trade is known open at bar 5, so it
    # counts there; row 5 opens nothing. Concurrency per bar: 1:1, 2:2, 3:2, 4:2, 5:2.
    bars = frame(flat(6))
    out = triple_barrier_labels(bars, params=swing(2))
    assert out["weight"].iloc[:4].tolist() == [(1 + 1 / 2) / 2, 0.5, 0.5, 0.5]
    assert out["weight"].iloc[4:].isna().all()


def test_uniqueness_with_an_early_exit_and_a_lone_label() -> None:
    # Row 0 stops at bar 1 ({1}); rows 1–3 span {2,3}, {3,4}, {4,5}; censored row 4 is open at {5}.
    # Concurrency: 1:1, 2:1, 3:2, 4:2, 5:2 → 1, (1 + 1/2)/2, (1/2 + 1/2)/2, (1/2 + 1/2)/2.
    bars = frame([(100, 100, 100, 100), (100, 100, 96, 97), (97, 98, 96, 97), *flat(3, 97)])
    out = triple_barrier_labels(bars, params=swing(2))
    assert out["outcome"].tolist()[:4] == ["stop", "timeout", "timeout", "timeout"]
    assert out["weight"].iloc[:4].tolist() == [1.0, 0.75, 0.5, 0.5]


def test_symbols_do_not_share_concurrency_and_row_order_does_not_matter() -> None:
    a = frame(flat(6), symbol="A")
    b = frame([(50, 50, 50, 50), (50, 51, 46, 47), *flat(4, 47)], symbol="B")
    alone = pd.concat([triple_barrier_labels(a, params=swing(2)), triple_barrier_labels(b, params=swing(2))])
    both = pd.concat([a, b], ignore_index=True)
    shuffled = both.sample(frac=1.0, random_state=7)
    together = triple_barrier_labels(shuffled, params=swing(2)).sort_index()
    pd.testing.assert_frame_equal(together.reset_index(drop=True), alone.reset_index(drop=True))


def test_outcome_counts_lists_every_outcome() -> None:
    out = triple_barrier_labels(frame(flat(4)), params=swing(1))
    assert outcome_counts(out) == {"target": 0, "stop": 0, "timeout": 3}


# ---- properties --------------------------------------------------------------------------------


def reference(
    bars: pd.DataFrame, direction: Direction, horizon: int, k: float, m: float
) -> list[tuple[str | None, int | None, float]]:
    """The rules written out one row at a time, for one symbol sorted by time."""
    s = direction.sign
    o, h, lo, c, atr = (bars[x].to_numpy() for x in ("open", "high", "low", "close", "atr"))
    ts = bars["ts"].to_numpy()
    out: list[tuple[str | None, int | None, float]] = []
    n = len(bars)
    for t in range(n):
        if not (np.isfinite(atr[t]) and atr[t] > 0):
            out.append((None, None, np.nan))
            continue
        target, stop = c[t] + s * k * atr[t], c[t] - s * m * atr[t]
        if target <= 0 or stop <= 0:
            out.append((None, None, np.nan))
            continue
        got: tuple[str | None, int | None, float] = (None, None, np.nan)
        for j in range(t + 1, min(t + horizon, n - 1) + 1):
            up, down = (h[j], lo[j]) if s > 0 else (lo[j], h[j])
            if s * o[j] <= s * stop:
                got = ("stop", int(ts[j]), o[j])
            elif s * o[j] >= s * target:
                got = ("target", int(ts[j]), o[j])
            elif s * down <= s * stop:
                got = ("stop", int(ts[j]), stop)
            elif s * up >= s * target:
                got = ("target", int(ts[j]), target)
            else:
                continue
            break
        else:
            if t + horizon <= n - 1:
                got = ("timeout", int(ts[t + horizon]), c[t + horizon])
        out.append(got)
    return out


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


@settings(max_examples=200, deadline=None)
@given(
    ohlc_paths(),
    st.sampled_from([LONG, SHORT]),
    st.integers(1, 7),
    st.floats(0.5, 3.0),
    st.floats(0.5, 3.0),
)
def test_matches_the_row_by_row_reference(
    bars: pd.DataFrame, direction: Direction, horizon: int, k: float, m: float
) -> None:
    params = BarrierParams(stop_atr=m, target_atr=k, horizon_bars=horizon)
    out = triple_barrier_labels(bars, direction=direction, params=params)
    want = reference(bars, direction, horizon, k, m)
    assert [None if pd.isna(x) else x for x in out["outcome"]] == [w[0] for w in want]
    assert [None if pd.isna(x) else int(x) for x in out["t_end"]] == [w[1] for w in want]
    np.testing.assert_allclose(out["exit_price"].to_numpy(), [w[2] for w in want])
    labelled = out["label"].notna()
    assert (out.loc[labelled, "t_end"].to_numpy(np.int64) > bars.loc[labelled, "ts"].to_numpy()).all()
    assert ((out.loc[labelled, "weight"] > 0) & (out.loc[labelled, "weight"] <= 1)).all()
    assert out.loc[~labelled, ["t_end", "exit_price", "ret", "weight"]].isna().all().all()


@settings(max_examples=200, deadline=None)
@given(ohlc_paths(), st.sampled_from([LONG, SHORT]), st.integers(1, 7), st.data())
def test_labels_never_use_data_after_t_end_nor_bar_ts_own_range(
    bars: pd.DataFrame, direction: Direction, horizon: int, data: st.DataObject
) -> None:
    params = swing(horizon)
    before = triple_barrier_labels(bars, direction=direction, params=params)
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
    after = triple_barrier_labels(changed, direction=direction, params=params)
    # The weight too: concurrency at bar j counts trades known open at j, which bars up to j decide.
    pd.testing.assert_series_equal(before.iloc[t], after.iloc[t])

    changed.loc[t, ["high", "low"]] = bars.loc[t, ["high", "low"]].to_numpy() * [1.5, 0.5]
    own_range = triple_barrier_labels(changed, direction=direction, params=params)
    # Not the weight: bar t's range can end an *earlier* trade and so change the concurrency.
    label_cols = ["label", "outcome", "t_end", "exit_price", "ret"]
    pd.testing.assert_series_equal(before[label_cols].iloc[t], own_range[label_cols].iloc[t])
