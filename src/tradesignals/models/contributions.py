"""Why a signal scored what it did: the top SHAP contributions of the ensemble's LightGBM member.

Computed once per signal, when it is created (not per bar), and stored with it: the numbers for the
explanations later, and short reason strings for ``Signal.reasons`` now.

**Engine: LightGBM's own ``predict(..., pred_contrib=True)``** — exact path-dependent TreeSHAP in
LightGBM's C++, on the model's own split and missing-value rules. ``bench/contributions.py``, one row
of a 300-tree × 31-leaf, 30-feature model, one thread, 2 shared cores (p50 / p99):

* ``pred_contrib``: 1.6 ms / 2–3 ms (the same through `ContributionExplainer.explain`, ranking and
  reason strings included: +0.05 ms);
* ``shap.TreeExplainer(booster).shap_values``: 5–10 ms / 11–23 ms — for a LightGBM booster it calls
  ``pred_contrib`` itself (identical numbers), with LightGBM's default threads and Python overhead;
* shap's own C TreeSHAP over shap's own parse of the trees: 1.3 ms / 1.4 ms, equal to 1e-15. Faster,
  but only reachable by overriding a private attribute (``explainer.model.model_type``), and it
  walks shap's re-implementation of LightGBM's split rules; not worth a silent break on an upgrade
  for 0.3 ms on a once-per-signal call.

The cost is TreeSHAP itself (≈ 5 µs per tree), so it scales with the number of trees, not with call
overhead. LightGBM releases the GIL in the call, so an async caller can move it off the event loop
(``asyncio.to_thread``) if a burst of signals ever makes that matter.

What the numbers mean:

* Units are the LightGBM member's **raw margin** (log-odds). ``expected_value`` (the model's average
  margin over its training data, as TreeSHAP weighs it by cover) plus every feature's contribution is
  exactly that member's raw score for the row — the identity the tests hold to 1e-6.
* A positive contribution pushes the probability of reaching the **target before the stop** up; a
  negative one pushes it down (toward the stop). The probability users see is the calibrated
  ensemble; its calibrator is non-decreasing (isotonic by construction, Platt with its positive
  fitted slope), so the direction carries over for the LightGBM member's share of it, though the
  magnitudes do not.
* Features with a contribution of exactly zero (no tree splits on them) are never reported.
* NaN feature values are routed as the model was trained to route them, and read "missing".

The explainer takes a ``lightgbm.Booster`` — what the registry saves is LightGBM's text model, which
the caller loads with ``lightgbm.Booster(model_str=...)`` — or `ContributionExplainer.from_scorer`
picks the LightGBM member of a loaded `Scorer`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import lightgbm

    from tradesignals.models.inference import Scorer

__all__ = [
    "Contribution",
    "ContributionExplainer",
    "Explanation",
    "top_contributions",
]

DEFAULT_K = 5


@dataclass(frozen=True, slots=True)
class Contribution:
    """One feature's push on one row's score, in log-odds of the LightGBM member."""

    feature: str
    value: float  # the feature's value in the row (NaN: missing)
    contribution: float  # > 0 pushes toward the target, < 0 toward the stop

    @property
    def direction(self) -> Literal["up", "down"]:
        return "up" if self.contribution > 0 else "down"

    def reason(self) -> str:
        """A reason line for ``Signal.reasons``: ``rsi_14 = 28.1 pushed the probability up``."""
        return f"{self.feature} = {format_value(self.value)} pushed the probability {self.direction}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN becomes None), for storing with the signal."""
        return {
            "feature": self.feature,
            "value": self.value if math.isfinite(self.value) else None,
            "contribution": self.contribution,
        }


@dataclass(frozen=True, slots=True)
class Explanation:
    """The top contributions of one row, with the two numbers that make them checkable."""

    contributions: tuple[Contribution, ...]  # top-k by |contribution|, largest first
    expected_value: float  # the member's base margin (TreeSHAP's expected value)
    margin: float  # expected_value + the sum of *all* contributions = the member's raw score

    def reasons(self) -> list[str]:
        return [c.reason() for c in self.contributions]

    def to_dict(self) -> dict[str, Any]:
        return {
            "contributions": [c.to_dict() for c in self.contributions],
            "expected_value": self.expected_value,
            "margin": self.margin,
        }


class ContributionExplainer:
    """TreeSHAP contributions of a LightGBM booster, ranked and put into words."""

    def __init__(self, booster: lightgbm.Booster, feature_names: Sequence[str] | None = None) -> None:
        if int(booster.num_model_per_iteration()) != 1:
            raise ValueError("contributions: only single-output LightGBM models (binary, regression)")
        own = tuple(str(n) for n in booster.feature_name())
        names = own if feature_names is None else tuple(feature_names)
        if len(names) != booster.num_feature():
            raise ValueError(
                f"contributions: {len(names)} feature names for a booster of {booster.num_feature()} features"
            )
        self.booster = booster
        self.feature_names: tuple[str, ...] = names
        self._index = {n: i for i, n in enumerate(names)}

    @classmethod
    def from_scorer(cls, scorer: Scorer, member: str | None = None) -> ContributionExplainer:
        """Explain the scorer's LightGBM member (the named one, else the first), with the scorer's
        feature names — the order the engine builds its vectors in."""
        from tradesignals.models.inference import TreeMember

        for m in scorer.members:
            if isinstance(m, TreeMember) and m.kind == "lightgbm" and member in (None, m.name):
                return cls(m.booster, scorer.feature_names)  # type: ignore[arg-type]
        raise ValueError(f"the scorer has no LightGBM member{'' if member is None else f' {member!r}'}")

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def _row(self, row: Mapping[str, float] | Sequence[float] | NDArray[np.float64]) -> NDArray[np.float64]:
        if isinstance(row, Mapping):
            unknown = [k for k in row if k not in self._index]
            if unknown:
                raise ValueError(f"contributions: unknown features {unknown[:5]}")
            out = np.full((1, self.n_features), np.nan)
            for k, v in row.items():
                out[0, self._index[k]] = v
            return out
        out = np.ascontiguousarray(np.asarray(row, dtype=np.float64).reshape(1, -1))
        if out.shape[1] != self.n_features:
            raise ValueError(f"contributions: expected {self.n_features} features, got {out.shape[1]}")
        return out

    def contributions(
        self, row: Mapping[str, float] | Sequence[float] | NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """All of them: one per feature in `feature_names` order, then the expected value."""
        out = self.booster.predict(self._row(row), pred_contrib=True, num_threads=1)
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def explain(
        self, row: Mapping[str, float] | Sequence[float] | NDArray[np.float64], k: int = DEFAULT_K
    ) -> Explanation:
        """The ``k`` largest contributions by magnitude (ties: feature order), zeros left out."""
        if k < 0:
            raise ValueError(f"k must be non-negative, got {k}")
        x = self._row(row)
        phi = np.asarray(self.booster.predict(x, pred_contrib=True, num_threads=1), dtype=np.float64)
        phi = phi.reshape(-1)
        values, base = phi[:-1], float(phi[-1])
        order = np.argsort(-np.abs(values), kind="stable")
        top: list[Contribution] = []
        for i in order[:k]:
            c = float(values[i])
            if c == 0.0:
                break  # sorted by magnitude: the rest are zero too
            top.append(Contribution(self.feature_names[i], float(x[0, i]), c))
        return Explanation(tuple(top), base, base + float(values.sum()))


def top_contributions(
    booster: lightgbm.Booster,
    row: Mapping[str, float] | Sequence[float] | NDArray[np.float64],
    k: int = DEFAULT_K,
    feature_names: Sequence[str] | None = None,
) -> list[Contribution]:
    """One-off form of `ContributionExplainer.explain`; build the explainer once where you can."""
    return list(ContributionExplainer(booster, feature_names).explain(row, k).contributions)


def format_value(value: float) -> str:
    """Short and readable: ``28.1``, ``0.0123``, ``1,234,567``, ``missing``."""
    if not math.isfinite(value):
        return "missing" if math.isnan(value) else str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"
