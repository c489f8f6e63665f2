"""Every OHLCV file in the shared data folder reads with the figures its README states."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from tradesignals.domain.market import Timeframe, to_ns
from tradesignals.marketdata.feeds.replay import ReplayFeed
from tradesignals.marketdata.ohlcv_file import infer_timeframe, read_ohlcv

pytestmark = pytest.mark.realdata


@dataclass(frozen=True)
class Expected:
    rows: int
    symbols: int
    first: datetime
    last: datetime
    timeframe: Timeframe
    nan_price_rows: int = 0
    tz: str | None = None


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# Figures from shared/data/README.md.
FILES = {
    "sp500_daily_2013-2018.csv.gz": Expected(
        619_040, 505, utc(2013, 2, 8), utc(2018, 2, 7), Timeframe.D1, 11
    ),
    "stocknet_daily_adj_2012-2017.csv.gz": Expected(
        108_592, 88, utc(2012, 9, 4), utc(2017, 9, 1), Timeframe.D1, 3
    ),
    "spy_daily_2008-2017_yahoo.csv": Expected(2_519, 1, utc(2007, 12, 31), utc(2017, 12, 29), Timeframe.D1),
    # New York wall time without an offset: 09:30–15:59 ET is 14:30–20:59 UTC in November.
    "intraday/SP500_NOV2019_IDayRVol.csv": Expected(
        1_563, 1, utc(2019, 11, 5, 14, 30), utc(2019, 11, 8, 20, 59), Timeframe.M1, tz="America/New_York"
    ),
    "crypto_btcusdt_1m_binanceus_20230301-20230321.csv.gz": Expected(
        30_240, 1, utc(2023, 3, 1), utc(2023, 3, 21, 23, 59), Timeframe.M1
    ),
    "crypto_1h_binance_20240416-20260416.csv.gz": Expected(
        105_120, 6, utc(2024, 4, 16, 1), utc(2026, 4, 16), Timeframe.H1
    ),
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_file_reads_with_readme_figures(data_dir: Path, name: str) -> None:
    exp = FILES[name]
    df = read_ohlcv(data_dir / name, tz=exp.tz)
    assert len(df) == exp.rows
    assert df["symbol"].nunique() == exp.symbols
    assert df["ts"].iloc[0] == to_ns(exp.first)
    assert df["ts"].iloc[-1] == to_ns(exp.last)
    assert df["ts"].is_monotonic_increasing
    assert infer_timeframe(df) is exp.timeframe
    assert df.attrs["nan_price_rows"] == exp.nan_price_rows
    assert df.attrs["dropped_bad_time"] == 0


def test_no_ohlcv_file_in_the_folder_goes_unchecked(data_dir: Path) -> None:
    found = set()
    for path in data_dir.rglob("*.csv*"):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as fh:
            header = {c.strip().lower() for c in fh.readline().split(",")}
        if {"open", "high", "low", "close"} <= header:
            found.add(path.relative_to(data_dir).as_posix())
    assert found == set(FILES)


def test_per_symbol_and_per_day_counts(data_dir: Path) -> None:
    sp = read_ohlcv(data_dir / "sp500_daily_2013-2018.csv.gz")
    per_symbol = sp.groupby("symbol").size()
    assert (per_symbol == 1_259).sum() == 470
    assert per_symbol[["APTV", "GOOG", "DHR", "ORCL"]].tolist() == [44, 975, 1_259 - 16, 1_259 - 2]
    hourly = read_ohlcv(data_dir / "crypto_1h_binance_20240416-20260416.csv.gz")
    assert set(hourly.groupby("symbol").size()) == {17_520}
    intraday = read_ohlcv(data_dir / "intraday/SP500_NOV2019_IDayRVol.csv", tz="America/New_York")
    days = pd.to_datetime(intraday["ts"], utc=True).dt.date.value_counts().sort_index()
    assert days.tolist() == [391, 391, 391, 390]


async def test_sp500_replay_is_time_ordered_and_counts_the_vendor_quirks(data_dir: Path) -> None:
    feed = ReplayFeed(data_dir / "sp500_daily_2013-2018.csv.gz")
    assert feed.timeframe is Timeframe.D1
    assert len(feed.symbols()) == 505
    last, count = -1, 0
    async for bar in feed.bars():
        assert bar.ts >= last
        last = bar.ts
        count += 1
    assert count + feed.skipped == 619_040
    # README: 11 rows lack open/high/low, and 12 complete rows have high < max(o, c) or
    # low > min(o, c) (CHD on 2014-05-19 even has its low above its high).
    assert feed.skipped == 23
    assert feed.rejected == {
        "not_finite": 11,
        "open_close_outside_range": 11,
        "high_below_low": 1,
    }
    assert last == to_ns(utc(2018, 2, 7))
