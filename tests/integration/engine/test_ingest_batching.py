"""Ingest batches bursts onto the bus without reordering, and surfaces a dead bus instead of hanging."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tradesignals.bus import topics
from tradesignals.bus.base import BusError
from tradesignals.bus.codec import decoder
from tradesignals.bus.memory import MemoryBus
from tradesignals.bus.redis_streams import RedisStreamsBus
from tradesignals.domain.market import Bar, Tick, Timeframe
from tradesignals.engine.ingest import run_ingest


class Burst:
    """A feed that emits everything at once: the case batching exists for."""

    name = "burst"

    def __init__(self, n: int) -> None:
        self.n = n

    def symbols(self) -> list[str]:
        return ["A", "B", "C"]

    async def stream(self) -> AsyncIterator[Bar | Tick]:
        m = Timeframe.M1.ns
        for i in range(self.n):
            sym = "ABC"[i % 3]
            yield Bar(sym, Timeframe.M1, (i // 3) * m, 10, 20, 9, 10 + i * 1e-4, 1)
            if i % 7 == 0:
                yield Tick(sym, (i // 3) * m + 1, 10.0, 1.0)
        yield Bar("A", Timeframe.M1, 0, 10, 9, 11, 10, 1)  # high < low: rejected, never published

    async def close(self) -> None:
        return None


async def test_every_valid_event_arrives_in_feed_order_per_symbol() -> None:
    bus = MemoryBus(partitions=4)
    validator = await asyncio.wait_for(run_ingest(Burst(30_000), bus), 30)
    assert sum(validator.rejected.values()) == 1 and validator.accepted == 30_000 + len(range(0, 30_000, 7))
    bars = bus.consumer(topics.MARKET_BARS, "t", "t", decoder(Bar))
    got: list[Bar] = []
    while batch := await bars.fetch(5_000, wait=0.1):
        got += [d.value for d in batch]
        await bars.ack(*batch)
    assert len(got) == 30_000
    for sym in "ABC":
        closes = [b.close for b in got if b.symbol == sym]
        assert closes == sorted(closes), f"{sym} out of order"
    ticks = bus.consumer(topics.MARKET_TICKS, "t", "t", decoder(Tick))
    assert len(await ticks.fetch(10_000, wait=0.1)) == len(range(0, 30_000, 7))
    await bus.close()


async def test_a_dead_bus_fails_ingest_with_its_error_after_backing_off(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bus = RedisStreamsBus("redis://127.0.0.1:1/0", connect_timeout=0.2, socket_timeout=0.2)
    with pytest.raises(BusError, match=r"127\.0\.0\.1:1"):
        await asyncio.wait_for(run_ingest(Burst(50_000), bus, retry_s=1.0), 30)
    await bus.close()
    assert "ingest.bus_retry" in capsys.readouterr().out  # backed off with its reason first
