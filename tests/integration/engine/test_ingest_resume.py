"""Ingest never publishes a market event twice: not after a lost reply, not after it was killed.

Real Redis streams (a test prefix) and a real SQLite position store. The feed is a replayable
burst of bars and ticks; "killed" is the ingest task cancelled at a random point, which leaves the
position as a crash would (saved a while ago, or never). After the rerun every accepted event is on
the bus exactly once, in order per symbol.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from tradesignals.bus import topics
from tradesignals.bus.base import BusError
from tradesignals.bus.codec import decoder
from tradesignals.bus.redis_streams import RedisStreamsBus
from tradesignals.domain.market import Bar, Tick, Timeframe
from tradesignals.engine.ingest import published_after, run_ingest
from tradesignals.storage.db import make_engine, migrate
from tradesignals.storage.ingest_positions import SqlIngestPositions

pytestmark = pytest.mark.integration

_END = "18446744073709551615-18446744073709551615"


class Replay:
    """A replayable feed: every stream() yields the same events (bars, a tick every 5th, one bad bar)."""

    name = "replay:burst"
    replayable = True

    def __init__(self, n: int, kill_at: int | None = None) -> None:
        self.n = n
        self.kill_at = kill_at
        self.reached = asyncio.Event()  # set once ``kill_at`` bars were given: the test kills then

    def symbols(self) -> list[str]:
        return [f"S{i}" for i in range(7)]

    async def stream(self) -> AsyncIterator[Bar | Tick]:
        m = Timeframe.M1.ns
        for i in range(self.n):
            sym = f"S{i % 7}"
            yield Bar(sym, Timeframe.M1, (i // 7) * m, 10, 20, 9, 10 + i * 1e-4, 1)
            if i % 5 == 0:
                yield Tick(sym, (i // 7) * m + 1, 10.0, 1.0)
            if i == 100:
                yield Bar("S0", Timeframe.M1, 0, 10, 9, 11, 10, 1)  # high < low: rejected
            if i == self.kill_at:
                self.reached.set()
            if i % 50 == 0:
                await asyncio.sleep(0.001)  # the flusher publishes meanwhile; a kill can land here

    async def close(self) -> None:
        return None


async def on_bus(bus: RedisStreamsBus, topic: str) -> list[bytes]:
    out: list[bytes] = []
    for p in range(bus.partitions):
        last = None
        while page := await bus.history(topic, p, bytes, before=_END, after=last, count=5000):
            out += [d.value for d in page]
            last = page[-1].id
    return out


def assert_exactly_once(bars: list[bytes], ticks: list[bytes], n: int) -> None:
    dup_bars = [b for b, k in Counter(bars).items() if k > 1]
    assert not dup_bars, f"{len(dup_bars)} bars published twice"
    assert len(bars) == n
    assert len(ticks) == len(set(ticks)) == len(range(0, n, 5))
    decoded = [decoder(Bar)(b) for b in bars]
    for sym in {b.symbol for b in decoded}:
        ts = [b.ts for b in decoded if b.symbol == sym]
        assert ts == sorted(ts), f"{sym} out of order"


@pytest.fixture
def positions(tmp_path: Path) -> SqlIngestPositions:
    db = make_engine(f"sqlite:///{tmp_path / 'pos.db'}")
    migrate(db)
    return SqlIngestPositions(db)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_killed_mid_replay_then_restarted_publishes_each_event_once(
    redis_url: str, redis_prefix: str, positions: SqlIngestPositions, seed: int
) -> None:
    n = 6_000
    bus = RedisStreamsBus(redis_url, partitions=4, prefix=redis_prefix)
    # Kill at a random point mid-replay: after some, not all, bars are on the bus.
    feed = Replay(n, kill_at=random.Random(seed).randrange(1_000, n - 1_000))
    run = asyncio.create_task(run_ingest(feed, bus, positions=positions, save_every_s=0.01))
    await asyncio.wait_for(feed.reached.wait(), 30)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    before = len(await on_bus(bus, topics.MARKET_BARS))
    assert 0 < before < n
    await run_ingest(Replay(n), bus, positions=positions)  # the restart, to the end of the replay
    assert_exactly_once(await on_bus(bus, topics.MARKET_BARS), await on_bus(bus, topics.MARKET_TICKS), n)
    saved = positions.load("replay:burst")
    assert saved is not None and saved.published == {
        topics.MARKET_BARS: n,
        topics.MARKET_TICKS: len(range(0, n, 5)),
    }
    # A third run of a finished replay publishes nothing.
    await run_ingest(Replay(n), bus, positions=positions)
    assert len(await on_bus(bus, topics.MARKET_BARS)) == n
    await bus.close()


async def test_killed_before_its_first_save_still_publishes_each_event_once(
    redis_url: str, redis_prefix: str, positions: SqlIngestPositions
) -> None:
    n = 3_000
    bus = RedisStreamsBus(redis_url, partitions=4, prefix=redis_prefix)
    feed = Replay(n, kill_at=2_000)
    run = asyncio.create_task(run_ingest(feed, bus, positions=positions, save_every_s=3600))
    await asyncio.wait_for(feed.reached.wait(), 30)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert positions.load("replay:burst") is None  # no position: the streams are the record
    assert 0 < len(await on_bus(bus, topics.MARKET_BARS)) < n
    await run_ingest(Replay(n), bus, positions=positions)
    assert_exactly_once(await on_bus(bus, topics.MARKET_BARS), await on_bus(bus, topics.MARKET_TICKS), n)
    await bus.close()


class LosesFirstReplies:
    """A real bus whose first ``k`` publishes land but answer with an error (a reply lost with the
    connection): the case where retrying blindly would publish a batch twice."""

    def __init__(self, bus: RedisStreamsBus, k: int) -> None:
        self._bus = bus
        self.partitions = bus.partitions
        self.left = k

    async def publish_many(self, topic: str, items: Sequence[tuple[str, bytes]]) -> list[str]:
        ids = await self._bus.publish_many(topic, items)
        if self.left > 0:
            self.left -= 1
            raise BusError("bus: connection lost before the reply (test)")
        return ids

    def __getattr__(self, name: str) -> object:
        return getattr(self._bus, name)


async def test_a_publish_whose_reply_was_lost_is_not_sent_again(
    redis_url: str, redis_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    n = 4_000
    real = RedisStreamsBus(redis_url, partitions=4, prefix=redis_prefix)
    bus = LosesFirstReplies(real, 3)
    await run_ingest(Replay(n), bus)  # type: ignore[arg-type]
    assert bus.left == 0
    out = capsys.readouterr().out
    assert out.count("ingest.bus_retry") >= 3 and "ingest.landed_before_retry" in out
    assert_exactly_once(await on_bus(real, topics.MARKET_BARS), await on_bus(real, topics.MARKET_TICKS), n)
    found, tails = await published_after(real, topics.MARKET_BARS, {}, range(4))
    assert sum(found.values()) == n and set(tails) == set(range(4))
    await real.close()
