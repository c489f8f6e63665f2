from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from pathlib import Path

import pytest

from tradesignals.domain.market import Bar, Timeframe
from tradesignals.marketdata.feeds.base import Feed, FeedError
from tradesignals.marketdata.feeds.replay import ReplayFeed

HEADER = "date,Name,open,high,low,close,volume\n"


def daily_file(tmp_path: Path, rows: list[str], name: str = "daily.csv") -> Path:
    f = tmp_path / name
    f.write_text(HEADER + "\n".join(rows) + "\n")
    return f


async def collect(feed: ReplayFeed) -> list[Bar]:
    return [bar async for bar in feed.bars()]


async def test_bars_come_in_time_order_with_symbols_interleaved(tmp_path: Path) -> None:
    f = daily_file(
        tmp_path,
        [
            "2020-01-02,MSFT,5,6,4,5.5,10",
            "2020-01-03,MSFT,6,7,5,6.5,11",
            "2020-01-02,AAPL,1,2,0.5,1.5,20",
            "2020-01-06,AAPL,2,3,1.5,2.5,21",
            "2020-01-03,AAPL,3,4,2.5,3.5,22",
        ],
    )
    feed = ReplayFeed(f)
    feed_protocol: Feed = feed
    assert feed_protocol.name == "replay:daily.csv"
    assert feed.timeframe is Timeframe.D1  # inferred: per-symbol median spacing is one day
    assert feed.symbols() == ["AAPL", "MSFT"]
    bars = await collect(feed)
    assert [(b.symbol, b.close) for b in bars] == [
        ("AAPL", 1.5),
        ("MSFT", 5.5),
        ("AAPL", 3.5),
        ("MSFT", 6.5),
        ("AAPL", 2.5),
    ]
    assert bars[0] == Bar("AAPL", Timeframe.D1, 1577923200 * 10**9, 1.0, 2.0, 0.5, 1.5, 20.0)
    assert feed.emitted == 5
    assert feed.skipped == 0
    assert not feed.rejected


async def test_bad_rows_are_skipped_and_counted_by_reason_never_raised(tmp_path: Path) -> None:
    f = daily_file(
        tmp_path,
        [
            "2020-01-02,A,,,,1.5,20",  # NaN prices, as in the real S&P file
            "2020-01-03,A,1,2,1.2,1.5,20",  # low above open
            "2020-01-06,A,1,2,0.5,1.5,-1",  # negative volume
            "2020-01-07,A,1,2,0.5,1.5,20",
            "2020-01-08,A,0,2,0.5,1.5,20",  # zero price
        ],
    )
    feed = ReplayFeed(f)
    bars = await collect(feed)
    assert [b.ts for b in bars] == [1578355200 * 10**9]
    assert dict(feed.rejected) == {
        "not_finite": 1,
        "open_close_outside_range": 2,
        "negative_volume": 1,
        "non_positive_price": 1,
    }
    assert feed.skipped == 4
    assert feed.emitted == 1
    assert feed.nan_price_rows == 1


async def test_a_second_stream_replays_from_the_start_with_fresh_counters(tmp_path: Path) -> None:
    f = daily_file(
        tmp_path,
        [
            "2020-01-02,A,1,2,0.5,1.5,20",
            "2020-01-03,A,,,,1,1",
            "2020-01-06,A,1,2,0.5,1.5,20",
            "2020-01-07,A,1,2,0.5,1.5,20",
        ],
    )
    feed = ReplayFeed(f)
    first, second = await collect(feed), await collect(feed)
    assert first == second
    assert len(first) == 3
    assert feed.rejected == {"not_finite": 1}


async def test_symbol_filter_and_explicit_timeframe(tmp_path: Path) -> None:
    f = daily_file(tmp_path, ["2020-01-02,A,1,2,0.5,1.5,20", "2020-01-02,B,1,2,0.5,1.5,20"])
    feed = ReplayFeed(f, symbols=["B"], timeframe=Timeframe.D1)
    assert feed.symbols() == ["B"]
    assert [b.symbol for b in await collect(feed)] == ["B"]


@pytest.mark.parametrize(
    ("setup", "kwargs", "expected"),
    [
        (None, {}, "no such file"),
        ("when,price\n2024-01-02,10\n", {}, "missing column(s)"),
        (HEADER + "2020-01-02,A,1,2,0.5,1.5,20\n", {"symbols": ["ZZZ", "A"]}, "symbol(s) not in file: ZZZ"),
        (HEADER + "2020-01-02,A,1,2,0.5,1.5,20\n", {}, "cannot infer the bar timeframe"),
        (HEADER + "2020-01-02,A,1,2,0.5,1.5,20\n", {"speed": 0.0}, "speed must be > 0"),
        (HEADER, {}, "holds no rows"),
        (HEADER + "2020-01-02,A,1,2,0.5,1.5,20\n", {"symbols": []}, "symbols filter is empty"),
    ],
)
def test_constructor_fails_with_one_line_before_streaming(
    tmp_path: Path, setup: str | None, kwargs: dict[str, object], expected: str
) -> None:
    f = tmp_path / "prices.csv"
    if setup is not None:
        f.write_text(setup)
    with pytest.raises(FeedError) as err:
        ReplayFeed(f, **kwargs)  # type: ignore[arg-type]
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


async def test_finite_speed_paces_by_simulated_time(tmp_path: Path) -> None:
    f = tmp_path / "m.csv"
    f.write_text(
        "timestamp,open,high,low,close,volume\n"
        + "".join(f"2024-01-02 10:0{i}:00,1,2,0.5,1.5,1\n" for i in range(3))
    )
    feed = ReplayFeed(f, speed=600.0)  # two simulated minutes → 0.2 s of wall time
    start = time.monotonic()
    bars = await collect(feed)
    assert len(bars) == 3
    assert feed.timeframe is Timeframe.M1
    assert time.monotonic() - start >= 0.18


async def test_full_speed_replay_yields_to_other_tasks(tmp_path: Path) -> None:
    rows = [f"{i},S{i % 7},1,2,0.5,1.5,1" for i in range(20_000)]
    f = tmp_path / "big.csv"
    f.write_text("timestamp,symbol,open,high,low,close,volume\n" + "\n".join(str(r) for r in rows) + "\n")
    feed = ReplayFeed(f, timeframe=Timeframe.M1)
    ticks = 0
    seen_during_replay: list[int] = []

    async def other() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(other())
    count = 0
    async for _ in feed.stream():
        count += 1
        if count == 15_000:
            seen_during_replay.append(ticks)
    task.cancel()
    assert count == 20_000
    assert seen_during_replay[0] >= 5  # the other task ran while the replay was still going


async def test_close_stops_a_running_stream(tmp_path: Path) -> None:
    rows = [f"2020-01-{d:02d},A,1,2,0.5,1.5,1" for d in range(1, 29)]
    feed = ReplayFeed(daily_file(tmp_path, rows))
    got = []
    async with aclosing(feed.bars()) as it:
        async for bar in it:
            got.append(bar)
            if len(got) == 3:
                await feed.close()
    assert len(got) == 3
