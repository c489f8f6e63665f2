"""A signal's close published twice on the bus (the engine republishes after a crash) is numbered
once on the ``signals`` channel: clients see each outcome once (the chaos run's invariant).

The relay of ``signal.events`` on the embedded stack (memory bus, memory channel log).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import orjson

from tradesignals.api.broadcast import RELAY_GROUP, Router, relay
from tradesignals.api.channel_seq import MemoryChannelLog
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
