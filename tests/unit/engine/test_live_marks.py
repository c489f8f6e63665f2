"""The engine's marks of open signals each bar (``signal:{id}:live``): fill state, P/L, re-score."""

from __future__ import annotations

import pytest

from tradesignals.domain.costs import DEFAULT_COSTS
from tradesignals.domain.market import AssetClass, Bar, Tick, Timeframe, to_ns
from tradesignals.domain.signals import Direction, Signal
from tradesignals.domain.trade_plan import PlanParams
from tradesignals.engine.pipeline import SignalEngine
from tradesignals.engine.placeholder_rule import Decision

M = Timeframe.M1.ns
PLAN = PlanParams(cooldown_bars=0)


class OnceThenRescore:
    """Goes ``direction`` on the first bar; re-scores open signals with a probability per bar."""

    version = "test-rescore:1"

    def __init__(self, direction: Direction = Direction.LONG) -> None:
        self.direction = direction
        self.bars = 0
        self.asked: list[tuple[str, Direction]] = []

    def on_bar(self, bar: Bar) -> Decision | None:
        self.bars += 1
        return Decision(self.direction, 0.6, atr=1.0, reasons=("test",)) if bar.ts == 0 else None

    def rescore(self, symbol: str, direction: Direction) -> float | None:
        self.asked.append((symbol, direction))
        return 0.5 + self.bars / 100


class OnceRule:
    """The same decision without ``rescore``: a rule cannot re-score (probability None)."""

    version = "rule-test"

    def on_bar(self, bar: Bar) -> Decision | None:
        return Decision(Direction.SHORT, 0.6, atr=1.0, reasons=("test",)) if bar.ts == 0 else None


def b(i: int, o: float, h: float, lo: float, c: float, symbol: str = "AAPL") -> Bar:
    return Bar(symbol, Timeframe.M1, i * M, o, h, lo, c, 10)


def step(eng: SignalEngine, bar: Bar) -> Signal | None:
    """What the engine service does with a bar: decide, then mark."""
    signal = eng.on_bar(bar)
    eng.mark(bar)
    return signal


def test_a_long_is_marked_each_bar_pending_then_filled_and_not_after_its_stop() -> None:
    scorer = OnceThenRescore()
    eng = SignalEngine(scorer, plan=PLAN)
    sig = step(eng, b(0, 100, 100.5, 99.5, 100))
    assert sig is not None  # entry 100, stop 98.5, targets 101.5/103/104.5
    (first,) = eng.drain_live()
    # Decided on this bar: published at its close, filled only at the next bar's open.
    assert first.signal_id == sig.id and not first.filled and first.unrealised_net_r is None
    assert first.ts_ns == M and first.price == 100 and first.probability == 0.51
    assert first.model_version == "test-rescore:1"
    step(eng, b(1, 100.2, 100.9, 100.1, 100.8))
    (second,) = eng.drain_live()
    equity = DEFAULT_COSTS[AssetClass.EQUITY]
    gross = (100.8 - 100.2) / 100.2 * 100
    net = gross - equity.costs_pct(1, 100.2, 100.8, 2 * M - M)
    assert second.filled and second.unrealised_net_pct == pytest.approx(net)
    assert second.unrealised_net_r == pytest.approx(net * 100.2 / 100 / 1.5)
    assert second.distance_to_stop_pct == pytest.approx((100.8 - 98.5) / 100.8 * 100)
    assert second.probability == 0.52 and scorer.asked[-1] == ("AAPL", Direction.LONG)
    # Another symbol's bar marks nothing (it has no open signal).
    step(eng, b(1, 50, 51, 49, 50, symbol="MSFT"))
    assert eng.drain_live() == []
    # The stop closes it: an outcome and no mark, then nothing on later bars.
    step(eng, b(2, 100.5, 100.6, 98.0, 98.2))
    assert eng.drain_live() == []
    (outcome,) = eng.drain_outcomes()
    assert outcome.signal_id == sig.id and outcome.outcome.value == "stop"
    step(eng, b(3, 98.2, 98.4, 98.0, 98.1))
    assert eng.drain_live() == [] and eng.stats.live_updates == 2


def test_the_last_mark_equals_the_outcome_of_closing_at_that_price() -> None:
    """Live P/L and the closed outcome are one arithmetic: close now at the mark's price, same net R."""
    eng = SignalEngine(OnceThenRescore(Direction.SHORT), plan=PLAN)
    sig = step(eng, b(0, 100, 100.5, 99.5, 100))
    assert sig is not None and sig.direction is Direction.SHORT
    eng.drain_live()
    step(eng, b(1, 99.8, 100.0, 99.0, 99.2))
    (mark,) = eng.drain_live()
    out = eng.lifecycle.close_at(sig.id, 99.2, mark.ts_ns)
    assert mark.filled and out.fill_price == 99.8
    assert mark.unrealised_net_pct == pytest.approx(out.net_pnl_pct, abs=1e-12)
    assert mark.unrealised_net_r == pytest.approx(out.net_r, abs=1e-12)


def test_a_rule_gives_no_probability_and_names_the_signals_model() -> None:
    eng = SignalEngine(OnceRule(), plan=PLAN)
    sig = step(eng, b(0, 100, 100.5, 99.5, 100))
    assert sig is not None
    step(eng, b(1, 99.9, 100.2, 99.5, 99.6))
    (_, mark) = eng.drain_live()
    assert mark.probability is None and mark.model_version == "rule-test" and mark.filled


def test_marks_are_made_only_when_asked_for() -> None:
    """Deciding never marks (a backtest keeps no list); ticks mark only with ``live_updates`` on."""
    eng = SignalEngine(OnceThenRescore(), plan=PLAN)
    assert eng.on_bar(b(0, 100, 100.5, 99.5, 100)) is not None
    eng.on_bar(b(1, 100.2, 100.9, 100.1, 100.8))
    assert eng.drain_live() == [] and eng.stats.live_updates == 0
    ticks = SignalEngine(OnceThenRescore(), Timeframe.M1, PLAN)
    for minute in range(3):
        ticks.on_tick(Tick("BTCUSDT", minute * M, 100.0, 1.0))
    assert ticks.drain_live() == []


def test_tick_mode_marks_each_aggregated_bar_at_its_close() -> None:
    eng = SignalEngine(OnceThenRescore(), Timeframe.M1, PLAN)
    eng.live_updates = True
    made = []
    for minute in range(3):
        for j, p in enumerate((100.0, 100.3, 100.1)):
            made += eng.on_tick(Tick("BTCUSDT", minute * M + j * (M // 3), p + 0.1 * minute, 1.0))
    # Bars 0 and 1 closed (revealed by the first ticks of minutes 1 and 2): the signal of bar 0 is
    # marked at bar 0's close (pending then filled by the next tick), and at bar 1's close.
    (sig,) = made
    marks = eng.drain_live()
    assert [m.signal_id for m in marks] == [sig.id, sig.id]
    assert [m.price for m in marks] == [pytest.approx(100.1), pytest.approx(100.2)]
    assert not marks[0].filled and marks[1].filled and to_ns(sig.created_at) == M
