"""Lifecycle: every signal followed to its outcome, with fills the market actually offered."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradesignals.domain.market import NS_PER_SECOND, Bar, Tick, Timeframe, to_ns
from tradesignals.domain.signals import Direction, Signal, SignalEventKind, SignalStatus, SignalType
from tradesignals.engine.lifecycle import LifecycleTracker, Outcome, OutcomeKind

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # created_at: the close of the bar that made the signal
DAY = 86_400 * NS_PER_SECOND
C = to_ns(T0)


def long_signal(
    *,
    sid: str = "a" * 22,
    symbol: str = "AAPL",
    entry: float = 100.0,
    stop: float = 95.0,
    targets: tuple[float, ...] = (105.0, 110.0, 115.0),
    life: timedelta = timedelta(days=5),
    direction: Direction = Direction.LONG,
) -> Signal:
    return Signal(
        id=sid,
        symbol=symbol,
        type=SignalType.SWING,
        direction=direction,
        entry=entry,
        stop=stop,
        targets=targets,
        confidence=0.7,
        created_at=T0,
        expires_at=T0 + life,
        model_version="t",
    )


def short_signal(*, sid: str = "a" * 22, symbol: str = "AAPL") -> Signal:
    """The mirror of `long_signal` around 100: entry 100, stop 105, targets 95/90/85."""
    return long_signal(
        sid=sid, symbol=symbol, direction=Direction.SHORT, stop=105.0, targets=(95.0, 90.0, 85.0)
    )


def day_bar(day: int, o: float, h: float, low: float, c: float, symbol: str = "AAPL") -> Bar:
    return Bar(symbol, Timeframe.D1, C + day * DAY, o, h, low, c, 1_000.0)


def mirror(bar: Bar) -> Bar:
    """The same bar reflected around 100, so a short sees what the long saw."""
    return Bar(
        bar.symbol, bar.timeframe, bar.ts, 200 - bar.open, 200 - bar.low, 200 - bar.high, 200 - bar.close, 1.0
    )


def run(tracker: LifecycleTracker, updates: Sequence[Bar | Tick]) -> list[Outcome]:
    out: list[Outcome] = []
    for u in updates:
        out += tracker.on_bar(u) if isinstance(u, Bar) else tracker.on_tick(u)
    return out


def only(signal: Signal, updates: Sequence[Bar | Tick]) -> Outcome:
    t = LifecycleTracker()
    t.add(signal)
    outs = run(t, updates)
    assert len(outs) == 1, outs
    assert signal.id not in t and len(t) == 0
    return outs[0]


# --- hand examples ------------------------------------------------------------------------------


def test_final_target_closes_and_reports_everything_exactly() -> None:
    out = only(
        long_signal(),
        [day_bar(0, 100, 106, 99, 105), day_bar(1, 105, 116, 104, 114)],
    )
    assert out.outcome is OutcomeKind.TARGET and out.status is SignalStatus.TARGET_HIT
    assert out.target_index == 2
    assert out.exit_price == 115.0  # touched inside the bar: filled at the target itself
    assert out.r_multiple == 3.0 and out.pnl_pct == 15.0
    assert out.mfe_pct == 15.0 and out.mae_pct == -1.0
    assert out.closed_at == T0 + timedelta(days=2)  # known at the end of the bar
    assert out.holding_seconds == 2 * 86_400


def test_first_target_does_not_close_the_signal() -> None:
    t = LifecycleTracker()
    t.add(long_signal())
    assert t.on_bar(day_bar(0, 100, 111, 99, 108)) == []
    assert "a" * 22 in t


def test_stop_after_reaching_a_target_is_a_stop_that_remembers_the_target() -> None:
    out = only(
        long_signal(),
        [day_bar(0, 100, 106, 99, 105), day_bar(1, 104, 104.5, 94, 94.5)],
    )
    assert out.outcome is OutcomeKind.STOP and out.status is SignalStatus.STOPPED
    assert out.target_index == 0
    assert out.exit_price == 95.0 and out.r_multiple == -1.0 and out.pnl_pct == -5.0
    assert out.mfe_pct == 6.0 and out.mae_pct == -5.0  # the low past the stop is after the exit


def test_stop_and_target_in_the_same_bar_count_as_the_stop() -> None:
    out = only(long_signal(), [day_bar(0, 100, 120, 90, 118)])
    assert out.outcome is OutcomeKind.STOP and out.exit_price == 95.0
    assert out.target_index is None  # the targets were not proven reached before the stop
    assert out.mfe_pct == 0.0 and out.mae_pct == -5.0  # only open and stop are on the assumed path


def test_gap_through_the_stop_exits_at_the_open() -> None:
    out = only(long_signal(), [day_bar(0, 100, 103, 98, 101), day_bar(1, 90, 97, 88, 96)])
    assert out.outcome is OutcomeKind.STOP
    assert out.exit_price == 90.0 and out.r_multiple == -2.0 and out.pnl_pct == -10.0
    assert out.closed_at == T0 + timedelta(days=1)  # at the open of the gapping bar
    assert out.mae_pct == -10.0 and out.mfe_pct == 3.0


def test_gap_through_the_final_target_exits_at_the_better_open() -> None:
    out = only(long_signal(), [day_bar(0, 120, 125, 119, 124)])
    assert out.outcome is OutcomeKind.TARGET and out.target_index == 2
    assert out.exit_price == 120.0 and out.r_multiple == 4.0
    assert out.closed_at == T0 and out.holding_seconds == 0.0


def test_expiry_exits_at_the_close_of_the_bar_ending_at_expiry() -> None:
    bars = [day_bar(d, 100, 104, 97, 100 + d) for d in range(5)]  # last one ends at expires_at
    out = only(long_signal(), bars)
    assert out.outcome is OutcomeKind.EXPIRED and out.status is SignalStatus.EXPIRED
    assert out.exit_price == 104.0 and out.target_index is None
    assert out.r_multiple == pytest.approx(0.8) and out.pnl_pct == pytest.approx(4.0)
    assert out.closed_at == T0 + timedelta(days=5) and out.holding_seconds == 5 * 86_400
    assert out.mfe_pct == pytest.approx(4.0) and out.mae_pct == pytest.approx(-3.0)


def test_a_bar_straddling_expiry_is_not_used() -> None:
    sig = long_signal(life=timedelta(days=1, hours=12))
    out = only(sig, [day_bar(0, 100, 103, 99, 102), day_bar(1, 102, 200, 1, 150)])
    assert out.outcome is OutcomeKind.EXPIRED and out.exit_price == 102.0
    assert out.closed_at == sig.expires_at


def test_expire_due_closes_a_quiet_signal_at_entry() -> None:
    t = LifecycleTracker()
    t.add(long_signal())
    assert t.expire_due(C + 5 * DAY - 1) == []
    [out] = t.expire_due(C + 5 * DAY)
    assert out.outcome is OutcomeKind.EXPIRED and out.exit_price == 100.0
    assert out.pnl_pct == 0.0 and out.r_multiple == 0.0 and out.mfe_pct == 0.0 and out.mae_pct == 0.0
    assert len(t) == 0 and t.expire_due(C + 10 * DAY) == []


def test_a_tick_after_expiry_expires_at_the_last_price_before_it() -> None:
    out = only(
        long_signal(entry=100, stop=96, targets=(108.0,)),
        [Tick("AAPL", C + DAY, 106.0, 1), Tick("AAPL", C + 6 * DAY, 50.0, 1)],
    )
    assert out.outcome is OutcomeKind.EXPIRED and out.exit_price == 106.0
    assert out.r_multiple == 1.5 and out.pnl_pct == 6.0
    assert out.target_index is None and out.mae_pct == 0.0


def test_a_tick_exactly_at_expiry_is_the_expiry_price() -> None:
    out = only(long_signal(), [Tick("AAPL", C + 5 * DAY, 103.0, 1)])
    assert out.outcome is OutcomeKind.EXPIRED and out.exit_price == 103.0


def test_tick_through_the_stop_exits_at_the_tick_price() -> None:
    out = only(long_signal(), [Tick("AAPL", C + 10, 101.0, 1), Tick("AAPL", C + 20, 93.0, 1)])
    assert out.outcome is OutcomeKind.STOP and out.exit_price == 93.0
    assert out.r_multiple == -1.4 and out.pnl_pct == -7.0
    assert out.closed_at == datetime.fromtimestamp((C + 20) / NS_PER_SECOND, tz=UTC)


def test_ticks_walk_through_targets_in_order() -> None:
    prices = [104.0, 105.0, 109.0, 110.0, 112.0, 115.5]
    out = only(long_signal(), [Tick("AAPL", C + i, p, 1) for i, p in enumerate(prices)])
    assert out.outcome is OutcomeKind.TARGET and out.exit_price == 115.5 and out.target_index == 2


def test_short_mirrors_long() -> None:
    bars = [day_bar(0, 100, 106, 99, 105), day_bar(1, 104, 104.5, 94, 94.5)]
    long_out = only(long_signal(), bars)
    short_out = only(short_signal(), [mirror(b) for b in bars])
    assert short_out.outcome is long_out.outcome is OutcomeKind.STOP
    assert short_out.exit_price == 105.0
    for field in ("target_index", "pnl_pct", "r_multiple", "mfe_pct", "mae_pct", "holding_seconds"):
        assert getattr(short_out, field) == getattr(long_out, field), field


def test_short_target_and_gap() -> None:
    out = only(short_signal(), [day_bar(0, 100, 101, 84, 86)])
    assert out.outcome is OutcomeKind.TARGET and out.exit_price == 85.0 and out.r_multiple == 3.0
    gap = only(short_signal(), [day_bar(0, 108, 110, 107, 109)])
    assert gap.outcome is OutcomeKind.STOP and gap.exit_price == 108.0 and gap.pnl_pct == -8.0


def test_ticks_before_creation_are_ignored() -> None:
    t = LifecycleTracker()
    t.add(long_signal())
    assert t.on_tick(Tick("AAPL", C - 1, 50.0, 1)) == []
    assert t.on_tick(Tick("AAPL", C - 1, 500.0, 1)) == []
    [out] = t.on_tick(Tick("AAPL", C, 94.0, 1))  # at created_at exactly: usable
    assert out.exit_price == 94.0 and out.holding_seconds == 0.0 and out.mfe_pct == 0.0


def test_bars_starting_before_creation_are_ignored() -> None:
    t = LifecycleTracker()
    t.add(long_signal())
    assert t.on_bar(day_bar(-1, 100, 130, 80, 100)) == []  # the bar that made the signal
    hour = Bar("AAPL", Timeframe.H1, C - 1800 * NS_PER_SECOND, 100, 130, 80, 100, 1)
    assert t.on_bar(hour) == []  # straddles created_at
    [out] = t.on_bar(day_bar(0, 100, 101, 94, 95))
    assert out.outcome is OutcomeKind.STOP and out.mae_pct == -5.0 and out.mfe_pct == 0.0


def test_an_update_older_than_one_applied_is_ignored() -> None:
    t = LifecycleTracker()
    t.add(long_signal())
    assert t.on_tick(Tick("AAPL", C + DAY // 2, 101.0, 1)) == []
    assert t.on_bar(day_bar(0, 100, 101, 80, 100)) == []  # overlaps the tick already seen
    assert t.on_tick(Tick("AAPL", C + DAY // 4, 80.0, 1)) == []  # late tick
    assert len(t) == 1


def test_bad_prices_never_close_a_signal() -> None:
    t = LifecycleTracker()
    t.add(long_signal())
    assert t.on_tick(Tick("AAPL", C + 1, float("nan"), 1)) == []
    assert t.on_tick(Tick("AAPL", C + 2, 0.0, 1)) == []
    assert t.on_bar(Bar("AAPL", Timeframe.D1, C, 100, 90, 95, 96, 1)) == []  # high < low
    assert len(t) == 1


def test_signals_are_indexed_by_symbol_and_close_independently() -> None:
    t = LifecycleTracker()
    t.add(long_signal(sid="a" * 22, symbol="AAPL"))
    t.add(long_signal(sid="b" * 22, symbol="MSFT"))
    t.add(short_signal(sid="c" * 22, symbol="AAPL"))
    outs = t.on_tick(Tick("AAPL", C + 1, 84.0, 1))  # below the long's stop and the short's last target
    assert {(o.signal_id, o.outcome) for o in outs} == {
        ("a" * 22, OutcomeKind.STOP),
        ("c" * 22, OutcomeKind.TARGET),
    }
    assert [s.id for s in t.open_signals()] == ["b" * 22]
    assert t.open_signals("AAPL") == [] and t.on_tick(Tick("AAPL", C + 2, 50.0, 1)) == []


def test_add_refuses_duplicates_and_closed_signals_and_remove_cancels() -> None:
    t = LifecycleTracker()
    sig = long_signal()
    t.add(sig)
    with pytest.raises(ValueError, match="already tracked"):
        t.add(sig)
    with pytest.raises(ValueError, match="not open"):
        t.add(long_signal(sid="b" * 22).with_status(SignalStatus.STOPPED))
    assert t.remove(sig.id) == sig and t.remove(sig.id) is None
    assert t.expire_due(C + 30 * DAY) == []


def test_expiry_heap_stays_bounded_as_signals_close() -> None:
    t = LifecycleTracker()
    for i in range(500):
        t.add(long_signal(sid=f"{i:022x}"))
        assert t.on_tick(Tick("AAPL", C + i, 90.0, 1))
    assert len(t) == 0 and len(t._expiries) <= 64


def test_event_data_is_the_ledger_contract() -> None:
    out = only(long_signal(), [day_bar(0, 100, 106, 99, 105), day_bar(1, 104, 104.5, 94, 94.5)])
    data = out.to_event_data()
    assert data == {
        "outcome": "stop",
        "target_index": 0,
        "exit_price": 95.0,
        "pnl_pct": -5.0,
        "r_multiple": -1.0,
        "mfe_pct": 6.0,
        "mae_pct": -5.0,
        "holding_seconds": 172_800.0,
        "closed_at": "2026-03-04T00:00:00+00:00",
    }
    event = out.to_event()
    assert event.kind is SignalEventKind.CLOSED and event.signal_id == "a" * 22
    assert event.at == T0 + timedelta(days=2) and event.data == data


# --- properties ---------------------------------------------------------------------------------

STEP = 60 * NS_PER_SECOND


@dataclass(frozen=True)
class Scenario:
    signal: Signal
    updates: list[Bar | Tick]  # in time order, some before created_at


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    direction = draw(st.sampled_from(list(Direction)))
    s = direction.sign
    entry = draw(st.floats(10.0, 1_000.0))
    risk = entry * draw(st.floats(0.005, 0.2))
    n_targets = draw(st.integers(1, 3))
    sig = Signal(
        id="f" * 22,
        symbol="X",
        type=SignalType.DAY,
        direction=direction,
        entry=entry,
        stop=entry - s * risk,
        targets=tuple(entry + s * k * risk for k in range(1, n_targets + 1)),
        confidence=0.6,
        created_at=T0,
        expires_at=T0 + timedelta(minutes=draw(st.integers(1, 12))),
        model_version="t",
    )

    def price(lo: float, hi: float) -> float:
        return draw(st.floats(max(entry + lo * risk, entry / 100), entry + hi * risk))

    updates: list[Bar | Tick] = []
    # prices range ±5R, beyond every level, before creation as after: used early, they would
    # close the signal
    offset = draw(st.sampled_from([0, -STEP // 2]))  # -½ step: a bar straddles created_at
    start = C - 3 * STEP + offset
    for k in range(draw(st.integers(0, 18))):
        ts = start + k * STEP
        if draw(st.booleans()):
            o, c = price(-5, 5), price(-5, 5)
            hi, lo = max(o, c) + abs(price(-1, 1) - entry), min(o, c) - abs(price(-1, 1) - entry)
            lo = max(lo, min(o, c) / 2)
            updates.append(Bar("X", Timeframe.M1, ts, o, hi, lo, c, 1.0))
        else:
            n = draw(st.integers(1, 3))
            updates += [Tick("X", ts + j * (STEP // n), price(-5, 5), 1.0) for j in range(n)]
    return Scenario(sig, updates)


def _feed(sig: Signal, updates: Sequence[Bar | Tick], end_ns: int) -> Outcome:
    t = LifecycleTracker()
    t.add(sig)
    outs = run(t, updates) + t.expire_due(end_ns)
    assert len(outs) == 1
    return outs[0]


@given(sc=scenarios())
def test_outcome_pnl_is_consistent_with_exit_price_and_direction(sc: Scenario) -> None:
    sig = sc.signal
    out = _feed(sig, sc.updates, C + 100 * STEP)
    s = sig.direction.sign
    assert out.pnl_pct == pytest.approx(s * (out.exit_price - sig.entry) / sig.entry * 100, abs=1e-9)
    assert out.r_multiple == pytest.approx(s * (out.exit_price - sig.entry) / sig.risk_per_unit, abs=1e-9)
    assert out.mae_pct <= min(0.0, out.pnl_pct) and out.mfe_pct >= max(0.0, out.pnl_pct)
    assert sig.created_at <= out.closed_at <= sig.expires_at
    assert out.holding_seconds == pytest.approx((out.closed_at - sig.created_at).total_seconds(), abs=1e-6)
    if out.outcome is OutcomeKind.STOP:
        assert s * (out.exit_price - sig.stop) <= 0 and out.r_multiple <= -1 + 1e-9
    elif out.outcome is OutcomeKind.TARGET:
        assert s * (out.exit_price - sig.targets[-1]) >= 0
        assert out.target_index == len(sig.targets) - 1
    else:
        assert out.closed_at == sig.expires_at
        assert s * (out.exit_price - sig.stop) > 0 and s * (out.exit_price - sig.targets[-1]) < 0
    # the exit is a price the market offered after creation, or a level it traded through
    offered = {sig.entry, sig.stop, sig.targets[-1]}
    for u in sc.updates:
        if isinstance(u, Tick) and u.ts >= C:
            offered.add(u.price)
        elif isinstance(u, Bar) and u.ts >= C:
            offered |= {u.open, u.close}
    assert out.exit_price in offered


@given(sc=scenarios())
def test_never_uses_a_price_from_before_the_signal_existed(sc: Scenario) -> None:
    def starts(u: Bar | Tick) -> int:
        return u.ts

    with_history = _feed(sc.signal, sc.updates, C + 100 * STEP)
    without = _feed(sc.signal, [u for u in sc.updates if starts(u) >= C], C + 100 * STEP)
    assert with_history == without


@given(sc=scenarios())
def test_short_and_long_mirror_each_other(sc: Scenario) -> None:
    sig = sc.signal
    pivot = sig.entry
    flipped = Signal(
        id=sig.id,
        symbol=sig.symbol,
        type=sig.type,
        direction=Direction.SHORT if sig.direction is Direction.LONG else Direction.LONG,
        entry=sig.entry,
        stop=2 * pivot - sig.stop,
        targets=tuple(2 * pivot - t for t in sig.targets),
        confidence=sig.confidence,
        created_at=sig.created_at,
        expires_at=sig.expires_at,
        model_version=sig.model_version,
    )

    def flip(u: Bar | Tick) -> Bar | Tick:
        if isinstance(u, Tick):
            return Tick(u.symbol, u.ts, 2 * pivot - u.price, u.size)
        hi, lo = 2 * pivot - u.low, 2 * pivot - u.high
        return Bar(u.symbol, u.timeframe, u.ts, 2 * pivot - u.open, hi, lo, 2 * pivot - u.close, u.volume)

    mirrored = [flip(u) for u in sc.updates]
    if any((isinstance(u, Tick) and u.price <= 0) or (isinstance(u, Bar) and u.low <= 0) for u in mirrored):
        return  # reflection left positive prices; nothing to compare
    if flipped.stop <= 0 or any(t <= 0 for t in flipped.targets):
        return
    a = _feed(sig, sc.updates, C + 100 * STEP)
    b = _feed(flipped, mirrored, C + 100 * STEP)
    assert (a.outcome, a.target_index, a.closed_at) == (b.outcome, b.target_index, b.closed_at)
    assert b.r_multiple == pytest.approx(a.r_multiple, abs=1e-9)
    assert b.pnl_pct == pytest.approx(a.pnl_pct, abs=1e-9)
    assert b.mfe_pct == pytest.approx(a.mfe_pct, abs=1e-9) and b.mae_pct == pytest.approx(a.mae_pct, abs=1e-9)
