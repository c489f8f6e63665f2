"""The compiled ensemble must score what the libraries score: members, combination, calibrator."""

from __future__ import annotations

from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from scipy.special import expit
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tradesignals.models.inference import (
    IsotonicCalibrator,
    LogisticMember,
    NotWarm,
    PlattCalibrator,
    Score,
    Scorer,
    TreeMember,
)
from tradesignals.models.trees import ensemble_batch, ensemble_row

N_FEATURES = 8
NAMES = [f"f{i:02d}" for i in range(N_FEATURES)]
WEIGHTS = (0.5, 0.3, 0.2)
TOL = 1e-6


def _data(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)) * np.linspace(1, 20, N_FEATURES) + np.linspace(-5, 50, N_FEATURES)
    z = (x[:, 0] + 5) - 0.1 * (x[:, 3] - 10) + rng.normal(size=n) * 2
    y = (z > 0).astype(int)
    x[rng.random(x.shape) < 0.1] = np.nan
    return x, y


@pytest.fixture(scope="module")
def fitted() -> dict[str, Any]:
    """Tiny LightGBM + XGBoost + imputer/scaler/logistic pipeline, and the ensemble's raw probability."""
    x, y = _data(0, 500)
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 15, "min_data_in_leaf": 5, "verbose": -1},
        lgb.Dataset(x, y, feature_name=NAMES),
        num_boost_round=20,
    )
    xbooster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "nthread": 1},
        xgb.DMatrix(x, y, feature_names=NAMES),
        num_boost_round=20,
    )
    pipe = make_pipeline(SimpleImputer(strategy="mean"), StandardScaler(), LogisticRegression(C=0.3)).fit(
        x, y
    )
    members = [booster.predict(x), xbooster.inplace_predict(x), pipe.predict_proba(x)[:, 1]]
    p_ens = sum(w * m for w, m in zip(WEIGHTS, members, strict=True))
    return {"x": x, "y": y, "lgb": booster, "xgb": xbooster, "pipe": pipe, "p_ens": p_ens}


def _members(f: dict[str, Any]) -> list[TreeMember | LogisticMember]:
    return [
        TreeMember.from_lightgbm(f["lgb"]),
        TreeMember.from_xgboost(f["xgb"]),
        LogisticMember.from_sklearn(f["pipe"]),
    ]


def _library_reference(f: dict[str, Any], q: np.ndarray, calibrate: Any) -> tuple[np.ndarray, np.ndarray]:
    """Written out here with the libraries' public predict calls, independent of reference_predict."""
    members = np.column_stack(
        [f["lgb"].predict(q, num_threads=1), f["xgb"].inplace_predict(q), f["pipe"].predict_proba(q)[:, 1]]
    )
    p_ens = members @ np.asarray(WEIGHTS)
    return calibrate(p_ens), members


def _queries(seed: int, n: int = 400) -> np.ndarray:
    q, _ = _data(seed, n)
    return q


def _check(scorer: Scorer, f: dict[str, Any], calibrate: Any) -> None:
    q = _queries(1)
    want_p, want_m = _library_reference(f, q, calibrate)
    batch = scorer.score_batch(q)
    assert batch.warm.all()
    np.testing.assert_allclose(batch.probability, want_p, rtol=0, atol=TOL)
    np.testing.assert_allclose(batch.members, want_m, rtol=0, atol=TOL)
    np.testing.assert_allclose(batch.disagreement, want_m.max(axis=1) - want_m.min(axis=1), rtol=0, atol=TOL)
    ref = scorer.reference_predict(q)
    np.testing.assert_allclose(ref.probability, want_p, rtol=0, atol=TOL)
    for i in range(0, len(q), 37):
        s = scorer.score_row(q[i])
        assert isinstance(s, Score)
        assert s.probability == pytest.approx(want_p[i], abs=TOL)
        np.testing.assert_allclose(s.raw_members, want_m[i], rtol=0, atol=TOL)
        assert s.disagreement == pytest.approx(max(s.raw_members) - min(s.raw_members))
        # one row and the batch are the same computation
        assert s.probability == batch.probability[i]


def test_isotonic_clip_ensemble_equals_the_libraries(fitted: dict[str, Any]) -> None:
    iso = IsotonicRegression(out_of_bounds="clip").fit(fitted["p_ens"], fitted["y"])
    scorer = Scorer(
        _members(fitted),
        feature_names=NAMES,
        weights=WEIGHTS,
        calibrator=IsotonicCalibrator.from_sklearn(iso),
    )
    _check(scorer, fitted, iso.predict)
    assert scorer.member_names == ("lightgbm", "xgboost", "logistic")


@pytest.mark.parametrize("oob", ["clip", "nan"])
def test_isotonic_outside_its_training_range_is_clipped_or_nan_like_sklearn(
    fitted: dict[str, Any], oob: str
) -> None:
    # Fitted on the middle of the ensemble's range only, so that queries fall outside on both sides.
    p, y = fitted["p_ens"], fitted["y"]
    mid = (p > np.quantile(p, 0.2)) & (p < np.quantile(p, 0.8))
    iso = IsotonicRegression(out_of_bounds=oob).fit(p[mid], y[mid])
    cal = IsotonicCalibrator.from_sklearn(iso)
    scorer = Scorer(_members(fitted), feature_names=NAMES, weights=WEIGHTS, calibrator=cal)
    q = _queries(1)
    want, _ = _library_reference(fitted, q, iso.predict)
    got = scorer.score_batch(q).probability
    unc = scorer.score_batch(q).uncalibrated
    assert (unc < iso.X_min_).any() and (unc > iso.X_max_).any()
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL, equal_nan=True)
    assert np.isnan(got).any() == (oob == "nan")
    # The numpy formula (used after loading from an artifact, without sklearn's object) agrees too.
    plain = IsotonicCalibrator(cal.x, cal.y, cal.x_min, cal.x_max, cal.out_of_bounds)
    t = np.concatenate([np.linspace(0, 1, 101), cal.x])
    np.testing.assert_allclose(plain.predict(t), iso.predict(t), rtol=0, atol=TOL, equal_nan=True)


def test_isotonic_raise_mode_is_refused() -> None:
    p = np.linspace(0.1, 0.9, 50)
    iso = IsotonicRegression(out_of_bounds="raise").fit(p, p > 0.5)
    with pytest.raises(ValueError, match="clip"):
        IsotonicCalibrator.from_sklearn(iso)


@pytest.mark.parametrize("on", ["probability", "logit"])
def test_platt_from_logistic_regression_equals_sklearn(
    fitted: dict[str, Any], on: Literal["probability", "logit"]
) -> None:
    p = fitted["p_ens"]
    v = p if on == "probability" else np.log(p / (1 - p))
    lr = LogisticRegression().fit(v.reshape(-1, 1), fitted["y"])
    scorer = Scorer(
        _members(fitted),
        feature_names=NAMES,
        weights=WEIGHTS,
        calibrator=PlattCalibrator.from_sklearn(lr, on=on),
    )

    def calibrate(q: np.ndarray) -> np.ndarray:
        u = q if on == "probability" else np.log(q / (1 - q))
        return np.asarray(lr.predict_proba(u.reshape(-1, 1))[:, 1])

    _check(scorer, fitted, calibrate)


def test_platt_from_sklearn_sigmoid_calibration(fitted: dict[str, Any]) -> None:
    # What CalibratedClassifierCV(method="sigmoid") fits; private, so looked up defensively.
    sigmoid_calibration = pytest.importorskip("sklearn.calibration")._SigmoidCalibration
    sig = sigmoid_calibration().fit(fitted["p_ens"], fitted["y"])
    scorer = Scorer(
        _members(fitted), feature_names=NAMES, weights=WEIGHTS, calibrator=PlattCalibrator.from_sklearn(sig)
    )
    _check(scorer, fitted, sig.predict)


def test_uncalibrated_weighted_mean(fitted: dict[str, Any]) -> None:
    scorer = Scorer(_members(fitted), feature_names=NAMES, weights=[5, 3, 2])  # normalised to WEIGHTS
    assert scorer.weights == pytest.approx(WEIGHTS)
    _check(scorer, fitted, lambda p: p)


def test_logistic_member_imputes_nan_with_training_means_like_the_pipeline(fitted: dict[str, Any]) -> None:
    member = LogisticMember.from_sklearn(fitted["pipe"])
    imputer = fitted["pipe"].steps[0][1]
    np.testing.assert_array_equal(member.fill, imputer.statistics_)
    q = _queries(2)
    assert np.isnan(q).any()
    scorer = Scorer([member], feature_names=NAMES)
    got = scorer.score_batch(q).members[:, 0]
    np.testing.assert_allclose(got, fitted["pipe"].predict_proba(q)[:, 1], rtol=0, atol=TOL)


def test_logistic_member_without_imputer_uses_the_scaler_means(fitted: dict[str, Any]) -> None:
    x, y = fitted["x"], fitted["y"]
    means = np.nanmean(x, axis=0)
    xi = np.where(np.isnan(x), means, x)
    scaler = StandardScaler().fit(xi)
    lr = LogisticRegression(C=0.3).fit(scaler.transform(xi), y)
    member = LogisticMember.from_sklearn(lr, scaler=scaler)
    np.testing.assert_allclose(member.fill, means)
    q = _queries(3)
    want = expit(scaler.transform(np.where(np.isnan(q), scaler.mean_, q)) @ lr.coef_[0] + lr.intercept_[0])
    got = Scorer([member], feature_names=NAMES).score_batch(q).members[:, 0]
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    np.testing.assert_allclose(member.reference_predict(q), want, rtol=0, atol=TOL)


def test_rows_missing_required_features_are_reported_not_scored(fitted: dict[str, Any]) -> None:
    scorer = Scorer(_members(fitted), feature_names=NAMES, weights=WEIGHTS, required_features=["f02", "f05"])
    q = _queries(4)
    q[:, [2, 5]] = np.where(np.isnan(q[:, [2, 5]]), 0.0, q[:, [2, 5]])  # all warm ...
    q[7, 2] = np.nan  # ... but these
    q[9, [2, 5]] = np.nan
    assert scorer.score_row(q[7]) == NotWarm(("f02",))
    assert scorer.score_row(q[9]) == NotWarm(("f02", "f05"))
    assert isinstance(scorer.score_row(q[8]), Score)
    batch = scorer.score_batch(q)
    assert list(np.flatnonzero(~batch.warm)) == [7, 9]
    assert np.isnan(batch.probability[[7, 9]]).all() and np.isnan(batch.members[[7, 9]]).all()
    assert not np.isnan(batch.probability[batch.warm]).any()
    ref = scorer.reference_predict(q)
    np.testing.assert_array_equal(ref.warm, batch.warm)
    np.testing.assert_allclose(batch.probability, ref.probability, rtol=0, atol=TOL, equal_nan=True)


def test_member_trained_on_other_columns_is_refused(fitted: dict[str, Any]) -> None:
    shuffled = NAMES[1:] + NAMES[:1]
    with pytest.raises(ValueError, match="other columns"):
        Scorer(_members(fitted), feature_names=shuffled)
    with pytest.raises(ValueError, match="expects 8 features"):
        Scorer(_members(fitted), feature_names=NAMES[:-1])


def test_bad_weights_and_inputs_are_refused(fitted: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="weights"):
        Scorer(_members(fitted), feature_names=NAMES, weights=[1, -1, 1])
    with pytest.raises(ValueError, match="weights"):
        Scorer(_members(fitted), feature_names=NAMES, weights=[1, 1])
    scorer = Scorer(_members(fitted)[:1], feature_names=NAMES)
    with pytest.raises(ValueError, match="8 features"):
        scorer.score_row(np.zeros(7))
    with pytest.raises(ValueError, match=r"\(n, 8\)"):
        scorer.score_batch(np.zeros((3, 9)))


def test_single_member_has_no_disagreement(fitted: dict[str, Any]) -> None:
    scorer = Scorer(_members(fitted)[:1], feature_names=NAMES)
    s = scorer.score_row(_queries(6)[0])
    assert isinstance(s, Score)
    assert s.disagreement == 0.0 and s.probability == s.uncalibrated == s.raw_members[0]


def test_odd_input_arrays_reuse_the_warm_compilation(fitted: dict[str, Any]) -> None:
    """A read-only, strided, float32 or Fortran-ordered input must not compile a new kernel on the
    hot path (a second or more): the scorer hands the kernel the type it warmed."""
    scorer = Scorer(_members(fitted), feature_names=NAMES, weights=WEIGHTS)
    before = (len(ensemble_row.signatures), len(ensemble_batch.signatures))
    q = _queries(7, 20)
    frozen = q[0].copy()
    frozen.setflags(write=False)
    want = scorer.score_batch(q)
    for row, i in ((frozen, 0), (np.asfortranarray(q)[1], 1), (q.T.copy().T[2], 2)):
        s = scorer.score_row(row)
        assert isinstance(s, Score) and s.probability == want.probability[i]
    assert isinstance(scorer.score_row(q[3].astype(np.float32)), Score)
    np.testing.assert_array_equal(scorer.score_batch(np.asfortranarray(q)).probability, want.probability)
    assert (len(ensemble_row.signatures), len(ensemble_batch.signatures)) == before
