"""The event-driven backtest on the full S&P daily file with the swing model: bars/s and its summary.

Trains a swing model on the file up to ``--train-until`` (through the registry, the training code
`tradesignals train` runs) unless ``--model-dir`` names a registry, then backtests the whole file
through the engine `build_engine` makes. Two runs are timed: the whole file (in-sample before the
cut, allowed and marked so; this is the speed figure) and the out-of-sample window after the cut
(the figures to read). Prints one JSON document.

    TS_DATA_DIR=/work/shared/data .venv/bin/python bench/backtest.py [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from tradesignals.backtest.run import BacktestSpec, run_backtest
from tradesignals.config import load_settings
from tradesignals.models.dataset import build_dataset, load_bars
from tradesignals.models.registry import ModelRegistry
from tradesignals.models.train import TrainConfig, train_dataset

SP500 = "sp500_daily_2013-2018.csv.gz"
DATA_DIR = Path(os.environ.get("TS_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
KEEP = (
    "total_return", "annualised_return", "volatility", "sharpe", "sortino", "max_drawdown",
    "max_drawdown_days", "calmar", "exposure", "turnover", "trades", "hit_rate", "avg_net_r",
    "expectancy", "profit_factor", "final_equity", "signals", "benchmark", "model", "in_sample",
)  # fmt: skip


def _summary(s: dict[str, Any]) -> dict[str, Any]:
    return {k: s[k] for k in KEEP if k in s}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DATA_DIR / SP500)
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--train-until", default="2017-01-01")
    ap.add_argument("--profile", default="moderate")
    args = ap.parse_args()
    out: dict[str, Any] = {"data": args.data.name}
    models = args.model_dir
    if models is None:
        home = Path(tempfile.mkdtemp(prefix="bench-backtest-"))
        t0 = time.perf_counter()
        ds = build_dataset(load_bars([args.data]))
        train_dataset(
            ds, ModelRegistry.at_home(home), until=args.train_until, config=TrainConfig(num_threads=2)
        )
        out["train_seconds"] = round(time.perf_counter() - t0, 1)
        models = home / "models"
    settings = load_settings(home=Path(tempfile.mkdtemp(prefix="bench-home-")))
    t0 = time.perf_counter()
    whole = run_backtest(
        settings, BacktestSpec(args.data, profile=args.profile, allow_in_sample=True, model_dir=models)
    )
    seconds = time.perf_counter() - t0
    out["full_file"] = {
        "bars": whole.run.bars,
        "seconds": round(seconds, 2),
        "bars_per_s": round(whole.run.bars / seconds),
        "signals_published": len(whole.run.signals),
        "summary_in_sample": _summary(whole.summary),
    }
    start = int(time.mktime(time.strptime(args.train_until, "%Y-%m-%d"))) * 10**9
    t0 = time.perf_counter()
    oos = run_backtest(
        settings, BacktestSpec(args.data, profile=args.profile, model_dir=models, start_ns=start)
    )
    out["out_of_sample"] = {"from": args.train_until, "seconds": round(time.perf_counter() - t0, 2)}
    out["out_of_sample"] |= _summary(oos.summary)
    print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
