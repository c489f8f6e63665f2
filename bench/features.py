"""Feature-engine figures, printed as one JSON object.

- ``single_symbol``: one full feature-set update for one symbol (``FeatureEngine.update_values``,
  vector included), per-call latency in µs over real BTCUSDT minute bars when the shared data folder
  is there, else a simulated walk. Budget: p99 <= 1 ms.
- ``many_symbols``: updates/s across ``--symbols`` symbols on one core (the process is pinned), both
  per symbol (``FeatureEngine``, round robin: the live path as written today) and all at once
  (``FeaturePanel``, one call per time step). Aim: >= 100,000.
- ``batch_sp500``: ``compute_features`` over the whole S&P 500 daily file, beside TA-Lib's Function
  API computing the same indicators on the same per-symbol arrays in the same run (best of
  ``--repeat``; the file read is timed apart).

    .venv/bin/python bench/features.py [--symbols 1000] [--steps 300] [--updates 30000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import talib

from tradesignals.domain.market import NS_PER_SECOND, Timeframe
from tradesignals.features import FeatureEngine, FeaturePanel
from tradesignals.features.batch import compute_features
from tradesignals.features.incremental import TA_SPECS
from tradesignals.marketdata.calendar import AlwaysOpen, utc_date_ns
from tradesignals.marketdata.ohlcv_file import read_ohlcv

SP500 = "sp500_daily_2013-2018.csv.gz"
BTC_1M = "crypto_btcusdt_1m_binanceus_20230301-20230321.csv.gz"
HOUR = 3600 * NS_PER_SECOND
SMA: Any = vars(talib)["MA_Type"].SMA  # TA-Lib's stubs omit the MA_Type export
T0 = utc_date_ns(2024, 1, 1)


def data_dir() -> Path | None:
    env = os.environ.get("TS_DATA_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    return path if (path / SP500).is_file() else None


def pin_one_core() -> int | None:
    """Run on one CPU, so "one core" is what is measured (NumPy's element-wise ops use one anyway)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def walks(n: int, symbols: int, seed: int = 0) -> np.ndarray:
    """(n, symbols, 5) OHLCV random walks."""
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, symbols)), axis=0))
    o = np.vstack([np.full((1, symbols), 100.0), c[:-1]])
    h = np.maximum(o, c) * (1 + rng.uniform(0, 0.01, (n, symbols)))
    low = np.minimum(o, c) * (1 - rng.uniform(0, 0.01, (n, symbols)))
    return np.stack([o, h, low, c, rng.uniform(1e3, 1e4, (n, symbols))], axis=-1)


def percentiles(ns: np.ndarray) -> dict[str, float]:
    us = ns / 1e3
    return {
        "p50_us": round(float(np.percentile(us, 50)), 2),
        "p99_us": round(float(np.percentile(us, 99)), 2),
        "p999_us": round(float(np.percentile(us, 99.9)), 2),
        "max_us": round(float(us.max()), 2),
        "mean_us": round(float(us.mean()), 2),
    }


def bench_single(folder: Path | None, updates: int) -> dict[str, Any]:
    if folder is not None:
        df = read_ohlcv(folder / BTC_1M)
        ts = df["ts"].to_numpy()
        rows = df[["open", "high", "low", "close", "volume"]].to_numpy()
        source, tf = "BTCUSDT 1m (real)", Timeframe.M1
    else:
        rows = walks(updates + 200, 1)[:, 0]
        ts = T0 + np.arange(len(rows), dtype=np.int64) * HOUR
        source, tf = "simulated walk, 1h", Timeframe.H1
    n = min(updates + 200, len(rows))
    engine = FeatureEngine(tf, calendar=AlwaysOpen())
    update = engine.update_values
    tsl, rl = ts[:n].tolist(), rows[:n].tolist()
    for t, r in zip(tsl[:200], rl[:200], strict=True):  # past the warm-up: the steady state
        update("BTCUSDT", t, *r)
    clock = time.perf_counter_ns
    lat = np.empty(n - 200, dtype=np.int64)
    for i, (t, r) in enumerate(zip(tsl[200:], rl[200:], strict=True)):
        t0 = clock()
        update("BTCUSDT", t, *r)
        lat[i] = clock() - t0
    return {"source": source, "updates": len(lat), **percentiles(lat), "budget_p99_us": 1000}


def bench_many(symbols: int, steps: int) -> dict[str, Any]:
    warm = 100
    data = walks(steps, symbols, seed=1)
    names = [f"S{i:04d}USDT" for i in range(symbols)]
    ts = T0 + np.arange(steps, dtype=np.int64) * HOUR

    engine = FeatureEngine(Timeframe.H1, calendar=AlwaysOpen())
    update = engine.update_values
    rows = data.tolist()
    tsl = ts.tolist()
    for t in range(warm):
        for name, r in zip(names, rows[t], strict=True):
            update(name, tsl[t], *r)
    start = time.perf_counter()
    for t in range(warm, steps):
        for name, r in zip(names, rows[t], strict=True):
            update(name, tsl[t], *r)
    per_symbol_s = time.perf_counter() - start

    panel = FeaturePanel(Timeframe.H1, calendar=AlwaysOpen(), symbols=names)
    slots = np.arange(symbols)
    cols = [np.ascontiguousarray(data[:, :, k]) for k in range(5)]
    for t in range(warm):
        panel.update(slots, int(ts[t]), *(c[t] for c in cols))
    step_ns = np.empty(steps - warm, dtype=np.int64)
    for i, t in enumerate(range(warm, steps)):
        t0 = time.perf_counter_ns()
        panel.update(slots, int(ts[t]), *(c[t] for c in cols))
        step_ns[i] = time.perf_counter_ns() - t0
    measured = (steps - warm) * symbols
    return {
        "symbols": symbols,
        "steps_timed": steps - warm,
        "engine_per_symbol_updates_per_s": round(measured / per_symbol_s),
        "panel_updates_per_s": round(measured / (step_ns.sum() / 1e9)),
        "panel_step_ms_p50": round(float(np.percentile(step_ns, 50)) / 1e6, 3),
        "panel_step_ms_p99": round(float(np.percentile(step_ns, 99)) / 1e6, 3),
        "aim_updates_per_s": 100_000,
    }


def talib_same_indicators(groups: list[dict[str, np.ndarray]]) -> None:
    """TA-Lib's Function API over each symbol: every TA-Lib call ``compute_features`` makes."""
    for a in groups:
        c = a["close"]
        lr = np.log(c[1:] / c[:-1])
        inputs = {"o": a["open"], "h": a["high"], "l": a["low"], "c": c, "v": a["volume"], "r": lr * lr}
        for spec in TA_SPECS:
            getattr(talib, spec.function)(*(inputs[ch] for ch in spec.inputs), **spec.kwargs)


def talib_contract_nine(groups: list[dict[str, np.ndarray]]) -> None:
    """Only the nine the issue names (RSI, EMA, SMA, MACD, BBANDS, ATR, ADX, STOCH, OBV)."""
    for a in groups:
        h, low, c = a["high"], a["low"], a["close"]
        talib.RSI(c, 14)
        talib.EMA(c, 20)
        talib.SMA(c, 20)
        talib.MACD(c, 12, 26, 9)
        talib.BBANDS(c, 20, 2.0, 2.0, SMA)
        talib.ATR(h, low, c, 14)
        talib.ADX(h, low, c, 14)
        talib.STOCH(h, low, c, 14, 3, SMA, 3, SMA)
        talib.OBV(c, a["volume"])


def best(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_batch(folder: Path, repeat: int) -> dict[str, Any]:
    start = time.perf_counter()
    df = read_ohlcv(folder / SP500)
    read_s = time.perf_counter() - start
    compute_features(df.head(5000))  # import-time and calendar set-up out of the timing
    ours = best(lambda: compute_features(df), repeat)
    clean = df.dropna(subset=["open", "high", "low", "close", "volume"])
    groups = [
        {c: g[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume")}
        for _, g in clean.groupby("symbol", sort=False)
    ]
    same = best(lambda: talib_same_indicators(groups), repeat)
    nine = best(lambda: talib_contract_nine(groups), repeat)
    return {
        "file": SP500,
        "rows": len(df),
        "symbols": int(df["symbol"].nunique()),
        "read_ohlcv_s": round(read_s, 3),
        "compute_features_s": round(ours, 3),
        "talib_same_indicators_s": round(same, 3),
        "talib_nine_contract_indicators_s": round(nine, 3),
        "talib_calls_per_symbol": len(TA_SPECS),
        "rows_per_s": round(len(df) / ours),
        "note": "TA-Lib times exclude grouping by symbol; ours includes it, the calendar, the custom "
        "features, bad-bar/gap segmentation and building the output frame",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--updates", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    cpu = pin_one_core()
    folder = data_dir()
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": _cpu_name(),
        "pinned_cpu": cpu,
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "talib": talib.__version__,
        "single_symbol": bench_single(folder, args.updates),
        "many_symbols": bench_many(args.symbols, args.steps),
    }
    out["batch_sp500"] = (
        bench_batch(folder, args.repeat) if folder else {"skipped": "no shared data folder (set TS_DATA_DIR)"}
    )
    print(json.dumps(out, indent=2))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
