"""The vectorized path beside vectorbt's ``Portfolio.from_signals``: 500 symbols × 10 years of daily bars.

Simulated bars (a seeded random walk with gaps, on the NYSE sessions of 2014–2023), precomputed
decisions (a 10/40-bar moving-average cross: long on the cross up, short on the cross down, ATR 14),
then, each timed warm (the second of two runs, so numba and vectorbt compilation are excluded):

* ``vectorized_s`` — `backtest.vectorized.vectorized_trades`: decisions → the engine's trades (the
  rulebook's fills, exits, expiry and costs, the one-open-signal and cool-down rules) → P/L;
  ``vectorized_sweep_step_s`` is a third run on the same bars, which reuses the calendar answers
  (bar closes, expiries) the labels keep for the last few time sets — what a parameter sweep sees;
* ``vectorbt_s`` — `backtest.vectorbt_bridge.to_vectorbt`: the same trades' entries and exits as
  ``from_signals`` arrays and vectorbt's simulation of them (it is given the exits; it does not
  find them).

``ratio`` = vectorized_s / vectorbt_s (goal ≤ 1.0). Costs without borrow (vectorbt has none), so
the two final equities can be compared. Prints one JSON document.

    .venv/bin/python bench/vectorized.py [--symbols 500 --years 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import pandas as pd

from tradesignals.backtest.vectorbt_bridge import to_vectorbt
from tradesignals.backtest.vectorized import vectorized_trades
from tradesignals.domain.costs import DEFAULT_SCHEDULE, CostSchedule
from tradesignals.domain.market import Timeframe
from tradesignals.domain.sessions import utc_date_ns
from tradesignals.domain.trade_plan import PlanParams
from tradesignals.marketdata.calendar import exchange_calendar
from tradesignals.models.labels import _TIMES_CACHE

NO_BORROW = CostSchedule({a: m.replace(borrow_bp_per_day=0.0) for a, m in DEFAULT_SCHEDULE.by_class.items()})


def simulated(symbols: int, years: int, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bars (ts, symbol, OHLC) in (ts, symbol) order and the decisions made on them."""
    sessions = exchange_calendar().sessions_between(utc_date_ns(2014, 1, 2), utc_date_ns(2014 + years, 1, 1))
    ts = np.array([s.label for s in sessions], dtype=np.int64)
    n = len(ts)
    rng = np.random.default_rng(seed)
    rets = rng.normal(0.0003, 0.015, (n, symbols))
    gaps = rng.normal(0.0, 0.005, (n, symbols)) * (rng.random((n, symbols)) < 0.05)
    close = 50.0 * np.exp(np.cumsum(rets, axis=0))
    open_ = np.vstack([close[:1], close[:-1]]) * np.exp(gaps)
    wide = np.abs(rng.normal(0.0, 0.008, (n, symbols)))
    high = np.maximum(open_, close) * (1 + wide)
    low = np.minimum(open_, close) * (1 - wide)
    prev = np.vstack([close[:1], close[:-1]])
    tr = np.maximum(high - low, np.maximum(np.abs(high - prev), np.abs(low - prev)))
    atr = pd.DataFrame(tr).rolling(14).mean().to_numpy()
    fast = pd.DataFrame(close).rolling(10).mean().to_numpy()
    slow = pd.DataFrame(close).rolling(40).mean().to_numpy()
    above = fast > slow
    cross = np.zeros_like(above, dtype=np.int8)
    cross[1:] = np.where(above[1:] & ~above[:-1], 1, np.where(~above[1:] & above[:-1], -1, 0))
    cross[:41] = 0
    names = np.array([f"S{i:03d}" for i in range(symbols)])
    bars = pd.DataFrame(
        {
            "ts": np.repeat(ts, symbols),
            "symbol": np.tile(names, n),
            "open": open_.ravel(),
            "high": high.ravel(),
            "low": low.ravel(),
            "close": close.ravel(),
        }
    )
    i, j = np.nonzero(cross)
    decisions = pd.DataFrame({"ts": ts[i], "symbol": names[j], "direction": cross[i, j], "atr": atr[i, j]})
    return bars, decisions


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--years", type=int, default=10)
    args = ap.parse_args()
    t0 = time.perf_counter()
    bars, decisions = simulated(args.symbols, args.years)
    made = time.perf_counter() - t0
    cash = 1e9

    def ours() -> pd.DataFrame:
        return vectorized_trades(bars, decisions, timeframe=Timeframe.D1, plan=PlanParams(), costs=NO_BORROW)

    t0 = time.perf_counter()
    trades = ours()
    cold = time.perf_counter() - t0
    _TIMES_CACHE.clear()  # timed warm: compiled, but every calendar question asked again
    t0 = time.perf_counter()
    trades = ours()
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours()  # a sweep's next step on the same bars: the calendar answers are kept
    sweep = time.perf_counter() - t0
    t0 = time.perf_counter()
    pf = to_vectorbt(trades, cash, NO_BORROW)
    vbt_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    pf = to_vectorbt(trades, cash, NO_BORROW)
    vbt_warm = time.perf_counter() - t0
    final_ours = cash + float(trades["pnl"].sum())
    final_vbt = float(pf.final_value())
    out = {
        "bench": "vectorized_vs_vectorbt",
        "symbols": args.symbols,
        "bars": len(bars),
        "decisions": len(decisions),
        "trades": len(trades),
        "data_seconds": round(made, 2),
        "vectorized_s": round(warm, 3),
        "vectorized_cold_s": round(cold, 3),
        "vectorized_sweep_step_s": round(sweep, 3),
        "vectorbt_s": round(vbt_warm, 3),
        "vectorbt_cold_s": round(vbt_cold, 3),
        "ratio": round(warm / vbt_warm, 3),
        "vectorbt_trades": int(pf.trades.count()),
        "final_equity": final_ours,
        "final_equity_vectorbt": final_vbt,
        "final_equity_diff": abs(final_ours - final_vbt),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
