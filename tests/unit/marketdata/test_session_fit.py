"""Naive intraday times that only fit the exchange's hours as local time: one line naming --tz."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradesignals.domain.market import Timeframe
from tradesignals.marketdata.feeds.base import FeedError
from tradesignals.marketdata.ingest_files import ingest_files
from tradesignals.marketdata.ohlcv_file import read_ohlcv
from tradesignals.marketdata.session_fit import check_session_fit
from tradesignals.storage.timeseries_parquet import ParquetBarStore


def five_minute_file(path: Path, days: list[str], *, hours: tuple[str, str], suffix: str = "") -> Path:
    """5-minute bars of one stock and one coin; times written as ``YYYY-MM-DD HH:MM`` + ``suffix``."""
    rows = []
    rng = np.random.default_rng(0)
    for day in days:
        for t in pd.date_range(f"{day} {hours[0]}", f"{day} {hours[1]}", freq="5min", inclusive="left"):
            c = 100 + rng.normal()
            rows.append(f"{t:%Y-%m-%d %H:%M}{suffix},AAPL,{c},{c + 1},{c - 1},{c},100")
    path.write_text("timestamp,symbol,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    return path


DAYS = ["2024-03-04", "2024-03-05", "2024-07-08", "2024-07-09"]  # winter and summer time


def test_new_york_wall_times_without_offset_are_refused_naming_tz(tmp_path: Path) -> None:
    path = five_minute_file(tmp_path / "aapl_5m.csv", DAYS, hours=("09:30", "16:00"))
    store = ParquetBarStore(tmp_path / "lake")
    try:
        with pytest.raises(FeedError) as err:
            ingest_files([path], store)
        message = str(err.value)
        assert "\n" not in message and message.startswith(str(path))
        assert "outside every XNYS session" in message and message.endswith("pass --tz America/New_York")
        assert store.read(Timeframe.M5).empty  # nothing written

        loaded = ingest_files([path], store, tz="America/New_York")
        assert loaded.rows_loaded == 4 * 78 and loaded.rejected == {}
    finally:
        store.close()


def test_times_that_fit_as_utc_or_carry_an_offset_or_are_daily_pass(tmp_path: Path) -> None:
    utc = five_minute_file(tmp_path / "utc.csv", ["2024-03-04"], hours=("14:30", "21:00"))
    check_session_fit(read_ohlcv(utc), Timeframe.M5, source="utc.csv")  # the session, in UTC
    offset = five_minute_file(tmp_path / "off.csv", ["2024-03-04"], hours=("09:30", "16:00"), suffix="-05:00")
    frame = read_ohlcv(offset)
    assert not frame.attrs["naive_times"]
    check_session_fit(frame, Timeframe.M5, source="off.csv")
    naive = read_ohlcv(five_minute_file(tmp_path / "ny.csv", DAYS, hours=("09:30", "16:00")))
    assert naive.attrs["naive_times"]
    check_session_fit(naive, Timeframe.D1, source="ny.csv")  # daily bars are not judged
    with pytest.raises(FeedError, match="--tz"):
        check_session_fit(naive, Timeframe.M5, source="ny.csv")
    # A coin trades around the clock: no reading of its times is wrong.
    check_session_fit(naive.assign(symbol="BTCUSDT"), Timeframe.M5, source="ny.csv")
