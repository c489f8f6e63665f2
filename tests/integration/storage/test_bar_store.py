"""The BarStore contract, proven by the same tests on Parquet files and on the real PostgreSQL server.

Every PostgreSQL test gets a schema of its own (dropped afterwards), so tests never see each
other's rows; every Parquet test gets its own tmp_path.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradesignals.domain.market import Timeframe
from tradesignals.storage.base import StorageError
from tradesignals.storage.timeseries import BAR_COLUMNS, BarStore, UpsertResult
from tradesignals.storage.timeseries_parquet import ParquetBarStore
from tradesignals.storage.timeseries_pg import PostgresBarStore

DAY = 86_400 * 1_000_000_000
HOUR = 3_600 * 1_000_000_000
T0 = int(pd.Timestamp("2019-12-30", tz="UTC").value)  # spans a year boundary (and so Parquet buckets)


def bars(symbol: str, n: int, *, start: int = T0, step: int = DAY, seed: int = 0) -> pd.DataFrame:
    """Consistent OHLCV rows with awkward floats (not round decimals), so exactness is really tested."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = close * (1 + rng.normal(0, 0.003, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
    return pd.DataFrame(
        {
            "ts": start + step * np.arange(n, dtype=np.int64),
            "symbol": pd.Series([symbol] * n, dtype="str"),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.uniform(0, 1e6, n),
        }
    )


def sorted_frame(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["symbol", "ts"], ignore_index=True)[list(BAR_COLUMNS)]


@pytest.fixture(params=["parquet", pytest.param("postgres", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BarStore]:
    if request.param == "parquet":
        impl: BarStore = ParquetBarStore(tmp_path / "lake")
        yield impl
        impl.close()
        return
    import psycopg

    url: str = request.getfixturevalue("pg_url")
    schema = f"bars_{uuid.uuid4().hex[:10]}"
    pg = PostgresBarStore(url, schema=schema)
    yield pg
    pg.close()
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def lake_files(store: BarStore) -> dict[str, tuple[int, str]]:
    """Every file under a Parquet store's root: (mtime_ns, sha256), to prove a no-op write is a no-op."""
    assert isinstance(store, ParquetBarStore)
    out = {}
    for dirpath, _, names in os.walk(store.root):
        for name in names:
            path = Path(dirpath) / name
            out[str(path)] = (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def test_round_trip_is_exact(store: BarStore) -> None:
    frame = pd.concat([bars("MSFT", 400, seed=1), bars("AAPL", 400, seed=2)], ignore_index=True)
    frame.loc[3, "volume"] = 0.0
    frame.loc[4, "open"] = 1e-9  # tiny and huge magnitudes survive bit for bit
    frame.loc[5, "high"] = 1.7976931348623157e308

    assert store.upsert(Timeframe.D1, frame) == UpsertResult(inserted=800)
    got = store.read(Timeframe.D1)

    pd.testing.assert_frame_equal(got, sorted_frame(frame), check_exact=True)
    assert list(got.columns) == list(BAR_COLUMNS)
    assert got["ts"].dtype == np.int64 and all(got[c].dtype == np.float64 for c in BAR_COLUMNS[2:])


def test_nanosecond_timestamps_round_trip(store: BarStore) -> None:
    frame = bars("BTCUSDT", 3, step=HOUR)
    frame["ts"] += np.array([1, 999, 123_456_789], dtype=np.int64)  # below microsecond precision

    store.upsert(Timeframe.H1, frame)

    assert store.read(Timeframe.H1)["ts"].tolist() == frame["ts"].tolist()


def test_second_upsert_of_same_rows_changes_nothing(store: BarStore) -> None:
    frame = pd.concat([bars("AAPL", 300), bars("MSFT", 300, seed=3)], ignore_index=True)
    store.upsert(Timeframe.D1, frame)
    before_files = lake_files(store) if isinstance(store, ParquetBarStore) else None

    again = store.upsert(Timeframe.D1, frame.sample(frac=1.0, random_state=7))  # order must not matter

    assert again == UpsertResult(inserted=0, updated=0, unchanged=600)
    pd.testing.assert_frame_equal(store.read(Timeframe.D1), sorted_frame(frame), check_exact=True)
    if before_files is not None:
        assert lake_files(store) == before_files


def test_changed_value_replaces_row_and_is_counted(store: BarStore) -> None:
    frame = bars("AAPL", 50)
    store.upsert(Timeframe.D1, frame)
    changed = frame.copy()
    changed.loc[[10], "close"] *= 1.01
    changed.loc[20, "volume"] = 42.0
    new_row = bars("AAPL", 1, start=int(frame["ts"].iloc[-1]) + DAY, seed=9)
    batch = pd.concat([changed, new_row], ignore_index=True)

    result = store.upsert(Timeframe.D1, batch)

    assert result == UpsertResult(inserted=1, updated=2, unchanged=48)
    got = store.read(Timeframe.D1, ["AAPL"])
    pd.testing.assert_frame_equal(got, sorted_frame(batch), check_exact=True)


def test_partial_overlap_inserts_new_and_keeps_old(store: BarStore) -> None:
    full = bars("ETHUSDT", 200, step=HOUR)
    store.upsert(Timeframe.H1, full.iloc[:120])

    result = store.upsert(Timeframe.H1, full.iloc[100:])

    assert result == UpsertResult(inserted=80, updated=0, unchanged=20)
    pd.testing.assert_frame_equal(store.read(Timeframe.H1), full, check_exact=True)


def test_range_reads_are_half_open(store: BarStore) -> None:
    frame = bars("AAPL", 30)
    store.upsert(Timeframe.D1, frame)
    ts = frame["ts"].tolist()

    window = store.read(Timeframe.D1, ["AAPL"], start_ns=ts[5], end_ns=ts[10])
    assert window["ts"].tolist() == ts[5:10]  # start included, end excluded
    assert (
        store.read(Timeframe.D1, ["AAPL"], start_ns=ts[5] + 1, end_ns=ts[10] + 1)["ts"].tolist() == ts[6:11]
    )
    assert store.read(Timeframe.D1, start_ns=ts[25])["ts"].tolist() == ts[25:]
    assert store.read(Timeframe.D1, end_ns=ts[3])["ts"].tolist() == ts[:3]
    assert store.read(Timeframe.D1, start_ns=ts[7], end_ns=ts[7]).empty
    with pytest.raises(ValueError, match="after end_ns"):
        store.read(Timeframe.D1, start_ns=ts[8], end_ns=ts[7])


def test_many_symbols_sorted_and_filtered(store: BarStore) -> None:
    names = [f"S{i:03d}" for i in range(120)] + ["BRK.B", "BTC/USDT", "a-lower"]
    frame = pd.concat([bars(s, 15, seed=i) for i, s in enumerate(names)], ignore_index=True)
    assert store.upsert(Timeframe.D1, frame).inserted == len(frame)

    everything = store.read(Timeframe.D1)
    pd.testing.assert_frame_equal(everything, sorted_frame(frame), check_exact=True)
    assert store.symbols(Timeframe.D1) == sorted(names)  # code-point order: upper before lower case

    some = store.read(Timeframe.D1, ["S007", "BTC/USDT", "NOPE", "S007"])
    assert some["symbol"].unique().tolist() == ["BTC/USDT", "S007"]
    assert len(some) == 30

    one_day = int(frame["ts"].iloc[4])
    day = store.read(Timeframe.D1, start_ns=one_day, end_ns=one_day + DAY)
    assert len(day) == len(names) and set(day["ts"]) == {one_day}
    assert day["symbol"].tolist() == sorted(names)


def test_timeframes_are_separate(store: BarStore) -> None:
    store.upsert(Timeframe.D1, bars("AAPL", 5))
    store.upsert(Timeframe.H1, bars("AAPL", 7, step=HOUR, seed=1))
    store.upsert(Timeframe.M1, bars("BTCUSDT", 9, step=60_000_000_000, seed=2))

    assert len(store.read(Timeframe.D1)) == 5
    assert len(store.read(Timeframe.H1)) == 7
    assert store.symbols(Timeframe.M1) == ["BTCUSDT"]
    assert store.symbols(Timeframe.M5) == []


def test_empty_reads_have_canonical_shape(store: BarStore) -> None:
    for got in (
        store.read(Timeframe.D1),
        store.read(Timeframe.D1, ["AAPL"]),
        store.read(Timeframe.D1, [], start_ns=0, end_ns=T0),
    ):
        assert got.empty
        assert list(got.columns) == list(BAR_COLUMNS)
        assert got["ts"].dtype == np.int64 and got["close"].dtype == np.float64
    store.upsert(Timeframe.D1, bars("AAPL", 5))
    assert store.read(Timeframe.D1, ["AAPL"], start_ns=0, end_ns=T0).empty
    assert store.read(Timeframe.D1, ["MSFT"]).empty
    assert store.upsert(Timeframe.D1, bars("AAPL", 0)) == UpsertResult()


def test_symbols_and_range(store: BarStore) -> None:
    assert store.symbols(Timeframe.D1) == []
    assert store.range(Timeframe.D1, "AAPL") is None
    aapl = bars("AAPL", 400)  # crosses 2020 into 2021: first and last bars sit in different buckets
    store.upsert(Timeframe.D1, pd.concat([aapl, bars("MSFT", 3, start=T0 + 10 * DAY)]))

    assert store.symbols(Timeframe.D1) == ["AAPL", "MSFT"]
    assert store.range(Timeframe.D1, "AAPL") == (int(aapl["ts"].iloc[0]), int(aapl["ts"].iloc[-1]))
    assert store.range(Timeframe.D1, "MSFT") == (T0 + 10 * DAY, T0 + 12 * DAY)
    assert store.range(Timeframe.D1, "NOPE") is None
    assert store.range(Timeframe.H1, "AAPL") is None


def test_refuses_ambiguous_frames(store: BarStore) -> None:
    frame = bars("AAPL", 5)
    with pytest.raises(ValueError, match="duplicate"):
        store.upsert(Timeframe.D1, pd.concat([frame, frame.iloc[[2]]], ignore_index=True))
    with pytest.raises(ValueError, match="lack column"):
        store.upsert(Timeframe.D1, frame.drop(columns="volume"))
    with pytest.raises(ValueError, match="integer nanoseconds"):
        store.upsert(Timeframe.D1, frame.assign(ts=frame["ts"].astype("float64")))
    with pytest.raises(ValueError, match="invalid symbol"):
        store.upsert(Timeframe.D1, frame.assign(symbol=""))
    assert store.read(Timeframe.D1).empty  # nothing half-written by any of the refusals


def test_parquet_layout_and_no_temp_files_left(tmp_path: Path) -> None:
    store = ParquetBarStore(tmp_path)
    store.upsert(Timeframe.D1, bars("BTC/USDT", 3))
    store.upsert(Timeframe.H1, bars("AAPL", 3, start=int(pd.Timestamp("2024-12-31T23:00Z").value), step=HOUR))
    store.upsert(
        Timeframe.M1, bars("AAPL", 2, start=int(pd.Timestamp("2024-03-31T23:59Z").value), step=60 * 10**9)
    )

    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.parquet"))
    assert files == [
        "bars/timeframe=1d/symbol=BTC%2FUSDT/decade=2010.parquet",  # 2019-12-30, -31
        "bars/timeframe=1d/symbol=BTC%2FUSDT/decade=2020.parquet",  # 2020-01-01
        "bars/timeframe=1h/symbol=AAPL/year=2024.parquet",
        "bars/timeframe=1h/symbol=AAPL/year=2025.parquet",
        "bars/timeframe=1m/symbol=AAPL/month=2024-03.parquet",
        "bars/timeframe=1m/symbol=AAPL/month=2024-04.parquet",
    ]
    assert not list(tmp_path.rglob("*.tmp"))
    store.close()


def test_parquet_crashed_write_is_invisible_and_cleaned_up(tmp_path: Path) -> None:
    store = ParquetBarStore(tmp_path)
    frame = bars("AAPL", 10)
    store.upsert(Timeframe.D1, frame)
    symbol_dir = tmp_path / "bars" / "timeframe=1d" / "symbol=AAPL"
    # What a writer killed mid-write leaves behind: a truncated temp file next to the real one.
    (symbol_dir / ".decade=2020.parquet.deadbeef.tmp").write_bytes(b"PAR1\x00garbage")

    pd.testing.assert_frame_equal(store.read(Timeframe.D1), frame, check_exact=True)
    store.upsert(Timeframe.D1, bars("AAPL", 1, start=T0 + 100 * DAY))
    assert not list(symbol_dir.glob("*.tmp"))
    assert len(store.read(Timeframe.D1)) == 11


def test_parquet_two_writers_on_one_root_lose_nothing(tmp_path: Path) -> None:
    """Two stores on one root (as two ingest processes would be), interleaving many merges.

    Disjoint symbols touch disjoint directories; the shared symbol ``X`` is the hard case — each
    upsert reads, merges and replaces the same file, which without the per-symbol lock loses rows.
    """
    from concurrent.futures import ThreadPoolExecutor

    first, second = ParquetBarStore(tmp_path), ParquetBarStore(tmp_path)
    frames = {s: bars(s, 40, seed=i) for i, s in enumerate(["A", "B", "C", "D", "X"])}
    shared = frames["X"]

    def load(store: ParquetBarStore, symbols: list[str], shared_rows: range) -> None:
        for s in symbols:
            for lo in range(0, 40, 10):  # several upserts per symbol, merging into existing files
                store.upsert(Timeframe.D1, frames[s].iloc[lo : lo + 10])
        for i in shared_rows:
            store.upsert(Timeframe.D1, shared.iloc[[i]])

    with ThreadPoolExecutor(2) as pool:
        jobs = [
            pool.submit(load, first, ["A", "C"], range(0, 40, 2)),
            pool.submit(load, second, ["B", "D"], range(1, 40, 2)),
        ]
        for job in jobs:
            job.result()

    expected = sorted_frame(pd.concat(frames.values()))
    pd.testing.assert_frame_equal(first.read(Timeframe.D1), expected, check_exact=True)
    first.close()
    second.close()


def test_postgres_store_fails_in_one_line_when_unusable() -> None:
    with pytest.raises(StorageError, match=r"PostgreSQL at .*127\.0\.0\.1:1/") as err:
        PostgresBarStore("postgresql://postgres@127.0.0.1:1/nothing")  # refused at once on loopback
    assert "\n" not in str(err.value)
    with pytest.raises(StorageError, match="needs a PostgreSQL URL"):
        PostgresBarStore("sqlite:///bars.db")


@pytest.mark.integration
def test_postgres_reupsert_leaves_rows_untouched(pg_url: str) -> None:
    """Identical rows are filtered out before ON CONFLICT, which would otherwise lock (write) each."""
    import psycopg

    schema = f"bars_{uuid.uuid4().hex[:10]}"
    store = PostgresBarStore(pg_url, schema=schema)
    plain_url = pg_url.replace("+psycopg", "")
    try:
        frame = bars("AAPL", 50)
        store.upsert(Timeframe.D1, frame)
        store.ensure_schema()  # idempotent: a second call neither fails nor touches the rows
        query = f'SELECT ts, xmin::text, xmax::text FROM "{schema}".bars ORDER BY ts'
        with psycopg.connect(plain_url) as conn:
            before = conn.execute(query).fetchall()

        assert store.upsert(Timeframe.D1, frame) == UpsertResult(unchanged=50)

        with psycopg.connect(plain_url) as conn:
            after = conn.execute(query).fetchall()
        assert after == before and {xmax for _, _, xmax in after} == {"0"}
    finally:
        store.close()
        with psycopg.connect(plain_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
