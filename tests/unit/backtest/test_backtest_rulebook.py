"""The rulebook property, against the backtest: each trade IS the label of its deciding bar.

For random daily paths (gaps through stop and target, bars touching both, missing sessions,
expiries) and a scripted scorer deciding at random bars, the backtest — the engine `build_engine`
makes, then the portfolio — produces trades; each one must be what `models.labels` says a signal
decided at that bar becomes: the same exit event, fill and exit prices (the trade's include the
per-side spread and slippage), net R and win. A trade closed by the end of the data is a label the
data censored; a published signal the portfolio never saw filled is a ``not_filled`` label.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from tradesignals.backtest.engine_pass import run_engine
from tradesignals.backtest.portfolio import END_OF_DATA, PortfolioConfig, simulate
from tradesignals.config import load_settings
from tradesignals.domain.exits import is_win
from tradesignals.domain.market import AssetClass, Bar, Timeframe, to_ns
from tradesignals.domain.risk import VOLATILITY_BARS, ProfileName, RiskProfile
from tradesignals.domain.sessions import utc_date_ns
from tradesignals.domain.signals import Direction, SignalType
from tradesignals.engine.placeholder_rule import Decision
from tradesignals.marketdata.calendar import calendar_for, exchange_calendar
from tradesignals.models.labels import LabelSpec, triple_barrier_labels
from tradesignals.wiring.engine_builder import build_engine

XNYS = exchange_calendar()
SYMBOL = "AAPL"
TAKE_ALL = RiskProfile(
    ProfileName.AGGRESSIVE,
    risk_tolerance=1.0,
    max_position_pct=1.0,
    risk_per_trade_pct=1.0,
    min_edge=-1.0,
    min_rank=0.0,
    max_volatility=1e6,
    allowed_types=frozenset(SignalType),
)


class Scripted:
    """Decides ``decisions[ts]`` = (direction, atr) at those bars, nothing elsewhere."""

    version = "scripted"

    def __init__(self, decisions: dict[int, tuple[Direction, float]]) -> None:
        self.decisions = decisions

    def on_bar(self, bar: Bar) -> Decision | None:
        d = self.decisions.get(bar.ts)
        return None if d is None else Decision(d[0], 0.9, d[1], ("scripted",), confidence_rank=1.0)


@st.composite
def case(draw: st.DrawFn) -> tuple[pd.DataFrame, np.ndarray, dict[int, Direction]]:
    start = draw(
        st.sampled_from([utc_date_ns(2026, 11, 2), utc_date_ns(2026, 12, 1), utc_date_ns(2017, 5, 22)])
    )
    n = draw(st.integers(VOLATILITY_BARS + 8, VOLATILITY_BARS + 40))
    skips = draw(
        st.lists(st.sampled_from([False, False, False, False, True]), min_size=3 * n, max_size=3 * n)
    )
    sessions = XNYS.sessions_between(start, start + 4 * n * 86_400 * 10**9)
    times = [s.label for s, skip in zip(sessions, skips, strict=False) if not skip][:n]
    n = len(times)
    rets = np.asarray(draw(st.lists(st.floats(-0.04, 0.04), min_size=n, max_size=n)))
    gaps = np.asarray(
        draw(st.lists(st.sampled_from([0.0, 0.0, 0.0, 0.03, -0.03, 0.08, -0.08]), min_size=n, max_size=n))
    )
    wide = np.asarray(draw(st.lists(st.floats(0.0, 0.05), min_size=n, max_size=n)))
    close = 100.0 * np.exp(np.cumsum(rets))
    open_ = np.r_[100.0, close[:-1]] * np.exp(gaps)
    bars = pd.DataFrame(
        {
            "ts": times,
            "symbol": SYMBOL,
            "open": open_,
            "high": np.maximum(open_, close) * (1 + wide),
            "low": np.minimum(open_, close) * (1 - wide[::-1]),
            "close": close,
        }
    )
    atr = np.asarray(draw(st.lists(st.floats(0.3, 4.0), min_size=n, max_size=n)))
    # Decide only once a follower can measure volatility (the portfolio's sizing needs it).
    picks = draw(st.lists(st.integers(VOLATILITY_BARS + 1, n - 1), min_size=1, max_size=8, unique=True))
    decisions = {int(times[i]): draw(st.sampled_from(list(Direction))) for i in picks}
    return bars, atr, decisions


@settings(
    max_examples=50,
    phases=(
        Phase.explicit,
        Phase.reuse,
        Phase.generate,
    ),  # a failing case prints at once; shrinking it is slow
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(example=case())
def test_backtest_trades_are_the_labels(
    example: tuple[pd.DataFrame, np.ndarray, dict[int, Direction]], tmp_path: Path
) -> None:
    bars, atr, directions = example
    row_of = {int(t): i for i, t in enumerate(bars["ts"])}
    decisions = {t: (d, float(atr[row_of[t]])) for t, d in directions.items()}
    engine = build_engine(
        load_settings(home=tmp_path, model="rule"), scorer_for=lambda _tf: Scripted(decisions)
    )
    spec = LabelSpec(signal_type=SignalType.SWING)
    assert engine.plan == spec.plan and engine.costs.as_dict() == spec.costs.as_dict()
    labels = {
        d: triple_barrier_labels(
            bars, atr, direction=d, spec=spec, timeframe=Timeframe.D1, calendar=calendar_for
        )
        for d in Direction
    }
    stream = [
        Bar(SYMBOL, Timeframe.D1, int(r.ts), r.open, r.high, r.low, r.close, 1.0)
        for r in bars.itertuples(index=False)
    ]
    row_at_close = {engine.lifecycle.bar_close(b): i for i, b in enumerate(stream)}
    run = run_engine(engine, stream)
    result = simulate(run, PortfolioConfig(cash=1e9, profile=TAKE_ALL, max_per_symbol=2), engine.costs)
    assert result.taken == len(run.signals) and not result.not_taken  # every signal followed
    model = engine.costs.for_class(AssetClass.EQUITY)
    slip = (model.half_spread_bp + model.slippage_bp) / 1e4
    by_id = {t.signal_id: t for t in result.trades}
    assert len(by_id) + result.not_filled == len(run.signals)
    for pub in run.signals:
        s = pub.signal
        assert s.decided_at is not None
        lab = labels[s.direction].iloc[row_at_close[to_ns(s.decided_at)]]
        trade = by_id.get(s.id)
        if trade is None and s.id in run.end_of_data:  # the data ended before any fill: censored
            assert pd.isna(lab["outcome"]) and math.isnan(lab["label"]), (s.id, lab)
            continue
        if trade is None:
            assert lab["outcome"] == "not_filled", (s.id, lab)
            continue
        if trade.exit_reason == END_OF_DATA:
            assert pd.isna(lab["outcome"]) and math.isnan(lab["label"]), (s.id, lab)  # censored
            continue
        sign = s.direction.sign
        assert lab["outcome"] == trade.exit_reason, (s.id, lab, trade)
        assert trade.entry_price == pytest.approx(lab["fill_price"] * (1 + sign * slip), rel=1e-12)
        assert trade.exit_price == pytest.approx(lab["exit_price"] * (1 - sign * slip), rel=1e-12)
        assert trade.r == pytest.approx(lab["net_r"], rel=1e-12, abs=1e-12)
        assert trade.return_pct / 100.0 == pytest.approx(lab["ret"], rel=1e-12, abs=1e-12)
        assert float(is_win(trade.r)) == lab["label"]
        assert int(lab["t_end"]) <= trade.exit_time
        event(f"trade closed by {trade.exit_reason}")
