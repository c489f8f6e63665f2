"""Batch entries of the Redis bus (ADR 0031): ``publish_many`` packs a partition's messages into
stream entries of up to ``ENTRY_MESSAGES``, and the bus contract must hold per message all the same:
an acked message is never handed out again, even when the rest of its entry is; poison inside a
batch is parked alone; history reads from and to any message. On one Redis and on the cluster."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError

from tradesignals.bus import redis_streams
from tradesignals.bus.base import BusError, partition_for
from tradesignals.bus.codec import decoder, encode
from tradesignals.bus.redis_streams import (
    ENTRY_MESSAGES,
    RedisStreamsBus,
    acked_key,
    entry_messages,
    split_id,
)

pytestmark = pytest.mark.integration

TOPIC = "market.bars"
KEY = "AAPL"
END = "18446744073709551615-18446744073709551615"


@dataclass(frozen=True, slots=True)
class Msg:
    key: str
    seq: int


DECODE = decoder(Msg)


def raw_client(bus: RedisStreamsBus) -> Any:
    return RedisCluster.from_url(bus.url) if bus.cluster else aioredis.Redis.from_url(bus.url)


def msgs(n: int, key: str = KEY, first: int = 0) -> list[tuple[str, bytes]]:
    return [(key, encode(Msg(key, seq))) for seq in range(first, first + n)]


async def test_publish_many_packs_each_partition_s_messages_into_entries_in_order(
    make_bus: Callable[..., RedisStreamsBus],
) -> None:
    """Ids name (entry, index); an entry holds at most ENTRY_MESSAGES messages of one partition, in
    publish order; a partition with one message in the batch gets a one-message entry; messages
    too big to pack 64 at a time are packed by size, and one over the size limit stands alone."""
    bus = make_bus()
    raw = raw_client(bus)
    lone = next(f"L{i}" for i in range(100) if partition_for(f"L{i}", 8) != partition_for(KEY, 8))
    try:
        async with asyncio.timeout(15):
            items = [*msgs(150), (lone, encode(Msg(lone, 0)))]
            ids = await bus.publish_many(TOPIC, items)
            entries: dict[tuple[str, str], list[tuple[str, bytes]]] = {}  # ids are per stream
            stream = bus.stream_key(TOPIC, partition_for(KEY, 8))
            for (key, payload), msg_id in zip(items, ids, strict=True):
                entry_id, index = split_id(msg_id)
                where = (bus.stream_key(TOPIC, partition_for(key, 8)), entry_id)
                if where not in entries:
                    [(_, fields)] = await raw.xrange(where[0], min=entry_id, max=entry_id)
                    entries[where] = entry_messages(fields)
                assert entries[where][index or 0] == (key, payload)
            sizes = [len(entries[stream, split_id(i)[0]]) for i in (ids[0], ids[64], ids[128])]
            assert sizes == [64, 64, 22]
            assert split_id(ids[-1])[1] is None  # the lone message: an entry of its own, k and v
            assert [split_id(i)[1] for i in ids[:3]] == [0, 1, 2]

            big = [(KEY, bytes([i]) * 100_000) for i in range(5)] + [(KEY, b"x" * 300_000)]
            big_ids = await bus.publish_many("big", big)
            sizes = {split_id(i)[0]: 0 for i in big_ids}
            for i in big_ids:
                sizes[split_id(i)[0]] += 1
            assert list(sizes.values()) == [2, 2, 1, 1]  # 256 KB an entry at most, 300 KB alone
            back = await bus.history("big", partition_for(KEY, 8), bytes, before=END)
            assert [d.value for d in back] == [payload for _, payload in big]
    finally:
        await raw.aclose()


@pytest.mark.parametrize("how", ["crash", "close"])
async def test_a_member_that_acked_part_of_an_entry_hands_over_only_the_rest(
    make_bus: Callable[..., RedisStreamsBus], how: str
) -> None:
    """Acked messages of an entry never come back: the indexes acked are recorded while the entry
    is acked in part, so the next owner (after a crash or a close) is given the rest only, with
    attempt 2; once it acks them the entry is acked and its record dropped."""
    bus = make_bus()
    raw = raw_client(bus)
    p = partition_for(KEY, 8)
    try:
        async with asyncio.timeout(15):
            await bus.publish_many(TOPIC, msgs(10))
            first = bus.consumer(TOPIC, "engine", "a", DECODE, lease_seconds=0.3)
            got = await first.fetch(10, wait=1)
            assert [d.value.seq for d in got] == list(range(10))
            await first.ack(*(d for d in got if d.value.seq in (0, 1, 2, 5, 7)))  # out of order
            assert await raw.hlen(acked_key(bus.prefix, TOPIC, "engine", p)) == 1
            if how == "close":
                await first.close()
            second = bus.consumer(TOPIC, "engine", "b", DECODE, lease_seconds=0.3)
            again: list[Any] = []
            while len(again) < 5:
                again += await second.fetch(10, wait=0.2)
            assert await second.fetch(10, wait=0.2) == []
            assert [(d.value.seq, d.attempt) for d in again] == [(3, 2), (4, 2), (6, 2), (8, 2), (9, 2)]
            assert [d.id for d in again] == [got[i].id for i in (3, 4, 6, 8, 9)]
            await second.ack(*again)
            lag = await bus.lag(TOPIC, "engine")
            assert lag is not None and (lag.unread, lag.pending) == (0, 0)
            assert await raw.hlen(acked_key(bus.prefix, TOPIC, "engine", p)) == 0
    finally:
        await raw.aclose()


async def test_a_fetch_that_splits_an_entry_acks_it_once_all_its_messages_are_acked(
    make_bus: Callable[..., RedisStreamsBus],
) -> None:
    """Fetches of 3 out of a 10-message entry: the entry stays pending until the last is acked,
    acking one twice changes nothing, and a restart under the same name gets back only the unacked."""
    bus = make_bus()
    async with asyncio.timeout(15):
        await bus.publish_many(TOPIC, msgs(10))
        c = bus.consumer(TOPIC, "engine", "a", DECODE, lease_seconds=30)
        seen: list[Any] = []
        for _ in range(3):
            batch = await c.fetch(3, wait=1)
            assert len(batch) == 3
            await c.ack(*batch, *batch)  # twice: harmless
            seen += batch
            lag = await bus.lag(TOPIC, "engine")
            assert lag is not None and lag.pending == 1  # the entry, acked in part
        last = await c.fetch(3, wait=1)
        assert [d.value.seq for d in [*seen, *last]] == list(range(10))
        restarted = bus.consumer(TOPIC, "engine", "a", DECODE, lease_seconds=30)  # same name: a restart
        back = await restarted.fetch(10, wait=1)
        assert [(d.value.seq, d.attempt) for d in back] == [(9, 2)]
        await restarted.ack(*back)
        lag = await bus.lag(TOPIC, "engine")
        assert lag is not None and lag.pending == 0


async def test_poison_inside_a_batch_is_parked_alone_and_an_unreadable_batch_whole(
    make_bus: Callable[..., RedisStreamsBus],
) -> None:
    bus = make_bus()
    raw = raw_client(bus)
    p = partition_for(KEY, 8)
    try:
        async with asyncio.timeout(15):
            items = [*msgs(3), (KEY, b"\xc1"), *msgs(2, first=3)]
            ids = await bus.publish_many(TOPIC, items)
            await raw.xadd(bus.stream_key(TOPIC, p), {"b": b"\xc1\xc1"})  # not a batch at all
            c = bus.consumer(TOPIC, "engine", "a", DECODE, lease_seconds=30)
            got = await c.fetch(100, wait=1)
            assert [d.value.seq for d in got] == [0, 1, 2, 3, 4]
            await c.ack(*got)
            assert await c.fetch(100, wait=0.3) == []  # reads (and parks) the unreadable one
            dead = await bus.dead_letters(TOPIC)
            assert [(d.id, d.payload) for d in dead[:1]] == [(ids[3], b"\xc1")]
            assert dead[1].payload == b"\xc1\xc1" and "unreadable batch entry" in dead[1].reason
            lag = await bus.lag(TOPIC, "engine")
            assert lag is not None and (lag.unread, lag.pending) == (0, 0)
            history = await bus.history(TOPIC, p, DECODE, before=END)
            assert [d.value.seq for d in history] == [0, 1, 2, 3, 4]
    finally:
        await raw.aclose()


async def test_history_reads_from_and_to_any_message_of_a_batch(
    make_bus: Callable[..., RedisStreamsBus],
) -> None:
    """Bounds inside an entry (what an engine rebuilding a partition passes: the first message it
    was given) and paging by messages over entries of one message and of many."""
    bus = make_bus()
    p = partition_for(KEY, 8)
    async with asyncio.timeout(15):
        ids = [await bus.publish(TOPIC, KEY, encode(Msg(KEY, 0)))]
        ids += await bus.publish_many(TOPIC, msgs(10, first=1))
        ids += [await bus.publish(TOPIC, KEY, encode(Msg(KEY, 11)))]
        ids += await bus.publish_many(TOPIC, msgs(5, first=12))

        async def seqs(**bounds: Any) -> list[int]:
            return [d.value.seq for d in await bus.history(TOPIC, p, DECODE, **bounds)]

        assert await seqs(before=ids[5]) == [0, 1, 2, 3, 4]
        assert await seqs(before=ids[5], after=ids[2]) == [3, 4]
        assert await seqs(before=ids[11], after=ids[0]) == list(range(1, 11))
        assert await seqs(before=ids[14], after=ids[10]) == [11, 12, 13]
        assert await seqs(before=END, after=ids[16]) == []
        assert await seqs(before=ids[1]) == [0]
        paged: list[int] = []
        after = None
        while page := await bus.history(TOPIC, p, DECODE, before=END, after=after, count=3):
            assert len(page) <= 3
            paged += [d.value.seq for d in page]
            after = page[-1].id
        assert paged == list(range(17))
        with pytest.raises(ValueError, match="not a bus message id"):
            await bus.history(TOPIC, p, DECODE, before="1-0/x")


async def test_an_ack_that_fails_is_undone_so_that_acking_again_acks_the_entry(
    make_bus: Callable[..., RedisStreamsBus], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bookkeeping is struck before the XACK goes out; a failed send must put it back, or the
    caller's retry would find nothing left to ack and the entry would stay pending for ever."""
    bus = make_bus()
    async with asyncio.timeout(15):
        await bus.publish_many(TOPIC, msgs(10))
        c = bus.consumer(TOPIC, "engine", "a", DECODE, lease_seconds=30)
        got = await c.fetch(10, wait=1)
        fails = {"left": 1}

        def breaking(real: Any) -> Any:
            async def send(*args: Any, **kwargs: Any) -> Any:
                if fails["left"]:
                    fails["left"] -= 1
                    raise RedisConnectionError("Redis went away mid-ack")
                return await real(*args, **kwargs)

            return send

        monkeypatch.setattr(redis_streams, "pipelined", breaking(redis_streams.pipelined))
        monkeypatch.setattr(bus._redis, "pipeline", _failing_pipeline(bus._redis.pipeline, fails))
        with pytest.raises(BusError, match="went away"):
            await c.ack(*got)
        await c.ack(*got)
        lag = await bus.lag(TOPIC, "engine")
        assert lag is not None and lag.pending == 0


def _failing_pipeline(real: Any, fails: dict[str, int]) -> Any:
    """A cluster acks through redis-py's pipeline: its first execute fails while ``fails`` says so."""

    def make(**kwargs: Any) -> Any:
        pipe = real(**kwargs)
        execute = pipe.execute

        async def failing(*args: Any, **kw: Any) -> Any:
            if fails["left"]:
                fails["left"] -= 1
                raise RedisConnectionError("Redis went away mid-ack")
            return await execute(*args, **kw)

        pipe.execute = failing
        return pipe

    return make


async def test_one_message_entries_when_batching_is_off(make_bus: Callable[..., RedisStreamsBus]) -> None:
    """``entry_messages=1`` writes what releases before batch entries wrote (and read): the
    rolling-upgrade setting (operations.md)."""
    bus = make_bus(entry_messages=1)
    raw = raw_client(bus)
    try:
        ids = await bus.publish_many(TOPIC, msgs(ENTRY_MESSAGES + 1))
        assert all(split_id(i)[1] is None for i in ids)
        for msg_id in ids[:3]:
            [(_, fields)] = await raw.xrange(
                bus.stream_key(TOPIC, partition_for(KEY, 8)), min=msg_id, max=msg_id
            )
            assert set(fields) == {b"k", b"v"}
        with pytest.raises(ValueError, match="entry_messages"):
            make_bus(entry_messages=0)
    finally:
        await raw.aclose()


async def test_a_read_whose_reply_is_lost_hands_its_batch_entries_out_once_on_the_next_fetch(
    make_bus: Callable[..., RedisStreamsBus], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server delivered the entries (they are pending under this member) but the reply never
    became deliveries; and a top-up read fails after the buffer was emptied into it. Either way the
    next fetch re-reads the member's pending entries: every message handed out exactly once more,
    none that is already in the caller's hands."""
    bus = make_bus()
    async with asyncio.timeout(15):
        await bus.publish_many(TOPIC, msgs(10))
        await bus.publish_many(TOPIC, msgs(10, first=10))  # two entries of one partition
        c = bus.consumer(TOPIC, "engine", "a", DECODE, lease_seconds=30)
        real_parse = c._parse

        def lost(_response: Any) -> Any:
            raise RedisConnectionError("Connection closed by server.")

        monkeypatch.setattr(c, "_parse", lost)
        with pytest.raises(BusError, match="Connection closed"):
            await c.fetch(100, wait=1)
        monkeypatch.setattr(c, "_parse", real_parse)
        first = await c.fetch(3, wait=1)  # recovered: the pending entry, again
        assert [(d.value.seq, d.attempt) for d in first] == [(0, 2), (1, 2), (2, 2)]

        calls = {"n": 0}
        real_read = c._read_new

        async def failing_top_up(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RedisConnectionError("Connection closed by server.")
            return await real_read(*args, **kwargs)

        monkeypatch.setattr(c, "_read_new", failing_top_up)
        if c._buffer:  # the rest of that read waits in the buffer: the top-up read after it fails
            with pytest.raises(BusError, match="Connection closed"):
                await c.fetch(100, wait=1)
        rest: list[Any] = []
        while batch := await c.fetch(100, wait=0.3):
            rest += batch
        seqs = [d.value.seq for d in [*first, *rest]]
        assert sorted(seqs) == list(range(20)) and len(seqs) == 20  # each once: none lost, none twice
        await c.ack(*first, *rest)
        lag = await bus.lag(TOPIC, "engine")
        assert lag is not None and (lag.unread, lag.pending) == (0, 0)


async def test_a_fetch_that_fails_after_its_recovery_handed_messages_out_loses_none(
    make_bus: Callable[..., RedisStreamsBus], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recovery (re-reading the member's pending entries) moves its cursor past what it took;
    when the same fetch then fails (here: parking the poison it found), what it took never reached
    the caller. The next fetch must read the pending entries from the start again, not from the
    cursor, or those messages would stay pending under this member, never handed out."""
    bus = make_bus()
    async with asyncio.timeout(15):
        await bus.publish_many(TOPIC, [*msgs(4), (KEY, b"\xc1"), *msgs(4, first=4)])
        c = bus.consumer(TOPIC, "engine", "a", DECODE, lease_seconds=30)
        real_parse, real_park = c._parse, c._park

        def lost(_response: Any) -> Any:
            raise RedisConnectionError("Connection closed by server.")

        async def park_fails(_dead: Any) -> None:
            monkeypatch.setattr(c, "_park", real_park)
            raise RedisConnectionError("Connection closed by server.")

        monkeypatch.setattr(c, "_parse", lost)
        with pytest.raises(BusError):
            await c.fetch(100, wait=1)  # delivered by the server, the reply lost
        monkeypatch.setattr(c, "_parse", real_parse)
        monkeypatch.setattr(c, "_park", park_fails)
        with pytest.raises(BusError):
            await c.fetch(100, wait=1)  # the recovery took the 8 and the poison, then parking failed
        got: list[Any] = []
        while batch := await c.fetch(100, wait=0.3):
            got += batch
        assert sorted(d.value.seq for d in got) == list(range(8)) and len(got) == 8
        await c.ack(*got)
        assert len(await bus.dead_letters(TOPIC)) == 1
        lag = await bus.lag(TOPIC, "engine")
        assert lag is not None and (lag.unread, lag.pending) == (0, 0)
