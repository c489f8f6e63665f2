"""The channel log contract (api/channel_seq.py), proven by the same tests on every implementation:
in process, on the real Redis (every key under the test's own prefix) and on the 3-master Redis
Cluster the session starts (tests/conftest.py), where every script must stay in one hash slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from tradesignals.api.channel_seq import ChannelLog, Entry, MemoryChannelLog, RedisChannelLog


def _redis_log(request: pytest.FixtureRequest, kind: str, retention: int) -> RedisChannelLog:
    if kind in ("redis", "redis-split"):  # one script per append, or the cluster's two steps
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        return RedisChannelLog(url, prefix=prefix, split=kind == "redis-split", retention=retention)
    url = request.getfixturevalue("redis_cluster").url  # 3 masters + 3 replicas, once per session
    prefix = request.getfixturevalue("redis_cluster_prefix")
    return RedisChannelLog(url, prefix=prefix, cluster=True, retention=retention)


SPLIT_KINDS = [
    pytest.param("redis-split", marks=pytest.mark.integration),
    pytest.param("redis-cluster", marks=pytest.mark.integration),
]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration), *SPLIT_KINDS])
async def log(request: pytest.FixtureRequest) -> AsyncIterator[ChannelLog]:
    impl: ChannelLog
    if request.param == "memory":
        impl = MemoryChannelLog(retention=50)
    else:
        impl = _redis_log(request, request.param, retention=50)
    yield impl
    await impl.close()


@pytest.fixture(params=SPLIT_KINDS)
async def split_log(request: pytest.FixtureRequest) -> AsyncIterator[RedisChannelLog]:
    impl = _redis_log(request, request.param, retention=50)
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


async def test_once_is_per_channel(log: ChannelLog) -> None:
    """One source message may name one message per channel with the same ``once`` (a fill to each
    of its users): each channel numbers its own once."""
    assert await log.append_many(
        [(f"user:{u}:signals", "update", {}, "signal.filled:x") for u in (1, 2)]
    ) == [1, 1]
    assert await log.append("user:2:signals", "update", {}, once="signal.filled:x") is None


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
    got: list[Entry] = []
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


async def test_one_batch_spans_many_channels_and_keeps_each_channels_order(log: ChannelLog) -> None:
    """Channels spread over the cluster's slots: one ``append_many`` numbers each on its own and the
    tail gives them in the order appended (a cluster pipeline sends each node its share)."""
    cursor = await log.tail_start()
    items = [
        (f"user:{u}:signals", "signal", {"u": u, "n": n}, f"signals:0:{n}-0:{u}")
        for n in range(3)
        for u in range(20)
    ]
    seqs = await log.append_many(items)
    assert seqs == [n + 1 for n in range(3) for _ in range(20)]
    got: list[Entry] = []
    while len(got) < len(items):
        cursor, entries = await log.tail(cursor, wait=1.0)
        got.extend(entries)
    assert [(e.channel, orjson.loads(e.frame)["data"]) for e in got] == [(c, d) for c, _, d, _ in items]
    assert [await log.current(f"user:{u}:signals") for u in range(20)] == [3] * 20


async def test_a_fan_out_lost_between_the_steps_is_repaired_when_the_message_comes_again(
    split_log: RedisChannelLog,
) -> None:
    """A node that dies after numbering a message but before its fan-out append: the bus hands the
    message again (it was not acked) and the second append fans the logged frame out, same seq and
    bytes, without numbering it again. Without the repair a channel's last message would never
    reach the sockets that are live on it."""
    cursor = await split_log.tail_start()
    fan_out = split_log._fan_out

    async def dies(fan: object) -> None:
        raise ConnectionError("node died between numbering and fan-out")

    split_log._fan_out = dies  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await split_log.append("user:7:signals", "update", {"state": "filled"}, once="signal.events:3:9-0:0")
    assert await split_log.current("user:7:signals") == 1  # numbered and logged ...
    assert (await split_log.tail(cursor, wait=0.05))[1] == []  # ... but not fanned out
    logged = await split_log.read("user:7:signals", 0, 10)

    split_log._fan_out = fan_out  # type: ignore[method-assign]
    # redelivered: not numbered again, fanned out with the logged bytes
    assert (
        await split_log.append("user:7:signals", "update", {"state": "filled"}, once="signal.events:3:9-0:0")
        is None
    )
    cursor, entries = await split_log.tail(cursor, wait=1.0)
    assert entries == logged and [e.seq for e in entries] == [1]
    assert await split_log.current("user:7:signals") == 1
    # the channel goes on from there
    assert (
        await split_log.append("user:7:signals", "update", {"state": "closed"}, once="signal.events:3:10-0:0")
        == 2
    )
    _, entries = await split_log.tail(cursor, wait=1.0)
    assert [e.seq for e in entries] == [2]


async def test_a_channels_keys_share_one_hash_slot_and_the_fan_out_is_its_own(
    split_log: RedisChannelLog,
) -> None:
    from redis.crc import key_slot

    keys = [split_log._seq_key("user:1:signals"), split_log._stream_key("user:1:signals")]
    keys.append(split_log._once_key("user:1:signals", "signals:0:1-0:0"))
    assert len({key_slot(k.encode()) for k in keys}) == 1
    assert split_log._seq_key("user:2:signals") != keys[0]
    with pytest.raises(ValueError, match="hash tags"):
        RedisChannelLog("redis://127.0.0.1:1/0", prefix="bad{prefix}")
    with pytest.raises(ValueError, match="split"):  # one script would cross slots on a cluster
        RedisChannelLog("redis://127.0.0.1:1/0", prefix="p", cluster=True, split=False)
