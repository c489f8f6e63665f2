"""Online adaptation: the River model learns, the blend stays bounded, ADWIN catches a falling hit
rate (and only that), and a JSON snapshot restores the exact state."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pytest

from tradesignals.engine.lifecycle import Outcome, OutcomeKind
from tradesignals.models.online import DriftMonitor, DriftState, OnlineAdapter, won_from_outcome

NAMES = ("trend", "rsi", "noise")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _stream(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features on their own scales (the scaler must cope), a planted P(win), and the outcomes."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    x = np.column_stack([0.02 * z[:, 0], 50 + 15 * z[:, 1], 1000 * z[:, 2]])
    p = _sigmoid(1.5 * z[:, 0] - 1.0 * z[:, 1])
    won = rng.random(n) < p
    return x, p, won


def _auc(score: np.ndarray, label: np.ndarray) -> float:
    pos, neg = score[label], score[~label]
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def _log_loss(p: np.ndarray, won: np.ndarray) -> float:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return float(-np.mean(np.where(won, np.log(p), np.log(1 - p))))


def test_learns_a_planted_relationship_from_the_stream() -> None:
    x, _, won = _stream(0, 3000)
    ad = OnlineAdapter(NAMES)
    untrained = ad.predict_proba(x[0])
    for i, (row, w) in enumerate(zip(x, won, strict=True)):
        # Both input forms: vectors in feature order and name -> value mappings.
        ad.learn(row if i % 2 else dict(zip(NAMES, row, strict=True)), bool(w))
    assert untrained == 0.5
    assert ad.n_updates == 3000
    xt, pt, wt = _stream(1, 1500)
    pred = np.array([ad.predict_proba(r) for r in xt])
    assert _auc(pred, wt) > 0.75  # the true probability's AUC on this sample is about 0.79
    assert _log_loss(pred, wt) < _log_loss(np.full(len(wt), wt.mean()), wt) - 0.1
    assert np.corrcoef(pred, pt)[0, 1] > 0.95
    base = {"trend": 0.0, "rsi": 50.0, "noise": 0.0}
    assert (
        ad.predict_proba(base | {"trend": 0.04})
        > ad.predict_proba(base)
        > ad.predict_proba(base | {"rsi": 80})
    )


def test_non_finite_features_are_left_out_and_vectors_need_names() -> None:
    x, _, won = _stream(2, 300)
    ad = OnlineAdapter(NAMES)
    for row, w in zip(x, won, strict=True):
        ad.learn(row, bool(w))
    assert ad.predict_proba([0.01, math.nan, 5.0]) == ad.predict_proba({"trend": 0.01, "noise": 5.0})
    ad.learn([math.inf, 40.0, math.nan], True)  # must not poison the scaler's running statistics
    assert math.isfinite(ad.predict_proba(x[0]))
    with pytest.raises(TypeError, match="feature_names"):
        OnlineAdapter().predict_proba([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="expected 3 features"):
        ad.predict_proba([1.0, 2.0])


def test_blend_weight_ramps_and_the_shift_is_bounded_by_max_weight() -> None:
    rng = np.random.default_rng(3)
    ad = OnlineAdapter(NAMES, max_weight=0.2, full_weight_after=400, learning_rate=0.2)
    row = np.array([0.05, 50.0, 0.0])
    assert ad.weight == 0.0 and ad.blend(0.4, row) == 0.4  # a model that learned nothing has no say
    z = rng.normal(size=(800, 3))
    xs = np.column_stack([0.02 * z[:, 0], 50 + 15 * z[:, 1], z[:, 2]])
    for i, r in enumerate(xs):
        ad.learn(r, bool(r[0] > 0))  # deterministic label: the online model becomes very confident
        if i + 1 == 200:
            assert ad.weight == pytest.approx(0.1)
    assert ad.weight == pytest.approx(0.2)
    max_shift = 0.0
    for r, pb in zip(xs[:300], rng.uniform(0.01, 0.99, 300), strict=True):
        po = ad.predict_proba(r)
        p = ad.blend(float(pb), r)
        assert p == pytest.approx(0.8 * pb + 0.2 * po, abs=1e-12)
        assert abs(p - pb) <= 0.2 + 1e-12
        # Either way the outcome goes, the blend's log loss is within -ln(1 - 0.2) of the batch's.
        for won in (True, False):
            q, qb = (p, pb) if won else (1 - p, 1 - pb)
            assert -math.log(q) <= -math.log(qb) - math.log(0.8) + 1e-12
        max_shift = max(max_shift, abs(p - pb))
    assert max_shift > 0.15  # the bound is reached, not just respected by a timid model
    assert math.isnan(ad.blend(math.nan, row))


def test_gate_shuts_the_online_model_out_while_the_batch_model_is_better() -> None:
    rng = np.random.default_rng(4)
    n = 1500
    hidden = rng.normal(size=n)  # what the batch model knows and the online features do not
    p_batch = _sigmoid(2.0 * hidden)
    won = rng.random(n) < p_batch
    noise = rng.normal(size=(n, 3))
    ad = OnlineAdapter(NAMES, full_weight_after=100)
    for r, pb, w in zip(noise, p_batch, won, strict=True):
        ad.learn(r, bool(w), p_batch=float(pb))
    assert not ad.gate_open and ad.weight == 0.0
    assert ad.blend(0.3, noise[0]) == 0.3

    # A stale batch model (0.5 for everything) against informative features: the gate opens.
    x, _, won2 = _stream(5, 1500)
    ad2 = OnlineAdapter(NAMES, full_weight_after=100)
    for r, w in zip(x, won2, strict=True):
        ad2.learn(r, bool(w), p_batch=0.5)
    assert ad2.gate_open and ad2.weight == pytest.approx(ad2.max_weight)


def _hit_stream(seed: int, rates: list[tuple[float, int]]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.random(n) < rate for rate, n in rates])


def test_adwin_alarms_when_the_hit_rate_falls_from_60_to_30_percent() -> None:
    alarms: list[DriftState] = []
    mon = DriftMonitor(listeners=[alarms.append])
    won = _hit_stream(7, [(0.6, 1000), (0.3, 1000)])
    first: int | None = None
    for i, w in enumerate(won):
        st = mon.observe(0.6, bool(w))
        if st.drift and first is None:
            first = i
    assert first is not None and 1000 <= first < 1300  # ADWIN's typical delay here is ~100 outcomes
    a = alarms[0]
    assert a.drift and a.flagged and a.n_total == first + 1
    assert "hit_rate" in (a.source or "")
    assert a.hit_rate < 0.45 and a.expected_hit_rate == pytest.approx(0.6)
    assert mon.flagged  # outcomes never recovered
    reason = mon.flag_reason
    assert reason is not None and reason.startswith("drift_flag: live hit rate")
    payload = json.loads(json.dumps(a.alert_payload(), allow_nan=False))
    assert payload["kind"] == "model_drift" and payload["n"] == a.n


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_no_alarm_on_a_stationary_stream_of_the_same_length(seed: int) -> None:
    mon = DriftMonitor()
    states = [mon.observe(0.6, bool(w)) for w in _hit_stream(seed, [(0.6, 2000)])]
    assert not any(s.drift or s.changes for s in states)
    assert not mon.flagged and mon.flag_reason is None
    assert states[-1].n == 2000 and abs(states[-1].hit_rate - 0.6) < 0.03


def test_a_hit_rate_drop_the_confidence_predicted_is_not_an_alarm() -> None:
    """The engine starts emitting lower-confidence signals: the hit rate falls, calibration holds."""
    mon = DriftMonitor()
    rng = np.random.default_rng(10)
    p = np.r_[np.full(1000, 0.7), np.full(1000, 0.35)]
    states = [mon.observe(float(pi), bool(rng.random() < pi)) for pi in p]
    assert any("hit_rate_down" in s.changes for s in states)  # ADWIN does see the change
    assert not any(s.drift for s in states) and not mon.flagged


def test_the_flag_clears_once_outcomes_after_the_alarm_look_calibrated() -> None:
    mon = DriftMonitor(recovery_outcomes=50)
    won = _hit_stream(11, [(0.6, 1000), (0.3, 400)])
    alarm_at = next(i for i, w in enumerate(won) if mon.observe(0.6, bool(w)).drift)
    assert mon.flagged and alarm_at < 1400
    # Confidence recalibrated to the new reality (0.3 shown, 30 % hit): the flag clears after 50.
    rng = np.random.default_rng(12)
    flags = [mon.observe(0.3, bool(rng.random() < 0.3)).flagged for _ in range(200)]
    cleared = flags.index(False)
    assert 49 <= cleared < 200  # not before 50 post-alarm outcomes have been seen
    assert all(flags[:49]) and mon.flag_reason is None


def test_every_listener_is_called_even_if_one_fails() -> None:
    seen: list[DriftState] = []

    def broken(_: DriftState) -> None:
        raise RuntimeError("publisher down")

    mon = DriftMonitor(listeners=[broken, seen.append])

    def feed() -> None:
        for w in _hit_stream(7, [(0.6, 1000), (0.3, 1000)]):
            mon.observe(0.6, bool(w))

    with pytest.raises(RuntimeError, match="publisher down"):
        feed()
    assert len(seen) == 1 and seen[0].drift and mon.flagged


def test_snapshot_round_trip_continues_exactly() -> None:
    x, p, won = _stream(13, 1200)
    ad = OnlineAdapter(NAMES, full_weight_after=300, monitor=DriftMonitor(recovery_outcomes=30))
    shown = np.clip(p - 0.25, 0.01, 0.99)  # overconfident in reverse: enough to move ADWIN
    for r, pb, ps, w in zip(x[:700], p[:700], shown[:700], won[:700], strict=True):
        ad.learn(r, bool(w), p_batch=float(pb))
        ad.observe_outcome(float(ps), bool(w))
    text = ad.to_json()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    restored = OnlineAdapter.from_json(text)
    assert restored.to_json() == text
    assert restored.weight == ad.weight and restored.n_updates == 700
    for r, pb in zip(x[700:800], p[700:800], strict=True):
        assert restored.predict_proba(r) == ad.predict_proba(r)
        assert restored.blend(float(pb), r) == ad.blend(float(pb), r)
    # Learning and drift detection go on identically: model, optimizer, scaler and ADWIN state.
    for r, pb, ps, w in zip(x[700:], p[700:], 1.0 - shown[700:], won[700:], strict=True):
        for a in (ad, restored):
            a.learn(r, bool(w), p_batch=float(pb))
        assert restored.observe_outcome(float(ps), bool(w)) == ad.observe_outcome(float(ps), bool(w))
        assert restored.predict_proba(r) == ad.predict_proba(r)
    assert ad.monitor.n_alarms > 0  # the continued stream did exercise a detection
    assert restored.to_json() == ad.to_json()


def test_snapshot_rejects_foreign_or_corrupt_data() -> None:
    ad = OnlineAdapter(NAMES)
    ad.learn([0.01, 40.0, 3.0], True)
    ad.observe_outcome(0.6, True)
    snap = json.loads(ad.to_json())
    with pytest.raises(ValueError, match="format"):
        OnlineAdapter.from_snapshot(snap | {"format": "pickle"})
    bad = json.loads(ad.to_json())
    bad["drift"]["history"] = [[1.5, 1]]
    with pytest.raises(ValueError, match="bad outcome"):
        OnlineAdapter.from_snapshot(bad)


def _outcome(kind: OutcomeKind, net_r: float | None) -> Outcome:
    t = datetime(2024, 1, 2, tzinfo=UTC)
    filled = kind is not OutcomeKind.NOT_FILLED
    return Outcome(
        "s1", "AAPL", kind, 2 if kind is OutcomeKind.TARGET else None, t,
        t if filled else None, 100.0 if filled else None, None if filled else 120.0,
        101.0 if filled else None, 1.0 if filled else None, 0.1 if filled else None,
        0.9 if filled else None, 0.5 if filled else None, net_r, 2.0 if filled else None,
        -1.0 if filled else None, 3600.0, t,
    )  # fmt: skip


def test_won_is_the_rulebooks_win_net_r_above_zero_whatever_the_exit() -> None:
    assert won_from_outcome(_outcome(OutcomeKind.TARGET, 2.7))
    assert won_from_outcome(_outcome(OutcomeKind.EXPIRED, 0.3))  # expired in profit after costs: a win
    assert not won_from_outcome(_outcome(OutcomeKind.EXPIRED, -0.01))  # gross gain eaten by costs
    assert not won_from_outcome(_outcome(OutcomeKind.STOP, -1.1))
    assert not won_from_outcome(_outcome(OutcomeKind.EXPIRED, 0.0))  # flat is not a win
    assert not won_from_outcome(_outcome(OutcomeKind.NOT_FILLED, None))
