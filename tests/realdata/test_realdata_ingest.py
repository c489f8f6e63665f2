"""Ingest the real shared files into the embedded store and check the figures their README states."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tradesignals.domain.bar_quality import QualityReason as R
from tradesignals.domain.market import Timeframe
from tradesignals.marketdata.ingest_files import ingest_files
from tradesignals.storage.timeseries_parquet import ParquetBarStore

pytestmark = pytest.mark.realdata

SP500 = "sp500_daily_2013-2018.csv.gz"
CRYPTO_1H = "crypto_1h_binance_20240416-20260416.csv.gz"
VALUES = ["open", "high", "low", "close", "volume"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ParquetBarStore]:
    s = ParquetBarStore(tmp_path / "lake")
    yield s
    s.close()


def test_sp500_daily_ingests_with_readme_figures_and_is_idempotent(
    data_dir: Path, store: ParquetBarStore
) -> None:
    path = data_dir / SP500

    first = ingest_files([path], store)

    assert first.timeframe is Timeframe.D1
    assert first.rows_read == 619_040
    assert first.symbols == 505
    assert (first.to_json()["first_ts"], first.to_json()["last_ts"]) == ("2013-02-08", "2018-02-07")
    # README: 11 rows miss open/high/low; of the complete rows, 1 has high < max(open, close) and 11
    # have low > min(open, close) — 12 vendor quirks. One of them (AOS 2014-05-19: high 23.595, low
    # 23.85) has high < low outright, so it counts there; the other 11 as open/close outside.
    assert first.rejected == {R.NOT_FINITE: 11, R.HIGH_BELOW_LOW: 1, R.OPEN_CLOSE_OUTSIDE_RANGE: 11}
    assert first.inserted == first.rows_loaded == 619_040 - 23

    raw = pd.read_csv(path).dropna(subset=["open", "high", "low"])
    quirks = raw[
        (raw["high"] < raw[["open", "close"]].max(axis=1)) | (raw["low"] > raw[["open", "close"]].min(axis=1))
    ]
    assert len(quirks) == 12  # the README's 1 + 11, disjoint
    stored = store.read(Timeframe.D1)
    assert len(stored) == first.rows_loaded
    stored_keys = set(
        zip(stored["symbol"], pd.to_datetime(stored["ts"]).dt.strftime("%Y-%m-%d"), strict=True)
    )
    assert not stored_keys & set(zip(quirks["Name"], quirks["date"], strict=True))

    aapl = store.read(
        Timeframe.D1,
        ["AAPL"],
        start_ns=pd.Timestamp("2013-02-08", tz="UTC").value,
        end_ns=pd.Timestamp("2013-02-09", tz="UTC").value,
    )
    expected = raw.query("Name == 'AAPL' and date == '2013-02-08'")
    assert aapl[VALUES].to_numpy().tolist() == expected[VALUES].to_numpy(dtype=float).tolist()
    assert store.range(Timeframe.D1, "APTV") is not None and len(store.read(Timeframe.D1, ["APTV"])) == 44

    again = ingest_files([path], store)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, first.rows_loaded)


def test_crypto_hourly_ingests_and_reads_back(data_dir: Path, store: ParquetBarStore) -> None:
    path = data_dir / CRYPTO_1H

    summary = ingest_files([path], store)

    assert summary.timeframe is Timeframe.H1
    assert (summary.rows_read, summary.rows_loaded, summary.rejected) == (105_120, 105_120, {})
    assert summary.symbols == 6
    assert store.symbols(Timeframe.H1) == ["ADAUSDT", "BNBUSDT", "BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]

    btc = store.read(Timeframe.H1, ["BTCUSDT"])
    raw = pd.read_csv(path).query("symbol == 'BTCUSDT'").reset_index(drop=True)
    assert len(btc) == 17_520
    assert (
        btc["ts"].tolist()
        == pd.to_datetime(raw["timestamp"], utc=True).dt.as_unit("ns").astype("int64").tolist()
    )
    assert (btc[VALUES].to_numpy() == raw[VALUES].to_numpy()).all()
    assert store.range(Timeframe.H1, "BTCUSDT") == (btc["ts"].iloc[0], btc["ts"].iloc[-1])


def test_intraday_file_with_local_times_lands_in_utc(data_dir: Path, store: ParquetBarStore) -> None:
    """The S&P 500 1-minute file writes New York wall time without an offset; ``tz`` says so."""
    summary = ingest_files(
        [data_dir / "intraday" / "SP500_NOV2019_IDayRVol.csv"], store, tz="America/New_York"
    )

    assert summary.timeframe is Timeframe.M1
    assert (summary.rows_read, summary.rows_loaded) == (1_563, 1_563)
    # 2019-11-05 is after the DST change: 09:30 EST is 14:30 UTC; the last bar, 15:59 EST on the 8th.
    assert (summary.to_json()["first_ts"], summary.to_json()["last_ts"]) == (
        "2019-11-05T14:30:00Z",
        "2019-11-08T20:59:00Z",
    )
    (symbol,) = store.symbols(Timeframe.M1)
    nov6 = store.read(
        Timeframe.M1,
        [symbol],
        pd.Timestamp("2019-11-06", tz="America/New_York").value,
        pd.Timestamp("2019-11-07", tz="America/New_York").value,
    )
    assert len(nov6) == 391
