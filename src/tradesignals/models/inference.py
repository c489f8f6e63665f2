"""Scoring a feature vector with the calibrated ensemble: fast on the hot path, exact to the reference.

The engine scores one row (one symbol's latest feature vector) per bar, so the whole ensemble — tree
members, the logistic member, the weighted combination and the calibrator — runs in one compiled
call (`trees.ensemble_row`: ~10 µs for 300 LightGBM + 300 XGBoost trees) instead of a chain of
library calls (LightGBM ~25 µs, XGBoost ~200 µs, sklearn's wrappers ~400 µs each). The
library path is kept as `reference_predict`: tests hold the fast path to it within 1e-6, and offline
evaluation may use either.

Decisions a reader of the outputs needs to know:

* **Combination**: a weighted mean of the members' probabilities (weights normalised to sum 1), then
  the calibrator. The calibrated number is what users see as confidence.
* **Disagreement**: ``max - min`` of the member probabilities — "the members differ by 12 points" —
  rather than a standard deviation, which with three members says little more and reads worse.
* **Missing values (NaN)**: LightGBM and XGBoost route NaN natively, exactly as they were trained to.
  The logistic member cannot, so it imputes NaN with the training means stored in the artifact (the
  imputer's statistics, else the scaler's means): an imputed feature then contributes nothing after
  standardisation, which is the least-informative choice and matches what a mean imputer in the
  training pipeline did.
* **Warm-up rows**: a feature such as a 200-bar average is NaN for the first 199 bars of a symbol.
  Features named in ``required_features`` must be present; a row missing one is *not scored* —
  `score_row` returns `NotWarm` naming them, `score_batch` marks the row ``warm=False`` with NaN
  outputs — because a probability built mostly from imputed values would be shown as confidence it
  does not have. With no required features every row is scored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

from tradesignals.models.trees import (
    CAL_ISOTONIC,
    CAL_PLATT,
    LOGIT_EPS,
    FlatForest,
    ForestKind,
    UnsupportedModelError,
    ensemble_batch,
    ensemble_row,
    flatten_lightgbm,
    flatten_xgboost,
)

if TYPE_CHECKING:
    import lightgbm
    import xgboost

__all__ = [
    "BatchScores",
    "Calibrator",
    "IsotonicCalibrator",
    "LogisticMember",
    "Member",
    "NotWarm",
    "PlattCalibrator",
    "Score",
    "Scorer",
    "TreeMember",
]


# --------------------------------------------------------------------------------------------------
# Results.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Score:
    """One scored row. ``raw_members`` are the members' probabilities in `Scorer.member_names` order."""

    probability: float  # calibrated ensemble probability: the confidence users see
    raw_members: tuple[float, ...]
    disagreement: float  # max - min of raw_members
    uncalibrated: float  # weighted mean of raw_members, before the calibrator


@dataclass(frozen=True, slots=True)
class NotWarm:
    """A row that was not scored because required features are still NaN (warm-up)."""

    missing: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class BatchScores:
    """Scores of a micro-batch; rows with ``warm == False`` hold NaN everywhere else."""

    probability: NDArray[np.float64]  # (n,)
    members: NDArray[np.float64]  # (n, n_members)
    disagreement: NDArray[np.float64]  # (n,)
    uncalibrated: NDArray[np.float64]  # (n,)
    warm: NDArray[np.bool_]  # (n,)

    def __len__(self) -> int:
        return int(self.probability.shape[0])


# --------------------------------------------------------------------------------------------------
# Members.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TreeMember:
    """A LightGBM or XGBoost booster with its flattened twin; the booster is the reference and what
    the registry saves, the flattened forest is what the hot path walks."""

    name: str
    forest: FlatForest
    booster: lightgbm.Booster | xgboost.Booster = field(repr=False)

    @classmethod
    def from_lightgbm(cls, booster: lightgbm.Booster, name: str = "lightgbm") -> TreeMember:
        return cls(name, flatten_lightgbm(booster), booster)

    @classmethod
    def from_xgboost(cls, booster: xgboost.Booster, name: str = "xgboost") -> TreeMember:
        return cls(name, flatten_xgboost(booster), booster)

    @property
    def kind(self) -> Literal["lightgbm", "xgboost"]:
        return "lightgbm" if self.forest.kind is ForestKind.LIGHTGBM else "xgboost"

    @property
    def n_features(self) -> int:
        return self.forest.n_features

    def reference_predict(self, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
        """The library's own prediction (probability for binary objectives)."""
        if self.forest.kind is ForestKind.LIGHTGBM:
            out = self.booster.predict(matrix, num_threads=1)
        else:
            out = self.booster.inplace_predict(matrix)  # type: ignore[union-attr]
        return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class LogisticMember:
    """A (regularised) logistic regression on standardised features, with NaN imputation values.

    Stored unfolded (coef on standardised features, scaler mean/scale) so the artifact reads like the
    sklearn model it came from; `folded` gives the hot path's single dot product.
    """

    name: str
    coef: NDArray[np.float64]
    intercept: float
    mean: NDArray[np.float64]
    scale: NDArray[np.float64]
    fill: NDArray[np.float64]  # value used for a NaN feature (training means), before scaling
    source: Any = field(default=None, repr=False)  # the fitted sklearn estimator, for the reference

    def __post_init__(self) -> None:
        n = self.coef.shape[0]
        for label, arr in (("mean", self.mean), ("scale", self.scale), ("fill", self.fill)):
            if arr.shape != (n,):
                raise ValueError(
                    f"logistic member {self.name!r}: {label} has shape {arr.shape}, expected ({n},)"
                )
        if not (np.all(np.isfinite(self.fill)) and np.all(np.isfinite(self.coef))):
            raise ValueError(f"logistic member {self.name!r}: coef and fill values must be finite")
        if np.any(self.scale == 0):
            raise ValueError(
                f"logistic member {self.name!r}: a scale of 0 (sklearn uses 1 for constant features)"
            )

    @property
    def n_features(self) -> int:
        return int(self.coef.shape[0])

    @classmethod
    def from_sklearn(
        cls,
        model: Any,
        *,
        scaler: Any = None,
        fill: Sequence[float] | NDArray[np.float64] | None = None,
        name: str = "logistic",
    ) -> LogisticMember:
        """From a fitted ``LogisticRegression`` or a ``Pipeline`` of [SimpleImputer], [StandardScaler],
        LogisticRegression. NaN fill values: ``fill`` if given, else the imputer's statistics, else the
        scaler's means (training means either way); with none of them, pass ``fill``."""
        imputer = None
        estimator = model
        if hasattr(model, "steps"):
            *pre, (_, estimator) = model.steps
            for step_name, step in pre:
                kind = type(step).__name__
                if kind == "SimpleImputer":
                    imputer = step
                elif kind == "StandardScaler":
                    scaler = step
                elif step is not None and step != "passthrough":
                    raise UnsupportedModelError(
                        f"logistic pipeline step {step_name!r} ({kind}) is not supported"
                    )
        if type(estimator).__name__ != "LogisticRegression":
            raise UnsupportedModelError(f"expected a LogisticRegression, got {type(estimator).__name__}")
        coef = np.asarray(estimator.coef_, dtype=np.float64)
        if coef.shape[0] != 1 or len(estimator.classes_) != 2:
            raise UnsupportedModelError("logistic member: only binary LogisticRegression is supported")
        n = coef.shape[1]
        mean = np.zeros(n)
        scale = np.ones(n)
        if scaler is not None:
            if getattr(scaler, "mean_", None) is not None:
                mean = np.asarray(scaler.mean_, dtype=np.float64)
            if getattr(scaler, "scale_", None) is not None:
                scale = np.asarray(scaler.scale_, dtype=np.float64)
        if fill is not None:
            fill_arr = np.asarray(fill, dtype=np.float64)
        elif imputer is not None:
            fill_arr = np.asarray(imputer.statistics_, dtype=np.float64)
        elif scaler is not None and getattr(scaler, "mean_", None) is not None:
            fill_arr = mean.copy()
        else:
            raise ValueError("logistic member: pass fill= (training means) — there is no imputer or scaler")
        source = model if scaler is None or hasattr(model, "steps") else (scaler, estimator)
        return cls(name, coef[0].copy(), float(estimator.intercept_[0]), mean, scale, fill_arr, source)

    def folded(self) -> tuple[NDArray[np.float64], float]:
        """Weights and bias on raw features: w·((x - m)/s) + b = (w/s)·x + (b - Σ w·m/s)."""
        w = self.coef / self.scale
        return w, float(self.intercept - np.dot(w, self.mean))

    def impute(self, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.where(np.isnan(matrix), self.fill, matrix)

    def reference_predict(self, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
        """sklearn's ``predict_proba`` when the fitted estimator is at hand, else its formula."""
        x = self.impute(np.asarray(matrix, dtype=np.float64))
        if isinstance(self.source, tuple):
            scaler, estimator = self.source
            return np.asarray(estimator.predict_proba(scaler.transform(x))[:, 1], dtype=np.float64)
        if self.source is not None:
            return np.asarray(self.source.predict_proba(x)[:, 1], dtype=np.float64)
        z = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        return _expit(z)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "logistic",
            "name": self.name,
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "fill": self.fill.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LogisticMember:
        return cls(
            name=str(d["name"]),
            coef=np.asarray(d["coef"], dtype=np.float64),
            intercept=float(d["intercept"]),
            mean=np.asarray(d["mean"], dtype=np.float64),
            scale=np.asarray(d["scale"], dtype=np.float64),
            fill=np.asarray(d["fill"], dtype=np.float64),
        )


Member = TreeMember | LogisticMember


# --------------------------------------------------------------------------------------------------
# Calibrators.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class IsotonicCalibrator:
    """sklearn's ``IsotonicRegression.predict``: clip to the training range (or NaN outside it), then
    linear interpolation between the fitted thresholds, computed as scipy's ``interp1d`` does."""

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    x_min: float
    x_max: float
    out_of_bounds: Literal["clip", "nan"] = "clip"
    source: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.x.ndim != 1 or self.x.shape != self.y.shape or self.x.shape[0] == 0:
            raise ValueError("isotonic calibrator: x and y must be equal-length, non-empty 1-d arrays")
        if self.x.shape[0] > 1 and not np.all(np.diff(self.x) > 0):
            raise ValueError("isotonic calibrator: thresholds must be strictly increasing")
        if self.out_of_bounds not in ("clip", "nan"):
            raise UnsupportedModelError(
                f"isotonic out_of_bounds={self.out_of_bounds!r}: use 'clip' (or 'nan') — "
                "raising on the hot path would drop a signal"
            )

    @classmethod
    def from_sklearn(cls, iso: Any) -> IsotonicCalibrator:
        return cls(
            x=np.asarray(iso.X_thresholds_, dtype=np.float64).copy(),
            y=np.asarray(iso.y_thresholds_, dtype=np.float64).copy(),
            x_min=float(iso.X_min_),
            x_max=float(iso.X_max_),
            out_of_bounds=iso.out_of_bounds,
            source=iso,
        )

    def predict(self, p: NDArray[np.float64]) -> NDArray[np.float64]:
        """Vectorised, same arithmetic as the compiled path (used when sklearn's object is absent)."""
        t = np.asarray(p, dtype=np.float64).reshape(-1)
        if self.out_of_bounds == "clip":
            t = np.clip(t, self.x_min, self.x_max)
        n = self.x.shape[0]
        if n == 1:
            return np.full(t.shape, self.y[0])
        hi = np.clip(np.searchsorted(self.x, t, side="left"), 1, n - 1)
        lo = hi - 1
        slope = (self.y[hi] - self.y[lo]) / (self.x[hi] - self.x[lo])
        out = slope * (t - self.x[lo]) + self.y[lo]
        if self.out_of_bounds == "nan":
            out[(t < self.x[0]) | (t > self.x[-1])] = np.nan
        return np.asarray(out, dtype=np.float64)

    def reference_predict(self, p: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.source is not None:
            return np.asarray(self.source.predict(p), dtype=np.float64)
        return self.predict(p)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "isotonic",
            "x": self.x.tolist(),
            "y": self.y.tolist(),
            "x_min": self.x_min,
            "x_max": self.x_max,
            "out_of_bounds": self.out_of_bounds,
        }


@dataclass(frozen=True, eq=False)
class PlattCalibrator:
    """Platt scaling: ``sigmoid(a·v + b)`` with ``v`` the ensemble probability or its logit."""

    a: float
    b: float
    on: Literal["probability", "logit"] = "probability"
    source: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.on not in ("probability", "logit"):
            raise ValueError(f"Platt calibrator: on={self.on!r} (probability or logit)")

    @classmethod
    def from_sklearn(cls, model: Any, on: Literal["probability", "logit"] = "probability") -> PlattCalibrator:
        """From a 1-feature ``LogisticRegression`` or sklearn's sigmoid calibrator (``a_``, ``b_``,
        which predicts ``expit(-(a_·v + b_))``)."""
        if hasattr(model, "a_") and hasattr(model, "b_"):
            return cls(-float(model.a_), -float(model.b_), on, model)
        coef = np.asarray(model.coef_, dtype=np.float64)
        if coef.shape != (1, 1):
            raise UnsupportedModelError("Platt calibrator: expected a LogisticRegression on one feature")
        return cls(float(coef[0, 0]), float(model.intercept_[0]), on, model)

    def _input(self, p: NDArray[np.float64]) -> NDArray[np.float64]:
        p = np.asarray(p, dtype=np.float64).reshape(-1)
        if self.on == "logit":
            q = np.clip(p, LOGIT_EPS, 1.0 - LOGIT_EPS)
            return np.asarray(np.log(q / (1.0 - q)), dtype=np.float64)
        return p

    def predict(self, p: NDArray[np.float64]) -> NDArray[np.float64]:
        return _expit(self.a * self._input(p) + self.b)

    def reference_predict(self, p: NDArray[np.float64]) -> NDArray[np.float64]:
        v = self._input(p)
        if self.source is None:
            return self.predict(p)
        if hasattr(self.source, "a_"):
            return np.asarray(self.source.predict(v), dtype=np.float64)
        return np.asarray(self.source.predict_proba(v.reshape(-1, 1))[:, 1], dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "platt", "a": self.a, "b": self.b, "on": self.on}


Calibrator = IsotonicCalibrator | PlattCalibrator


def calibrator_from_dict(d: Mapping[str, Any] | None) -> Calibrator | None:
    if d is None:
        return None
    if d["kind"] == "isotonic":
        return IsotonicCalibrator(
            x=np.asarray(d["x"], dtype=np.float64),
            y=np.asarray(d["y"], dtype=np.float64),
            x_min=float(d["x_min"]),
            x_max=float(d["x_max"]),
            out_of_bounds=d["out_of_bounds"],
        )
    if d["kind"] == "platt":
        return PlattCalibrator(a=float(d["a"]), b=float(d["b"]), on=d["on"])
    raise ValueError(f"unknown calibrator kind {d['kind']!r}")


def _expit(z: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


class _Packed(NamedTuple):
    """The kernels' arguments after the row: all forests concatenated, then the rest (see _pack)."""

    nodes_i: NDArray[np.int32]
    threshold: NDArray[np.float64]
    value: NDArray[np.float64]
    roots: NDArray[np.int32]
    depth: NDArray[np.int32]
    order: NDArray[np.int32]
    forest_i: NDArray[np.int32]  # (first tree, end tree, ForestKind, Link, member slot) per forest
    forest_f: NDArray[np.float64]  # (base margin, divisor, sigmoid scale) per forest
    lin_w: NDArray[np.float64]  # folded weights per logistic member
    lin_b: NDArray[np.float64]
    lin_fill: NDArray[np.float64]
    lin_slot: NDArray[np.int32]
    weights: NDArray[np.float64]
    required: NDArray[np.int32]
    cal_p: NDArray[np.float64]  # (kind, isotonic clips?, x_min, x_max, platt a, platt b, on logit?)
    cal_x: NDArray[np.float64]
    cal_y: NDArray[np.float64]


# --------------------------------------------------------------------------------------------------
# Scorer.
# --------------------------------------------------------------------------------------------------


class Scorer:
    """The calibrated ensemble, ready to score: members packed into arrays, kernels compiled.

    Build it from fitted members (training) or let the registry build it from an artifact.
    Construction warms the compiled kernels (from numba's on-disk cache when present), so the first
    live bar costs what every other bar costs.
    """

    def __init__(
        self,
        members: Sequence[Member],
        *,
        feature_names: Sequence[str],
        weights: Sequence[float] | None = None,
        calibrator: Calibrator | None = None,
        required_features: Sequence[str] = (),
        warm: bool = True,
    ) -> None:
        if not members:
            raise ValueError("a scorer needs at least one member")
        self.members: tuple[Member, ...] = tuple(members)
        self.feature_names: tuple[str, ...] = tuple(feature_names)
        self.calibrator = calibrator
        self.required_features: tuple[str, ...] = tuple(required_features)
        names = [m.name for m in self.members]
        if len(set(names)) != len(names):
            raise ValueError(f"member names must be unique: {names}")
        self.member_names: tuple[str, ...] = tuple(names)
        n = len(self.feature_names)
        if len(set(self.feature_names)) != n:
            raise ValueError("feature names must be unique")
        for m in self.members:
            _check_member_features(m, self.feature_names)
        w = np.ones(len(self.members)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(self.members),) or np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
            raise ValueError(f"weights must be {len(self.members)} non-negative numbers with a positive sum")
        self.weights: tuple[float, ...] = tuple(float(x) for x in w / w.sum())
        index = {name: i for i, name in enumerate(self.feature_names)}
        unknown = [f for f in self.required_features if f not in index]
        if unknown:
            raise ValueError(f"required features not among the feature names: {unknown}")
        self._required = np.asarray([index[f] for f in self.required_features], dtype=np.int32)
        self._packed = self._pack()
        if warm:
            self.warm()

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def _pack(self) -> _Packed:
        """Concatenate all forests into one node array set (children and roots offset) and lay out
        the linear members, weights and calibrator as the kernel's flat arguments."""
        nodes_i: list[NDArray[np.int32]] = []
        threshold: list[NDArray[np.float64]] = []
        value: list[NDArray[np.float64]] = []
        roots: list[NDArray[np.int32]] = []
        depth: list[NDArray[np.int32]] = []
        order: list[NDArray[np.int32]] = []
        forest_i: list[list[int]] = []
        forest_f: list[list[float]] = []
        lin_w: list[NDArray[np.float64]] = []
        lin_b: list[float] = []
        lin_fill: list[NDArray[np.float64]] = []
        lin_slot: list[int] = []
        node_off = tree_off = 0
        for slot, m in enumerate(self.members):
            if isinstance(m, TreeMember):
                fo = m.forest
                ni = fo.nodes_i.copy()
                ni[:, 1] += node_off  # children (and leaves' self-loops) are absolute node indices
                nodes_i.append(ni)
                threshold.append(fo.threshold)
                value.append(fo.value)
                roots.append(fo.roots + np.int32(node_off))
                depth.append(fo.depth)
                order.append(fo.order + np.int32(tree_off))
                forest_i.append([tree_off, tree_off + fo.n_trees, int(fo.kind), int(fo.link), slot])
                forest_f.append([fo.base, fo.divisor, fo.sigmoid_scale])
                node_off += fo.n_nodes
                tree_off += fo.n_trees
            else:
                w, b = m.folded()
                lin_w.append(w)
                lin_b.append(b)
                lin_fill.append(m.fill)
                lin_slot.append(slot)
        n = self.n_features
        cal = self.calibrator
        cal_p = np.zeros(7)
        cal_x = np.zeros(1)
        cal_y = np.zeros(1)
        if isinstance(cal, IsotonicCalibrator):
            cal_p[:4] = [CAL_ISOTONIC, 1.0 if cal.out_of_bounds == "clip" else 0.0, cal.x_min, cal.x_max]
            cal_x, cal_y = cal.x, cal.y
        elif isinstance(cal, PlattCalibrator):
            cal_p[0] = CAL_PLATT
            cal_p[4:] = [cal.a, cal.b, 1.0 if cal.on == "logit" else 0.0]
        return _Packed(
            _cat_i(nodes_i, (0, 2)),
            _cat_f(threshold),
            _cat_f(value),
            _cat_i(roots, (0,)),
            _cat_i(depth, (0,)),
            _cat_i(order, (0,)),
            np.ascontiguousarray(np.asarray(forest_i, dtype=np.int32).reshape(-1, 5)),
            np.ascontiguousarray(np.asarray(forest_f, dtype=np.float64).reshape(-1, 3)),
            np.ascontiguousarray(np.asarray(lin_w, dtype=np.float64).reshape(-1, n)),
            np.asarray(lin_b, dtype=np.float64),
            np.ascontiguousarray(np.asarray(lin_fill, dtype=np.float64).reshape(-1, n)),
            np.asarray(lin_slot, dtype=np.int32),
            np.asarray(self.weights, dtype=np.float64),
            self._required,
            cal_p,
            np.ascontiguousarray(cal_x, dtype=np.float64),
            np.ascontiguousarray(cal_y, dtype=np.float64),
        )

    def warm(self) -> None:
        """Compile (or load from cache) the row and batch kernels for the exact argument types used."""
        row = np.zeros(self.n_features)
        self.score_row(row)
        self.score_batch(row.reshape(1, -1))

    def score_row(self, vector: NDArray[np.float64]) -> Score | NotWarm:
        """Score one feature vector (in `feature_names` order); the engine's per-bar call."""
        row = _kernel_input(vector)
        if row.shape != (self.n_features,):
            raise ValueError(f"expected a row of {self.n_features} features, got shape {row.shape}")
        members = np.empty(len(self.members))
        prob, dis, unc = ensemble_row(row, *self._packed, members)
        if math.isnan(unc):
            missing = self._missing(row)
            if missing:
                return NotWarm(missing)
        return Score(float(prob), tuple(members.tolist()), float(dis), float(unc))

    def score_batch(self, matrix: NDArray[np.float64]) -> BatchScores:
        """Score a micro-batch (rows in `feature_names` column order)."""
        m = _kernel_input(matrix)
        if m.ndim != 2 or m.shape[1] != self.n_features:
            raise ValueError(f"expected a matrix of shape (n, {self.n_features}), got {m.shape}")
        n = m.shape[0]
        members = np.empty((n, len(self.members)))
        prob, dis, unc = np.empty(n), np.empty(n), np.empty(n)
        ensemble_batch(m, *self._packed, members, prob, dis, unc)
        return BatchScores(prob, members, dis, unc, self._warm_mask(m))

    def reference_predict(self, matrix: NDArray[np.float64]) -> BatchScores:
        """The same scores through the libraries (LightGBM/XGBoost predict, sklearn's logistic and
        calibrator when their fitted objects are at hand, else the same formulas in numpy).

        Slow; for tests and offline evaluation, never the hot path.
        """
        m = np.asarray(matrix, dtype=np.float64)
        if m.ndim != 2 or m.shape[1] != self.n_features:
            raise ValueError(f"expected a matrix of shape (n, {self.n_features}), got {m.shape}")
        warm = self._warm_mask(m)
        members = np.column_stack([mem.reference_predict(m) for mem in self.members])
        unc = np.zeros(m.shape[0])
        for k, w in enumerate(self.weights):
            unc += w * members[:, k]
        prob = unc if self.calibrator is None else self.calibrator.reference_predict(unc)
        dis = members.max(axis=1) - members.min(axis=1)
        members[~warm] = np.nan
        for arr in (prob, dis, unc):
            arr[~warm] = np.nan
        return BatchScores(prob, members, dis, unc, warm)

    def _warm_mask(self, m: NDArray[np.float64]) -> NDArray[np.bool_]:
        if self._required.size == 0:
            return np.ones(m.shape[0], dtype=bool)
        return np.asarray(~np.isnan(m[:, self._required]).any(axis=1), dtype=np.bool_)

    def _missing(self, row: NDArray[np.float64]) -> tuple[str, ...]:
        return tuple(self.feature_names[i] for i in self._required if math.isnan(row[i]))


def _kernel_input(a: NDArray[np.float64]) -> NDArray[np.float64]:
    """C-contiguous, writable float64: the exact array type `Scorer.warm` compiled for. Another type
    (a read-only view, a column slice) would make numba compile a new specialisation mid-stream."""
    out = np.ascontiguousarray(a, dtype=np.float64)
    return out if out.flags.writeable else out.copy()


def _check_member_features(member: Member, feature_names: tuple[str, ...]) -> None:
    """Refuse a member trained on other columns: a silent column mismatch scores garbage."""
    if member.n_features != len(feature_names):
        raise ValueError(
            f"member {member.name!r} expects {member.n_features} features, the scorer has {len(feature_names)}"
        )
    if isinstance(member, TreeMember):
        names = member.forest.feature_names
        generic = all(n == f"Column_{i}" or n == f"f{i}" for i, n in enumerate(names))
        if names and not generic and names != feature_names:
            diff = next(i for i, (a, b) in enumerate(zip(names, feature_names, strict=True)) if a != b)
            raise ValueError(
                f"member {member.name!r} was trained on other columns: feature {diff} is "
                f"{names[diff]!r}, the scorer's is {feature_names[diff]!r}"
            )


def _cat_i(parts: list[NDArray[np.int32]], empty: tuple[int, ...]) -> NDArray[np.int32]:
    if not parts:
        return np.zeros(empty, dtype=np.int32)
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.int32)


def _cat_f(parts: list[NDArray[np.float64]]) -> NDArray[np.float64]:
    if not parts:
        return np.zeros(0, dtype=np.float64)
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float64)
