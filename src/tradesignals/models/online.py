"""Online adaptation: a River model that learns from resolved outcomes, and drift detection on them.

The batch ensemble (`models.inference.Scorer`) is retrained offline; between retrains the market
moves. This module gives the engine two things that only need the outcomes it already sees:

**A bounded online correction** (`OnlineAdapter`). A River ``StandardScaler`` → ``LogisticRegression``
(plain SGD, small L2) learns ``P(win | features)`` one resolved signal at a time. Its probability is
blended into the batch model's::

    p = (1 - w) · p_batch + w · p_online
    w = max_weight · min(1, n_updates / full_weight_after) · gate

Why it cannot make confidence much worse than the batch model, whatever the online model says:

* ``|p - p_batch| = w · |p_online - p_batch| ≤ max_weight`` (default 0.2): it can only nudge.
* ``p ≥ (1 - w) · p_batch`` and ``1 - p ≥ (1 - w) · (1 - p_batch)``, so on every signal, win or lose,
  the blend's log loss exceeds the batch model's by at most ``-ln(1 - max_weight)`` (0.22 nats at
  0.2), and by convexity its Brier score by at most ``w · (brier_online - brier_batch) ≤ max_weight``.
* The ramp keeps a young model (that starts at 0.5 for everything) near weight 0.
* ``gate``: when `OnlineAdapter.learn` is given the batch probability of the outcome it learns,
  both models are scored *prequentially* (before learning that outcome) with an exponentially
  weighted log loss; once ``min_evidence`` such comparisons exist, the gate is 1 only while the
  online model's loss is no worse than the batch model's, else 0. So the correction is applied when
  it has been helping on recent live outcomes, which is when the batch model has gone stale.

**Drift detection** (`DriftMonitor`), with River's ADWIN on two streams of resolved outcomes:

* the live hit rate, ``won`` in {0, 1};
* the calibration residual, ``(won - p + 1) / 2`` with ``p`` the confidence shown at the signal.
  We use the *signed* residual rather than ``|p - won|``: its mean is 0.5 exactly when confidence is
  calibrated, whatever the mix of probabilities, whereas the mean of ``|p - won|`` also moves when the
  model merely gets sharper (more 0.8s, fewer 0.55s) — a change users should not be alerted about.

A change ADWIN finds in the harmful direction (fewer wins; wins falling further short of the
confidence shown) *arms* the monitor; it raises an alarm if, within the next ``recovery_outcomes``
outcomes (default 50, the detection included), the last ``recovery_outcomes`` outcomes are
overconfident: mean confidence above hit rate by more than ``alarm_z`` (3) binomial standard errors,
``z · sqrt(p̄(1-p̄)/n)``, and at least ``min_tolerance``. Why the confirmation: ADWIN only says the
stream changed, and a hit rate that falls because the engine now emits lower-confidence signals is not
model drift. Why a window of recent outcomes rather than ADWIN's own: River's ADWIN drops only the
oldest buckets at a detection, so its remaining window still holds mostly pre-change outcomes. On an
alarm, `DriftMonitor` calls its listeners (the engine publishes on ``system:alerts`` and marks new
signals with `DriftMonitor.flag_reason`); the flag stays up until, at least ``recovery_outcomes``
outcomes after the alarm, the last ``recovery_outcomes`` look calibrated again: hit rate within
``recovery_z`` (2) standard errors of the mean confidence, either side.

Settings (``delta=0.002``, ``clock=1``, the rest above) were chosen on simulated streams, 100 seeds
each: no alarm on a stationary Bernoulli(0.6) stream of 2,000 outcomes (nor any ADWIN detection on
50 of 10,000); a drop from 0.6 to 0.3 raises the alarm after a median of ~90 outcomes (all 100),
0.6 to 0.45 after ~330 (all 100); a calibrated shift of the confidence mix (0.7 → 0.35, hit rate
following) alarms on 3 of 100 — the residual risk of the confirmation test. ``clock=1`` (test on
every outcome) costs little because outcomes are rare, and shortens the delay against the default 32.
River's ADWIN discards its whole window at the update after a detection; we replace the detector at
the detection instead, which is the same state, one call earlier.

Snapshots are JSON (`OnlineAdapter.to_json` / `from_json`), never pickle, so a snapshot can be
read without trusting its author: the scaler's running statistics, the regression's weights,
intercept and optimizer step count, the blend's counters, and for each ADWIN the outcomes it has
seen since its last reset, replayed into a fresh detector on restore. ADWIN's window only ever
shrinks at a detection (after which we reset it), so the replay rebuilds exactly the same detector
— provided those outcomes fit in ``max_history`` (default 10,000); beyond it the restored detector
remembers only the last ``max_history`` outcomes: less evidence, so a later detection, not a false one.
Restoring reads River's internal attributes (``_weights``, ``optimizer.n_iterations``, the scaler's
``counts/means/vars``) of River 0.26; a River upgrade that changes them fails the round-trip test.

No I/O, no clock, no threads: the caller (one adapter per engine process) serialises calls and
persists `OnlineAdapter.to_json` where it keeps its state (under ``TS_HOME``).
"""

from __future__ import annotations

import importlib.metadata
import itertools
import json
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from river import drift, linear_model, optim, preprocessing, utils

__all__ = [
    "DriftListener",
    "DriftMonitor",
    "DriftState",
    "Features",
    "OnlineAdapter",
    "won_from_outcome",
]

SNAPSHOT_FORMAT = "tradesignals.online/1"

# River's estimators are untyped; held as Any, calls into them are not "untyped calls" to mypy.
_ADWIN: Any = drift.ADWIN
_StandardScaler: Any = preprocessing.StandardScaler
_LogisticRegression: Any = linear_model.LogisticRegression
_VectorDict: Any = utils.VectorDict

_PROB_EPS = 1e-6  # log loss clip: one confident miss must not dominate the gate's average

Features = Mapping[str, float] | Sequence[float] | NDArray[np.float64]


# --------------------------------------------------------------------------------------------------
# Drift detection.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DriftState:
    """Where the live outcomes stand after one more resolved signal.

    ``hit_rate`` and ``expected_hit_rate`` (mean confidence shown) are over the hit-rate detector's
    window of ``n`` outcomes (everything since its last detection; NaN right after one) — except on
    an alarm, where they are over the last ``recovery_outcomes`` outcomes that confirmed it: the
    figures that show what went wrong, and what the alert and the flag reason quote.
    """

    drift: bool  # this outcome raised an alarm (listeners were called)
    hit_rate: float
    expected_hit_rate: float
    n: int
    flagged: bool  # new signals should carry the drift flag
    source: str | None = None  # on an alarm: "hit_rate", "calibration" or "hit_rate+calibration"
    changes: tuple[str, ...] = ()  # every change ADWIN found on this outcome, alarm or not
    n_total: int = 0  # outcomes observed since the monitor was created

    def alert_payload(self) -> dict[str, Any]:
        """The ``data`` of the ``system:alerts`` message: public, so numbers only, no signal ids."""
        return {
            "kind": "model_drift",
            "source": self.source,
            "hit_rate": _json_float(self.hit_rate),
            "expected_hit_rate": _json_float(self.expected_hit_rate),
            "n": self.n,
            "message": _describe(self.hit_rate, self.expected_hit_rate, self.n),
        }


DriftListener = Callable[[DriftState], None]


def _describe(hit_rate: float, expected: float, n: int) -> str:
    return (
        f"live hit rate {hit_rate:.0%} over the last {n} resolved signals vs {expected:.0%} expected; "
        "confidence may be overstated until outcomes look calibrated again"
    )


class DriftMonitor:
    """ADWIN on the live hit rate and on the calibration residual, with an alarm flag that clears
    once outcomes look calibrated again. See the module docstring for the rules."""

    def __init__(
        self,
        *,
        delta: float = 0.002,
        clock: int = 1,
        grace_period: int = 10,
        min_window_length: int = 5,
        recovery_outcomes: int = 50,
        alarm_z: float = 3.0,
        recovery_z: float = 2.0,
        min_tolerance: float = 0.05,
        max_history: int = 10_000,
        listeners: Iterable[DriftListener] = (),
    ) -> None:
        if not 0.0 < delta < 1.0:
            raise ValueError(f"delta must be in (0, 1), got {delta}")
        if recovery_outcomes < 1 or max_history < recovery_outcomes or clock < 1:
            raise ValueError(
                "recovery_outcomes and clock must be at least 1, max_history ≥ recovery_outcomes"
            )
        if alarm_z < 0 or recovery_z < 0 or min_tolerance < 0:
            raise ValueError("alarm_z, recovery_z and min_tolerance must be non-negative")
        self.delta = delta
        self.clock = clock
        self.grace_period = grace_period
        self.min_window_length = min_window_length
        self.recovery_outcomes = recovery_outcomes
        self.alarm_z = alarm_z
        self.recovery_z = recovery_z
        self.min_tolerance = min_tolerance
        self.max_history = max_history
        self._listeners: list[DriftListener] = list(listeners)
        self._hit = self._adwin()
        self._cal = self._adwin()
        # (p, won) of recent outcomes: the calibration checks' window, and what the detectors replay
        # on restore.
        self._history: deque[tuple[float, bool]] = deque(maxlen=max_history)
        self._since_reset = [0, 0]  # outcomes fed to the hit-rate / calibration detector since reset
        self._hit_sum_p = 0.0  # sum of p over the hit-rate detector's window (no cut without reset)
        self._armed = 0  # outcomes left in which a harmful change may still be confirmed
        self._armed_by: list[str] = []  # the detectors that armed it
        self._since_alarm = 0
        self.flagged = False
        self.n_total = 0
        self.n_alarms = 0
        self._alarm: DriftState | None = None

    def _adwin(self) -> Any:
        return _ADWIN(
            delta=self.delta,
            clock=self.clock,
            grace_period=self.grace_period,
            min_window_length=self.min_window_length,
        )

    def add_listener(self, listener: DriftListener) -> None:
        """Called with the `DriftState` of every alarm, after the monitor's state is updated."""
        self._listeners.append(listener)

    @property
    def flag_reason(self) -> str | None:
        """The ``drift_flag`` reason for new signals while flagged (for ``Signal.reasons``), else None."""
        if not self.flagged or self._alarm is None:
            return None
        a = self._alarm
        return "drift_flag: " + _describe(a.hit_rate, a.expected_hit_rate, a.n)

    def tolerance(self, p_mean: float, n: int, z: float) -> float:
        """How far a window's hit rate may sit from its mean confidence by chance: ``z`` binomial
        standard errors, at least ``min_tolerance`` so that a long window does not count a one-point
        miss as miscalibration."""
        if n <= 0:
            return math.inf
        return max(self.min_tolerance, z * math.sqrt(max(p_mean * (1.0 - p_mean), 0.0) / n))

    def recent(self) -> tuple[float, float, int]:
        """(hit rate, mean confidence, n) over the last ``recovery_outcomes`` outcomes."""
        n = min(self.recovery_outcomes, len(self._history))
        return _stats(itertools.islice(self._history, len(self._history) - n, None))

    def observe(self, p: float, won: bool) -> DriftState:
        """Feed one resolved signal: ``p`` the confidence it was shown with, ``won`` its label."""
        if not (math.isfinite(p) and 0.0 <= p <= 1.0):
            raise ValueError(f"p must be a probability, got {p}")
        won = bool(won)
        self.n_total += 1
        self._history.append((p, won))
        if self.flagged:
            self._since_alarm += 1

        changes: list[str] = []
        for k, (name, value) in enumerate((("hit_rate", float(won)), ("calibration", (won - p + 1.0) / 2.0))):
            det = self._hit if k == 0 else self._cal
            before_total, before_width = float(det.total), float(det.width)
            det.update(value)
            self._since_reset[k] += 1
            if k == 0:
                self._hit_sum_p += p
            if not det.drift_detected:
                continue
            # ADWIN dropped its oldest part; compare it with what remains to tell the direction.
            width, total = float(det.width), float(det.total)
            dropped = before_width + 1.0 - width
            down = dropped > 0 and width > 0 and total / width < (before_total + value - total) / dropped
            changes.append(f"{name}_{'down' if down else 'up'}")
            if down:  # fewer wins, or wins falling further short of the confidence shown
                self._armed = self.recovery_outcomes
                if name not in self._armed_by:
                    self._armed_by.append(name)
            self._reset_detector(k)

        alarm = False
        hr, exp, n = self.recent()
        if self._armed > 0:
            if exp - hr > self.tolerance(exp, n, self.alarm_z):
                alarm = True
            else:
                self._armed -= 1
                if self._armed == 0:
                    self._armed_by.clear()
        source = "+".join(self._armed_by) if alarm else None
        if alarm:
            self.flagged = True
            self._since_alarm = 0
            self._armed = 0
            self._armed_by.clear()
            self.n_alarms += 1
        elif (
            self.flagged
            and self._since_alarm >= self.recovery_outcomes
            and abs(hr - exp) <= self.tolerance(exp, n, self.recovery_z)
        ):
            self.flagged = False

        if not alarm:
            n = self._since_reset[0]
            hr = float(self._hit.estimation) if n else math.nan
            exp = self._hit_sum_p / n if n else math.nan
        state = DriftState(
            drift=alarm,
            hit_rate=hr,
            expected_hit_rate=exp,
            n=n,
            flagged=self.flagged,
            source=source,
            changes=tuple(changes),
            n_total=self.n_total,
        )
        if alarm:
            self._alarm = state
            self._notify(state)
        return state

    def _reset_detector(self, k: int) -> None:
        """River's ADWIN would discard its window at the next update anyway; do it now, so that the
        detector's state is always "everything since `_since_reset` outcomes ago" (see snapshots)."""
        if k == 0:
            self._hit = self._adwin()
            self._hit_sum_p = 0.0
        else:
            self._cal = self._adwin()
        self._since_reset[k] = 0

    def _notify(self, state: DriftState) -> None:
        """Call every listener even if one fails (an alert must not be lost to a broken flagger), then
        raise what failed."""
        errors: list[Exception] = []
        for listener in self._listeners:
            try:
                listener(state)
            except Exception as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ExceptionGroup("drift listeners failed", errors)

    # Snapshot -----------------------------------------------------------------------------------

    def to_snapshot(self) -> dict[str, Any]:
        """JSON-ready state. Listeners are code, not state: the restorer attaches them again."""
        keep = min(max(*self._since_reset, self.recovery_outcomes), len(self._history))
        history = itertools.islice(self._history, len(self._history) - keep, None)
        return {
            "config": {
                "delta": self.delta,
                "clock": self.clock,
                "grace_period": self.grace_period,
                "min_window_length": self.min_window_length,
                "recovery_outcomes": self.recovery_outcomes,
                "alarm_z": self.alarm_z,
                "recovery_z": self.recovery_z,
                "min_tolerance": self.min_tolerance,
                "max_history": self.max_history,
            },
            "history": [[p, int(w)] for p, w in history],
            "since_reset": list(self._since_reset),
            "armed": self._armed,
            "armed_by": list(self._armed_by),
            "since_alarm": self._since_alarm,
            "flagged": self.flagged,
            "n_total": self.n_total,
            "n_alarms": self.n_alarms,
            "alarm": None if self._alarm is None else _state_to_json(self._alarm),
        }

    @classmethod
    def from_snapshot(
        cls, snap: Mapping[str, Any], *, listeners: Iterable[DriftListener] = ()
    ) -> DriftMonitor:
        cfg = snap["config"]
        mon = cls(
            delta=float(cfg["delta"]),
            clock=int(cfg["clock"]),
            grace_period=int(cfg["grace_period"]),
            min_window_length=int(cfg["min_window_length"]),
            recovery_outcomes=int(cfg["recovery_outcomes"]),
            alarm_z=float(cfg["alarm_z"]),
            recovery_z=float(cfg["recovery_z"]),
            min_tolerance=float(cfg["min_tolerance"]),
            max_history=int(cfg["max_history"]),
            listeners=listeners,
        )
        history = [_pair(item) for item in snap["history"]]
        since = [int(v) for v in snap["since_reset"]]
        if len(since) != 2 or min(since) < 0:
            raise ValueError("drift snapshot: since_reset must be two non-negative counts")
        mon._history.extend(history)
        for k, count in enumerate(since):
            tail = history[len(history) - min(count, len(history)) :]
            for p, won in tail:
                if k == 0:
                    mon._hit.update(float(won))
                    mon._hit_sum_p += p
                else:
                    mon._cal.update((won - p + 1.0) / 2.0)
            mon._since_reset[k] = len(tail)
        mon._armed = int(snap["armed"])
        mon._armed_by = [str(s) for s in snap["armed_by"]]
        mon._since_alarm = int(snap["since_alarm"])
        mon.flagged = bool(snap["flagged"])
        mon.n_total = int(snap["n_total"])
        mon.n_alarms = int(snap["n_alarms"])
        mon._alarm = None if snap["alarm"] is None else _state_from_json(snap["alarm"])
        return mon


def _stats(pairs: Iterable[tuple[float, bool]]) -> tuple[float, float, int]:
    n = 0
    wins = 0
    p_sum = 0.0
    for p, won in pairs:
        n += 1
        wins += won
        p_sum += p
    if n == 0:
        return math.nan, math.nan, 0
    return wins / n, p_sum / n, n


def _pair(item: Any) -> tuple[float, bool]:
    p, won = item
    p = float(p)
    if not (math.isfinite(p) and 0.0 <= p <= 1.0) or won not in (0, 1):
        raise ValueError(f"drift snapshot: bad outcome {item!r}")
    return p, bool(won)


def _json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _state_to_json(s: DriftState) -> dict[str, Any]:
    d = asdict(s)
    d["hit_rate"] = _json_float(s.hit_rate)
    d["expected_hit_rate"] = _json_float(s.expected_hit_rate)
    d["changes"] = list(s.changes)
    return d


def _state_from_json(d: Mapping[str, Any]) -> DriftState:
    def num(v: Any) -> float:
        return math.nan if v is None else float(v)

    return DriftState(
        drift=bool(d["drift"]),
        hit_rate=num(d["hit_rate"]),
        expected_hit_rate=num(d["expected_hit_rate"]),
        n=int(d["n"]),
        flagged=bool(d["flagged"]),
        source=None if d["source"] is None else str(d["source"]),
        changes=tuple(str(c) for c in d["changes"]),
        n_total=int(d["n_total"]),
    )


# --------------------------------------------------------------------------------------------------
# The online model and the blend.
# --------------------------------------------------------------------------------------------------


@dataclass
class _Gate:
    """Exponentially weighted prequential log loss of both models (see the module docstring)."""

    halflife: float
    n: int = 0
    online: float = math.nan
    batch: float = math.nan
    _alpha: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._alpha = 1.0 - 0.5 ** (1.0 / self.halflife)

    def update(self, p_online: float, p_batch: float, won: bool) -> None:
        lo, lb = _log_loss(p_online, won), _log_loss(p_batch, won)
        if self.n == 0:
            self.online, self.batch = lo, lb
        else:
            self.online += self._alpha * (lo - self.online)
            self.batch += self._alpha * (lb - self.batch)
        self.n += 1


def _log_loss(p: float, won: bool) -> float:
    q = min(max(p, _PROB_EPS), 1.0 - _PROB_EPS)
    return -math.log(q if won else 1.0 - q)


class OnlineAdapter:
    """The online model, its bounded blend with the batch probability, and a `DriftMonitor`.

    Features come as a mapping ``name -> value`` or, when ``feature_names`` is given (the scorer's),
    as a vector in that order. Non-finite values are left out of the example: River's linear model
    then gives that feature no say (as a mean imputation would after standardising), and its scaler's
    running statistics stay finite.
    """

    def __init__(
        self,
        feature_names: Sequence[str] | None = None,
        *,
        learning_rate: float = 0.02,
        l2: float = 1e-4,
        max_weight: float = 0.2,
        full_weight_after: int = 500,
        gate_halflife: float = 200.0,
        min_evidence: int = 50,
        monitor: DriftMonitor | None = None,
    ) -> None:
        if not 0.0 <= max_weight < 1.0:
            raise ValueError(f"max_weight must be in [0, 1), got {max_weight}")
        if full_weight_after < 1 or gate_halflife <= 0 or min_evidence < 0 or learning_rate <= 0:
            raise ValueError(
                "full_weight_after, gate_halflife and learning_rate must be positive, min_evidence ≥ 0"
            )
        self.feature_names: tuple[str, ...] | None = None if feature_names is None else tuple(feature_names)
        self.learning_rate = learning_rate
        self.l2 = l2
        self.max_weight = max_weight
        self.full_weight_after = full_weight_after
        self.min_evidence = min_evidence
        self.monitor = monitor if monitor is not None else DriftMonitor()
        self._scaler: Any = _StandardScaler()
        self._model: Any = self._new_model()
        self._gate = _Gate(gate_halflife)
        self.n_updates = 0

    def _new_model(self) -> Any:
        return _LogisticRegression(
            optimizer=optim.SGD(self.learning_rate), l2=self.l2, intercept_lr=self.learning_rate
        )

    # Features -----------------------------------------------------------------------------------

    def _as_dict(self, features: Features) -> dict[str, float]:
        if isinstance(features, Mapping):
            return {str(k): float(v) for k, v in features.items() if math.isfinite(v)}
        if self.feature_names is None:
            raise TypeError("a feature vector needs feature_names (pass them to OnlineAdapter)")
        values = np.asarray(features, dtype=np.float64).reshape(-1)
        if values.shape[0] != len(self.feature_names):
            raise ValueError(f"expected {len(self.feature_names)} features, got {values.shape[0]}")
        return {n: v for n, v in zip(self.feature_names, values.tolist(), strict=True) if math.isfinite(v)}

    # Learning and prediction --------------------------------------------------------------------

    def predict_proba(self, features: Features) -> float:
        """The online model's ``P(win)`` alone (0.5 before it has learned anything)."""
        return self._predict(self._as_dict(features))

    def _predict(self, x: dict[str, float]) -> float:
        proba = self._model.predict_proba_one(self._scaler.transform_one(x))
        return float(proba[True])

    def learn(self, features: Features, won: bool, *, p_batch: float | None = None) -> None:
        """Learn one resolved signal: the features it was scored on and whether it won (see
        `won_from_outcome`). Pass ``p_batch``, the batch probability it was scored with, so the gate
        can compare the two models on it before the online model sees the answer."""
        x = self._as_dict(features)
        if p_batch is not None and math.isfinite(p_batch):
            self._gate.update(self._predict(x), p_batch, bool(won))
        self._scaler.learn_one(x)
        self._model.learn_one(self._scaler.transform_one(x), bool(won))
        self.n_updates += 1

    @property
    def gate_open(self) -> bool:
        """True until ``min_evidence`` comparisons exist, then while online loss ≤ batch loss."""
        g = self._gate
        return g.n < self.min_evidence or g.online <= g.batch

    @property
    def weight(self) -> float:
        """The online model's weight in the blend now (0 … ``max_weight``)."""
        if not self.gate_open:
            return 0.0
        return self.max_weight * min(1.0, self.n_updates / self.full_weight_after)

    def blend(self, p_batch: float, features: Features) -> float:
        """The probability to show: the batch probability nudged toward the online model's by at
        most ``max_weight``. NaN in, NaN out — a row the batch model did not score stays unscored."""
        if not math.isfinite(p_batch):
            return p_batch
        w = self.weight
        if w == 0.0:
            return p_batch
        p_online = self.predict_proba(features)
        if not math.isfinite(p_online):
            return p_batch
        return (1.0 - w) * p_batch + w * p_online

    # Drift --------------------------------------------------------------------------------------

    def observe_outcome(self, p_at_signal: float, won: bool) -> DriftState:
        """Feed the drift monitor: ``p_at_signal`` is the confidence the signal was shown with."""
        return self.monitor.observe(p_at_signal, won)

    def add_drift_listener(self, listener: DriftListener) -> None:
        self.monitor.add_listener(listener)

    @property
    def drift_flag(self) -> str | None:
        """The reason string to add to new signals while drift is flagged, else None."""
        return self.monitor.flag_reason

    # Snapshot -----------------------------------------------------------------------------------

    def to_snapshot(self) -> dict[str, Any]:
        """Everything needed to continue exactly where we are, as JSON-ready data."""
        m = self._model
        s = self._scaler
        return {
            "format": SNAPSHOT_FORMAT,
            "river": _river_version(),
            "config": {
                "feature_names": None if self.feature_names is None else list(self.feature_names),
                "learning_rate": self.learning_rate,
                "l2": self.l2,
                "max_weight": self.max_weight,
                "full_weight_after": self.full_weight_after,
                "gate_halflife": self._gate.halflife,
                "min_evidence": self.min_evidence,
            },
            "n_updates": self.n_updates,
            "scaler": {"counts": dict(s.counts), "means": dict(s.means), "vars": dict(s.vars)},
            "model": {
                "weights": m.weights,
                "intercept": float(m.intercept),
                "n_iterations": int(m.optimizer.n_iterations),
            },
            "gate": {
                "n": self._gate.n,
                "online": _json_float(self._gate.online),
                "batch": _json_float(self._gate.batch),
            },
            "drift": self.monitor.to_snapshot(),
        }

    @classmethod
    def from_snapshot(
        cls, snap: Mapping[str, Any], *, listeners: Iterable[DriftListener] = ()
    ) -> OnlineAdapter:
        if snap.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"not an online-adapter snapshot (format {snap.get('format')!r})")
        cfg = snap["config"]
        names = cfg["feature_names"]
        adapter = cls(
            None if names is None else [str(n) for n in names],
            learning_rate=float(cfg["learning_rate"]),
            l2=float(cfg["l2"]),
            max_weight=float(cfg["max_weight"]),
            full_weight_after=int(cfg["full_weight_after"]),
            gate_halflife=float(cfg["gate_halflife"]),
            min_evidence=int(cfg["min_evidence"]),
            monitor=DriftMonitor.from_snapshot(snap["drift"], listeners=listeners),
        )
        adapter.n_updates = int(snap["n_updates"])
        sc = snap["scaler"]
        adapter._scaler = _StandardScaler._from_state(
            counts={str(k): int(v) for k, v in sc["counts"].items()},
            means=_floats(sc["means"]),
            vars=_floats(sc["vars"]),
        )
        md = snap["model"]
        model = adapter._new_model()
        model._weights = _VectorDict(_floats(md["weights"]))
        model.intercept = float(md["intercept"])
        model.optimizer.n_iterations = int(md["n_iterations"])
        adapter._model = model
        g = snap["gate"]
        adapter._gate.n = int(g["n"])
        adapter._gate.online = math.nan if g["online"] is None else float(g["online"])
        adapter._gate.batch = math.nan if g["batch"] is None else float(g["batch"])
        return adapter

    def to_json(self) -> str:
        """Strict JSON (no NaN tokens); floats round-trip exactly, so predictions do too."""
        return json.dumps(self.to_snapshot(), allow_nan=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes, *, listeners: Iterable[DriftListener] = ()) -> OnlineAdapter:
        return cls.from_snapshot(json.loads(text), listeners=listeners)


def _floats(d: Mapping[str, Any]) -> dict[str, float]:
    out = {str(k): float(v) for k, v in d.items()}
    if not all(math.isfinite(v) for v in out.values()):
        raise ValueError("online snapshot: non-finite model state")
    return out


def _river_version() -> str:
    return importlib.metadata.version("river")


# --------------------------------------------------------------------------------------------------
# Outcome → label.
# --------------------------------------------------------------------------------------------------


class _HasWin(Protocol):
    @property
    def win(self) -> bool: ...


def won_from_outcome(outcome: _HasWin) -> bool:
    """The training label of a closed signal (``domain.outcomes.Outcome``): the rulebook's one win
    event (``domain.exits.is_win``: net R > 0 at the plan's exit), exactly what ``models.labels``
    computes, so the online model and the drift monitor count what the batch model was trained on.
    """
    return bool(outcome.win)
