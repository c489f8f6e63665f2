"""Train the calibrated ensemble: purged walk-forward out-of-fold predictions, then a final refit.

The pipeline, and the leak each step closes:

1. **Rows** come from ``models.dataset`` (features at ``t`` from bars ``<= t``; the label's window
   ``(t, t_end]``). ``until`` keeps only rows whose label window closed before it
   (``validation.time_holdout``): nothing trained on has seen a price from ``until`` on.
2. **Folds** are ``validation.purged_walk_forward`` (expanding window): each test fold is later than
   everything its model trained on, and a training row whose label window reaches into the test fold
   is purged. No row is ever predicted by a model that saw it.
3. **Members per fold**: LightGBM (the primary), XGBoost and an L2 logistic regression (mean imputer →
   standard scaler → logistic; the artifact keeps the imputer's fill values). The boosters' number of
   rounds is chosen by early stopping on an *inner* hold-out — the last ``inner_valid_fraction`` of
   the fold's training timestamps, itself purged — never on the test fold, whose predictions would
   otherwise have been picked for looking good.
4. **Ensemble** = a weighted mean of the members' probabilities with weights fixed in advance
   (LightGBM 0.5, XGBoost 0.25, logistic 0.25) rather than fitted: fitting them on the OOF rows and
   then calibrating on the same rows would grade the model on its own homework.
5. **Calibration** is fitted on **out-of-fold** ensemble predictions only — isotonic, or Platt (on
   the logit) below ``isotonic_min_rows`` rows — never on in-sample predictions, which are
   over-confident by construction. It uses the **most recent folds only**: the last
   ``calibration_folds`` (default 1), widened to earlier folds until they hold ``isotonic_min_rows``
   rows. Why not all folds pooled: the calibrator is applied to the *final* members, and the fold
   whose model is most like them (trained on all but the last slice) predicting the most recent
   slice is the one whose raw-to-realised mapping carries over; pooling the first folds (models
   trained on a fraction of the years, predicting periods with other hit rates) shifted the shipped
   model about 2–3 points low on the S&P file. The isotonic fit runs on quantile bins of the OOF
   predictions (at most ``calibration_bins``, each of at least ``calibration_min_bin_rows`` rows, hit
   rates smoothed by half a hit), not on single rows: fitted row by row, the lowest block can be a
   dozen rows without a hit, and the model then tells users "0 %", a certainty no sample supports
   (and an unbounded log loss the first time it is wrong). It is then applied to the final members'
   predictions (as sklearn's ``CalibratedClassifierCV(ensemble=False)`` does).
   **Weights, consistently.** The members train with uniqueness weights (``labels``), and those
   weights favour wins (on the S&P file the weighted hit rate is 0.320 against 0.301 per row), so
   members fitted on them aim at the weighted rate while the calibrator and every report count each
   signal once. ``balanced_weights`` therefore rescales the uniqueness weights within each class so
   that the classes keep their per-row shares: overlap is still discounted *within* a class, but the
   members' probabilities aim at the per-signal hit rate the calibrator and users see.
   ``metrics["training"]["calibration"]`` records the folds used and the check on the most recent
   fold: the shipped model's mean calibrated probability there against its realised hit rate.
6. **Honest OOF figures.** Scoring the OOF rows with a calibrator fitted on those same rows would
   flatter the ECE. So the calibrated figures per fold use a calibrator fitted on the *earlier*
   folds' OOF rows only (the most recent of them, by the rule of step 5), and the headline OOF metrics (the registry's ``metrics``) cover folds
   2…K — the first fold has no earlier fold to calibrate on and reports raw figures only.
7. **Final members** are refitted on every training row with the folds' median number of rounds,
   packed into an ``inference.Scorer`` (which keeps the members' spread as ``disagreement``) and
   saved through ``ModelRegistry`` with the feature set's ref, the training range (first bar,
   last label end), the symbols and the metrics.

The baselines the card compares against are fitted the same way, on training rows only: *always
long* predicts the training base rate for every row; *20-bar momentum* predicts the training hit
rate of rows whose 20-bar return points the trade's way (``direction × ret_20 > 0``) or of the rest.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tradesignals.domain.market import to_datetime, to_ns
from tradesignals.domain.signals import Direction, SignalType
from tradesignals.features.catalog import FeatureSet
from tradesignals.marketdata.ohlcv_file import PriceChoice
from tradesignals.models.dataset import (
    MOMENTUM_COLUMN,
    Dataset,
    build_dataset,
    load_bars,
)
from tradesignals.models.inference import (
    Calibrator,
    IsotonicCalibrator,
    LogisticMember,
    PlattCalibrator,
    Scorer,
    TreeMember,
)
from tradesignals.models.metrics import evaluate_predictions
from tradesignals.models.registry import ModelMetadata, ModelRegistry
from tradesignals.models.trees import LOGIT_EPS
from tradesignals.models.validation import purged_walk_forward, time_holdout

if TYPE_CHECKING:
    import lightgbm
    import xgboost
    from sklearn.pipeline import Pipeline

__all__ = [
    "MEMBER_NAMES",
    "BaselineStats",
    "TrainConfig",
    "TrainError",
    "TrainProgress",
    "TrainResult",
    "balanced_weights",
    "calibration_bins",
    "fit_calibrator",
    "parse_until",
    "train",
    "train_dataset",
]

MEMBER_NAMES = ("lightgbm", "xgboost", "logistic")
FloatArray = npt.NDArray[np.float64]


class TrainError(ValueError):
    """Training cannot go on (no rows before ``until``, one class only, too few timestamps…); one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Fixed before looking at any result; nothing here was tuned to the data (see the model card).

    Deliberately conservative: shallow trees with large leaves (daily returns are mostly noise),
    early stopping on an inner hold-out, two threads (the machines are shared).
    """

    n_splits: int = 5
    min_train: int | float | None = None  # initial training span; default one fold's worth
    inner_valid_fraction: float = 0.2
    max_rounds: int = 500
    early_stopping_rounds: int = 50
    fallback_rounds: int = 100  # when the inner hold-out is unusable (too small, one class)
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_data_in_leaf: int = 200
    xgb_max_depth: int = 4
    xgb_min_child_weight: float = 5.0
    logistic_c: float = 1.0
    weights: tuple[float, float, float] = (0.5, 0.25, 0.25)  # MEMBER_NAMES order
    isotonic_min_rows: int = 1000
    calibration_folds: int = 1  # most recent OOF folds the calibrator is fitted on (then widened)
    calibration_bins: int = 100
    calibration_min_bin_rows: int = 50
    num_threads: int = 2
    seed: int = 7
    threshold: float = 0.6


@dataclass(frozen=True, slots=True)
class TrainProgress:
    """One step done: ``done`` of ``total`` (the folds, then the final refit)."""

    done: int
    total: int
    stage: str  # "fold" or "final"
    message: str


@dataclass(frozen=True, slots=True)
class BaselineStats:
    """The baselines' parameters, learnt from training rows only (per direction, keyed "long"/"short").

    ``base_rate``: hit rate of all rows; ``with_trend``/``against_trend``: hit rate of rows whose
    20-bar return does / does not point the trade's way (NaN counts as "does not").
    """

    base_rate: dict[str, float]
    with_trend: dict[str, float]
    against_trend: dict[str, float]

    @classmethod
    def fit(cls, y: FloatArray, direction: FloatArray, ret20: FloatArray) -> BaselineStats:
        base: dict[str, float] = {}
        up: dict[str, float] = {}
        down: dict[str, float] = {}
        trend = _with_trend(direction, ret20)
        for d in Direction:
            rows = direction == d.sign
            if not rows.any():
                continue
            rate = float(y[rows].mean())
            base[d.value] = rate
            up[d.value] = float(y[rows & trend].mean()) if (rows & trend).any() else rate
            down[d.value] = float(y[rows & ~trend].mean()) if (rows & ~trend).any() else rate
        return cls(base, up, down)

    def predict(self, direction: FloatArray, ret20: FloatArray) -> dict[str, FloatArray]:
        """``always_long`` and ``momentum_20`` probabilities for each row."""
        prior = np.full(direction.shape, np.nan)
        momentum = np.full(direction.shape, np.nan)
        trend = _with_trend(direction, ret20)
        for d in Direction:
            rows = direction == d.sign
            if not rows.any():
                continue
            if d.value not in self.base_rate:
                raise TrainError(f"no {d.value} rows were trained on; cannot score {d.value} rows")
            prior[rows] = self.base_rate[d.value]
            momentum[rows] = np.where(trend[rows], self.with_trend[d.value], self.against_trend[d.value])
        return {"always_long": prior, "momentum_20": momentum}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BaselineStats:
        return cls(
            {str(k): float(v) for k, v in d["base_rate"].items()},
            {str(k): float(v) for k, v in d["with_trend"].items()},
            {str(k): float(v) for k, v in d["against_trend"].items()},
        )


def _with_trend(direction: FloatArray, ret20: FloatArray) -> npt.NDArray[np.bool_]:
    with np.errstate(invalid="ignore"):
        return np.asarray(direction * ret20 > 0, dtype=bool)


@dataclass(frozen=True, eq=False)
class TrainResult:
    """What was saved and how it scored out of fold.

    ``oof`` has one row per out-of-fold prediction: ``row`` (position in ``dataset``), ``fold``,
    ``label``, ``p_<member>``, ``p_raw`` (the weighted mean), ``p_prior_cal`` (calibrated by the
    earlier folds' calibrator; NaN in fold 1). ``dataset`` holds the rows trained on.
    """

    name: str
    version: str
    location: str
    metadata: ModelMetadata
    scorer: Scorer
    dataset: Dataset
    folds: list[dict[str, Any]]
    metrics: dict[str, Any]
    oof: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return len(self.dataset)


# --------------------------------------------------------------------------------------------------
# Entry points.
# --------------------------------------------------------------------------------------------------


def train(
    data_paths: str | Path | Sequence[str | Path],
    out: str | Path | ModelRegistry,
    signal_type: str | SignalType = SignalType.SWING,
    until: str | date | datetime | None = None,
    *,
    name: str | None = None,
    directions: Sequence[str | Direction] = (Direction.LONG,),
    feature_set: FeatureSet | None = None,
    config: TrainConfig = TrainConfig(),
    progress: Callable[[TrainProgress], None] | None = None,
    prices: PriceChoice | None = None,
) -> TrainResult:
    """Read the OHLCV files, build the dataset and train (``train_dataset``); save under ``out``.

    ``out`` is a registry directory (``ModelRegistry(out)``) or a registry. The model's name
    defaults to the signal type (``swing``), so ``evaluate`` finds it in the directory.
    """
    t0 = time.perf_counter()
    cut = parse_until(until)
    bars = load_bars(data_paths, prices=prices)
    ds = build_dataset(bars, signal_type=signal_type, directions=directions, feature_set=feature_set)
    built = time.perf_counter() - t0
    result = train_dataset(ds, out, until=cut, name=name, config=config, progress=progress)
    result.seconds["dataset"] = built
    result.seconds["total"] = time.perf_counter() - t0
    return result


def confidence_quantiles(p: npt.ArrayLike, points: int = 101) -> list[float]:
    """``points`` evenly spaced quantiles of the finite probabilities in ``p`` (empty when none)."""
    values = np.asarray(p, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not values.size:
        return []
    return [float(q) for q in np.quantile(values, np.linspace(0.0, 1.0, points))]


def train_dataset(
    ds: Dataset,
    out: str | Path | ModelRegistry,
    *,
    until: str | date | datetime | int | None = None,
    name: str | None = None,
    config: TrainConfig = TrainConfig(),
    progress: Callable[[TrainProgress], None] | None = None,
) -> TrainResult:
    """Walk-forward OOF, calibration on OOF, final refit, save. See the module docstring."""
    cfg = config
    if cfg.n_splits < 2:
        raise TrainError("n_splits must be at least 2: the calibrated OOF figures need an earlier fold")
    t0 = time.perf_counter()
    if not len(ds):
        raise TrainError("the dataset is empty: no warm, labelled rows")
    cut = until if isinstance(until, int) else parse_until(until)
    if cut is not None:
        idx = time_holdout(ds.ts, ds.t_end, cut).train_idx
        if not idx.size:
            raise TrainError(
                f"no row's label window ends before {to_datetime(cut).date()}: nothing to train on"
            )
        ds = ds.subset(idx)
    y = ds.y
    if np.unique(y).size < 2:
        raise TrainError(f"all {len(y)} training labels are {int(y[0])}: nothing to learn")
    x = ds.matrix()
    w = ds.weight
    ts, t_end = ds.ts, ds.t_end
    direction = ds.direction
    ret20 = ds.frame[MOMENTUM_COLUMN].to_numpy(dtype=np.float64)
    names = ds.feature_names
    weights = np.asarray(cfg.weights, dtype=np.float64) / float(np.sum(cfg.weights))

    try:
        splits = purged_walk_forward(ts, t_end, cfg.n_splits, min_train=cfg.min_train)
    except ValueError as err:
        raise TrainError(f"cannot cut {cfg.n_splits} walk-forward folds: {err}") from None
    total_steps = len(splits) + 1

    oof_parts: list[pd.DataFrame] = []
    folds: list[dict[str, Any]] = []
    fold_rounds: list[dict[str, int]] = []
    for k, split in enumerate(splits):
        tr, te = split.train_idx, split.test_idx
        if np.unique(y[tr]).size < 2:
            raise TrainError(f"fold {k + 1}: training rows hold one class only; use fewer folds")
        fitted = _fit_members(x[tr], y[tr], w[tr], ts[tr], t_end[tr], names, cfg)
        fold_rounds.append(fitted.rounds)
        members = fitted.predict(x[te], cfg)
        p_raw = members @ weights
        prior = recent_calibration_rows(oof_parts, cfg) if oof_parts else None
        p_cal = np.full(te.size, np.nan)
        if prior is not None:
            cal = fit_calibrator(prior["p_raw"].to_numpy(), prior["label"].to_numpy(), cfg)
            p_cal = cal.predict(p_raw)
        part = pd.DataFrame({"row": te, "fold": k + 1, "label": y[te]})
        for j, m in enumerate(MEMBER_NAMES):
            part[f"p_{m}"] = members[:, j]
        part["p_raw"] = p_raw
        part["p_prior_cal"] = p_cal
        stats = BaselineStats.fit(y[tr], direction[tr], ret20[tr])
        base = stats.predict(direction[te], ret20[te])
        part["p_always_long"] = base["always_long"]
        part["p_momentum_20"] = base["momentum_20"]
        oof_parts.append(part)

        fold = {
            "fold": k + 1,
            "train_rows": int(tr.size),
            "test_rows": int(te.size),
            "train_first": _iso(int(ts[tr].min())),
            "train_last_t_end": _iso(int(t_end[tr].max())),
            "test_first": _iso(split.test_start),
            "test_last": _iso(split.test_end),
            "rounds": fitted.rounds,
            "model": None if prior is None else evaluate_predictions(y[te], p_cal, threshold=cfg.threshold),
            "model_raw": evaluate_predictions(y[te], p_raw, threshold=cfg.threshold),
            "members_auc": {
                m: evaluate_predictions(y[te], members[:, j], threshold=cfg.threshold)["auc"]
                for j, m in enumerate(MEMBER_NAMES)
            },
            "always_long": evaluate_predictions(y[te], base["always_long"], threshold=cfg.threshold),
            "momentum_20": evaluate_predictions(y[te], base["momentum_20"], threshold=cfg.threshold),
        }
        folds.append(fold)
        if progress is not None:
            auc = fold_auc(fold)
            shown = "n/a" if auc is None else f"{auc:.3f}"
            progress(
                TrainProgress(
                    k + 1, total_steps, "fold", f"fold {k + 1}/{len(splits)}: {te.size:,} rows, AUC {shown}"
                )
            )

    oof = pd.concat(oof_parts, ignore_index=True)
    walk_s = time.perf_counter() - t0

    # Final: calibrator on the most recent OOF folds, members refitted on all rows with the folds'
    # median rounds.
    cal_rows = recent_calibration_rows(oof_parts, cfg)
    calibrator = fit_calibrator(cal_rows["p_raw"].to_numpy(), cal_rows["label"].to_numpy(), cfg)
    rounds = {m: max(1, int(np.median([r[m] for r in fold_rounds]))) for m in ("lightgbm", "xgboost")}
    final = _fit_members(x, y, w, ts, t_end, names, cfg, rounds=rounds)
    has_nan: list[bool] = [bool(np.isnan(x[:, j]).any()) for j in range(x.shape[1])]
    required = tuple(n for n, gap in zip(names, has_nan, strict=True) if not gap)
    scorer = Scorer(
        final.members(names),
        feature_names=names,
        weights=weights.tolist(),
        calibrator=calibrator,
        required_features=required,
    )

    stats = BaselineStats.fit(y, direction, ret20)
    metrics = _headline_metrics(oof, folds, cfg)
    last_fold = oof_parts[-1]["row"].to_numpy()
    shipped = scorer.score_batch(x[last_fold])
    shipped_p = shipped.probability[shipped.warm]
    recent_rate = float(y[last_fold][shipped.warm].mean()) if shipped.warm.any() else None
    recent_mean = float(shipped_p.mean()) if shipped_p.size else None
    metrics["training"] = {
        "rows": len(ds),
        "symbols": len(ds.symbols),
        "first_ts_ns": int(ts.min()),
        "last_ts_ns": int(ts.max()),
        "last_t_end_ns": int(t_end.max()),
        "until": None if cut is None else _iso(cut),
        "signal_type": ds.spec.signal_type.value,
        "timeframe": ds.timeframe.value,
        "directions": [d.value for d in ds.directions],
        "label": {
            **ds.spec.as_dict(),
            "definition": "1 if the signal wins: net R > 0 at the plan's exit (first of stop, last "
            "target, expiry), filled at the next bar's open, net of the cost schedule; decisions "
            "never filled are not samples",
            "atr": "atr_14",
            "base_rate": float(np.average(y, weights=None)) if len(y) else None,
            # The model's own confidence scale: quantiles (0 %, 1 %, … 100 %) of its calibrated
            # out-of-fold probabilities on the calibration rows. A live confidence's rank on this
            # scale is what the risk profiles filter on (``domain.risk``): a fixed probability
            # floor means nothing to a model whose whole range is a few points wide.
            "confidence_quantiles": confidence_quantiles(calibrator.predict(cal_rows["p_raw"].to_numpy())),
        },
        "feature_names": list(names),
        "required_features": list(required),
        "members": list(MEMBER_NAMES),
        "weights": weights.tolist(),
        "rounds": rounds,
        "fold_rounds": fold_rounds,
        "calibrator": type(calibrator).__name__,
        "calibration_rows": len(cal_rows),
        "calibration": {
            "folds": sorted(int(f) for f in cal_rows["fold"].unique()),
            "rows": len(cal_rows),
            "sample_weights": "uniqueness, rescaled within each class to the class's row share",
            "recent_fold_check": {
                "fold": len(folds),
                "rows": int(shipped.warm.sum()),
                "base_rate": recent_rate,
                "mean_p_shipped": recent_mean,
                "shift": None if recent_rate is None or recent_mean is None else recent_mean - recent_rate,
            },
        },
        "baselines": stats.to_dict(),
        "dataset": dict(ds.counts),
        "config": asdict(cfg),
    }
    registry = out if isinstance(out, ModelRegistry) else ModelRegistry(out)
    model_name = name or ds.spec.signal_type.value
    meta = registry.save(
        model_name,
        scorer,
        feature_set=ds.feature_set.ref.to_dict(),
        training_range=(_iso(int(ts.min())), _iso(int(t_end.max()))),
        symbols=ds.symbols,
        signal_type=ds.spec.signal_type.value,
        metrics=metrics,
    )
    if progress is not None:
        progress(TrainProgress(total_steps, total_steps, "final", f"saved {model_name}/{meta.version}"))
    seconds = {"walk_forward": walk_s, "train": time.perf_counter() - t0}
    return TrainResult(
        model_name,
        meta.version,
        registry.store.location(model_name, meta.version),
        meta,
        scorer,
        ds,
        folds,
        metrics,
        oof,
        seconds,
    )


def parse_until(value: str | date | datetime | None) -> int | None:
    """``--until``: a date (midnight UTC), an aware datetime, or ISO text; ns UTC, None for none."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TrainError(f"until {value.isoformat()} has no time zone; give a date or a UTC time")
        return to_ns(value)
    if isinstance(value, date):
        return to_ns(datetime(value.year, value.month, value.day, tzinfo=UTC))
    text = str(value).strip()
    try:
        if len(text) == 10:
            return parse_until(date.fromisoformat(text))
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise TrainError(f"bad date {text!r}: expected YYYY-MM-DD") from None
    return parse_until(parsed)


# --------------------------------------------------------------------------------------------------
# Members.
# --------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Fitted:
    lgb: lightgbm.Booster
    xgb: xgboost.Booster
    logistic: Pipeline
    rounds: dict[str, int]

    def predict(self, x: FloatArray, cfg: TrainConfig) -> FloatArray:
        """Members' probabilities (columns in ``MEMBER_NAMES`` order), through the libraries."""
        p_lgb = self.lgb.predict(x, num_iteration=self.rounds["lightgbm"], num_threads=cfg.num_threads)
        p_xgb = self.xgb.inplace_predict(x, iteration_range=(0, self.rounds["xgboost"]))
        p_log = self.logistic.predict_proba(x)[:, 1]
        return np.column_stack([np.asarray(a, dtype=np.float64) for a in (p_lgb, p_xgb, p_log)])

    def members(self, names: Sequence[str]) -> list[TreeMember | LogisticMember]:
        return [
            TreeMember.from_lightgbm(self.lgb, "lightgbm"),
            TreeMember.from_xgboost(self.xgb, "xgboost"),
            LogisticMember.from_sklearn(self.logistic, name="logistic"),
        ]


def _fit_members(
    x: FloatArray,
    y: FloatArray,
    w: FloatArray,
    ts: npt.NDArray[np.int64],
    t_end: npt.NDArray[np.int64],
    names: Sequence[str],
    cfg: TrainConfig,
    rounds: dict[str, int] | None = None,
) -> _Fitted:
    """Fit the three members; with ``rounds`` None the boosters early-stop on an inner, purged hold-out."""
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    cols = list(names)
    w = balanced_weights(w, y)
    lgb_params: dict[str, Any] = {
        "objective": "binary",
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "min_data_in_leaf": cfg.min_data_in_leaf,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "num_threads": cfg.num_threads,
        "seed": cfg.seed,
        "deterministic": True,
        "force_row_wise": True,
        "verbose": -1,
    }
    xgb_params: dict[str, Any] = {
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        "tree_method": "hist",
        "eta": cfg.learning_rate,
        "max_depth": cfg.xgb_max_depth,
        "min_child_weight": cfg.xgb_min_child_weight,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "lambda": 1.0,
        "nthread": cfg.num_threads,
        "seed": cfg.seed,
    }
    if rounds is None:
        inner = _inner_holdout(ts, t_end, y, cfg.inner_valid_fraction)
        if inner is None:
            rounds = {"lightgbm": cfg.fallback_rounds, "xgboost": cfg.fallback_rounds}
        else:
            fit_i, val_i = inner
            dtrain = lgb.Dataset(x[fit_i], y[fit_i], weight=w[fit_i], feature_name=cols, free_raw_data=True)
            dval = lgb.Dataset(x[val_i], y[val_i], weight=w[val_i], reference=dtrain)
            probe = lgb.train(
                lgb_params,
                dtrain,
                num_boost_round=cfg.max_rounds,
                valid_sets=[dval],
                callbacks=[lgb.early_stopping(cfg.early_stopping_rounds, verbose=False)],
            )
            xprobe = xgb.train(
                xgb_params,
                xgb.DMatrix(x[fit_i], y[fit_i], weight=w[fit_i], feature_names=cols),
                num_boost_round=cfg.max_rounds,
                evals=[(xgb.DMatrix(x[val_i], y[val_i], weight=w[val_i], feature_names=cols), "valid")],
                early_stopping_rounds=cfg.early_stopping_rounds,
                verbose_eval=False,
            )
            rounds = {
                "lightgbm": max(1, int(probe.best_iteration or cfg.max_rounds)),
                "xgboost": max(1, int(xprobe.best_iteration) + 1),
            }
    booster = lgb.train(
        lgb_params,
        lgb.Dataset(x, y, weight=w, feature_name=cols, free_raw_data=True),
        num_boost_round=rounds["lightgbm"],
    )
    xbooster = xgb.train(
        xgb_params,
        xgb.DMatrix(x, y, weight=w, feature_names=cols),
        num_boost_round=rounds["xgboost"],
    )
    logistic = Pipeline(
        [
            ("imputer", SimpleImputer(strategy="mean", keep_empty_features=True)),
            ("scaler", StandardScaler()),
            ("logistic", LogisticRegression(C=cfg.logistic_c, max_iter=1000)),
        ]
    )
    logistic.fit(x, y, logistic__sample_weight=w)
    return _Fitted(booster, xbooster, logistic, dict(rounds))


def _inner_holdout(
    ts: npt.NDArray[np.int64], t_end: npt.NDArray[np.int64], y: FloatArray, fraction: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None:
    """The last ``fraction`` of the timestamps as an early-stopping set, purged like any hold-out.

    None when either side would be too small or one-class to stop on (the caller uses fixed rounds).
    """
    times = np.unique(ts)
    if times.size < 10:
        return None
    cut = int(times[min(times.size - 1, int(times.size * (1.0 - fraction)))])
    split = time_holdout(ts, t_end, cut)
    fit_i, val_i = split.train_idx, split.test_idx
    if fit_i.size < 50 or val_i.size < 50:
        return None
    if np.unique(y[fit_i]).size < 2 or np.unique(y[val_i]).size < 2:
        return None
    return fit_i, val_i


def recent_calibration_rows(parts: Sequence[pd.DataFrame], cfg: TrainConfig = TrainConfig()) -> pd.DataFrame:
    """The OOF rows a calibrator is fitted on: the last ``calibration_folds`` folds of ``parts`` (one
    frame per fold, in time order), widened to earlier folds until they hold ``isotonic_min_rows``
    rows or every fold is in (see the module docstring, step 5)."""
    if not parts:
        raise TrainError("no out-of-fold rows to calibrate on")
    take = max(1, min(cfg.calibration_folds, len(parts)))
    while take < len(parts) and sum(len(p) for p in parts[-take:]) < cfg.isotonic_min_rows:
        take += 1
    return pd.concat(list(parts[-take:]), ignore_index=True)


def balanced_weights(w: FloatArray, y: FloatArray) -> FloatArray:
    """Uniqueness weights rescaled within each class so each class's share of the total weight is
    its share of the rows (the total is kept): overlap is discounted within a class, but the
    weighted hit rate is the per-row hit rate (see the module docstring, step 5)."""
    w = np.asarray(w, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    total = float(w.sum())
    out = w.copy()
    if total <= 0 or w.size == 0:
        return out
    for cls in (0.0, 1.0):
        rows = y == cls
        w_cls = float(w[rows].sum())
        if w_cls > 0:
            out[rows] *= (rows.sum() / w.size) * total / w_cls
    return out


def calibration_bins(
    p: FloatArray, y: FloatArray, cfg: TrainConfig = TrainConfig()
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Quantile bins of the predictions: (mean prediction, smoothed hit rate, rows) per bin.

    Rows sorted by prediction are cut into ``min(calibration_bins, n // calibration_min_bin_rows)``
    bins of (nearly) equal size; a bin's rate is ``(hits + 0.5) / (rows + 1)``, so no bin, however
    unlucky, claims 0 or 1. With bins of a thousand rows the smoothing moves a rate by under 0.05 %.
    """
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    n_bins = max(1, min(cfg.calibration_bins, p.size // max(1, cfg.calibration_min_bin_rows)))
    groups = [g for g in np.array_split(order, n_bins) if g.size]
    x_bin = np.array([p[g].mean() for g in groups])
    count = np.array([float(g.size) for g in groups])
    rate = np.array([(y[g].sum() + 0.5) / (g.size + 1.0) for g in groups])
    return x_bin, rate, count


def fit_calibrator(p: FloatArray, y: FloatArray, cfg: TrainConfig = TrainConfig()) -> Calibrator:
    """Isotonic on ``isotonic_min_rows`` rows or more (enough to pin a monotone curve down), else Platt
    on the logit (two parameters cannot overfit a few hundred rows). Callers pass OOF rows only."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if p.size >= cfg.isotonic_min_rows:
        x_bin, rate, count = calibration_bins(p, y, cfg)
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        iso.fit(x_bin, rate, sample_weight=count)
        return IsotonicCalibrator.from_sklearn(iso)
    if np.unique(y).size < 2:
        only = float(y.mean()) if y.size else 0.5
        r = min(max(only, LOGIT_EPS), 1.0 - LOGIT_EPS)
        return PlattCalibrator(0.0, math.log(r / (1.0 - r)), on="logit")
    q = np.clip(p, LOGIT_EPS, 1.0 - LOGIT_EPS)
    logit = np.log(q / (1.0 - q)).reshape(-1, 1)
    model = LogisticRegression(C=1e4, max_iter=1000).fit(logit, y)
    return PlattCalibrator.from_sklearn(model, on="logit")


# --------------------------------------------------------------------------------------------------
# Reporting.
# --------------------------------------------------------------------------------------------------


def _headline_metrics(oof: pd.DataFrame, folds: list[dict[str, Any]], cfg: TrainConfig) -> dict[str, Any]:
    """The registry's metrics: top level = calibrated OOF metrics over folds 2…K (prior-fold
    calibration), then the raw OOF ensemble, the baselines on the same rows, and the folds."""
    honest = oof[oof["fold"] > 1]
    y = honest["label"].to_numpy()
    metrics = evaluate_predictions(y, honest["p_prior_cal"].to_numpy(), threshold=cfg.threshold)
    metrics["scope"] = (
        f"out-of-fold, folds 2-{len(folds)} of a purged expanding walk-forward; each fold calibrated "
        "by a calibrator fitted on the earlier folds' out-of-fold predictions"
    )
    metrics["oof_raw"] = evaluate_predictions(
        oof["label"].to_numpy(), oof["p_raw"].to_numpy(), threshold=cfg.threshold
    )
    # Each fold's baselines were fitted on that fold's training rows, as its model was.
    metrics["baselines"] = {
        key: evaluate_predictions(y, honest[f"p_{key}"].to_numpy(), threshold=cfg.threshold)
        for key in ("always_long", "momentum_20")
    }
    members = oof[[f"p_{m}" for m in MEMBER_NAMES]].to_numpy()
    spread = members.max(axis=1) - members.min(axis=1)
    metrics["disagreement"] = {
        "mean": float(spread.mean()),
        "p90": float(np.quantile(spread, 0.9)),
    }
    metrics["folds"] = folds
    return metrics


def fold_auc(fold: Mapping[str, Any]) -> float | None:
    """A fold's raw-ensemble AUC (the ranking, which calibration does not change)."""
    raw = fold.get("model_raw") or {}
    auc = raw.get("auc")
    return None if auc is None else float(auc)


def _iso(ns: int) -> str:
    return to_datetime(ns).isoformat()
