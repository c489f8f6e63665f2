"""The channel log contract (api/channel_seq.py), proven by the same tests on both implementations:
in process, and on the real Redis (every key under the test's own prefix)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from tradesignals.api.channel_seq import ChannelLog, MemoryChannelLog, RedisChannelLog


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
async def log(request: pytest.FixtureRequest) -> AsyncIterator[ChannelLog]:
    impl: ChannelLog
    if request.param == "memory":
        impl = MemoryChannelLog(retention=50)
    else:
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        impl = RedisChannelLog(url, prefix=prefix, retention=50)
    yield impl
    await impl.close()


async def test_sequence_numbers_are_per_channel_and_start_at_one(log: ChannelLog) -> None:
    assert await log.current("signals") == 0
    assert [await log.append("signals", "outcome", {"n": i}) for i in range(3)] == [1, 2, 3]
    assert await log.append("system:alerts", "alert", {}) == 1
    assert await log.current("signals") == 3 and await log.current("nope") == 0


async def test_frames_carry_their_seq_and_data_and_read_back_in_order(log: ChannelLog) -> None:
    await log.append_many([("user:1:signals", "signal", {"n": i, "s": "é"}, None) for i in range(5)])
    entries = await log.read("user:1:signals", 2, 10)
    assert [e.seq for e in entries] == [3, 4, 5]
    frame = orjson.loads(entries[0].frame)
    assert frame == {"seq": 3, "channel": "user:1:signals", "type": "signal", "data": {"n": 2, "s": "é"}}
    assert [e.seq for e in await log.read("user:1:signals", 0, 2)] == [1, 2]
    assert await log.read("user:1:signals", 5, 10) == []


async def test_once_numbers_a_redelivered_message_once(log: ChannelLog) -> None:
    assert await log.append("signals", "outcome", {}, once="signal.events:0:1-0:0") == 1
    assert await log.append("signals", "outcome", {}, once="signal.events:0:1-0:0") is None
    assert await log.append_many([("signals", "o", {}, "k1"), ("signals", "o", {}, "k1")]) == [2, None]
    assert await log.current("signals") == 2


async def test_retention_is_bounded_and_a_trimmed_start_is_visible(log: ChannelLog) -> None:
    await log.append_many([("market:X:updates", "bar", {"i": i}, None) for i in range(500)])
    entries = await log.read("market:X:updates", 0, 1000)
    assert entries[-1].seq == 500
    assert entries[0].seq > 1  # trimmed: the caller sees the gap (and resyncs)
    assert len(entries) < 200  # about ``retention`` (Redis trims approximately)
    seqs = [e.seq for e in entries]
    assert seqs == list(range(seqs[0], 501))


async def test_tail_gives_every_channel_in_append_order_from_a_cursor(log: ChannelLog) -> None:
    await log.append("signals", "outcome", {"before": True})
    cursor = await log.tail_start()
    cursor, nothing = await log.tail(cursor, wait=0.05)
    assert nothing == []
    await log.append("signals", "outcome", {"n": 1})
    await log.append("market:A:updates", "bar", {"n": 2})
    await log.append("signals", "outcome", {"n": 3})
    got = []
    while len(got) < 3:
        cursor, entries = await log.tail(cursor, count=2, wait=1.0)
        got.extend(entries)
    assert [(e.channel, e.seq) for e in got] == [("signals", 2), ("market:A:updates", 1), ("signals", 3)]
    assert [orjson.loads(e.frame)["data"]["n"] for e in got] == [1, 2, 3]


async def test_a_waiting_tail_wakes_on_an_append(log: ChannelLog) -> None:
    cursor = await log.tail_start()
    waiting = asyncio.create_task(log.tail(cursor, wait=5.0))
    await asyncio.sleep(0)  # let it start waiting
    await log.append("system:alerts", "alert", {"x": 1})
    _, entries = await asyncio.wait_for(waiting, timeout=3.0)
    assert [(e.channel, e.seq) for e in entries] == [("system:alerts", 1)]
