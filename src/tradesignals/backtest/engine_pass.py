"""Bars through the live engine, once: the signals it publishes and how each one ended.

The backtest's first half. The engine is the one `wiring.engine_builder.build_engine` makes — the
object `demo` and `serve` run — and it is driven exactly as the engine service drives it
(``on_bar`` then ``drain_outcomes``), so fills, exits, costs and the win are the rulebook's and
nothing here restates them. The signal stream does not depend on anyone's portfolio (the engine
publishes to every follower alike), which is why the portfolio can be simulated afterwards over
these events in time order without seeing anything a follower would not have seen.

End of data: signals the lifecycle still holds when the bars run out are closed at their symbol's
last close, at that bar's close time, by `engine.lifecycle.LifecycleTracker.close_at` (the
rulebook's exit arithmetic and costs); their ids are listed in ``end_of_data``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tradesignals.domain.market import AssetClass, Bar, to_ns
from tradesignals.domain.outcomes import Outcome
from tradesignals.domain.risk import VOLATILITY_BARS, annualised_volatility
from tradesignals.domain.sessions import asset_class_of
from tradesignals.domain.signals import Signal
from tradesignals.engine.pipeline import SignalEngine


@dataclass(frozen=True, slots=True)
class Published:
    """A signal as published, with the volatility a follower could measure at its decision."""

    signal: Signal
    volatility: float | None


@dataclass(slots=True)
class EngineRun:
    """What the engine said over the data: signals, outcomes, and the closes of every step.

    ``steps`` are the distinct bar times in the backtest window, ascending; ``closes[i]`` the
    (symbol, close) pairs of the bars at ``steps[i]``. ``before_start`` counts signals decided
    before the window (during warm-up): the engine saw them, the portfolio does not take them.
    """

    signals: list[Published] = field(default_factory=list)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    end_of_data: set[str] = field(default_factory=set)
    steps: list[int] = field(default_factory=list)
    closes: list[list[tuple[str, float]]] = field(default_factory=list)
    bars: int = 0
    before_start: int = 0
    symbols: set[str] = field(default_factory=set)


def run_engine(
    engine: SignalEngine,
    bars: Iterable[Bar],
    *,
    start_ns: int | None = None,
    end_ns: int | None = None,
    asset_class: AssetClass | None = None,
    progress: Callable[[int], None] | None = None,
) -> EngineRun:
    """Feed ``bars`` (in (time, symbol) order) to ``engine``; collect what it publishes and closes.

    Bars before ``start_ns`` warm the engine up (features, open signals) without teaching its online
    model; bars after ``end_ns`` are not read. ``asset_class`` is the declared class of every symbol (``TS_ASSET_CLASS``), if any.
    """
    run = EngineRun()
    history: dict[str, deque[float]] = {}
    last: dict[str, Bar] = {}
    for bar in bars:
        if end_ns is not None and bar.ts > end_ns:
            break
        run.bars += 1
        closes = history.get(bar.symbol)
        if closes is None:
            closes = history[bar.symbol] = deque(maxlen=VOLATILITY_BARS + 1)
        closes.append(bar.close)
        last[bar.symbol] = bar
        in_window = start_ns is None or bar.ts >= start_ns
        # Warm-up bars may lie inside the model's training range: its online model must not learn
        # from those outcomes (it would learn the in-sample optimism and carry it into the window).
        engine.learning = in_window
        new = engine.on_bar_signals(bar)
        for o in engine.drain_outcomes():
            run.outcomes[o.signal_id] = o
        if in_window:
            if not run.steps or run.steps[-1] != bar.ts:
                run.steps.append(bar.ts)
                run.closes.append([])
            run.closes[-1].append((bar.symbol, bar.close))
            run.symbols.add(bar.symbol)
        for signal in new:
            if in_window:
                asset = asset_class_of(bar.symbol, asset_class)
                vol = annualised_volatility(list(closes), bar.timeframe, asset)
                run.signals.append(Published(signal, vol))
            else:
                run.before_start += 1
        if progress is not None and run.bars % 10_000 == 0:
            progress(run.bars)
    for signal in sorted(engine.lifecycle.open_signals(), key=lambda s: s.id):
        bar = last[signal.symbol]
        out = engine.lifecycle.close_at(signal.id, bar.close, engine.lifecycle.bar_close(bar))
        run.outcomes[out.signal_id] = out
        run.end_of_data.add(out.signal_id)
    return run


def decided_ns(signal: Signal) -> int:
    return to_ns(signal.decided_at or signal.created_at)


__all__ = ["EngineRun", "Published", "decided_ns", "run_engine"]
