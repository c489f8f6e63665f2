"""Flattened trees must predict exactly what LightGBM and XGBoost predict, split semantics included."""

from __future__ import annotations

import json
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb

from tradesignals.models.trees import (
    FlatForest,
    UnsupportedModelError,
    flatten_lightgbm,
    flatten_lightgbm_dump,
    flatten_xgboost,
)

N_FEATURES = 6
TOL = 1e-6


def _data(seed: int, n: int = 400, nan: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES))
    y = (x[:, 0] + 0.7 * x[:, 1] - 0.5 * x[:, 2] + rng.normal(size=n) > 0).astype(int)
    x[rng.random(x.shape) < nan] = np.nan
    x[:, 3] = np.where(rng.random(n) < 0.3, 0.0, x[:, 3])  # exact zeros for zero_as_missing
    return x, y


def _queries(seed: int, n: int = 1500) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, N_FEATURES)) * 1.5
    q[rng.random(q.shape) < 0.2] = np.nan
    q[rng.random(q.shape) < 0.05] = 0.0
    q[rng.random(q.shape) < 0.02] = 1e-40  # below LightGBM's zero threshold: read as 0.0
    return q


def _train_lgb(**params: Any) -> lgb.Booster:
    x, y = _data(1)
    base = {
        "objective": "binary",
        "num_leaves": 15,
        "min_data_in_leaf": 5,
        "learning_rate": 0.2,
        "verbose": -1,
    }
    return lgb.train(base | params, lgb.Dataset(x, y), num_boost_round=25)


def _train_xgb(objective: str = "binary:logistic") -> xgb.Booster:
    x, y = _data(2)
    params = {"objective": objective, "max_depth": 4, "eta": 0.3, "nthread": 1}
    return xgb.train(params, xgb.DMatrix(x, y), num_boost_round=25)


@pytest.fixture(scope="module")
def lgb_models() -> dict[str, lgb.Booster]:
    return {
        "nan": _train_lgb(),
        "zero": _train_lgb(zero_as_missing=True),
        "none": _train_lgb(use_missing=False),
    }


@pytest.fixture(scope="module")
def xgb_model() -> xgb.Booster:
    return _train_xgb()


def _lgb_splits(booster: lgb.Booster) -> list[dict[str, Any]]:
    out, stack = [], [t["tree_structure"] for t in booster.dump_model()["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_feature" in node:
            out.append(node)
            stack += [node["left_child"], node["right_child"]]
    return out


# --------------------------------------------------------------------------------------------------
# LightGBM
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("variant", "missing_type"), [("nan", "NaN"), ("zero", "Zero"), ("none", "None")])
def test_lightgbm_flattened_equals_booster_predict_with_nans(
    lgb_models: dict[str, lgb.Booster], variant: str, missing_type: str
) -> None:
    booster = lgb_models[variant]
    splits = _lgb_splits(booster)
    assert {n["missing_type"] for n in splits} == {missing_type}  # the variant exercises its rule
    assert missing_type == "None" or {n["default_left"] for n in splits} == {True, False}
    forest = flatten_lightgbm(booster)
    q = _queries(10)
    np.testing.assert_allclose(forest.predict_batch(q), booster.predict(q, num_threads=1), rtol=0, atol=TOL)
    np.testing.assert_allclose(
        forest.raw_batch(q), booster.predict(q, raw_score=True, num_threads=1), rtol=0, atol=TOL
    )
    for row in q[:50]:
        assert forest.predict_row(row) == pytest.approx(booster.predict(row[None, :])[0], abs=TOL)


def _lgb_goes_left(x: float, node: dict[str, Any]) -> bool:
    """LightGBM's documented decision, written out from the dump, independent of the walker."""
    missing, default_left = node["missing_type"], node["default_left"]
    if np.isnan(x) and missing != "NaN":
        x = 0.0
    if (missing == "Zero" and abs(x) <= 1e-35) or (missing == "NaN" and np.isnan(x)):
        return bool(default_left)
    return bool(x <= node["threshold"])


def _lgb_path_rows(booster: lgb.Booster, how: str) -> tuple[np.ndarray, list[int]]:
    """One row per tree that meets every split on its path at the edge ``how`` ('equal': x ==
    threshold, 'nan': x = NaN), and the leaf index LightGBM's rules say it reaches."""
    rows, leaves = [], []
    for info in booster.dump_model()["tree_info"]:
        row = np.full(N_FEATURES, 0.25)
        node, used = info["tree_structure"], set()
        while "split_feature" in node:
            f = node["split_feature"]
            if f not in used:
                row[f] = node["threshold"] if how == "equal" else np.nan
                used.add(f)
            node = node["left_child"] if _lgb_goes_left(row[f], node) else node["right_child"]
        rows.append(row)
        leaves.append(node["leaf_index"])
    return np.asarray(rows), leaves


@pytest.mark.parametrize(
    ("variant", "how"), [("nan", "equal"), ("nan", "nan"), ("zero", "equal"), ("zero", "nan")]
)
def test_lightgbm_threshold_equality_and_missing_direction_match_the_library(
    lgb_models: dict[str, lgb.Booster], variant: str, how: str
) -> None:
    booster = lgb_models[variant]
    rows, leaves = _lgb_path_rows(booster, how)
    # The library reaches the leaves its documented rules say ("<=" goes left, NaN goes default) ...
    lib_leaf = np.asarray(booster.predict(rows, pred_leaf=True, num_threads=1))
    assert [int(lib_leaf[t, t]) for t in range(len(leaves))] == leaves
    # ... and the flattened forest scores these edge rows exactly as the library does.
    forest = flatten_lightgbm(booster)
    np.testing.assert_allclose(
        forest.raw_batch(rows), booster.predict(rows, raw_score=True), rtol=0, atol=TOL
    )
    np.testing.assert_allclose(
        forest.predict_batch(rows), booster.predict(rows, num_threads=1), rtol=0, atol=TOL
    )


def _stump(missing_type: str, default_left: bool, threshold: float = 0.5) -> FlatForest:
    leaf = {"leaf_index": 0, "leaf_value": -1.0}
    return flatten_lightgbm_dump(
        {
            "num_class": 1,
            "num_tree_per_iteration": 1,
            "objective": "binary sigmoid:1",
            "max_feature_idx": 0,
            "feature_names": ["x"],
            "tree_info": [
                {
                    "tree_index": 0,
                    "num_cat": 0,
                    "tree_structure": {
                        "split_feature": 0,
                        "threshold": threshold,
                        "decision_type": "<=",
                        "default_left": default_left,
                        "missing_type": missing_type,
                        "left_child": leaf,
                        "right_child": {"leaf_index": 1, "leaf_value": 1.0},
                    },
                }
            ],
        }
    )


@pytest.mark.parametrize(
    ("missing_type", "default_left", "x", "expected"),
    [
        ("NaN", False, 0.5, -1.0),  # equal to the threshold: left
        ("NaN", False, float(np.nextafter(0.5, 1.0)), 1.0),  # one ulp above: right
        ("NaN", True, float("nan"), -1.0),  # NaN: default direction
        ("NaN", False, float("nan"), 1.0),
        ("None", False, float("nan"), -1.0),  # no missing handling: NaN is read as 0.0 <= 0.5
        ("Zero", False, 0.0, 1.0),  # zero is "missing": default direction, not the comparison
        ("Zero", False, float("nan"), 1.0),  # NaN becomes 0.0, then missing
        ("Zero", False, 1e-40, 1.0),  # |x| <= 1e-35 is zero to LightGBM
        ("Zero", True, -0.25, -1.0),
    ],
)
def test_lightgbm_split_semantics_on_a_stump(
    missing_type: str, default_left: bool, x: float, expected: float
) -> None:
    forest = _stump(missing_type, default_left)
    assert forest.raw_row(np.array([x])) == expected


def test_lightgbm_tiny_values_read_as_zero_against_a_tiny_threshold() -> None:
    # x = 1e-40 is above a threshold of 1e-45, but LightGBM reads it as 0.0, which is below.
    forest = _stump("None", False, threshold=1e-45)
    assert forest.raw_row(np.array([1e-40])) == -1.0
    assert forest.raw_row(np.array([1e-30])) == 1.0


def test_lightgbm_categorical_split_is_refused() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 5, size=(300, 2)).astype(float)
    y = (x[:, 0] == 2).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "min_data_in_leaf": 5, "min_data_per_group": 5},
        lgb.Dataset(x, y, categorical_feature=[0]),
        num_boost_round=3,
    )
    with pytest.raises(UnsupportedModelError, match="categorical"):
        flatten_lightgbm(booster)


def test_lightgbm_multiclass_is_refused() -> None:
    x, _ = _data(4)
    y = np.arange(len(x)) % 3
    booster = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1}, lgb.Dataset(x, y), 2)
    with pytest.raises(UnsupportedModelError, match="single-output"):
        flatten_lightgbm(booster)


# --------------------------------------------------------------------------------------------------
# XGBoost
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("objective", ["binary:logistic", "binary:logitraw"])
def test_xgboost_flattened_equals_inplace_predict_with_nans(objective: str) -> None:
    booster = _train_xgb(objective)
    forest = flatten_xgboost(booster)
    q = _queries(11)
    np.testing.assert_allclose(forest.predict_batch(q), booster.inplace_predict(q), rtol=0, atol=TOL)
    np.testing.assert_allclose(
        forest.raw_batch(q), booster.inplace_predict(q, predict_type="margin"), rtol=0, atol=TOL
    )
    for row in q[:50]:
        assert forest.predict_row(row) == pytest.approx(
            float(booster.inplace_predict(row[None, :])[0]), abs=TOL
        )


def _xgb_path_rows(booster: xgb.Booster, how: str) -> tuple[np.ndarray, list[int]]:
    """As _lgb_path_rows, from XGBoost's JSON, under XGBoost's rules (float32 x < split goes left)."""
    trees = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]
    rows, leaves = [], []
    for tree in trees:
        row = np.full(N_FEATURES, 0.25)
        node, used = 0, set()
        while tree["left_children"][node] != -1:
            f = tree["split_indices"][node]
            cond = np.float32(tree["split_conditions"][node])
            if f not in used:
                if how == "equal":
                    row[f] = float(cond)
                elif how == "rounds_up":
                    row[f] = np.nextafter(float(cond), -np.inf)  # below in float64, == cond in float32
                    assert row[f] < cond and np.float32(row[f]) == cond
                elif how == "rounds_down":  # above the float32 just below cond, rounds down to it
                    below = np.nextafter(cond, np.float32(-np.inf))
                    row[f] = np.nextafter(float(below), np.inf)
                    assert row[f] > below and np.float32(row[f]) == below
                else:
                    row[f] = np.nan
                used.add(f)
            x = np.float32(row[f])
            go_left = bool(tree["default_left"][node]) if np.isnan(x) else bool(x < cond)
            node = tree["left_children"][node] if go_left else tree["right_children"][node]
        rows.append(row)
        leaves.append(node)
    return np.asarray(rows), leaves


@pytest.mark.parametrize("how", ["equal", "rounds_up", "rounds_down", "nan"])
def test_xgboost_threshold_edges_and_missing_direction_match_the_library(
    xgb_model: xgb.Booster, how: str
) -> None:
    rows, leaves = _xgb_path_rows(xgb_model, how)
    lib_leaf = xgb_model.predict(xgb.DMatrix(rows), pred_leaf=True).astype(int)
    assert [int(lib_leaf[t, t]) for t in range(len(leaves))] == leaves
    forest = flatten_xgboost(xgb_model)
    np.testing.assert_allclose(
        forest.raw_batch(rows), xgb_model.inplace_predict(rows, predict_type="margin"), rtol=0, atol=TOL
    )
    np.testing.assert_allclose(forest.predict_batch(rows), xgb_model.inplace_predict(rows), rtol=0, atol=TOL)


def test_xgboost_base_score_is_in_the_margin() -> None:
    x, y = _data(5)
    y = np.where(np.arange(len(y)) % 5 == 0, 1, 0)  # base rate 0.2: base margin far from 0
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(x, y), num_boost_round=2
    )
    forest = flatten_xgboost(booster)
    assert forest.base < -1.0
    q = _queries(12, 200)
    np.testing.assert_allclose(
        forest.raw_batch(q), booster.inplace_predict(q, predict_type="margin"), atol=TOL
    )


def test_xgboost_dart_is_refused() -> None:
    x, y = _data(6)
    booster = xgb.train(
        {"objective": "binary:logistic", "booster": "dart"}, xgb.DMatrix(x, y), num_boost_round=2
    )
    with pytest.raises(UnsupportedModelError, match="dart"):
        flatten_xgboost(booster)


def test_wrong_row_width_is_an_error(xgb_model: xgb.Booster) -> None:
    forest = flatten_xgboost(xgb_model)
    with pytest.raises(ValueError, match="6 features"):
        forest.predict_row(np.zeros(5))
