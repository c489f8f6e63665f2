"""The wiring picks the Redis client from the settings: one server, or a Redis Cluster (ADR 0027)."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from tradesignals.bus.memory import MemoryBus
from tradesignals.bus.redis_streams import RedisStreamsBus
from tradesignals.config import Mode, Settings
from tradesignals.wiring import _build_bus


async def test_server_mode_builds_a_single_server_bus_by_default() -> None:
    bus = _build_bus(Settings(mode=Mode.SERVER, redis_url="redis://127.0.0.1:1/0"))
    try:
        assert isinstance(bus, RedisStreamsBus)
        assert isinstance(bus._redis, Redis) and not bus.cluster and bus.wait_replicas == 0
        assert bus.entry_messages == 64
    finally:
        await bus.close()


async def test_ts_bus_entry_messages_reaches_the_redis_bus() -> None:
    """The rolling-upgrade setting (one message an entry) must reach the bus, or older consumers
    would park every batch entry as unreadable."""
    bus = _build_bus(Settings(mode=Mode.SERVER, redis_url="redis://127.0.0.1:1/0", bus_entry_messages=1))
    try:
        assert isinstance(bus, RedisStreamsBus) and bus.entry_messages == 1
    finally:
        await bus.close()


async def test_ts_redis_cluster_builds_a_cluster_client_with_the_replica_wait() -> None:
    # Nothing is contacted until the first command: the client discovers the nodes then.
    settings = Settings(
        mode=Mode.SERVER, redis_url="redis://127.0.0.1:1/0", redis_cluster=True, bus_wait_replicas=1
    )
    bus = _build_bus(settings)
    try:
        assert isinstance(bus, RedisStreamsBus)
        assert isinstance(bus._redis, RedisCluster)
        assert bus.cluster and bus.wait_replicas == 1
        assert not await bus.ping()  # nothing listens there: a bool, not a traceback
    finally:
        await bus.close()


async def test_embedded_mode_keeps_the_in_process_bus() -> None:
    bus = _build_bus(Settings(redis_cluster=True))
    assert isinstance(bus, MemoryBus)
    await bus.close()


async def test_ts_redis_cluster_gives_the_websocket_channel_log_a_cluster_client_too() -> None:
    from tradesignals.api.channel_seq import MemoryChannelLog, RedisChannelLog
    from tradesignals.wiring import build_hub

    for cluster, client_type in ((True, RedisCluster), (False, Redis)):
        hub = build_hub(Settings(mode=Mode.SERVER, redis_url="redis://127.0.0.1:1/0", redis_cluster=cluster))
        try:
            assert isinstance(hub.log, RedisChannelLog) and hub.log.cluster is cluster
            assert isinstance(hub.log._redis, client_type)
        finally:
            await hub.log.close()
    assert isinstance(build_hub(Settings(redis_cluster=True)).log, MemoryChannelLog)
