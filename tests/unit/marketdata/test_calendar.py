from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from tradesignals.domain.market import AssetClass, to_ns
from tradesignals.marketdata.calendar import (
    DAY_NS,
    AlwaysOpen,
    ExchangeCalendar,
    Session,
    SessionCalendar,
    calendar_for,
    exchange_calendar,
    is_crypto_symbol,
    utc_date_ns,
)

NY = ZoneInfo("America/New_York")
MIN_NS = 60 * 10**9


def ny(y: int, m: int, d: int, hh: int, mm: int = 0, ss: int = 0) -> int:
    return to_ns(datetime(y, m, d, hh, mm, ss, tzinfo=NY))


def utc(y: int, m: int, d: int, hh: int, mm: int = 0) -> int:
    return to_ns(datetime(y, m, d, hh, mm, tzinfo=UTC))


@pytest.fixture(scope="module")
def xnys() -> ExchangeCalendar:
    return exchange_calendar("XNYS")


def test_half_day_closes_at_one_pm_new_york(xnys: ExchangeCalendar) -> None:
    s = xnys.session_at(ny(2024, 7, 3, 12, 59))
    assert s is not None
    assert s.close == utc(2024, 7, 3, 17) == ny(2024, 7, 3, 13)
    assert s.open == utc(2024, 7, 3, 13, 30)
    assert s.label == utc_date_ns(2024, 7, 3)
    assert s.date == date(2024, 7, 3)
    assert xnys.session_at(ny(2024, 7, 3, 13)) == s  # the closing auction print still belongs to it
    assert xnys.session_at(ny(2024, 7, 3, 13, 0, 10)) is None  # after hours
    assert xnys.session_at(ny(2024, 7, 3, 15)) is None  # a regular day's hours, but not on a half day


def test_independence_day_has_no_session(xnys: ExchangeCalendar) -> None:
    assert xnys.sessions_between(utc_date_ns(2024, 7, 4), utc_date_ns(2024, 7, 5)) == []
    assert xnys.session_at(ny(2024, 7, 4, 11)) is None
    assert xnys.segment(ny(2024, 7, 4, 11)) is None
    week = xnys.sessions_between(utc_date_ns(2024, 7, 1), utc_date_ns(2024, 7, 6))
    assert [s.date for s in week] == [date(2024, 7, d) for d in (1, 2, 3, 5)]


def test_open_follows_daylight_saving_time(xnys: ExchangeCalendar) -> None:
    winter = xnys.session_at(ny(2024, 1, 16, 10))
    summer = xnys.session_at(ny(2024, 7, 16, 10))
    assert winter is not None and summer is not None
    assert winter.open == utc(2024, 1, 16, 14, 30)
    assert winter.close == utc(2024, 1, 16, 21)
    assert summer.open == utc(2024, 7, 16, 13, 30)
    assert summer.close == utc(2024, 7, 16, 20)


def test_segment_bounds_and_closed_times(xnys: ExchangeCalendar) -> None:
    open_, close = utc(2024, 1, 16, 14, 30), utc(2024, 1, 16, 21)
    reach = close + 10 * 10**9  # the closing auction's allowance
    seg = (open_, close, open_, utc_date_ns(2024, 1, 16), reach)
    assert xnys.segment(open_) == seg
    assert xnys.segment(close - 1) == seg
    assert xnys.segment(close) == seg  # the closing print
    assert xnys.segment(reach - 1) == seg
    assert xnys.segment(open_ - 1) is None  # pre-market
    assert xnys.segment(reach) is None  # after hours
    assert xnys.segment(utc(2024, 1, 13, 15)) is None  # Saturday


def test_sessions_can_be_strictly_open_to_close() -> None:
    strict = ExchangeCalendar("XNYS", start=date(2024, 1, 1), end=date(2024, 2, 1), closing_print_ns=0)
    close = utc(2024, 1, 16, 21)
    assert strict.segment(close - 1) is not None
    assert strict.segment(close) is None
    with pytest.raises(ValueError, match="closing_print_ns"):
        ExchangeCalendar("XNYS", closing_print_ns=-1)


def test_range_grows_to_cover_old_and_far_future_timestamps() -> None:
    cal = ExchangeCalendar("XNYS", start=date(2024, 1, 1), end=date(2024, 3, 1))
    # 1987-10-19, Black Monday, was a regular session.
    old = cal.session_at(ny(1987, 10, 19, 11))
    assert old is not None and old.date == date(1987, 10, 19)
    assert old.open == utc(1987, 10, 19, 13, 30)  # EDT in October 1987
    # Christmas 2031 is a holiday, the 26th a Friday session.
    assert cal.session_at(ny(2031, 12, 25, 11)) is None
    friday = cal.session_at(ny(2031, 12, 26, 11))
    assert friday is not None and friday.close == ny(2031, 12, 26, 16)
    # Out of pandas' range: closed, not an exception.
    assert cal.segment(-(300 * 365 * DAY_NS)) is None
    assert cal.segment(utc_date_ns(2261, 12, 31) + 500 * DAY_NS) is None


def test_sessions_between_is_half_open_on_opens(xnys: ExchangeCalendar) -> None:
    monday_open = utc(2024, 1, 8, 14, 30)
    got = xnys.sessions_between(monday_open, monday_open + 1)
    assert [s.open for s in got] == [monday_open]
    assert xnys.sessions_between(monday_open + 1, monday_open + DAY_NS) == []
    assert xnys.sessions_between(monday_open, monday_open) == []


def test_crypto_is_always_open_in_utc_days() -> None:
    cal = AlwaysOpen()
    for ts in (utc(2024, 7, 4, 0), utc(2024, 7, 6, 23, 59), utc(2024, 12, 25, 12)):
        assert cal.segment(ts) is not None
    s = cal.session_at(utc(2024, 7, 4, 15, 7))
    assert s == Session(utc_date_ns(2024, 7, 4), utc_date_ns(2024, 7, 4), utc_date_ns(2024, 7, 5))
    assert s.is_trading(utc(2024, 7, 4, 23, 59))
    days = cal.sessions_between(utc(2024, 7, 4, 1), utc(2024, 7, 7, 0))
    assert [d.date for d in days] == [date(2024, 7, 5), date(2024, 7, 6)]


def test_session_is_trading_excludes_a_lunch_break() -> None:
    s = Session(0, 100, 1000, 400, 500)
    assert s.is_trading(100) and s.is_trading(399) and s.is_trading(500)
    assert not s.is_trading(400) and not s.is_trading(499) and not s.is_trading(1000)


def test_a_calendar_with_a_lunch_break_has_two_segments() -> None:
    hk = exchange_calendar("XHKG")
    day = hk.sessions_between(utc_date_ns(2024, 3, 4), utc_date_ns(2024, 3, 5))
    assert len(day) == 1
    s = day[0]
    assert s.break_start is not None and s.break_end is not None
    morning, afternoon = hk.segment(s.open), hk.segment(s.break_end)
    # No closing-print allowance into the lunch break; the afternoon's bars count from 13:00.
    assert morning == (s.open, s.break_start, s.open, s.label, s.break_start)
    assert afternoon == (s.break_end, s.close, s.break_end, s.label, s.close + 10 * 10**9)
    assert hk.segment(s.break_start) is None


def test_calendar_for_asset_classes_and_symbols() -> None:
    xnys = exchange_calendar("XNYS")
    assert calendar_for(AssetClass.EQUITY) is xnys
    assert calendar_for("equity") is xnys
    assert calendar_for("AAPL") is xnys
    assert calendar_for("GBTC") is xnys  # a bitcoin *trust* trades on NYSE hours
    for crypto in (AssetClass.CRYPTO, "crypto", "BTCUSDT", "SIM005-USD", "X:BTCUSD", "ethusdc"):
        cal = calendar_for(crypto)
        assert cal.always_open, crypto
    assert isinstance(xnys, SessionCalendar)
    assert isinstance(calendar_for("crypto"), SessionCalendar)
    assert is_crypto_symbol("eth-usd") and not is_crypto_symbol("BRK-B")
