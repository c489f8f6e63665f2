"""Streaming features: warm-up, bad input, gaps, sessions and the all-symbols panel."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest

from tradesignals.domain.market import NS_PER_SECOND, Bar, Timeframe
from tradesignals.features import FEATURE_NAMES, N_FEATURES, WARMUP_BARS, FeatureEngine, FeaturePanel
from tradesignals.features.incremental import FEATURE_INDEX, BarClock, FeatureVector
from tradesignals.marketdata.calendar import DAY_NS, AlwaysOpen, exchange_calendar, utc_date_ns

HOUR = 3600 * NS_PER_SECOND
MINUTE = 60 * NS_PER_SECOND
T0 = utc_date_ns(2024, 1, 1)  # a Monday, 00:00 UTC
CONTRACT = (
    "sma_20",
    "ema_20",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "atr_14",
    "adx_14",
    "obv",
    "ret_1",
    "ret_5",
    "ret_20",
)


def walk(n: int, seed: int = 0, start: float = 100.0) -> np.ndarray:
    """(n, 5) OHLCV rows of a consistent random walk (high/low bracket open/close, volume > 0)."""
    rng = np.random.default_rng(seed)
    c = start * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    o = np.r_[start, c[:-1]] * np.exp(rng.normal(0.0, 0.002, n))
    h = np.maximum(o, c) * (1 + rng.uniform(0.0, 0.01, n))
    low = np.minimum(o, c) * (1 - rng.uniform(0.0, 0.01, n))
    v = rng.uniform(1e3, 1e4, n)
    return np.column_stack([o, h, low, c, v])


def run(engine: FeatureEngine, symbol: str, ts: np.ndarray, rows: np.ndarray) -> list[FeatureVector]:
    return [engine.update_values(symbol, int(t), *map(float, r)) for t, r in zip(ts, rows, strict=True)]


def matrix(vecs: list[FeatureVector]) -> np.ndarray:
    return np.array([v.values for v in vecs])


def crypto_engine(tf: Timeframe = Timeframe.H1, **kw: bool) -> FeatureEngine:
    return FeatureEngine(tf, calendar=AlwaysOpen(), **kw)


def hourly(n: int, start: int = T0) -> np.ndarray:
    return start + np.arange(n, dtype=np.int64) * HOUR


def same(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, equal_nan=True)


# -- the vector --------------------------------------------------------------------------------


def test_feature_names_start_with_the_cli_contract_and_are_unique() -> None:
    assert FEATURE_NAMES[: len(CONTRACT)] == CONTRACT
    assert len(set(FEATURE_NAMES)) == N_FEATURES == len(FEATURE_NAMES)
    vec = crypto_engine().update_values("BTCUSDT", T0, 100, 101, 99, 100.5, 10)
    assert vec.values.shape == (N_FEATURES,) and vec.values.dtype == np.float64
    assert vec.names == FEATURE_NAMES


# First bar index (0-based, since a clean start at 00:00 UTC on hourly bars) with a value. The TA-Lib
# ones are TA-Lib's lookbacks; the session ones need the next UTC day (bar 24).
FIRST_VALUE = {
    "sma_20": 19,
    "ema_20": 19,
    "rsi_14": 14,
    "macd": 33,
    "macd_signal": 33,
    "macd_hist": 33,
    "bb_upper": 19,
    "atr_14": 14,
    "adx_14": 27,
    "obv": 0,
    "ret_1": 1,
    "ret_5": 5,
    "ret_20": 20,
    "bb_pctb": 19,
    "stoch_k": 17,
    "stoch_d": 17,
    "rvol_20": 20,
    "volume_z_20": 19,
    "vwap": 0,
    "vp_poc": 19,
    "vp_val": 19,
    "gap_pct": 24,
    "cdl_engulfing": 2,
    "cdl_doji": 10,
    "cdl_hammer": 11,
    "prev_close_dist": 24,
    "prev_low_dist": 24,
}


@pytest.mark.parametrize(("name", "first"), FIRST_VALUE.items())
def test_each_feature_is_nan_until_its_own_history(name: str, first: int) -> None:
    vecs = run(crypto_engine(), "BTCUSDT", hourly(60), walk(60))
    col = matrix(vecs)[:, FEATURE_INDEX[name]]
    assert np.isnan(col[:first]).all()
    assert np.isfinite(col[first:]).all()


def test_warm_once_every_feature_has_its_history() -> None:
    vecs = run(crypto_engine(), "BTCUSDT", hourly(80), walk(80))
    warm = [v.warm for v in vecs]
    assert WARMUP_BARS == 34  # MACD(12, 26, 9): TA-Lib lookback 33
    assert warm == [False] * 33 + [True] * 47
    assert all(np.isfinite(v.values).all() for v in vecs[33:])


def test_daily_bars_are_each_a_whole_session() -> None:
    ts = T0 + np.arange(40, dtype=np.int64) * DAY_NS
    rows = walk(40)
    vecs = run(crypto_engine(Timeframe.D1), "BTCUSDT", ts, rows)
    m = matrix(vecs)
    i = FEATURE_INDEX
    tp = rows[:, 1:4].sum(axis=1) / 3.0
    same(m[:, i["vwap"]], tp * rows[:, 4] / rows[:, 4])  # one bar per session
    same(m[1:, i["gap_pct"]], rows[1:, 0] / rows[:-1, 3] - 1.0)
    same(m[1:, i["prev_high_dist"]], rows[1:, 3] / rows[:-1, 1] - 1.0)
    assert [v.warm for v in vecs].index(True) == 33


# -- bad input -------------------------------------------------------------------------------------


BAD_ROWS = [
    (math.nan, 101.0, 99.0, 100.0, 10.0),
    (100.0, math.inf, 99.0, 100.0, 10.0),
    (100.0, 101.0, -99.0, 100.0, 10.0),
    (100.0, 101.0, 99.0, 0.0, 10.0),
    (100.0, 101.0, 99.0, 1e13, 10.0),  # above PRICE_MAX
    (1e-13, 101.0, 99.0, 100.0, 10.0),  # below PRICE_MIN
    (100.0, 101.0, 99.0, 100.0, -1.0),
    (100.0, 101.0, 99.0, 100.0, math.nan),
    (100.0, 101.0, 99.0, 100.0, math.inf),
]


@pytest.mark.parametrize("bad", BAD_ROWS)
def test_a_bad_bar_gives_nan_and_a_fresh_start(bad: tuple[float, ...]) -> None:
    rows = walk(120)
    ts = hourly(120)
    eng = crypto_engine()
    before = run(eng, "BTCUSDT", ts[:50], rows[:50])
    assert before[-1].warm
    vec = eng.update_values("BTCUSDT", int(ts[50]), *bad)
    assert vec.status == "bad" and not vec.warm and np.isnan(vec.values).all()
    after = run(eng, "BTCUSDT", ts[51:], rows[51:])
    # Identical to a fresh engine that never saw the bars before the bad one.
    fresh = run(crypto_engine(), "BTCUSDT", ts[51:], rows[51:])
    same(matrix(after), matrix(fresh))
    assert [v.warm for v in after] == [v.warm for v in fresh]
    assert not any(v.warm for v in after[: WARMUP_BARS - 1])
    assert eng.counts.bad == 1


def test_zero_volume_bar_is_skipped_without_a_restart() -> None:
    rows = walk(100)
    ts = hourly(100)
    rows[60, 4] = 0.0
    eng = crypto_engine()
    vecs = run(eng, "BTCUSDT", ts, rows)
    assert vecs[60].status == "empty" and np.isnan(vecs[60].values).all() and not vecs[60].warm
    assert all(v.warm for v in vecs[61:])  # no restart: warm on the very next bar
    # As if the placeholder had never arrived (gap detection off for the reference, which misses it).
    keep = np.arange(100) != 60
    ref = run(crypto_engine(detect_gaps=False), "BTCUSDT", ts[keep], rows[keep])
    same(matrix(vecs)[keep], matrix(ref))
    assert eng.counts.empty == 1 and eng.counts.gaps == 0


def test_a_missing_bar_restarts_the_symbol_unless_gaps_are_ignored() -> None:
    rows = walk(100)
    ts = hourly(100)
    keep = np.arange(100) != 40
    eng = crypto_engine()
    vecs = run(eng, "BTCUSDT", ts[keep], rows[keep])
    assert eng.counts.gaps == 1
    after = vecs[40:]  # from the bar after the hole
    fresh = run(crypto_engine(), "BTCUSDT", ts[41:], rows[41:])
    same(matrix(after), matrix(fresh))
    assert not any(v.warm for v in after[: WARMUP_BARS - 1])

    lenient = crypto_engine(detect_gaps=False)
    kept = run(lenient, "BTCUSDT", ts[keep], rows[keep])
    assert lenient.counts.gaps == 0 and all(v.warm for v in kept[40:])


def test_duplicate_and_late_bars_are_ignored() -> None:
    rows = walk(60)
    ts = hourly(60)
    eng = crypto_engine()
    first = run(eng, "BTCUSDT", ts[:40], rows[:40])
    dup = eng.update_values("BTCUSDT", int(ts[39]), *map(float, rows[39]))
    late = eng.update_values("BTCUSDT", int(ts[10]), 1.0, 2.0, 0.5, 1.5, 5.0)
    assert dup.status == late.status == "ignored" and np.isnan(late.values).all()
    rest = run(eng, "BTCUSDT", ts[40:], rows[40:])
    ref = run(crypto_engine(), "BTCUSDT", ts, rows)
    same(matrix(first + rest), matrix(ref))
    assert eng.counts.ignored == 2


def test_inconsistent_but_finite_bars_are_used() -> None:
    """High below low (a vendor quirk the S&P file has) is the validator's business, not a reset."""
    eng = crypto_engine()
    rows = walk(40)
    rows[30, 1], rows[30, 2] = rows[30, 2], rows[30, 1]
    vecs = run(eng, "BTCUSDT", hourly(40), rows)
    assert vecs[30].status == "ok" and eng.counts.bad == 0
    assert vecs[-1].warm


# -- sessions --------------------------------------------------------------------------------------


def test_session_vwap_restarts_every_utc_day_for_crypto() -> None:
    n = 72
    rows = walk(n, seed=3)
    vecs = run(crypto_engine(), "BTCUSDT", hourly(n), rows)
    vwap = matrix(vecs)[:, FEATURE_INDEX["vwap"]]
    tp = rows[:, 1:4].sum(axis=1) / 3.0
    for day in range(3):
        s = slice(24 * day, 24 * day + 24)
        expected = np.cumsum(tp[s] * rows[s, 4]) / np.cumsum(rows[s, 4])
        np.testing.assert_allclose(vwap[s], expected, rtol=1e-13)
    assert vwap[24] == pytest.approx(tp[24])


def test_opening_gap_and_previous_day_context_for_intraday_bars() -> None:
    n = 72
    rows = walk(n, seed=4)
    m = matrix(run(crypto_engine(), "BTCUSDT", hourly(n), rows))
    i = FEATURE_INDEX
    for day in (1, 2):
        s = slice(24 * day, 24 * day + 24)
        prev = slice(24 * (day - 1), 24 * day)
        last_close = rows[24 * day - 1, 3]
        c = rows[s, 3]
        assert np.all(m[s, i["gap_pct"]] == rows[24 * day, 0] / last_close - 1.0)  # carried all day
        same(m[s, i["prev_close_dist"]], c / last_close - 1.0)
        same(m[s, i["prev_high_dist"]], c / rows[prev, 1].max() - 1.0)
        same(m[s, i["prev_low_dist"]], c / rows[prev, 2].min() - 1.0)


def test_a_session_joined_midway_is_never_used_as_context() -> None:
    ts = hourly(90, start=T0 + 5 * HOUR)  # first bar at 05:00: day 1 is seen in part
    m = matrix(run(crypto_engine(), "BTCUSDT", ts, walk(90, seed=5)))
    i = FEATURE_INDEX
    day2, day3 = 19, 43  # first bars of the next two UTC days
    assert np.isnan(m[:day2, i["vwap"]]).all()  # a partial session's VWAP would mislead
    assert np.isfinite(m[day2:, i["vwap"]]).all()
    assert np.isfinite(m[day2:, i["gap_pct"]]).all()
    assert np.isnan(m[day2:day3, i["prev_close_dist"]]).all()  # its previous day was partial
    assert np.isfinite(m[day3:, i["prev_close_dist"]]).all()


def test_exchange_daily_bars_skip_weekends_and_holidays_but_not_sessions() -> None:
    cal = exchange_calendar("XNYS")
    sessions = cal.sessions_between(utc_date_ns(2024, 5, 1), utc_date_ns(2024, 9, 1))
    labels = np.array([s.label for s in sessions], dtype=np.int64)  # Memorial Day, Juneteenth, July 4
    rows = walk(len(labels))
    eng = FeatureEngine(Timeframe.D1, calendar=cal)
    vecs = run(eng, "AAPL", labels, rows)
    assert eng.counts.gaps == 0 and vecs[-1].warm

    eng2 = FeatureEngine(Timeframe.D1, calendar=cal)
    keep = np.arange(len(labels)) != 50
    run(eng2, "AAPL", labels[keep], rows[keep])
    assert eng2.counts.gaps == 1


def minute_bars(days: list[date], *, closing_print: bool) -> np.ndarray:
    """NYSE regular-hours minute bar times for ``days``; with the 16:00 closing-print bar or not."""
    cal = exchange_calendar("XNYS")
    out = []
    for d in days:
        label = utc_date_ns(d.year, d.month, d.day)
        s = cal.sessions_between(label, label + DAY_NS)[0]
        stop = s.close + (MINUTE if closing_print else 0)
        out.append(np.arange(s.open, stop, MINUTE, dtype=np.int64))
    return np.concatenate(out)


@pytest.mark.parametrize("closing_print", [False, True])
def test_exchange_minute_bars_cross_the_night_and_weekend_without_a_gap(closing_print: bool) -> None:
    cal = exchange_calendar("XNYS")
    days = [date(2024, 3, 7), date(2024, 3, 8), date(2024, 3, 11)]  # Thu, Fri, Mon (after the DST switch)
    ts = minute_bars(days, closing_print=closing_print)
    eng = FeatureEngine(Timeframe.M1, calendar=cal)
    vecs = run(eng, "SPY", ts, walk(len(ts), seed=6))
    per_day = len(ts) // 3
    assert eng.counts.gaps == 0
    assert not any(v.warm for v in vecs[:per_day])  # day 1: no previous session yet
    assert all(v.warm for v in vecs[per_day:])
    vwap = matrix(vecs)[:, FEATURE_INDEX["vwap"]]
    tp = walk(len(ts), seed=6)[:, 1:4].sum(axis=1) / 3.0
    assert vwap[per_day] == pytest.approx(tp[per_day])  # reset at Friday's 09:30 New York


def test_exchange_minute_bars_with_a_missing_minute_restart() -> None:
    cal = exchange_calendar("XNYS")
    ts = minute_bars([date(2024, 3, 7), date(2024, 3, 8)], closing_print=False)
    keep = np.arange(len(ts)) != 500
    eng = FeatureEngine(Timeframe.M1, calendar=cal)
    run(eng, "SPY", ts[keep], walk(len(ts))[keep])
    assert eng.counts.gaps == 1


def test_bar_clock_placements() -> None:
    ao = BarClock(Timeframe.H1, AlwaysOpen())
    t = T0 + 23 * HOUR
    assert ao.place(t) == (T0, False, t, t + HOUR)
    assert ao.place(T0 + DAY_NS)[1] is True

    xnys = exchange_calendar("XNYS")
    daily = BarClock(Timeframe.D1, xnys)
    wed = utc_date_ns(2024, 7, 3)  # half day before Independence Day
    assert daily.place(wed) == (wed, True, wed, utc_date_ns(2024, 7, 5))
    fri = utc_date_ns(2024, 7, 12)
    assert daily.place(fri + 20 * HOUR) == (fri, True, fri, utc_date_ns(2024, 7, 15))  # stamped at the close

    minute = BarClock(Timeframe.M1, xnys)
    s = xnys.sessions_between(fri, fri + DAY_NS)[0]
    mon = xnys.sessions_between(utc_date_ns(2024, 7, 15), utc_date_ns(2024, 7, 16))[0]
    assert minute.place(s.open) == (fri, True, s.open, s.open + MINUTE)
    assert minute.place(s.open + MINUTE)[1] is False
    assert minute.place(s.close - MINUTE)[3] == mon.open  # the last regular bar: Monday is next
    assert minute.place(s.close) == (fri, False, s.close, mon.open)  # the closing-print bar
    pre = minute.place(s.open - HOUR)  # outside the session: placed as on a 24/7 clock
    assert pre == (fri, False, s.open - HOUR, s.open - HOUR + MINUTE)


def test_a_bar_on_a_day_the_calendar_calls_closed_is_extra_not_a_gap() -> None:
    xnys = exchange_calendar("XNYS")
    labels = [s.label for s in xnys.sessions_between(utc_date_ns(2024, 6, 3), utc_date_ns(2024, 8, 1))]
    ts = np.array(sorted([*labels, utc_date_ns(2024, 6, 19)]), dtype=np.int64)  # Juneteenth: closed
    eng = FeatureEngine(Timeframe.D1, calendar=xnys)
    vecs = run(eng, "AAPL", ts, walk(len(ts)))
    assert eng.counts.gaps == 0 and vecs[-1].warm


# -- the engine's surface --------------------------------------------------------------------------


def test_engine_takes_bars_and_refuses_another_timeframe() -> None:
    eng = crypto_engine()
    o, h, low, c, v = walk(1)[0]
    vec = eng.update(Bar("BTCUSDT", Timeframe.H1, T0, o, h, low, c, v))
    assert vec.symbol == "BTCUSDT" and vec.ts == T0 and vec.status == "ok"
    with pytest.raises(ValueError, match="1d bar fed to a 1h"):
        eng.update(Bar("BTCUSDT", Timeframe.D1, T0, o, h, low, c, v))


def test_vector_helpers_latest_and_reset() -> None:
    eng = crypto_engine()
    vecs = run(eng, "ETHUSDT", hourly(40), walk(40))
    last = vecs[-1]
    assert eng.latest("ETHUSDT") is last and eng.latest("XRPUSDT") is None
    assert last["obv"] == last.values[FEATURE_INDEX["obv"]]
    assert list(last.as_dict()) == list(FEATURE_NAMES)
    assert eng.symbols == ["ETHUSDT"]
    eng.reset("ETHUSDT")
    assert eng.symbols == [] and eng.latest("ETHUSDT") is None
    again = eng.update_values("ETHUSDT", int(hourly(41)[-1]), 100.0, 101.0, 99.0, 100.0, 5.0)
    assert not again.warm and np.isnan(again["sma_20"])


# -- the all-symbols panel ---------------------------------------------------------------------------


def panel_vs_engines(
    panel: FeaturePanel, symbols: list[str], steps: int, seed: int, per_slot_ts: bool
) -> None:
    rng = np.random.default_rng(seed)
    data = {s: walk(steps, seed=seed + k) for k, s in enumerate(symbols)}
    for s in symbols:
        d = data[s]
        d[rng.random(steps) < 0.02, 4] = 0.0
        d[rng.random(steps) < 0.01, 3] = math.nan
    present = rng.random((steps, len(symbols))) > 0.03
    engines = FeatureEngine(Timeframe.H1, calendar=AlwaysOpen())
    slots = panel.slots(symbols)
    for t in range(steps):
        ts = T0 + t * HOUR
        idx = np.flatnonzero(present[t])
        rows = np.array([data[symbols[j]][t] for j in idx]).reshape(-1, 5)
        step = panel.update(slots[idx], np.full(len(idx), ts) if per_slot_ts else ts, *rows.T)
        for k, j in enumerate(idx):
            ref = engines.update_values(symbols[j], ts, *map(float, rows[k]))
            np.testing.assert_allclose(step.values[k], ref.values, rtol=1e-12, atol=1e-12, equal_nan=True)
            assert bool(step.warm[k]) == ref.warm
    assert panel.counts.bad == engines.counts.bad and panel.counts.gaps == engines.counts.gaps
    assert panel.counts.empty == engines.counts.empty > 0


@pytest.mark.parametrize("per_slot_ts", [False, True])
def test_panel_equals_the_per_symbol_engine(per_slot_ts: bool) -> None:
    symbols = [f"C{i}USDT" for i in range(24)]  # more than the initial 16 slots: grows
    panel = FeaturePanel(Timeframe.H1, calendar=AlwaysOpen())
    panel_vs_engines(panel, symbols, steps=120, seed=11, per_slot_ts=per_slot_ts)


def test_panel_with_mixed_calendars_gives_each_symbol_its_own() -> None:
    ts = minute_bars([date(2024, 3, 7), date(2024, 3, 8)], closing_print=False)
    panel = FeaturePanel(Timeframe.M1)  # calendar_for: BTCUSDT 24/7, SPY on the NYSE
    slots = panel.slots(["BTCUSDT", "SPY"])
    eng = FeatureEngine(Timeframe.M1)
    rows = {s: walk(len(ts), seed=k) for k, s in enumerate(["BTCUSDT", "SPY"])}
    for t in range(len(ts)):
        step = panel.update(slots, int(ts[t]), *np.array([rows["BTCUSDT"][t], rows["SPY"][t]]).T)
        for k, s in enumerate(["BTCUSDT", "SPY"]):
            ref = eng.update_values(s, int(ts[t]), *map(float, rows[s][t]))
            np.testing.assert_allclose(step.values[k], ref.values, rtol=1e-12, equal_nan=True)
    # The crypto symbol sees the overnight hole as a gap (its clock is 24/7); the stock does not.
    assert panel.counts.gaps == eng.counts.gaps == 1


def test_panel_refuses_unknown_and_repeated_slots_and_reports_status() -> None:
    panel = FeaturePanel(Timeframe.H1, calendar=AlwaysOpen(), symbols=["A", "B"])
    with pytest.raises(ValueError, match="unknown slot"):
        panel.update([2], T0, [1.0], [1.0], [1.0], [1.0], [1.0])
    with pytest.raises(ValueError, match="twice"):
        panel.update([0, 0], T0, [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0])
    step = panel.update([0, 1], T0, [100.0, math.nan], [101.0, 1.0], [99.0, 1.0], [100.0, 1.0], [0.0, 1.0])
    assert step.status.tolist() == [3, 2]  # empty, bad
    again = panel.update([1], T0, [100.0], [101.0], [99.0], [100.0], [1.0])
    assert again.status.tolist() == [1]  # same time again: ignored
    assert panel.update([], T0, [], [], [], [], []).values.shape == (0, N_FEATURES)
    assert panel.symbols == ["A", "B"] and panel.slot("C") == 2
