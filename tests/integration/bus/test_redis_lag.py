"""``RedisStreamsBus.lag`` when Redis reports a group's ``lag`` as nil: counted, or unknown — never 0.

Redis cannot derive a group's lag from its counters once an entry after the group's last-delivered
id was deleted (XDEL), after XGROUP SETID, or with counters rebuilt from an AOF; XINFO GROUPS then
says ``lag: nil``. Real Redis and a real 3-master cluster, a test prefix, one partition so the ids
are easy to follow.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from tradesignals.bus import redis_streams
from tradesignals.bus.redis_streams import RedisStreamsBus

pytestmark = pytest.mark.integration

TOPIC = "lagtest"


@pytest.fixture(params=["redis", "redis-cluster"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[RedisStreamsBus]:
    if request.param == "redis":
        url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
        bus = RedisStreamsBus(url, partitions=1, prefix=prefix)
    else:  # 3 masters + 3 replicas, started once per session (tests/conftest.py)
        url = request.getfixturevalue("redis_cluster").url
        prefix = request.getfixturevalue("redis_cluster_prefix")
        bus = RedisStreamsBus(url, partitions=1, prefix=prefix, cluster=True)
    yield bus
    await bus.close()


async def _nil_lag_group(bus: RedisStreamsBus) -> Any:
    """10 entries; group ``engine`` read (and acked) 3; the 6th entry deleted: Redis's lag is nil."""
    for i in range(10):  # one entry each (a publish_many would pack them into one, ADR 0031)
        await bus.publish(TOPIC, f"k{i}", b"x")
    (stream,) = bus.streams(TOPIC)
    raw: Any = RedisCluster.from_url(bus.url) if bus.cluster else aioredis.Redis.from_url(bus.url)
    await raw.xgroup_create(stream, "engine", id="0")
    read = await raw.xreadgroup("engine", "c1", {stream: ">"}, count=3)
    await raw.xack(stream, "engine", *[entry_id for entry_id, _ in read[0][1]])
    sixth = (await raw.xrange(stream, count=6))[-1][0]
    await raw.xdel(stream, sixth)
    (info,) = await raw.xinfo_groups(stream)
    assert info["lag"] is None  # the case under test: Redis cannot count it
    return raw


async def test_a_nil_lag_is_counted_from_the_last_delivered_id(bus: RedisStreamsBus) -> None:
    raw = await _nil_lag_group(bus)
    try:
        lag = await bus.lag(TOPIC, "engine")
    finally:
        await raw.aclose()
    assert lag is not None
    assert (lag.unread, lag.pending, lag.members) == (6, 0, 0)  # 10 - 3 read - 1 deleted


async def test_a_nil_lag_past_the_count_bound_is_unknown_not_zero(
    bus: RedisStreamsBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_streams, "_LAG_COUNT_MAX", 5)
    raw = await _nil_lag_group(bus)
    try:
        lag = await bus.lag(TOPIC, "engine")
    finally:
        await raw.aclose()
    assert lag is not None and lag.unread is None and lag.pending == 0
