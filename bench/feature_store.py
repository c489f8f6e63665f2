"""Feature-store figures, printed as one JSON object.

    .venv/bin/python bench/feature_store.py [--events 500000] [--quick]

* ``online.memory`` / ``online.redis`` — latency of one ``put`` and one ``get`` (p50/p99, µs) of a
  15-value core-v1 vector, cycling over 1,000 symbols, awaited one at a time on one event loop (the
  unloaded path a bar close takes); and one ``put_many`` / ``get_many`` of all 1,000 symbols (ms).
  Redis is measured when it answers (TS_REDIS_URL, else redis://127.0.0.1:6379/0), under a random
  ``tsbench:`` prefix deleted afterwards.
* ``offline`` — the S&P file's shape, synthetic values: 505 symbols x 1,259 daily bars of core v1
  (636k rows) written to a temp lake (durable, as the CLI writes), then a point-in-time join of
  ``--events`` random (symbol, time) events with each engine (DuckDB ``ASOF JOIN``; pandas
  ``merge_asof``), end to end (file reads included), interleaved, best and median of
  ``--repeats``. The two results are compared and
  must be identical.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tradesignals.domain.market import Timeframe
from tradesignals.features.catalog import CORE_V1
from tradesignals.features.store import FeatureRow, OnlineFeatureStore
from tradesignals.features.store_memory import MemoryOnlineFeatureStore
from tradesignals.features.store_parquet import JoinEngine, ParquetOfflineFeatureStore
from tradesignals.features.store_redis import RedisOnlineFeatureStore

REDIS_URL = os.environ.get("TS_REDIS_URL", "redis://127.0.0.1:6379/0")
SYMBOLS = [f"SYM{i:04d}" for i in range(1000)]
DAY = 86_400 * 1_000_000_000
T0 = int(pd.Timestamp("2013-02-08", tz="UTC").value)
ENGINES: tuple[JoinEngine, ...] = ("duckdb", "pandas")


def percentiles_us(samples_ns: list[int]) -> dict[str, float]:
    arr = np.asarray(samples_ns, dtype=np.float64) / 1000.0
    return {"p50": round(float(np.percentile(arr, 50)), 2), "p99": round(float(np.percentile(arr, 99)), 2)}


async def online(store: OnlineFeatureStore, n: int, batches: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(64, len(CORE_V1.columns)))
    ref = CORE_V1.ref
    for i, s in enumerate(SYMBOLS):  # warm: connections, script load, first-key costs
        await store.put(s, T0, vectors[i % 64], ref, available_at_ns=T0 + DAY)
    puts: list[int] = []
    for i in range(n):
        ts = T0 + (1 + i // len(SYMBOLS)) * DAY
        t = time.perf_counter_ns()
        await store.put(SYMBOLS[i % len(SYMBOLS)], ts, vectors[i % 64], ref, available_at_ns=ts + DAY)
        puts.append(time.perf_counter_ns() - t)
    gets: list[int] = []
    for i in range(n):
        t = time.perf_counter_ns()
        row = await store.get(SYMBOLS[i % len(SYMBOLS)])
        gets.append(time.perf_counter_ns() - t)
        assert row is not None
    put_many: list[int] = []
    get_many: list[int] = []
    for b in range(batches):
        ts = T0 + (10_000 + b) * DAY
        rows = [FeatureRow(s, ts, ts + DAY, vectors[i % 64], ref) for i, s in enumerate(SYMBOLS)]
        t = time.perf_counter_ns()
        stored = await store.put_many(rows)
        put_many.append(time.perf_counter_ns() - t)
        assert stored == len(SYMBOLS)
        t = time.perf_counter_ns()
        lookup = await store.get_many(SYMBOLS)
        get_many.append(time.perf_counter_ns() - t)
        assert len(lookup.rows) == len(SYMBOLS)
    return {
        "n": n,
        "put_us": percentiles_us(puts),
        "get_us": percentiles_us(gets),
        "put_many_1000_ms_p50": round(float(np.median(put_many)) / 1e6, 3),
        "get_many_1000_ms_p50": round(float(np.median(get_many)) / 1e6, 3),
    }


async def bench_online(n: int, batches: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    memory = MemoryOnlineFeatureStore(CORE_V1)
    out["memory"] = await online(memory, n, batches)
    await memory.close()
    prefix = f"tsbench:{uuid.uuid4().hex[:8]}"
    store = RedisOnlineFeatureStore(REDIS_URL, CORE_V1, prefix=prefix)
    if not await store.ping():
        out["redis"] = {"skipped": f"Redis at {REDIS_URL} does not answer"}
        await store.close()
        return out
    try:
        out["redis"] = await online(store, max(n // 4, 1000), batches)
    finally:
        await store.delete(SYMBOLS)
        await store.close()
    return out


def feature_frame(symbols: int, bars: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = symbols * bars
    frame = pd.DataFrame(
        {
            "ts": np.tile(T0 + DAY * np.arange(bars, dtype=np.int64), symbols),
            "symbol": np.repeat([f"S{i:03d}" for i in range(symbols)], bars),
        }
    )
    values = rng.normal(size=(n, len(CORE_V1.columns)))
    for i, col in enumerate(CORE_V1.columns):
        frame[col] = values[:, i]
    return frame


def bench_offline(n_events: int, symbols: int, bars: int, repeats: int) -> dict[str, Any]:
    frame = feature_frame(symbols, bars)
    rng = np.random.default_rng(2)
    events = pd.DataFrame(
        {
            "symbol": pd.array(rng.choice(frame["symbol"].unique(), n_events), dtype="str"),
            "ts": T0 + rng.integers(0, bars * DAY, n_events),
        }
    )
    tmp = Path(tempfile.mkdtemp(prefix="ts-bench-features-"))
    out: dict[str, Any] = {"feature_rows": len(frame), "symbols": symbols, "events": n_events}
    try:
        store = ParquetOfflineFeatureStore(tmp / "lake")
        t = time.perf_counter()
        store.write(CORE_V1, frame, timeframe=Timeframe.D1)
        out["write_seconds"] = round(time.perf_counter() - t, 3)
        out["write_rows_per_s"] = round(len(frame) / (time.perf_counter() - t))
        results: dict[str, pd.DataFrame] = {}
        times: dict[str, list[float]] = {"duckdb": [], "pandas": []}
        for _ in range(repeats):  # interleaved, so a noisy neighbour hurts both engines alike
            for engine in ENGINES:
                t = time.perf_counter()
                results[engine] = store.point_in_time_join(events, CORE_V1, engine=engine)
                times[engine].append(time.perf_counter() - t)
        for name, samples in times.items():
            best, median = min(samples), float(np.median(samples))
            out[f"pit_{name}"] = {
                "seconds_best": round(best, 3),
                "seconds_median": round(median, 3),
                "events_per_s_best": round(n_events / best),
                "events_per_s_median": round(n_events / median),
            }
        pd.testing.assert_frame_equal(results["duckdb"], results["pandas"])
        out["engines_identical"] = True
        out["matched_fraction"] = round(float(results["duckdb"]["feature_ts"].notna().mean()), 4)
        out["default_engine"] = store.engine
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Feature-store figures as JSON.")
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--repeats", type=int, default=7, help="point-in-time joins per engine")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    n, batches, symbols, bars = (20_000, 20, 505, 1259) if not args.quick else (2_000, 3, 50, 300)
    out: dict[str, Any] = {
        "bench": "feature_store",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "online": asyncio.run(bench_online(n, batches)),
        "offline": bench_offline(args.events if not args.quick else 20_000, symbols, bars, args.repeats),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
