"""A trade list through vectorbt's ``Portfolio.from_signals`` — the parity check and the bench's rival.

vectorbt is a test/bench dependency (ADR 0010), imported inside `to_vectorbt` only. Each trade
becomes an entry at its fill instant and an exit at its exit instant on a shared time line (the
sorted distinct instants; two rows never need the same column: the engine keeps one signal per
symbol and direction open), one column per (symbol, direction), priced at the trade's prices
(slippage and half spread included), sized in units, with the rulebook's commission on each side as
vectorbt's fixed fee per order. Cash is shared across columns. vectorbt charges no borrow: give it
trades costed without one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tradesignals.domain.costs import CostSchedule
from tradesignals.domain.sessions import asset_class_of


def to_vectorbt(trades: pd.DataFrame, cash: float, costs: CostSchedule) -> Any:
    """``trades`` (the ``trades.csv`` columns) as a vectorbt portfolio; see the module docstring."""
    import vectorbt as vbt

    sign = np.where(trades["direction"].to_numpy() == "long", 1.0, -1.0)
    symbols = trades["symbol"].astype(str).to_numpy()
    models = {s: costs.for_class(asset_class_of(s)) for s in np.unique(symbols)}
    slip = np.array([(models[s].half_spread_bp + models[s].slippage_bp) / 1e4 for s in symbols])
    commission = np.array([models[s].commission_bp / 1e4 for s in symbols])
    qty = trades["quantity"].to_numpy(dtype=np.float64)
    fill = trades["entry_price"].to_numpy(dtype=np.float64) / (1 + sign * slip)
    exit_raw = trades["exit_price"].to_numpy(dtype=np.float64) / (1 - sign * slip)
    entry_t = trades["entry_time"].to_numpy(dtype=np.int64)
    exit_t = trades["exit_time"].to_numpy(dtype=np.int64)
    times = np.unique(np.concatenate([entry_t, exit_t]))
    keys = pd.Index(pd.unique(pd.Series(symbols + np.where(sign > 0, ":long", ":short"))))
    col = keys.get_indexer(symbols + np.where(sign > 0, ":long", ":short"))
    ei, xi = np.searchsorted(times, entry_t), np.searchsorted(times, exit_t)
    shape = (len(times), len(keys))
    entries, exits = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool)
    price, size, fees = np.full(shape, np.nan), np.full(shape, np.nan), np.zeros(shape)
    entries[ei, col], exits[xi, col] = True, True
    price[ei, col] = trades["entry_price"].to_numpy(dtype=np.float64)
    price[xi, col] = trades["exit_price"].to_numpy(dtype=np.float64)
    size[ei, col] = qty
    fees[ei, col] = qty * fill * commission
    fees[xi, col] = qty * exit_raw * commission
    close = pd.DataFrame(price).ffill().bfill().to_numpy()
    index = pd.DatetimeIndex(pd.to_datetime(times, utc=True))
    # vectorbt's Direction enum: 0 long only, 1 short only; one per column.
    direction = np.where(np.char.endswith(keys.to_numpy(dtype=str), ":long"), 0, 1)[None, :]

    def frame(a: np.ndarray[Any, Any]) -> pd.DataFrame:
        return pd.DataFrame(a, index=index, columns=keys)

    return vbt.Portfolio.from_signals(
        frame(close),
        entries=frame(entries),
        exits=frame(exits),
        price=frame(np.where(np.isnan(price), close, price)),
        size=frame(np.where(np.isnan(size), np.inf, size)),
        size_type="amount",
        fixed_fees=frame(fees),
        direction=direction,
        init_cash=cash,
        cash_sharing=True,
        group_by=True,
        freq="1D",
    )


__all__ = ["to_vectorbt"]
