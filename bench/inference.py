"""Model inference latency and throughput, printed as one JSON object.

Figures, for a realistic model size (LightGBM 300 trees x 31 leaves, XGBoost 300 trees depth 6,
30 features, plus a logistic member and an isotonic calibrator), on one core:

* one row, p50/p99 µs: LightGBM ``Booster.predict`` (num_threads=1), XGBoost ``inplace_predict``
  (nthread=1), our flattened walker on each tree member alone, and the full ensemble ``score_row``;
* a batch of 1,000 rows, rows/s, for each of the same;
* exactness of the fast paths against the libraries, and the time to load a saved version.

    .venv/bin/python bench/inference.py [--calls 5000] [--trees 300] [--features 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from typing import Any

import lightgbm as lgb
import numpy as np
import xgboost as xgb
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tradesignals.models.inference import IsotonicCalibrator, LogisticMember, Member, Scorer, TreeMember
from tradesignals.models.registry import ModelRegistry


def synthetic(n: int, n_features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns-like features with a weak signal and some NaN (warm-up gaps), as the engine sees."""
    rng = np.random.default_rng(seed)
    x = rng.standard_t(df=4, size=(n, n_features))
    z = 0.3 * x[:, 0] - 0.2 * x[:, 1] + 0.1 * np.tanh(x[:, 2] * x[:, 3]) + rng.normal(size=n)
    y = (z > 0).astype(int)
    x[rng.random(x.shape) < 0.03] = np.nan
    return x, y


def build(trees: int, n_features: int) -> tuple[Scorer, lgb.Booster, xgb.Booster, dict[str, float]]:
    x, y = synthetic(20_000, n_features, 0)
    names = [f"f{i:02d}" for i in range(n_features)]
    t0 = time.perf_counter()
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 31, "learning_rate": 0.05, "verbose": -1, "num_threads": 1},
        lgb.Dataset(x, y, feature_name=names),
        num_boost_round=trees,
    )
    t1 = time.perf_counter()
    xbooster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 6, "eta": 0.05, "nthread": 1, "tree_method": "hist"},
        xgb.DMatrix(x, y, feature_names=names),
        num_boost_round=trees,
    )
    t2 = time.perf_counter()
    xi = np.where(np.isnan(x), np.nanmean(x, axis=0), x)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1)).fit(xi, y)
    members: list[Member] = [
        TreeMember.from_lightgbm(booster),
        TreeMember.from_xgboost(xbooster),
        LogisticMember.from_sklearn(pipe),
    ]
    weights = [0.5, 0.3, 0.2]
    raw = Scorer(members, feature_names=names, weights=weights, warm=False).reference_predict(x).probability
    iso = IsotonicRegression(out_of_bounds="clip").fit(raw, y)
    t3 = time.perf_counter()
    scorer = Scorer(
        members, feature_names=names, weights=weights, calibrator=IsotonicCalibrator.from_sklearn(iso)
    )
    t4 = time.perf_counter()
    timings = {
        "train_lightgbm_s": round(t1 - t0, 2),
        "train_xgboost_s": round(t2 - t1, 2),
        "flatten_pack_and_warm_s": round(t4 - t3, 3),
    }
    return scorer, booster, xbooster, timings


def per_call_us(fn: Callable[[np.ndarray], Any], rows: np.ndarray, calls: int) -> dict[str, float]:
    for i in range(min(200, calls)):  # warm caches and any lazy init
        fn(rows[i % len(rows)])
    samples = np.empty(calls)
    clock = time.perf_counter_ns
    for i in range(calls):
        row = rows[i % len(rows)]
        t = clock()
        fn(row)
        samples[i] = clock() - t
    us = samples / 1e3
    return {
        "p50_us": round(float(np.percentile(us, 50)), 2),
        "p99_us": round(float(np.percentile(us, 99)), 2),
        "mean_us": round(float(us.mean()), 2),
    }


def rows_per_s(fn: Callable[[np.ndarray], Any], batch: np.ndarray, repeats: int = 7) -> int:
    fn(batch)
    best = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(batch)
        best.append(time.perf_counter() - t)
    return round(len(batch) / float(np.median(best)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--trees", type=int, default=300)
    ap.add_argument("--features", type=int, default=30)
    args = ap.parse_args()

    scorer, booster, xbooster, timings = build(args.trees, args.features)
    lgb_member, xgb_member = scorer.members[0], scorer.members[1]
    assert isinstance(lgb_member, TreeMember) and isinstance(xgb_member, TreeMember)
    forest, xforest = lgb_member.forest, xgb_member.forest
    rows, _ = synthetic(1000, args.features, 1)
    rows = np.ascontiguousarray(rows)

    one_row = {
        "lightgbm_booster_predict": per_call_us(
            lambda r: booster.predict(r[None, :], num_threads=1), rows, args.calls
        ),
        "xgboost_inplace_predict": per_call_us(
            lambda r: xbooster.inplace_predict(r[None, :]), rows, args.calls
        ),
        "flat_lightgbm_member": per_call_us(forest.predict_row, rows, args.calls),
        "flat_xgboost_member": per_call_us(xforest.predict_row, rows, args.calls),
        "ensemble_score_row": per_call_us(scorer.score_row, rows, args.calls),
    }
    batch = {
        "lightgbm_booster_predict": rows_per_s(lambda b: booster.predict(b, num_threads=1), rows),
        "xgboost_inplace_predict": rows_per_s(xbooster.inplace_predict, rows),
        "flat_lightgbm_member": rows_per_s(forest.predict_batch, rows),
        "flat_xgboost_member": rows_per_s(xforest.predict_batch, rows),
        "ensemble_score_batch": rows_per_s(scorer.score_batch, rows),
    }
    fast, ref = scorer.score_batch(rows), scorer.reference_predict(rows)
    exactness = {
        "flat_lightgbm_vs_booster_max_abs": float(
            np.abs(forest.predict_batch(rows) - booster.predict(rows)).max()
        ),
        "flat_xgboost_vs_inplace_max_abs": float(
            np.abs(fast.members[:, 1] - xbooster.inplace_predict(rows)).max()
        ),
        "ensemble_vs_reference_max_abs": float(np.abs(fast.probability - ref.probability).max()),
    }
    with tempfile.TemporaryDirectory() as home:
        reg = ModelRegistry.at_home(home)
        t = time.perf_counter()
        reg.save(
            "bench",
            scorer,
            feature_set={"name": "bench", "version": 1, "fingerprint": "-"},
            training_range=("2020-01-01", "2020-12-31"),
            symbols=["SYN"],
            signal_type="swing",
            metrics={},
        )
        t_save = time.perf_counter() - t
        t = time.perf_counter()
        reg.load("bench")
        t_load = time.perf_counter() - t

    print(
        json.dumps(
            {
                "model": {
                    "features": args.features,
                    "lightgbm": f"{forest.n_trees} trees x 31 leaves ({forest.n_nodes} nodes)",
                    "xgboost": f"{xforest.n_trees} trees depth 6 ({xforest.n_nodes} nodes)",
                    "members": list(scorer.member_names),
                    "calibrator": "isotonic",
                },
                "one_row": one_row,
                "batch_1000_rows_per_s": batch,
                "exactness": exactness,
                "artifact": {"save_s": round(t_save, 3), "load_and_warm_s": round(t_load, 3)},
                "setup": timings,
                "env": {
                    "python": platform.python_version(),
                    "cpu": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(),
                    "lightgbm": lgb.__version__,
                    "xgboost": xgb.__version__,
                    "numpy": np.__version__,
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
