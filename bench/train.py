"""Seconds to train the swing model on the whole S&P 500 daily file, printed as one JSON object.

The full pipeline as ``tradesignals train --data FILE --out DIR`` runs it: read the file, batch
features, triple-barrier labels, five purged walk-forward folds (three members each, boosters early-
stopped on an inner hold-out), OOF calibration, the final refit, and the save through the registry
(into a temporary directory). ``seconds`` is the wall time of all of it; the stages are beside it.
Inference is benched by ``bench/inference.py``.

    .venv/bin/python bench/train.py [--data PATH] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from tradesignals.models.train import TrainConfig, train

SP500 = "sp500_daily_2013-2018.csv.gz"
DATA_DIR = Path(os.environ.get("TS_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR / SP500)
    parser.add_argument("--threads", type=int, default=TrainConfig().num_threads)
    args = parser.parse_args()

    config = TrainConfig(num_threads=args.threads)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = train(args.data, out, "swing", config=config)
        seconds = time.perf_counter() - start
    training = result.metrics["training"]
    report: dict[str, Any] = {
        "bench": "train",
        "data": args.data.name,
        "signal_type": "swing",
        "seconds": round(seconds, 2),
        "stages_s": {
            "dataset": round(result.seconds["dataset"], 2),
            "walk_forward": round(result.seconds["walk_forward"], 2),
            "final_refit_and_save": round(result.seconds["train"] - result.seconds["walk_forward"], 2),
        },
        "bars": training["dataset"]["bars"],
        "rows": result.rows,
        "symbols": training["symbols"],
        "features": len(training["feature_names"]),
        "folds": len(result.folds),
        "oof_rows": len(result.oof),
        "calibration_rows": training["calibration_rows"],
        "final_rounds": training["rounds"],
        "threads": args.threads,
        "oof_auc": round(result.metrics["auc"], 4),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
