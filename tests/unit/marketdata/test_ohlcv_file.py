from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradesignals.domain.market import Timeframe, to_ns
from tradesignals.marketdata.feeds.base import FeedError
from tradesignals.marketdata.ohlcv_file import (
    OUTPUT_COLUMNS,
    infer_timeframe,
    parse_prices,
    price_choice,
    read_ohlcv,
)


def ns(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return to_ns(datetime(year, month, day, hour, minute, tzinfo=UTC))


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_yahoo_style_file_odd_column_order_and_no_symbol_column(tmp_path: Path) -> None:
    f = write(
        tmp_path / "spy_daily_2008.csv",
        "Date,Open,Close,High,Low,Adj Close,Volume\n2008-01-03,10,11,12,9,10.5,100\n2008-01-02,20,21,22,19,20.5,200\n",
    )
    df = read_ohlcv(f, prices="raw")
    assert df.attrs["prices"] == "raw"
    assert tuple(df.columns) == OUTPUT_COLUMNS
    assert [str(t) for t in df.dtypes] == ["int64", "str", *["float64"] * 5]
    assert df["ts"].tolist() == [ns(2008, 1, 2), ns(2008, 1, 3)]
    assert df["symbol"].tolist() == ["SPY_DAILY_2008"] * 2
    # Close came before High in the file; the values must land in the right columns.
    assert df.iloc[0][["open", "high", "low", "close", "volume"]].tolist() == [20, 22, 19, 21, 200]
    assert read_ohlcv(f, symbol="SPY")["symbol"].tolist() == ["SPY", "SPY"]


@pytest.mark.parametrize("spelling", ["Adj Close", "adj_close", "AdjClose", "Adjusted Close"])
def test_adjusted_close_is_used_by_default_scaling_prices_and_volume(tmp_path: Path, spelling: str) -> None:
    f = write(
        tmp_path / "adj.csv",
        f"Date,Symbol,Open,High,Low,Close,{spelling},Volume\n"
        "2020-01-02,A,10,12,8,11,5.5,100\n"  # half: a later 2:1 split, adjusted back
        "2020-01-03,A,20,22,19,21,21,200\n"
        "2020-01-06,A,20,22,19,21,,200\n",  # no adjusted close: the row cannot be priced
    )
    assert price_choice(f) == "adjusted" and price_choice(f, "raw") == "raw"
    df = read_ohlcv(f)
    assert df.attrs["prices"] == "adjusted"
    rows = df[["open", "high", "low", "close", "volume"]].to_numpy()
    assert rows[0].tolist() == [5.0, 6.0, 4.0, 5.5, 200.0]  # volume by the inverse factor
    assert rows[1].tolist() == [20.0, 22.0, 19.0, 21.0, 200.0]
    assert np.isnan(rows[2][:4]).all()
    raw = read_ohlcv(f, prices="raw")
    assert raw.attrs["prices"] == "raw" and raw["close"].tolist() == [11.0, 21.0, 21.0]


def test_prices_option_without_an_adjusted_column(tmp_path: Path) -> None:
    f = write(tmp_path / "plain.csv", "Date,Open,High,Low,Close,Volume\n2020-01-02,10,12,8,11,100\n")
    assert read_ohlcv(f).attrs["prices"] == "raw" and price_choice(f) == "raw"
    with pytest.raises(
        FeedError, match=r"plain.csv: no adjusted close column \(Adj Close\); use --prices raw"
    ):
        read_ohlcv(f, prices="adjusted")
    assert parse_prices(" Raw ") == "raw" and parse_prices(None) is None
    with pytest.raises(ValueError, match="expected adjusted or raw"):
        parse_prices("split")


def test_symbol_column_spellings_are_case_insensitive_and_win_over_the_argument(tmp_path: Path) -> None:
    for header in ("Name", "TICKER", "symbol"):
        f = write(
            tmp_path / f"{header}.csv",
            f"date,open,high,low,close,volume,{header}\n2020-01-02,1,2,0.5,1.5,10,ab \n",
        )
        assert read_ohlcv(f, symbol="IGNORED")["symbol"].tolist() == ["ab"]


def test_sorted_by_ts_then_symbol_stably(tmp_path: Path) -> None:
    rows = [
        "2020-01-03,B,1,1,1,1,1",
        "2020-01-02,B,2,2,2,2,2",
        "2020-01-02,A,3,3,3,3,3",
        "2020-01-02,A,4,4,4,4,4",  # duplicate (ts, symbol): file order must be kept
        "2020-01-03,A,5,5,5,5,5",
    ]
    f = write(tmp_path / "x.csv", "date,symbol,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    df = read_ohlcv(f)
    assert list(zip(df["symbol"], df["open"], strict=True)) == [
        ("A", 3),
        ("A", 4),
        ("B", 2),
        ("A", 5),
        ("B", 1),
    ]


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2024-01-02", ns(2024, 1, 2)),
        ("2024-01-02 09:30:00", ns(2024, 1, 2, 9, 30)),  # naive = UTC
        ("2024-01-02T09:30:00-05:00", ns(2024, 1, 2, 14, 30)),  # aware → converted
        ("2024-01-02 14:30:00+00:00", ns(2024, 1, 2, 14, 30)),
        ("1704205800000", ns(2024, 1, 2, 14, 30)),  # epoch ms (Binance open_time)
        ("1704205800", ns(2024, 1, 2, 14, 30)),  # epoch s
    ],
)
def test_time_column_forms(tmp_path: Path, stamp: str, expected: int) -> None:
    f = write(tmp_path / "t.csv", f"open_time,open,high,low,close,volume\n{stamp},1,2,0.5,1.5,3\n")
    assert read_ohlcv(f)["ts"].tolist() == [expected]


def test_naive_times_can_be_read_in_an_exchange_timezone(tmp_path: Path) -> None:
    f = write(tmp_path / "t.csv", "Date,Open,High,Low,Close,Volume\n2019-11-05 09:30:00,1,2,0.5,1.5,3\n")
    assert read_ohlcv(f, tz="America/New_York")["ts"].tolist() == [ns(2019, 11, 5, 14, 30)]


def test_separate_date_and_time_columns_are_combined(tmp_path: Path) -> None:
    f = write(tmp_path / "t.csv", "Date,Time,Open,High,Low,Close,Volume\n2024-01-02,09:31,1,2,0.5,1.5,3\n")
    assert read_ohlcv(f)["ts"].tolist() == [ns(2024, 1, 2, 9, 31)]


def test_gzip_csv_and_parquet_read_the_same(tmp_path: Path) -> None:
    text = "timestamp,symbol,open,high,low,close,volume\n2024-01-02 00:00:00+00:00,BTC,1,2,0.5,1.5,3.25\n"
    gz = tmp_path / "c.csv.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    pq = tmp_path / "c.parquet"
    pd.read_csv(gz).to_parquet(pq)
    a, b = read_ohlcv(gz), read_ohlcv(pq)
    pd.testing.assert_frame_equal(a, b)
    assert a.iloc[0].tolist() == [ns(2024, 1, 2), "BTC", 1.0, 2.0, 0.5, 1.5, 3.25]


def test_nan_prices_are_kept_and_counted(tmp_path: Path) -> None:
    f = write(
        tmp_path / "n.csv",
        "date,open,high,low,close,volume,Name\n2015-07-17,,,,44.5,100,DHR\n2015-07-20,44,45,43,44.5,100,DHR\n",
    )
    df = read_ohlcv(f)
    assert len(df) == 2
    assert np.isnan(df["open"].iloc[0])
    assert df.attrs["nan_price_rows"] == 1
    assert df.attrs["source"] == str(f)


def test_rows_with_unreadable_times_are_dropped_and_counted(tmp_path: Path) -> None:
    f = write(
        tmp_path / "b.csv",
        "date,open,high,low,close,volume\n2020-01-02,1,1,1,1,1\nsoon,2,2,2,2,2\n,3,3,3,3,3\n",
    )
    df = read_ohlcv(f)
    assert df["open"].tolist() == [1.0]
    assert df.attrs["dropped_bad_time"] == 2


def test_missing_columns_is_one_line_naming_file_missing_and_found(tmp_path: Path) -> None:
    f = write(tmp_path / "prices.csv", "when,price,Volume\n2024-01-02,10,5\n")
    with pytest.raises(FeedError) as err:
        read_ohlcv(f)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(f) in msg
    assert "missing column(s) time (timestamp|datetime|date|time|open_time), open, high, low, close;" in msg
    assert msg.endswith("found: when, price, Volume")


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("absent.csv", None, "no such file"),
        ("empty.csv", b"", "file is empty"),
        ("broken.csv.gz", b"\x1f\x8b\x08\x00 definitely not gzip", "cannot read as CSV"),
        ("bad.parquet", b"PAR1 not really", "cannot read as Parquet"),
        ("all_bad_times.csv", b"date,open,high,low,close,volume\nsoon,1,1,1,1,1\n", "no readable timestamps"),
    ],
)
def test_unreadable_files_raise_one_line(
    tmp_path: Path, name: str, content: bytes | None, expected: str
) -> None:
    f = tmp_path / name
    if content is not None:
        f.write_bytes(content)
    with pytest.raises(FeedError) as err:
        read_ohlcv(f)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(str(f))
    assert expected in msg


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match="is a directory"):
        read_ohlcv(tmp_path)


def frame(ts: list[int], symbols: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame({"ts": ts, "symbol": symbols or ["X"] * len(ts)})


def test_infer_timeframe_uses_the_median_spacing_per_symbol() -> None:
    day = Timeframe.D1.ns
    weekdays = [d * day for d in range(30) if d % 7 not in (5, 6)]  # weekend gaps do not matter
    assert infer_timeframe(frame(weekdays)) is Timeframe.D1
    minutes = [i * 60 * 10**9 for i in range(10)]
    # Two symbols on the same minutes: interleaved they are 0 apart, per symbol 1 minute.
    both = frame(minutes + minutes, ["A"] * 10 + ["B"] * 10).sort_values("ts", kind="stable")
    assert infer_timeframe(both) is Timeframe.M1
    assert infer_timeframe(frame([i * 3600 * 10**9 for i in range(5)])) is Timeframe.H1


def test_infer_timeframe_is_none_without_a_matching_spacing() -> None:
    assert infer_timeframe(frame([0])) is None
    assert infer_timeframe(frame([0, 0, 0])) is None
    assert infer_timeframe(frame([i * 120 * 10**9 for i in range(10)])) is None  # 2m is not a timeframe
    assert infer_timeframe(frame([0, 0], ["A", "B"])) is None
