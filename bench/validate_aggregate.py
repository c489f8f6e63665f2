"""Ticks/s through validation and 1m bar aggregation on one core, printed as one JSON object.

The ingest hot path as the engine runs it: ``Validator.check`` then ``BarAggregator.update`` with each
symbol on its own calendar (``calendar_for``: XNYS sessions for equities, 24/7 UTC for crypto). Ticks
come from the seeded simulator (1,000 symbols, every fifth crypto) and are generated *before* timing,
so only validation and aggregation are measured; the tick list is then frozen out of the garbage
collector's sight (``gc.freeze``), as a live process would not hold millions of ticks. Each figure is
the best of ``--repeats`` runs with fresh validator and aggregator; the median is reported beside it.

Scenarios: ``regular`` (2024-01-02 from the open: every tick in session) and ``half_day``
(2024-07-03 from 12:00 New York: the simulator knows no half days and keeps trading equities until
16:00, so XNYS sends most equity ticks down the outside-session path).

    .venv/bin/python bench/validate_aggregate.py [--symbols 1000] [--ticks 1500000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from tradesignals.domain.market import Tick, Timeframe, to_ns
from tradesignals.marketdata.bars import BarAggregator
from tradesignals.marketdata.calendar import calendar_for
from tradesignals.marketdata.feeds.simulator import SimulatorFeed
from tradesignals.marketdata.validate import Validator

NY = ZoneInfo("America/New_York")
SCENARIOS = {
    "regular": to_ns(datetime(2024, 1, 2, 9, 30, tzinfo=NY)),
    "half_day": to_ns(datetime(2024, 7, 3, 12, 0, tzinfo=NY)),
}


def generate(symbols: int, n: int, start_ns: int) -> list[Tick]:
    feed = SimulatorFeed(symbols, speed=float("inf"), emit="ticks", asset_class="mix", start_ns=start_ns)
    ticks: list[Tick] = []
    for step in feed.steps():
        ticks.extend(e for e in step if isinstance(e, Tick))
        if len(ticks) >= n:
            break
    return ticks[:n]


def timed(runs: int, once: Callable[[], dict[str, Any]], n: int) -> dict[str, Any]:
    rates, last = [], {}
    for _ in range(runs):
        start = time.perf_counter()
        last = once()
        rates.append(n / (time.perf_counter() - start))
    return {"ticks_per_s": round(max(rates)), "median_ticks_per_s": round(statistics.median(rates)), **last}


def bench(ticks: list[Tick], runs: int) -> dict[str, Any]:
    n = len(ticks)
    calendar_for("equity")  # build XNYS once, outside the timing

    def both() -> dict[str, Any]:
        v, agg = Validator(), BarAggregator(Timeframe.M1, calendar=calendar_for)
        check, update = v.check, agg.update
        bars = 0
        for t in ticks:
            if check(t):
                bars += len(update(t))
        bars += len(agg.flush())
        return {
            "bars": bars,
            "accepted": v.accepted,
            "rejected": dict(v.rejected),
            "flagged": dict(v.flagged),
            "outside_session": agg.outside_session,
            "late": agg.late,
        }

    def hold() -> dict[str, Any]:
        v, agg = Validator(), BarAggregator(Timeframe.M1, calendar=calendar_for)
        process, update = v.process, agg.update
        for t in ticks:
            for e in process(t):
                update(e)  # type: ignore[arg-type]
        return {}

    def validate_only() -> dict[str, Any]:
        check = Validator().check
        for t in ticks:
            check(t)
        return {}

    def aggregate_only() -> dict[str, Any]:
        update = BarAggregator(Timeframe.M1, calendar=calendar_for).update
        for t in ticks:
            update(t)
        return {}

    def utc_only() -> dict[str, Any]:
        update = BarAggregator(Timeframe.M1).update
        for t in ticks:
            update(t)
        return {}

    return {
        "ticks": n,
        "validate_and_aggregate": timed(runs, both, n),
        "validate_hold_policy_and_aggregate": timed(runs, hold, n),
        "validate_only": timed(runs, validate_only, n),
        "aggregate_only_session_calendars": timed(runs, aggregate_only, n),
        "aggregate_only_utc": timed(runs, utc_only, n),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=1_500_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    out: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "symbols": args.symbols,
        "crypto_symbols": args.symbols // 5,
        "timeframe": "1m",
        "aim_ticks_per_s": 500_000,
    }
    for name, start in SCENARIOS.items():
        ticks = generate(args.symbols, args.ticks, start)
        gc.collect()
        gc.freeze()
        out[name] = bench(ticks, args.repeats)
        del ticks
        gc.unfreeze()
        gc.collect()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
