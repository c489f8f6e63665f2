"""File ingest: what is rejected and why, what is loaded, and that a bad file writes nothing.

The store is the real embedded one (Parquet under tmp_path); the files are CSVs written here.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradesignals.domain.bar_quality import QualityReason as R
from tradesignals.domain.market import Timeframe
from tradesignals.marketdata import ingest_files as ingest_module
from tradesignals.marketdata.feeds.base import FeedError
from tradesignals.marketdata.ingest_files import check_rows, ingest_files
from tradesignals.storage.timeseries_parquet import ParquetBarStore

HEADER = "date,symbol,open,high,low,close,volume\n"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ParquetBarStore]:
    s = ParquetBarStore(tmp_path / "lake")
    yield s
    s.close()


def write_csv(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "".join(r + "\n" for r in rows))
    return path


def daily_rows(symbol: str, days: int, start: str = "2024-01-01", price: float = 10.0) -> list[str]:
    dates = pd.date_range(start, periods=days, freq="D")
    return [
        f"{d.date()},{symbol},{price},{price + 1},{price - 1},{price + 0.5},{100 + i}"
        for i, d in enumerate(dates)
    ]


def test_rejects_each_bad_row_once_under_its_first_reason(tmp_path: Path, store: ParquetBarStore) -> None:
    good = daily_rows("AAA", 10)
    bad = [
        "2024-02-01,BBB,,11,9,10,100",  # missing open
        "2024-02-02,BBB,10,inf,9,10,100",  # infinite high
        "2024-02-03,BBB,0,11,0,10,100",  # zero price
        "2024-02-04,BBB,-1,11,9,10,100",  # negative price (and open < low: first reason wins)
        "2024-02-05,BBB,10,11,9,10,",  # missing volume
        "2024-02-06,BBB,10,11,9,10,-5",  # negative volume
        "2024-02-07,BBB,10,9,11,10,100",  # high < low
        "2024-02-08,BBB,12,11,9,10,100",  # open above high
        "2024-02-09,BBB,10,11,9,8.5,100",  # close below low
        "2024-02-10,,10,11,9,10,100",  # no symbol
        f"2024-02-11,{'X' * 65},10,11,9,10,100",  # longer than the store takes
    ]
    path = write_csv(tmp_path / "mixed.csv", good + bad + daily_rows("BBB", 3, start="2024-03-01"))

    summary = ingest_files([path], store, timeframe=Timeframe.D1)

    assert summary.rejected == {
        R.EMPTY_SYMBOL: 1,
        R.BAD_SYMBOL: 1,
        R.NOT_FINITE: 3,  # two prices and one volume
        R.NON_POSITIVE_PRICE: 2,
        R.NEGATIVE_VOLUME: 1,
        R.HIGH_BELOW_LOW: 1,
        R.OPEN_CLOSE_OUTSIDE_RANGE: 2,
    }
    assert summary.rows_read == 24
    assert summary.rows_loaded == summary.inserted == 13
    assert summary.rows_read == summary.rows_loaded + summary.rows_rejected
    assert summary.symbols == 2
    stored = store.read(Timeframe.D1)
    assert stored.groupby("symbol").size().to_dict() == {"AAA": 10, "BBB": 3}
    assert ((stored["low"] <= stored[["open", "close"]].min(axis=1)) & (stored["volume"] >= 0)).all()


def test_duplicates_exact_copies_keep_one_conflicts_keep_none(tmp_path: Path, store: ParquetBarStore) -> None:
    rows = daily_rows("AAA", 5)
    path = write_csv(
        tmp_path / "dups.csv",
        [
            *rows,
            rows[1],  # an exact repeat: harmless, one copy is loaded
            rows[1],
            "2024-01-03,AAA,10,11,9,10.75,102",  # same key as rows[2], another close: which is right?
            "2024-01-04,AAA,10,9,11,10,100",  # same key as rows[3] but invalid: rows[3] stands alone
        ],
    )

    summary = ingest_files([path], store)

    assert summary.rejected == {R.DUPLICATE: 2, R.CONFLICTING_DUPLICATE: 2, R.HIGH_BELOW_LOW: 1}
    stored = store.read(Timeframe.D1, ["AAA"])
    assert [str(d.date()) for d in pd.to_datetime(stored["ts"])] == [
        "2024-01-01",
        "2024-01-02",
        "2024-01-04",
        "2024-01-05",
    ]
    assert stored["close"].tolist() == [10.5] * 4


def test_file_missing_columns_writes_nothing(tmp_path: Path, store: ParquetBarStore) -> None:
    good = write_csv(tmp_path / "good.csv", daily_rows("AAA", 5))
    bad = write_csv(
        tmp_path / "no_volume.csv", ["2024-01-01,BBB,1,2,0.5,1.5"], header="date,symbol,open,high,low,close\n"
    )

    with pytest.raises(FeedError, match=r"no_volume\.csv.*volume") as err:
        ingest_files([good, bad], store)

    assert "\n" not in str(err.value)
    assert store.symbols(Timeframe.D1) == ["AAA"]  # the good file before it stands, nothing of BBB
    assert store.read(Timeframe.D1, ["BBB"]).empty


def test_missing_file_fails_before_anything_is_written(tmp_path: Path, store: ParquetBarStore) -> None:
    good = write_csv(tmp_path / "good.csv", daily_rows("AAA", 5))

    with pytest.raises(FeedError, match=r"nope\.csv: no such file"):
        ingest_files([good, tmp_path / "nope.csv"], store)

    assert store.symbols(Timeframe.D1) == []


def test_timeframe_inferred_or_one_line_error(tmp_path: Path, store: ParquetBarStore) -> None:
    hourly = write_csv(
        tmp_path / "hourly.csv",
        [f"2024-01-01 {h:02d}:00:00+00:00,BTCUSDT,10,11,9,10,1" for h in range(6)],
        header="timestamp,symbol,open,high,low,close,volume\n",
    )
    single = write_csv(tmp_path / "single.csv", daily_rows("AAA", 1))

    assert ingest_files([hourly], store).timeframe is Timeframe.H1
    assert len(store.read(Timeframe.H1)) == 6

    with pytest.raises(FeedError, match=r"single\.csv: cannot infer the timeframe.*--timeframe") as err:
        ingest_files([single], store)
    assert "\n" not in str(err.value)
    assert store.read(Timeframe.D1).empty

    assert ingest_files([single], store, timeframe=Timeframe.D1).inserted == 1


def test_files_of_different_timeframes_need_separate_runs(tmp_path: Path, store: ParquetBarStore) -> None:
    daily = write_csv(tmp_path / "daily.csv", daily_rows("AAA", 5))
    hourly = write_csv(
        tmp_path / "hourly.csv",
        [f"2024-01-01 {h:02d}:00:00,BBB,10,11,9,10,1" for h in range(6)],
    )

    with pytest.raises(FeedError, match=r"hourly\.csv: bars look like 1h but earlier files were 1d"):
        ingest_files([daily, hourly], store)

    assert store.symbols(Timeframe.H1) == []


def test_reingest_is_idempotent_and_corrections_update(tmp_path: Path, store: ParquetBarStore) -> None:
    rows = daily_rows("AAA", 20) + daily_rows("BBB", 20, price=50.0)
    path = write_csv(tmp_path / "bars.csv", rows)
    first = ingest_files([path], store)
    again = ingest_files([path], store)

    assert (first.inserted, first.updated, first.unchanged) == (40, 0, 0)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 40)

    rows[3] = rows[3].replace(",10.5,", ",10.25,")  # a vendor correction of one close
    corrected = write_csv(tmp_path / "bars_v2.csv.gz", [])
    with gzip.open(corrected, "wt") as fh:
        fh.write(HEADER + "".join(r + "\n" for r in rows))
    fixed = ingest_files([corrected], store)

    assert (fixed.inserted, fixed.updated, fixed.unchanged) == (0, 1, 39)
    assert store.read(Timeframe.D1, ["AAA"])["close"].iloc[3] == 10.25


def test_summary_json_and_progress(
    tmp_path: Path, store: ParquetBarStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest_module, "CHUNK_ROWS", 25)  # several whole-symbol chunks per file
    symbols = [f"S{i}" for i in range(8)]
    first = write_csv(tmp_path / "a.csv", [r for s in symbols[:5] for r in daily_rows(s, 20)])
    second = write_csv(
        tmp_path / "b.csv", [r for s in symbols[5:] for r in daily_rows(s, 20, start="2024-02-01")]
    )
    calls: list[tuple[int, int]] = []

    summary = ingest_files([first, second], store, progress=lambda done, total: calls.append((done, total)))

    total = first.stat().st_size + second.stat().st_size
    assert calls[-1] == (total, total)
    assert all(t == total for _, t in calls) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert len(calls) >= 6  # per file: once after reading, then once per chunk written
    out = json.loads(json.dumps(summary.to_json()))
    assert out["files"] == 2 and out["rows_read"] == 160 and out["rows_loaded"] == 160
    assert out["symbols"] == 8 and out["timeframe"] == "1d" and out["rejected"] == {}
    assert (out["first_ts"], out["last_ts"]) == ("2024-01-01", "2024-02-20")
    assert isinstance(out["seconds"], float)
    assert sorted(store.symbols(Timeframe.D1)) == symbols


def test_intraday_summary_uses_utc_datetimes(tmp_path: Path, store: ParquetBarStore) -> None:
    path = write_csv(
        tmp_path / "m1.csv",
        [f"2024-03-01T09:{m:02d}:00Z,X,10,11,9,10,1" for m in range(30, 40)],
        header="timestamp,ticker,Open,High,Low,Close,Volume\n",
    )
    out = ingest_files([path], store).to_json()
    assert (out["timeframe"], out["first_ts"], out["last_ts"]) == (
        "1m",
        "2024-03-01T09:30:00Z",
        "2024-03-01T09:39:00Z",
    )


def test_check_rows_on_a_large_random_frame_matches_a_row_by_row_reading() -> None:
    """The vectorised check against the obvious per-row loop, on data with every kind of fault."""
    rng = np.random.default_rng(11)
    n = 5_000
    frame = pd.DataFrame(
        {
            "ts": rng.integers(0, 400, n).astype(np.int64) * 86_400 * 10**9,
            "symbol": pd.Series(rng.choice(["A", "B", "C", ""], n, p=[0.33, 0.33, 0.33, 0.01]), dtype="str"),
            "open": rng.choice(
                [10.0, 12.0, 8.0, np.nan, np.inf, 0.0, -1.0],
                n,
                p=[0.8, 0.05, 0.05, 0.025, 0.025, 0.025, 0.025],
            ),
            "high": rng.choice([11.0, 9.5], n, p=[0.95, 0.05]),
            "low": rng.choice([9.0, 10.5], n, p=[0.95, 0.05]),
            "close": rng.choice([10.0, 10.2], n),
            "volume": rng.choice([1.0, -1.0, np.nan], n, p=[0.96, 0.02, 0.02]),
        }
    )

    keep, reasons = check_rows(frame)

    expected: dict[str, int] = {}
    seen: dict[tuple[str, int], list[int]] = {}
    first_reason: list[str | None] = []
    columns = [frame[c].tolist() for c in ("symbol", "ts", "open", "high", "low", "close", "volume")]
    for symbol, ts, open_, high, low, close, volume in zip(*columns, strict=True):
        prices = (open_, high, low, close)
        reason = None
        if not symbol:
            reason = R.EMPTY_SYMBOL
        elif not all(np.isfinite(prices)):
            reason = R.NOT_FINITE
        elif min(prices) <= 0:
            reason = R.NON_POSITIVE_PRICE
        elif not np.isfinite(volume):
            reason = R.NOT_FINITE
        elif volume < 0:
            reason = R.NEGATIVE_VOLUME
        elif high < low:
            reason = R.HIGH_BELOW_LOW
        elif not (low <= open_ <= high and low <= close <= high):
            reason = R.OPEN_CLOSE_OUTSIDE_RANGE
        first_reason.append(reason)
        if reason is None:
            seen.setdefault((symbol, ts), []).append(len(first_reason) - 1)
    values = frame[["open", "high", "low", "close", "volume"]].to_numpy()
    for idx in seen.values():
        if len(idx) > 1:
            distinct = {tuple(values[i]) for i in idx}
            for pos, i in enumerate(idx):
                if len(distinct) > 1:
                    first_reason[i] = R.CONFLICTING_DUPLICATE
                elif pos > 0:
                    first_reason[i] = R.DUPLICATE
    for reason in first_reason:
        if reason is not None:
            expected[reason] = expected.get(reason, 0) + 1

    assert reasons == expected
    assert keep.tolist() == [r is None for r in first_reason]
    assert set(expected) >= {
        R.EMPTY_SYMBOL,
        R.NOT_FINITE,
        R.HIGH_BELOW_LOW,
        R.DUPLICATE,
        R.CONFLICTING_DUPLICATE,
    }


def test_corporate_actions_are_counted_as_flags_and_loaded(tmp_path: Path, store: ParquetBarStore) -> None:
    rng = np.random.default_rng(11)
    dates = pd.date_range("2023-01-02", periods=120, freq="B")
    rows = []
    for symbol, event in (("SPLT", "split"), ("GLCH", "glitch"), ("CALM", None)):
        close = 40 * np.exp(np.cumsum(rng.normal(0, 0.01, len(dates))))
        if event == "split":
            close[80:] /= 2.0
        elif event == "glitch":
            close[90] *= 1.35
        rows += [
            f"{d.date()},{symbol},{c:.4f},{c * 1.01:.4f},{c * 0.99:.4f},{c:.4f},1000"
            for d, c in zip(dates, close, strict=True)
        ]
    path = write_csv(tmp_path / "actions.csv", rows)

    summary = ingest_files([path], store)

    assert summary.flagged == {R.REVERSED_JUMP: 1, R.SPLIT_RATIO: 1}
    assert summary.rejected == {} and summary.rows_loaded == 360  # flagged bars are still loaded
    out = json.loads(json.dumps(summary.to_json()))
    assert out["flagged"] == {"reversed_jump": 1, "split_ratio": 1} and out["rows_flagged"] == 2
