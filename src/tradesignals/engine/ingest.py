"""The ingest role: feed → validate → bus. Bad events are counted and dropped, never raised."""

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


async def run_ingest(
    feed: Feed, bus: Bus, validator: Validator | None = None, stop: asyncio.Event | None = None
) -> Validator:
    """Publish every valid event of ``feed``, keyed by symbol so each symbol keeps its order.

    Checks ``stop`` between events, so a shutdown ends ingest at an event boundary (nothing is
    half-published) instead of relying on cancellation reaching deep inside a client library.
    """
    validator = validator or Validator()
    log.info("ingest.start", feed=feed.name)
    async for event in feed.stream():
        if stop is not None and stop.is_set():
            break
        if not validator.check(event):
            continue
        topic = topics.MARKET_BARS if isinstance(event, Bar) else topics.MARKET_TICKS
        await bus.publish(topic, event.symbol, encode(event))
    log.info("ingest.done", feed=feed.name, accepted=validator.accepted, rejected=dict(validator.rejected))
    return validator
