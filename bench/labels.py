"""Seconds to triple-barrier-label the whole S&P 500 daily file, long and short, printed as one JSON object.

Reading the file and computing the ATR (a 14-bar rolling mean of the true range) happen before the
clock starts; only ``triple_barrier_labels`` is timed, for both directions with the engine's default
barriers (stop 1.5 ATR, target 1R, 5-bar swing horizon). ``first_call_s`` is the first labelling in
a fresh process, which loads the numba kernels from their on-disk cache (or compiles them, the first
time ever, or after a change: ``compiled`` says which); ``seconds`` is the best of ``--repeats`` later runs, with the median
beside it.

    .venv/bin/python bench/labels.py [--data PATH] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import tradesignals.models.labels as labels_module
from tradesignals.domain.signals import Direction
from tradesignals.marketdata.ohlcv_file import read_ohlcv
from tradesignals.models.labels import outcome_counts, triple_barrier_labels

SP500 = "sp500_daily_2013-2018.csv.gz"
DATA_DIR = Path(os.environ.get("TS_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")


def mean_true_range(bars: pd.DataFrame, period: int = 14) -> np.ndarray:
    prev_close = bars.groupby("symbol", sort=False)["close"].shift()
    high = pd.concat([bars["high"], prev_close], axis=1).max(axis=1)
    low = pd.concat([bars["low"], prev_close], axis=1).min(axis=1)
    atr = (high - low).groupby(bars["symbol"], sort=False).transform(lambda s: s.rolling(period).mean())
    return atr.to_numpy(dtype=np.float64)


def label_both(bars: pd.DataFrame) -> dict[Direction, pd.DataFrame]:
    return {d: triple_barrier_labels(bars, "atr", direction=d) for d in Direction}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR / SP500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    bars = read_ohlcv(args.data)
    bars["atr"] = mean_true_range(bars)
    start = time.perf_counter()
    out = label_both(bars)
    first = time.perf_counter() - start
    # Numba counts, per kernel, signatures loaded from its disk cache and those it had to compile.
    compiled = any(
        sum(k.stats.cache_misses.values()) for k in (labels_module._scan, labels_module._uniqueness)
    )
    runs = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        out = label_both(bars)
        runs.append(time.perf_counter() - start)

    result: dict[str, Any] = {
        "bench": "labels",
        "data": args.data.name,
        "rows": len(bars),
        "symbols": int(bars["symbol"].nunique()),
        "directions": [d.value for d in Direction],
        "seconds": round(min(runs), 4),
        "median_seconds": round(statistics.median(runs), 4),
        "rows_per_s": round(2 * len(bars) / min(runs)),
        "first_call_s": round(first, 4),
        "compiled": compiled,
        "labelled": {d.value: int(o["label"].notna().sum()) for d, o in out.items()},
        "outcomes": {d.value: outcome_counts(o) for d, o in out.items()},
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
