"""Lifecycle: every signal filled at the first price after publication and followed to its outcome.

Hand examples use a long signal decided and published at T0 with entry 100, stop 95 (risk 5) and
targets 105/110/115, followed on daily bars (no calendar: a bar closes one day after it opens) with
no costs unless a test is about costs; every expected number is worked out in the test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradesignals.domain.costs import DEFAULT_SCHEDULE, NO_COSTS, CostSchedule
from tradesignals.domain.market import NS_PER_SECOND, Bar, Tick, Timeframe, to_datetime, to_ns
from tradesignals.domain.outcomes import OUTCOME_KEYS
from tradesignals.domain.sessions import SessionCalendar, utc_date_ns
from tradesignals.domain.signals import Direction, Signal, SignalEventKind, SignalStatus, SignalType
from tradesignals.engine.lifecycle import LifecycleTracker, Outcome, OutcomeKind
from tradesignals.marketdata.calendar import calendar_for

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # decided and published: the close of the deciding bar
DAY = 86_400 * NS_PER_SECOND
SEC = NS_PER_SECOND
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
    created_at: datetime = T0,
    decided_at: datetime | None = None,
    kind: SignalType = SignalType.SWING,
    timeframe: str = "1d",
) -> Signal:
    return Signal(
        id=sid,
        symbol=symbol,
        type=kind,
        direction=direction,
        entry=entry,
        stop=stop,
        targets=targets,
        confidence=0.7,
        created_at=created_at,
        expires_at=created_at + life,
        model_version="t",
        timeframe=timeframe,
        decided_at=decided_at,
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


def only(
    signal: Signal,
    updates: Sequence[Bar | Tick],
    *,
    costs: CostSchedule = NO_COSTS,
    calendar: Callable[[str], SessionCalendar] | None = None,
) -> Outcome:
    t = LifecycleTracker(costs=costs, calendar=calendar)
    t.add(signal)
    outs = run(t, updates)
    assert len(outs) == 1, outs
    assert signal.id not in t and len(t) == 0
    return outs[0]


def tracking(signal: Signal, *, costs: CostSchedule = NO_COSTS) -> LifecycleTracker:
    t = LifecycleTracker(costs=costs)
    t.add(signal)
    return t


# --- fill, targets, stops -------------------------------------------------------------------------


def test_final_target_closes_and_reports_everything_exactly() -> None:
    # Fill at bar 0's open (100); bar 1 touches 115 inside the bar: exit at the target itself.
    out = only(long_signal(), [day_bar(0, 100, 106, 99, 105), day_bar(1, 105, 116, 104, 114)])
    assert out.outcome is OutcomeKind.TARGET and out.status is SignalStatus.TARGET_HIT
    assert out.filled and out.fill_price == 100.0 and out.filled_at == T0 and out.first_price is None
    assert out.target_index == 2 and out.exit_price == 115.0
    assert out.gross_pnl_pct == 15.0 and out.costs_pct == 0.0 and out.net_pnl_pct == 15.0
    assert out.gross_r == 3.0 and out.net_r == 3.0 and out.win
    assert out.mfe_pct == 15.0 and out.mae_pct == -1.0
    assert out.closed_at == T0 + timedelta(days=2)  # known when the bar closes
    assert out.holding_seconds == 2 * 86_400
    assert out.decided_at == T0  # no decided_at on the signal: decided when published


def test_fill_is_the_first_open_after_publication_and_r_uses_the_plans_risk() -> None:
    # The decision price was 100; the market opened at 101. The follower's 1R is still the plan's 5.
    out = only(long_signal(), [day_bar(0, 101, 106, 100, 105), day_bar(1, 105, 116, 104, 114)])
    assert out.fill_price == 101.0 and out.exit_price == 115.0
    assert out.gross_pnl_pct == pytest.approx(14 / 101 * 100)
    assert out.gross_r == pytest.approx(14 / 5)  # (115 - 101) / 5, not 3R
    assert out.mfe_pct == pytest.approx(14 / 101 * 100) and out.mae_pct == pytest.approx(-1 / 101 * 100)


def test_first_target_does_not_close_the_signal() -> None:
    t = tracking(long_signal())
    assert t.on_bar(day_bar(0, 100, 111, 99, 108)) == []
    assert "a" * 22 in t and len(t) == 1


def test_stop_after_reaching_a_target_is_a_stop_that_remembers_the_target() -> None:
    out = only(long_signal(), [day_bar(0, 100, 106, 99, 105), day_bar(1, 104, 104.5, 94, 94.5)])
    assert out.outcome is OutcomeKind.STOP and out.status is SignalStatus.STOPPED
    assert out.target_index == 0
    assert out.exit_price == 95.0 and out.gross_r == -1.0 and out.gross_pnl_pct == -5.0
    assert not out.win
    assert out.mfe_pct == 6.0 and out.mae_pct == -5.0  # the low past the stop is after the exit


def test_stop_and_target_in_the_same_bar_count_as_the_stop() -> None:
    out = only(long_signal(), [day_bar(0, 100, 120, 90, 118)])
    assert out.outcome is OutcomeKind.STOP and out.exit_price == 95.0
    assert out.target_index is None  # the targets were not proven reached before the stop
    assert out.mfe_pct == 0.0 and out.mae_pct == -5.0  # only open and stop are on the assumed path
    assert out.closed_at == T0 + timedelta(days=1)


def test_gap_through_the_stop_exits_at_the_open() -> None:
    out = only(long_signal(), [day_bar(0, 100, 103, 98, 101), day_bar(1, 90, 97, 88, 96)])
    assert out.outcome is OutcomeKind.STOP
    assert out.exit_price == 90.0 and out.gross_r == -2.0 and out.gross_pnl_pct == -10.0
    assert out.closed_at == T0 + timedelta(days=1)  # at the open of the gapping bar
    assert out.mae_pct == -10.0 and out.mfe_pct == 3.0


def test_gap_through_the_final_target_exits_at_the_better_open_even_if_the_bar_later_falls() -> None:
    out = only(long_signal(), [day_bar(0, 100, 104, 99, 104), day_bar(1, 120, 125, 90, 124)])
    assert out.outcome is OutcomeKind.TARGET and out.target_index == 2
    assert out.exit_price == 120.0 and out.gross_r == 4.0
    assert out.closed_at == T0 + timedelta(days=1) and out.holding_seconds == 86_400


# --- not filled -----------------------------------------------------------------------------------


@pytest.mark.parametrize("first_open", [95.0, 94.0, 105.0, 107.0])
def test_a_first_open_at_or_beyond_the_stop_or_first_target_is_not_filled(first_open: float) -> None:
    out = only(long_signal(), [day_bar(0, first_open, first_open + 1, first_open - 1, first_open)])
    assert out.outcome is OutcomeKind.NOT_FILLED and out.status is SignalStatus.NOT_FILLED
    assert not out.filled and not out.win
    assert out.first_price == first_open and out.fill_price is None and out.filled_at is None
    assert out.exit_price is None and out.net_r is None and out.gross_r is None and out.costs_pct is None
    assert out.holding_seconds == 0.0 and out.closed_at == T0  # known at that bar's open


def test_a_first_open_just_inside_the_levels_fills() -> None:
    t = tracking(long_signal())
    assert t.on_bar(day_bar(0, 104.99, 104.99, 95.01, 95.01)) == []
    [out] = t.expire_due(C + 5 * DAY)
    assert out.outcome is OutcomeKind.EXPIRED and out.fill_price == 104.99 and out.exit_price == 95.01


def test_a_first_tick_beyond_a_level_is_not_filled_at_its_time() -> None:
    out = only(long_signal(), [Tick("AAPL", C + 3 * SEC, 105.5, 1)])
    assert out.outcome is OutcomeKind.NOT_FILLED and out.first_price == 105.5
    assert out.closed_at == T0 + timedelta(seconds=3)


def test_no_price_before_expiry_is_not_filled_at_expiry() -> None:
    t = tracking(long_signal())
    assert t.expire_due(C + 5 * DAY - 1) == []
    [out] = t.expire_due(C + 5 * DAY)
    assert out.outcome is OutcomeKind.NOT_FILLED and out.first_price is None
    assert out.closed_at == T0 + timedelta(days=5) and out.holding_seconds == 0.0
    data = out.to_event_data()
    assert data["outcome"] == "not_filled" and data["win"] is False and data["filled_at"] is None
    # The same when the first price arrives only after expiry: a bar opening at it, a tick after it.
    assert only(long_signal(), [day_bar(5, 100, 101, 99, 100)]).outcome is OutcomeKind.NOT_FILLED
    late = only(long_signal(), [Tick("AAPL", C + 6 * DAY, 100.0, 1)])
    assert late.outcome is OutcomeKind.NOT_FILLED and late.first_price is None
    assert late.closed_at == T0 + timedelta(days=5)


# --- ticks ----------------------------------------------------------------------------------------


def test_tick_mode_fills_at_the_next_tick_not_the_publishing_one() -> None:
    decided = T0 - timedelta(seconds=30)  # the bar closed; the tick that revealed it came at T0
    sig = long_signal(decided_at=decided)
    t = tracking(sig)
    assert t.on_tick(Tick("AAPL", C, 94.0, 1)) == []  # the publishing tick: nobody could trade it
    assert t.on_tick(Tick("AAPL", C + SEC, 101.0, 1)) == []  # the fill
    [out] = t.on_tick(Tick("AAPL", C + 2 * SEC, 93.0, 1))
    assert out.outcome is OutcomeKind.STOP and out.exit_price == 93.0  # a tick exits at its price
    assert out.fill_price == 101.0 and out.filled_at == T0 + timedelta(seconds=1)
    assert out.gross_pnl_pct == pytest.approx(-8 / 101 * 100) and out.gross_r == pytest.approx(-8 / 5)
    assert out.decided_at == decided and out.closed_at == T0 + timedelta(seconds=2)
    assert out.holding_seconds == 1.0


def test_ticks_walk_through_targets_in_order() -> None:
    prices = [101.0, 105.0, 109.0, 110.0, 112.0, 115.5]
    out = only(long_signal(), [Tick("AAPL", C + (i + 1) * SEC, p, 1) for i, p in enumerate(prices)])
    assert out.outcome is OutcomeKind.TARGET and out.exit_price == 115.5 and out.target_index == 2
    assert out.gross_r == pytest.approx(14.5 / 5)


def test_a_tick_after_expiry_expires_at_the_last_price_before_it() -> None:
    out = only(
        long_signal(),
        [
            Tick("AAPL", C + SEC, 101.0, 1),
            Tick("AAPL", C + DAY, 106.0, 1),
            Tick("AAPL", C + 6 * DAY, 50.0, 1),
        ],
    )
    assert out.outcome is OutcomeKind.EXPIRED and out.exit_price == 106.0
    assert out.closed_at == T0 + timedelta(days=5)
    assert out.gross_r == pytest.approx(1.0) and out.target_index == 0  # 106 passed the first target
    assert out.mae_pct == 0.0 and out.mfe_pct == pytest.approx(5 / 101 * 100)


def test_a_tick_exactly_at_expiry_is_the_expiry_price() -> None:
    out = only(long_signal(), [Tick("AAPL", C + SEC, 101.0, 1), Tick("AAPL", C + 5 * DAY, 103.0, 1)])
    assert out.outcome is OutcomeKind.EXPIRED and out.exit_price == 103.0
    assert out.closed_at == T0 + timedelta(days=5)


# --- expiry ---------------------------------------------------------------------------------------


def test_expiry_at_exactly_a_bars_close_uses_that_bar() -> None:
    bars = [day_bar(d, 100, 104, 97, 100 + d) for d in range(5)]  # the last one closes at expires_at
    out = only(long_signal(), bars)
    assert out.outcome is OutcomeKind.EXPIRED and out.status is SignalStatus.EXPIRED
    assert out.exit_price == 104.0 and out.target_index is None
    assert out.gross_r == pytest.approx(0.8) and out.gross_pnl_pct == pytest.approx(4.0)
    assert out.closed_at == T0 + timedelta(days=5) and out.holding_seconds == 5 * 86_400
    assert out.mfe_pct == pytest.approx(4.0) and out.mae_pct == pytest.approx(-3.0)


def test_a_bar_straddling_expiry_is_not_used_beyond_its_open() -> None:
    sig = long_signal(life=timedelta(days=1, hours=12))
    # Bar 1 closes 12 h after expiry: its range (through both levels) may come after it.
    out = only(sig, [day_bar(0, 100, 103, 99, 102), day_bar(1, 103, 200, 1, 150)])
    assert out.outcome is OutcomeKind.EXPIRED and out.exit_price == 103.0  # its open came before expiry
    assert out.closed_at == sig.expires_at and out.target_index is None


def test_a_bar_straddling_expiry_that_opens_through_the_stop_is_a_stop_at_the_open() -> None:
    sig = long_signal(life=timedelta(days=1, hours=12))
    out = only(sig, [day_bar(0, 100, 103, 99, 102), day_bar(1, 90, 92, 80, 85)])
    assert out.outcome is OutcomeKind.STOP and out.exit_price == 90.0
    assert out.closed_at == T0 + timedelta(days=1)


def test_expire_due_closes_a_quiet_signal_at_the_last_close() -> None:
    t = tracking(long_signal())
    assert t.on_bar(day_bar(0, 100, 101, 99, 100.5)) == []
    assert t.expire_due(C + 5 * DAY - 1) == []
    [out] = t.expire_due(C + 5 * DAY)
    assert out.outcome is OutcomeKind.EXPIRED and out.exit_price == 100.5
    assert out.gross_r == pytest.approx(0.1) and out.mfe_pct == pytest.approx(1.0) and out.mae_pct == -1.0
    assert len(t) == 0 and t.expire_due(C + 10 * DAY) == []


def test_expire_due_for_one_symbol_expires_only_that_symbol() -> None:
    t = LifecycleTracker(costs=NO_COSTS)
    t.add(long_signal(sid="a" * 22, symbol="AAPL"))
    t.add(long_signal(sid="b" * 22, symbol="MSFT"))
    assert t.expire_due(C + 5 * DAY - 1, "AAPL") == []
    assert t.expire_due(C + 5 * DAY, "NVDA") == []
    [aapl] = t.expire_due(C + 5 * DAY, "AAPL")
    assert aapl.signal_id == "a" * 22 and [s.id for s in t.open_signals()] == ["b" * 22]
    # AAPL's heap entry is stale now: the clock-wide pass must not expire it a second time.
    [msft] = t.expire_due(C + 5 * DAY)
    assert msft.signal_id == "b" * 22 and len(t) == 0
    assert t.expire_due(C + 100 * DAY) == []


# --- calendars: when a bar really closes ----------------------------------------------------------

JUL3 = utc_date_ns(2024, 7, 3)  # a half day: closes 13:00 New York = 17:00 UTC; July 4 is a holiday


def swing_from_jul3() -> Signal:
    # Decided at Jul 3's close; lives through Jul 5, 8, 9, 10, 11 → Jul 11's close (20:00 UTC).
    decided = datetime(2024, 7, 3, 17, tzinfo=UTC)
    return long_signal(created_at=decided, life=datetime(2024, 7, 11, 20, tzinfo=UTC) - decided)


def daily(year: int, month: int, day: int, o: float, h: float, low: float, c: float) -> Bar:
    return Bar("AAPL", Timeframe.D1, utc_date_ns(year, month, day), o, h, low, c, 1e6)


QUIET_DAYS = [daily(2024, 7, d, 100, 101, 99, 100) for d in (5, 8, 9, 10)]


def test_the_fifth_session_of_a_swing_signal_is_seen_on_daily_equity_bars() -> None:
    """Wave 1's bug: a daily bar closing at midnight straddled a 16:00 expiry and was never used."""
    last = daily(2024, 7, 11, 100, 116, 99, 114)
    t = LifecycleTracker(costs=NO_COSTS, calendar=calendar_for)
    assert t.bar_close(last) == to_ns(datetime(2024, 7, 11, 20, tzinfo=UTC))
    out = only(swing_from_jul3(), [*QUIET_DAYS, last], calendar=calendar_for)
    assert out.outcome is OutcomeKind.TARGET and out.exit_price == 115.0
    assert out.closed_at == datetime(2024, 7, 11, 20, tzinfo=UTC)
    assert out.filled_at == datetime(2024, 7, 5, tzinfo=UTC)  # Jul 5's open: Jul 4 had no session
    # Without the calendar the same bar "closes" at midnight, after expiry, and only its open counts.
    blind = only(swing_from_jul3(), [*QUIET_DAYS, last], calendar=None)
    assert blind.outcome is OutcomeKind.EXPIRED and blind.exit_price == 100.0


def test_a_quiet_swing_expires_at_the_close_of_its_fifth_session() -> None:
    last = daily(2024, 7, 11, 100, 101, 99, 100.7)
    after = daily(2024, 7, 12, 100, 130, 99, 120)
    out = only(swing_from_jul3(), [*QUIET_DAYS, last, after], calendar=calendar_for)
    assert out.outcome is OutcomeKind.EXPIRED and out.exit_price == 100.7
    assert out.closed_at == datetime(2024, 7, 11, 20, tzinfo=UTC)


def test_a_sessions_short_last_hourly_bar_is_used() -> None:
    # 2024-01-02: New York trades 14:30–21:00 UTC; the 1h bar opening 20:30 is cut short at 21:00.
    decided = datetime(2024, 1, 2, 20, 30, tzinfo=UTC)
    sig = long_signal(created_at=decided, life=timedelta(minutes=30), kind=SignalType.DAY, timeframe="1h")
    last = Bar("AAPL", Timeframe.H1, to_ns(decided), 100, 116, 99, 114, 1e4)
    t = LifecycleTracker(calendar=calendar_for)
    assert t.bar_close(last) == to_ns(datetime(2024, 1, 2, 21, tzinfo=UTC))
    out = only(sig, [last], calendar=calendar_for)
    assert out.outcome is OutcomeKind.TARGET and out.exit_price == 115.0
    assert out.closed_at == datetime(2024, 1, 2, 21, tzinfo=UTC)


# --- what is ignored ------------------------------------------------------------------------------


def test_bars_starting_before_publication_are_ignored() -> None:
    t = tracking(long_signal())
    assert t.on_bar(day_bar(-1, 100, 130, 80, 100)) == []  # the bar that made the signal
    hour = Bar("AAPL", Timeframe.H1, C - 1800 * SEC, 100, 130, 80, 100, 1)
    assert t.on_bar(hour) == []  # straddles publication
    [out] = t.on_bar(day_bar(0, 100, 101, 94, 95))  # opens exactly at publication: usable
    assert out.outcome is OutcomeKind.STOP and out.fill_price == 100.0
    assert out.mae_pct == -5.0 and out.mfe_pct == 0.0  # only open and stop are on the assumed path


def test_an_update_older_than_one_applied_is_ignored() -> None:
    t = tracking(long_signal())
    assert t.on_tick(Tick("AAPL", C + DAY // 2, 101.0, 1)) == []  # the fill
    assert t.on_bar(day_bar(0, 100, 101, 80, 100)) == []  # overlaps the tick already seen
    assert t.on_tick(Tick("AAPL", C + DAY // 4, 80.0, 1)) == []  # late tick
    assert len(t) == 1
    [out] = t.expire_due(C + 5 * DAY)
    assert out.fill_price == 101.0 and out.exit_price == 101.0 and out.mae_pct == 0.0


def test_bad_prices_never_fill_or_close_a_signal() -> None:
    t = tracking(long_signal())
    for bad in (math.nan, 0.0, -3.0, math.inf):
        assert t.on_tick(Tick("AAPL", C + SEC, bad, 1)) == []
    assert t.on_bar(Bar("AAPL", Timeframe.D1, C, 100, 90, 95, 96, 1)) == []  # high < low
    assert t.on_bar(Bar("AAPL", Timeframe.D1, C, math.nan, 101, 99, 100, 1)) == []
    assert len(t) == 1
    [out] = t.on_tick(Tick("AAPL", C + 2 * SEC, 101.0, 1)) + t.on_tick(Tick("AAPL", C + 3 * SEC, 94.0, 1))
    assert out.fill_price == 101.0 and out.exit_price == 94.0  # the good ticks, not the bad ones


# --- costs ----------------------------------------------------------------------------------------

TARGET_PATH = [day_bar(0, 100, 106, 99, 105), day_bar(1, 105, 116, 104, 114)]  # fill 100, exit 115


def test_equity_costs_come_off_gross_with_the_default_schedule() -> None:
    out = only(long_signal(), TARGET_PATH, costs=DEFAULT_SCHEDULE)
    # equity: 1 + 2 + 2 = 5 bp per side, on 100 in and 115 out, in percent of the fill
    costs = 5 * (100 + 115) / 100 / 100
    assert out.costs_pct == pytest.approx(costs)
    assert out.gross_pnl_pct == 15.0 and out.net_pnl_pct == pytest.approx(15.0 - costs)
    assert out.gross_r == 3.0 and out.net_r == pytest.approx((15.0 - costs) / 5)
    assert out.to_event_data()["net_r"] == out.net_r


def test_crypto_costs_are_chosen_by_symbol() -> None:
    out = only(long_signal(symbol="BTCUSDT"), _as("BTCUSDT", TARGET_PATH), costs=DEFAULT_SCHEDULE)
    assert out.gross_pnl_pct == 15.0
    costs = 13 * (100 + 115) / 100 / 100  # 10 + 1 + 2 bp per side
    assert out.costs_pct == pytest.approx(costs) and out.net_r == pytest.approx((15.0 - costs) / 5)


def test_shorts_pay_borrow_per_day_held() -> None:
    out = only(short_signal(), [mirror(b) for b in TARGET_PATH], costs=DEFAULT_SCHEDULE)
    assert out.outcome is OutcomeKind.TARGET and out.exit_price == 85.0
    assert out.holding_seconds == 2 * 86_400
    # 5 bp per side on 100 and 85, plus 0.5 %/year borrow for two days, all in percent of the fill
    costs = (5 * (100 + 85) / 100 + 2 * 50 / 365) / 100
    assert out.costs_pct == pytest.approx(costs, rel=1e-12)
    assert out.net_pnl_pct == pytest.approx(15.0 - costs)
    # the long on the mirrored path held as long and paid no borrow
    long_out = only(long_signal(), TARGET_PATH, costs=DEFAULT_SCHEDULE)
    assert long_out.costs_pct == pytest.approx(5 * (100 + 115) / 100 / 100, rel=1e-12)


def test_costs_can_turn_a_gross_gain_into_a_loss_and_that_is_not_a_win() -> None:
    t = tracking(long_signal(), costs=DEFAULT_SCHEDULE)
    assert t.on_bar(day_bar(0, 100, 100.1, 99.9, 100.05)) == []
    [out] = t.expire_due(C + 5 * DAY)
    assert out.gross_pnl_pct == pytest.approx(0.05) and out.gross_r == pytest.approx(0.01)
    costs = 5 * (100 + 100.05) / 100 / 100
    assert out.costs_pct == pytest.approx(costs)
    assert out.net_r == pytest.approx((0.05 - costs) / 5) and out.net_r is not None and out.net_r < 0
    assert not out.win and out.to_event_data()["win"] is False


def _as(symbol: str, bars: list[Bar]) -> list[Bar]:
    return [Bar(symbol, b.timeframe, b.ts, b.open, b.high, b.low, b.close, b.volume) for b in bars]


# --- bookkeeping ----------------------------------------------------------------------------------


def test_short_mirrors_long() -> None:
    bars = [day_bar(0, 100, 106, 99, 105), day_bar(1, 104, 104.5, 94, 94.5)]
    long_out = only(long_signal(), bars)
    short_out = only(short_signal(), [mirror(b) for b in bars])
    assert short_out.outcome is long_out.outcome is OutcomeKind.STOP
    assert short_out.exit_price == 105.0 and short_out.fill_price == 100.0
    for field in (
        "target_index",
        "gross_pnl_pct",
        "net_pnl_pct",
        "gross_r",
        "net_r",
        "mfe_pct",
        "mae_pct",
        "holding_seconds",
        "closed_at",
    ):
        assert getattr(short_out, field) == getattr(long_out, field), field


def test_short_target_and_gap() -> None:
    out = only(short_signal(), [day_bar(0, 100, 101, 84, 86)])
    assert out.outcome is OutcomeKind.TARGET and out.exit_price == 85.0 and out.gross_r == 3.0
    gap = only(short_signal(), [day_bar(0, 100, 101, 99, 100), day_bar(1, 108, 110, 107, 109)])
    assert gap.outcome is OutcomeKind.STOP and gap.exit_price == 108.0 and gap.gross_pnl_pct == -8.0


def test_signals_are_indexed_by_symbol_and_close_independently() -> None:
    t = LifecycleTracker(costs=NO_COSTS)
    t.add(long_signal(sid="a" * 22, symbol="AAPL"))
    t.add(long_signal(sid="b" * 22, symbol="MSFT"))
    t.add(short_signal(sid="c" * 22, symbol="AAPL"))
    assert t.on_tick(Tick("AAPL", C + 1, 100.0, 1)) == []  # fills both AAPL signals
    outs = t.on_tick(Tick("AAPL", C + 2, 84.0, 1))  # below the long's stop and the short's last target
    assert {(o.signal_id, o.outcome) for o in outs} == {
        ("a" * 22, OutcomeKind.STOP),
        ("c" * 22, OutcomeKind.TARGET),
    }
    assert [s.id for s in t.open_signals()] == ["b" * 22]
    assert t.open_signals("AAPL") == [] and t.on_tick(Tick("AAPL", C + 3, 50.0, 1)) == []


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


def test_expiry_heap_is_compacted_as_signals_close_and_keeps_the_open_ones() -> None:
    t = LifecycleTracker()
    t.add(long_signal(sid="z" * 22, symbol="MSFT", life=timedelta(days=30)))
    for i in range(500):
        t.add(long_signal(sid=f"{i:022x}"))
        [out] = t.on_tick(Tick("AAPL", C + 1 + i, 90.0, 1))  # first price below the stop
        assert out.outcome is OutcomeKind.NOT_FILLED
    assert len(t) == 1 and len(t._expiries) <= 2 * len(t) + 64
    [survivor] = t.expire_due(C + 30 * DAY)
    assert survivor.signal_id == "z" * 22 and len(t) == 0


def test_event_data_is_the_ledger_contract() -> None:
    out = only(long_signal(), [day_bar(0, 100, 106, 99, 105), day_bar(1, 104, 104.5, 94, 94.5)])
    data = out.to_event_data()
    assert tuple(data) == OUTCOME_KEYS
    assert data == {
        "outcome": "stop",
        "win": False,
        "target_index": 0,
        "decided_at": "2026-03-02T00:00:00+00:00",
        "filled_at": "2026-03-02T00:00:00+00:00",
        "fill_price": 100.0,
        "first_price": None,
        "exit_price": 95.0,
        "gross_pnl_pct": -5.0,
        "costs_pct": 0.0,
        "net_pnl_pct": -5.0,
        "gross_r": -1.0,
        "net_r": -1.0,
        "mfe_pct": 6.0,
        "mae_pct": -5.0,
        "holding_seconds": 172_800.0,
        "closed_at": "2026-03-04T00:00:00+00:00",
    }
    event = out.to_event()
    assert event.kind is SignalEventKind.CLOSED and event.signal_id == "a" * 22
    assert event.at == T0 + timedelta(days=2) and event.data == data


# --- properties -----------------------------------------------------------------------------------

STEP = 60 * NS_PER_SECOND


@dataclass(frozen=True)
class Scenario:
    signal: Signal
    updates: list[Bar | Tick]  # in time order, some before publication


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
    # prices range ±3R — beyond every level — before publication as after: used early, they
    # would fill or close the signal; mostly near the entry so that fills happen
    offset = draw(st.sampled_from([0, -STEP // 2]))  # -½ step: a bar straddles publication
    start = C - 3 * STEP + offset
    for k in range(draw(st.integers(0, 18))):
        ts = start + k * STEP
        if draw(st.booleans()):
            o, c = price(-1.2, 1.2), price(-3, 3)
            hi, lo = max(o, c) + abs(price(-1, 1) - entry), min(o, c) - abs(price(-1, 1) - entry)
            lo = max(lo, min(o, c) / 2)
            updates.append(Bar("X", Timeframe.M1, ts, o, hi, lo, c, 1.0))
        else:
            n = draw(st.integers(1, 3))
            updates += [Tick("X", ts + j * (STEP // n), price(-3, 3), 1.0) for j in range(n)]
    return Scenario(sig, updates)


def _feed(sig: Signal, updates: Sequence[Bar | Tick], *, costs: CostSchedule = DEFAULT_SCHEDULE) -> Outcome:
    t = LifecycleTracker(costs=costs)
    t.add(sig)
    outs = run(t, updates) + t.expire_due(C + 100 * STEP)
    assert len(outs) == 1
    return outs[0]


def _first_price_after_publication(sig: Signal, updates: Sequence[Bar | Tick]) -> tuple[int, float] | None:
    """The first tradable price by the rule: a tick after publication, a bar opening at or after it."""
    created, expires = to_ns(sig.created_at), to_ns(sig.expires_at)
    for u in updates:
        if isinstance(u, Tick) and u.ts > created:
            return (u.ts, u.price) if u.ts <= expires else None
        if isinstance(u, Bar) and u.ts >= created:
            return (u.ts, u.open) if u.ts < expires else None
    return None


@given(sc=scenarios())
def test_outcome_numbers_follow_from_fill_exit_and_costs(sc: Scenario) -> None:
    sig = sc.signal
    out = _feed(sig, sc.updates)
    s = sig.direction.sign
    stop, first, final = sig.stop, sig.targets[0], sig.targets[-1]
    assert sig.created_at <= out.closed_at <= sig.expires_at
    first_price = _first_price_after_publication(sig, sc.updates)
    if out.outcome is OutcomeKind.NOT_FILLED:
        assert out.fill_price is None and out.net_r is None and not out.win
        if first_price is None:
            assert out.first_price is None and out.closed_at == sig.expires_at
        else:
            assert out.first_price == first_price[1]
            assert s * (first_price[1] - stop) <= 0 or s * (first_price[1] - first) >= 0
        return
    assert first_price is not None and out.fill_price == first_price[1]
    assert out.filled_at == to_datetime(first_price[0])
    fill, exit_ = out.fill_price, out.exit_price
    assert s * (fill - stop) > 0 and s * (fill - first) < 0
    assert exit_ is not None and out.gross_pnl_pct is not None and out.net_pnl_pct is not None
    assert out.gross_r is not None and out.net_r is not None and out.costs_pct is not None
    assert out.gross_pnl_pct == pytest.approx(s * (exit_ - fill) / fill * 100, abs=1e-9)
    assert out.gross_r == pytest.approx(s * (exit_ - fill) / sig.risk_per_unit, abs=1e-9)
    held_days = out.holding_seconds / 86_400
    borrow = 50 / 365 * held_days if s < 0 else 0.0
    assert out.costs_pct == pytest.approx((5 * (fill + exit_) / fill + borrow) / 100, rel=1e-9)
    assert out.net_pnl_pct == pytest.approx(out.gross_pnl_pct - out.costs_pct, abs=1e-12)
    assert out.net_r == pytest.approx(out.net_pnl_pct * fill / (100 * sig.risk_per_unit), abs=1e-9)
    assert out.win is (out.net_r > 0)
    assert out.mae_pct is not None and out.mfe_pct is not None
    assert out.mae_pct <= min(0.0, out.gross_pnl_pct) and out.mfe_pct >= max(0.0, out.gross_pnl_pct)
    assert out.filled_at is not None
    assert out.holding_seconds == pytest.approx((out.closed_at - out.filled_at).total_seconds(), abs=1e-6)
    if out.outcome is OutcomeKind.STOP:
        # at or beyond the stop: never better than the stop, measured from the fill
        assert s * (exit_ - stop) <= 0 and out.gross_r <= s * (stop - fill) / sig.risk_per_unit + 1e-9
    elif out.outcome is OutcomeKind.TARGET:
        assert s * (exit_ - final) >= 0 and out.target_index == len(sig.targets) - 1
    else:
        assert s * (exit_ - stop) > 0 and s * (exit_ - final) < 0, "an expiry exits between the levels"
        assert out.closed_at == sig.expires_at
    # the exit is a price the market offered after publication, or a level it traded through
    offered = {stop, final}
    for u in sc.updates:
        if isinstance(u, Tick) and u.ts > C:
            offered.add(u.price)
        elif isinstance(u, Bar) and u.ts >= C:
            offered |= {u.open, u.close}
    assert exit_ in offered


@given(sc=scenarios())
def test_never_uses_a_price_from_before_the_signal_was_published(sc: Scenario) -> None:
    with_history = _feed(sc.signal, sc.updates)
    without = _feed(sc.signal, [u for u in sc.updates if u.ts > C or (isinstance(u, Bar) and u.ts == C)])
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
        return  # reflection left no positive prices; nothing to compare
    if flipped.stop <= 0 or any(t <= 0 for t in flipped.targets):
        return
    # No costs: a short pays borrow and its sides are charged on other prices, so only the
    # mechanics mirror exactly.
    a = _feed(sig, sc.updates, costs=NO_COSTS)
    b = _feed(flipped, mirrored, costs=NO_COSTS)
    assert (a.outcome, a.target_index, a.closed_at, a.filled_at) == (
        b.outcome,
        b.target_index,
        b.closed_at,
        b.filled_at,
    )
    if a.outcome is OutcomeKind.NOT_FILLED:
        return
    assert a.gross_r is not None and b.gross_r == pytest.approx(a.gross_r, abs=1e-9)
    assert a.mfe_pct is not None and a.mae_pct is not None and a.fill_price is not None
    assert b.mfe_pct is not None and b.mae_pct is not None and b.fill_price is not None
    assert b.fill_price == pytest.approx(2 * pivot - a.fill_price)
    # percent figures are relative to each side's own fill, so compare them in price
    assert b.mfe_pct * b.fill_price == pytest.approx(a.mfe_pct * a.fill_price, abs=1e-6)
    assert b.mae_pct * b.fill_price == pytest.approx(a.mae_pct * a.fill_price, abs=1e-6)
