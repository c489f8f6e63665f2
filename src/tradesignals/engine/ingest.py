"""The ingest role: feed → validate → bus. Bad events are counted and dropped, never raised.

Publishing is naturally batched: a flusher sends whatever has accumulated with one
``publish_many`` per topic, so an idle feed's event goes out at once (no added latency) while a
burst (a replay, a warm-up, a busy open) rides in batches — one Redis round trip for hundreds of
events instead of one each. Order per topic, and so per symbol, is the feed's order. The backlog
is bounded: the feed waits when the bus falls behind, never the other way round.
"""

from __future__ import annotations

import asyncio

import structlog

from tradesignals.bus import topics
from tradesignals.bus.base import Bus
from tradesignals.bus.codec import encode
from tradesignals.domain.market import Bar
from tradesignals.marketdata.feeds.base import Feed
from tradesignals.marketdata.validate import Validator

log = structlog.get_logger(__name__)

MAX_BATCH = 1_000
MAX_BACKLOG = 20_000


async def run_ingest(
    feed: Feed, bus: Bus, validator: Validator | None = None, stop: asyncio.Event | None = None
) -> Validator:
    """Publish every valid event of ``feed``, keyed by symbol so each symbol keeps its order.

    Checks ``stop`` between events, so a shutdown ends ingest at an event boundary (everything
    accepted so far is still published) instead of relying on cancellation deep inside a client.
    """
    validator = validator or Validator()
    pending: dict[str, list[tuple[str, bytes]]] = {topics.MARKET_BARS: [], topics.MARKET_TICKS: []}
    wake = asyncio.Event()
    room = asyncio.Event()
    room.set()
    finished = False

    def backlog() -> int:
        return sum(len(items) for items in pending.values())

    async def flusher() -> None:
        while True:
            await wake.wait()
            wake.clear()
            while backlog():
                for topic, items in pending.items():
                    if items:
                        batch = items[:MAX_BATCH]
                        del items[:MAX_BATCH]
                        await bus.publish_many(topic, batch)
                if backlog() < MAX_BACKLOG:
                    room.set()
            if finished:
                return

    log.info("ingest.start", feed=feed.name)
    sender = asyncio.create_task(flusher(), name="ingest-flusher")
    try:
        async for event in feed.stream():
            if stop is not None and stop.is_set():
                break
            if not validator.check(event):
                continue
            topic = topics.MARKET_BARS if isinstance(event, Bar) else topics.MARKET_TICKS
            pending[topic].append((event.symbol, encode(event)))
            wake.set()
            if backlog() >= MAX_BACKLOG:
                room.clear()
                await _wait_for_room(room, sender)
            elif sender.done():
                break
        finished = True
        wake.set()
        await sender  # drains the backlog; re-raises a bus error
    finally:
        if not sender.done():
            sender.cancel()
    log.info("ingest.done", feed=feed.name, accepted=validator.accepted, rejected=dict(validator.rejected))
    return validator


async def _wait_for_room(room: asyncio.Event, sender: asyncio.Task[None]) -> None:
    """Wait until the flusher has made room, or surface its failure instead of waiting forever."""
    waiter = asyncio.create_task(room.wait())
    done, _ = await asyncio.wait({waiter, sender}, return_when=asyncio.FIRST_COMPLETED)
    if waiter not in done:
        waiter.cancel()
        sender.result()  # raises the bus error that stopped the flusher
