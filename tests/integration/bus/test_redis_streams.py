"""Redis-specific guarantees of ``RedisStreamsBus`` beyond the shared contract, on one Redis and on
the session's Redis Cluster: the lease check that travels with every read (ADR 0015, point 5), and
what the batched hot paths (pipelined XADD, COUNT spread over the streams) must keep true."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from tradesignals.bus import redis_client, redis_streams
from tradesignals.bus.base import BusError, partition_for
from tradesignals.bus.codec import decoder, encode
from tradesignals.bus.redis_client import reply_reader
from tradesignals.bus.redis_streams import ENTRY_MESSAGES, RedisStreamsBus, entry_messages, split_id

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


async def stored(raw: Any, stream: str, msg_id: str) -> tuple[str, bytes]:
    """The (key, payload) a message id names in the stream: its entry's one message, or its batch's."""
    entry_id, index = split_id(msg_id)
    [(_, fields)] = await raw.xrange(stream, min=entry_id, max=entry_id)
    messages = entry_messages(fields)
    assert (index is None) == (b"k" in fields), f"{msg_id} and its entry's kind disagree"
    return messages[index or 0]


def keys_over_partitions(count: int, partitions: int = 8) -> list[str]:
    """``count`` keys, every partition among them."""
    keys = [f"K{i}" for i in range(count)]
    assert {partition_for(k, partitions) for k in keys} == set(range(partitions))
    return keys


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


@pytest.mark.parametrize("fast", [True, False], ids=["pipelined", "script"])
async def test_a_batch_publish_returns_each_message_s_id_and_trims_each_stream_it_touched(
    make_bus: Callable[..., RedisStreamsBus], fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ids in the items' order, each naming its own entry (one message an entry, as a rolling upgrade
    runs), over several slices of the batch; the streams are trimmed once per batch (not per XADD)
    and stay bounded. ``script``: the path a cluster, a publish waiting for replicas, or a
    connection without hiredis's reader takes."""
    if not fast:
        monkeypatch.setattr(redis_streams, "reply_reader", lambda conn: None)
    bus = make_bus(maxlen=50, entry_messages=1)
    keys = keys_over_partitions(40)
    items = [(keys[i % len(keys)], encode(Msg(keys[i % len(keys)], i))) for i in range(2_500)]
    async with asyncio.timeout(30):
        ids = await bus.publish_many(TOPIC, items)
        last: dict[int, tuple[str, bytes, str]] = {}
        for (key, payload), msg_id in zip(items, ids, strict=True):
            last[partition_for(key, bus.partitions)] = (key, payload, msg_id)
        for p, (key, payload, msg_id) in last.items():
            stream = bus.stream_key(TOPIC, p)
            [(entry_id, fields)] = await bus._redis.xrange(stream, min=msg_id, max=msg_id)
            assert (entry_id.decode(), fields) == (msg_id, {b"k": key.encode(), b"v": payload})
            # ~300 appended per stream; approximate trimming keeps whole nodes (100 entries each).
            assert 50 <= await bus._redis.xlen(stream) <= 150
    per_partition: dict[int, list[str]] = {}
    for (key, _), msg_id in zip(items, ids, strict=True):
        per_partition.setdefault(partition_for(key, bus.partitions), []).append(msg_id)
    for got in per_partition.values():  # stream ids grow in publish order within a partition
        assert got == sorted(got, key=lambda i: tuple(map(int, i.split("-"))))


async def test_a_single_server_publishes_a_batch_without_the_script(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipelined XADDs are what a single server runs (the script would cost it 3x the time):
    hiredis's reader must be found, or every batch would quietly take the slow path."""
    bus = RedisStreamsBus(redis_url, prefix=redis_prefix)
    try:

        async def no_script(**_: Any) -> Any:
            raise AssertionError("a single server's batch ran the XADD script")

        monkeypatch.setattr(bus, "_xadd_many_script", no_script)
        pool = bus._redis.connection_pool  # type: ignore[union-attr]
        conn = await pool.get_connection()
        try:
            assert reply_reader(conn) is not None
        finally:
            await pool.release(conn)
        ids = await bus.publish_many(
            TOPIC, [("AAPL", encode(Msg("AAPL", 1))), ("MSFT", encode(Msg("MSFT", 2)))]
        )
        assert len(ids) == 2
    finally:
        await bus.close()


async def test_an_error_reply_inside_a_batch_or_an_ack_is_a_bus_error_and_the_next_batch_gets_its_own_ids(
    redis_url: str, redis_prefix: str
) -> None:
    """One XADD of the pipeline fails (its stream key holds a string), or one XACK of an ack: every
    reply is still read, so the connection, back in the pool, gives the next batch its own
    replies, not the failed one's."""
    bus = RedisStreamsBus(redis_url, prefix=redis_prefix)
    raw = aioredis.Redis.from_url(redis_url)
    try:
        keys = keys_over_partitions(40)
        broken = partition_for(keys[0], bus.partitions)
        await raw.set(bus.stream_key("broken", broken), "not a stream")
        async with asyncio.timeout(15):
            with pytest.raises(BusError, match="WRONGTYPE"):
                await bus.publish_many("broken", [(k, encode(Msg(k, 0))) for k in keys])
            # Likewise an ack whose XACK fails, among the XACKs of the other partitions.
            consumer = bus.consumer("acked", "engine", "a", DECODE, lease_seconds=5)
            await bus.publish_many("acked", [(k, encode(Msg(k, 0))) for k in keys])
            got = await consumer.fetch(100, wait=1)
            assert len({d.partition for d in got}) > 1
            await raw.delete(bus.stream_key("acked", got[0].partition))
            await raw.set(bus.stream_key("acked", got[0].partition), "not a stream")
            with pytest.raises(BusError, match="WRONGTYPE"):
                await consumer.ack(*got)
            items = [(k, encode(Msg(k, 1))) for k in keys]
            ids = await bus.publish_many(TOPIC, items)
            for (key, payload), msg_id in zip(items, ids, strict=True):
                stream = bus.stream_key(TOPIC, partition_for(key, bus.partitions))
                assert await stored(raw, stream, msg_id) == (key, payload)
    finally:
        await raw.aclose()
        await bus.close()


async def test_a_read_brings_about_what_was_asked_not_that_much_per_stream(
    make_bus: Callable[..., RedisStreamsBus],
) -> None:
    """XREADGROUP's COUNT is per stream and counts entries: with every partition backlogged, a
    fetch of 800 must not take 800 entries from each (up to 64 messages each since ADR 0031: more
    to hand over if it dies, more for the garbage collector). What a read brings beyond the ask
    waits in the buffer and is topped up by the next fetch, so a lone busy stream still gets the
    whole count, with one-message entries and with batch entries alike."""
    for per_entry in (1, ENTRY_MESSAGES):
        bus = make_bus(entry_messages=per_entry)
        topic = f"{TOPIC}.{per_entry}"
        keys = keys_over_partitions(40)
        async with asyncio.timeout(30):
            # 4,000 messages, 500 a partition, in one batch: one entry each, or ~8 a partition.
            await bus.publish_many(topic, [(k, encode(Msg(k, i))) for i in range(100) for k in keys])
            consumer = bus.consumer(topic, "engine", "a", DECODE, lease_seconds=5)
            first = await consumer.fetch(800, wait=1)
            second = await consumer.fetch(800, wait=1)
            read = len(first) + len(second) + len(consumer._buffer)  # delivered to this member
            assert 1 <= len(first) <= 800 and len(second) == 800
            # One entry of rounding per stream per read at most; the old per-stream COUNT read 6,400.
            assert read <= 1_600 + 2 * 8 * per_entry
            await consumer.ack(*first, *second)
            while batch := await consumer.fetch(2_000, wait=0.2):
                await consumer.ack(*batch)

            await bus.publish_many(topic, [("AAPL", encode(Msg("AAPL", i))) for i in range(1_000)])
            reads = [await consumer.fetch(400, wait=1) for _ in range(3)]
            assert 1 <= len(reads[0]) <= 400
            assert [len(r) for r in reads[1:]] == [400, 400]
            assert [d.value.seq for r in reads for d in r] == list(range(sum(map(len, reads))))


async def test_a_read_leaves_the_garbage_collector_as_it_found_it(
    bus: RedisStreamsBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reads pause cyclic collection while a reply becomes deliveries: it must be back on after a
    read, after one that failed, and stay off where the process itself had turned it off."""
    consumer = bus.consumer(TOPIC, "engine", "a", DECODE, lease_seconds=5)
    async with asyncio.timeout(15):
        await bus.publish_many(TOPIC, [(k, encode(Msg(k, 0))) for k in keys_over_partitions(40)])
        got = await consumer.fetch(100, wait=1)
        assert got
        assert gc.isenabled()
        await consumer.ack(*got)

        reads: list[bool] = []

        async def broken(*_: Any, **__: Any) -> Any:
            reads.append(gc.isenabled())
            raise ConnectionError("Redis went away mid-read")

        class BrokenPipeline:
            def execute_command(self, *_: Any, **__: Any) -> None:
                pass

            execute = broken

        with monkeypatch.context() as patch:
            patch.setattr(consumer, "_read_watched", broken)
            patch.setattr(bus, "_read_script", broken)
            patch.setattr(bus._redis, "pipeline", lambda **_: BrokenPipeline())  # a cluster's reads
            patch.setattr(consumer, "_last_read", 0)  # a small last read: the script read
            patch.setattr(consumer, "_rebalance_due", float("inf"))  # straight to the read
            with pytest.raises(BusError, match="went away"):
                await consumer.fetch(100, wait=0.2)
        assert reads == [False]  # paused over the read's round trips
        assert gc.isenabled()

        await bus.publish(TOPIC, "AAPL", encode(Msg("AAPL", 1)))
        gc.disable()
        try:
            assert [d.value.seq for d in await consumer.fetch(100, wait=1)] == [1]
            assert not gc.isenabled()
        finally:
            gc.enable()


async def test_a_batch_or_an_ack_whose_connection_breaks_is_retried_on_a_new_one(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As redis-py retries its own commands (a connection broken by a Redis restart is replaced),
    so do the bus's own pipelines: the caller sees the batch's ids and an ack that took, no error."""
    bus = RedisStreamsBus(redis_url, prefix=redis_prefix)
    raw = aioredis.Redis.from_url(redis_url)
    real = redis_client.read_replies
    breaks: list[int] = []

    async def breaking(conn: Any, gets: Any, count: int) -> list[Any]:
        if len(breaks) < 2 and count > 1:  # the first try of the publish, then of the ack
            breaks.append(count)
            await conn.disconnect()
            raise RedisConnectionError("Connection closed by server.")
        return await real(conn, gets, count)

    try:
        keys = keys_over_partitions(40)
        consumer = bus.consumer(TOPIC, "engine", "a", DECODE, lease_seconds=5)
        async with asyncio.timeout(15):
            await consumer.fetch(1, wait=0)
            monkeypatch.setattr(redis_client, "read_replies", breaking)
            items = [(k, encode(Msg(k, 0))) for k in keys]
            ids = await bus.publish_many(TOPIC, items)
            for (key, payload), msg_id in zip(items, ids, strict=True):
                stream = bus.stream_key(TOPIC, partition_for(key, bus.partitions))
                assert await stored(raw, stream, msg_id) == (key, payload)
            got: list[Any] = []
            while len({d.value.key for d in got}) < len(keys):  # the first try's copies come too
                got += await consumer.fetch(500, wait=1)
            await consumer.ack(*got)
            assert len(breaks) == 2
            lag = await bus.lag(TOPIC, "engine")
            assert lag is not None and lag.pending == 0
    finally:
        await raw.aclose()
        await bus.close()
