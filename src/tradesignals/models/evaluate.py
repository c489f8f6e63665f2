"""Score a registered model on data it never trained on, beside the two baselines, on the same rows.

A model evaluated on its own training rows reports its memory, not its skill. So every row is
rebuilt exactly as in training (same feature set, same barriers, same directions, from the model's
metadata) and, by default, a row is scored only if it lies **after the model's training cut**: its
``ts`` later than the training's last ``t_end`` (``metrics["training"]["last_t_end_ns"]``, the end of
the registry's ``training_range``). Its features may reach back into the training period — the live
engine's do too — but its outcome was never trained on, nor was any outcome of its dates.

Rows of the training period are not scored, *whatever their symbol*: a symbol the model never saw
still moved with the 500 it did see on the same dates (one market, one regime), so "unseen symbol"
is not "unseen data" — scoring them turned "loses to always long" into "beats it" in one
reproduction. ``include_unseen_symbols_in_period=True`` (CLI ``--include-unseen-symbols-in-period``)
additionally scores in-period rows of symbols the model never trained on — share-class twins of a
trained symbol count as trained (``models.share_classes``) — and reports them **separately**, under
``in_period_unseen_symbols`` with a ``warning``, never pooled with the honest rows.

Data wholly inside the training period is refused (`InsideTrainingPeriod`, one line): there is
nothing honest to report.

Everything not scored is counted in ``skipped`` with its reason, along with rows the dataset dropped
(warm-up, no label) and rows the scorer would not score (a required feature missing).

The baselines use the statistics stored at training time (training rows only), never anything
measured on the evaluation rows: *always long* predicts the training base rate; *20-bar momentum*
predicts the training hit rate of rows whose 20-bar return points the trade's way, or of the rest.
Each section carries ``intervals``: block-bootstrap 95 % intervals over contiguous blocks of dates
(``models.bootstrap``) for the AUC and for the log-loss (and AUC) difference against each baseline.
With ``online=True`` (CLI ``--online``) the online recalibration is replayed prequentially over the
scored rows (``models.prequential``) and its figures are reported beside the batch model's.

A model whose feature set differs from the catalog's current definition of that set is refused
(``catalog.check_compatible``): its columns would no longer mean what it learnt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tradesignals.domain.market import to_datetime, to_ns
from tradesignals.domain.signals import Direction, SignalType
from tradesignals.features.catalog import FeatureSetRef, check_compatible
from tradesignals.features.catalog import latest as latest_feature_set
from tradesignals.marketdata.ohlcv_file import PriceChoice
from tradesignals.models.bootstrap import BlockBootstrap, interval_report
from tradesignals.models.dataset import (
    MOMENTUM_COLUMN,
    Dataset,
    DatasetError,
    build_dataset,
    load_bars,
    parse_directions,
)
from tradesignals.models.inference import Scorer
from tradesignals.models.labels import LabelSpec
from tradesignals.models.metrics import DEFAULT_THRESHOLD, evaluate_predictions
from tradesignals.models.prequential import prequential_online
from tradesignals.models.registry import LATEST, ModelMetadata, ModelRegistry
from tradesignals.models.share_classes import daily_returns, find_twins
from tradesignals.models.train import BaselineStats

__all__ = ["IN_PERIOD_WARNING", "EvaluationError", "InsideTrainingPeriod", "evaluate", "model_names"]

_COMPACT = (
    "n",
    "base_rate",
    "mean_p",
    "auc",
    "log_loss",
    "brier",
    "ece",
    "ece_equal_mass",
    "calibration_intercept",
    "calibration_slope",
)

IN_PERIOD_WARNING = (
    "these rows lie inside the model's training period: their symbols were not trained on, but their "
    "dates were (same market, same regime), so these figures overstate what the model knows of the "
    "future; judge the model by the rows after its training cut"
)


class EvaluationError(ValueError):
    """The model or the data cannot be evaluated as asked; a one-line message."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class InsideTrainingPeriod(EvaluationError):
    """No row of the data lies after the model's training cut: nothing honest to score."""


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
    include_unseen_symbols_in_period: bool = False,
    online: bool = False,
    bootstrap: BlockBootstrap = BlockBootstrap(),
) -> dict[str, Any]:
    """Metrics of the model (``latest`` by default) on the rows of ``data_paths`` after its training cut.

    ``model_dir`` is the registry directory ``train --out`` wrote (or one model's directory inside
    it). With one model there ``name`` may be omitted. Returns a JSON-ready dict: the metrics of
    ``metrics.evaluate_predictions`` at the top level, ``baselines``, ``intervals``, ``skipped``,
    ``by_year``, for a two-direction model ``by_direction``; with ``online`` an ``online`` section;
    with ``include_unseen_symbols_in_period`` an ``in_period_unseen_symbols`` section (see the module
    docstring). Raises `InsideTrainingPeriod` when no row lies after the cut.
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
    cut = training_cut_ns(meta)
    after = ts > cut
    if not after.any():
        raise InsideTrainingPeriod(
            f"all {len(ds):,} rows of this data lie inside the model's training period (its labels run "
            f"to {_iso(cut)[:10]}; the data's last row is {_iso(int(ts.max()))[:10]}): nothing after the "
            "training cut to evaluate"
        )
    symbols = ds.frame["symbol"].astype(str).to_numpy()
    known = np.isin(symbols, np.asarray(meta.symbols, dtype=object))
    x_all = ds.matrix(scorer.feature_names)
    ret20_all = ds.frame[MOMENTUM_COLUMN].to_numpy(dtype=np.float64)
    stats = BaselineStats.from_dict(training["baselines"])

    main = _Scored.of(ds, np.flatnonzero(after), scorer, x_all, ret20_all, stats)
    report: dict[str, Any] = {
        "model": {
            "name": meta.name,
            "version": meta.version,
            "signal_type": meta.signal_type,
            "feature_set": str(ref),
            "training_range": {"first": meta.training_range[0], "last": meta.training_range[1]},
            "training_cut": _iso(cut),
            "training_rows": training.get("rows"),
            "training_symbols": len(meta.symbols),
            "directions": [d.value for d in directions],
        },
        "data": [str(f) for f in ([data_paths] if isinstance(data_paths, str | Path) else data_paths)],
        "rows_built": len(ds),
        "skipped": {
            "inside_training_range": int((~after).sum()),
            "missing_required_features": main.not_warm,
            "not_warm": ds.counts.get("not_warm", 0),
            "unlabelled": ds.counts.get("unlabelled", 0),
        },
        "scored": {
            "after_training_end": main.n,
            "of_symbols_not_trained_on": int((~known[main.rows]).sum()),
            "first": _iso(int(ts[main.rows].min())) if main.n else None,
            "last": _iso(int(ts[main.rows].max())) if main.n else None,
        },
    }
    report.update(_section(main, threshold, bootstrap))
    dis = main.disagreement
    report["disagreement"] = {
        "mean": float(dis.mean()) if dis.size else None,
        "p90": float(np.quantile(dis, 0.9)) if dis.size else None,
    }
    if len(directions) > 1:
        report["by_direction"] = {
            d.value: _compact(main.y, main.p, main.baselines, main.direction == d.sign, threshold)
            for d in Direction
        }
    years = np.asarray([to_datetime(int(t)).year for t in ts[main.rows]], dtype=np.int64)
    report["by_year"] = {
        str(year): _compact(main.y, main.p, main.baselines, years == year, threshold)
        for year in np.unique(years).tolist()
    }
    if online and main.n:
        report["online"] = _online_section(main, scorer.feature_names, threshold)
    if include_unseen_symbols_in_period:
        report["in_period_unseen_symbols"] = _in_period_section(
            ds, bars, meta, after, known, symbols, scorer, x_all, ret20_all, stats, threshold, bootstrap
        )
        report["skipped"]["share_class_twins_in_period"] = report["in_period_unseen_symbols"]["rows_of_twins"]
    return report


def training_cut_ns(meta: ModelMetadata) -> int:
    """The model's training cut: the last bar any training label looked at (ns UTC).

    ``metrics["training"]["last_t_end_ns"]``; a model saved without it falls back to the end of its
    ``training_range`` (the same instant, as ISO text).
    """
    training = meta.metrics.get("training") or {}
    value = training.get("last_t_end_ns") if isinstance(training, Mapping) else None
    if value is not None:
        return int(value)
    try:
        return to_ns(datetime.fromisoformat(str(meta.training_range[1])))
    except (ValueError, TypeError, IndexError):
        raise EvaluationError(f"model {meta.name}/{meta.version}: its metadata has no training cut") from None


@dataclass(frozen=True, eq=False)
class _Scored:
    """The scored rows of one section: positions in the dataset, labels, probabilities, baselines."""

    rows: npt.NDArray[np.int64]
    y: npt.NDArray[np.float64]
    p: npt.NDArray[np.float64]
    uncalibrated: npt.NDArray[np.float64]
    disagreement: npt.NDArray[np.float64]
    direction: npt.NDArray[np.float64]
    ts: npt.NDArray[np.int64]
    t_end: npt.NDArray[np.int64]
    x: npt.NDArray[np.float64]
    baselines: dict[str, npt.NDArray[np.float64]]
    not_warm: int

    @property
    def n(self) -> int:
        return int(self.rows.size)

    @classmethod
    def of(
        cls,
        ds: Dataset,
        candidate: npt.NDArray[np.int64],
        scorer: Scorer,
        x_all: npt.NDArray[np.float64],
        ret20_all: npt.NDArray[np.float64],
        stats: BaselineStats,
    ) -> _Scored:
        x = x_all[candidate]
        scores = scorer.score_batch(x)
        rows = candidate[scores.warm]
        direction = ds.direction[rows]
        return cls(
            rows=rows,
            y=ds.y[rows],
            p=scores.probability[scores.warm],
            uncalibrated=scores.uncalibrated[scores.warm],
            disagreement=scores.disagreement[scores.warm],
            direction=direction,
            ts=ds.ts[rows],
            t_end=ds.t_end[rows],
            x=x[scores.warm],
            baselines=stats.predict(direction, ret20_all[rows]),
            not_warm=int((~scores.warm).sum()),
        )


def _section(s: _Scored, threshold: float, bootstrap: BlockBootstrap) -> dict[str, Any]:
    """Metrics, the baselines' metrics on the same rows, and the date-block bootstrap intervals."""
    out = evaluate_predictions(s.y, s.p, threshold=threshold)
    out["baselines"] = {
        key: evaluate_predictions(s.y, pred, threshold=threshold) for key, pred in s.baselines.items()
    }
    out["intervals"] = interval_report(s.y, s.p, s.baselines, s.ts, bootstrap)
    return out


def _online_section(s: _Scored, feature_names: Sequence[str], threshold: float) -> dict[str, Any]:
    """The batch model against the same model with the online recalibration, replayed prequentially."""
    replay = prequential_online(s.p, s.x, s.y, s.ts, s.t_end, feature_names)
    keys = (*_COMPACT, "hit_rate_by_decile", "mean_p_by_decile")
    without = evaluate_predictions(s.y, s.p, threshold=threshold)
    with_online = evaluate_predictions(s.y, replay.p, threshold=threshold)
    return {
        "method": "prequential: rows in time order, each scored before its outcome is learnt; an "
        "outcome is learnt once its label resolved (t_end before the row's ts); every held-out row "
        "is learnt (live, only emitted signals are)",
        "learned": replay.learned,
        "mean_weight": float(replay.weight.mean()),
        "share_rows_blended": float((replay.weight > 0).mean()),
        "without": {k: without[k] for k in keys},
        "with": {k: with_online[k] for k in keys},
    }


def _in_period_section(
    ds: Dataset,
    bars: pd.DataFrame,
    meta: ModelMetadata,
    after: npt.NDArray[np.bool_],
    known: npt.NDArray[np.bool_],
    symbols: npt.NDArray[Any],
    scorer: Scorer,
    x_all: npt.NDArray[np.float64],
    ret20_all: npt.NDArray[np.float64],
    stats: BaselineStats,
    threshold: float,
    bootstrap: BlockBootstrap,
) -> dict[str, Any]:
    """In-period rows of symbols the model never trained on, twins of trained symbols excluded."""
    inside_unknown = ~after & ~known
    candidates = sorted(set(symbols[inside_unknown].tolist()))
    returns = daily_returns(bars, set(candidates) | set(meta.symbols)) if candidates else None
    twins = find_twins(candidates, meta.symbols, returns)
    is_twin = np.isin(symbols, np.asarray(sorted(twins), dtype=object))
    section = _Scored.of(ds, np.flatnonzero(inside_unknown & ~is_twin), scorer, x_all, ret20_all, stats)
    out: dict[str, Any] = {
        "warning": IN_PERIOD_WARNING,
        "symbols": sorted(set(symbols[section.rows].tolist())),
        "twins": [twins[k].to_dict() for k in sorted(twins)],
        "rows_of_twins": int((inside_unknown & is_twin).sum()),
        "missing_required_features": section.not_warm,
    }
    out.update(_section(section, threshold, bootstrap))
    return out


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
        out[key] = {k: b[k] for k in ("auc", "log_loss", "brier", "ece", "ece_equal_mass")}
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
