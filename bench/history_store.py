"""History-store figures, printed as one JSON object.

For each store — embedded (Parquet + DuckDB, in a temp dir) and PostgreSQL when it answers
(TS_TEST_PG_URL, else postgresql://postgres@127.0.0.1:5432/test; a throwaway schema, dropped after):

* ``ingest_rows_per_s`` — the full S&P 500 daily file (619,040 rows) through ``ingest_files`` into
  an empty store: read, check, upsert — what ``tradesignals ingest`` pays. Also the store's share
  (``upsert_rows_per_s``) and an idempotent re-ingest of the same file;
* ``read_symbol_year_ms`` — p50 (and p90) of reading one symbol for one calendar year (AAPL, 2016);
* ``read_all_symbols_day_ms`` — p50 (and p90) of reading every symbol for one day (2016-06-01).

Needs the shared data folder (TS_DATA_DIR or ../shared/data).

    .venv/bin/python bench/history_store.py [--repeats 50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from tradesignals.domain.market import Timeframe
from tradesignals.marketdata.ingest_files import ingest_files
from tradesignals.storage.timeseries import BarStore
from tradesignals.storage.timeseries_parquet import ParquetBarStore
from tradesignals.storage.timeseries_pg import PostgresBarStore

SP500 = "sp500_daily_2013-2018.csv.gz"
PG_URL = os.environ.get("TS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
YEAR = (pd.Timestamp("2016-01-01", tz="UTC").value, pd.Timestamp("2017-01-01", tz="UTC").value)
DAY = (pd.Timestamp("2016-06-01", tz="UTC").value, pd.Timestamp("2016-06-02", tz="UTC").value)


def data_dir() -> Path | None:
    env = os.environ.get("TS_DATA_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    return path if (path / SP500).is_file() else None


def latency_ms(fn: Callable[[], Any], repeats: int) -> dict[str, float]:
    fn()  # warm: first-call costs (imports, plans, page cache) are not what a steady reader pays
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return {
        "p50": round(statistics.median(samples), 3),
        "p90": round(samples[int(0.9 * (len(samples) - 1))], 3),
    }


def bench_store(store: BarStore, path: Path, repeats: int) -> dict[str, Any]:
    first = ingest_files([path], store)
    again = ingest_files([path], store)
    year_rows = len(store.read(Timeframe.D1, ["AAPL"], *YEAR))
    day_rows = len(store.read(Timeframe.D1, None, *DAY))
    return {
        "ingest_rows_per_s": round(first.rows_read / first.seconds),
        "ingest_seconds": round(first.seconds, 3),
        "rows_loaded": first.rows_loaded,
        "reingest_seconds": round(again.seconds, 3),
        "reingest_unchanged": again.unchanged,
        "read_symbol_year_ms": latency_ms(lambda: store.read(Timeframe.D1, ["AAPL"], *YEAR), repeats),
        "read_symbol_year_rows": year_rows,
        "read_all_symbols_day_ms": latency_ms(lambda: store.read(Timeframe.D1, None, *DAY), repeats),
        "read_all_symbols_day_rows": day_rows,
        "read_everything_ms": latency_ms(lambda: store.read(Timeframe.D1), 3),
    }


def upsert_rate(store: BarStore, path: Path) -> int:
    """Rows/s of the store's upsert alone, into an empty store, the frame already read and checked."""
    from tradesignals.marketdata.ingest_files import check_rows
    from tradesignals.marketdata.ohlcv_file import read_ohlcv

    frame = read_ohlcv(path)
    keep, _ = check_rows(frame)
    good = frame.loc[keep]
    t = time.perf_counter()
    store.upsert(Timeframe.D1, good)
    return round(len(good) / (time.perf_counter() - t))


def main() -> None:
    parser = argparse.ArgumentParser(description="History-store figures as JSON.")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    out: dict[str, Any] = {
        "bench": "history_store",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    folder = data_dir()
    if folder is None:
        out["skipped"] = "no shared data folder (set TS_DATA_DIR)"
        print(json.dumps(out, indent=2))
        return
    path = folder / SP500
    out["file"] = SP500

    tmp = Path(tempfile.mkdtemp(prefix="ts-bench-lake-"))
    try:
        store = ParquetBarStore(tmp / "a")
        out["parquet"] = bench_store(store, path, args.repeats)
        store.close()
        fresh = ParquetBarStore(tmp / "b")
        out["parquet"]["upsert_rows_per_s"] = upsert_rate(fresh, path)
        fresh.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    out["postgres"] = bench_postgres(path, args.repeats)
    print(json.dumps(out, indent=2))


def bench_postgres(path: Path, repeats: int) -> dict[str, Any]:
    import psycopg

    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            version = conn.execute("SHOW server_version").fetchone()
    except psycopg.OperationalError as exc:
        return {"skipped": f"PostgreSQL at {PG_URL} does not answer ({' '.join(str(exc).split())})"}
    schemas = [f"bench_{uuid.uuid4().hex[:8]}", f"bench_{uuid.uuid4().hex[:8]}"]
    try:
        store = PostgresBarStore(PG_URL, schema=schemas[0])
        result = bench_store(store, path, repeats)
        store.close()
        fresh = PostgresBarStore(PG_URL, schema=schemas[1])
        result["upsert_rows_per_s"] = upsert_rate(fresh, path)
        fresh.close()
        result["server_version"] = version[0] if version else None
        return result
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
