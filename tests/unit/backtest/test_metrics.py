"""The backtest's figures: checked against empyrical-reloaded where it computes the same thing, and by hand."""

from __future__ import annotations

import empyrical as ep
import numpy as np
import pandas as pd
import pytest

from tradesignals.backtest.metrics import return_figures, trade_figures
from tradesignals.backtest.portfolio import Trade


def _curve(seed: int, n: int = 600) -> tuple[list[str], np.ndarray, pd.Series]:
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0004, 0.012, n)
    dates = pd.bdate_range("2015-01-02", periods=n)
    values = 100_000.0 * np.cumprod(1 + r)
    return [d.strftime("%Y-%m-%d") for d in dates], values, pd.Series(r, index=dates)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_return_figures_match_empyrical(seed: int) -> None:
    dates, values, r = _curve(seed)
    f = return_figures(100_000.0, dates, values)
    assert f["total_return"] == pytest.approx(ep.cum_returns_final(r), rel=1e-9)
    assert f["annualised_return"] == pytest.approx(ep.annual_return(r), rel=1e-9)
    assert f["volatility"] == pytest.approx(ep.annual_volatility(r), rel=1e-9)
    assert f["sharpe"] == pytest.approx(ep.sharpe_ratio(r), rel=1e-9)
    assert f["sortino"] == pytest.approx(ep.sortino_ratio(r), rel=1e-9)
    assert f["max_drawdown"] == pytest.approx(-ep.max_drawdown(r), rel=1e-9)
    assert f["max_drawdown"] > 0
    assert f["calmar"] == pytest.approx(ep.calmar_ratio(r), rel=1e-9)


def test_a_small_curve_by_hand() -> None:
    """100 → 110 → 99 → 121: up 10 %, down 10 % from the peak, then a new high 21 % above the start."""
    dates = ["2020-01-01", "2020-01-02", "2020-01-05"]
    f = return_figures(100.0, dates, np.array([110.0, 99.0, 121.0]))
    assert f["total_return"] == pytest.approx(0.21)
    assert f["max_drawdown"] == pytest.approx(0.10)
    assert f["max_drawdown_days"] == 4  # below the 01-01 peak until 01-05
    r = np.array([0.10, -0.10, 121 / 99 - 1])
    assert f["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(252))
    assert f["annualised_return"] == pytest.approx(1.21 ** (252 / 3) - 1)


def _t(pnl: float, r: float, reason: str = "target") -> Trade:
    return Trade("A", "long", "x", 0, 0, 1.0, 1, 1.0, 1.0, 0.0, pnl, 0.0, r, reason, "swing", 0.5, 1.0)


def test_trade_figures_by_hand_and_end_of_data_outside_the_hit_rate() -> None:
    trades = [
        _t(200.0, 2.0),
        _t(-100.0, -1.0, "stop"),
        _t(-50.0, -0.5, "expired"),
        _t(30.0, 0.3, "end_of_data"),
    ]
    f = trade_figures(trades)
    assert f["trades"] == 4 and f["trades_end_of_data"] == 1
    assert f["hit_rate"] == pytest.approx(1 / 3)  # the plan exited three; one won after costs
    assert f["avg_net_r"] == pytest.approx((2.0 - 1.0 - 0.5 + 0.3) / 4)
    assert f["expectancy"] == pytest.approx(80.0 / 4)
    assert f["profit_factor"] == pytest.approx(230.0 / 150.0)
