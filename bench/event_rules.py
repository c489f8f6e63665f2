"""The event rules measured on the real data with the rulebook's outcomes, printed as one JSON object.

Bars: the S&P 500 daily file, restricted to the symbols the news file covers in its dates. News: the
Benzinga headline sample (default) or the StockNet tweets (``--news stocknet``, catalyst rule only:
tweets give no report times). Earnings dates: ``--earnings FILE`` (``symbol,date[,time]``), else
derived from the news's results headlines (``backtest.event_study.earnings_from_news``). Each rule's
hit rate and mean net R (bootstrap 95 % interval) beside the base rate of the same plan at every
bar of the same symbols, and split at ``--split`` (the rules have no fitted parameters; the split
shows whether a figure holds across periods).

    TS_DATA_DIR=../shared/data .venv/bin/python bench/event_rules.py [--news benzinga|stocknet] [--earnings FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from tradesignals.backtest.event_study import (
    bars_of,
    base_rates,
    earnings_from_news,
    run_rules,
    score_news,
    summarise,
)
from tradesignals.config import Settings
from tradesignals.domain.market import to_ns
from tradesignals.marketdata.ohlcv_file import read_ohlcv
from tradesignals.news.earnings import EarningsCalendar
from tradesignals.news.replay import ReplayNewsFeed

SP500 = "sp500_daily_2013-2018.csv.gz"
NEWS = {
    "benzinga": "news_headlines_benzinga_sample.csv.gz",
    "stocknet": "stocknet_tweets_14tickers_2014-2016.csv.gz",
}


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    ap = argparse.ArgumentParser()
    ap.add_argument("--news", choices=sorted(NEWS), default="benzinga")
    ap.add_argument("--earnings", type=Path, default=None, help="symbol,date[,time] file of announced dates")
    ap.add_argument("--split", default="2016-01-01")
    args = ap.parse_args()
    data = Path(os.environ.get("TS_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
    items = ReplayNewsFeed(data / NEWS[args.news]).load()
    frame = read_ohlcv(data / SP500)
    frame = frame[frame[["open", "high", "low", "close"]].notna().all(axis=1)]
    lo, hi = int(frame["ts"].min()), int(frame["ts"].max())
    items = [i for i in items if lo <= i.received_at <= hi + 86_400 * 10**9]
    covered = {s for i in items for s in i.symbols} & set(frame["symbol"])
    frame = frame[frame["symbol"].isin(covered)].sort_values(["ts", "symbol"]).reset_index(drop=True)
    items = [i for i in items if set(i.symbols) & covered]
    # Bars over the news's dates only (40 days before for the ATR to warm up), so the base rate
    # is measured where the rules could fire.
    first, last = min(i.received_at for i in items), max(i.received_at for i in items)
    frame = frame[(frame["ts"] >= first - 40 * 86_400 * 10**9) & (frame["ts"] <= last + 10 * 86_400 * 10**9)]
    frame = frame.reset_index(drop=True)
    if args.earnings is not None:
        earnings, source = EarningsCalendar.from_csv(args.earnings), str(args.earnings)
    elif args.news == "benzinga":
        earnings, source = earnings_from_news(items), "derived from the results headlines of the news file"
    else:
        earnings, source = EarningsCalendar(), "none (tweets carry no report times): earnings play not run"
    releases = {s: earnings.count(s) for s in sorted(covered) if earnings.count(s)}
    rules = "earnings,catalyst" if releases else "catalyst"
    split_ns = to_ns(datetime.fromisoformat(args.split).replace(tzinfo=UTC))
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(model="rule", event_rules=rules, home=Path(tmp))
        traded = run_rules(bars_of(frame), score_news(items), earnings, settings)
        out: dict[str, Any] = {
            "bars": SP500,
            "news": NEWS[args.news],
            "symbols": sorted(set(frame["symbol"])),
            "bar_rows": len(frame),
            "news_items": len(items),
            "earnings_dates": {"source": source, "releases": releases},
            "rules": summarise(traded, split_ns),
            "base_rate_every_bar": {
                "horizon_3_sessions (earnings play holds at most 3)": base_rates(frame, settings, 3),
                "horizon_5_sessions (catalyst reaction)": base_rates(frame, settings, 5),
            },
            "split": args.split,
            "costs": "domain.costs defaults (equity 5 bp a side, short borrow 0.5 %/yr)",
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
