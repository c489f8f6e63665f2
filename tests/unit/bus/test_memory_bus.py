"""What only the in-process bus promises beyond the shared contract: bounded memory, ids, refusals.

The contract itself (order, redelivery, groups, poison) is proven for this bus by
tests/integration/bus/test_bus_contract.py.
"""

from __future__ import annotations

import asyncio

import pytest

from tradesignals.bus.base import BusError, Delivery, partition_for
from tradesignals.bus.memory import MemoryBus, MemoryConsumer


def seq(payload: bytes) -> int:
    return int(payload)


async def drain(consumer: MemoryConsumer[int], n: int, *, max_count: int = 500) -> list[Delivery[int]]:
    out: list[Delivery[int]] = []
    while len(out) < n:
        batch = await consumer.fetch(max_count, wait=0.1)
        out.extend(batch)
        if batch:
            await consumer.ack(*batch)
    return out


async def test_the_log_is_trimmed_once_every_group_has_acked() -> None:
    bus = MemoryBus(partitions=2)
    consumer = bus.consumer("t", "g", "w", seq)
    async with asyncio.timeout(10):
        for start in range(0, 20_000, 1_000):
            await bus.publish_many("t", [(f"K{i % 10}", b"%d" % i) for i in range(start, start + 1_000)])
            await drain(consumer, 1_000)
    # Each partition keeps at most one trim interval (1024) plus what arrived since the last check.
    assert bus.retained("t") < 2 * 2_048


async def test_a_lagging_group_keeps_history_until_it_acks() -> None:
    bus = MemoryBus(partitions=2)
    fast = bus.consumer("t", "fast", "w", seq)
    slow = bus.consumer("t", "slow", "w", seq)
    async with asyncio.timeout(10):
        assert await slow.fetch(10, wait=0) == []  # joins at the start, then reads nothing for a while
        await bus.publish_many("t", [("K", b"%d" % i) for i in range(5_000)])
        await drain(fast, 5_000)
        assert bus.retained("t") == 5_000  # nothing trimmed: "slow" has not read it
        got = await drain(slow, 5_000)
        # Trimming rides on publishing (no timer): the next appends drop what both groups acked.
        await bus.publish_many("t", [("K", b"%d" % i) for i in range(5_000, 5_200)])
    assert [d.value for d in got] == list(range(5_000))
    assert bus.retained("t") <= 200 + 1_024


async def test_without_a_group_history_is_kept_up_to_maxlen() -> None:
    bus = MemoryBus(partitions=1, maxlen=100)
    async with asyncio.timeout(10):
        await bus.publish_many("t", [("K", b"%d" % i) for i in range(5_000)])
        kept = bus.retained("t")
        late = bus.consumer("t", "g", "w", seq)
        got = await drain(late, kept)
    assert 100 <= kept <= 100 + 1_024  # approximate, like Redis's MAXLEN ~
    assert [d.value for d in got] == list(range(5_000 - kept, 5_000))


async def test_pending_messages_trimmed_by_maxlen_are_skipped_not_crashed_on() -> None:
    bus = MemoryBus(partitions=1, maxlen=50)
    first = bus.consumer("t", "g", "a", seq, lease_seconds=60)
    async with asyncio.timeout(10):
        await bus.publish_many("t", [("K", b"%d" % i) for i in range(10)])
        held = await first.fetch(10, wait=0)
        assert len(held) == 10
        await bus.publish_many("t", [("K", b"%d" % i) for i in range(10, 3_000)])  # pushes them out
        await first.close()
        second = bus.consumer("t", "g", "b", seq)
        kept = bus.retained("t")
        got = await drain(second, kept)
    assert [d.value for d in got] == list(range(3_000 - kept, 3_000))
    assert all(d.attempt == 1 for d in got)


async def test_ids_are_partition_and_offset_and_publish_many_matches_publish() -> None:
    bus = MemoryBus(partitions=4)
    keys = ["AAPL", "MSFT", "AAPL", "TSLA"]
    one_by_one = [await bus.publish("a", k, b"x") for k in keys]
    batched = await bus.publish_many("b", [(k, b"x") for k in keys])
    assert one_by_one == batched
    p = partition_for("AAPL", 4)
    assert one_by_one[0] == f"{p}-0"
    assert one_by_one[2] == f"{p}-1"
    assert len(set(one_by_one)) == len(keys)
    assert await bus.publish_many("a", []) == []


async def test_a_small_max_count_does_not_starve_a_partition() -> None:
    bus = MemoryBus(partitions=8)
    keys = ["AAPL", "MSFT"]
    assert partition_for(keys[0], 8) != partition_for(keys[1], 8)
    await bus.publish_many("t", [(k, b"%d" % i) for i in range(100) for k in keys])
    consumer = bus.consumer("t", "g", "w", seq)
    got = []
    for _ in range(4):
        batch = await consumer.fetch(1, wait=0)
        got.extend(batch)
        await consumer.ack(*batch)
    assert {d.key for d in got} == set(keys)


async def test_a_closed_bus_refuses_work_and_wakes_its_waiting_fetches() -> None:
    bus = MemoryBus()
    consumer = bus.consumer("t", "g", "w", seq)
    async with asyncio.timeout(5):
        waiting = asyncio.create_task(consumer.fetch(10, wait=60))
        await asyncio.sleep(0.01)
        await bus.close()
        assert await waiting == []  # woken by close, long before its 60 s
    assert await bus.ping() is False
    with pytest.raises(BusError):
        await bus.publish("t", "K", b"1")
    with pytest.raises(BusError):
        await bus.publish_many("t", [("K", b"1")])
    with pytest.raises(BusError):
        await consumer.fetch(10, wait=0)
    with pytest.raises(BusError):
        bus.consumer("t", "g", "w2", seq)


async def test_acking_a_delivery_of_another_topic_is_refused() -> None:
    bus = MemoryBus()
    await bus.publish("a", "K", b"1")
    a = bus.consumer("a", "g", "w", seq)
    b = bus.consumer("b", "g", "w", seq)
    [delivery] = await a.fetch(10, wait=0)
    assert await b.fetch(10, wait=0) == []
    with pytest.raises(ValueError, match="topic 'a'"):
        await b.ack(delivery)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"start": "middle"}, "start must be"), ({"lease_seconds": 0}, "lease_seconds must be")],
)
def test_bad_consumer_arguments_fail_at_construction(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MemoryBus().consumer("t", "g", "w", seq, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kwargs", "match"), [({"partitions": 0}, "partitions"), ({"maxlen": 0}, "maxlen")])
def test_bad_bus_arguments_fail_at_construction(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MemoryBus(**kwargs)
