"""``tradesignals features PATH --out OUT.parquet``: the table's columns are a contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradesignals.domain.market import Timeframe
from tradesignals.features import FEATURE_NAMES
from tradesignals.features.batch import compute_features
from tradesignals.features.compute_file import CONTRACT_COLUMNS, OUTPUT_COLUMNS, compute_features_file
from tradesignals.marketdata.feeds.base import FeedError
from tradesignals.marketdata.ohlcv_file import read_ohlcv

NAMED_IN_THE_ISSUE = (
    "sma_20",
    "ema_20",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "atr_14",
    "adx_14",
    "obv",
    "ret_1",
    "ret_5",
    "ret_20",
)


def write_daily_csv(path: Path, symbols: dict[str, int], seed: int = 0) -> pd.DataFrame:
    """A vendor-style daily file (``date,open,high,low,close,volume,Name``), rows by symbol."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2023-01-02", periods=max(symbols.values()))
    parts = []
    for sym, n in symbols.items():
        c = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        o = c * np.exp(rng.normal(0, 0.003, n))
        parts.append(
            pd.DataFrame(
                {
                    "date": dates[:n].strftime("%Y-%m-%d"),
                    "open": o,
                    "high": np.maximum(o, c) * 1.01,
                    "low": np.minimum(o, c) * 0.99,
                    "close": c,
                    "volume": rng.integers(1_000, 100_000, n).astype(float),
                    "Name": sym,
                }
            )
        )
    df = pd.concat(parts, ignore_index=True)
    df.to_csv(path, index=False)
    return df


def test_table_columns_rows_and_order(tmp_path: Path) -> None:
    src = tmp_path / "daily.csv"
    write_daily_csv(src, {"MSFT": 60, "AAPL": 80, "ZZZ": 5})
    out = tmp_path / "nested" / "features.parquet"  # the folder does not exist yet
    summary = compute_features_file(src, out)

    table = pd.read_parquet(out)
    assert tuple(table.columns) == OUTPUT_COLUMNS
    assert tuple(table.columns[2:17]) == NAMED_IN_THE_ISSUE == CONTRACT_COLUMNS
    assert table.columns[0] == "timestamp" and table.columns[1] == "symbol"
    assert str(table["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert all(table[name].dtype == np.float64 for name in FEATURE_NAMES) and table["warm"].dtype == bool

    # One row per symbol and bar, sorted by symbol then time.
    assert len(table) == 145 and not table.duplicated(["symbol", "timestamp"]).any()
    assert table["symbol"].value_counts().to_dict() == {"AAPL": 80, "MSFT": 60, "ZZZ": 5}
    assert table.equals(table.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True))

    # The same numbers as the batch tier on the same file.
    ref = compute_features(read_ohlcv(src))
    ref = ref.assign(timestamp=pd.to_datetime(ref["ts"], unit="ns", utc=True)).sort_values(["symbol", "ts"])
    np.testing.assert_array_equal(table[list(FEATURE_NAMES)].to_numpy(), ref[list(FEATURE_NAMES)].to_numpy())

    assert summary.rows == 145 and summary.symbols == 3 and summary.features == len(FEATURE_NAMES)
    assert summary.timeframe == "1d" and summary.timeframe_inferred
    assert summary.warm_rows == int(table["warm"].sum()) == (80 - 33) + (60 - 33)
    assert summary.first == "2023-01-02T00:00:00+00:00" and summary.out == str(out)
    assert summary.as_dict()["bad_rows"] == 0
    assert not list(out.parent.glob(".*.tmp"))


def test_bad_and_empty_rows_are_kept_and_counted(tmp_path: Path) -> None:
    src = tmp_path / "daily.csv"
    df = write_daily_csv(src, {"AAPL": 70})
    df.loc[40, "high"] = np.nan
    df.loc[50, "volume"] = 0.0
    df.to_csv(src, index=False)
    summary = compute_features_file(src, tmp_path / "f.parquet")
    table = pd.read_parquet(tmp_path / "f.parquet")
    assert len(table) == 70 and summary.bad_rows == 1 and summary.empty_rows == 1
    assert table.loc[[40, 50], list(FEATURE_NAMES)].isna().all().all()
    assert table["warm"].iloc[33:40].all() and not table["warm"].iloc[40:74].any()


def test_intraday_file_in_new_york_time_needs_its_zone(tmp_path: Path) -> None:
    """The S&P minute file's layout: naive New York wall time, Close before High, no symbol."""
    times = pd.DatetimeIndex(
        [
            *pd.date_range("2019-11-05 09:30", "2019-11-05 15:59", freq="1min"),
            *pd.date_range("2019-11-06 09:30", "2019-11-06 15:59", freq="1min"),
        ]
    )
    rng = np.random.default_rng(1)
    c = 3000 + np.cumsum(rng.normal(0, 1, len(times)))
    pd.DataFrame(
        {
            "Date": times.strftime("%Y-%m-%d %H:%M"),
            "Open": c,
            "Close": c,
            "High": c + 1,
            "Low": c - 1,
            "Volume": rng.integers(1_000, 5_000, len(times)),
        }
    ).to_csv(tmp_path / "SPX_1m.csv", index=False)
    out = tmp_path / "spx.parquet"
    summary = compute_features_file(tmp_path / "SPX_1m.csv", out, tz="America/New_York")
    table = pd.read_parquet(out)
    assert summary.timeframe == "1m" and table["symbol"].unique().tolist() == ["SPX_1M"]
    assert table["timestamp"].iloc[0] == pd.Timestamp("2019-11-05 14:30", tz="UTC")
    # Day two is warm throughout: the exchange's sessions were recognised (no restart overnight).
    assert table["warm"].iloc[390:].all() and not table["warm"].iloc[:390].any()
    assert table["vwap"].iloc[390] == pytest.approx((c[390] + 1 + c[390] - 1 + c[390]) / 3)

    # Read as UTC, the bars fall before the NYSE's open: refused, naming --tz, nothing written.
    with pytest.raises(FeedError, match=r"no UTC offset.*pass --tz America/New_York$"):
        compute_features_file(tmp_path / "SPX_1m.csv", tmp_path / "utc.parquet")
    assert not (tmp_path / "utc.parquet").exists()


def test_explicit_timeframe_and_unreadable_input(tmp_path: Path) -> None:
    src = tmp_path / "one.csv"
    write_daily_csv(src, {"AAPL": 1})
    summary = compute_features_file(src, tmp_path / "one.parquet", timeframe=Timeframe.D1)
    assert summary.rows == 1 and not summary.timeframe_inferred

    with pytest.raises(FeedError, match="no such file"):
        compute_features_file(tmp_path / "missing.csv", tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()
