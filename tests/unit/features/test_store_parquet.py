"""The Parquet offline store: exact, idempotent, isolated per feature-set definition, self-describing."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradesignals.domain.market import Timeframe
from tradesignals.features.catalog import CORE_V1, FeatureSet, FeatureSetMismatch
from tradesignals.features.store import KEY_COLUMNS
from tradesignals.features.store_parquet import ParquetOfflineFeatureStore
from tradesignals.storage.timeseries import UpsertResult

DAY = 86_400 * 1_000_000_000
HOUR = 3_600 * 1_000_000_000
T0 = int(pd.Timestamp("2019-12-30", tz="UTC").value)  # spans the 2020 decade boundary
SMALL = FeatureSet("small", 1, ("sma_3", "ret_1"), {"sma": {"period": 3}})
EDITED = FeatureSet("small", 1, ("sma_3", "ret_1"), {"sma": {"period": 4}})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ParquetOfflineFeatureStore]:
    s = ParquetOfflineFeatureStore(tmp_path / "lake")
    yield s
    s.close()


def features(symbol: str, n: int, *, start: int = T0, step: int = DAY, seed: int = 0) -> pd.DataFrame:
    """A frame as the batch engine writes it: timestamp, symbol, features (awkward floats, some NaN)."""
    rng = np.random.default_rng(seed)
    sma = rng.normal(100, 5, n)
    sma[:2] = np.nan  # warm-up
    return pd.DataFrame(
        {
            "ts": start + step * np.arange(n, dtype=np.int64),
            "symbol": symbol,
            "sma_3": sma,
            "ret_1": rng.normal(0, 0.01, n),
            "extra_not_in_set": 1.0,
        }
    )


def files(root: Path) -> dict[str, tuple[int, bytes]]:
    out = {}
    for path in sorted(root.rglob("*.parquet")):
        out[str(path.relative_to(root))] = (path.stat().st_mtime_ns, path.read_bytes())
    return out


def test_write_then_read_is_exact_and_canonical(store: ParquetOfflineFeatureStore) -> None:
    frame = pd.concat([features("MSFT", 5, seed=1), features("AAPL", 7, seed=2)], ignore_index=True)
    assert store.write(SMALL, frame, timeframe=Timeframe.D1) == UpsertResult(inserted=12)
    got = store.read(SMALL)
    assert list(got.columns) == [*KEY_COLUMNS, "sma_3", "ret_1"]
    assert got["symbol"].tolist() == ["AAPL"] * 7 + ["MSFT"] * 5
    assert got["ts"].dtype == np.int64 and got["available_at"].dtype == np.int64
    expected = frame.sort_values(["symbol", "ts"], ignore_index=True)
    np.testing.assert_array_equal(got["ts"], expected["ts"])
    np.testing.assert_array_equal(got["available_at"], expected["ts"] + DAY)  # the bar's end
    for col in SMALL.columns:
        np.testing.assert_array_equal(
            got[col].to_numpy(), expected[col].to_numpy()
        )  # NaN included, bit-exact


def test_read_filters_symbols_and_a_half_open_ts_range(store: ParquetOfflineFeatureStore) -> None:
    store.write(SMALL, pd.concat([features("AAPL", 10), features("MSFT", 10)]), timeframe=Timeframe.D1)
    got = store.read(SMALL, ["MSFT", "NVDA"], T0 + 2 * DAY, T0 + 5 * DAY)
    assert got["symbol"].unique().tolist() == ["MSFT"]
    assert got["ts"].tolist() == [T0 + 2 * DAY, T0 + 3 * DAY, T0 + 4 * DAY]
    empty = store.read(SMALL, ["AAPL"], T0, T0)
    assert empty.empty and list(empty.columns) == [*KEY_COLUMNS, "sma_3", "ret_1"]
    assert empty["ts"].dtype == np.int64 and empty["sma_3"].dtype == np.float64
    with pytest.raises(ValueError, match="is after end_ns"):
        store.read(SMALL, None, T0 + 1, T0)


def test_writing_the_same_rows_again_changes_nothing_on_disk(store: ParquetOfflineFeatureStore) -> None:
    frame = features("AAPL", 20)
    store.write(SMALL, frame, timeframe=Timeframe.D1)
    before = files(store.root)
    assert store.write(SMALL, frame, timeframe=Timeframe.D1) == UpsertResult(unchanged=20)
    assert files(store.root) == before


def test_changed_rows_replace_old_ones_and_new_rows_merge_in_order(store: ParquetOfflineFeatureStore) -> None:
    full = features("AAPL", 12)
    store.write(SMALL, full.iloc[:10], timeframe=Timeframe.D1)
    update = full.iloc[8:].copy()  # rows 8, 9 exist; 10, 11 are new
    update.loc[update.index[0], "ret_1"] = 0.5
    assert store.write(SMALL, update, timeframe=Timeframe.D1) == UpsertResult(
        inserted=2, updated=1, unchanged=1
    )
    got = store.read(SMALL, ["AAPL"])
    assert len(got) == 12 and got["ts"].is_monotonic_increasing
    assert got["ret_1"].iat[8] == 0.5


def test_a_new_available_at_alone_is_an_update(store: ParquetOfflineFeatureStore) -> None:
    frame = features("AAPL", 3)
    store.write(SMALL, frame, timeframe=Timeframe.D1)
    later = frame.assign(available_at=frame["ts"] + 2 * DAY)
    assert store.write(SMALL, later) == UpsertResult(updated=3)
    np.testing.assert_array_equal(store.read(SMALL)["available_at"], frame["ts"] + 2 * DAY)


def test_timestamp_column_may_be_a_tz_aware_datetime(store: ParquetOfflineFeatureStore) -> None:
    frame = features("AAPL", 3).drop(columns="ts")
    frame.insert(
        0, "timestamp", pd.to_datetime(T0 + DAY * np.arange(3), utc=True).tz_convert("America/New_York")
    )
    store.write(SMALL, frame, timeframe=Timeframe.D1)
    assert store.read(SMALL)["ts"].tolist() == [T0, T0 + DAY, T0 + 2 * DAY]


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda f: f.drop(columns="ts"), "no 'ts' or 'timestamp' column"),
        (lambda f: f.drop(columns="symbol"), "no 'symbol' column"),
        (lambda f: f.drop(columns="ret_1"), "lacks 1 column.*: ret_1"),
        (lambda f: pd.concat([f, f.iloc[:1]]), r"two rows for \(AAPL, ts="),
        (lambda f: f.assign(available_at=f["ts"] - 1), "available_at .* is before ts"),
        (lambda f: f.assign(ts=pd.to_datetime(f["ts"])), "naive datetimes"),
        (lambda f: f.assign(ts=f["ts"].astype(float)), "must be integer nanoseconds"),
        (lambda f: f.assign(symbol=" AAPL"), "invalid symbol"),
    ],
)
def test_frames_that_cannot_be_stored_unambiguously_are_refused(
    store: ParquetOfflineFeatureStore, mangle: object, message: str
) -> None:
    frame = mangle(features("AAPL", 3))  # type: ignore[operator]
    with pytest.raises(ValueError, match=message):
        store.write(SMALL, frame, timeframe=Timeframe.D1)
    assert store.read(SMALL).empty


def test_available_at_needs_a_column_or_a_timeframe(store: ParquetOfflineFeatureStore) -> None:
    with pytest.raises(ValueError, match="no 'available_at' column and no timeframe"):
        store.write(SMALL, features("AAPL", 3))


def test_each_definition_has_its_own_directory_and_rows(store: ParquetOfflineFeatureStore) -> None:
    store.write(SMALL, features("AAPL", 3, seed=1), timeframe=Timeframe.D1)
    store.write(EDITED, features("AAPL", 5, seed=2), timeframe=Timeframe.D1)
    assert len(store.read(SMALL)) == 3
    assert len(store.read(EDITED)) == 5
    assert store.set_dir(SMALL) != store.set_dir(EDITED)
    assert store.set_dir(SMALL).name == f"v1-{SMALL.fingerprint[:16]}"
    doc = json.loads((store.set_dir(SMALL) / "_featureset.json").read_text())
    assert FeatureSet.from_dict(doc["feature_set"]) == SMALL
    assert doc["bucket"] == "decade"


def test_a_set_directory_holding_another_definition_is_refused(store: ParquetOfflineFeatureStore) -> None:
    store.write(SMALL, features("AAPL", 3), timeframe=Timeframe.D1)
    meta = store.set_dir(SMALL) / "_featureset.json"
    doc = json.loads(meta.read_text())
    doc["feature_set"] = EDITED.to_dict()
    meta.write_text(json.dumps(doc))
    fresh = ParquetOfflineFeatureStore(store.root)
    try:
        with pytest.raises(FeatureSetMismatch, match="refusing to mix their rows"):
            fresh.read(SMALL)
    finally:
        fresh.close()


def test_files_are_cut_by_symbol_and_bucket_like_the_bar_store(store: ParquetOfflineFeatureStore) -> None:
    store.write(SMALL, features("BTC/USDT", 5), timeframe=Timeframe.D1)  # 2019-12-30 .. 2020-01-03
    names = sorted(str(p.relative_to(store.set_dir(SMALL))) for p in store.set_dir(SMALL).rglob("*.parquet"))
    assert names == ["symbol=BTC%2FUSDT/decade=2010.parquet", "symbol=BTC%2FUSDT/decade=2020.parquet"]
    assert store.symbols(SMALL) == ["BTC/USDT"]
    assert store.read(SMALL, ["BTC/USDT"], T0 + 2 * DAY)["symbol"].tolist() == ["BTC/USDT"] * 3


def test_bucket_size_is_guessed_from_bar_spacing_when_no_timeframe_is_given(tmp_path: Path) -> None:
    store = ParquetOfflineFeatureStore(tmp_path / "lake", durable=False)
    hourly = features("AAPL", 72, step=HOUR)
    store.write(SMALL, hourly.assign(available_at=hourly["ts"] + HOUR))
    doc = json.loads((store.set_dir(SMALL) / "_featureset.json").read_text())
    assert doc["bucket"] == "year" and doc["timeframe_hint"] == "1h"
    assert {p.name for p in store.set_dir(SMALL).rglob("*.parquet")} == {
        "year=2019.parquet",
        "year=2020.parquet",
    }
    store.close()


def test_rows_survive_a_new_store_instance_and_leftover_temp_files_are_cleared(tmp_path: Path) -> None:
    first = ParquetOfflineFeatureStore(tmp_path / "lake")
    first.write(SMALL, features("AAPL", 4), timeframe=Timeframe.D1)
    first.close()
    symbol_dir = first.set_dir(SMALL) / "symbol=AAPL"
    (symbol_dir / ".decade=2020.parquet.dead.tmp").write_bytes(b"half a file")  # a crashed writer
    second = ParquetOfflineFeatureStore(tmp_path / "lake")
    assert len(second.read(SMALL)) == 4  # readers ignore temp files
    second.write(SMALL, features("AAPL", 5), timeframe=Timeframe.D1)
    assert not [p for p in os.listdir(symbol_dir) if p.endswith(".tmp")]
    assert len(second.read(SMALL)) == 5
    second.close()


def test_unknown_set_reads_empty_and_closed_store_refuses(store: ParquetOfflineFeatureStore) -> None:
    assert store.read(SMALL).empty
    assert store.symbols(SMALL) == []
    store.close()
    with pytest.raises(RuntimeError, match="is closed"):
        store.read(SMALL)


def test_unknown_join_engine_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown join engine 'polars'"):
        ParquetOfflineFeatureStore(tmp_path, engine="polars")  # type: ignore[arg-type]


def test_the_batch_engines_table_goes_in_as_is_once_ignored_bars_are_dropped(
    store: ParquetOfflineFeatureStore,
) -> None:
    """The contract with ``features.batch``: its frame (ts, symbol, 33 features, warm, status) is
    written without renaming; the set picks its columns. A repeated bar is a row the engine
    ignored (status "ignored", NaN), which the store refuses as ambiguous until it is dropped."""
    from tradesignals.features.batch import compute_features

    rng = np.random.default_rng(3)
    n = 60
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    ohlcv = pd.DataFrame(
        {
            "ts": T0 + DAY * np.arange(n, dtype=np.int64),
            "symbol": "AAPL",
            "open": close,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": rng.uniform(1e5, 1e6, n),
        }
    )
    ohlcv = pd.concat([ohlcv, ohlcv.iloc[[30]]], ignore_index=True)  # a repeated bar
    table = compute_features(ohlcv, timeframe=Timeframe.D1, calendar=None)
    with pytest.raises(ValueError, match=r"two rows for \(AAPL, ts="):
        store.write(CORE_V1, table, timeframe=Timeframe.D1)
    kept = table[table["status"] != "ignored"]
    assert store.write(CORE_V1, kept, timeframe=Timeframe.D1) == UpsertResult(inserted=n)
    got = store.read(CORE_V1)
    expected = kept.sort_values("ts")[list(CORE_V1.columns)].to_numpy()
    np.testing.assert_array_equal(got[list(CORE_V1.columns)].to_numpy(), expected)
    assert np.isfinite(got["sma_20"].iloc[-1]) and np.isnan(got["sma_20"].iloc[0])
