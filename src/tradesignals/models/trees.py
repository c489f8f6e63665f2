"""Gradient-boosted trees flattened into arrays and walked by numba-compiled code; and the compiled
ensemble kernel that inference.Scorer calls (kept in this file for numba's cache, see below).

Why not the libraries' own predict on the hot path: one row through ``lightgbm.Booster.predict``
costs ~20 µs, mostly Python/ctypes overhead, and XGBoost's ``inplace_predict`` ~170 µs; the trees
themselves are a few thousand comparisons. Walking them in compiled code, several trees at a time,
makes one row of a 300-tree model a few microseconds on one core.

Exactness is the contract: a flattened forest gives what the library gives (tests hold it to 1e-6;
in practice it is bit for bit). That rests on reproducing each library's split rules, which differ:

* LightGBM goes left when ``x <= threshold`` (doubles). Its dense-row reader first turns
  ``|x| <= 1e-35f`` into 0.0. Each node's ``missing_type`` then decides: ``NaN`` sends NaN down
  ``default_left``; ``Zero`` turns NaN into 0.0 and sends zero down ``default_left``; ``None`` turns
  NaN into 0.0 and compares it.
* XGBoost goes left when ``float32(x) < split_condition`` (float32: a float64 value just below a
  threshold can round onto it and go right), NaN follows ``default_left``, and the margin is summed
  in float32 from the base score (in margin space), then put through a float32 sigmoid.

How the walk is made fast without losing those rules:

* **Missing values are resolved once per row, not per node.** Each row is expanded into a few
  *variants* of itself (LightGBM 5, XGBoost 2): NaN (and, for LightGBM's ``Zero`` nodes, zero)
  replaced by -inf where the node's default is left, +inf where it is right, 0.0 where LightGBM
  compares it as zero. Each node reads the variant its missing rule calls for (``slot = variant *
  n_features + feature``), so every node is one comparison: go right iff ``x > threshold``. Finite
  and infinite inputs compare as the library compares them; only NaN/zero are mapped.
* **XGBoost's ``<`` becomes ``<=``** by storing the float32 just below each threshold (the row is
  rounded to float32 first, so ``x < t`` iff ``x <= nextafter(t, -inf)`` exactly).
* **Children are adjacent** (right = left + 1), so a step is ``node = left[node] + (x > thr)``: no
  branch to mispredict. **Leaves loop to themselves** (threshold +inf), so a tree can be stepped a
  fixed number of times (its depth) and several trees are walked in lockstep — eight independent
  chains of loads keep the CPU busy where one chain would leave it waiting on memory. Trees are
  grouped by depth so lockstep wastes few steps, and leaf values are summed in the library's tree
  order, so the result is the same floating-point sum.

Categorical splits, linear trees, multiclass and DART are refused with a clear error rather than
approximated: we do not use them, and a silent approximation would break the exactness contract.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numba import njit
from numpy.typing import NDArray

if TYPE_CHECKING:
    import lightgbm
    import xgboost

__all__ = [
    "FlatForest",
    "ForestKind",
    "Link",
    "UnsupportedModelError",
    "ensemble_batch",
    "ensemble_row",
    "flatten_lightgbm",
    "flatten_lightgbm_dump",
    "flatten_xgboost",
    "flatten_xgboost_json",
]


class UnsupportedModelError(ValueError):
    """The model uses a feature the flattened walker does not reproduce exactly."""


class ForestKind(IntEnum):
    """Which library's split rules (and row variants, and summation) a forest follows."""

    LIGHTGBM = 0
    XGBOOST = 1


class Link(IntEnum):
    """How the raw margin becomes the model output."""

    IDENTITY = 0
    SIGMOID = 1


# Row variants, per kind. LightGBM: (missing_type, default_left) -> variant.
_LGB_NAN_LEFT, _LGB_NAN_RIGHT, _LGB_NONE, _LGB_ZERO_LEFT, _LGB_ZERO_RIGHT = range(5)
_XGB_NAN_LEFT, _XGB_NAN_RIGHT = range(2)
N_VARIANTS = {ForestKind.LIGHTGBM: 5, ForestKind.XGBOOST: 2}
MAX_VARIANTS = 5

# LightGBM's kZeroThreshold is the float 1e-35f, compared against doubles.
_LGB_ZERO = float(np.float32(1e-35))


# --------------------------------------------------------------------------------------------------
# Compiled kernels. They take a forest as plain arrays (not an object) so that numba can cache them
# on disk and so that inference.py can pack several forests into one set of arrays: trees lo..hi of
# the concatenated arrays are one forest.
# --------------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def prepare_row(row: NDArray[np.float64], kind: int, out: NDArray[np.float64]) -> None:
    """Write the row's variants (see module docstring) into ``out[: n_variants * n_features]``."""
    n = row.shape[0]
    if kind == 0:
        for f in range(n):
            x = row[f]
            if np.isnan(x):
                out[f] = -np.inf
                out[n + f] = np.inf
                out[2 * n + f] = 0.0
                out[3 * n + f] = -np.inf
                out[4 * n + f] = np.inf
            elif abs(x) <= _LGB_ZERO:
                out[f] = 0.0
                out[n + f] = 0.0
                out[2 * n + f] = 0.0
                out[3 * n + f] = -np.inf
                out[4 * n + f] = np.inf
            else:
                out[f] = x
                out[n + f] = x
                out[2 * n + f] = x
                out[3 * n + f] = x
                out[4 * n + f] = x
    else:
        for f in range(n):
            x = row[f]
            if np.isnan(x):
                out[f] = -np.inf
                out[n + f] = np.inf
            else:
                v = np.float64(np.float32(x))
                out[f] = v
                out[n + f] = v


@njit(cache=True, nogil=True)
def walk_trees(
    prepared: NDArray[np.float64],
    nodes_i: NDArray[np.int32],
    threshold: NDArray[np.float64],
    value: NDArray[np.float64],
    roots: NDArray[np.int32],
    depth: NDArray[np.int32],
    order: NDArray[np.int32],
    lo: int,
    hi: int,
    leaf: NDArray[np.float64],
) -> None:
    """Leaf value of each tree ``lo..hi`` into ``leaf[tree]``, eight trees in lockstep.

    ``order[lo:hi]`` lists the trees by increasing depth, so the last of each group of eight is the
    deepest and its depth is the group's step count; shallower trees sit on their self-looping leaf.
    """
    i = lo
    while i + 8 <= hi:
        t0, t1, t2, t3 = order[i], order[i + 1], order[i + 2], order[i + 3]
        t4, t5, t6, t7 = order[i + 4], order[i + 5], order[i + 6], order[i + 7]
        n0, n1, n2, n3 = roots[t0], roots[t1], roots[t2], roots[t3]
        n4, n5, n6, n7 = roots[t4], roots[t5], roots[t6], roots[t7]
        for _ in range(depth[t7]):
            n0 = nodes_i[n0, 1] + (prepared[nodes_i[n0, 0]] > threshold[n0])
            n1 = nodes_i[n1, 1] + (prepared[nodes_i[n1, 0]] > threshold[n1])
            n2 = nodes_i[n2, 1] + (prepared[nodes_i[n2, 0]] > threshold[n2])
            n3 = nodes_i[n3, 1] + (prepared[nodes_i[n3, 0]] > threshold[n3])
            n4 = nodes_i[n4, 1] + (prepared[nodes_i[n4, 0]] > threshold[n4])
            n5 = nodes_i[n5, 1] + (prepared[nodes_i[n5, 0]] > threshold[n5])
            n6 = nodes_i[n6, 1] + (prepared[nodes_i[n6, 0]] > threshold[n6])
            n7 = nodes_i[n7, 1] + (prepared[nodes_i[n7, 0]] > threshold[n7])
        leaf[t0], leaf[t1], leaf[t2], leaf[t3] = value[n0], value[n1], value[n2], value[n3]
        leaf[t4], leaf[t5], leaf[t6], leaf[t7] = value[n4], value[n5], value[n6], value[n7]
        i += 8
    while i < hi:
        t = order[i]
        n = roots[t]
        for _ in range(depth[t]):
            n = nodes_i[n, 1] + (prepared[nodes_i[n, 0]] > threshold[n])
        leaf[t] = value[n]
        i += 1


@njit(cache=True, nogil=True)
def sum_leaves(leaf: NDArray[np.float64], lo: int, hi: int, kind: int, base: float, divisor: float) -> float:
    """The library's sum, in its order and precision: doubles for LightGBM, float32 for XGBoost."""
    if kind == 0:
        total = 0.0
        for t in range(lo, hi):
            total += leaf[t]
        return total / divisor + base
    acc = np.float32(base)
    for t in range(lo, hi):
        acc = np.float32(acc + np.float32(leaf[t]))
    return np.float64(acc)


@njit(cache=True, nogil=True)
def _xgb_sigmoid(raw: float) -> float:
    """XGBoost's float32 sigmoid, operation for operation, so probabilities match it bit for bit."""
    neg = min(-np.float32(raw), np.float32(88.7))
    denom = np.float32(np.float32(math.exp(neg)) + np.float32(1.0)) + np.float32(1e-16)
    return np.float64(np.float32(np.float32(1.0) / np.float32(denom)))


@njit(cache=True, nogil=True)
def apply_link(raw: float, link: int, scale: float, kind: int) -> float:
    """Margin to output: LightGBM's double sigmoid (with its ``sigmoid`` scale) or XGBoost's float32 one."""
    if link == 1:
        if kind == 1:
            return _xgb_sigmoid(raw)
        return 1.0 / (1.0 + math.exp(-scale * raw))
    return raw


@njit(cache=True, nogil=True)
def _forest_batch(
    matrix: NDArray[np.float64],
    nodes_i: NDArray[np.int32],
    threshold: NDArray[np.float64],
    value: NDArray[np.float64],
    roots: NDArray[np.int32],
    depth: NDArray[np.int32],
    order: NDArray[np.int32],
    kind: int,
    base: float,
    divisor: float,
    link: int,
    scale: float,
    out: NDArray[np.float64],
) -> None:
    n_trees = roots.shape[0]
    prepared = np.empty(MAX_VARIANTS * matrix.shape[1])
    leaf = np.empty(n_trees)
    for i in range(matrix.shape[0]):
        prepare_row(matrix[i], kind, prepared)
        walk_trees(prepared, nodes_i, threshold, value, roots, depth, order, 0, n_trees, leaf)
        out[i] = apply_link(sum_leaves(leaf, 0, n_trees, kind, base, divisor), link, scale, kind)


# --------------------------------------------------------------------------------------------------
# The flattened forest.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FlatForest:
    """One model's trees as arrays, laid out for `walk_trees`.

    Node ``i``: ``nodes_i[i] = (slot, left)`` with ``slot = variant * n_features + feature`` and the
    right child at ``left + 1``; go right iff ``prepared[slot] > threshold[i]``. A leaf is
    ``(0, i)`` with threshold +inf (it loops to itself) and its output in ``value[i]``. Indices are
    absolute, so forests can be concatenated by offsetting ``left`` and ``roots``.
    """

    kind: ForestKind
    nodes_i: NDArray[np.int32]  # (n_nodes, 2)
    threshold: NDArray[np.float64]  # (n_nodes,)
    value: NDArray[np.float64]  # (n_nodes,), leaf outputs (0 on internal nodes)
    roots: NDArray[np.int32]  # (n_trees,), in the library's tree order
    depth: NDArray[np.int32]  # (n_trees,), steps from root to the deepest leaf
    order: NDArray[np.int32]  # (n_trees,), trees by increasing depth: the lockstep walk order
    n_features: int
    feature_names: tuple[str, ...]
    base: float  # added to the tree sum, in margin space (XGBoost's base score; 0 for LightGBM)
    divisor: float  # LightGBM average_output (random-forest mode) divides by the tree count
    link: Link
    sigmoid_scale: float

    def __post_init__(self) -> None:
        for arr in (self.nodes_i, self.threshold, self.value, self.roots, self.depth, self.order):
            arr.setflags(write=False)

    @property
    def n_trees(self) -> int:
        return int(self.roots.shape[0])

    @property
    def n_nodes(self) -> int:
        return int(self.threshold.shape[0])

    def raw_row(self, row: NDArray[np.float64]) -> float:
        """Raw margin for one row (what ``raw_score=True`` / ``predict_type="margin"`` return)."""
        return float(self._batch(_as_row(row, self.n_features).reshape(1, -1), Link.IDENTITY)[0])

    def predict_row(self, row: NDArray[np.float64]) -> float:
        """Model output for one row: the probability for binary objectives."""
        return float(self._batch(_as_row(row, self.n_features).reshape(1, -1), self.link)[0])

    def raw_batch(self, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
        return self._batch(matrix, Link.IDENTITY)

    def predict_batch(self, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
        return self._batch(matrix, self.link)

    def _batch(self, matrix: NDArray[np.float64], link: Link) -> NDArray[np.float64]:
        m = _as_matrix(matrix, self.n_features)
        out = np.empty(m.shape[0], dtype=np.float64)
        _forest_batch(
            m,
            self.nodes_i,
            self.threshold,
            self.value,
            self.roots,
            self.depth,
            self.order,
            int(self.kind),
            self.base,
            self.divisor,
            int(link),
            self.sigmoid_scale,
            out,
        )
        return out

    def warm(self) -> None:
        """Compile (or load from numba's on-disk cache) the kernels now, not on the first live bar."""
        self.predict_batch(np.zeros((1, self.n_features)))


def _as_row(row: NDArray[np.float64], n_features: int) -> NDArray[np.float64]:
    r = np.ascontiguousarray(row, dtype=np.float64)
    if r.ndim != 1 or r.shape[0] != n_features:
        raise ValueError(f"expected a row of {n_features} features, got shape {r.shape}")
    return r


def _as_matrix(matrix: NDArray[np.float64], n_features: int) -> NDArray[np.float64]:
    m = np.ascontiguousarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != n_features:
        raise ValueError(f"expected a matrix of shape (n, {n_features}), got {m.shape}")
    return m


class _Node(NamedTuple):
    """A node as the library describes it, before layout; ``feature == -1`` marks a leaf."""

    feature: int
    threshold: float  # already in "go right iff x > threshold" form
    variant: int
    left: int
    right: int
    value: float


def _layout(
    trees: list[tuple[list[_Node], int]],
    kind: ForestKind,
    n_features: int,
    **meta: Any,
) -> FlatForest:
    """Lay the trees out breadth-first with adjacent children and self-looping leaves."""
    slot: list[int] = []
    left: list[int] = []
    thr: list[float] = []
    val: list[float] = []
    roots: list[int] = []
    depths: list[int] = []
    for nodes, root in trees:
        start = len(thr)
        roots.append(start)
        slot.append(0)
        left.append(start)
        thr.append(math.inf)
        val.append(0.0)
        deepest = 0
        queue: deque[tuple[int, int, int]] = deque([(root, start, 0)])
        while queue:
            src, dst, d = queue.popleft()
            deepest = max(deepest, d)
            node = nodes[src]
            if node.feature < 0:
                slot[dst], left[dst], thr[dst], val[dst] = 0, dst, math.inf, node.value
                continue
            if not 0 <= node.feature < n_features:
                raise UnsupportedModelError(f"split on feature {node.feature}, model has {n_features}")
            child = len(thr)
            slot.extend((0, 0))
            left.extend((child, child + 1))
            thr.extend((math.inf, math.inf))
            val.extend((0.0, 0.0))
            slot[dst] = node.variant * n_features + node.feature
            left[dst] = child
            thr[dst] = node.threshold
            queue.append((node.left, child, d + 1))
            queue.append((node.right, child + 1, d + 1))
        depths.append(deepest)
    if not roots:
        raise UnsupportedModelError("model has no trees")
    depth = np.asarray(depths, dtype=np.int32)
    return FlatForest(
        kind=kind,
        nodes_i=np.ascontiguousarray(np.column_stack([slot, left]).astype(np.int32)),
        threshold=np.asarray(thr, dtype=np.float64),
        value=np.asarray(val, dtype=np.float64),
        roots=np.asarray(roots, dtype=np.int32),
        depth=depth,
        order=np.argsort(depth, kind="stable").astype(np.int32),
        n_features=n_features,
        **meta,
    )


# --------------------------------------------------------------------------------------------------
# LightGBM.
# --------------------------------------------------------------------------------------------------

_LGB_VARIANT = {
    ("NaN", True): _LGB_NAN_LEFT,
    ("NaN", False): _LGB_NAN_RIGHT,
    ("None", True): _LGB_NONE,
    ("None", False): _LGB_NONE,
    ("Zero", True): _LGB_ZERO_LEFT,
    ("Zero", False): _LGB_ZERO_RIGHT,
}


def flatten_lightgbm(booster: lightgbm.Booster) -> FlatForest:
    """Flatten a trained LightGBM booster (the iterations its own ``predict`` would use)."""
    return flatten_lightgbm_dump(booster.dump_model())


def flatten_lightgbm_dump(dump: dict[str, Any]) -> FlatForest:
    """Flatten the JSON of ``Booster.dump_model()`` (thresholds there round-trip doubles exactly)."""
    if int(dump.get("num_class", 1)) != 1 or int(dump.get("num_tree_per_iteration", 1)) != 1:
        raise UnsupportedModelError("LightGBM: only single-output models (binary, regression) are supported")
    link, scale = _lightgbm_link(str(dump.get("objective", "")))
    trees: list[tuple[list[_Node], int]] = []
    for info in dump["tree_info"]:
        if int(info.get("num_cat", 0)) > 0:
            raise UnsupportedModelError(
                f"LightGBM tree {info.get('tree_index')}: categorical splits are not supported"
            )
        trees.append((_lgb_nodes(info["tree_structure"], info.get("tree_index")), 0))
    names = tuple(str(n) for n in dump.get("feature_names", ()))
    n_features = int(dump.get("max_feature_idx", len(names) - 1)) + 1
    divisor = float(len(trees)) if dump.get("average_output") and trees else 1.0
    return _layout(
        trees,
        ForestKind.LIGHTGBM,
        n_features,
        feature_names=names,
        base=0.0,  # LightGBM bakes the init score (boost_from_average) into the first tree
        divisor=divisor,
        link=link,
        sigmoid_scale=scale,
    )


def _lightgbm_link(objective: str) -> tuple[Link, float]:
    name, *params = objective.split()
    if name == "binary":
        scale = 1.0
        for p in params:
            key, _, value = p.partition(":")
            if key == "sigmoid":
                scale = float(value)
        return Link.SIGMOID, scale
    if name in ("cross_entropy", "xentropy"):
        return Link.SIGMOID, 1.0
    if name in ("regression", "regression_l2", "l2") and "sqrt" not in params:
        return Link.IDENTITY, 1.0
    raise UnsupportedModelError(f"LightGBM objective {objective!r} is not supported (binary or regression)")


def _lgb_nodes(root: dict[str, Any], tree: object) -> list[_Node]:
    """The dump's nested tree as a node list, root first (iterative: deep trees are fine)."""
    nodes: list[_Node] = []
    stack: list[tuple[dict[str, Any], int, int]] = [(root, -1, 0)]  # (node, parent, 1 left / 2 right)
    while stack:
        cur, parent, side = stack.pop()
        idx = len(nodes)
        if parent >= 0:
            p = nodes[parent]
            nodes[parent] = p._replace(left=idx) if side == 1 else p._replace(right=idx)
        if "split_feature" not in cur:
            if "leaf_coeff" in cur or "leaf_features" in cur:
                raise UnsupportedModelError(f"LightGBM tree {tree}: linear trees are not supported")
            nodes.append(_Node(-1, math.inf, 0, -1, -1, float(cur["leaf_value"])))
            continue
        if cur.get("decision_type") != "<=":
            raise UnsupportedModelError(
                f"LightGBM tree {tree}: split decision {cur.get('decision_type')!r} "
                "(categorical) is not supported; train with numerical features only"
            )
        variant = _LGB_VARIANT.get((str(cur.get("missing_type")), bool(cur.get("default_left"))))
        if variant is None:
            raise UnsupportedModelError(
                f"LightGBM tree {tree}: unknown missing_type {cur.get('missing_type')!r}"
            )
        nodes.append(_Node(int(cur["split_feature"]), float(cur["threshold"]), variant, -1, -1, 0.0))
        stack.append((cur["right_child"], idx, 2))
        stack.append((cur["left_child"], idx, 1))
    return nodes


# --------------------------------------------------------------------------------------------------
# XGBoost.
# --------------------------------------------------------------------------------------------------

_XGB_LINKS = {
    "binary:logistic": Link.SIGMOID,
    "reg:logistic": Link.SIGMOID,
    "binary:logitraw": Link.IDENTITY,
    "reg:squarederror": Link.IDENTITY,
}


def flatten_xgboost(booster: xgboost.Booster) -> FlatForest:
    """Flatten a trained XGBoost booster (all its trees, as ``inplace_predict`` uses by default)."""
    return flatten_xgboost_json(bytes(booster.save_raw(raw_format="json")))


def flatten_xgboost_json(model: bytes | str | dict[str, Any]) -> FlatForest:
    """Flatten XGBoost's JSON model (``save_raw("json")`` or a ``.json`` model file's content)."""
    doc: dict[str, Any] = model if isinstance(model, dict) else json.loads(model)
    learner = doc["learner"]
    objective = str(learner["objective"]["name"])
    link = _XGB_LINKS.get(objective)
    if link is None:
        raise UnsupportedModelError(
            f"XGBoost objective {objective!r} is not supported ({', '.join(sorted(_XGB_LINKS))})"
        )
    params = learner["learner_model_param"]
    if int(params.get("num_class", 0)) > 1 or int(params.get("num_target", 1)) != 1:
        raise UnsupportedModelError("XGBoost: only single-output models are supported")
    gb = learner["gradient_booster"]
    if gb.get("name") != "gbtree":
        raise UnsupportedModelError(f"XGBoost booster {gb.get('name')!r} is not supported (gbtree only)")
    trees: list[tuple[list[_Node], int]] = []
    for t, tree in enumerate(gb["model"]["trees"]):
        if int(tree["tree_param"].get("size_leaf_vector", 1)) > 1:
            raise UnsupportedModelError(f"XGBoost tree {t}: vector leaves are not supported")
        if any(int(s) != 0 for s in tree.get("split_type", ())):
            raise UnsupportedModelError(f"XGBoost tree {t}: categorical splits are not supported")
        conds = np.asarray(tree["split_conditions"], dtype=np.float64).astype(np.float32)
        # x < t  <=>  x <= (the float32 just below t), x being float32 too.
        below = np.nextafter(conds, np.float32(-np.inf))
        nodes = []
        for i, (lc, rc) in enumerate(zip(tree["left_children"], tree["right_children"], strict=True)):
            if lc == -1:
                nodes.append(_Node(-1, math.inf, 0, -1, -1, float(conds[i])))  # leaf value is float32 too
            else:
                variant = _XGB_NAN_LEFT if int(tree["default_left"][i]) else _XGB_NAN_RIGHT
                nodes.append(
                    _Node(int(tree["split_indices"][i]), float(below[i]), variant, int(lc), int(rc), 0.0)
                )
        trees.append((nodes, 0))
    return _layout(
        trees,
        ForestKind.XGBOOST,
        int(params["num_feature"]),
        feature_names=tuple(str(n) for n in learner.get("feature_names", ())),
        base=_xgb_base_margin(str(params["base_score"]), objective),
        divisor=1.0,
        link=link,
        sigmoid_scale=1.0,
    )


def _xgb_base_margin(text: str, objective: str) -> float:
    """XGBoost stores the base score in output space ("[4.825E-1]" since 2.x); walk in margin space."""
    values = [float(v) for v in text.strip("[]").split(",") if v.strip()]
    if len(values) != 1:
        raise UnsupportedModelError(f"XGBoost: expected one base score, got {text!r}")
    p = np.float32(values[0])
    if objective in ("binary:logistic", "reg:logistic"):
        # ProbToMargin as XGBoost computes it: 1/p - 1 in float32, then a correctly rounded logf.
        # (numpy's float32 log can be one ulp off, which then shows in ~5 % of predictions.)
        inner = np.float32(1.0) / p - np.float32(1.0)
        return float(np.float32(-math.log(float(inner))))
    return float(p)  # binary:logitraw and reg:squarederror keep the base score as the margin


# --------------------------------------------------------------------------------------------------
# The whole ensemble for one row: forests, logistic members, weighted mean, calibrator. It lives
# here, beside the kernels it calls, because numba's on-disk cache is invalidated only by changes to
# the file a cached function is defined in: a kernel in inference.py calling into this file could
# keep running stale code after an edit here.
# --------------------------------------------------------------------------------------------------

# Argument layout: see inference._Packed and Scorer._pack. Calibrator kinds in cal_p[0]:
CAL_NONE, CAL_ISOTONIC, CAL_PLATT = 0, 1, 2
LOGIT_EPS = 1e-12  # Platt on the logit scale: keeps logit(0) and logit(1) finite


@njit(cache=True, nogil=True)
def calibrate(
    p: float, cal_p: NDArray[np.float64], cal_x: NDArray[np.float64], cal_y: NDArray[np.float64]
) -> float:
    """sklearn's IsotonicRegression.predict (clip, then scipy interp1d's linear formula) or Platt."""
    kind = int(cal_p[0])
    if kind == 1:
        t = p
        if cal_p[1] == 1.0:  # np.clip(t, X_min_, X_max_)
            t = min(max(t, cal_p[2]), cal_p[3])
        n = cal_x.shape[0]
        if n == 1:
            return float(cal_y[0])
        if np.isnan(t) or t < cal_x[0] or t > cal_x[n - 1]:
            return np.nan  # only reachable with out_of_bounds="nan" (or a NaN input)
        hi = min(max(int(np.searchsorted(cal_x, t)), 1), n - 1)  # scipy interp1d's bracket
        lo = hi - 1
        slope = (cal_y[hi] - cal_y[lo]) / (cal_x[hi] - cal_x[lo])
        return float(slope * (t - cal_x[lo]) + cal_y[lo])
    if kind == 2:
        v = p
        if cal_p[6] == 1.0:
            q = min(max(p, LOGIT_EPS), 1.0 - LOGIT_EPS)
            v = math.log(q / (1.0 - q))
        return 1.0 / (1.0 + math.exp(-(cal_p[4] * v + cal_p[5])))
    return p


@njit(cache=True, nogil=True)
def _ensemble_into(
    row: NDArray[np.float64],
    nodes_i: NDArray[np.int32],
    threshold: NDArray[np.float64],
    value: NDArray[np.float64],
    roots: NDArray[np.int32],
    depth: NDArray[np.int32],
    order: NDArray[np.int32],
    forest_i: NDArray[np.int32],
    forest_f: NDArray[np.float64],
    lin_w: NDArray[np.float64],
    lin_b: NDArray[np.float64],
    lin_fill: NDArray[np.float64],
    lin_slot: NDArray[np.int32],
    weights: NDArray[np.float64],
    required: NDArray[np.int32],
    cal_p: NDArray[np.float64],
    cal_x: NDArray[np.float64],
    cal_y: NDArray[np.float64],
    prepared: NDArray[np.float64],
    leaf: NDArray[np.float64],
    members: NDArray[np.float64],
) -> tuple[float, float, float]:
    """(probability, disagreement, uncalibrated) for one row, members written in place; NaN if not
    warm. ``prepared`` and ``leaf`` are scratch space (row variants, one leaf value per tree)."""
    for j in range(required.shape[0]):
        if np.isnan(row[required[j]]):
            members[:] = np.nan
            return np.nan, np.nan, np.nan
    for f in range(forest_i.shape[0]):
        lo, hi, kind = forest_i[f, 0], forest_i[f, 1], forest_i[f, 2]
        prepare_row(row, kind, prepared)
        walk_trees(prepared, nodes_i, threshold, value, roots, depth, order, lo, hi, leaf)
        raw = sum_leaves(leaf, lo, hi, kind, forest_f[f, 0], forest_f[f, 1])
        members[forest_i[f, 4]] = apply_link(raw, forest_i[f, 3], forest_f[f, 2], kind)
    for m in range(lin_w.shape[0]):
        z = lin_b[m]
        for j in range(row.shape[0]):
            v = row[j]
            if np.isnan(v):
                v = lin_fill[m, j]
            z += lin_w[m, j] * v
        members[lin_slot[m]] = 1.0 / (1.0 + math.exp(-z))
    p = 0.0
    lo_p = np.inf
    hi_p = -np.inf
    for k in range(members.shape[0]):
        p += weights[k] * members[k]
        lo_p = min(lo_p, members[k])
        hi_p = max(hi_p, members[k])
    return calibrate(p, cal_p, cal_x, cal_y), hi_p - lo_p, p


@njit(cache=True, nogil=True)
def ensemble_row(
    row: NDArray[np.float64],
    nodes_i: NDArray[np.int32],
    threshold: NDArray[np.float64],
    value: NDArray[np.float64],
    roots: NDArray[np.int32],
    depth: NDArray[np.int32],
    order: NDArray[np.int32],
    forest_i: NDArray[np.int32],
    forest_f: NDArray[np.float64],
    lin_w: NDArray[np.float64],
    lin_b: NDArray[np.float64],
    lin_fill: NDArray[np.float64],
    lin_slot: NDArray[np.int32],
    weights: NDArray[np.float64],
    required: NDArray[np.int32],
    cal_p: NDArray[np.float64],
    cal_x: NDArray[np.float64],
    cal_y: NDArray[np.float64],
    members: NDArray[np.float64],
) -> tuple[float, float, float]:
    prepared = np.empty(MAX_VARIANTS * row.shape[0])
    leaf = np.empty(roots.shape[0])
    return _ensemble_into(
        row,
        nodes_i,
        threshold,
        value,
        roots,
        depth,
        order,
        forest_i,
        forest_f,
        lin_w,
        lin_b,
        lin_fill,
        lin_slot,
        weights,
        required,
        cal_p,
        cal_x,
        cal_y,
        prepared,
        leaf,
        members,
    )


@njit(cache=True, nogil=True)
def ensemble_batch(
    matrix: NDArray[np.float64],
    nodes_i: NDArray[np.int32],
    threshold: NDArray[np.float64],
    value: NDArray[np.float64],
    roots: NDArray[np.int32],
    depth: NDArray[np.int32],
    order: NDArray[np.int32],
    forest_i: NDArray[np.int32],
    forest_f: NDArray[np.float64],
    lin_w: NDArray[np.float64],
    lin_b: NDArray[np.float64],
    lin_fill: NDArray[np.float64],
    lin_slot: NDArray[np.int32],
    weights: NDArray[np.float64],
    required: NDArray[np.int32],
    cal_p: NDArray[np.float64],
    cal_x: NDArray[np.float64],
    cal_y: NDArray[np.float64],
    members: NDArray[np.float64],
    probability: NDArray[np.float64],
    disagreement: NDArray[np.float64],
    uncalibrated: NDArray[np.float64],
) -> None:
    prepared = np.empty(MAX_VARIANTS * matrix.shape[1])
    leaf = np.empty(roots.shape[0])
    for i in range(matrix.shape[0]):
        probability[i], disagreement[i], uncalibrated[i] = _ensemble_into(
            matrix[i],
            nodes_i,
            threshold,
            value,
            roots,
            depth,
            order,
            forest_i,
            forest_f,
            lin_w,
            lin_b,
            lin_fill,
            lin_slot,
            weights,
            required,
            cal_p,
            cal_x,
            cal_y,
            prepared,
            leaf,
            members[i],
        )
