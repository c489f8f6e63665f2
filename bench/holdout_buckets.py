"""The hold-out as a trader reads it: hit rate and average net R by confidence bucket, as JSON.

For a registered swing model (``--model-dir``), rebuild the dataset with the labels the model
records (the rulebook: fill at the next open, exit at stop / last target / expiry, net of costs; the
win is net R > 0), keep only rows after the model's training cut, score them, and report — per
equal-mass decile of confidence and per profile rank band — the rows, mean confidence, realised hit
rate of the one win event and the average net R. Also the label mix (outcomes) of those rows. This
is the table the model card prints; nothing here is tuned to the file.

    .venv/bin/python bench/holdout_buckets.py --model-dir DIR [--data PATH]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from tradesignals.domain.signals import SignalType
from tradesignals.features.catalog import FeatureSetRef
from tradesignals.features.catalog import latest as latest_feature_set
from tradesignals.models.dataset import build_dataset, load_bars, parse_directions
from tradesignals.models.evaluate import training_cut_ns
from tradesignals.models.labels import LabelSpec
from tradesignals.models.registry import ModelRegistry

SP500 = "sp500_daily_2013-2018.csv.gz"
DATA_DIR = Path(os.environ.get("TS_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")


def _bucket(p: np.ndarray, y: np.ndarray, r: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    n = int(mask.sum())
    if not n:
        return {"n": 0}
    return {
        "n": n,
        "mean_confidence": round(float(p[mask].mean()), 4),
        "hit_rate": round(float(y[mask].mean()), 4),
        "avg_net_r": round(float(r[mask].mean()), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR / SP500)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--name", default="swing")
    args = parser.parse_args()

    registry = ModelRegistry(args.model_dir)
    meta = registry.metadata(args.name)
    training = meta.metrics["training"]
    label = training["label"]
    spec = LabelSpec.from_dict({"signal_type": meta.signal_type, **label})
    live = latest_feature_set(FeatureSetRef.from_dict(meta.feature_set).name)
    ds = build_dataset(
        load_bars([args.data]),
        signal_type=SignalType(meta.signal_type),
        directions=parse_directions(training["directions"]),
        feature_set=live,
        spec=spec,
    )
    after = ds.ts > training_cut_ns(meta)
    scorer = registry.load(args.name).scorer
    p = np.asarray(scorer.score_batch(ds.matrix(scorer.feature_names)[after]).probability, dtype=np.float64)
    y = ds.y[after]
    r = ds.frame["net_r"].to_numpy(dtype=np.float64)[after]
    # Equal-mass deciles; a calibrator's plateaus (many rows at one value) merge with their neighbours.
    edges = np.unique(np.quantile(p, np.linspace(0, 1, 11)))
    deciles = []
    for k in range(len(edges) - 1):
        lo, hi = edges[k], edges[k + 1]
        last = k == len(edges) - 2
        mask = (p >= lo) & ((p <= hi) if last else (p < hi))
        deciles.append({"lo": round(float(lo), 4), "hi": round(float(hi), 4), **_bucket(p, y, r, mask)})
    grid = np.asarray(label.get("confidence_quantiles") or [], dtype=np.float64)
    bands = {}
    if grid.size >= 2:
        rank = np.interp(p, grid, np.linspace(0, 1, grid.size))
        base = float(label["base_rate"])
        for name, floor in (("aggressive", 0.5), ("moderate", 0.75), ("conservative", 0.9)):
            bands[name] = _bucket(p, y, r, (rank >= floor) & (p >= base))
    outcomes = ds.frame["outcome"].to_numpy()[after]
    print(
        json.dumps(
            {
                "bench": "holdout_buckets",
                "model": f"{meta.name}:{meta.version}",
                "rows": int(after.sum()),
                "first_ts": int(ds.ts[after].min()),
                "base_rate_training": label.get("base_rate"),
                "all": _bucket(p, y, r, np.ones_like(y, dtype=bool)),
                "deciles": deciles,
                "profiles": bands,
                "outcomes": {
                    str(k): int(v)
                    for k, v in zip(*np.unique(outcomes.astype(str), return_counts=True), strict=True)
                },
            }
        )
    )


if __name__ == "__main__":
    main()
