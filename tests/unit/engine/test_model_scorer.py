"""The engine scoring with a registry model: features → calibrated probability → long decision."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from tradesignals.domain.market import Bar, Timeframe
from tradesignals.domain.signals import Direction
from tradesignals.engine.model_scorer import ModelScorer
from tradesignals.features.catalog import CORE_V2, FeatureSetMismatch
from tradesignals.features.incremental import FEATURE_NAMES, FeatureEngine
from tradesignals.models.inference import Scorer, TreeMember
from tradesignals.models.labels import LabelSpec
from tradesignals.models.registry import ModelRegistry

NAMES = ("rsi_14", "ret_5", "ret_20", "bb_pctb")


def bars(n: int = 120) -> list[Bar]:
    rng = np.random.default_rng(4)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.015, n)))
    day = Timeframe.D1.ns
    return [
        Bar("X", Timeframe.D1, i * day, float(c), float(c * 1.01), float(c * 0.99), float(c), 1e5)
        for i, c in enumerate(close)
    ]


def registry_with_model(tmp_path: Path, feature_set: dict[str, object]) -> ModelRegistry:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, len(NAMES))) * [15, 0.05, 0.1, 0.4] + [50, 0, 0, 0.5]
    y = (x[:, 0] < 50).astype(float)  # "oversold wins": a planted, learnable rule
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 7, "verbose": -1, "num_threads": 1},
        lgb.Dataset(x, y, feature_name=list(NAMES)),
        num_boost_round=20,
    )
    scorer = Scorer([TreeMember.from_lightgbm(booster)], feature_names=NAMES)
    reg = ModelRegistry(tmp_path / "models")
    reg.save(
        "swing",
        scorer,
        feature_set=feature_set,
        training_range=("2020-01-01", "2020-12-31"),
        symbols=["X"],
        signal_type="swing",
        metrics={"training": {"label": {**LabelSpec().as_dict(), "base_rate": 0.4}}},
    )
    return reg


def test_scores_warm_bars_and_explains_the_signal(tmp_path: Path) -> None:
    reg = registry_with_model(tmp_path, CORE_V2.ref.to_dict())
    loaded = reg.load("swing")
    ms = ModelScorer(loaded, Timeframe.D1, min_edge=-1.0)
    ref = FeatureEngine(Timeframe.D1)
    decisions = []
    for b in bars():
        vec = ref.update(b)
        d = ms.on_bar(b)
        if not vec.warm:
            assert d is None
            continue
        assert d is not None and d.direction is Direction.LONG
        x = vec.values[[FEATURE_NAMES.index(n) for n in NAMES]]
        expected = loaded.scorer.reference_predict(x[None, :]).probability[0]
        assert d.confidence == pytest.approx(expected, abs=1e-4)
        assert d.atr == pytest.approx(vec["atr_14"])
        decisions.append(d)
    assert decisions, "warm bars must be scored"
    assert ms.version.startswith("swing:")
    assert "P(win after costs)" in decisions[-1].reasons[0] and "base rate of 40%" in decisions[-1].reasons[0]
    explain = decisions[-1].explain
    assert explain is not None, "contributions are offered, computed only when a signal is made"
    assert any("rsi_14" in r for r in explain())


def test_min_edge_filters_and_a_feature_set_mismatch_is_refused(tmp_path: Path) -> None:
    reg = registry_with_model(tmp_path, CORE_V2.ref.to_dict())
    strict = ModelScorer(reg.load("swing"), Timeframe.D1, min_edge=1.0)
    assert all(strict.on_bar(b) is None for b in bars())
    wrong = dict(CORE_V2.ref.to_dict(), fingerprint="0" * 64)
    other = registry_with_model(tmp_path / "other", wrong)
    with pytest.raises(FeatureSetMismatch, match="model trained on core v2 \\(0000000000000000\\)"):
        ModelScorer(other.load("swing"), Timeframe.D1)


def test_outcomes_feed_the_online_adapter() -> None:
    import tempfile

    from tradesignals.domain.trade_plan import PlanParams
    from tradesignals.engine.pipeline import SignalEngine

    with tempfile.TemporaryDirectory() as tmp:
        reg = registry_with_model(Path(tmp), CORE_V2.ref.to_dict())
        ms = ModelScorer(reg.load("swing"), Timeframe.D1, min_edge=-1.0)
        engine = SignalEngine(ms, plan=PlanParams(cooldown_bars=0))
        closed = 0
        for b in bars(200):
            engine.on_bar(b)
            # Every filled outcome teaches the online model; a signal never filled was no trade.
            closed += sum(o.filled for o in engine.drain_outcomes())
        assert closed > 0
        assert ms.adapter is not None and ms.adapter.n_updates == closed
        # Too few outcomes for the drift monitor to confirm anything: no alert, no flag on signals.
        assert engine.drain_alerts() == []
        assert ms.drift_flag is None


def test_rescore_is_the_confidence_of_this_bar_and_refuses_shorts_for_a_long_only_model(
    tmp_path: Path,
) -> None:
    reg = registry_with_model(tmp_path, CORE_V2.ref.to_dict())
    ms = ModelScorer(reg.load("swing"), Timeframe.D1, min_edge=-1.0)
    assert ms.rescore("X", Direction.LONG) is None  # no bar yet
    seen = 0
    for bar in bars():
        d = ms.on_bar(bar)
        again = ms.rescore("X", Direction.LONG)
        if d is None:
            assert again is None  # still warming up
            continue
        assert again == d.confidence
        assert ms.rescore("X", Direction.SHORT) is None  # trained on longs only: no direction input
        seen += 1
    assert seen > 0
    assert ms.rescore("OTHER", Direction.LONG) is None
