"""A label IS the outcome the lifecycle records for a signal decided at that bar.

For every bar of random price paths — gaps through stop and target, bars touching both, holidays,
half days, missing sessions, a session's short last bar, expiries — the signal ``decide`` builds at
that bar is followed by a fresh ``LifecycleTracker`` over the bars that follow, and its outcome must
be the label's: same event, same fill, same exit price and time, same net R, same win.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradesignals.domain.market import Bar, Timeframe, to_ns
from tradesignals.domain.outcomes import OutcomeKind
from tradesignals.domain.sessions import utc_date_ns
from tradesignals.domain.signals import Direction, SignalType
from tradesignals.engine.decide import build_signal
from tradesignals.engine.lifecycle import LifecycleTracker
from tradesignals.marketdata.calendar import calendar_for, exchange_calendar
from tradesignals.models.labels import LabelSpec, triple_barrier_labels

XNYS = exchange_calendar()
H = 3_600 * 10**9


def _daily_times(start_label: int, n: int, skips: list[bool]) -> list[int]:
    sessions = XNYS.sessions_between(start_label, start_label + 3 * n * 86_400 * 10**9)
    labels = [s.label for s, skip in zip(sessions, skips + [False] * len(sessions), strict=False) if not skip]
    return labels[:n]


def _hourly_times(start_label: int, days: int) -> list[int]:
    out: list[int] = []
    for s in XNYS.sessions_between(start_label, start_label + 3 * days * 86_400 * 10**9)[:days]:
        t = s.open
        while t < s.close:
            out.append(t)
            t += H
    return out


def _path(draw: st.DrawFn, times: list[int], symbol: str) -> pd.DataFrame:
    n = len(times)
    rets = draw(st.lists(st.floats(-0.04, 0.04), min_size=n, max_size=n))
    gaps = draw(st.lists(st.sampled_from([0.0, 0.0, 0.0, 0.03, -0.03, 0.08, -0.08]), min_size=n, max_size=n))
    wide = draw(st.lists(st.floats(0.0, 0.05), min_size=n, max_size=n))
    close = 100.0 * np.exp(np.cumsum(rets))
    prev = np.r_[100.0, close[:-1]]
    open_ = prev * np.exp(np.asarray(gaps))
    high = np.maximum(open_, close) * (1 + np.asarray(wide))
    low = np.minimum(open_, close) * (1 - np.asarray(wide)[::-1])
    return pd.DataFrame(
        {"ts": times, "symbol": symbol, "open": open_, "high": high, "low": low, "close": close}
    )


def _check(bars: pd.DataFrame, atr: np.ndarray, tf: Timeframe, kind: SignalType, direction: Direction) -> int:
    spec = LabelSpec(signal_type=kind)
    labels = triple_barrier_labels(
        bars, atr, direction=direction, spec=spec, timeframe=tf, calendar=calendar_for
    )
    compared = 0
    rows = list(bars.itertuples(index=False))
    for t, row in enumerate(rows):
        bar = Bar(row.symbol, tf, int(row.ts), row.open, row.high, row.low, row.close, 1.0)
        lab = labels.iloc[t]
        signal = build_signal(
            bar, direction, 0.5, float(atr[t]), "m", plan=spec.plan, calendar=calendar_for, kind=kind
        )
        if signal is None:
            assert math.isnan(lab["label"]) and pd.isna(lab["outcome"]), (t, lab)
            continue
        tracker = LifecycleTracker(costs=spec.costs, calendar=calendar_for)
        tracker.add(signal)
        outcome = None
        for later in rows[t + 1 :]:
            b = Bar(later.symbol, tf, int(later.ts), later.open, later.high, later.low, later.close, 1.0)
            done = tracker.on_bar(b) + tracker.expire_due(tracker.bar_close(b), b.symbol)
            if done:
                outcome = done[0]
                break
        if outcome is None:  # the data ended first: censored, no label
            assert math.isnan(lab["label"]) and pd.isna(lab["outcome"]), (t, lab)
            continue
        compared += 1
        assert lab["outcome"] == outcome.outcome.value, (t, lab, outcome)
        if outcome.outcome is OutcomeKind.NOT_FILLED:
            assert math.isnan(lab["label"])
            continue
        assert lab["fill_price"] == outcome.fill_price
        assert lab["exit_price"] == outcome.exit_price
        assert lab["net_r"] == pytest_approx(outcome.net_r)
        assert lab["gross_r"] == pytest_approx(outcome.gross_r)
        assert lab["label"] == float(outcome.win)
        assert int(lab["t_end"]) <= to_ns(outcome.closed_at)
    return compared


def pytest_approx(x: float | None) -> object:
    import pytest

    assert x is not None
    return pytest.approx(x, rel=1e-12, abs=1e-12)


@st.composite
def daily_case(draw: st.DrawFn) -> tuple[pd.DataFrame, np.ndarray]:
    start = draw(
        st.sampled_from([utc_date_ns(2026, 11, 20), utc_date_ns(2026, 12, 18), utc_date_ns(2017, 6, 26)])
    )
    n = draw(st.integers(8, 30))
    skips = draw(st.lists(st.booleans().map(lambda b: b and False), min_size=0, max_size=0))
    skips = draw(
        st.lists(st.sampled_from([False, False, False, False, True]), min_size=3 * n, max_size=3 * n)
    )
    bars = _path(draw, _daily_times(start, n, skips), "AAPL")
    atr = np.asarray(draw(st.lists(st.floats(0.3, 4.0), min_size=len(bars), max_size=len(bars))))
    return bars, atr


@st.composite
def hourly_case(draw: st.DrawFn) -> tuple[pd.DataFrame, np.ndarray]:
    start = draw(
        st.sampled_from([utc_date_ns(2026, 11, 25), utc_date_ns(2026, 12, 23), utc_date_ns(2026, 3, 6)])
    )
    bars = _path(draw, _hourly_times(start, draw(st.integers(1, 3))), "MSFT")
    atr = np.asarray(draw(st.lists(st.floats(0.2, 2.5), min_size=len(bars), max_size=len(bars))))
    return bars, atr


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=daily_case(), direction=st.sampled_from(list(Direction)))
def test_swing_label_is_the_lifecycle_outcome(
    case: tuple[pd.DataFrame, np.ndarray], direction: Direction
) -> None:
    bars, atr = case
    _check(bars, atr, Timeframe.D1, SignalType.SWING, direction)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=hourly_case(), direction=st.sampled_from(list(Direction)))
def test_day_label_is_the_lifecycle_outcome(
    case: tuple[pd.DataFrame, np.ndarray], direction: Direction
) -> None:
    bars, atr = case
    _check(bars, atr, Timeframe.H1, SignalType.DAY, direction)
