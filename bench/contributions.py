"""Per-signal SHAP contributions and online-adaptation costs, printed as one JSON object.

Figures, on one core, for a LightGBM model of 300 trees x 31 leaves on 30 features (the size
bench/inference.py uses):

* one row, p50/p99 µs: LightGBM ``predict(pred_contrib=True)`` (num_threads=1), the same through
  `ContributionExplainer.explain` (ranking and reason strings included), and ``shap.TreeExplainer``
  (public path, which for LightGBM calls pred_contrib itself; and shap's own C TreeSHAP);
* exactness: contributions + expected value vs the raw margin, and pred_contrib vs shap;
* `OnlineAdapter`: learn, predict_proba, blend and observe_outcome µs per call, snapshot size/time.

    .venv/bin/python bench/contributions.py [--calls 2000] [--shap-calls 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from collections.abc import Callable
from typing import Any

import lightgbm as lgb
import numpy as np

from tradesignals.models.contributions import ContributionExplainer
from tradesignals.models.online import OnlineAdapter


def synthetic(n: int, n_features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns-like features with a weak signal and some NaN (warm-up gaps), as the engine sees."""
    rng = np.random.default_rng(seed)
    x = rng.standard_t(df=4, size=(n, n_features))
    z = 0.3 * x[:, 0] - 0.2 * x[:, 1] + 0.1 * np.tanh(x[:, 2] * x[:, 3]) + rng.normal(size=n)
    y = (z > 0).astype(int)
    x[rng.random(x.shape) < 0.03] = np.nan
    return x, y


def per_call_us(fn: Callable[[int], Any], calls: int, warm: int = 20) -> dict[str, float]:
    for i in range(warm):
        fn(i)
    samples = np.empty(calls)
    clock = time.perf_counter_ns
    for i in range(calls):
        t = clock()
        fn(i)
        samples[i] = clock() - t
    us = samples / 1e3
    return {
        "p50_us": round(float(np.percentile(us, 50)), 1),
        "p99_us": round(float(np.percentile(us, 99)), 1),
        "mean_us": round(float(us.mean()), 1),
        "calls": calls,
    }


def bench_contributions(trees: int, n_features: int, calls: int, shap_calls: int) -> dict[str, Any]:
    import shap

    x, y = synthetic(20_000, n_features, 0)
    names = [f"f{i:02d}" for i in range(n_features)]
    params = {"objective": "binary", "num_leaves": 31, "learning_rate": 0.05, "verbose": -1, "num_threads": 1}
    trained = lgb.train(params, lgb.Dataset(x, y, feature_name=names), num_boost_round=trees)
    booster = lgb.Booster(model_str=trained.model_to_string())  # as the registry loads it
    rows = np.ascontiguousarray(synthetic(1000, n_features, 1)[0])
    one = [rows[i : i + 1] for i in range(len(rows))]
    ex = ContributionExplainer(booster)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # shap's note on its LightGBM output shape
        t = time.perf_counter()
        explainer = shap.TreeExplainer(booster)
        shap_build_s = time.perf_counter() - t
        internal = shap.TreeExplainer(booster)
        internal.model.model_type = "internal"  # force shap's own C TreeSHAP over its own tree parse
        one_row = {
            "lightgbm_pred_contrib": per_call_us(
                lambda i: booster.predict(one[i % 1000], pred_contrib=True, num_threads=1), calls
            ),
            "explainer_explain_top5": per_call_us(lambda i: ex.explain(rows[i % 1000], k=5).reasons(), calls),
            "shap_tree_explainer": per_call_us(lambda i: explainer.shap_values(one[i % 1000]), shap_calls),
            "shap_internal_c_treeshap": per_call_us(
                lambda i: internal.shap_values(one[i % 1000], check_additivity=False), shap_calls
            ),
        }
        sample = rows[:100]
        phi = booster.predict(sample, pred_contrib=True, num_threads=1)
        via_shap = np.asarray(explainer.shap_values(sample))
        via_internal = np.asarray(internal.shap_values(sample, check_additivity=False))
    margin = booster.predict(sample, raw_score=True, num_threads=1)
    return {
        "model": f"lightgbm {booster.num_trees()} trees x 31 leaves, {n_features} features",
        "one_row": one_row,
        "exactness_100_rows": {
            "sum_plus_expected_vs_margin_max_abs": float(np.abs(phi.sum(axis=1) - margin).max()),
            "pred_contrib_vs_shap_public_max_abs": float(np.abs(phi[:, :-1] - via_shap).max()),
            "pred_contrib_vs_shap_internal_max_abs": float(np.abs(phi[:, :-1] - via_internal).max()),
        },
        "shap_explainer_build_s": round(shap_build_s, 3),
        "chosen": "lightgbm_pred_contrib",
        "env": {"lightgbm": lgb.__version__, "shap": shap.__version__},
    }


def bench_online(n_features: int, calls: int) -> dict[str, Any]:
    names = [f"f{i:02d}" for i in range(n_features)]
    rng = np.random.default_rng(2)
    x = rng.normal(size=(calls + 500, n_features))
    won = rng.random(calls + 500) < 1 / (1 + np.exp(-(x[:, 0] - 0.5 * x[:, 1])))
    p_batch = rng.uniform(0.4, 0.8, calls + 500)
    ad = OnlineAdapter(names, full_weight_after=100)
    for i in range(500):  # past the ramp, so blend does the full work
        ad.learn(x[i], bool(won[i]), p_batch=float(p_batch[i]))
        ad.observe_outcome(float(p_batch[i]), bool(won[i]))
    as_dicts = [dict(zip(names, r.tolist(), strict=True)) for r in x[:1000]]
    out = {
        "features": n_features,
        "learn_vector": per_call_us(
            lambda i: ad.learn(x[500 + i], bool(won[500 + i]), p_batch=float(p_batch[500 + i])), calls, 0
        ),
        "predict_proba_vector": per_call_us(lambda i: ad.predict_proba(x[i % 1000]), calls),
        "predict_proba_dict": per_call_us(lambda i: ad.predict_proba(as_dicts[i % 1000]), calls),
        "blend_vector": per_call_us(lambda i: ad.blend(0.6, x[i % 1000]), calls),
        "observe_outcome": per_call_us(
            lambda i: ad.observe_outcome(float(p_batch[i % 1000]), bool(won[i % 1000])), calls
        ),
    }
    t = time.perf_counter()
    text = ad.to_json()
    dump_s = time.perf_counter() - t
    t = time.perf_counter()
    OnlineAdapter.from_json(text)
    load_s = time.perf_counter() - t
    out["snapshot"] = {
        "bytes": len(text),
        "to_json_ms": round(dump_s * 1e3, 2),
        "from_json_ms": round(load_s * 1e3, 2),
        "outcomes_replayed": len(json.loads(text)["drift"]["history"]),
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--shap-calls", type=int, default=200)
    ap.add_argument("--trees", type=int, default=300)
    ap.add_argument("--features", type=int, default=30)
    args = ap.parse_args()
    result = {
        "contributions": bench_contributions(args.trees, args.features, args.calls, args.shap_calls),
        "online": bench_online(args.features, args.calls),
        "env": {
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "numpy": np.__version__,
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
