"""Live bars on the bus end up in the history store, and so at /api/market/{symbol}/bars."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tradesignals.bus import topics
from tradesignals.bus.codec import encode
from tradesignals.bus.memory import MemoryBus
from tradesignals.domain.market import Bar, Timeframe
from tradesignals.engine.recorder import record_bars
from tradesignals.storage.timeseries_parquet import ParquetBarStore


async def test_recorder_upserts_bus_bars_and_keeps_the_latest_revision(tmp_path: Path) -> None:
    bus = MemoryBus(partitions=4)
    store = ParquetBarStore(tmp_path / "lake")
    stop = asyncio.Event()
    task = asyncio.create_task(record_bars(bus, store, stop, name="t", max_batch=100, max_wait=0.1))
    m = Timeframe.M1.ns
    bars = [
        Bar(sym, Timeframe.M1, i * m, 10, 11, 9, 10 + i / 100, 5) for sym in ("AAA", "BBB") for i in range(20)
    ]
    revised = Bar("AAA", Timeframe.M1, 19 * m, 10, 12, 9, 11.5, 7)
    for b in [*bars, revised]:
        await bus.publish(topics.MARKET_BARS, b.symbol, encode(b))
    deadline = asyncio.get_running_loop().time() + 5
    while store.range(Timeframe.M1, "BBB") != (0, 19 * m):
        assert asyncio.get_running_loop().time() < deadline, "bars never reached the store"
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)
    aaa = store.read(Timeframe.M1, ["AAA"])
    assert len(aaa) == 20
    assert aaa["close"].iloc[-1] == 11.5 and aaa["volume"].iloc[-1] == 7
    assert store.symbols(Timeframe.M1) == ["AAA", "BBB"]
    await bus.close()


async def test_a_finished_feed_drains_the_recorder_before_it_stops(tmp_path: Path) -> None:
    """The feed's end (``drain``) stops the recorder only once every published bar is stored and acked."""
    bus = MemoryBus(partitions=4)
    store = ParquetBarStore(tmp_path / "lake")
    stop, drain = asyncio.Event(), asyncio.Event()
    m = Timeframe.M1.ns
    bars = [Bar(f"S{k}", Timeframe.M1, i * m, 10, 11, 9, 10, 5) for k in range(8) for i in range(500)]
    for b in bars:
        await bus.publish(topics.MARKET_BARS, b.symbol, encode(b))
    drain.set()  # the feed already ended: every bar is waiting, none recorded
    recorded = await asyncio.wait_for(
        record_bars(bus, store, stop, name="t", max_batch=300, max_wait=0.1, drain=drain), 30
    )
    assert not stop.is_set()  # it ended on its own
    assert recorded == len(bars)
    assert all(store.range(Timeframe.M1, f"S{k}") == (0, 499 * m) for k in range(8))
    lag = await bus.lag(topics.MARKET_BARS, "history")
    assert lag is not None and lag.unread == 0 and lag.pending == 0
    await bus.close()


async def test_without_a_drain_the_recorder_runs_until_stopped(tmp_path: Path) -> None:
    bus = MemoryBus(partitions=2)
    store = ParquetBarStore(tmp_path / "lake")
    stop = asyncio.Event()
    task = asyncio.create_task(record_bars(bus, store, stop, name="t", max_wait=0.05))
    bar = Bar("AAA", Timeframe.M1, 0, 10, 11, 9, 10, 5)
    await bus.publish(topics.MARKET_BARS, bar.symbol, encode(bar))
    deadline = asyncio.get_running_loop().time() + 5
    while store.range(Timeframe.M1, "AAA") is None:
        assert asyncio.get_running_loop().time() < deadline, "the bar never reached the store"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the length of several empty fetches (0.2 s each), not a wait for a state
    assert not task.done()
    stop.set()
    assert await asyncio.wait_for(task, 5) == 1
    await bus.close()
