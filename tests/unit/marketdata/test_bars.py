from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradesignals.domain.market import Bar, Tick, Timeframe
from tradesignals.marketdata.bars import BarAggregator, resample, utc_bucket

MIN = Timeframe.M1.ns
SEC = 10**9


def t(symbol: str, ts: int, price: float, size: float = 1.0) -> Tick:
    return Tick(symbol, ts, price, size)


def test_a_tick_in_a_later_bucket_closes_the_open_bar() -> None:
    agg = BarAggregator(Timeframe.M1)
    base = 1_000 * MIN
    assert agg.update(t("A", base + 1 * SEC, 10.0, 5)) == []
    assert agg.update(t("A", base + 20 * SEC, 12.0, 1)) == []
    assert agg.update(t("A", base + 40 * SEC, 9.0, 2)) == []
    assert agg.update(t("A", base + 59 * SEC, 11.0, 3)) == []
    closed = agg.update(t("A", base + MIN, 11.5, 4))
    assert closed == [Bar("A", Timeframe.M1, base, 10.0, 12.0, 9.0, 11.0, 11.0)]


def test_empty_buckets_make_no_bar_and_symbols_are_independent() -> None:
    agg = BarAggregator(Timeframe.M1)
    agg.update(t("A", 0, 1.0))
    agg.update(t("B", 10 * SEC, 2.0))
    assert agg.update(t("B", 5 * MIN, 3.0)) == [Bar("B", Timeframe.M1, 0, 2.0, 2.0, 2.0, 2.0, 1.0)]
    # A is still open: B's later tick does not close other symbols' bars.
    out = agg.update(t("A", 7 * MIN + 1, 4.0))
    assert out == [Bar("A", Timeframe.M1, 0, 1.0, 1.0, 1.0, 1.0, 1.0)]
    flushed = agg.flush()
    assert [(b.symbol, b.ts) for b in flushed] == [("B", 5 * MIN), ("A", 7 * MIN)]
    assert agg.flush() == []


def test_daily_buckets_open_at_midnight_utc() -> None:
    agg = BarAggregator(Timeframe.D1)
    day = Timeframe.D1.ns
    agg.update(t("A", 3 * day + 14 * 3600 * SEC, 1.0))
    assert agg.open_bar("A") == Bar("A", Timeframe.D1, 3 * day, 1.0, 1.0, 1.0, 1.0, 1.0)
    assert agg.open_bar("B") is None


def test_out_of_order_within_a_bucket_is_placed_by_time_and_late_ticks_are_counted() -> None:
    agg = BarAggregator(Timeframe.M1)
    agg.update(t("A", 30 * SEC, 10.0))
    agg.update(t("A", 10 * SEC, 8.0))  # earlier in the same bar: becomes the open
    agg.update(t("A", 50 * SEC, 12.0))
    agg.update(t("A", 40 * SEC, 11.0))  # earlier than the last: not the close
    assert agg.open_bar("A") == Bar("A", Timeframe.M1, 0, 8.0, 12.0, 8.0, 12.0, 4.0)
    agg.update(t("A", MIN, 13.0))
    assert agg.update(t("A", 59 * SEC, 1.0)) == []
    assert agg.late == 1
    assert agg.flush() == [Bar("A", Timeframe.M1, MIN, 13.0, 13.0, 13.0, 13.0, 1.0)]


def test_bucket_seam_replaces_utc_alignment() -> None:
    # Bars starting at :30 past the hour, the shape a session-aligned calendar will produce.
    offset = 30 * MIN

    def half_past(ts: int) -> int:
        return ts - (ts - offset) % Timeframe.H1.ns

    agg = BarAggregator(Timeframe.H1, bucket_of=half_past)
    agg.update(t("A", 31 * MIN, 1.0))
    (bar,) = agg.update(t("A", 91 * MIN, 2.0))
    assert bar.ts == 30 * MIN


tick_lists = st.lists(
    st.tuples(
        st.sampled_from(["A", "B", "C"]),
        st.integers(min_value=0, max_value=150 * SEC),  # gap to the previous tick
        st.floats(min_value=0.01, max_value=1e6, allow_nan=False),
        st.floats(min_value=0, max_value=1e6, allow_nan=False),
    ),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(tick_lists, st.sampled_from([Timeframe.M1, Timeframe.M5, Timeframe.H1]))
def test_aggregator_matches_a_naive_groupby(rows: list[tuple[str, int, float, float]], tf: Timeframe) -> None:
    ticks, now = [], 1_700_000_000 * SEC
    for sym, gap, price, size in rows:
        now += gap
        ticks.append(Tick(sym, now, price, size))

    agg = BarAggregator(tf)
    got = [bar for tick in ticks for bar in agg.update(tick)] + agg.flush()

    groups: dict[tuple[str, int], list[Tick]] = defaultdict(list)
    for tick in ticks:
        groups[(tick.symbol, tick.ts - tick.ts % tf.ns)].append(tick)
    expected = {
        (sym, ts): Bar(
            sym,
            tf,
            ts,
            g[0].price,
            max(x.price for x in g),
            min(x.price for x in g),
            g[-1].price,
            sum(x.size for x in g),
        )
        for (sym, ts), g in groups.items()
    }
    assert len(got) == len(expected)
    assert {(b.symbol, b.ts): b for b in got} == expected
    assert agg.late == 0


def test_resample_minutes_to_five_minutes_equals_aggregating_the_ticks_at_five_minutes() -> None:
    ticks = [
        t(sym, i * 17 * SEC, 100 + (i * 7919 % 97) / 10, float(i % 5))
        for i in range(400)
        for sym in ("B", "A")
    ]
    m1, m5 = BarAggregator(Timeframe.M1), BarAggregator(Timeframe.M5)
    one = [b for x in ticks for b in m1.update(x)] + m1.flush()
    five = [b for x in ticks for b in m5.update(x)] + m5.flush()
    five.sort(key=lambda b: (b.ts, b.symbol))
    assert resample(reversed(one), Timeframe.M5) == five


def test_resample_refuses_mixed_or_finer_input() -> None:
    m1 = Bar("A", Timeframe.M1, 0, 1, 1, 1, 1, 1)
    h1 = Bar("A", Timeframe.H1, 0, 1, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="one timeframe; got 1h, 1m"):
        resample([m1, h1], Timeframe.D1)
    with pytest.raises(ValueError, match="cannot resample 1h bars to the finer 1m"):
        resample([h1], Timeframe.M1)
    assert resample([], Timeframe.D1) == []
    assert resample([h1], Timeframe.H1) == [h1]


def test_utc_bucket_floors_to_the_timeframe() -> None:
    assert utc_bucket(Timeframe.M15)(16 * MIN + 5) == 15 * MIN
