"""Walk-forward backtest of the S&P daily file: a swing model retrained every year, against buy-and-hold.

Each period's model is trained (the training code `tradesignals train` runs, default settings) on the
rows before the period whose labels closed before it, and decides only inside it; the portfolio is
net of the default costs. Prints one JSON document: the periods, the strategy's figures and the
equal-weight buy-and-hold of the same universe over the same window. Nothing here is tuned.

    TS_DATA_DIR=/work/shared/data .venv/bin/python bench/walk_forward.py [--from 2014-01-01]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from tradesignals.backtest.run import BacktestSpec, run_backtest
from tradesignals.config import load_settings

SP500 = "sp500_daily_2013-2018.csv.gz"
DATA_DIR = Path(os.environ.get("TS_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
KEEP = (
    "total_return", "annualised_return", "volatility", "sharpe", "sortino", "calmar", "max_drawdown",
    "max_drawdown_days", "exposure", "turnover", "trades", "hit_rate", "avg_net_r", "expectancy",
    "profit_factor", "final_equity",
)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DATA_DIR / SP500)
    ap.add_argument("--from", dest="start", default="2014-01-01")
    ap.add_argument("--retrain-every", default="1Y")
    ap.add_argument("--train-window", default="3Y")
    ap.add_argument("--profile", default="moderate")
    args = ap.parse_args()
    settings = load_settings(home=Path(tempfile.mkdtemp(prefix="bench-wf-")), model="auto")
    spec = BacktestSpec(
        args.data,
        profile=args.profile,
        start_ns=pd.Timestamp(args.start, tz="UTC").value,
        retrain_every=args.retrain_every,
        train_window=args.train_window,
    )
    t0 = time.perf_counter()
    result = run_backtest(settings, spec)
    s: dict[str, Any] = result.summary
    bench = s["benchmark"]["equal_weight"]  # type: ignore[index]
    out = {
        "bench": "walk_forward",
        "data": args.data.name,
        "retrain_every": args.retrain_every,
        "train_window": args.train_window,
        "profile": args.profile,
        "window": [s["settings"]["from"], s["settings"]["to"]],
        "seconds": round(time.perf_counter() - t0, 1),
        "periods": s["model"]["periods"],
        "signals": s["signals"],
        "strategy": {k: s.get(k) for k in KEEP},
        "buy_and_hold_equal_weight": bench,
        "costs": s["settings"]["costs"],
    }
    print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
