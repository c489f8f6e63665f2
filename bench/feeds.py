"""Market-data feed throughput, printed as one JSON object.

Figures: simulator ticks/s and bars/s at full speed over 1,000 symbols (through the async stream, as
the ingest role consumes it), replay bars/s over the S&P 500 daily file when the shared data folder
is present (TS_DATA_DIR or ../shared/data), and BarAggregator ticks/s.

    .venv/bin/python bench/feeds.py [--symbols 1000] [--ticks 1000000] [--bars 500000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from tradesignals.domain.market import Tick, Timeframe
from tradesignals.marketdata.bars import BarAggregator
from tradesignals.marketdata.feeds.replay import ReplayFeed
from tradesignals.marketdata.feeds.simulator import SimulatorFeed
from tradesignals.marketdata.ohlcv_file import read_ohlcv

SP500 = "sp500_daily_2013-2018.csv.gz"


async def drain(feed: SimulatorFeed | ReplayFeed, limit: int | None) -> tuple[int, float]:
    count = 0
    start = time.perf_counter()
    async for _ in feed.stream():
        count += 1
        if limit is not None and count >= limit:
            break
    return count, time.perf_counter() - start


def data_dir() -> Path | None:
    env = os.environ.get("TS_DATA_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    return path if (path / SP500).is_file() else None


def bench_simulator(symbols: int, ticks: int, bars: int) -> dict[str, Any]:
    n_ticks, t_ticks = asyncio.run(drain(SimulatorFeed(symbols, speed=float("inf"), emit="ticks"), ticks))
    n_bars, t_bars = asyncio.run(drain(SimulatorFeed(symbols, speed=float("inf"), emit="bars"), bars))
    return {
        "symbols": symbols,
        "ticks_per_bar": 20,
        "ticks": n_ticks,
        "ticks_per_s": round(n_ticks / t_ticks),
        "bars": n_bars,
        "bars_per_s": round(n_bars / t_bars),
    }


def bench_aggregator(symbols: int, ticks: int) -> dict[str, Any]:
    feed = SimulatorFeed(symbols, speed=float("inf"), emit="ticks")
    sample: list[Tick] = []
    for step in feed.steps():
        sample.extend(e for e in step if isinstance(e, Tick))
        if len(sample) >= ticks:
            break
    agg = BarAggregator(Timeframe.M1)
    update = agg.update
    closed = 0
    start = time.perf_counter()
    for tick in sample:
        closed += len(update(tick))
    elapsed = time.perf_counter() - start
    return {"ticks": len(sample), "bars_closed": closed, "ticks_per_s": round(len(sample) / elapsed)}


def bench_replay(folder: Path) -> dict[str, Any]:
    path = folder / SP500
    start = time.perf_counter()
    df = read_ohlcv(path)
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    feed = ReplayFeed(path)
    open_s = time.perf_counter() - start
    count, elapsed = asyncio.run(drain(feed, None))
    return {
        "file": SP500,
        "rows": len(df),
        "read_ohlcv_s": round(read_s, 3),
        "open_s": round(open_s, 3),
        "bars": count,
        "skipped": feed.skipped,
        "replay_s": round(elapsed, 3),
        "bars_per_s": round(count / elapsed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--bars", type=int, default=500_000)
    args = parser.parse_args()

    out: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "simulator": bench_simulator(args.symbols, args.ticks, args.bars),
        "aggregator": bench_aggregator(args.symbols, args.ticks // 2),
    }
    folder = data_dir()
    out["replay"] = bench_replay(folder) if folder else {"skipped": "no shared data folder (set TS_DATA_DIR)"}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
