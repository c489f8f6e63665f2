"""Shared fixtures of the backtest tests: simulated daily OHLCV files in the CLI's input format."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from tradesignals.domain.market import Timeframe
from tradesignals.marketdata.feeds.simulator import SimulatorFeed

SimDailyCsv = Callable[[Path, int, int, int], Path]


def _write_sim_daily_csv(path: Path, symbols: int, seed: int, days: int) -> Path:
    """``days`` simulated daily bars of ``symbols`` symbols as ``date,symbol,open,…,volume`` at ``path``."""
    feed = SimulatorFeed(symbols, seed=seed, speed=float("inf"), timeframe=Timeframe.D1, emit="bars")
    rows = [
        (
            pd.Timestamp(b.ts, tz="UTC").strftime("%Y-%m-%d"),
            b.symbol,
            b.open,
            b.high,
            b.low,
            b.close,
            b.volume,
        )
        for b in feed.history(days)
    ]
    pd.DataFrame(rows, columns=["date", "symbol", "open", "high", "low", "close", "volume"]).to_csv(
        path, index=False
    )
    return path


@pytest.fixture(scope="session")
def sim_daily_csv() -> SimDailyCsv:
    """``sim_daily_csv(path, symbols, seed, days)`` writes a simulated daily file and returns its path."""
    return _write_sim_daily_csv
