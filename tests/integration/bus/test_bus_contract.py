"""The bus contract (tradesignals.bus.base), proven by the same tests on every implementation.

Each test runs against the in-process bus, against Redis Streams on the real server from
tests/conftest.py and against a 3-master Redis Cluster the session starts on loopback ports. Every test is bounded by an asyncio timeout, so a bug fails instead of hanging.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import msgspec
import pytest

from tradesignals.bus.base import Bus, BusError, Consumer, Delivery, partition_for
from tradesignals.bus.codec import decoder, encode
from tradesignals.bus.memory import MemoryBus
from tradesignals.bus.redis_streams import RedisStreamsBus

TOPIC = "market.ticks"
PARTITIONS = 8


@dataclass(frozen=True, slots=True)
class Msg:
    key: str
    seq: int


DECODE = decoder(Msg)


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.integration),
        pytest.param("redis-cluster", marks=pytest.mark.integration),
    ]
)
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    if request.param == "memory":
        impl: Bus = MemoryBus(partitions=PARTITIONS)
    elif request.param == "redis":
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        impl = RedisStreamsBus(url, partitions=PARTITIONS, prefix=prefix)
    else:  # 3 masters + 3 replicas, started once per session (tests/conftest.py)
        url = request.getfixturevalue("redis_cluster").url
        prefix = request.getfixturevalue("redis_cluster_prefix")
        impl = RedisStreamsBus(url, partitions=PARTITIONS, prefix=prefix, cluster=True)
    yield impl
    await impl.close()


def keys_covering_every_partition(per_partition: int = 1) -> list[str]:
    """Keys chosen so each partition gets ``per_partition`` of them: tests then touch them all."""
    by_partition: dict[int, list[str]] = defaultdict(list)
    i = 0
    while any(len(by_partition[p]) < per_partition for p in range(PARTITIONS)):
        key = f"SYM{i}"
        p = partition_for(key, PARTITIONS)
        if len(by_partition[p]) < per_partition:
            by_partition[p].append(key)
        i += 1
    return [k for p in range(PARTITIONS) for k in by_partition[p]]


async def publish_rounds(
    bus: Bus, keys: Sequence[str], rounds: int, first: int = 0, *, together: bool = True
) -> dict[str, str]:
    """``rounds`` messages per key, seq first..; returns message id -> "key:seq" for checks.

    ``together``: all rounds in one ``publish_many``, so a partition's messages share stream entries
    on Redis (ADR 0031) and every test below runs on batch entries too; else one call per round.
    """
    ids: dict[str, str] = {}
    calls = (
        [range(first, first + rounds)]
        if together
        else [range(s, s + 1) for s in range(first, first + rounds)]
    )
    for seqs in calls:
        batch = [(k, encode(Msg(k, seq))) for seq in seqs for k in keys]
        for (key, payload), msg_id in zip(batch, await bus.publish_many(TOPIC, batch), strict=True):
            ids[f"{partition_for(key, PARTITIONS)}/{msg_id}"] = f"{key}:{DECODE(payload).seq}"
    return ids


async def collect(
    consumer: Consumer[Msg], n: int, *, ack: bool = True, max_count: int = 50
) -> list[Delivery[Msg]]:
    """Fetch until ``n`` deliveries arrived (acking as we go, like a well-behaved worker)."""
    out: list[Delivery[Msg]] = []
    while len(out) < n:
        batch = await consumer.fetch(max_count, wait=0.2)
        out.extend(batch)
        if ack and batch:
            await consumer.ack(*batch)
    return out


async def until(condition: Callable[[], bool], changed: asyncio.Event) -> None:
    """Wait for ``condition``, re-checking whenever a worker signals progress on ``changed``."""
    while not condition():
        changed.clear()
        await changed.wait()


def uid(d: Delivery[Msg]) -> str:
    """Ids are unique per partition; this is unique per topic on every implementation."""
    return f"{d.partition}/{d.id}"


def assert_in_order_per_key(deliveries: Sequence[Delivery[Msg]], expected_per_key: int | None = None) -> None:
    per_key: dict[str, list[int]] = defaultdict(list)
    for d in deliveries:
        assert d.key == d.value.key
        assert d.partition == partition_for(d.key, PARTITIONS)
        per_key[d.key].append(d.value.seq)
    for key, seqs in per_key.items():
        assert seqs == sorted(set(seqs)), f"{key} out of order or duplicated: {seqs}"
        if expected_per_key is not None:
            assert seqs == list(range(expected_per_key)), f"{key}: {seqs}"


async def test_one_consumer_gets_every_message_in_order_per_key(bus: Bus) -> None:
    keys = [f"K{i}" for i in range(50)]
    async with asyncio.timeout(15):
        published = await publish_rounds(bus, keys, 20)
        for seq in range(20, 30):  # single publishes too, interleaved across keys
            for k in keys:
                await bus.publish(TOPIC, k, encode(Msg(k, seq)))
        consumer = bus.consumer(TOPIC, "engine", "w1", DECODE)
        got = await collect(consumer, 50 * 30)
        assert await consumer.fetch(50, wait=0.1) == []
    assert_in_order_per_key(got, expected_per_key=30)
    assert {uid(d) for d in got} >= set(published)
    assert all(d.attempt == 1 and d.topic == TOPIC for d in got)


async def test_order_per_key_holds_across_a_group_of_three(bus: Bus) -> None:
    keys = [f"K{i}" for i in range(40)]
    rounds = 30
    total = len(keys) * rounds
    seen: list[tuple[str, Delivery[Msg]]] = []  # in arrival order across the whole group
    done = asyncio.Event()
    consumers = [bus.consumer(TOPIC, "engine", f"w{i}", DECODE) for i in range(3)]

    async def work(consumer: Consumer[Msg]) -> None:
        while not done.is_set():
            batch = await consumer.fetch(25, wait=0.05)
            seen.extend((consumer.name, d) for d in batch)
            if batch:
                await consumer.ack(*batch)
            if len(seen) >= total:
                done.set()

    async def produce() -> None:
        for seq in range(rounds):
            await bus.publish_many(TOPIC, [(k, encode(Msg(k, seq))) for k in keys])
            await asyncio.sleep(0.005)  # let consumers run between rounds: publish and consume overlap

    async with asyncio.timeout(20):
        await asyncio.gather(produce(), *(work(c) for c in consumers))
        for c in consumers:
            await c.close()

    assert len(seen) == total  # nothing duplicated while members joined and rebalanced
    assert_in_order_per_key([d for _, d in seen], expected_per_key=rounds)
    workers = {name for name, _ in seen}
    assert len(workers) >= 2, f"the group never shared the work: only {workers}"


async def test_a_waiting_fetch_wakes_on_publish_and_an_empty_one_returns(bus: Bus) -> None:
    consumer = bus.consumer(TOPIC, "engine", "w1", DECODE)
    async with asyncio.timeout(10):
        assert await consumer.fetch(10, wait=0.05) == []
        waiting = asyncio.create_task(consumer.fetch(10, wait=30))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await bus.publish(TOPIC, "AAPL", encode(Msg("AAPL", 0)))
        got = await waiting  # long before its 30 s wait: the publish woke it
    assert [(d.key, d.value.seq, d.attempt) for d in got] == [("AAPL", 0, 1)]


async def test_unacked_messages_pass_to_another_member_on_close(bus: Bus) -> None:
    keys = keys_covering_every_partition()
    # Long leases: anything the second member gets early can only come from close().
    first = bus.consumer(TOPIC, "engine", "a", DECODE, lease_seconds=60)
    second = bus.consumer(TOPIC, "engine", "b", DECODE, lease_seconds=60)
    async with asyncio.timeout(10):
        await publish_rounds(bus, keys, 5)
        got_a = await first.fetch(15, wait=1)
        assert len(got_a) == 15
        await first.ack(*got_a[:5])
        assert await second.fetch(50, wait=0.05) == []  # joined, but "a" holds every partition
        await first.close()
        got_b = await collect(second, len(keys) * 5 - 5)
        assert await second.fetch(50, wait=0.1) == []
    by_id = {uid(d): d for d in got_b}
    assert len(by_id) == len(got_b) == len(keys) * 5 - 5
    assert not {uid(d) for d in got_a[:5]} & set(by_id), "acked messages came back"
    for d in got_a[5:]:
        assert by_id[uid(d)].value == d.value
        assert by_id[uid(d)].attempt == 2
    assert_in_order_per_key(got_b)


async def test_a_member_hands_a_partition_over_only_once_its_work_there_is_acked(bus: Bus) -> None:
    keys = keys_covering_every_partition()
    a = bus.consumer(TOPIC, "engine", "a", DECODE, lease_seconds=60)
    b = bus.consumer(TOPIC, "engine", "b", DECODE, lease_seconds=60)
    async with asyncio.timeout(10):
        await publish_rounds(bus, keys, 2)
        first = await a.fetch(100, wait=1)  # alone: owns and has unacked work on every partition
        assert len(first) == 2 * PARTITIONS
        assert await b.fetch(100, wait=0.1) == []  # b joins; nothing is free yet
        await publish_rounds(bus, keys, 1, first=2)
        # Over its share now, a keeps working its half but takes nothing new from the other half,
        # which it still cannot hand over: its earlier work there is unacked.
        second = await a.fetch(100, wait=0.3)
        assert len(second) == PARTITIONS // 2
        assert len({d.partition for d in second}) == PARTITIONS // 2
        assert await b.fetch(100, wait=0.1) == []  # handing over now would mean duplicates
        await a.ack(*first, *second)
        assert await a.fetch(100, wait=0.1) == []  # acked: the other half is handed over
        third = await collect(b, PARTITIONS // 2)
    assert {d.partition for d in third} == set(range(PARTITIONS)) - {d.partition for d in second}
    assert all(d.attempt == 1 for d in [*first, *second, *third])
    assert_in_order_per_key([*first, *second, *third], expected_per_key=3)


async def test_a_crashed_member_s_messages_go_to_another_member_after_its_lease(bus: Bus) -> None:
    keys = keys_covering_every_partition(2)
    crashed = bus.consumer(TOPIC, "engine", "a", DECODE, lease_seconds=0.3)
    survivor = bus.consumer(TOPIC, "engine", "b", DECODE, lease_seconds=0.3)
    async with asyncio.timeout(10):
        published = await publish_rounds(bus, keys, 5)
        got_a = await crashed.fetch(30, wait=1)  # then it never fetches, acks nor closes again
        assert len(got_a) == 30
        got_b = await collect(survivor, len(published))
        assert await survivor.fetch(50, wait=0.1) == []
    assert {uid(d) for d in got_b} == set(published)
    again = {uid(d): d for d in got_b}
    for d in got_a:
        assert again[uid(d)].value == d.value
        assert again[uid(d)].attempt >= 2
    assert_in_order_per_key(got_b, expected_per_key=5)


async def test_a_restart_under_the_same_name_gets_its_own_unacked_messages_back(bus: Bus) -> None:
    keys = keys_covering_every_partition()
    async with asyncio.timeout(10):
        await publish_rounds(bus, keys, 3)
        before = bus.consumer(TOPIC, "engine", "engine-1", DECODE, lease_seconds=60)
        got = await before.fetch(10, wait=1)  # crash: no ack, no close, lease still running
        after = bus.consumer(TOPIC, "engine", "engine-1", DECODE, lease_seconds=60)
        got_after = await collect(after, len(keys) * 3)
    again = {uid(d): d for d in got_after}
    assert all(again[uid(d)].attempt == 2 for d in got)
    assert_in_order_per_key(got_after, expected_per_key=3)


async def test_poison_is_parked_with_its_reason_and_does_not_block_its_key(bus: Bus) -> None:
    not_msgpack = b"\xc1"  # a byte MessagePack never uses
    wrong_shape = encode({"key": "AAPL"})  # valid MessagePack, missing ``seq``
    async with asyncio.timeout(10):
        await bus.publish(TOPIC, "AAPL", encode(Msg("AAPL", 0)))
        bad1 = await bus.publish(TOPIC, "AAPL", not_msgpack)
        bad2 = await bus.publish(TOPIC, "AAPL", wrong_shape)
        await bus.publish(TOPIC, "AAPL", encode(Msg("AAPL", 1)))
        consumer = bus.consumer(TOPIC, "engine", "w1", DECODE)
        got = await collect(consumer, 2)
        assert await consumer.fetch(10, wait=0.1) == []
        dead = await bus.dead_letters(TOPIC)
        await consumer.close()
        # Parked means acked: a fresh member of the group does not get the poison again.
        fresh = bus.consumer(TOPIC, "engine", "w2", DECODE)
        assert await fresh.fetch(10, wait=0.2) == []
    assert [d.value.seq for d in got] == [0, 1]
    assert [(d.id, d.payload, d.key, d.topic) for d in dead] == [
        (bad1, not_msgpack, "AAPL", TOPIC),
        (bad2, wrong_shape, "AAPL", TOPIC),
    ]
    assert {d.partition for d in dead} == {partition_for("AAPL", PARTITIONS)}
    for letter in dead:
        with pytest.raises(msgspec.DecodeError) as info:
            DECODE(letter.payload)
        assert str(info.value) in letter.reason
    assert await bus.dead_letters(TOPIC, limit=1) == dead[-1:]
    assert await bus.dead_letters("no.such.topic") == []


async def test_two_groups_each_get_every_message(bus: Bus) -> None:
    keys = keys_covering_every_partition(3)
    async with asyncio.timeout(10):
        published = await publish_rounds(bus, keys, 4)
        engine = bus.consumer(TOPIC, "engine", "w1", DECODE)
        archive = bus.consumer(TOPIC, "archive", "w1", DECODE)
        got_engine = await collect(engine, len(published))
        got_archive = await collect(archive, len(published))
    assert {uid(d) for d in got_engine} == {uid(d) for d in got_archive} == set(published)
    assert_in_order_per_key(got_engine, expected_per_key=4)
    assert_in_order_per_key(got_archive, expected_per_key=4)


async def test_a_group_starting_at_latest_skips_history(bus: Bus) -> None:
    keys = keys_covering_every_partition()
    async with asyncio.timeout(10):
        await publish_rounds(bus, keys, 3)
        live = bus.consumer(TOPIC, "api-node-1", "n1", DECODE, start="latest")
        assert await live.fetch(100, wait=0) == []  # joins the group at the current end
        fresh = await publish_rounds(bus, keys, 2, first=3)
        got = await collect(live, len(fresh))
        assert await live.fetch(100, wait=0.1) == []
    assert {uid(d) for d in got} == set(fresh)
    assert sorted({d.value.seq for d in got}) == [3, 4]


async def test_members_split_the_partitions_fairly(bus: Bus) -> None:
    keys = keys_covering_every_partition()
    seen: dict[int, dict[str, set[int]]] = defaultdict(
        lambda: defaultdict(set)
    )  # round -> member -> partitions
    stop = asyncio.Event()
    arrived = asyncio.Event()
    members = [bus.consumer(TOPIC, "engine", name, DECODE) for name in ("a", "b")]

    async def work(consumer: Consumer[Msg]) -> None:
        while not stop.is_set():
            batch = await consumer.fetch(50, wait=0.05)
            for d in batch:
                seen[d.value.seq][consumer.name].add(d.partition)
            if batch:
                await consumer.ack(*batch)
                arrived.set()

    async def rounds() -> dict[str, set[int]]:
        for r in range(10_000):
            await bus.publish_many(TOPIC, [(k, encode(Msg(k, r))) for k in keys])
            this_round = seen[r]
            await until(lambda: sum(len(p) for p in this_round.values()) >= PARTITIONS, arrived)  # noqa: B023
            if len(this_round) == 2 and all(len(p) == PARTITIONS // 2 for p in this_round.values()):
                return dict(this_round)
        raise AssertionError("never balanced")

    async with asyncio.timeout(15):
        workers = [asyncio.create_task(work(c)) for c in members]
        split = await rounds()
        stop.set()
        await asyncio.gather(*workers)
    assert split["a"].isdisjoint(split["b"])
    assert split["a"] | split["b"] == set(range(PARTITIONS))


async def test_history_reads_a_partition_back_between_two_ids_without_poison(bus: Bus) -> None:
    key = "AAPL"
    p = partition_for(key, PARTITIONS)
    async with asyncio.timeout(10):
        ids = [await bus.publish(TOPIC, key, encode(Msg(key, seq))) for seq in range(3)]
        await bus.publish(TOPIC, key, b"\xc1")  # poison: left out of the history
        ids += [await bus.publish(TOPIC, key, encode(Msg(key, seq))) for seq in range(3, 6)]
        everything = await bus.history(TOPIC, p, DECODE, before=ids[5])
        middle = await bus.history(TOPIC, p, DECODE, before=ids[4], after=ids[0])
        first_two = await bus.history(TOPIC, p, DECODE, before=ids[5], count=2)
        rest = await bus.history(TOPIC, p, DECODE, before=ids[5], after=first_two[-1].id, count=2)
        nothing = await bus.history(TOPIC, p, DECODE, before=ids[0])
        other = await bus.history(TOPIC, (p + 1) % PARTITIONS, DECODE, before=ids[5])
    assert [(d.value.seq, d.id, d.attempt, d.partition) for d in everything] == [
        (seq, ids[seq], 0, p) for seq in range(5)
    ]
    assert [d.value.seq for d in middle] == [1, 2, 3]
    assert [d.value.seq for d in first_two] == [0, 1]
    assert [d.value.seq for d in rest] == [2, 3]  # the poison between them does not shorten a page
    assert nothing == other == []


async def test_epoch_changes_each_time_a_member_regains_a_partition(bus: Bus) -> None:
    keys = keys_covering_every_partition()
    a = bus.consumer(TOPIC, "engine", "a", DECODE, lease_seconds=60)
    b = bus.consumer(TOPIC, "engine", "b", DECODE, lease_seconds=60)
    async with asyncio.timeout(10):
        assert a.epoch(0) == 0  # not a member yet
        await publish_rounds(bus, keys, 1)
        await a.ack(*await collect(a, PARTITIONS, ack=False))
        alone = {p: a.epoch(p) for p in range(PARTITIONS)}
        assert all(alone.values()) and len(set(alone.values())) == PARTITIONS
        assert await b.fetch(10, wait=0.05) == []  # joins: a is now over its share
        assert await a.fetch(10, wait=0.1) == []  # everything acked: a hands half over
        assert await b.fetch(10, wait=0.1) == []
        given = {p for p in range(PARTITIONS) if a.epoch(p) == 0}
        assert len(given) == PARTITIONS // 2
        assert all(b.epoch(p) for p in given)
        kept = set(range(PARTITIONS)) - given
        assert {p: a.epoch(p) for p in kept} == {p: alone[p] for p in kept}  # unchanged where kept
        await b.close()
        assert await a.fetch(10, wait=0.1) == []  # takes them back: a new epoch for each
        back = {p: a.epoch(p) for p in given}
    assert all(back[p] and back[p] != alone[p] for p in given)


async def test_lag_counts_unread_and_pending_messages_of_a_group(bus: Bus) -> None:
    keys = keys_covering_every_partition()
    async with asyncio.timeout(10):
        assert await bus.lag(TOPIC, "engine") is None  # no such group yet
        worker = bus.consumer(TOPIC, "engine", "w1", DECODE, lease_seconds=30)
        assert await worker.fetch(10, wait=0) == []  # joins: the group exists, nothing to read
        joined = await bus.lag(TOPIC, "engine")
        await publish_rounds(bus, keys, 3, together=False)  # Redis counts entries: one message each
        published = await bus.lag(TOPIC, "engine")
        got = await worker.fetch(10, wait=1)
        await worker.ack(*got[:4])
        working = await bus.lag(TOPIC, "engine")
        await worker.close()
    assert joined is not None and (joined.unread, joined.pending, joined.members) == (0, 0, 1)
    assert published is not None and (published.unread, published.pending) == (3 * PARTITIONS, 0)
    assert working is not None
    # Acked messages leave the count; a bus may read ahead of max_count (Redis buffers what one
    # XREADGROUP returned), so what was read but not yet handed out counts as pending, not unread.
    assert working.unread + working.pending == 3 * PARTITIONS - 4
    assert 4 < len(got) <= 10
    assert working.pending >= len(got) - 4  # handed out and not acked: pending, whatever was read ahead
    assert (working.topic, working.group, working.members) == (TOPIC, "engine", 1)


async def test_async_for_yields_deliveries_and_ends_when_closed(bus: Bus) -> None:
    consumer = bus.consumer(TOPIC, "engine", "w1", DECODE)
    got: list[Delivery[Msg]] = []
    arrived = asyncio.Event()

    async def read() -> None:
        async for d in consumer:
            got.append(d)
            arrived.set()
            await consumer.ack(d)

    async with asyncio.timeout(10):
        reader = asyncio.create_task(read())
        await publish_rounds(bus, ["AAPL"], 5)
        await until(lambda: len(got) >= 5, arrived)
        await consumer.close()
        await reader  # the loop ends by itself once the consumer is closed
    assert [d.value.seq for d in got] == [0, 1, 2, 3, 4]


async def test_ping_and_a_closed_bus(bus: Bus) -> None:
    async with asyncio.timeout(10):
        assert await bus.ping() is True
        msg_id = await bus.publish(TOPIC, "AAPL", encode(Msg("AAPL", 0)))
        assert isinstance(msg_id, str)
        assert msg_id
        await bus.close()
        assert await bus.ping() is False
        with pytest.raises(BusError):
            await bus.publish(TOPIC, "AAPL", encode(Msg("AAPL", 1)))


async def test_unreachable_redis_is_a_one_line_bus_error_not_a_hang() -> None:
    url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    bus = RedisStreamsBus(url, connect_timeout=0.5)
    consumer = bus.consumer(TOPIC, "engine", "w1", DECODE)
    async with asyncio.timeout(10):
        assert await bus.ping() is False
        with pytest.raises(BusError) as publishing:
            await bus.publish(TOPIC, "AAPL", b"x")
        with pytest.raises(BusError) as fetching:
            await consumer.fetch(10, wait=0.1)
        await consumer.close()
        await bus.close()
    for err in (publishing.value, fetching.value):
        assert url in str(err)
        assert "\n" not in str(err)


def test_passwords_stay_out_of_error_messages() -> None:
    bus = RedisStreamsBus("redis://user:s3cret@127.0.0.1:1/0")
    err = bus._error(ConnectionError("refused"), "publishing")
    assert "s3cret" not in str(err)
    assert "redis://user:***@127.0.0.1:1/0" in str(err)
