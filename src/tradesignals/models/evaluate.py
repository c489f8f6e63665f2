"""Score a registered model on data it never trained on, beside the two baselines, on the same rows.

A model evaluated on its own training rows reports its memory, not its skill. So every row is
rebuilt exactly as in training (same feature set, same barriers, same directions, from the model's
metadata) and a row counts only if the model cannot have seen its answer:

* its symbol was not among the training symbols, or
* its label window starts after the last bar any training label looked at: ``ts`` later than the
  training's last ``t_end`` (the registry's ``training_range`` end). Its features may reach back
  into the training period — the live engine's do too — but its outcome was never trained on.

Everything else is counted in ``skipped`` with its reason, along with rows the dataset dropped
(warm-up, no label) and rows the scorer would not score (a required feature missing).

The baselines use the statistics stored at training time (training rows only), never anything
measured on the evaluation rows: *always long* predicts the training base rate; *20-bar momentum*
predicts the training hit rate of rows whose 20-bar return points the trade's way, or of the rest.

A model whose feature set differs from the catalog's current definition of that set is refused
(``catalog.check_compatible``): its columns would no longer mean what it learnt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tradesignals.domain.market import to_datetime
from tradesignals.domain.signals import Direction, SignalType
from tradesignals.features.catalog import FeatureSetRef, check_compatible
from tradesignals.features.catalog import latest as latest_feature_set
from tradesignals.marketdata.ohlcv_file import PriceChoice
from tradesignals.models.dataset import (
    MOMENTUM_COLUMN,
    DatasetError,
    build_dataset,
    load_bars,
    parse_directions,
)
from tradesignals.models.labels import LabelSpec
from tradesignals.models.metrics import DEFAULT_THRESHOLD, evaluate_predictions
from tradesignals.models.registry import LATEST, ModelRegistry
from tradesignals.models.train import BaselineStats

__all__ = ["EvaluationError", "evaluate", "model_names"]

_COMPACT = ("n", "base_rate", "mean_p", "auc", "log_loss", "brier", "ece")


class EvaluationError(ValueError):
    """The model or the data cannot be evaluated as asked; a one-line message."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


def model_names(model_dir: str | Path) -> list[str]:
    """Names of the models in a registry directory (those with a ``latest`` pointer)."""
    root = Path(model_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / LATEST).is_file())


def evaluate(
    model_dir: str | Path,
    data_paths: str | Path | Sequence[str | Path],
    *,
    name: str | None = None,
    version: str = "latest",
    threshold: float | None = None,
    prices: PriceChoice | None = None,
) -> dict[str, Any]:
    """Metrics of the model (``latest`` by default) on the rows of ``data_paths`` it never trained on.

    ``model_dir`` is the registry directory ``train --out`` wrote (or one model's directory inside
    it). With one model there ``name`` may be omitted. Returns a JSON-ready dict: the metrics of
    ``metrics.evaluate_predictions`` at the top level, ``baselines``, ``skipped``, ``by_year`` and,
    for a two-direction model, ``by_direction``.
    """
    root, name = _locate(Path(model_dir), name)
    registry = ModelRegistry(root)
    meta = registry.metadata(name, version)
    training = meta.metrics.get("training")
    if not isinstance(training, Mapping):
        raise EvaluationError(f"{root / name}: the model's metadata lacks its training section")
    try:
        ref = FeatureSetRef.from_dict(meta.feature_set)
        live = latest_feature_set(ref.name)
    except (ValueError, KeyError) as err:
        raise EvaluationError(f"{root / name}: cannot resolve its feature set ({err})") from None
    check_compatible(ref, live)  # FeatureSetMismatch: a one-line refusal
    loaded = registry.load(name, meta.version)
    scorer = loaded.scorer
    threshold = float(
        training.get("config", {}).get("threshold", DEFAULT_THRESHOLD) if threshold is None else threshold
    )

    label = training["label"]
    kind = SignalType(meta.signal_type)
    try:
        spec = LabelSpec.from_dict({"signal_type": kind.value, **label})
    except (ValueError, KeyError, TypeError) as err:
        raise EvaluationError(f"{root / name}: {err}") from None
    directions = parse_directions(training["directions"])
    bars = load_bars(data_paths, prices=prices)
    ds = build_dataset(bars, signal_type=kind, directions=directions, feature_set=live, spec=spec)
    if not len(ds):
        raise DatasetError("the data holds no warm, labelled rows to evaluate")

    ts = ds.ts
    symbols = ds.frame["symbol"].astype(str).to_numpy()
    last_t_end = int(training["last_t_end_ns"])
    known = np.isin(symbols, np.asarray(meta.symbols, dtype=object))
    after = ts > last_t_end
    unseen_symbol = ~known
    candidate = after | unseen_symbol
    x = ds.matrix(scorer.feature_names)[candidate]
    scores = scorer.score_batch(x)
    scored = np.flatnonzero(candidate)[scores.warm]
    p = scores.probability[scores.warm]
    y = ds.y[scored]
    direction = ds.direction[scored]
    ret20 = ds.frame[MOMENTUM_COLUMN].to_numpy(dtype=np.float64)[scored]
    baselines = BaselineStats.from_dict(training["baselines"]).predict(direction, ret20)

    report: dict[str, Any] = {
        "model": {
            "name": meta.name,
            "version": meta.version,
            "signal_type": meta.signal_type,
            "feature_set": str(ref),
            "training_range": {"first": meta.training_range[0], "last": meta.training_range[1]},
            "training_rows": training.get("rows"),
            "training_symbols": len(meta.symbols),
            "directions": [d.value for d in directions],
        },
        "data": [str(f) for f in ([data_paths] if isinstance(data_paths, str | Path) else data_paths)],
        "rows_built": len(ds),
        "skipped": {
            "inside_training_range": int((~candidate).sum()),
            "missing_required_features": int((~scores.warm).sum()),
            "not_warm": ds.counts.get("not_warm", 0),
            "unlabelled": ds.counts.get("unlabelled", 0),
        },
        "scored": {
            "after_training_end": int((after[scored]).sum()),
            "unseen_symbols": int((unseen_symbol[scored]).sum()),
            "first": _iso(int(ts[scored].min())) if scored.size else None,
            "last": _iso(int(ts[scored].max())) if scored.size else None,
        },
    }
    report.update(evaluate_predictions(y, p, threshold=threshold))
    report["baselines"] = {
        key: evaluate_predictions(y, pred, threshold=threshold) for key, pred in baselines.items()
    }
    dis = scores.disagreement[scores.warm]
    report["disagreement"] = {
        "mean": float(dis.mean()) if dis.size else None,
        "p90": float(np.quantile(dis, 0.9)) if dis.size else None,
    }
    if len(directions) > 1:
        report["by_direction"] = {
            d.value: _compact(y, p, baselines, direction == d.sign, threshold) for d in Direction
        }
    years = np.asarray([to_datetime(int(t)).year for t in ts[scored]], dtype=np.int64)
    report["by_year"] = {
        str(year): _compact(y, p, baselines, years == year, threshold) for year in np.unique(years).tolist()
    }
    return report


def _compact(
    y: npt.NDArray[np.float64],
    p: npt.NDArray[np.float64],
    baselines: Mapping[str, npt.NDArray[np.float64]],
    rows: npt.NDArray[np.bool_],
    threshold: float,
) -> dict[str, Any]:
    """Headline metrics of a slice, with the baselines' AUC and log loss on the same slice."""
    full = evaluate_predictions(y[rows], p[rows], threshold=threshold)
    out: dict[str, Any] = {k: full[k] for k in _COMPACT}
    for key, pred in baselines.items():
        b = evaluate_predictions(y[rows], pred[rows], threshold=threshold)
        out[key] = {"auc": b["auc"], "log_loss": b["log_loss"], "brier": b["brier"], "ece": b["ece"]}
    return out


def _locate(model_dir: Path, name: str | None) -> tuple[Path, str]:
    """(registry root, model name) from a registry directory or one model's directory."""
    if not model_dir.exists():
        raise EvaluationError(f"{model_dir}: no such model directory")
    if name is None and (model_dir / LATEST).is_file():
        return model_dir.parent, model_dir.name
    names = model_names(model_dir)
    if name is not None:
        if name not in names:
            have = ", ".join(names) or "none"
            raise EvaluationError(f"{model_dir}: no model named {name!r} (models there: {have})")
        return model_dir, name
    if not names:
        raise EvaluationError(f"{model_dir}: no trained model here (run train --out {model_dir} first)")
    if len(names) > 1:
        raise EvaluationError(f"{model_dir}: several models ({', '.join(names)}); name the one to evaluate")
    return model_dir, names[0]


def _iso(ns: int) -> str:
    return to_datetime(ns).isoformat()
