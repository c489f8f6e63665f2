"""What marking open signals each bar (``signal.live``) costs the engine, printed as one JSON object.

The real S&P 500 daily file (first ``--symbols`` symbols) through the engine ``build_engine`` makes,
bar by bar, ``--pairs`` times each with marks off and on (interleaved: off, on, off, on …), draining the marks
after every bar as the engine service does. Per-bar latency is split by whether the bar's symbol
has an open signal after the bar: the marks must cost nothing measurable on bars of symbols
without one (one dict probe), and what they cost on the others is the figure printed as
``with_open``. Scorer: the registered ``swing`` model of ``--home`` (min edge -1, so every warm
bar is scored and the most signals are open), else the placeholder rule.

    .venv/bin/python bench/live_updates.py [--symbols 100] [--home DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from e2e import SP500, bench_settings, data_dir, describe_scorer, pct, sp500_bars
from tradesignals.domain.market import Bar, Timeframe
from tradesignals.wiring.engine_builder import build_engine


def one_pass(bars: list[Bar], home: Path | None, live: bool) -> dict[str, Any]:
    engine = build_engine(bench_settings(home), warm=(Timeframe.D1,))
    engine.live_updates = live
    lat = np.empty(len(bars), dtype=np.int64)
    has_open = np.zeros(len(bars), dtype=bool)
    marks = 0
    gc.collect()
    gc.disable()
    t0 = time.perf_counter()
    for i, bar in enumerate(bars):
        s = time.perf_counter_ns()
        engine.on_bar(bar)
        marks += len(engine.drain_live())
        lat[i] = time.perf_counter_ns() - s
        has_open[i] = engine.lifecycle.has_open(bar.symbol)
    elapsed = time.perf_counter() - t0
    gc.enable()
    return {
        "live": live,
        "bars_per_s": round(len(bars) / elapsed),
        "no_open_signal": pct(lat[~has_open]),
        "with_open": pct(lat[has_open]),
        "marks": marks,
        "signals": engine.stats.signals,
    }


def probe_ns() -> float:
    """What marks cost a bar of a symbol with no open signal: the one test the engine adds per bar."""
    engine = build_engine(bench_settings(None))
    engine.live_updates = True
    n = 1_000_000
    t0 = time.perf_counter_ns()
    for _ in range(n):
        if engine.live_updates and engine.lifecycle.has_open("AAPL"):
            raise AssertionError("no signal is open")
    return round((time.perf_counter_ns() - t0) / n, 1)


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--home", type=Path, default=None, help="A TS_HOME whose models/ hold a 'swing' model.")
    ap.add_argument("--pairs", type=int, default=2, help="Interleaved (off, on) passes.")
    args = ap.parse_args()
    data = data_dir()
    if data is None or not (data / SP500).exists():
        raise SystemExit(f"bench/live_updates.py: needs {SP500} under TS_DATA_DIR")
    bars = sp500_bars(data / SP500, args.symbols)
    runs = [one_pass(bars, args.home, live) for _ in range(args.pairs) for live in (False, True)]
    off = [r for r in runs if not r["live"]]
    on = [r for r in runs if r["live"]]

    def best(rs: list[dict[str, Any]], key: str) -> float:
        """The lowest p50 over the passes: the least disturbed by other work on a shared machine."""
        return min(r[key]["p50_us"] for r in rs if r[key].get("n"))

    print(
        json.dumps(
            {
                "python": platform.python_version(),
                "scorer": describe_scorer(args.home),
                "source": f"{SP500} first {args.symbols} symbols",
                "bars": len(bars),
                "runs": runs,
                "no_open_p50_us_off_vs_on": [best(off, "no_open_signal"), best(on, "no_open_signal")],
                "with_open_p50_us_off_vs_on": [best(off, "with_open"), best(on, "with_open")],
                "added_check_per_bar_ns": probe_ns(),
            }
        )
    )


if __name__ == "__main__":
    main()
