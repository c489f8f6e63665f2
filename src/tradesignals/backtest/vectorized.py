"""The vectorized backtest: precomputed decisions → the engine's trades, in array passes (parameter sweeps).

The event-driven backtest replays bars through the engine; this path takes the decisions a scorer
would make (``ts, symbol, direction, atr`` rows) and gets the same trades without an event loop:

1. **Outcomes** — `models.labels.triple_barrier_labels` (``detail=True``): the rulebook's fill,
   exits, expiry and costs for a signal decided at each bar, the numba kernel that
   ``tests/unit/models/test_labels_lifecycle.py`` holds equal to the lifecycle. No exit rule here.
2. **Following** — the engine's two publishing rules, in one numba pass per (symbol, direction) in
   time order (`SignalEngine._decide`): no new signal while one of that symbol and direction is open
   (until the bar at which the lifecycle settles it, ``settled_ts``), and none before the cool-down
   after a close (``closed_at + cooldown_bars × timeframe`` > the bar's open time).
3. **End of data** — a filled signal still open when its symbol's bars end exits at the last close,
   at that bar's close (`LifecycleTracker.close_at`), with the same cost formula (`domain.costs`).
4. **Money** — each trade gets the same ``notional`` at its fill (no sizing by risk profile, no
   position limits: a sweep compares signal sets, the event-driven path answers "what would my
   account have done"); ``pnl`` = notional × the net return, so final equity = cash + Σ pnl.

Prices, fees and R are as in ``trades.csv`` (`backtest.portfolio`): entry/exit prices include half
spread and slippage, ``fees`` are commissions plus a short's borrow. ``tests/unit/backtest/
test_vectorized.py`` compares this path with the event-driven one trade by trade.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pandas as pd
from numba import njit

from tradesignals.domain.costs import CostSchedule
from tradesignals.domain.market import Timeframe
from tradesignals.domain.sessions import SessionCalendar, asset_class_of, bar_close_ns
from tradesignals.domain.signals import Direction, SignalType
from tradesignals.domain.trade_plan import PlanParams
from tradesignals.models.labels import LabelSpec, triple_barrier_labels

END_OF_DATA = "end_of_data"
COLUMNS = (
    "symbol", "direction", "decided_at", "entry_time", "entry_price", "exit_time", "exit_price",
    "quantity", "fees", "pnl", "return_pct", "r", "exit_reason",
)  # fmt: skip


@njit(cache=True, nogil=True)
def _follow(
    group: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    settled: npt.NDArray[np.int64],
    closed: npt.NDArray[np.int64],
    cooldown_ns: int,
) -> npt.NDArray[np.bool_]:
    """Which decisions the engine publishes; rows sorted by (group, ts), a group = (symbol, direction)."""
    n = ts.shape[0]
    keep = np.zeros(n, dtype=np.bool_)
    open_until = np.int64(-(2**62))  # ts from which the last kept signal is no longer open
    cool_until = np.int64(-(2**62))
    for i in range(n):
        if i == 0 or group[i] != group[i - 1]:
            open_until = np.int64(-(2**62))
            cool_until = np.int64(-(2**62))
        if ts[i] < open_until or cool_until > ts[i]:
            continue
        keep[i] = True
        if settled[i] < 0:  # open to the end of the data
            open_until = np.int64(2**62)
        else:
            open_until = settled[i]
            if cooldown_ns > 0:
                cool_until = closed[i] + cooldown_ns
    return keep


def vectorized_trades(
    bars: pd.DataFrame,
    decisions: pd.DataFrame,
    *,
    timeframe: Timeframe,
    plan: PlanParams,
    costs: CostSchedule,
    calendar: Callable[[str], SessionCalendar] | None = None,
    notional: float = 10_000.0,
) -> pd.DataFrame:
    """The trades of ``decisions`` over ``bars`` (columns `COLUMNS`, by entry time then symbol).

    ``bars``: ``ts, symbol, open, high, low, close`` (one timeframe); ``decisions``: ``ts, symbol,
    direction`` (+1 long, -1 short) and ``atr`` at the deciding bar, at most one per (ts, symbol,
    direction). ``calendar`` is the symbol's session calendar (default: the labels' resolver).
    """
    if calendar is None:
        from tradesignals.marketdata.calendar import calendar_for

        calendar = calendar_for
    bars = bars.reset_index(drop=True)
    rows = bars[["ts", "symbol"]].reset_index().rename(columns={"index": "row"})
    dec = decisions.merge(rows, on=["ts", "symbol"], how="inner")
    spec = LabelSpec(SignalType.SWING if timeframe is Timeframe.D1 else SignalType.DAY, plan, costs)
    parts = []
    for d in Direction:
        sel = dec[dec["direction"].to_numpy() == d.sign]
        if sel.empty:
            continue
        atr = np.full(len(bars), np.nan)
        atr[sel["row"].to_numpy()] = sel["atr"].to_numpy(dtype=np.float64)
        lab = triple_barrier_labels(
            bars, atr, direction=d, spec=spec, timeframe=timeframe, calendar=calendar, detail=True
        )
        got = lab.iloc[sel["row"].to_numpy()]
        got = got[got["signal"].to_numpy()]
        part = got.assign(row=got.index.to_numpy(), sign=d.sign)
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=list(COLUMNS))
    c = pd.concat(parts, ignore_index=True)
    c["symbol"] = bars["symbol"].to_numpy()[c["row"].to_numpy()]
    c["ts"] = bars["ts"].to_numpy()[c["row"].to_numpy()]
    codes, _ = pd.factorize(c["symbol"].astype(str) + np.where(c["sign"] > 0, "+", "-"))
    c["group"] = codes
    c = c.sort_values(["group", "ts"], kind="stable").reset_index(drop=True)
    keep = _follow(
        c["group"].to_numpy(np.int64),
        c["ts"].to_numpy(np.int64),
        c["settled_ts"].to_numpy(np.int64),
        c["closed_at"].to_numpy(np.int64),
        int(plan.cooldown_bars * timeframe.ns),
    )
    c = c[keep].reset_index(drop=True)
    return _money(c, bars, timeframe, costs, calendar, notional)


def _money(
    c: pd.DataFrame,
    bars: pd.DataFrame,
    timeframe: Timeframe,
    costs: CostSchedule,
    calendar: Callable[[str], SessionCalendar],
    notional: float,
) -> pd.DataFrame:
    traded = c["outcome"].isin(["stop", "target", "expired"]).to_numpy()
    open_at_end = (c["settled_ts"].to_numpy() < 0) & np.isfinite(c["fill"].to_numpy())
    c = c[traded | open_at_end].reset_index(drop=True)
    eod = ~c["outcome"].isin(["stop", "target", "expired"]).to_numpy()
    sign = c["sign"].to_numpy(dtype=np.float64)
    fill = c["fill"].to_numpy(dtype=np.float64)
    exit_px = c["exit_price"].to_numpy(dtype=np.float64).copy()
    exit_t = c["closed_at"].to_numpy(dtype=np.int64).copy()
    ret = c["ret"].to_numpy(dtype=np.float64).copy()
    r = c["net_r"].to_numpy(dtype=np.float64).copy()
    symbols = c["symbol"].astype(str).to_numpy()
    models = {s: costs.for_class(asset_class_of(s)) for s in np.unique(symbols)}
    slip = np.array([(models[s].half_spread_bp + models[s].slippage_bp) / 1e4 for s in symbols])
    if eod.any():  # the lifecycle's close_at: last close, at that bar's close, the same cost formula
        last = bars.sort_values("ts", kind="stable").groupby("symbol", sort=False).tail(1)
        last_close = dict(zip(last["symbol"].astype(str), last["close"].to_numpy(np.float64), strict=True))
        last_ts = dict(zip(last["symbol"].astype(str), last["ts"].to_numpy(np.int64), strict=True))
        risk = np.abs(c["entry"].to_numpy(np.float64) - c["stop"].to_numpy(np.float64))
        filled_at = c["filled_at"].to_numpy(np.int64)
        for i in np.flatnonzero(eod):
            s = str(symbols[i])
            px = float(last_close[s])
            t = bar_close_ns(int(last_ts[s]), timeframe, calendar(s))
            gross_pct = sign[i] * (px - fill[i]) * 100.0 / fill[i]
            net_pct = gross_pct - models[s].costs_pct(int(sign[i]), fill[i], px, t - int(filled_at[i]))
            exit_px[i], exit_t[i], ret[i] = px, t, net_pct / 100.0
            r[i] = net_pct * fill[i] / (100.0 * risk[i])
    qty = notional / fill
    cost_pct = sign * (exit_px - fill) / fill - ret  # all round-trip costs, as a fraction of the fill
    out = pd.DataFrame(
        {
            "symbol": symbols,
            "direction": np.where(sign > 0, Direction.LONG.value, Direction.SHORT.value),
            "decided_at": c["decided_at"].to_numpy(dtype=np.int64),
            "entry_time": c["filled_at"].to_numpy(dtype=np.int64),
            "entry_price": fill * (1 + sign * slip),
            "exit_time": exit_t,
            "exit_price": exit_px * (1 - sign * slip),
            "quantity": qty,
            "fees": qty * fill * cost_pct - qty * slip * (fill + exit_px),
            "pnl": qty * fill * ret,
            "return_pct": ret * 100.0,
            "r": r,
            "exit_reason": np.where(eod, END_OF_DATA, c["outcome"].astype(str).to_numpy()),
        }
    )
    return out.sort_values(["entry_time", "symbol", "direction"], kind="stable").reset_index(drop=True)


__all__ = ["COLUMNS", "END_OF_DATA", "vectorized_trades"]
