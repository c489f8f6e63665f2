"""The registered model as the engine's scorer: bar → features → calibrated probability → decision.

What the probability means is what the model was trained on (``models/dataset.py``): P(win) — net R
above zero at the plan's exit, filled at the next open, after costs — for a long signal decided at
the bar's close. The engine publishes it as the signal's confidence with the model's base rate (the
realised win rate of its training rows), and only when the confidence clears the base rate by
``min_edge`` probability points: a calibrated model of a hard market lives in a narrow band around
its base rate, so a floor in raw probability (0.55) would silence it entirely. The risk profiles
then filter further per user, on the same edge. The top contributions of the LightGBM member
become the signal's reasons, computed only for bars that do become signals (about 1–2 ms each).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from tradesignals.domain.market import Bar, Timeframe
from tradesignals.domain.outcomes import Outcome
from tradesignals.domain.signals import Direction
from tradesignals.domain.trade_plan import PlanParams
from tradesignals.engine import stage_metrics
from tradesignals.engine.placeholder_rule import Decision
from tradesignals.features.catalog import FeatureSetRef, check_compatible, get_feature_set
from tradesignals.features.incremental import FEATURE_NAMES, FeatureEngine
from tradesignals.marketdata.calendar import SessionCalendar
from tradesignals.models.contributions import ContributionExplainer
from tradesignals.models.inference import NotWarm
from tradesignals.models.online import DriftState, OnlineAdapter, won_from_outcome
from tradesignals.models.registry import LoadedModel

DIRECTION_FEATURE = "direction"


class ModelScorer:
    """Implements the engine's ``Scorer`` protocol with a registry model."""

    def __init__(
        self,
        loaded: LoadedModel,
        timeframe: Timeframe,
        *,
        calendar: SessionCalendar | Callable[[str], SessionCalendar] | None = None,
        min_edge: float = 0.0,
        explain_top: int = 3,
        online: bool = True,
    ) -> None:
        meta = loaded.metadata
        trained = FeatureSetRef.from_dict(meta.feature_set)
        # The live features must be the ones the model learned from: refuse a mismatch loudly.
        check_compatible(trained, get_feature_set(trained.name, trained.version))
        live_names = set(FEATURE_NAMES)
        names = loaded.scorer.feature_names
        unknown = [n for n in names if n not in live_names and n != DIRECTION_FEATURE]
        if unknown:
            raise ValueError(f"model {meta.name}:{meta.version} needs features the engine lacks: {unknown}")
        self.version = f"{meta.name}:{meta.version}"
        self.loaded = loaded
        self.min_edge = min_edge
        label = meta.metrics.get("training", {}).get("label", {})
        if "plan" not in label:
            raise ValueError(
                f"model {meta.name}:{meta.version} was labelled before the rulebook (no plan recorded); "
                "retrain it with `tradesignals train`"
            )
        # The plan its labels followed: the engine refuses the model if it trades another one.
        self.plan = PlanParams.from_dict(label["plan"])
        base = label.get("base_rate")
        self.base_rate: float | None = float(base) if isinstance(base, int | float) and 0 < base < 1 else None
        grid = label.get("confidence_quantiles") or []
        self._quantiles = np.asarray(grid, dtype=np.float64) if len(grid) >= 2 else None
        self.explain_top = explain_top
        self.feature_names = tuple(names)
        # Learns from resolved outcomes and watches the live hit rate for drift (models/online.py).
        self.adapter: OnlineAdapter | None = OnlineAdapter(self.feature_names) if online else None
        self.features = FeatureEngine(timeframe, calendar=calendar)
        index = {n: i for i, n in enumerate(FEATURE_NAMES)}
        self._take = np.array([index.get(n, 0) for n in names], dtype=np.int64)
        self._direction_slot = names.index(DIRECTION_FEATURE) if DIRECTION_FEATURE in names else -1
        self._atr = index["atr_14"]
        self._explainer: ContributionExplainer | None
        try:
            self._explainer = ContributionExplainer.from_scorer(loaded.scorer)
        except (ValueError, TypeError):
            self._explainer = None

    def forget(self, which: Callable[[str], bool]) -> None:
        """Drop the feature state of the symbols ``which`` selects (the online adapter is model-wide)."""
        self.features.forget(which)

    def on_bar(self, bar: Bar) -> Decision | None:
        t0 = time.perf_counter()
        vec = self.features.update(bar)
        t1 = time.perf_counter()
        stage_metrics.FEATURES.observe(t1 - t0)
        if not vec.warm:
            return None
        x = vec.values[self._take]
        if self._direction_slot >= 0:
            x[self._direction_slot] = 1.0  # long; see the module docstring
        score = self.loaded.scorer.score_row(x)
        if isinstance(score, NotWarm):
            return None
        p = float(score.probability)
        if self.adapter is not None:
            # Online adaptation nudges the batch probability by at most its max weight.
            p = self.adapter.blend(p, x)
        rank = self.confidence_rank(p)
        floor = (0.5 if self.base_rate is None else self.base_rate) + self.min_edge
        if not p >= floor:
            return None
        atr = float(vec.values[self._atr])
        if not atr > 0:
            return None
        base = "" if self.base_rate is None else f" vs a base rate of {self.base_rate:.0%}"
        reasons = (f"P(win after costs) {p:.0%}{base}; models disagree by {score.disagreement:.2f}",)
        explainer = self._explainer if self.explain_top > 0 else None
        if explainer is None:
            return Decision(
                Direction.LONG, round(p, 4), atr, reasons, features=x.copy(), confidence_rank=rank
            )
        row, k = x.copy(), self.explain_top
        return Decision(
            Direction.LONG,
            round(p, 4),
            atr,
            reasons,
            explain=lambda: tuple(explainer.explain(row, k=k).reasons()),
            features=row,
            confidence_rank=rank,
        )

    def rescore(self, symbol: str, direction: Direction) -> float | None:
        """P(win) of a signal in ``direction`` on ``symbol`` from its latest bar's features.

        The same computation as the confidence at decision (the batch ensemble, then the online
        blend), on the vector ``on_bar`` already computed for this bar: the engine re-scores open
        signals each bar (``signal:{id}:live``) without computing a feature twice. None while the
        features are cold, and for a short when the model was trained on longs only (it has no
        ``direction`` input, so it cannot speak for a short).
        """
        vec = self.features.latest(symbol)
        if vec is None or not vec.warm:
            return None
        x = vec.values[self._take]
        if self._direction_slot >= 0:
            x[self._direction_slot] = float(direction.sign)
        elif direction is not Direction.LONG:
            return None
        score = self.loaded.scorer.score_row(x)
        if isinstance(score, NotWarm):
            return None
        p = float(score.probability)
        if self.adapter is not None:
            p = self.adapter.blend(p, x)
        return round(p, 4)

    def confidence_rank(self, p: float) -> float | None:
        """Share of the model's out-of-fold confidences at or below ``p`` (None without its scale).

        Read off the 101 recorded quantiles by linear interpolation, so a confidence between two
        quantiles gets a rank between theirs; beyond the extremes, 0 and 1.
        """
        q = self._quantiles
        if q is None:
            return None
        steps = np.linspace(0.0, 1.0, len(q))
        i = int(np.searchsorted(q, p, side="right"))
        if i == 0:
            return 0.0
        if i >= len(q):
            return 1.0
        lo, hi = q[i - 1], q[i]
        frac = 0.0 if hi <= lo else (p - lo) / (hi - lo)
        return round(float(steps[i - 1] + frac * (steps[i] - steps[i - 1])), 4)

    def on_outcome(self, outcome: Outcome, p_at_signal: float, features: object) -> DriftState | None:
        """Feed a resolved signal back: the online model learns it, the drift monitor counts it."""
        if self.adapter is None:
            return None
        won = won_from_outcome(outcome)
        if features is not None:
            self.adapter.learn(features, won, p_batch=p_at_signal)  # type: ignore[arg-type]
        return self.adapter.observe_outcome(p_at_signal, won)

    @property
    def drift_flag(self) -> str | None:
        return self.adapter.drift_flag if self.adapter is not None else None
