"""The one call of the `SignalEngine` constructor, until the engine takes ``scorer_for`` itself.

The engine is moving to ``SignalEngine(scorer_for, *, plan, costs, calendar, earnings,
tick_timeframe)``: it learns each bar's timeframe from the bar and asks ``scorer_for`` once per
timeframe. Until that lands, this module adapts the builder's parts to the current constructor
(``SignalEngine(scorer, timeframe, params, *, calendar, earnings)``) with `ByTimeframe`, a scorer that
routes each bar to the scorer of its own timeframe. When the new constructor lands, ``signal_engine``
becomes a direct call and this adapter goes; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tradesignals.domain.costs import CostSchedule
from tradesignals.domain.market import Bar, Timeframe
from tradesignals.domain.sessions import SessionCalendar
from tradesignals.domain.trade_plan import PlanParams
from tradesignals.engine.decide import DecideParams
from tradesignals.engine.pipeline import Scorer, SignalEngine
from tradesignals.engine.placeholder_rule import Decision
from tradesignals.news.earnings import EarningsCalendar


class ByTimeframe:
    """A `Scorer` that hands each bar to ``scorer_for(bar.timeframe)``.

    ``version`` (read by the engine right after ``on_bar``) and ``drift_flag`` are those of the scorer
    that scored the last bar; an outcome goes back to the scorer that last scored its symbol.
    """

    def __init__(self, scorer_for: Callable[[Timeframe], Scorer]) -> None:
        self.scorer_for = scorer_for
        self._last: Scorer | None = None
        self._by_symbol: dict[str, Scorer] = {}
        self.version = "unset"

    def on_bar(self, bar: Bar) -> Decision | None:
        scorer = self.scorer_for(bar.timeframe)
        self._last = scorer
        self._by_symbol[bar.symbol] = scorer
        self.version = scorer.version
        return scorer.on_bar(bar)

    @property
    def drift_flag(self) -> Any:
        return getattr(self._last, "drift_flag", None)

    def on_outcome(self, outcome: Any, p: float, features: Any) -> Any:
        scorer = self._by_symbol.get(outcome.symbol)
        learn = getattr(scorer, "on_outcome", None)
        return learn(outcome, p, features) if learn is not None else None


def signal_engine(
    scorer_for: Callable[[Timeframe], Scorer],
    *,
    plan: PlanParams,
    costs: CostSchedule,
    calendar: Callable[[str], SessionCalendar],
    earnings: EarningsCalendar | None,
    tick_timeframe: Timeframe,
) -> SignalEngine:
    """``SignalEngine(scorer_for, plan=…, costs=…, calendar=…, earnings=…, tick_timeframe=…)`` once it lands.

    Today's engine has no cost model (``costs`` is carried by the builder for the new one) and a
    horizon in bars; the plan's stop, targets, swing sessions and cool-down map onto its parameters.
    """
    del costs
    params = DecideParams(
        stop_atr=plan.stop_atr,
        target_r=plan.target_r,
        swing_horizon_bars=plan.swing_sessions,
        cooldown_bars=plan.cooldown_bars,
    )
    return SignalEngine(ByTimeframe(scorer_for), tick_timeframe, params, calendar=calendar, earnings=earnings)
