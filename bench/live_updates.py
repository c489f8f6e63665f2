"""What marking open signals each bar (``signal.live``) costs the engine, printed as one JSON object.

The real S&P 500 daily file (first ``--symbols`` symbols) through the engine ``build_engine`` makes,
bar by bar, ``--pairs`` times each with marks off and on (interleaved: off, on, off, on …), marking
and draining after every bar as the engine service does (after the bar's signals). The decision
(bar → signal) and the mark are timed apart, split by whether the bar's symbol has an open signal
after the bar: the decision must not move with marks on, a mark without an open signal is one
dict probe, and ``mark_with_open`` is what re-scoring and marking open signals costs. Scorer: the registered ``swing`` model of ``--home`` (min edge -1, so every warm
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
    """``on_bar_signals`` (the bar → signal path) timed alone; with ``live``, then ``mark`` timed apart.

    The engine service marks a bar only after its signals are stored and published, so the mark
    is not on the signal's path; what it adds to a bar is ``mark`` (one dict probe without an open
    signal), and the decision's own time must not move (the off/on pairs show any drift).
    """
    engine = build_engine(bench_settings(home), warm=(Timeframe.D1,))
    decide = np.empty(len(bars), dtype=np.int64)
    marking = np.zeros(len(bars), dtype=np.int64)
    has_open = np.zeros(len(bars), dtype=bool)
    marks = 0
    gc.collect()
    gc.disable()
    t0 = time.perf_counter()
    for i, bar in enumerate(bars):
        s = time.perf_counter_ns()
        engine.on_bar_signals(bar)
        m = time.perf_counter_ns()
        if live:
            engine.mark(bar)
            marks += len(engine.drain_live())
        marking[i] = time.perf_counter_ns() - m
        decide[i] = m - s
        has_open[i] = engine.lifecycle.has_open(bar.symbol)
    elapsed = time.perf_counter() - t0
    gc.enable()
    return {
        "live": live,
        "bars_per_s": round(len(bars) / elapsed),
        "bar_to_signal_no_open_signal": pct(decide[~has_open]),
        "bar_to_signal_with_open": pct(decide[has_open]),
        "mark_no_open_signal": pct(marking[~has_open]) if live else None,
        "mark_with_open": pct(marking[has_open]) if live else None,
        "marks": marks,
        "signals": engine.stats.signals,
    }


def probe_ns() -> float:
    """``mark`` of a bar whose symbol has no open signal, in a tight loop (ns per call)."""
    engine = build_engine(bench_settings(None))
    bar = Bar("AAPL", Timeframe.D1, 0, 100.0, 101.0, 99.0, 100.0, 1.0)
    n = 1_000_000
    t0 = time.perf_counter_ns()
    for _ in range(n):
        engine.mark(bar)
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
                "bar_to_signal_p50_us_no_open_off_vs_on": [
                    best(off, "bar_to_signal_no_open_signal"),
                    best(on, "bar_to_signal_no_open_signal"),
                ],
                "bar_to_signal_p50_us_with_open_off_vs_on": [
                    best(off, "bar_to_signal_with_open"),
                    best(on, "bar_to_signal_with_open"),
                ],
                "mark_p50_us_no_open_vs_with_open": [
                    best(on, "mark_no_open_signal"),
                    best(on, "mark_with_open"),
                ],
                "mark_without_open_signal_ns": probe_ns(),
            }
        )
    )


if __name__ == "__main__":
    main()
