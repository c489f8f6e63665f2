"""Performance figures of a backtest — the one module that computes them.

Return figures are on **daily** returns of the equity curve (the last equity of each UTC date; the
first return is measured from the starting cash), annualised with 252 periods a year, computed the
way empyrical(-reloaded) computes them so that a reader can check them with it (the tests do):

* ``total_return`` — final / starting equity − 1; ``annualised_return`` — (1 + total)^(252/n) − 1;
* ``volatility`` — sample standard deviation (ddof 1) × √252;
* ``sharpe`` — mean / sample std × √252 (risk-free 0); ``sortino`` — mean × 252 over the downside
  deviation √(mean(min(r, 0)²)) × √252;
* ``max_drawdown`` — the largest fall from a peak of equity, as a **positive** fraction (0.25 = a 25 %
  fall); ``max_drawdown_days`` — the longest stretch, in calendar days, from a peak until equity
  is back above it (or the end); ``calmar`` — annualised return / max drawdown.

Trade figures: ``hit_rate`` is the rulebook's win (`domain.exits.is_win` of the net R) over trades
closed by the plan — trades closed by the end of the data are left out of it (the plan never
exited them) but are in every money figure; ``avg_net_r`` (the mean net R: the expectancy in R),
``expectancy`` (mean net P/L per trade in currency), ``profit_factor`` (gross won / gross lost, in
currency). ``exposure`` is the mean gross exposure (open value / equity); ``turnover`` the traded
notional (both sides) over the mean equity, a year.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from tradesignals.backtest.portfolio import END_OF_DATA, EquityPoint, Trade
from tradesignals.domain.exits import is_win

PERIODS_PER_YEAR = 252


def daily_equity(points: Sequence[tuple[int, float]]) -> tuple[list[str], npt.NDArray[np.float64]]:
    """The last equity of each UTC date: (dates as YYYY-MM-DD, values)."""
    dates: list[str] = []
    values: list[float] = []
    for ts, eq in points:
        d = datetime.fromtimestamp(ts / 1e9, tz=UTC).strftime("%Y-%m-%d")
        if dates and dates[-1] == d:
            values[-1] = eq
        else:
            dates.append(d)
            values.append(eq)
    return dates, np.asarray(values, dtype=np.float64)


def returns_of(start: float, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Simple returns of ``values``, the first against ``start``."""
    prev = np.concatenate([[start], values[:-1]])
    out: npt.NDArray[np.float64] = values / prev - 1.0
    return out


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def return_figures(
    start: float, dates: Sequence[str], values: npt.NDArray[np.float64]
) -> dict[str, float | None]:
    """Return and risk figures of one equity curve (see the module docstring)."""
    if len(values) == 0:
        return dict.fromkeys(
            (
                "total_return",
                "annualised_return",
                "volatility",
                "sharpe",
                "sortino",
                "max_drawdown",
                "max_drawdown_days",
                "calmar",
            ),
            None,
        )
    r = returns_of(start, values)
    n = len(r)
    total = float(values[-1] / start - 1.0)
    annual = (1.0 + total) ** (PERIODS_PER_YEAR / n) - 1.0 if total > -1 else -1.0
    std = float(np.std(r, ddof=1)) if n > 1 else math.nan
    mean = float(np.mean(r))
    vol = std * math.sqrt(PERIODS_PER_YEAR)
    sharpe = mean / std * math.sqrt(PERIODS_PER_YEAR) if std > 0 else math.nan
    downside = math.sqrt(float(np.mean(np.square(np.minimum(r, 0.0))))) * math.sqrt(PERIODS_PER_YEAR)
    sortino = mean * PERIODS_PER_YEAR / downside if downside > 0 else math.nan
    curve = np.concatenate([[start], values])
    peaks = np.maximum.accumulate(curve)
    dd = float(np.max(1.0 - curve / peaks))
    calmar = annual / dd if dd > 0 else math.nan
    return {
        "total_return": total,
        "annualised_return": annual,
        "volatility": _finite(vol),
        "sharpe": _finite(sharpe),
        "sortino": _finite(sortino),
        "max_drawdown": dd,
        "max_drawdown_days": _drawdown_days(dates, curve[1:], peaks[1:]),
        "calmar": _finite(calmar),
    }


def _drawdown_days(
    dates: Sequence[str], curve: npt.NDArray[np.float64], peaks: npt.NDArray[np.float64]
) -> int:
    """Longest run of calendar days spent below a previous peak (to recovery or the end)."""
    longest = 0
    start: datetime | None = None
    day = [datetime.strptime(d, "%Y-%m-%d") for d in dates]
    for i in range(len(curve)):
        under = curve[i] < peaks[i]
        if under and start is None:
            start = day[i - 1] if i > 0 else day[i]
        elif not under and start is not None:
            longest = max(longest, (day[i] - start).days)
            start = None
    if start is not None and day:
        longest = max(longest, (day[-1] - start).days)
    return longest


def trade_figures(trades: Sequence[Trade]) -> dict[str, float | int | None]:
    """Counts and averages of a set of trades (see the module docstring)."""
    planned = [t for t in trades if t.exit_reason != END_OF_DATA]
    won = sum(t.pnl for t in trades if t.pnl > 0)
    lost = -sum(t.pnl for t in trades if t.pnl < 0)
    n = len(trades)
    return {
        "trades": n,
        "trades_end_of_data": n - len(planned),
        "hit_rate": sum(1 for t in planned if is_win(t.r)) / len(planned) if planned else None,
        "avg_net_r": math.fsum(t.r for t in trades) / n if n else None,
        "expectancy": math.fsum(t.pnl for t in trades) / n if n else None,
        "profit_factor": won / lost if lost > 0 else None,
        "net_pnl": math.fsum(t.pnl for t in trades),
        "fees": math.fsum(t.fees for t in trades),
    }


def _by(trades: Iterable[Trade], key: Callable[[Trade], str]) -> dict[str, dict[str, float | int | None]]:
    groups: dict[str, list[Trade]] = {}
    for t in trades:
        groups.setdefault(key(t), []).append(t)
    return {k: trade_figures(v) for k, v in sorted(groups.items())}


def _month(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1e9, tz=UTC).strftime("%Y-%m")


def summarize(
    start_cash: float,
    equity: Sequence[EquityPoint],
    trades: Sequence[Trade],
) -> dict[str, object]:
    """All figures of a portfolio: returns, risk, exposure, turnover, trades and their breakdowns."""
    dates, values = daily_equity([(p.ts, p.equity) for p in equity])
    figures: dict[str, object] = dict(return_figures(start_cash, dates, values))
    years = max(len(values), 1) / PERIODS_PER_YEAR
    mean_equity = float(np.mean(values)) if len(values) else start_cash
    traded = math.fsum(t.notional + t.quantity * t.exit_price for t in trades)
    figures["final_equity"] = float(values[-1]) if len(values) else start_cash
    figures["exposure"] = float(np.mean([p.exposure for p in equity])) if equity else 0.0
    figures["time_in_market"] = float(np.mean([p.exposure > 0 for p in equity])) if equity else 0.0
    figures["turnover"] = traded / mean_equity / years if traded else 0.0
    figures.update(trade_figures(trades))
    figures["by_type"] = _by(trades, lambda t: t.signal_type)
    figures["by_symbol"] = _by(trades, lambda t: t.symbol)
    figures["by_year"] = _by(trades, lambda t: _month(t.exit_time)[:4])
    figures["by_month"] = _by(trades, lambda t: _month(t.exit_time))
    return figures


def curve_figures(start: float, points: Sequence[tuple[int, float]]) -> dict[str, float | None]:
    """Return and risk figures of a benchmark curve given as (ts, value)."""
    dates, values = daily_equity(points)
    return return_figures(start, dates, values)


__all__ = [
    "PERIODS_PER_YEAR",
    "curve_figures",
    "daily_equity",
    "return_figures",
    "returns_of",
    "summarize",
    "trade_figures",
]
