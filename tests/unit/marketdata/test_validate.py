from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from tradesignals.domain.bar_quality import QualityReason as Reason
from tradesignals.domain.market import Bar, Tick, Timeframe
from tradesignals.marketdata.validate import Validator, Verdict

SEC = 10**9
T0 = 1_720_000_000 * SEC


def tick(ts: int = T0, price: float = 100.0, size: float = 1.0, symbol: str = "AAPL") -> Tick:
    return Tick(symbol, ts, price, size)


def bar(
    ts: int = T0, o: float = 10.0, h: float = 12.0, lo: float = 9.0, c: float = 11.0, v: float = 5.0
) -> Bar:
    return Bar("AAPL", Timeframe.M1, ts, o, h, lo, c, v)


def warm(v: Validator, n: int = 60, *, symbol: str = "AAPL", start: int = T0, base: float = 100.0) -> int:
    """Feed a calm, alternating series (0.1% moves); returns the next free timestamp."""
    for i in range(n):
        assert v.check(Tick(symbol, start + i * SEC, base * (1.001 if i % 2 else 1.0), 1.0))
    return start + n * SEC


def metric(name: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(name, {"reason": reason})
    return 0.0 if value is None else value


# -- field rules --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "reasons"),
    [
        (tick(price=math.nan), ("not_finite",)),
        (tick(price=math.inf), ("not_finite",)),
        (tick(size=-math.inf), ("not_finite",)),
        (tick(price=0.0), ("non_positive_price",)),
        (tick(price=-3.0), ("non_positive_price",)),
        (tick(size=-1.0), ("negative_size",)),
        (tick(price=-1.0, size=-1.0), ("non_positive_price", "negative_size")),
        (tick(symbol=""), ("empty_symbol",)),
        (Tick("AAPL", 1.5, 100.0, 1.0), ("bad_timestamp",)),  # type: ignore[arg-type]
        (Tick("AAPL", T0, "100", 1.0), ("malformed",)),  # type: ignore[arg-type]
        (Tick("AAPL", T0, True, 1.0), ("malformed",)),
        (bar(o=math.nan), ("not_finite",)),
        (bar(lo=0.0), ("non_positive_price",)),
        (bar(v=-5.0), ("negative_volume",)),
        (bar(h=8.0), ("high_below_low",)),
        (bar(o=13.0), ("open_close_outside_range",)),
        (bar(c=8.5), ("open_close_outside_range",)),
        ("not a market event", ("malformed",)),
        (None, ("malformed",)),
    ],
)
def test_each_field_rule_rejects_with_its_reason(event: Any, reasons: tuple[str, ...]) -> None:
    v = Validator()
    assert v.inspect(event) == Verdict(False, reasons)
    assert v.accepted == 0
    assert dict(v.rejected) == dict.fromkeys(reasons, 1)


def test_check_is_the_same_judgement_as_a_bool() -> None:
    v = Validator()
    assert v.check(tick()) is True
    assert v.check(tick(price=math.nan)) is False
    assert v.rejected == {"not_finite": 1}
    assert v.accepted == 1


def test_numpy_and_int_fields_are_valid_data_not_malformed() -> None:
    v = Validator()
    assert v.inspect(Tick("AAPL", np.int64(T0), 100, 3)) == Verdict(True)  # type: ignore[arg-type]
    assert v.inspect(Tick("AAPL", T0 + 1, np.float64(100.5), 0.0)) == Verdict(True)


def test_a_price_too_large_for_a_float_is_not_finite() -> None:
    assert Validator().inspect(Tick("AAPL", T0, 10**400, 1.0)) == Verdict(False, ("not_finite",))


# -- order and duplicates -----------------------------------------------------------------------------


def test_out_of_order_is_per_symbol() -> None:
    v = Validator()
    assert v.check(tick(T0 + 5))
    assert v.check(tick(T0, symbol="MSFT"))  # another symbol's clock
    assert v.inspect(tick(T0 + 4)) == Verdict(False, ("out_of_order",))
    assert v.check(tick(T0 + 5, price=100.01))  # same time, another trade: in order
    assert v.check(tick(T0 + 6))


def test_reorder_tolerance_accepts_slightly_late_ticks_with_a_flag() -> None:
    v = Validator(reorder_tolerance_ns=5_000_000)
    assert v.check(tick(T0 + 10_000_000))
    assert v.inspect(tick(T0 + 6_000_000, price=100.02)) == Verdict(True, flags=("out_of_order",))
    assert v.inspect(tick(T0 + 1_000_000)) == Verdict(False, ("out_of_order",))
    # The late tick did not move the clock back: the next in-order tick compares with T0 + 10 ms.
    assert v.inspect(tick(T0 + 9_000_000)) == Verdict(True, flags=("out_of_order",))


def test_an_exact_repeat_of_the_last_tick_is_flagged_not_dropped_by_default() -> None:
    v = Validator()
    assert v.check(tick(T0, 100.0, 100.0))
    # Two 100-share fills at one price and one nanosecond are real: flag, keep.
    assert v.inspect(tick(T0, 100.0, 100.0)) == Verdict(True, flags=("duplicate",))
    # Anything different in price or size is simply another trade at that time.
    assert v.inspect(tick(T0, 100.0, 200.0)) == Verdict(True)
    assert v.inspect(tick(T0, 100.01, 200.0)) == Verdict(True)
    assert v.accepted == 4
    assert v.flagged == {"duplicate": 1}


def test_duplicate_ticks_can_be_rejected_for_sources_that_redeliver() -> None:
    v = Validator(duplicate_ticks="reject")
    assert v.check(tick())
    assert v.inspect(tick()) == Verdict(False, ("duplicate",))
    assert v.check(tick(size=2.0))


def test_bars_reject_repeats_and_older_bars_per_symbol_and_timeframe() -> None:
    v = Validator()
    assert v.check(bar(T0))
    assert v.inspect(bar(T0, c=11.5)) == Verdict(False, ("duplicate",))
    assert v.inspect(bar(T0 - 60 * SEC)) == Verdict(False, ("out_of_order",))
    assert v.check(Bar("AAPL", Timeframe.H1, T0 - 3600 * SEC, 10, 12, 9, 11, 5))  # another timeframe
    assert v.check(bar(T0 + 60 * SEC))


# -- time ---------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: int) -> None:
        self.now = now
        self.reads = 0

    def __call__(self) -> int:
        self.reads += 1
        return self.now


def test_stale_ticks_and_bars_are_rejected_against_the_clock() -> None:
    clock = FakeClock(T0)
    v = Validator(stale_after_ns=5 * SEC, clock=clock)
    assert v.inspect(tick(T0 - 6 * SEC)) == Verdict(False, ("stale",))
    assert v.check(tick(T0 - 4 * SEC))
    # A bar is judged by its end: a 1m bar that opened 60 s ago closed just now.
    assert v.check(bar(T0 - 60 * SEC))
    assert v.inspect(bar(T0 - 120 * SEC)) == Verdict(False, ("stale",))
    clock.now += 60 * SEC
    assert v.inspect(tick(T0)) == Verdict(False, ("stale",))


def test_future_ticks_are_rejected_and_the_clock_is_read_only_when_needed() -> None:
    clock = FakeClock(T0)
    v = Validator(max_future_ns=2 * SEC, clock=clock)
    for i in range(100):
        assert v.check(tick(T0 - 100 * SEC + i * SEC))
    assert clock.reads == 1  # a cached limit covers every tick before it
    assert v.inspect(tick(T0 + 3 * SEC)) == Verdict(False, ("future",))
    clock.now += 10 * SEC
    assert v.check(tick(T0 + 3 * SEC))  # the clock has caught up


def test_a_far_future_glitch_cannot_lock_a_symbol_out() -> None:
    v = Validator(max_future_ns=60 * SEC, clock=lambda: T0)
    assert v.check(tick(T0))
    assert not v.check(tick(T0 + 10**18))  # year 2056: refused, so it never becomes "the last tick"
    assert v.check(tick(T0 + SEC))


# -- spikes -------------------------------------------------------------------------------------------


def test_a_confirmed_gap_is_kept_and_flagged() -> None:
    v = Validator()
    ts = warm(v)
    assert v.inspect(tick(ts, 112.0)) == Verdict(True, flags=("spike",))
    assert v.inspect(tick(ts + 1, 112.1)) == Verdict(True, flags=("spike_confirmed",))
    assert v.inspect(tick(ts + 2, 112.0)) == Verdict(True)
    assert v.rejected == {}


def test_a_reverted_bad_print_is_flagged_and_the_return_to_normal_is_not_a_spike() -> None:
    v = Validator()
    ts = warm(v)
    assert v.inspect(tick(ts, 1000.0)) == Verdict(True, flags=("spike",))
    assert v.inspect(tick(ts + 1, 100.05)) == Verdict(True, flags=("spike_reverted",))
    assert v.flagged == {"spike": 1, "spike_reverted": 1}
    # The reference is the pre-spike price again: a normal move from there is no spike.
    assert v.inspect(tick(ts + 2, 100.1)) == Verdict(True)


def test_downward_spikes_are_judged_the_same_way() -> None:
    v = Validator()
    ts = warm(v)
    assert v.inspect(tick(ts, 1.0)) == Verdict(True, flags=("spike",))
    assert v.inspect(tick(ts + 1, 1.01)) == Verdict(True, flags=("spike_confirmed",))


def test_no_spike_is_judged_before_the_window_fills_and_small_moves_never_are() -> None:
    v = Validator(spike_window=50)
    assert v.check(tick(T0, 100.0))
    assert v.inspect(tick(T0 + 1, 150.0)) == Verdict(True)  # only one return seen
    # A long run of unchanged prices leaves almost no variance; a one-cent move is still no spike.
    v = Validator(spike_window=10)
    for i in range(200):
        v.check(tick(T0 + i, 100.0, float(i)))
    assert v.inspect(tick(T0 + 500, 100.01)) == Verdict(True)
    assert v.inspect(tick(T0 + 501, 102.0)) == Verdict(True, flags=("spike",))


def test_spike_threshold_scales_with_the_symbols_own_volatility() -> None:
    calm, wild = Validator(), Validator()
    ts = warm(calm, base=100.0)
    for i in range(60):  # 3% swings
        wild.check(tick(T0 + i * SEC, 100.0 * (1.03 if i % 2 else 1.0)))
    assert calm.inspect(tick(ts, 110.0)).flags == ("spike",)
    assert wild.inspect(tick(T0 + 60 * SEC, 110.0)).flags == ()


def test_process_holds_a_spike_until_the_next_tick_settles_it() -> None:
    v = Validator()
    ts = warm(v)
    gap, after = tick(ts, 112.0), tick(ts + 1, 112.2)
    assert v.process(gap) == []  # held
    assert v.process(after) == [gap, after]  # confirmed: both pass, in order
    bad, back = tick(ts + 2, 1200.0), tick(ts + 3, 112.1)
    assert v.process(bad) == []
    assert v.process(back) == [back]  # reverted: the bad print is rejected
    assert v.rejected == {"spike": 1}
    assert v.flagged == {"spike": 2, "spike_confirmed": 1, "spike_reverted": 1}
    assert v.accepted == 60 + 3
    last = tick(ts + 4, 1.0)
    assert v.process(last) == []
    assert v.flush() == [last]  # unsettled at the end of the stream: released, not dropped
    assert v.flush() == []


def test_process_passes_ordinary_events_and_drops_rejected_ones() -> None:
    v = Validator()
    assert v.process(tick()) == [tick()]
    assert v.process(tick(price=math.nan)) == []
    assert v.process(bar()) == [bar()]
    assert v.process("junk") == []  # type: ignore[arg-type]


def test_bars_get_spike_flags_on_close_to_close_returns() -> None:
    v = Validator()
    for i in range(60):
        c = 100.0 * (1.001 if i % 2 else 1.0)
        assert v.check(Bar("AAPL", Timeframe.D1, i * 86_400 * SEC, c, c, c, c, 1.0))
    spike = Bar("AAPL", Timeframe.D1, 60 * 86_400 * SEC, 100.0, 130.0, 100.0, 130.0, 1.0)
    assert v.inspect(spike) == Verdict(True, flags=("spike",))


# -- counters -----------------------------------------------------------------------------------------


def test_reasons_are_exported_to_prometheus() -> None:
    before_nan = metric("ts_marketdata_rejected_total", "not_finite")
    before_dup = metric("ts_marketdata_flagged_total", "duplicate")
    v = Validator()
    v.check(tick(price=math.nan))
    v.check(tick())
    v.check(tick())
    assert metric("ts_marketdata_rejected_total", "not_finite") == before_nan + 1
    assert metric("ts_marketdata_flagged_total", "duplicate") == before_dup + 1
    # Every reason exists from the start (at 0), so dashboards and alerts see the series at once.
    for reason in Reason:
        assert REGISTRY.get_sample_value("ts_marketdata_rejected_total", {"reason": reason.value}) is not None


def test_bad_constructor_options_fail_fast() -> None:
    with pytest.raises(ValueError, match="spike_sigma"):
        Validator(spike_sigma=0)
    with pytest.raises(ValueError, match="spike_window"):
        Validator(spike_window=0)
    with pytest.raises(ValueError, match="duplicate_ticks"):
        Validator(duplicate_ticks="drop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stale_after_ns"):
        Validator(stale_after_ns=-1)


# -- properties ---------------------------------------------------------------------------------------

anything = st.one_of(
    st.floats(),  # NaN, ±inf, ±0, subnormals, huge
    st.integers(min_value=-(10**30), max_value=10**30),
    st.none(),
    st.booleans(),
    st.text(max_size=3),
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.builds(
                Tick, st.one_of(st.sampled_from(["A", "B", ""]), st.none()), anything, anything, anything
            ),
            st.builds(
                Bar,
                st.sampled_from(["A", "B"]),
                st.one_of(st.sampled_from(list(Timeframe)), st.none()),
                anything,
                anything,
                anything,
                anything,
                anything,
                anything,
            ),
            anything,
        ),
        max_size=40,
    ),
)
def test_arbitrary_garbage_never_raises(events: list[Any]) -> None:
    flag, hold = Validator(stale_after_ns=SEC, max_future_ns=SEC, clock=lambda: T0), Validator()
    for event in events:
        accepted, rejected = flag.accepted, flag.rejected.total()
        ok = flag.check(event)
        assert isinstance(ok, bool)
        # Every judgement is counted: accepted, or rejected for at least one reason.
        assert (flag.accepted, flag.rejected.total() > rejected) == (
            (accepted + 1, False) if ok else (accepted, True)
        )
        verdict = flag.inspect(event)
        assert verdict.accepted or verdict.reasons
        assert isinstance(hold.process(event), list)
    hold.flush()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["AAPL", "MSFT", "BTCUSDT"]),
            st.integers(min_value=0, max_value=10 * SEC),  # time since the previous tick (0: same ns)
            st.floats(min_value=-0.003, max_value=0.003),  # log return: ordinary, non-spiky moves
            st.floats(min_value=0.0, max_value=1e9),
        ),
        max_size=500,
    ),
    st.sampled_from([1, 5, 50]),
)
def test_valid_ordered_calm_ticks_are_all_accepted(
    rows: list[tuple[str, int, float, float]], window: int
) -> None:
    v = Validator(spike_window=window)
    prices = {"AAPL": 180.0, "MSFT": 400.0, "BTCUSDT": 60_000.0}
    now = T0
    for symbol, gap, r, size in rows:
        now += gap
        prices[symbol] *= math.exp(r)
        verdict = v.inspect(Tick(symbol, now, prices[symbol], size))
        assert verdict.accepted, verdict
        assert set(verdict.flags) <= {"duplicate"}  # only an exact repeat is worth a note
    assert v.accepted == len(rows)
    assert v.rejected == {}
