from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradesignals.domain.market import Bar, Tick, Timeframe, to_ns
from tradesignals.marketdata.bars import BarAggregator, resample
from tradesignals.marketdata.calendar import (
    AlwaysOpen,
    ExchangeCalendar,
    SessionCalendar,
    calendar_for,
    exchange_calendar,
    utc_date_ns,
)

NY = ZoneInfo("America/New_York")
HK = ZoneInfo("Asia/Hong_Kong")
SEC = 10**9
MIN = 60 * SEC
H1, M5, M1, D1 = Timeframe.H1, Timeframe.M5, Timeframe.M1, Timeframe.D1


def ny(y: int, m: int, d: int, hh: int, mm: int = 0, ss: int = 0) -> int:
    return to_ns(datetime(y, m, d, hh, mm, ss, tzinfo=NY))


def feed(agg: BarAggregator, ticks: list[Tick]) -> list[Bar]:
    return [bar for t in ticks for bar in agg.update(t)] + agg.flush()


@pytest.fixture(scope="module")
def xnys() -> ExchangeCalendar:
    return exchange_calendar("XNYS")


def test_hourly_equity_bars_start_at_the_open_and_the_last_is_cut_by_the_close(
    xnys: ExchangeCalendar,
) -> None:
    agg = BarAggregator(H1, calendar=xnys)
    day = (2024, 1, 16)
    ticks = [
        Tick("AAPL", ny(*day, 9, 29, 59), 99.0, 1),  # pre-market: no bar
        Tick("AAPL", ny(*day, 9, 30), 100.0, 1),
        Tick("AAPL", ny(*day, 10, 29, 59), 101.0, 2),
        Tick("AAPL", ny(*day, 10, 30), 102.0, 3),
        Tick("AAPL", ny(*day, 15, 30), 103.0, 4),
        Tick("AAPL", ny(*day, 15, 59, 59), 104.0, 5),
        Tick("AAPL", ny(*day, 16, 0, 0) + 300_000_000, 104.5, 50),  # the closing auction print
        Tick("AAPL", ny(*day, 16, 0, 10), 150.0, 6),  # after hours: no bar
        Tick("AAPL", ny(*day, 17, 5), 151.0, 7),
    ]
    bars = feed(agg, ticks)
    assert [b.ts for b in bars] == [ny(*day, 9, 30), ny(*day, 10, 30), ny(*day, 15, 30)]
    assert bars[0] == Bar("AAPL", H1, ny(*day, 9, 30), 100.0, 101.0, 100.0, 101.0, 3.0)
    # The 15:30 bar holds 15:30-16:00 and the closing print; after-hours trades do not reach it.
    assert bars[2] == Bar("AAPL", H1, ny(*day, 15, 30), 103.0, 104.5, 103.0, 104.5, 59.0)
    assert agg.outside_session == 3
    assert agg.late == 0


def test_every_hourly_bar_of_a_regular_session(xnys: ExchangeCalendar) -> None:
    agg = BarAggregator(H1, calendar=xnys)
    ticks = [Tick("SPY", ny(2024, 1, 16, 9, 30) + i * MIN, 470.0, 1) for i in range(390)]
    ticks.append(Tick("SPY", ny(2024, 1, 16, 16, 0, 15), 471.0, 1))  # after hours
    bars = feed(agg, ticks)
    hours = [(9, 30), (10, 30), (11, 30), (12, 30), (13, 30), (14, 30), (15, 30)]
    assert [b.ts for b in bars] == [ny(2024, 1, 16, h, m) for h, m in hours]
    assert [b.volume for b in bars] == [60.0] * 6 + [30.0]


def test_half_day_bars_end_at_one_pm(xnys: ExchangeCalendar) -> None:
    agg = BarAggregator(H1, calendar=xnys)
    ticks = [Tick("SPY", ny(2024, 7, 3, 9, 30) + i * MIN, 545.0 + i / 100, 1) for i in range(6 * 60)]
    bars = feed(agg, ticks)
    assert [b.ts for b in bars] == [ny(2024, 7, 3, h, 30) for h in (9, 10, 11, 12)]
    assert bars[-1].volume == 31.0  # 12:30-13:00 and the 13:00:00 closing print
    assert bars[-1].close == 545.0 + 210 / 100
    assert agg.outside_session == 6 * 60 - 211


def test_holiday_ticks_are_outside_the_session_and_leave_the_open_bar_alone(xnys: ExchangeCalendar) -> None:
    agg = BarAggregator(M1, calendar=xnys)
    assert agg.update(Tick("SPY", ny(2024, 7, 3, 12, 59, 30), 545.0, 1)) == []
    for minute in range(0, 600, 7):
        assert agg.update(Tick("SPY", ny(2024, 7, 4, 8) + minute * MIN, 999.0, 1)) == []
    assert agg.outside_session == len(range(0, 600, 7))
    closed = agg.update(Tick("SPY", ny(2024, 7, 5, 9, 30, 1), 546.0, 1))
    assert closed == [Bar("SPY", M1, ny(2024, 7, 3, 12, 59), 545.0, 545.0, 545.0, 545.0, 1.0)]
    assert agg.open_bar("SPY") == Bar("SPY", M1, ny(2024, 7, 5, 9, 30), 546.0, 546.0, 546.0, 546.0, 1.0)


def test_daily_bars_one_per_session_labelled_midnight_utc_of_the_session_date(xnys: ExchangeCalendar) -> None:
    agg = BarAggregator(D1, calendar=xnys)
    ticks = []
    for d in (2, 3, 4, 5, 6):  # Tue, Wed (half day), Thu (holiday), Fri, Sat
        for hh, mm in ((8, 0), (9, 30), (12, 0), (12, 59), (15, 59), (19, 0)):
            ticks.append(Tick("SPY", ny(2024, 7, d, hh, mm), float(100 * d + hh), float(d)))
    bars = feed(agg, ticks)
    assert [b.ts for b in bars] == [utc_date_ns(2024, 7, d) for d in (2, 3, 5)]
    tue, wed, fri = bars
    assert (tue.open, tue.high, tue.low, tue.close, tue.volume) == (209.0, 215.0, 209.0, 215.0, 8.0)
    # Half day: 15:59 is after the 13:00 close, so the close is the 12:59 print.
    assert (wed.open, wed.high, wed.low, wed.close, wed.volume) == (309.0, 312.0, 309.0, 312.0, 9.0)
    assert fri.close == 515.0
    # Per regular session 2 of 6 prints are outside (08:00, 19:00); on the half day 3 (15:59 too);
    # all 6 on the holiday and on Saturday.
    assert agg.outside_session == 2 + 3 + 6 + 2 + 6


def test_crypto_and_equities_in_one_aggregator_each_on_its_own_clock() -> None:
    agg = BarAggregator(H1, calendar=calendar_for)
    thursday = ny(2024, 7, 4, 9, 45)  # a US holiday: crypto trades, equities do not
    assert agg.update(Tick("BTCUSDT", thursday, 57_000.0, 0.1)) == []
    assert agg.update(Tick("AAPL", thursday, 220.0, 10)) == []
    btc = agg.open_bar("BTCUSDT")
    assert btc is not None and btc.ts == thursday - thursday % H1.ns  # 13:00 UTC, UTC-aligned
    assert agg.open_bar("AAPL") is None
    assert agg.outside_session == 1
    agg.update(Tick("AAPL", ny(2024, 7, 5, 9, 45), 221.0, 10))
    aapl = agg.open_bar("AAPL")
    assert aapl is not None and aapl.ts == ny(2024, 7, 5, 9, 30)


def test_a_lunch_break_splits_intraday_bars_but_not_the_daily_bar() -> None:
    hk = exchange_calendar("XHKG")

    def hkt(hh: int, mm: int) -> int:
        return to_ns(datetime(2024, 3, 4, hh, mm, tzinfo=HK))

    prints = [(9, 30), (11, 59), (12, 30), (13, 0), (13, 59), (14, 0), (15, 59)]
    ticks = [Tick("0700.HK", hkt(h, m), float(h * 100 + m), 1) for h, m in prints]
    hourly = feed(BarAggregator(H1, calendar=hk), ticks)
    assert [b.ts for b in hourly] == [hkt(9, 30), hkt(11, 30), hkt(13, 0), hkt(14, 0), hkt(15, 0)]
    daily_agg = BarAggregator(D1, calendar=hk)
    (daily,) = feed(daily_agg, ticks)
    assert daily.ts == utc_date_ns(2024, 3, 4)
    assert (daily.open, daily.close, daily.volume) == (930.0, 1559.0, 6.0)
    assert daily_agg.outside_session == 1  # the 12:30 print, during lunch


def test_late_and_outside_ticks_are_told_apart(xnys: ExchangeCalendar) -> None:
    agg = BarAggregator(M5, calendar=xnys)
    agg.update(Tick("A", ny(2024, 1, 16, 10, 7), 10.0, 1))
    agg.update(Tick("A", ny(2024, 1, 16, 10, 12), 11.0, 1))
    assert agg.update(Tick("A", ny(2024, 1, 16, 10, 9), 12.0, 1)) == []  # its bar is closed
    assert agg.update(Tick("A", ny(2024, 1, 16, 8, 0), 12.0, 1)) == []  # pre-market, earlier still
    assert (agg.late, agg.outside_session) == (1, 1)
    # A late tick inside the open bar still counts: placed by time, it becomes the open.
    agg.update(Tick("A", ny(2024, 1, 16, 10, 10, 30), 9.0, 1))
    assert agg.open_bar("A") == Bar("A", M5, ny(2024, 1, 16, 10, 10), 9.0, 11.0, 9.0, 11.0, 2.0)


def test_the_default_and_always_open_stay_utc_aligned() -> None:
    for agg in (BarAggregator(H1), BarAggregator(H1, calendar=AlwaysOpen())):
        agg.update(Tick("X", ny(2024, 7, 4, 9, 45), 1.0, 1))
        bar = agg.open_bar("X")
        assert bar is not None and bar.ts % H1.ns == 0
        assert agg.outside_session == 0


def test_calendar_and_bucket_of_are_exclusive(xnys: ExchangeCalendar) -> None:
    with pytest.raises(ValueError, match="not both"):
        BarAggregator(H1, calendar=xnys, bucket_of=lambda ts: ts)
    with pytest.raises(ValueError, match="not both"):
        resample([], H1, calendar=xnys, bucket_of=lambda ts: ts)


def test_resample_leaves_out_bars_opening_while_closed_and_passes_daily_bars_through(
    xnys: ExchangeCalendar,
) -> None:
    pre = Bar("A", M1, ny(2024, 1, 16, 9, 29), 1, 1, 1, 1, 1)
    first = Bar("A", M1, ny(2024, 1, 16, 9, 30), 2, 3, 1, 2, 5)
    assert resample([pre, first], H1, calendar=xnys) == [Bar("A", H1, ny(2024, 1, 16, 9, 30), 2, 3, 1, 2, 5)]
    daily = [Bar("A", D1, utc_date_ns(2024, 1, d), 1, 1, 1, 1, 1) for d in (17, 16)]
    assert resample(daily, D1, calendar=xnys) == daily[::-1]


# -- resampling agrees with aggregating the ticks directly ---------------------------------------------

# 2024-07-01 (Mon) .. 07-09: a regular day, a half day, a holiday, a weekend, DST in force.
START = ny(2024, 7, 1, 4, 0)
SPAN = 8 * 86_400 * SEC

tick_rows = st.lists(
    st.tuples(
        st.sampled_from(["SPY", "AAPL", "BTCUSDT"]),
        st.integers(min_value=0, max_value=90 * MIN),  # gap to the previous tick
        st.floats(min_value=0.01, max_value=1e5, allow_nan=False, allow_infinity=False),
        st.integers(min_value=0, max_value=10_000),  # whole sizes: sums are exact in any order
    ),
    max_size=400,
)


def direct(ticks: list[Tick], tf: Timeframe, cal: SessionCalendar | None) -> list[Bar]:
    agg = BarAggregator(tf, calendar=calendar_for if cal is None else cal)
    return sorted(feed(agg, ticks), key=lambda b: (b.ts, b.symbol))


@settings(max_examples=120, deadline=None)
@given(tick_rows, st.integers(min_value=0, max_value=SPAN))
def test_resample_1m_to_5m_to_1h_to_1d_equals_direct_aggregation(
    rows: list[tuple[str, int, float, int]], offset: int
) -> None:
    ticks, now = [], START + offset
    for sym, gap, price, size in rows:
        now += gap
        ticks.append(Tick(sym, now, price, float(size)))

    m1 = direct(ticks, M1, None)
    m5 = resample(m1, M5, calendar=calendar_for)
    h1 = resample(m5, H1, calendar=calendar_for)
    assert m5 == direct(ticks, M5, None)
    assert h1 == direct(ticks, H1, None)
    assert resample(m1, D1, calendar=calendar_for) == direct(ticks, D1, None)
    assert resample(h1, D1, calendar=calendar_for) == direct(ticks, D1, None)


@settings(max_examples=60, deadline=None)
@given(tick_rows)
def test_session_bars_match_a_naive_groupby(rows: list[tuple[str, int, float, int]]) -> None:
    xnys = exchange_calendar("XNYS")
    ticks, now = [], START
    for sym, gap, price, size in rows:
        now += gap
        ticks.append(Tick(sym, now, price, float(size)))
    got = direct(ticks, H1, xnys)

    groups: dict[tuple[str, int], list[Tick]] = defaultdict(list)
    outside = 0
    for t in ticks:
        s = xnys.session_at(t.ts)
        if s is None:
            outside += 1
            continue
        at = min(t.ts, s.close - 1)  # a closing print joins the last bar
        groups[(t.symbol, at - (at - s.open) % H1.ns)].append(t)
    expected = sorted(
        (
            Bar(
                sym,
                H1,
                ts,
                g[0].price,
                max(x.price for x in g),
                min(x.price for x in g),
                g[-1].price,
                sum(x.size for x in g),
            )
            for (sym, ts), g in groups.items()
        ),
        key=lambda b: (b.ts, b.symbol),
    )
    assert got == expected
    agg = BarAggregator(H1, calendar=xnys)
    feed(agg, ticks)
    assert agg.outside_session == outside


def test_the_closing_print_joins_the_last_bar_of_any_timeframe(xnys: ExchangeCalendar) -> None:
    closing = Tick("SPY", ny(2024, 1, 16, 16, 0, 0) + 250_000_000, 475.0, 900.0)
    for tf, label in ((M1, (15, 59)), (M5, (15, 55)), (Timeframe.M15, (15, 45)), (H1, (15, 30))):
        agg = BarAggregator(tf, calendar=xnys)
        agg.update(Tick("SPY", ny(2024, 1, 16, 15, 59, 30), 474.0, 100.0))
        assert agg.update(closing) == []
        assert agg.open_bar("SPY") == Bar(
            "SPY", tf, ny(2024, 1, 16, *label), 474.0, 475.0, 474.0, 475.0, 1000.0
        )
    daily = BarAggregator(D1, calendar=xnys)
    daily.update(Tick("SPY", ny(2024, 1, 16, 9, 30), 470.0, 1.0))
    daily.update(closing)
    bar = daily.open_bar("SPY")
    assert bar is not None and (bar.ts, bar.close, bar.volume) == (utc_date_ns(2024, 1, 16), 475.0, 901.0)
    # A strict calendar (no allowance) leaves the same print outside the session.
    strict = BarAggregator(M5, calendar=ExchangeCalendar("XNYS", closing_print_ns=0))
    strict.update(closing)
    assert strict.outside_session == 1
