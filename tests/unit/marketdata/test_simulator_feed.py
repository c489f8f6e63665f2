from __future__ import annotations

import asyncio
import pickle
from collections import defaultdict
from contextlib import aclosing
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from tradesignals.domain.market import AssetClass, Bar, Tick, Timeframe, to_datetime, to_ns
from tradesignals.marketdata.bars import BarAggregator, resample
from tradesignals.marketdata.calendar import calendar_for
from tradesignals.marketdata.feeds.base import Feed, FeedError, MarketEvent
from tradesignals.marketdata.feeds.simulator import SimulatorFeed, symbol_names

INF = float("inf")
NEW_YORK = ZoneInfo("America/New_York")


async def take(feed: SimulatorFeed, n: int) -> list[MarketEvent]:
    out: list[MarketEvent] = []
    async with aclosing(feed.stream()) as events:
        async for ev in events:
            out.append(ev)
            if len(out) == n:
                break
    return out


def steps(feed: SimulatorFeed, n: int) -> list[MarketEvent]:
    it = feed.steps()
    return [ev for _ in range(n) for ev in next(it)]


async def test_same_seed_is_byte_identical_and_other_seeds_differ() -> None:
    a = await take(SimulatorFeed(30, seed=11, speed=INF, emit="both"), 5_000)
    b = await take(SimulatorFeed(30, seed=11, speed=INF, emit="both"), 5_000)
    c = await take(SimulatorFeed(30, seed=12, speed=INF, emit="both"), 5_000)
    assert pickle.dumps(a) == pickle.dumps(b)
    assert a != c
    assert {e.symbol for e in a} == {e.symbol for e in c}  # names do not depend on the seed


def test_bars_do_not_depend_on_what_is_emitted() -> None:
    bars_only = steps(SimulatorFeed(10, speed=INF, emit="bars"), 30)
    both = steps(SimulatorFeed(10, speed=INF, emit="both"), 30)
    ticks_only = steps(SimulatorFeed(10, speed=INF, emit="ticks", ticks_per_bar=7), 30)
    assert all(isinstance(e, Bar) for e in bars_only)
    assert len(bars_only) == 300
    assert bars_only == [e for e in both if isinstance(e, Bar)]
    assert all(isinstance(e, Tick) for e in ticks_only)
    assert len(ticks_only) == 30 * 10 * 7


@pytest.mark.parametrize(
    ("asset_class", "timeframe"),
    [(AssetClass.EQUITY, Timeframe.M1), ("mix", Timeframe.M5), (AssetClass.CRYPTO, Timeframe.H1)],
)
def test_bars_are_exactly_what_an_aggregator_builds_from_the_ticks(
    asset_class: AssetClass, timeframe: Timeframe
) -> None:
    feed = SimulatorFeed(12, speed=INF, emit="both", asset_class=asset_class, timeframe=timeframe)
    events = steps(feed, 200)
    agg = BarAggregator(timeframe)
    built = [bar for e in events if isinstance(e, Tick) for bar in agg.update(e)] + agg.flush()
    sim_bars = [e for e in events if isinstance(e, Bar)]
    key = lambda b: (b.ts, b.symbol)  # noqa: E731
    assert sorted(built, key=key) == sorted(sim_bars, key=key)
    assert agg.late == 0
    assert not [b for b in sim_bars if b.problems()]
    assert not [e for e in events if e.problems()]


def test_events_are_in_time_order_and_bars_follow_their_ticks() -> None:
    events = steps(SimulatorFeed(25, speed=INF, emit="both", asset_class="mix", timeframe=Timeframe.M5), 100)
    ticks = [e.ts for e in events if isinstance(e, Tick)]
    bars = [e.ts for e in events if isinstance(e, Bar)]
    assert ticks == sorted(ticks)
    assert bars == sorted(bars)
    last_tick = -1
    for e in events:
        if isinstance(e, Tick):
            last_tick = e.ts
        else:
            assert e.ts <= last_tick < e.end


def ny(ts: int) -> datetime:
    return to_datetime(ts).astimezone(NEW_YORK)


def test_equities_trade_in_new_york_hours_on_weekdays_and_gap_overnight() -> None:
    # Friday 2024-03-08 15:00 NY; the clocks change on Sunday 10 March (EST → EDT).
    start = to_ns(datetime(2024, 3, 8, 20, 0, tzinfo=UTC))
    feed = SimulatorFeed(20, speed=INF, emit="both", timeframe=Timeframe.M5, start_ns=start)
    events = steps(feed, 12 + 78 * 2)  # Friday 15:00–16:00, then all of Monday and Tuesday
    tick_times = [ny(e.ts) for e in events if isinstance(e, Tick)]
    assert {t.date().isoformat() for t in tick_times} == {"2024-03-08", "2024-03-11", "2024-03-12"}
    assert all((9, 30) <= (t.hour, t.minute) < (16, 0) for t in tick_times)
    bars: dict[str, list[Bar]] = defaultdict(list)
    for e in events:
        if isinstance(e, Bar):
            bars[e.symbol].append(e)
    # Overnight gaps: Monday's first open differs from Friday's close for most symbols.
    gaps = [b[12].open != b[11].close for b in bars.values()]
    assert sum(gaps) >= 15


def test_crypto_trades_around_the_clock_and_mix_keeps_crypto_only_outside_sessions() -> None:
    saturday = to_ns(datetime(2024, 1, 6, tzinfo=UTC))
    crypto = steps(
        SimulatorFeed(3, speed=INF, asset_class=AssetClass.CRYPTO, timeframe=Timeframe.H1, start_ns=saturday),
        48,
    )
    assert len(crypto) == 3 * 48
    assert all(b.symbol.endswith("-USD") for b in crypto)
    mix = SimulatorFeed(10, speed=INF, asset_class="mix", timeframe=Timeframe.H1, start_ns=saturday)
    assert mix.symbols() == symbol_names(10, "mix")
    weekend = steps(mix, 48)
    assert {b.symbol for b in weekend} == {"SIM005-USD", "SIM010-USD"}


def test_equities_keep_the_exchange_calendar_no_bar_on_a_holiday_and_half_days_end_at_13() -> None:
    # Wednesday 2026-11-25 … Tuesday 2026-12-29: Thanksgiving (26 Nov) and Christmas (25 Dec) are
    # closed; the Friday after Thanksgiving and Christmas Eve close at 13:00 New York.
    start = to_ns(datetime(2026, 11, 25, tzinfo=UTC))
    end = to_ns(datetime(2026, 12, 30, tzinfo=UTC))
    feed = SimulatorFeed(3, speed=INF, emit="both", timeframe=Timeframe.M15, start_ns=start, end_ns=end)
    events = [e for step in feed.steps() for e in step]
    bars = [e for e in events if isinstance(e, Bar)]
    days = {ny(b.ts).date().isoformat() for b in bars}
    assert "2026-11-26" not in days and "2026-12-25" not in days
    assert {"2026-11-25", "2026-11-27", "2026-12-24", "2026-12-28"} <= days
    for half_day in ("2026-11-27", "2026-12-24"):
        ticks = [ny(e.ts) for e in events if isinstance(e, Tick) and ny(e.ts).date().isoformat() == half_day]
        assert ticks and max((t.hour, t.minute) for t in ticks) < (13, 0)
        last = max(b.ts for b in bars if ny(b.ts).date().isoformat() == half_day)
        assert (ny(last).hour, ny(last).minute) == (12, 45)  # the 12:45 bar is the session's last
    # The same bars, resampled to days on the engine's calendar, are the exchange's sessions.
    daily = resample(bars, Timeframe.D1, calendar=calendar_for)
    sessions = calendar_for(AssetClass.EQUITY).sessions_between(start, end)
    assert sorted({b.ts for b in daily}) == [s.label for s in sessions]


def test_symbol_names_are_plainly_simulated_and_stable() -> None:
    assert symbol_names(3) == ["SIM001", "SIM002", "SIM003"]
    assert symbol_names(1000)[-1] == "SIM1000"
    assert symbol_names(2, AssetClass.CRYPTO) == ["SIM001-USD", "SIM002-USD"]
    feed = SimulatorFeed(["AAA", "BTC-USD"], speed=INF, asset_class="mix")
    feed_protocol: Feed = feed
    assert feed_protocol.symbols() == ["AAA", "BTC-USD"]
    assert feed_protocol.name == "sim"


def test_intraday_volume_is_u_shaped() -> None:
    feed = SimulatorFeed(40, speed=INF, timeframe=Timeframe.M5)
    by_slot: dict[int, list[float]] = defaultdict(list)
    for e in steps(feed, 78 * 5):
        assert isinstance(e, Bar)
        t = ny(e.ts)
        by_slot[(t.hour * 60 + t.minute - 570) // 30].append(e.volume)
    mean = {slot: float(np.mean(v)) for slot, v in by_slot.items()}
    midday = min(mean[5], mean[6], mean[7])
    assert mean[0] > 1.5 * midday
    assert mean[12] > 1.5 * midday


def test_daily_returns_are_fat_tailed() -> None:
    feed = SimulatorFeed(40, speed=INF, timeframe=Timeframe.D1)
    closes: dict[str, list[float]] = defaultdict(list)
    for b in feed.history(500):
        closes[b.symbol].append(b.close)
    r = np.diff(np.log(np.array(list(closes.values()))), axis=1).ravel()
    r = r - r.mean()
    kurtosis = float(np.mean(r**4) / np.mean(r**2) ** 2)
    assert kurtosis > 4.0  # a Gaussian has 3: jumps and regime switches fatten the tails


def test_history_returns_n_bars_per_symbol_and_the_stream_continues_after_them() -> None:
    feed = SimulatorFeed(5, speed=INF, emit="bars")
    hist = feed.history(50)
    assert len(hist) == 250
    assert [b.ts for b in hist] == sorted(b.ts for b in hist)
    nxt = next(feed.steps())
    assert {b.ts for b in nxt} == {hist[-1].ts + Timeframe.M1.ns}


async def test_warmup_bars_come_at_once_then_real_time_pacing_starts() -> None:
    feed = SimulatorFeed(4, speed=1.0, warmup_bars=30)  # a 1m bar per 60 s once warm
    events = await asyncio.wait_for(take(feed, 4 * 30), timeout=5)
    assert len(events) == 120
    paced = SimulatorFeed(4, speed=1.0, warmup_bars=30)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(take(paced, 4 * 31), timeout=0.5)


async def test_end_ns_ends_the_stream_and_close_stops_it() -> None:
    start = to_ns(datetime(2024, 1, 2, 14, 30, tzinfo=UTC))
    feed = SimulatorFeed(3, speed=INF, start_ns=start, end_ns=start + 10 * Timeframe.M1.ns)
    events = [e async for e in feed.stream()]
    assert len(events) == 30
    endless = SimulatorFeed(3, speed=INF)
    got = 0
    async for _ in endless.stream():
        got += 1
        if got == 7:
            await endless.close()
    assert got == 7


def test_a_thousand_symbols_step_together() -> None:
    feed = SimulatorFeed(1000, speed=INF)
    (step,) = [next(feed.steps())]
    assert len(step) == 1000
    assert len({e.symbol for e in step}) == 1000


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"symbols": 0}, "at least one symbol"),
        ({"symbols": ["A", "A"]}, "distinct"),
        ({"speed": 0.0}, "speed must be > 0"),
        ({"speed": float("nan")}, "speed must be > 0"),
        ({"emit": "quotes"}, "emit must be ticks, bars or both"),
        ({"ticks_per_bar": 0}, "ticks_per_bar"),
        ({"warmup_bars": -1}, "warmup_bars"),
    ],
)
def test_bad_parameters_raise_feed_error(kwargs: dict[str, object], expected: str) -> None:
    with pytest.raises(FeedError, match=expected):
        SimulatorFeed(**kwargs)  # type: ignore[arg-type]
