"""The follower's portfolio on the engine's outcomes: sizing by the profile, limits, cash long and short.

Outcomes come from the real `LifecycleTracker` (the rulebook), so the numbers checked by hand here
are the rulebook's fill, exit and costs as the portfolio books them.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta

import pytest

from tradesignals.backtest.engine_pass import EngineRun, Published
from tradesignals.backtest.portfolio import PortfolioConfig, simulate
from tradesignals.domain.costs import DEFAULT_SCHEDULE, NO_COSTS
from tradesignals.domain.market import Bar, Timeframe, to_ns
from tradesignals.domain.risk import PRESETS, ProfileName
from tradesignals.domain.signals import Direction, Signal, SignalType
from tradesignals.engine.lifecycle import LifecycleTracker

DAY = 86_400 * 10**9
T0 = to_ns(datetime(2024, 1, 2, tzinfo=UTC))
AGGRESSIVE = PRESETS[ProfileName.AGGRESSIVE]


def _signal(sid: str, symbol: str, day: int, direction: Direction, entry: float, stop: float) -> Signal:
    risk = abs(entry - stop)
    s = direction.sign
    decided = datetime.fromtimestamp((T0 + day * DAY + 21 * 3600 * 10**9) / 1e9, tz=UTC)
    return Signal(
        id=sid,
        symbol=symbol,
        type=SignalType.SWING,
        direction=direction,
        entry=entry,
        stop=stop,
        targets=(entry + s * risk, entry + s * 2 * risk, entry + s * 3 * risk),
        confidence=0.7,
        created_at=decided,
        expires_at=decided + timedelta(days=30),
        model_version="test",
        decided_at=decided,
    )


def _run(signals: list[Signal], bars: list[Bar], costs=DEFAULT_SCHEDULE) -> EngineRun:  # type: ignore[no-untyped-def]
    """Push ``bars`` through the rulebook's lifecycle, adding each signal after its deciding bar."""
    life = LifecycleTracker(costs=costs)
    run = EngineRun()
    pending = sorted(signals, key=lambda s: s.created_at)
    for bar in bars:
        for o in life.on_bar(bar):
            run.outcomes[o.signal_id] = o
        if not run.steps or run.steps[-1] != bar.ts:
            run.steps.append(bar.ts)
            run.closes.append([])
        run.closes[-1].append((bar.symbol, bar.close))
        while (
            pending and to_ns(pending[0].created_at) < bar.ts + DAY and to_ns(pending[0].created_at) >= bar.ts
        ):
            s = pending.pop(0)
            life.add(s)
            run.signals.append(Published(s, 0.2))
    last = {b.symbol: b for b in bars}
    for s in life.open_signals():
        o = life.close_at(s.id, last[s.symbol].close, last[s.symbol].ts + DAY - 1)
        run.outcomes[o.signal_id] = o
        run.end_of_data.add(o.signal_id)
    return run


def _bar(symbol: str, day: int, o: float, h: float, lo: float, c: float) -> Bar:
    return Bar(symbol, Timeframe.D1, T0 + day * DAY, o, h, lo, c, 1000.0)


def test_a_long_trade_by_hand() -> None:
    """Aggressive: 2 % risk over a 3 % stop = 66 % → capped at 25 % of 100 000 → 250 shares at 100.

    Filled at the next open 100.5, exits at the last target 109 inside day 3; 5 bp a side.
    """
    sig = _signal("a", "AAA", 0, Direction.LONG, 100.0, 97.0)
    bars = [
        _bar("AAA", 0, 99, 101, 98, 100),
        _bar("AAA", 1, 100.5, 102, 100, 101),
        _bar("AAA", 2, 101, 104, 100, 103),
        _bar("AAA", 3, 103, 110, 102, 108),
    ]
    run = _run([sig], bars)
    res = simulate(run, PortfolioConfig(cash=100_000.0, profile=AGGRESSIVE), DEFAULT_SCHEDULE)
    (t,) = res.trades
    assert t.quantity == 250.0
    assert t.exit_reason == "target"
    assert t.entry_price == pytest.approx(100.5 * (1 + 4e-4))
    assert t.exit_price == pytest.approx(109 * (1 - 4e-4))
    assert t.fees == pytest.approx(250 * (100.5 + 109) * 1e-4)
    assert t.pnl == pytest.approx(250 * (109 - 100.5) - 250 * (100.5 + 109) * 5e-4)
    assert t.pnl == pytest.approx(t.quantity * (t.exit_price - t.entry_price) - t.fees)
    # while open: marked to the close; cash paid the shares and the entry commission
    day1 = res.equity[1]
    assert day1.cash == pytest.approx(100_000 - 250 * 100.5 * (1 + 4e-4) - 250 * 100.5 * 1e-4)
    assert day1.equity == pytest.approx(day1.cash + 250 * 101)
    assert day1.exposure == pytest.approx(250 * 101 / day1.equity)
    assert res.equity[-1].equity == 100_000 + t.pnl  # exactly: each exit books the trade's net P/L
    assert res.equity[-1].cash == res.equity[-1].equity


def test_a_short_receives_the_proceeds_and_owes_the_shares() -> None:
    sig = _signal("s", "BBB", 0, Direction.SHORT, 50.0, 52.0)
    bars = [
        _bar("BBB", 0, 50, 50.5, 49.5, 50),
        _bar("BBB", 1, 50, 50.5, 49, 49.5),
        _bar("BBB", 2, 49.5, 53, 49, 52.5),  # stopped at 52 inside the bar
    ]
    run = _run([sig], bars, costs=NO_COSTS)
    res = simulate(run, PortfolioConfig(cash=10_000.0, profile=AGGRESSIVE), NO_COSTS)
    (t,) = res.trades
    assert t.direction == "short" and t.exit_reason == "stop"
    assert t.quantity == math.floor(10_000 * 0.25 / 50)
    day1 = res.equity[1]
    assert day1.cash == pytest.approx(10_000 + t.quantity * 50)
    assert day1.equity == pytest.approx(10_000 + t.quantity * (50 - 49.5))
    assert t.pnl == pytest.approx(-t.quantity * 2.0)
    assert res.equity[-1].equity == pytest.approx(10_000 - t.quantity * 2.0)


def test_limits_and_reasons_are_counted() -> None:
    sigs = [
        _signal("a", "AAA", 0, Direction.LONG, 100.0, 97.0),
        _signal("b", "BBB", 0, Direction.LONG, 100.0, 97.0),
        _signal("c", "AAA", 0, Direction.SHORT, 100.0, 103.0),
    ]
    bars = [_bar(sym, d, 100, 101, 99, 100) for d in range(3) for sym in ("AAA", "BBB")]
    run = _run(sigs, bars)
    one = simulate(run, PortfolioConfig(cash=100_000.0, profile=AGGRESSIVE, max_open=1), DEFAULT_SCHEDULE)
    assert one.taken == 1 and one.not_taken["max_open"] == 2
    capped = simulate(run, PortfolioConfig(cash=100_000.0, profile=AGGRESSIVE, max_open=5), DEFAULT_SCHEDULE)
    # two 25 % positions fill the profile's 50 % cap for an unclassified sector
    assert capped.taken == 2 and capped.not_taken["sector_cap"] == 1
    roomy = dataclasses.replace(AGGRESSIVE, default_sector_cap_pct=100.0)
    per_symbol = simulate(run, PortfolioConfig(cash=100_000.0, profile=roomy, max_open=5), DEFAULT_SCHEDULE)
    assert per_symbol.taken == 2 and per_symbol.not_taken["max_per_symbol"] == 1
    two = simulate(
        run, PortfolioConfig(cash=100_000.0, profile=roomy, max_open=5, max_per_symbol=2), DEFAULT_SCHEDULE
    )
    assert two.taken == 3 and not two.not_taken
    moderate = simulate(
        run, PortfolioConfig(cash=100_000.0, profile=PRESETS[ProfileName.MODERATE]), DEFAULT_SCHEDULE
    )
    # a signal without a model rank (the rule) sits at the median: below moderate's top quarter
    assert moderate.taken == 0 and moderate.not_taken["profile_rank"] == 3
    tiny = simulate(run, PortfolioConfig(cash=100.0, profile=AGGRESSIVE, max_open=5), DEFAULT_SCHEDULE)
    assert tiny.taken == 0 and tiny.not_taken["too_small"] == 3  # 25 % of 100 buys no share at 100


def test_end_of_data_closes_at_the_last_close_and_equity_is_cash_plus_pnl() -> None:
    sigs = [
        _signal("a", "AAA", 0, Direction.LONG, 100.0, 90.0),
        _signal("b", "BBB", 0, Direction.LONG, 100.0, 90.0),
    ]
    bars = [_bar(sym, d, 100 + d, 102 + d, 99 + d, 101 + d) for d in range(4) for sym in ("AAA", "BBB")]
    run = _run(sigs, bars)
    res = simulate(run, PortfolioConfig(cash=100_000.0, profile=AGGRESSIVE), DEFAULT_SCHEDULE)
    assert [t.exit_reason for t in res.trades] == ["end_of_data", "end_of_data"]
    assert all(t.exit_price == pytest.approx(104 * (1 - 4e-4)) for t in res.trades)
    assert res.equity[-1].equity == pytest.approx(100_000 + sum(t.pnl for t in res.trades), abs=1e-9)
    assert res.equity[-1].exposure == 0.0
