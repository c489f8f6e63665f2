"""The vectorized path gives the event-driven path's trades, one by one, on the same decisions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradesignals.backtest.engine_pass import run_engine
from tradesignals.backtest.portfolio import PortfolioConfig, simulate
from tradesignals.backtest.vectorized import COLUMNS, vectorized_trades
from tradesignals.config import load_settings
from tradesignals.domain.market import Bar, Timeframe
from tradesignals.domain.risk import VOLATILITY_BARS, ProfileName, RiskProfile
from tradesignals.domain.signals import Direction, SignalType
from tradesignals.engine.placeholder_rule import Decision
from tradesignals.marketdata.feeds.simulator import SimulatorFeed
from tradesignals.wiring.engine_builder import build_engine

TAKE_ALL = RiskProfile(
    ProfileName.AGGRESSIVE,
    risk_tolerance=1.0,
    max_position_pct=1e-3,
    risk_per_trade_pct=1e-3,
    min_edge=-1.0,
    min_rank=0.0,
    max_volatility=1e6,
    allowed_types=frozenset(SignalType),
)


class Scripted:
    """The precomputed decisions as a scorer: ``decisions[(ts, symbol)]`` = (direction, atr)."""

    version = "scripted"

    def __init__(self, decisions: dict[tuple[int, str], tuple[Direction, float]]) -> None:
        self.decisions = decisions

    def on_bar(self, bar: Bar) -> Decision | None:
        d = self.decisions.get((bar.ts, bar.symbol))
        return None if d is None else Decision(d[0], 0.9, d[1], ("scripted",), confidence_rank=1.0)


def _case(seed: int, symbols: int, bars_per_symbol: int, rate: float) -> tuple[list[Bar], pd.DataFrame]:
    feed = SimulatorFeed(symbols, seed=seed, speed=float("inf"), timeframe=Timeframe.D1, emit="bars")
    bars = sorted(feed.history(bars_per_symbol), key=lambda b: (b.ts, b.symbol))
    rng = np.random.default_rng(seed)
    seen: dict[str, int] = {}
    rows = []
    for b in bars:
        seen[b.symbol] = seen.get(b.symbol, 0) + 1
        if seen[b.symbol] > VOLATILITY_BARS + 1 and rng.random() < rate:
            rows.append((b.ts, b.symbol, int(rng.choice([1, -1])), b.close * rng.uniform(0.005, 0.04)))
    return bars, pd.DataFrame(rows, columns=["ts", "symbol", "direction", "atr"])


@pytest.mark.parametrize("seed", [1, 2])
def test_vectorized_trades_equal_the_event_driven_trades(seed: int, tmp_path: Path) -> None:
    bars, decisions = _case(seed, symbols=6, bars_per_symbol=260, rate=0.15)
    script = {
        (int(r.ts), str(r.symbol)): (Direction.LONG if r.direction > 0 else Direction.SHORT, float(r.atr))
        for r in decisions.itertuples(index=False)
    }
    engine = build_engine(load_settings(home=tmp_path, model="rule"), scorer_for=lambda _tf: Scripted(script))
    run = run_engine(engine, bars)
    followed = simulate(
        run, PortfolioConfig(cash=1e12, profile=TAKE_ALL, max_open=10**6, max_per_symbol=2), engine.costs
    )
    assert followed.taken == len(run.signals) and len(run.signals) > 50  # every published signal followed

    frame = pd.DataFrame(
        {
            "ts": [b.ts for b in bars],
            "symbol": [b.symbol for b in bars],
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
        }
    )
    fast = vectorized_trades(
        frame,
        decisions,
        timeframe=Timeframe.D1,
        plan=engine.plan,
        costs=engine.costs,
        calendar=engine.lifecycle.calendar,
    )
    assert tuple(fast.columns) == COLUMNS
    event = {(t.symbol, t.direction, t.decided_at): t for t in followed.trades}
    mine = {(r.symbol, r.direction, int(r.decided_at)): r for r in fast.itertuples(index=False)}
    assert sorted(mine) == sorted(event)  # the same signals became trades
    reasons = set()
    for key, t in event.items():
        v = mine[key]
        assert (int(v.entry_time), int(v.exit_time), v.exit_reason) == (
            t.entry_time,
            t.exit_time,
            t.exit_reason,
        ), key
        assert v.entry_price == pytest.approx(t.entry_price, rel=1e-12)
        assert v.exit_price == pytest.approx(t.exit_price, rel=1e-12)
        assert v.r == pytest.approx(t.r, rel=1e-9, abs=1e-12)
        assert v.return_pct == pytest.approx(t.return_pct, rel=1e-9, abs=1e-12)
        # Money per unit of notional at the fill (the two paths size differently): equal.
        assert v.pnl / 10_000.0 == pytest.approx(t.pnl / t.notional, rel=1e-9, abs=1e-15)
        assert v.fees / 10_000.0 == pytest.approx(t.fees / t.notional, rel=1e-9, abs=1e-15)
        reasons.add(t.exit_reason)
    assert {"stop", "target", "expired"} <= reasons
    # Decisions the engine suppressed (a signal already open, the cool-down) are suppressed by both.
    assert len(decisions) > len(run.signals)
