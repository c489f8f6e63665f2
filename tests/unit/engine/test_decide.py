"""build_signal: the rulebook's plan (levels, expiry) stamped with when it was decided and published."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from tradesignals.domain.market import Bar, Timeframe, to_datetime, to_ns
from tradesignals.domain.sessions import DAY_NS, utc_date_ns
from tradesignals.domain.signals import Direction, Signal, SignalType
from tradesignals.domain.trade_plan import PlanParams, levels, round_price
from tradesignals.engine.decide import build_signal
from tradesignals.marketdata.calendar import calendar_for, exchange_calendar
from tradesignals.news.earnings import EarningsCalendar

T0 = utc_date_ns(2026, 3, 2)  # a UTC midnight
LONG, SHORT = Direction.LONG, Direction.SHORT
XNYS = exchange_calendar("XNYS")


def bar(tf: Timeframe = Timeframe.D1, close: float = 100.0, ts: int = T0, symbol: str = "AAPL") -> Bar:
    return Bar(symbol, tf, ts, close, close + 1, close - 1, close, 1e6)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# ---- levels ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        (31.437110654, 31.4371),
        (60012.3456, 60012.35),
        (0.51234567, 0.512346),
        (1234.5678, 1234.57),
        (5.0, 5.0),
        (0.0123456789, 0.0123457),
    ],
)
def test_round_price_keeps_six_significant_digits_and_at_least_cents(price: float, expected: float) -> None:
    assert round_price(price) == expected


def test_levels_are_atr_stops_and_r_multiple_targets() -> None:
    lv = levels(100.0, 2.0, LONG, PlanParams())
    assert lv is not None  # 1.5 ATR = 3 = 1R
    assert (lv.entry, lv.stop, lv.targets, lv.risk) == (100.0, 97.0, (103.0, 106.0, 109.0), 3.0)
    short = levels(100.0, 2.0, SHORT, PlanParams())
    assert short is not None and (short.stop, short.targets) == (103.0, (97.0, 94.0, 91.0))
    custom = levels(100.0, 2.0, LONG, PlanParams(stop_atr=2.0, target_r=(1.5, 3.0)))
    assert custom is not None and (custom.stop, custom.targets) == (96.0, (106.0, 112.0))


def test_levels_are_rounded_as_a_person_reads_them() -> None:
    # risk 1.5 × 0.1234 = 0.1851; every level rounded to 4 decimals (six significant digits)
    lv = levels(31.437110654, 0.1234, LONG, PlanParams())
    assert lv is not None
    assert lv.entry == 31.4371 and lv.stop == 31.252
    assert lv.targets == (31.6222, 31.8073, 31.9924)


@pytest.mark.parametrize(
    ("price", "atr", "direction"),
    [
        (100.0, 0.0, LONG),  # no stop distance
        (100.0, -1.0, LONG),
        (100.0, math.nan, LONG),
        (100.0, math.inf, LONG),
        (0.0, 1.0, LONG),
        (math.nan, 1.0, LONG),
        (100.0, 80.0, LONG),  # the stop would be below zero
        (100.0, 30.0, SHORT),  # the last target would be below zero
        (1.0, 1e-7, LONG),  # rounding collapses every level onto the price
    ],
)
def test_levels_that_cannot_exist_are_none(price: float, atr: float, direction: Direction) -> None:
    assert levels(price, atr, direction, PlanParams()) is None


def test_plan_params_refuse_nonsense_with_a_reason() -> None:
    with pytest.raises(ValueError, match="stop_atr must be a positive"):
        PlanParams(stop_atr=0.0)
    with pytest.raises(ValueError, match="target_r must increase"):
        PlanParams(target_r=(2.0, 1.0))
    with pytest.raises(ValueError, match="swing_sessions must be 1–7"):
        PlanParams(swing_sessions=0)


# ---- build_signal ----------------------------------------------------------------------------------


def test_a_daily_bar_makes_a_swing_signal_with_the_plans_levels() -> None:
    s = build_signal(bar(), LONG, 0.61, atr=2.0, model_version="m", reasons=("why",), base_rate=0.5)
    assert s is not None
    assert s.type is SignalType.SWING and s.direction is LONG and s.symbol == "AAPL"
    assert s.entry == 100.0 and s.stop == 97.0 and s.targets == (103.0, 106.0, 109.0)
    assert s.confidence == 0.61 and s.reasons == ("why",) and s.model_version == "m"
    assert s.timeframe == "1d" and s.base_rate == 0.5 and s.edge == pytest.approx(0.11)
    # no calendar: always open, UTC days. Decided at the bar's close (the next midnight); the five
    # sessions opening from then on end at the close of the fifth.
    assert s.decided_at == s.created_at == to_datetime(T0 + DAY_NS)
    assert s.expires_at == to_datetime(T0 + 6 * DAY_NS)


def test_entry_is_the_rounded_decision_close() -> None:
    s = build_signal(bar(close=31.437110654), SHORT, 0.6, atr=0.1234, model_version="m")
    assert s is not None and s.entry == 31.4371 and s.stop == 31.6222  # 31.437110654 + 1.5 × 0.1234


@pytest.mark.parametrize("atr", [0.0, -1.0, math.nan, 80.0])
def test_impossible_numbers_give_no_signal(atr: float) -> None:
    assert build_signal(bar(), LONG, 0.6, atr=atr, model_version="m") is None


def test_a_confidence_outside_zero_one_gives_no_signal() -> None:
    assert build_signal(bar(), LONG, 1.5, atr=2.0, model_version="m") is None


def test_swing_expiry_counts_exchange_sessions_across_a_holiday() -> None:
    # Wednesday 2024-07-03 is a half day (13:00 New York = 17:00 UTC); Thursday July 4 is a holiday.
    day = bar(ts=utc_date_ns(2024, 7, 3))
    s = build_signal(day, LONG, 0.6, atr=2.0, model_version="m", calendar=XNYS)
    assert s is not None
    assert s.decided_at == s.created_at == utc(2024, 7, 3, 17)
    # five sessions: Jul 5, 8, 9, 10, 11 → the close of Jul 11 (16:00 New York = 20:00 UTC)
    assert s.expires_at == utc(2024, 7, 11, 20)
    two = build_signal(
        day, LONG, 0.6, atr=2.0, model_version="m", calendar=XNYS, plan=PlanParams(swing_sessions=2)
    )
    assert two is not None and two.expires_at == utc(2024, 7, 8, 20)  # Jul 5, Jul 8
    one = build_signal(
        day, LONG, 0.6, atr=2.0, model_version="m", calendar=calendar_for, plan=PlanParams(swing_sessions=1)
    )
    assert one is not None and one.expires_at == utc(2024, 7, 5, 20)  # the holiday is not a session


def test_day_signals_end_with_the_session_and_none_at_the_bell() -> None:
    late = bar(Timeframe.M1, ts=to_ns(utc(2024, 1, 2, 20, 30)))
    s = build_signal(late, LONG, 0.6, atr=0.5, model_version="m", calendar=XNYS)
    assert s is not None and s.type is SignalType.DAY and s.timeframe == "1m"
    assert s.decided_at == utc(2024, 1, 2, 20, 31) and s.expires_at == utc(2024, 1, 2, 21)
    last = bar(Timeframe.M1, ts=to_ns(utc(2024, 1, 2, 20, 59)))  # decided at 16:00 New York
    assert build_signal(last, LONG, 0.6, atr=0.5, model_version="m", calendar=XNYS) is None
    premarket = bar(Timeframe.M1, ts=to_ns(utc(2024, 1, 2, 12, 0)))
    assert build_signal(premarket, LONG, 0.6, atr=0.5, model_version="m", calendar=XNYS) is None


def test_a_sessions_short_last_hourly_bar_decides_at_the_close_and_has_no_day_left() -> None:
    # The 1h bar opening 15:30 New York ends at the 16:00 close, not 16:30.
    short_bar = bar(Timeframe.H1, ts=to_ns(utc(2024, 1, 2, 20, 30)))
    assert build_signal(short_bar, LONG, 0.6, atr=0.5, model_version="m", calendar=XNYS) is None
    swing = build_signal(
        short_bar, LONG, 0.6, atr=0.5, model_version="m", calendar=XNYS, kind=SignalType.SWING
    )
    assert swing is not None and swing.decided_at == utc(2024, 1, 2, 21)
    assert swing.expires_at == utc(2024, 1, 9, 21)  # Jan 3, 4, 5, 8, 9


def test_crypto_day_signals_end_at_utc_midnight() -> None:
    s = build_signal(
        bar(Timeframe.H1, ts=T0 + 20 * 3_600 * 10**9, symbol="BTCUSDT"),
        SHORT,
        0.6,
        atr=0.5,
        model_version="m",
        calendar=calendar_for,
    )
    assert s is not None and s.type is SignalType.DAY
    assert s.decided_at == to_datetime(T0 + 21 * 3_600 * 10**9) and s.expires_at == to_datetime(T0 + DAY_NS)


# ---- earnings -------------------------------------------------------------------------------------


def test_a_report_inside_the_horizon_cuts_the_expiry_and_one_too_close_gives_no_signal() -> None:
    decided = T0 + DAY_NS
    natural = T0 + 6 * DAY_NS

    def with_release(release: int) -> Signal | None:
        cal = EarningsCalendar({"AAPL": [release]})
        return build_signal(bar(), LONG, 0.6, atr=2.0, model_version="m", earnings=cal)

    cut = with_release(decided + 3 * DAY_NS)
    assert cut is not None and cut.expires_at == to_datetime(decided + 3 * DAY_NS)
    assert with_release(decided + DAY_NS) is None  # within one bar: too close to play out
    assert with_release(decided + DAY_NS // 2) is None
    later = with_release(natural + DAY_NS)
    assert later is not None and later.expires_at == to_datetime(natural)
    past = with_release(decided - DAY_NS)
    assert past is not None and past.expires_at == to_datetime(natural)
    other = EarningsCalendar({"MSFT": [decided + 3 * DAY_NS]})
    s = build_signal(bar(), LONG, 0.6, atr=2.0, model_version="m", earnings=other)
    assert s is not None and s.expires_at == to_datetime(natural)


# ---- ids and times ---------------------------------------------------------------------------------


def test_ids_are_reproducible_and_sortable_by_decision_time() -> None:
    a = build_signal(bar(), LONG, 0.6, atr=2.0, model_version="m1")
    again = build_signal(bar(), LONG, 0.7, atr=2.5, model_version="m1")  # same decision, other numbers
    republished = build_signal(bar(), LONG, 0.6, atr=2.0, model_version="m1", published_ns=T0 + DAY_NS + 5)
    other_model = build_signal(bar(), LONG, 0.6, atr=2.0, model_version="m2")
    other_side = build_signal(bar(), SHORT, 0.6, atr=2.0, model_version="m1")
    next_bar = build_signal(bar(ts=T0 + DAY_NS), LONG, 0.6, atr=2.0, model_version="m1")
    signals = [a, again, republished, other_model, other_side, next_bar]
    assert all(s is not None for s in signals)
    ids = [s.id for s in signals if s is not None]
    assert ids[0] == ids[1] == ids[2]  # a redelivered bar makes the same id, whenever it is published
    assert len({ids[0], ids[3], ids[4], ids[5]}) == 4
    decided_ms = (T0 + DAY_NS) // 1_000_000
    assert all(len(i) == 22 for i in ids)
    assert all(i[:12] == f"{decided_ms:012x}" for i in ids[:5])
    assert ids[5][:12] == f"{decided_ms + 86_400_000:012x}" and ids[5] > ids[0]


def test_tick_mode_publishes_after_the_decision() -> None:
    decided = T0 + DAY_NS
    s = build_signal(bar(), LONG, 0.6, atr=2.0, model_version="m", published_ns=decided + 3 * 10**9)
    assert s is not None
    assert s.decided_at == to_datetime(decided)
    assert s.created_at == to_datetime(decided) + timedelta(seconds=3)
    assert s.expires_at == to_datetime(T0 + 6 * DAY_NS)  # the horizon runs from the decision
    early = build_signal(bar(), LONG, 0.6, atr=2.0, model_version="m", published_ns=decided - 10)
    assert early is not None and early.created_at == early.decided_at == to_datetime(decided)
    late = T0 + 6 * DAY_NS
    assert build_signal(bar(), LONG, 0.6, atr=2.0, model_version="m", published_ns=late) is None
