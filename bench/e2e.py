"""The whole engine at full speed, printed as one JSON object.

Three figures (issue 6):
- ``daily_replay``: the real S&P 500 daily file through SignalEngine (lifecycle, scorer, decide,
  de-duplication) bar by bar — bars/s and per-bar p50/p99.
- ``ticks``: a simulated tick stream over 1,000 symbols through validation, session-aligned bar
  aggregation and the engine — ticks/s and per-tick p50/p99.
- ``in_process_publish``: bars published on the in-process bus → engine service → SQLite store →
  bus ``signals``: p50/p99 from the bar reaching the engine to the signal published (the
  ``end_to_end`` stage), plus the store and publish stages.

Every engine here comes from the one builder the product runs (``wiring.build_engine``). The scorer
is the registered ``swing`` model of ``--home`` (a TS_HOME with ``models/swing``) when given, with
min confidence 0 so every warm bar is scored and decided (the heaviest path), else the placeholder
rule; the JSON says which.

    .venv/bin/python bench/e2e.py [--ticks 1000000] [--symbols 1000] [--publish-symbols 50] [--home DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from tradesignals.bus import topics
from tradesignals.bus.codec import encode
from tradesignals.bus.memory import MemoryBus
from tradesignals.config import Settings, load_settings
from tradesignals.domain.market import Bar, Tick, Timeframe
from tradesignals.engine.pipeline import EngineService
from tradesignals.marketdata.feeds.simulator import SimulatorFeed
from tradesignals.marketdata.ohlcv_file import read_ohlcv
from tradesignals.marketdata.validate import Validator
from tradesignals.storage.db import make_engine, migrate
from tradesignals.storage.repositories import SqlSignalRepository
from tradesignals.wiring.engine_builder import build_engine, build_scorer

SP500 = "sp500_daily_2013-2018.csv.gz"


def data_dir() -> Path | None:
    env = os.environ.get("TS_DATA_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    return path if path.is_dir() else None


def pct(values_ns: list[int] | np.ndarray) -> dict[str, float]:
    a = np.asarray(values_ns, dtype=np.float64) / 1_000.0
    if a.size == 0:
        return {"n": 0}
    return {
        "n": int(a.size),
        "p50_us": round(float(np.percentile(a, 50)), 2),
        "p99_us": round(float(np.percentile(a, 99)), 2),
        "max_us": round(float(a.max()), 2),
    }


def sp500_bars(path: Path, symbols: int | None = None) -> list[Bar]:
    df = read_ohlcv(path)
    df = df[df[["open", "high", "low", "close"]].notna().all(axis=1)]
    if symbols:
        keep = sorted(df["symbol"].unique())[:symbols]
        df = df[df["symbol"].isin(keep)]
    cols = [df[c].to_numpy().tolist() for c in ("ts", "symbol", "open", "high", "low", "close", "volume")]
    bars = [Bar(s, Timeframe.D1, int(t), o, h, lo, c, v) for t, s, o, h, lo, c, v in zip(*cols, strict=True)]
    return [b for b in bars if not b.problems()]


def bench_settings(home: Path | None) -> Settings:
    """The registered ``swing`` model under ``home`` scoring every warm bar, else the placeholder rule."""
    if home is None:
        return load_settings(model="rule")
    return load_settings(home=home, model="swing", min_edge=-1.0)


def describe_scorer(home: Path | None) -> str:
    if home is None:
        return "placeholder rule (rule-sma-cross-v0)"
    scorer = build_scorer(bench_settings(home), Timeframe.D1)
    return f"model {scorer.version} (features + ensemble + contributions)"


def daily_replay(path: Path, home: Path | None) -> dict[str, Any]:
    bars = sp500_bars(path)
    engine = build_engine(bench_settings(home), warm=(Timeframe.D1,))
    lat = np.empty(len(bars), dtype=np.int64)
    gc.disable()
    t0 = time.perf_counter()
    for i, bar in enumerate(bars):
        s = time.perf_counter_ns()
        engine.on_bar(bar)
        lat[i] = time.perf_counter_ns() - s
    elapsed = time.perf_counter() - t0
    gc.enable()
    outcomes = engine.drain_outcomes()
    return {
        "bars": len(bars),
        "bars_per_s": round(len(bars) / elapsed),
        "per_bar": pct(lat),
        "signals": engine.stats.signals,
        "outcomes": len(outcomes),
        "suppressed_duplicates": engine.stats.suppressed_duplicates,
        "suppressed_cooldown": engine.stats.suppressed_cooldown,
    }


def tick_stream(n_ticks: int, n_symbols: int) -> dict[str, Any]:
    feed = SimulatorFeed(
        n_symbols, seed=11, speed=float("inf"), emit="ticks", ticks_per_bar=20, asset_class="mix"
    )
    ticks: list[Tick] = []
    for step in feed.steps():
        ticks += [e for e in step if isinstance(e, Tick)]
        if len(ticks) >= n_ticks:
            break
    ticks = ticks[:n_ticks]
    validator = Validator()
    # The tick path scores with the placeholder rule: the registered model is a daily (swing) model.
    engine = build_engine(load_settings(model="rule", tick_timeframe="1m", engine_input="ticks"))
    sample_every = 10
    lat = []
    gc.disable()
    t0 = time.perf_counter()
    for i, tick in enumerate(ticks):
        if i % sample_every:
            if validator.check(tick):
                engine.on_tick(tick)
            continue
        s = time.perf_counter_ns()
        if validator.check(tick):
            engine.on_tick(tick)
        lat.append(time.perf_counter_ns() - s)
    elapsed = time.perf_counter() - t0
    gc.enable()
    return {
        "symbols": n_symbols,
        "ticks": len(ticks),
        "ticks_per_s": round(len(ticks) / elapsed),
        "per_tick_sampled": pct(lat),
        "bars": engine.stats.bars,
        "signals": engine.stats.signals,
        "rejected": dict(validator.rejected),
    }


async def in_process_publish(path: Path | None, n_symbols: int, home: Path | None) -> dict[str, Any]:
    if path is not None:
        bars = sp500_bars(path, n_symbols)
        source = f"{SP500} first {n_symbols} symbols"
    else:
        feed = SimulatorFeed(n_symbols, seed=5, speed=float("inf"), emit="bars", asset_class="crypto")
        bars: list[Bar] = []
        for step in feed.steps():  # an endless stream: stop at 500 bars a symbol
            bars += [b for b in step if isinstance(b, Bar)]
            if len(bars) >= n_symbols * 500:
                break
        source = "simulator"
    with tempfile.TemporaryDirectory() as tmp:
        db = make_engine(f"sqlite:///{tmp}/bench.db")
        migrate(db)
        repo = SqlSignalRepository(db)
        bus = MemoryBus(partitions=8)
        stop = asyncio.Event()
        e2e: list[int] = []
        service: EngineService

        def record(_: object) -> None:
            e2e.append(service.engine.stats.last_latency_ns)

        service = EngineService(
            build_engine(bench_settings(home), warm=(Timeframe.D1,)),
            bus,
            repo,
            stop=stop,
            on_signal=record,
        )
        task = asyncio.create_task(service.run())
        t0 = time.perf_counter()
        for bar in bars:
            await bus.publish(topics.MARKET_BARS, bar.symbol, encode(bar))
        while service.engine.stats.bars < len(bars):
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - t0
        stop.set()
        await asyncio.wait_for(task, 10)
        await bus.close()
        db.dispose()
    return {
        "source": source,
        "bars": len(bars),
        "bars_per_s": round(len(bars) / elapsed),
        "signals": len(e2e),
        "bar_to_signal_published": pct(e2e),
        "store": "sqlite (embedded)",
    }


def main() -> None:
    # The engine logs every signal; a benchmark prints only its JSON.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", type=int, default=1_000_000)
    ap.add_argument("--symbols", type=int, default=1000)
    ap.add_argument("--publish-symbols", type=int, default=50)
    ap.add_argument("--home", type=Path, default=None, help="A TS_HOME whose models/ hold a 'swing' model.")
    args = ap.parse_args()
    data = data_dir()
    out: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine(),
                           "scorer": describe_scorer(args.home)}  # fmt: skip
    if data is not None and (data / SP500).exists():
        out["daily_replay"] = daily_replay(data / SP500, args.home)
    out["ticks"] = tick_stream(args.ticks, args.symbols)
    sp = data / SP500 if data is not None and (data / SP500).exists() else None
    out["in_process_publish"] = asyncio.run(in_process_publish(sp, args.publish_symbols, args.home))
    out["budgets"] = {"tick_to_signal_published_p99_ms": 10, "ticks_per_s_over_1000_symbols": 100_000}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
