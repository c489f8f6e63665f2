"""vectorbt, given the same entries and exits, finds the same trades and final equity (1e-6).

One case is worked out by hand; then random trade lists of the vectorized path (longs and shorts,
several symbols) go through `to_vectorbt`. vectorbt has no borrow fee, so the costs here have none.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tradesignals.backtest.vectorbt_bridge import to_vectorbt
from tradesignals.backtest.vectorized import vectorized_trades
from tradesignals.domain.costs import DEFAULT_SCHEDULE, CostSchedule
from tradesignals.domain.market import Timeframe
from tradesignals.domain.sessions import utc_date_ns
from tradesignals.domain.trade_plan import PlanParams
from tradesignals.marketdata.calendar import exchange_calendar
from tradesignals.marketdata.feeds.simulator import SimulatorFeed

pytestmark = pytest.mark.timeout(900)  # importing and compiling vectorbt takes minutes on busy shared cores

NO_BORROW = CostSchedule({a: m.replace(borrow_bp_per_day=0.0) for a, m in DEFAULT_SCHEDULE.by_class.items()})


def test_hand_worked_long_to_the_last_target() -> None:
    """AAPL closes at 100 with ATR 2: entry 100, stop 97, targets 103/106/109 (1.5 ATR risk, 1-2-3 R).

    The next session opens at 100.5: filled there. The one after trades up to 110: the last target,
    109, exits it. Equity costs are 1 bp commission + 2 bp half spread + 2 bp slippage a side, so
    10,000 at the fill buys 10,000 / 100.5 units, paid 100.5 × 1.0004, sold 109 × 0.9996, and the
    commissions are 1 bp of 100.5 and of 109 per unit: P/L = units × (8.5 − 0.0005 × 209.5).
    """
    days = [
        s.label
        for s in exchange_calendar().sessions_between(utc_date_ns(2017, 5, 22), utc_date_ns(2017, 5, 26))
    ]
    bars = pd.DataFrame(
        {
            "ts": days[:3],
            "symbol": "AAPL",
            "open": [99.0, 100.5, 101.0],
            "high": [100.5, 102.0, 110.0],
            "low": [98.5, 99.5, 100.8],
            "close": [100.0, 101.0, 108.0],
        }
    )
    decisions = pd.DataFrame({"ts": [days[0]], "symbol": ["AAPL"], "direction": [1], "atr": [2.0]})
    t = vectorized_trades(bars, decisions, timeframe=Timeframe.D1, plan=PlanParams(), costs=NO_BORROW)
    units = 10_000 / 100.5
    pnl = units * (8.5 - 0.0005 * 209.5)
    assert len(t) == 1 and t.at[0, "exit_reason"] == "target"
    assert t.at[0, "entry_price"] == pytest.approx(100.5 * 1.0004, rel=1e-12)
    assert t.at[0, "exit_price"] == pytest.approx(109 * 0.9996, rel=1e-12)
    assert t.at[0, "quantity"] == pytest.approx(units, rel=1e-12)
    assert t.at[0, "fees"] == pytest.approx(units * 0.0001 * (100.5 + 109), rel=1e-9)
    assert t.at[0, "pnl"] == pytest.approx(pnl, rel=1e-12)
    assert t.at[0, "r"] == pytest.approx((8.5 - 0.0005 * 209.5) / 3.0, rel=1e-12)

    pf = to_vectorbt(t, 100_000.0, NO_BORROW)
    rec = pf.trades.records_readable
    assert len(rec) == 1
    assert rec["Avg Entry Price"].iloc[0] == pytest.approx(100.5 * 1.0004, rel=1e-12)
    assert rec["Avg Exit Price"].iloc[0] == pytest.approx(109 * 0.9996, rel=1e-12)
    assert rec["PnL"].iloc[0] == pytest.approx(pnl, abs=1e-6)
    assert float(pf.final_value()) == pytest.approx(100_000.0 + pnl, abs=1e-6)


@pytest.mark.parametrize("seed", [3, 4])
def test_random_trade_lists_match_trade_by_trade(seed: int) -> None:
    feed = SimulatorFeed(8, seed=seed, speed=float("inf"), timeframe=Timeframe.D1, emit="bars")
    bars = pd.DataFrame(
        [(b.ts, b.symbol, b.open, b.high, b.low, b.close) for b in feed.history(300)],
        columns=["ts", "symbol", "open", "high", "low", "close"],
    )
    rng = np.random.default_rng(seed)
    pick = bars.sample(frac=0.1, random_state=seed)
    decisions = pd.DataFrame(
        {
            "ts": pick["ts"],
            "symbol": pick["symbol"],
            "direction": rng.choice([1, -1], len(pick)),
            "atr": pick["close"].to_numpy() * rng.uniform(0.005, 0.04, len(pick)),
        }
    )
    trades = vectorized_trades(bars, decisions, timeframe=Timeframe.D1, plan=PlanParams(), costs=NO_BORROW)
    assert len(trades) > 40 and set(trades["direction"]) == {"long", "short"}
    cash = 1e7
    pf = to_vectorbt(trades, cash, NO_BORROW)
    rec = pf.trades.records_readable
    assert len(rec) == len(trades)
    mine = trades.assign(col=trades["symbol"] + ":" + trades["direction"]).sort_values(["col", "entry_time"])
    theirs = rec.assign(col=rec["Column"].astype(str)).sort_values(["col", "Entry Timestamp"])
    assert np.allclose(theirs["Size"].to_numpy(), mine["quantity"].to_numpy(), rtol=1e-12)
    assert np.allclose(theirs["Avg Entry Price"].to_numpy(), mine["entry_price"].to_numpy(), rtol=1e-12)
    assert np.allclose(theirs["Avg Exit Price"].to_numpy(), mine["exit_price"].to_numpy(), rtol=1e-12)
    assert np.abs(theirs["PnL"].to_numpy() - mine["pnl"].to_numpy()).max() < 1e-6
    assert abs(float(pf.final_value()) - (cash + trades["pnl"].sum())) < 1e-6
