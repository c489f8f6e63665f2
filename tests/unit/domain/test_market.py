from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradesignals.domain.market import Bar, Tick, Timeframe, to_datetime, to_ns


def test_timeframe_parse_accepts_known_and_names_allowed_values() -> None:
    assert Timeframe.parse(" 1H ") is Timeframe.H1
    assert Timeframe.D1.ns == 86_400 * 10**9
    with pytest.raises(ValueError, match=r"unknown timeframe '2m'; expected one of 1m, 5m, 15m, 1h, 1d"):
        Timeframe.parse("2m")


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)))
def test_ns_round_trip_keeps_microseconds(when: datetime) -> None:
    assert to_datetime(to_ns(when)) == when


def test_to_ns_converts_offsets_and_refuses_naive() -> None:
    eastern = timezone(timedelta(hours=-5))
    assert to_ns(datetime(2024, 1, 2, 9, 30, tzinfo=eastern)) == to_ns(
        datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    )
    with pytest.raises(ValueError, match="naive datetime"):
        to_ns(datetime(2024, 1, 2))


@pytest.mark.parametrize(
    ("tick", "problem"),
    [
        (Tick("AAPL", 1, float("nan"), 1.0), "not_finite"),
        (Tick("AAPL", 1, 0.0, 1.0), "non_positive_price"),
        (Tick("AAPL", 1, 10.0, -1.0), "negative_size"),
        (Tick("", 1, 10.0, 1.0), "empty_symbol"),
    ],
)
def test_tick_problems_name_the_reason(tick: Tick, problem: str) -> None:
    assert problem in tick.problems()


def test_good_tick_and_bar_have_no_problems() -> None:
    assert Tick("AAPL", 1, 10.0, 0.0).problems() == []
    bar = Bar("AAPL", Timeframe.M1, 0, 10, 11, 9, 10.5, 100)
    assert bar.problems() == []
    assert bar.end == 60 * 10**9


@pytest.mark.parametrize(
    ("ohlcv", "problem"),
    [
        ((10, 9, 11, 10, 1), "high_below_low"),
        ((12, 11, 9, 10, 1), "open_close_outside_range"),
        ((10, 11, 9, 10, -5), "negative_volume"),
        ((10, float("inf"), 9, 10, 1), "not_finite"),
        ((10, 11, 0, 10, 1), "non_positive_price"),
    ],
)
def test_bar_problems(ohlcv: tuple[float, ...], problem: str) -> None:
    o, h, l, c, v = ohlcv  # noqa: E741
    assert problem in Bar("X", Timeframe.D1, 0, o, h, l, c, v).problems()
