"""A partition that moves between engines is rebuilt from its stream before the new owner decides.

Two `EngineService`s in one process over the real Redis bus (each with its own client, as two
processes would have): the first handles the first half of a replay alone, the second joins, the
first leaves, and the second finishes. The store must then hold exactly the signals (and final
statuses) of one engine that saw every bar: the second engine's decisions depend on the feature
state, open signals and cool-downs the first built from bars only the first ever handled.
The process-level version (SIGKILL, real processes) is tests/fault/test_engine_kill.py.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tradesignals.bus import topics
from tradesignals.bus.base import partition_for
from tradesignals.bus.codec import encode
from tradesignals.bus.redis_streams import RedisStreamsBus, stream_key
from tradesignals.config import Settings
from tradesignals.domain.market import Bar, Timeframe
from tradesignals.engine.pipeline import EngineService, SignalEngine
from tradesignals.storage.base import SignalQuery
from tradesignals.storage.db import make_engine, migrate
from tradesignals.storage.repositories import SqlSignalRepository
from tradesignals.wiring.engine_builder import build_engine

pytestmark = pytest.mark.integration

PARTITIONS = 4
DAY = Timeframe.D1.ns


def bars(days: int = 200) -> list[Bar]:
    rng = random.Random(3)
    names: list[str] = []
    i = 0
    while {partition_for(n, PARTITIONS) for n in names} != set(range(PARTITIONS)) or len(names) < 8:
        names.append(f"R{i:02d}USDT")
        i += 1
    prices = dict.fromkeys(names, 50.0)
    out = []
    for k in range(days):
        for s, o in prices.items():
            c = o * (1 + rng.gauss(0.0, 0.025))
            out.append(Bar(s, Timeframe.D1, k * DAY, o, max(o, c) * 1.01, min(o, c) * 0.99, c, 10.0))
            prices[s] = c
    return out


def engine(tmp: Path) -> SignalEngine:
    return build_engine(Settings(model="rule", home=tmp))


async def until(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.02)


def drained(client: redis.Redis, prefix: str) -> bool:
    """The engine group read every partition to its end and acked everything (Redis's own count)."""
    for p in range(PARTITIONS):
        stream = stream_key(prefix, topics.MARKET_BARS, p)
        groups = client.xinfo_groups(stream) if client.exists(stream) else []
        if not any(g["name"] == "engine" and not g["pending"] and not g["lag"] for g in groups):
            return False
    return True


async def test_the_engine_that_gains_a_partition_decides_as_one_engine_would(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    replay = bars()
    one = engine(tmp_path)
    expected: dict[str, str] = {}
    for bar in replay:
        if (sig := one.on_bar(bar)) is not None:
            expected[sig.id] = "open"
        for o in one.drain_outcomes():
            expected[o.signal_id] = o.status.value
    db = make_engine(f"sqlite:///{tmp_path / 'ts.db'}")
    migrate(db)
    repo = SqlSignalRepository(db)
    bus_a = RedisStreamsBus(redis_url, partitions=PARTITIONS, prefix=redis_prefix)
    bus_b = RedisStreamsBus(redis_url, partitions=PARTITIONS, prefix=redis_prefix)
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    a = EngineService(engine(tmp_path), bus_a, repo, name="a", stop=stop_a, lease_seconds=1.0)
    b = EngineService(engine(tmp_path), bus_b, repo, name="b", stop=stop_b, lease_seconds=1.0)
    half = len(replay) // 2
    task_a = asyncio.create_task(a.run())
    await bus_a.publish_many(topics.MARKET_BARS, [(x.symbol, encode(x)) for x in replay[:half]])
    await until(lambda: a.engine.stats.bars == half)  # a alone: its counter is exact
    task_b = asyncio.create_task(b.run())
    await bus_a.publish_many(topics.MARKET_BARS, [(x.symbol, encode(x)) for x in replay[half:]])
    stop_a.set()  # a leaves (closing its consumer hands its partitions over at once)
    await asyncio.wait_for(task_a, 10)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    await until(lambda: drained(client, redis_prefix))
    client.close()
    stop_b.set()
    await asyncio.wait_for(task_b, 10)
    await bus_a.close()
    await bus_b.close()
    got = {s.id: s.status.value for s in repo.query(SignalQuery(limit=500))}
    db.dispose()
    # b rebuilt every partition it took from a, replaying what a had handled there (under load
    # leases can also move back and forth; each move is rebuilt the same way).
    taken = [r for r in b.rebuilds if r.replayed > 0]
    assert {r.partition for r in taken} == set(range(PARTITIONS))
    assert a.engine.stats.bars + b.engine.stats.bars >= len(replay)
    assert len(expected) > 20
    assert got == expected
