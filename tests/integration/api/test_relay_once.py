"""The API node's relay and fan-out through the faults the chaos run makes (embedded stack: memory
bus, memory channel log; the channel log's failures injected).

- A signal's close published twice on the bus (the engine republishes after a crash) is numbered
  once on the ``signals`` channel: clients see each outcome once.
- A failed append (Redis restarting) is retried with the same batch: nothing stays pending,
  undelivered, on the node that was handed it.
- A node whose first read of the log fails (Redis loading its data at start) keeps fanning out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson

from tradesignals.api.broadcast import RELAY_GROUP, Router, fanout, relay
from tradesignals.api.channel_seq import Entry, Item, MemoryChannelLog
from tradesignals.api.hub import Hub
from tradesignals.bus import topics
from tradesignals.bus.codec import encode
from tradesignals.bus.memory import MemoryBus
from tradesignals.domain.signals import SignalEvent, SignalEventKind


async def test_a_close_published_twice_is_numbered_once() -> None:
    bus = MemoryBus(partitions=2)
    log = MemoryChannelLog()
    stop, joined = asyncio.Event(), asyncio.Event()
    decode, route = Router().routes()[topics.SIGNAL_EVENTS]
    task = asyncio.create_task(relay(bus, log, topics.SIGNAL_EVENTS, decode, route, "node-a", stop, joined))
    at = datetime(2026, 1, 2, tzinfo=UTC)
    first = SignalEvent("sig-1", SignalEventKind.CLOSED, at, {"outcome": "target"})
    other = SignalEvent("sig-2", SignalEventKind.CLOSED, at, {"outcome": "stop"})
    update = SignalEvent("sig-1", SignalEventKind.UPDATED, at, {"note": "x"})
    try:
        await asyncio.wait_for(joined.wait(), 10)
        for event in (update, first, first, other, first):  # the close of sig-1 three times
            await bus.publish(topics.SIGNAL_EVENTS, "AAA", encode(event))
        async with asyncio.timeout(10):
            while (
                (lag := await bus.lag(topics.SIGNAL_EVENTS, RELAY_GROUP)) is None or lag.unread or lag.pending
            ):
                await asyncio.sleep(0.01)
        entries = await log.read("signals", 0, 100)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await bus.close()
    got = [orjson.loads(e.frame) for e in entries]
    assert [(m["seq"], m["data"]["signal_id"], m["data"]["kind"]) for m in got] == [
        (1, "sig-1", "updated"),
        (2, "sig-1", "closed"),
        (3, "sig-2", "closed"),
    ]


class Flaky(MemoryChannelLog):
    """A channel log whose first ``fail`` calls of ``append_many`` / ``tail_start`` raise, as a
    restarting Redis does."""

    def __init__(self, fail: int) -> None:
        super().__init__()
        self.append_fails = self.start_fails = fail

    async def append_many(self, items: Sequence[Item]) -> list[int | None]:
        if self.append_fails:
            self.append_fails -= 1
            raise ConnectionError("Connection closed by server.")
        return await super().append_many(items)

    async def tail_start(self) -> str:
        if self.start_fails:
            self.start_fails -= 1
            raise ConnectionError("Redis is loading the dataset in memory")
        return await super().tail_start()


async def test_a_failed_append_is_retried_not_left_pending() -> None:
    bus = MemoryBus(partitions=2)
    log = Flaky(fail=2)
    stop, joined = asyncio.Event(), asyncio.Event()
    decode, route = Router().routes()[topics.SIGNAL_EVENTS]
    task = asyncio.create_task(relay(bus, log, topics.SIGNAL_EVENTS, decode, route, "node-a", stop, joined))
    at = datetime(2026, 1, 2, tzinfo=UTC)
    try:
        await asyncio.wait_for(joined.wait(), 10)
        for i in range(3):
            event = SignalEvent(f"sig-{i}", SignalEventKind.CLOSED, at, {"outcome": "target"})
            await bus.publish(topics.SIGNAL_EVENTS, "AAA", encode(event))
        async with asyncio.timeout(10):
            while (
                (lag := await bus.lag(topics.SIGNAL_EVENTS, RELAY_GROUP)) is None or lag.unread or lag.pending
            ):
                await asyncio.sleep(0.01)
        entries = await log.read("signals", 0, 100)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await bus.close()
    assert log.append_fails == 0
    assert sorted(orjson.loads(e.frame)["data"]["signal_id"] for e in entries) == ["sig-0", "sig-1", "sig-2"]


async def test_fan_out_survives_a_log_that_fails_at_start() -> None:
    log = Flaky(fail=1)
    hub = Hub(log)
    delivered: list[Entry] = []
    hub.deliver = delivered.append  # type: ignore[method-assign,assignment]
    stop = asyncio.Event()
    task = asyncio.create_task(fanout(log, hub, stop))
    try:
        await asyncio.wait_for(hub.ready.wait(), 10)
        await log.append("signals", "outcome", {"signal_id": "sig-0"})
        async with asyncio.timeout(10):
            while not delivered:
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert [orjson.loads(e.frame)["data"]["signal_id"] for e in delivered] == ["sig-0"]
