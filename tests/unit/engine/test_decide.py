from datetime import timedelta

import pytest

from tradesignals.domain.market import Bar, Timeframe, to_datetime
from tradesignals.domain.signals import Direction, SignalType
from tradesignals.engine.decide import DecideParams, build_signal


def bar(tf: Timeframe = Timeframe.D1, close: float = 100.0) -> Bar:
    return Bar("AAPL", tf, 10 * tf.ns, close, close + 1, close - 1, close, 1e6)


def test_long_signal_has_atr_stop_and_r_multiple_targets() -> None:
    s = build_signal(bar(), Direction.LONG, 0.61, atr=2.0, model_version="m")
    assert s is not None
    assert s.entry == 100.0 and s.stop == 97.0
    assert s.targets == (103.0, 106.0, 109.0)
    assert s.type is SignalType.SWING
    assert s.created_at == to_datetime(bar().end)
    assert s.expires_at - s.created_at == timedelta(days=5)


def test_short_signal_mirrors_the_long() -> None:
    s = build_signal(bar(), Direction.SHORT, 0.55, atr=2.0, model_version="m")
    assert s is not None
    assert s.stop == 103.0 and s.targets == (97.0, 94.0, 91.0)


def test_intraday_bars_make_day_signals() -> None:
    s = build_signal(
        bar(Timeframe.M1),
        Direction.LONG,
        0.55,
        atr=0.5,
        model_version="m",
        params=DecideParams(day_horizon_bars=30),
    )
    assert s is not None and s.type is SignalType.DAY
    assert s.expires_at - s.created_at == timedelta(minutes=30)


@pytest.mark.parametrize("atr", [0.0, -1.0, 80.0])
def test_impossible_numbers_give_no_signal(atr: float) -> None:
    # zero/negative ATR has no stop distance; a huge ATR would put a long's stop below zero
    assert build_signal(bar(), Direction.LONG, 0.6, atr=atr, model_version="m") is None


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        (31.437110654, 31.4371),
        (60012.3456, 60012.35),
        (0.51234567, 0.512346),
        (1234.5678, 1234.57),
        (5.0, 5.0),
    ],
)
def test_round_price_keeps_six_significant_digits(price: float, expected: float) -> None:
    from tradesignals.engine.decide import round_price

    assert round_price(price) == expected


def test_daily_swing_follows_the_exchange_sessions() -> None:
    from datetime import UTC, datetime

    from tradesignals.domain.market import to_ns
    from tradesignals.marketdata.calendar import ExchangeCalendar

    # Thursday 2024-07-03 is a half day (13:00 NY = 17:00 UTC); July 4 is a holiday.
    day = Bar("AAPL", Timeframe.D1, to_ns(datetime(2024, 7, 3, tzinfo=UTC)), 100, 101, 99, 100, 1e6)
    s = build_signal(day, Direction.LONG, 0.6, atr=2.0, model_version="m", calendar=ExchangeCalendar("XNYS"))
    assert s is not None
    assert s.created_at == datetime(2024, 7, 3, 17, 0, tzinfo=UTC)
    # five sessions later: Jul 5, 8, 9, 10, 11 → the close of Jul 11 (16:00 NY = 20:00 UTC)
    assert s.expires_at == datetime(2024, 7, 11, 20, 0, tzinfo=UTC)


def test_day_signals_end_with_the_session_and_none_at_the_bell() -> None:
    from datetime import UTC, datetime

    from tradesignals.domain.market import to_ns
    from tradesignals.marketdata.calendar import ExchangeCalendar

    cal = ExchangeCalendar("XNYS")
    late = Bar("AAPL", Timeframe.M1, to_ns(datetime(2024, 1, 2, 20, 30, tzinfo=UTC)), 100, 101, 99, 100, 1e4)
    s = build_signal(late, Direction.LONG, 0.6, atr=0.5, model_version="m", calendar=cal)
    assert s is not None and s.expires_at == datetime(2024, 1, 2, 21, 0, tzinfo=UTC)
    last = Bar("AAPL", Timeframe.M1, to_ns(datetime(2024, 1, 2, 20, 59, tzinfo=UTC)), 100, 101, 99, 100, 1e4)
    assert build_signal(last, Direction.LONG, 0.6, atr=0.5, model_version="m", calendar=cal) is None
