"""The ingest role: feed → validate → bus. Bad events are counted and dropped, never raised."""

from __future__ import annotations

import structlog

from tradesignals.bus import topics
from tradesignals.bus.base import Bus
from tradesignals.bus.codec import encode
from tradesignals.domain.market import Bar
from tradesignals.marketdata.feeds.base import Feed
from tradesignals.marketdata.validate import Validator

log = structlog.get_logger(__name__)


async def run_ingest(feed: Feed, bus: Bus, validator: Validator | None = None) -> Validator:
    """Publish every valid event of ``feed``, keyed by symbol so each symbol keeps its order."""
    validator = validator or Validator()
    log.info("ingest.start", feed=feed.name)
    async for event in feed.stream():
        if not validator.check(event):
            continue
        topic = topics.MARKET_BARS if isinstance(event, Bar) else topics.MARKET_TICKS
        await bus.publish(topic, event.symbol, encode(event))
    log.info("ingest.done", feed=feed.name, accepted=validator.accepted, rejected=dict(validator.rejected))
    return validator
