"""Redis-specific guarantees of ``RedisStreamsBus`` beyond the shared contract, on one Redis and on
the session's Redis Cluster: the lease check that travels with every read (ADR 0015, point 5)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tradesignals.bus.base import partition_for
from tradesignals.bus.codec import decoder, encode
from tradesignals.bus.redis_streams import RedisStreamsBus

pytestmark = pytest.mark.integration

TOPIC = "market.bars"


@dataclass(frozen=True, slots=True)
class Msg:
    key: str
    seq: int


DECODE = decoder(Msg)


@pytest.fixture(params=["redis", "redis-cluster"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[RedisStreamsBus]:
    if request.param == "redis":
        impl = RedisStreamsBus(
            request.getfixturevalue("redis_url"), prefix=request.getfixturevalue("redis_prefix")
        )
    else:
        impl = RedisStreamsBus(
            request.getfixturevalue("redis_cluster").url,
            prefix=request.getfixturevalue("redis_cluster_prefix"),
            cluster=True,
        )
    yield impl
    await impl.close()


@pytest.mark.parametrize("script", [False, True], ids=["watch-read", "script-read"])
async def test_a_member_whose_lease_lapsed_reads_nothing_new_from_a_partition_taken_over(
    bus: RedisStreamsBus, script: bool
) -> None:
    """Both reads of a single server (WATCH + MULTI/EXEC, and the Lua one after a wake-up) and the
    cluster's (always the script) check the lease in the same atomic step as the XREADGROUP."""
    p = partition_for("AAPL", bus.partitions)
    paused = bus.consumer(TOPIC, "engine", "a", DECODE, lease_seconds=0.2)
    other = bus.consumer(TOPIC, "engine", "b", DECODE, lease_seconds=5)
    async with asyncio.timeout(15):
        await bus.publish(TOPIC, "AAPL", encode(Msg("AAPL", 0)))
        first = await paused.fetch(10, wait=1)
        await paused.ack(*first)
        # "a" is paused (GC, CPU starvation): no fetch, so its lease lapses and "b" takes over.
        while other.epoch(p) == 0:
            assert await other.fetch(10, wait=0.05) == []
        await bus.publish(TOPIC, "AAPL", encode(Msg("AAPL", 1)))
        # "a" wakes believing it still owns p and reads before any rebalance could tell it otherwise.
        assert p in paused._owned
        stolen = await paused._read_held([p], 10, 0, script=script)
        taken = await other.fetch(10, wait=1)
    assert [d.value.seq for d in first] == [0]
    assert stolen == []
    assert [(d.value.seq, d.attempt) for d in taken] == [(1, 1)]
