"""The batch tier equals the streaming engine (and the panel) bar for bar, bad input included."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradesignals.config import load_settings
from tradesignals.domain.market import NS_PER_SECOND, AssetClass, Timeframe
from tradesignals.domain.sessions import asset_class_of
from tradesignals.features import FEATURE_NAMES, FeatureEngine, FeaturePanel
from tradesignals.features.batch import compute_features, symbol_features
from tradesignals.features.incremental import FEATURE_INDEX, STATUS_NAMES, BarClock
from tradesignals.marketdata.calendar import DAY_NS, AlwaysOpen, calendar_for, calendar_resolver, utc_date_ns
from tradesignals.wiring.engine_builder import symbol_calendars

HOUR = 3600 * NS_PER_SECOND
T0 = utc_date_ns(2024, 1, 1)
UNDEFINED_WHEN_FLAT = {FEATURE_INDEX["bb_pctb"], FEATURE_INDEX["volume_z_20"]}


def walk(n: int, rng: np.random.Generator, start: float = 100.0) -> np.ndarray:
    c = start * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    o = np.r_[start, c[:-1]] * np.exp(rng.normal(0.0, 0.002, n))
    h = np.maximum(o, c) * (1 + rng.uniform(0.0, 0.01, n))
    low = np.minimum(o, c) * (1 - rng.uniform(0.0, 0.01, n))
    return np.column_stack([o, h, low, c, rng.uniform(1e3, 1e4, n)])


@st.composite
def messy_series(draw: st.DrawFn) -> tuple[Timeframe, np.ndarray, np.ndarray]:
    """A random walk with holes, NaN, zero volume, repeats and late bars, in arrival order."""
    tf = draw(st.sampled_from([Timeframe.H1, Timeframe.D1]))
    n = draw(st.integers(0, 160))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    p_nan, p_zero, p_gap, p_late = (draw(st.sampled_from(p)) for p in ([0, 0.01, 0.04],) * 4)
    decimals = draw(st.sampled_from([None, 2, 0]))  # coarse ticks: flat bars, ties, equal opens
    rows = walk(n, rng)
    if decimals is not None:
        rows[:, :4] = np.maximum(np.round(rows[:, :4], decimals), 10.0**-decimals)
        rows[:, 4] = np.round(rows[:, 4], 0)
    nan_at = rng.random(n) < p_nan
    rows[nan_at, rng.integers(0, 5, n)[nan_at]] = np.nan
    rows[rng.random(n) < p_zero, 4] = 0.0
    steps = 1 + (rng.random(n) < p_gap) * rng.integers(1, 4, n)
    start = T0 + draw(st.integers(0, 23)) * HOUR  # joins a session midway, or not
    ts = start + np.cumsum(steps).astype(np.int64) * tf.ns
    late = np.flatnonzero(rng.random(n) < p_late)
    late = late[late > 0]
    ts[late] = ts[late - 1] - rng.integers(0, 2, len(late)) * tf.ns  # a repeat, or older still
    return tf, ts, rows


def stream(tf: Timeframe, ts: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
    eng = FeatureEngine(tf, calendar=AlwaysOpen())
    vecs = [eng.update_values("BTCUSDT", int(t), *map(float, r)) for t, r in zip(ts, rows, strict=True)]
    values = np.array([v.values for v in vecs]).reshape(len(vecs), len(FEATURE_NAMES))
    return values, np.array([v.warm for v in vecs], dtype=bool), [v.status for v in vecs]


def batch(ts: np.ndarray, rows: np.ndarray, clock: BarClock) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return symbol_features(ts, rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4], clock)


def assert_agree(a: np.ndarray, b: np.ndarray) -> None:
    """Equal to 1e-9 (relative, or absolute near zero), NaN in the same places."""
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9, equal_nan=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messy_series())
def test_batch_equals_streaming_on_messy_random_walks(case: tuple[Timeframe, np.ndarray, np.ndarray]) -> None:
    tf, ts, rows = case
    inc, inc_warm, inc_status = stream(tf, ts, rows)
    clock = BarClock(tf, AlwaysOpen())
    values, warm, status = batch(ts, rows, clock)
    assert_agree(inc, values)
    np.testing.assert_array_equal(inc_warm, warm)
    assert [STATUS_NAMES[s] for s in status] == inc_status

    # Warm means every feature has its value (bar the two that are undefined on flat input);
    # not warm means at least one is still NaN.
    defined = np.ones(len(FEATURE_NAMES), dtype=bool)
    defined[list(UNDEFINED_WHEN_FLAT)] = False
    assert np.isfinite(values[warm][:, defined]).all()
    assert np.isnan(values[~warm]).any(axis=1).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(1, 90))
def test_panel_equals_batch_for_many_symbols(seed: int, n_symbols: int, steps: int) -> None:
    rng = np.random.default_rng(seed)
    data = [walk(steps, rng) for _ in range(n_symbols)]
    for d in data:
        d[rng.random(steps) < 0.03, 4] = 0.0
        d[rng.random(steps) < 0.02, 2] = np.nan
    present = rng.random((steps, n_symbols)) > 0.05
    late = rng.random((steps, n_symbols)) < 0.03
    panel = FeaturePanel(Timeframe.H1, calendar=AlwaysOpen(), symbols=[f"S{i}USDT" for i in range(n_symbols)])
    got = np.full((steps, n_symbols, len(FEATURE_NAMES)), np.nan)
    got_warm = np.zeros((steps, n_symbols), dtype=bool)
    arrived = np.zeros((steps, n_symbols), dtype=np.int64)
    for t in range(steps):
        idx = np.flatnonzero(present[t])
        ts = T0 + t * HOUR - late[t, idx] * HOUR
        arrived[t, idx] = ts
        step = panel.update(idx, ts, *np.array([data[j][t] for j in idx]).reshape(-1, 5).T)
        got[t, idx], got_warm[t, idx] = step.values, step.warm
    clock = BarClock(Timeframe.H1, AlwaysOpen())
    for j in range(n_symbols):
        m = present[:, j]
        values, warm, _ = batch(arrived[m, j], data[j][m], clock)
        assert_agree(got[m, j], values)
        np.testing.assert_array_equal(got_warm[m, j], warm)


EXTREME = st.one_of(
    st.floats(min_value=1e-14, max_value=1e14),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0, 5e-324, 1e-12, 1e12, 1e308]),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(EXTREME, EXTREME, EXTREME, EXTREME, EXTREME), min_size=1, max_size=70))
def test_extreme_values_never_raise_and_still_agree(bars: list[tuple[float, ...]]) -> None:
    rows = np.array(bars, dtype=np.float64)
    ts = T0 + np.arange(len(rows), dtype=np.int64) * HOUR
    inc, inc_warm, inc_status = stream(Timeframe.H1, ts, rows)
    values, warm, status = batch(ts, rows, BarClock(Timeframe.H1, AlwaysOpen()))
    np.testing.assert_array_equal(np.isnan(inc), np.isnan(values))
    np.testing.assert_allclose(inc, values, rtol=1e-9, atol=1e-9, equal_nan=True)
    np.testing.assert_array_equal(inc_warm, warm)
    assert [STATUS_NAMES[s] for s in status] == inc_status
    panel = FeaturePanel(Timeframe.H1, calendar=AlwaysOpen(), symbols=["XUSDT"])
    steps = [panel.update([0], int(t), *([x] for x in r)) for t, r in zip(ts, rows, strict=True)]
    got = np.array([s.values[0] for s in steps])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(values))
    np.testing.assert_allclose(got, values, rtol=1e-9, atol=1e-9, equal_nan=True)
    assert [int(s.status[0]) for s in steps] == status.tolist()


# -- compute_features over frames --------------------------------------------------------------


def frame(
    symbols: dict[str, int], rng: np.random.Generator, step: int = DAY_NS, start: int = T0
) -> pd.DataFrame:
    parts = []
    for sym, n in symbols.items():
        rows = walk(n, rng)
        parts.append(
            pd.DataFrame(
                {
                    "ts": start + np.arange(n, dtype=np.int64) * step,
                    "symbol": sym,
                    "open": rows[:, 0],
                    "high": rows[:, 1],
                    "low": rows[:, 2],
                    "close": rows[:, 3],
                    "volume": rows[:, 4],
                }
            )
        )
    return pd.concat(parts, ignore_index=True).sort_values(["ts", "symbol"], kind="stable", ignore_index=True)


def test_compute_features_rows_line_up_with_the_input_in_any_order() -> None:
    rng = np.random.default_rng(7)
    df = frame({"AUSDT": 80, "BUSDT": 60, "CUSDT": 3}, rng)
    out = compute_features(df, timeframe=Timeframe.D1)
    assert list(out.columns) == ["ts", "symbol", *FEATURE_NAMES, "warm", "status"]
    assert out.index.equals(df.index) and (out["symbol"] == df["symbol"]).all()
    assert (out["ts"] == df["ts"]).all()

    shuffled = df.sample(frac=1.0, random_state=3)
    again = compute_features(shuffled, timeframe=Timeframe.D1).loc[df.index]
    pd.testing.assert_frame_equal(again, out)

    eng = FeatureEngine(Timeframe.D1, calendar=AlwaysOpen())
    for sym, sub in df.groupby("symbol"):
        bars = sub[["open", "high", "low", "close", "volume"]].to_numpy()
        vecs = [
            eng.update_values(str(sym), int(t), *map(float, r)) for t, r in zip(sub["ts"], bars, strict=True)
        ]
        assert_agree(out.loc[sub.index, list(FEATURE_NAMES)].to_numpy(), np.array([v.values for v in vecs]))
        assert out.loc[sub.index, "warm"].tolist() == [v.warm for v in vecs]
    assert not out.loc[out["symbol"] == "CUSDT", "warm"].any()


def test_a_repeated_row_is_ignored_like_a_repeated_live_bar() -> None:
    rng = np.random.default_rng(8)
    df = frame({"AUSDT": 50}, rng)
    dup = pd.concat([df, df.iloc[[30]]], ignore_index=True)
    out = compute_features(dup, timeframe=Timeframe.D1)
    assert out["status"].iloc[-1] == "ignored" and out["status"].iloc[:-1].eq("ok").all()
    pd.testing.assert_frame_equal(out.iloc[:-1], compute_features(df, timeframe=Timeframe.D1))


def test_timeframe_is_inferred_and_a_declared_asset_class_chooses_the_clock() -> None:
    rng = np.random.default_rng(9)
    # A stock-looking name (as files without a symbol column get), but hourly bars round the clock.
    df = frame({"BTC_FILE": 24 * 10}, rng, step=HOUR, start=utc_date_ns(2024, 1, 5))  # from a Friday
    declared = compute_features(df, asset_class=AssetClass.CRYPTO)
    assert declared["warm"].iloc[48:].all()  # warm through Saturday and Sunday: no NYSE sessions
    explicit = compute_features(df, timeframe=Timeframe.H1, calendar=AlwaysOpen())
    pd.testing.assert_frame_equal(declared, explicit)
    # Undeclared, the name decides — as it does live — whatever weekdays the file holds.
    guessed = compute_features(df)
    equity = compute_features(df, timeframe=Timeframe.H1, calendar=calendar_for(AssetClass.EQUITY))
    pd.testing.assert_frame_equal(guessed, equity)
    with pytest.raises(ValueError, match="not both"):
        compute_features(df, calendar=AlwaysOpen(), asset_class=AssetClass.CRYPTO)


@pytest.mark.parametrize("declared", [None, AssetClass.EQUITY, AssetClass.CRYPTO])
def test_batch_and_live_choose_the_same_calendar_for_the_same_symbol(declared: AssetClass | None) -> None:
    """Live features, batch features and the engine's wiring all resolve a clock by one rule."""
    rng = np.random.default_rng(4)
    names = {"AAPL": 24 * 8, "BTCUSDT": 24 * 8, "ETH-USD": 24 * 8, "X:SOLUSD": 24 * 8, "SPY_FILE": 24 * 8}
    df = frame(names, rng, step=HOUR, start=utc_date_ns(2024, 3, 1))
    batch = compute_features(df, timeframe=Timeframe.H1, asset_class=declared)
    live = FeatureEngine(Timeframe.H1, calendar=calendar_resolver(declared))
    rows = df.itertuples(index=False)
    streamed = [live.update_values(r.symbol, r.ts, r.open, r.high, r.low, r.close, r.volume) for r in rows]
    assert [bool(v.warm) for v in streamed] == batch["warm"].tolist()
    values = np.array([v.values for v in streamed])
    np.testing.assert_allclose(values, batch[list(FEATURE_NAMES)].to_numpy(), rtol=0, atol=1e-9)
    for symbol in names:
        want = calendar_for(asset_class_of(symbol, declared))
        assert calendar_resolver(declared)(symbol) is want
        assert symbol_calendars(load_settings(asset_class=declared))(symbol) is want


def test_daily_stock_bars_follow_the_exchange_calendar() -> None:
    from tradesignals.marketdata.calendar import exchange_calendar

    sessions = exchange_calendar("XNYS").sessions_between(utc_date_ns(2024, 1, 1), utc_date_ns(2024, 6, 1))
    labels = np.array([s.label for s in sessions], dtype=np.int64)
    rows = walk(len(labels), np.random.default_rng(10))
    df = pd.DataFrame(
        {
            "ts": labels,
            "symbol": "AAPL",
            **dict(zip(["open", "high", "low", "close", "volume"], rows.T, strict=True)),
        }
    )
    out = compute_features(df.drop(index=60))  # one session missing: a restart there, no other
    warm = out["warm"].to_numpy()
    assert warm[33:60].all() and not warm[60 : 60 + 33].any() and warm[60 + 33 :].all()


def test_empty_frame() -> None:
    df = pd.DataFrame({c: pd.Series([], dtype="float64") for c in ["open", "high", "low", "close", "volume"]})
    df.insert(0, "symbol", pd.Series([], dtype=str))
    df.insert(0, "ts", pd.Series([], dtype="int64"))
    out = compute_features(df, timeframe=Timeframe.D1)
    assert len(out) == 0 and list(out.columns)[2:-2] == list(FEATURE_NAMES)


@pytest.mark.parametrize("n", [0, 1, 19, 20, 34])
def test_short_histories_are_nan_not_errors(n: int) -> None:
    rows = walk(n, np.random.default_rng(n))
    ts = T0 + np.arange(n, dtype=np.int64) * HOUR
    values, warm, status = batch(ts, rows, BarClock(Timeframe.H1, AlwaysOpen()))
    assert values.shape == (n, len(FEATURE_NAMES)) and warm.sum() == (n == 34) and (status == 0).all()
    inc, _, _ = stream(Timeframe.H1, ts, rows)
    assert_agree(inc.reshape(values.shape), values)
