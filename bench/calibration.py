"""Calibration of the swing model out of sample, with and without the online recalibration, as JSON.

Trains on the data up to ``--until`` (default 2017-01-01; hold-out by time), then evaluates the rows
after the training cut exactly as ``tradesignals evaluate --online`` does: AUC and log loss beside
both baselines with date-block bootstrap 95 % intervals, ECE on 10 equal-mass bins (and on
equal-width bins, labelled), the calibration intercept and slope, and the online recalibration
replayed prequentially (each row scored before its outcome is learnt). Also the shipped model's
level on its own training rows and on the most recent fold (mean calibrated p against the realised
rate), the shift the calibration fix is about. ``--model-dir`` evaluates an existing registry instead
of training. Nothing here is tuned to the file; figures are reported as they come.

    .venv/bin/python bench/calibration.py [--data PATH] [--until 2017-01-01] [--model-dir DIR]
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

import numpy as np

from tradesignals.models.evaluate import evaluate
from tradesignals.models.train import TrainConfig, train

SP500 = "sp500_daily_2013-2018.csv.gz"
DATA_DIR = Path(os.environ.get("TS_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
_KEYS = (
    "n",
    "base_rate",
    "mean_p",
    "auc",
    "log_loss",
    "brier",
    "ece_equal_mass",
    "ece",
    "calibration_intercept",
    "calibration_slope",
)


def _r(v: Any) -> Any:
    return round(v, 5) if isinstance(v, float) else v


def _pick(m: dict[str, Any]) -> dict[str, Any]:
    return {("ece_equal_width" if k == "ece" else k): _r(m.get(k)) for k in _KEYS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR / SP500)
    parser.add_argument("--until", default="2017-01-01")
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=TrainConfig().num_threads)
    args = parser.parse_args()

    report: dict[str, Any] = {"bench": "calibration", "data": args.data.name}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir
        if model_dir is None:
            model_dir = Path(tmp)
            start = time.perf_counter()
            result = train(
                args.data, model_dir, "swing", args.until, config=TrainConfig(num_threads=args.threads)
            )
            report["train_seconds"] = round(time.perf_counter() - start, 2)
            ds = result.dataset
            p = result.scorer.score_batch(ds.matrix(result.scorer.feature_names)).probability
            report["until"] = args.until
            report["shipped_on_training_rows"] = {
                "rows": len(ds),
                "base_rate": _r(float(ds.y.mean())),
                "mean_p": _r(float(np.nanmean(p))),
                "shift": _r(float(np.nanmean(p) - ds.y.mean())),
            }
            report["recent_fold_check"] = {
                k: _r(v) for k, v in result.metrics["training"]["calibration"]["recent_fold_check"].items()
            }
        start = time.perf_counter()
        ev = evaluate(model_dir, args.data, online=True)
        report["evaluate_seconds"] = round(time.perf_counter() - start, 2)
    report["model"] = {"version": ev["model"]["version"], "training_cut": ev["model"]["training_cut"]}
    report["holdout"] = {"first": ev["scored"]["first"], "last": ev["scored"]["last"], **_pick(ev)}
    report["baselines"] = {k: _pick(v) for k, v in ev["baselines"].items()}
    iv = ev["intervals"]
    report["intervals"] = {
        "method": iv["method"],
        "block_dates": iv["block_dates"],
        "n_resamples": iv["n_resamples"],
        "seed": iv["seed"],
        "auc": {k: _r(v) for k, v in iv["auc"].items()},
        "log_loss_diff": {
            k: {q: _r(x) for q, x in v["log_loss_diff"].items()} for k, v in iv["baselines"].items()
        },
    }
    online = ev["online"]
    report["online"] = {
        "learned": online["learned"],
        "mean_weight": _r(online["mean_weight"]),
        "without": _pick(online["without"]),
        "with": _pick(online["with"]),
    }
    report.update(
        {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
