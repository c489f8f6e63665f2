"""Per-signal SHAP contributions: exact (they add up to the score), ranked, and in words."""

from __future__ import annotations

import itertools
import json
import math
import warnings
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from tradesignals.models.contributions import (
    Contribution,
    ContributionExplainer,
    format_value,
    top_contributions,
)
from tradesignals.models.inference import LogisticMember, Scorer, TreeMember

NAMES = ["rsi_14", "ret_5", "atr_pct", "volume_z", "constant"]
TOL = 1e-6


def _data(seed: int, n: int, nan: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(NAMES)))
    x[:, 0] = 50 + 15 * x[:, 0]  # an RSI-like scale
    y = ((x[:, 0] - 50) / 15 - 0.8 * x[:, 1] + 0.3 * x[:, 2] + rng.normal(size=n) > 0).astype(int)
    x[:, 4] = 1.0  # never split on: its contribution is always exactly 0
    if nan:
        x[:, :4][rng.random((n, 4)) < nan] = np.nan
    return x, y


def _booster(nan: float = 0.1) -> lgb.Booster:
    """Trained, then reloaded from its text model as the registry does."""
    x, y = _data(0, 600, nan)
    params = {"objective": "binary", "num_leaves": 7, "min_data_in_leaf": 10, "verbose": -1, "num_threads": 1}
    trained = lgb.train(params, lgb.Dataset(x, y, feature_name=NAMES), num_boost_round=20)
    return lgb.Booster(model_str=trained.model_to_string())


@pytest.fixture(scope="module")
def booster() -> lgb.Booster:
    return _booster()


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return _data(1, 40, 0.15)[0]


def test_contributions_plus_expected_value_equal_the_raw_margin(
    booster: lgb.Booster, queries: np.ndarray
) -> None:
    ex = ContributionExplainer(booster)
    raw = booster.predict(queries, raw_score=True)
    for row, margin in zip(queries, raw, strict=True):
        phi = ex.contributions(row)
        assert phi.shape == (len(NAMES) + 1,)
        assert abs(phi.sum() - margin) < TOL
        e = ex.explain(row, k=2)
        assert abs(e.margin - margin) < TOL
        assert e.expected_value == pytest.approx(phi[-1], abs=0)


def test_top_k_is_ordered_by_magnitude_and_skips_zero_contributions(
    booster: lgb.Booster, queries: np.ndarray
) -> None:
    ex = ContributionExplainer(booster)
    for row in queries:
        phi = ex.contributions(row)[:-1]
        top = ex.explain(row, k=3).contributions
        assert len(top) == 3
        mags = [abs(c.contribution) for c in top]
        assert mags == sorted(mags, reverse=True)
        assert mags[0] == pytest.approx(np.abs(phi).max(), abs=0)
        for c in top:
            i = NAMES.index(c.feature)
            assert c.contribution == phi[i]
            assert c.value == row[i] or (math.isnan(c.value) and math.isnan(row[i]))
        everything = ex.explain(row, k=len(NAMES)).contributions
        assert "constant" not in {c.feature for c in everything}  # never split on: exactly 0
        assert len(everything) == int(np.count_nonzero(phi))
    assert ex.explain(queries[0], k=0).contributions == ()
    with pytest.raises(ValueError, match="non-negative"):
        ex.explain(queries[0], k=-1)


def _path_expectation(node: dict[str, Any], x: np.ndarray, known: frozenset[int]) -> float:
    """E[tree(x) | x_known], unknown features integrated out by the training counts at each split:
    the value path-dependent TreeSHAP attributes (Lundberg et al. 2020, Algorithm 1)."""
    if "leaf_value" in node:
        return float(node["leaf_value"])
    left, right = node["left_child"], node["right_child"]
    f = node["split_feature"]
    if f in known:
        return _path_expectation(left if x[f] <= node["threshold"] else right, x, known)

    def count(n: dict[str, Any]) -> int:
        return int(n["leaf_count"] if "leaf_value" in n else n["internal_count"])

    total = count(left) + count(right)
    return (
        count(left) * _path_expectation(left, x, known) + count(right) * _path_expectation(right, x, known)
    ) / total


def _brute_force_shapley(dump: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Shapley values by their definition: every coalition of features, weighted."""
    trees = [t["tree_structure"] for t in dump["tree_info"]]
    m = x.shape[0]

    def v(known: frozenset[int]) -> float:
        return sum(_path_expectation(t, x, known) for t in trees)

    phi = np.zeros(m + 1)
    for i in range(m):
        others = [j for j in range(m) if j != i]
        for size in range(m):
            w = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
            for subset in itertools.combinations(others, size):
                s = frozenset(subset)
                phi[i] += w * (v(s | {i}) - v(s))
    phi[m] = v(frozenset())
    return phi


def test_matches_shapley_values_computed_from_their_definition() -> None:
    """Independent of LightGBM's and shap's code: exhaustive coalitions over the dumped trees."""
    b = _booster(nan=0.0)  # the oracle walks finite values only
    dump = b.dump_model()
    ex = ContributionExplainer(b)
    for row in _data(2, 8, 0.0)[0]:
        assert np.abs(ex.contributions(row) - _brute_force_shapley(dump, row)).max() < TOL


def test_agrees_with_shap_tree_explainer(booster: lgb.Booster) -> None:
    import shap  # here, not at the top: importing shap takes seconds

    queries = _data(3, 30, 0.0)[0]
    ours = np.vstack([ContributionExplainer(booster).contributions(r) for r in queries])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # shap's note on its LightGBM output shape
        explainer = shap.TreeExplainer(booster)
        # For a LightGBM booster shap's public path calls pred_contrib itself ...
        public = np.asarray(explainer.shap_values(queries))
        assert np.abs(public - ours[:, :-1]).max() < TOL
        assert abs(float(np.ravel(explainer.expected_value)[0]) - ours[0, -1]) < TOL
        # ... so also run shap's own C TreeSHAP over shap's own parse of the trees.
        explainer.model.model_type = "internal"
        internal = np.asarray(explainer.shap_values(queries, check_additivity=False))
    assert np.abs(internal - ours[:, :-1]).max() < TOL


def test_reasons_name_the_feature_its_value_and_the_direction(booster: lgb.Booster) -> None:
    ex = ContributionExplainer(booster)
    oversold = {"rsi_14": 20.0, "ret_5": 0.0, "atr_pct": 0.0, "volume_z": 0.0, "constant": 1.0}
    overbought = oversold | {"rsi_14": 80.0}
    low = ex.explain(oversold, k=1)
    high = ex.explain(overbought, k=1)
    # The planted label rises with rsi_14: a low value pushes the probability down, a high one up.
    assert low.contributions[0].feature == high.contributions[0].feature == "rsi_14"
    assert low.reasons() == ["rsi_14 = 20 pushed the probability down"]
    assert high.reasons() == ["rsi_14 = 80 pushed the probability up"]
    assert Contribution("rsi_14", 28.1234, 0.3).reason() == "rsi_14 = 28.1 pushed the probability up"
    missing = Contribution("ret_5", math.nan, -0.2)
    assert missing.reason() == "ret_5 = missing pushed the probability down"
    assert json.loads(json.dumps(missing.to_dict())) == {
        "feature": "ret_5",
        "value": None,
        "contribution": -0.2,
    }
    assert [format_value(v) for v in (0.012345, -3.14159, 1234567.8, math.inf)] == [
        "0.0123",
        "-3.14",
        "1,234,568",
        "inf",
    ]


def test_mapping_rows_equal_vectors_and_missing_keys_are_nan(
    booster: lgb.Booster, queries: np.ndarray
) -> None:
    ex = ContributionExplainer(booster)
    row = queries[0]
    as_map = {n: float(v) for n, v in zip(NAMES, row, strict=True) if not math.isnan(v)}
    assert np.array_equal(ex.contributions(as_map), ex.contributions(row))
    with pytest.raises(ValueError, match="unknown features"):
        ex.contributions({"nope": 1.0})
    with pytest.raises(ValueError, match="expected 5 features"):
        ex.contributions(row[:3])
    assert top_contributions(booster, row, k=2) == list(ex.explain(row, k=2).contributions)


def test_from_scorer_uses_the_lightgbm_member_and_the_scorer_feature_names(booster: lgb.Booster) -> None:
    x, _ = _data(0, 50, 0.0)
    logistic = LogisticMember(
        "logistic",
        coef=np.ones(len(NAMES)),
        intercept=0.0,
        mean=x.mean(axis=0),
        scale=np.ones(len(NAMES)),
        fill=x.mean(axis=0),
    )
    scorer = Scorer([logistic, TreeMember.from_lightgbm(booster, "lgbm")], feature_names=NAMES, warm=False)
    ex = ContributionExplainer.from_scorer(scorer)
    assert ex.booster is booster and ex.feature_names == tuple(NAMES)
    with pytest.raises(ValueError, match="no LightGBM member 'other'"):
        ContributionExplainer.from_scorer(scorer, member="other")
