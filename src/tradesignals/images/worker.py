"""The image worker: renders each new signal's image once, from the ``signals`` topic.

Its own consumer group (``images``), shared by every node that runs it, so each signal is rendered
by one of them; it runs beside the engine, never inside it, and a failure is counted and logged,
never passed on (the API renders a missing image on demand); a Redis outage is ridden out with the
one back-off rule (``engine.backoff``).
"""

from __future__ import annotations

import asyncio

import structlog

from tradesignals.bus import topics
from tradesignals.bus.base import Bus
from tradesignals.bus.codec import decoder
from tradesignals.domain.signals import Signal
from tradesignals.engine.backoff import bus_call
from tradesignals.engine.fitting import wait_for_deciding_bar
from tradesignals.images.service import ImageFailed, SignalImages

log = structlog.get_logger(__name__)

GROUP = "images"


async def render_signal_images(
    bus: Bus,
    images: SignalImages,
    node_id: str,
    stop: asyncio.Event,
    *,
    bar_wait_s: float = 10.0,
    lease_s: float = 10.0,
) -> None:
    consumer = bus.consumer(
        topics.SIGNALS, GROUP, node_id, decoder(Signal), start="earliest", lease_seconds=lease_s
    )
    try:
        while not stop.is_set():
            batch = await bus_call(
                lambda: consumer.fetch(20, wait=0.2), what="fetching signals", component="images", stop=stop
            )
            for d in batch:
                signal = d.value
                try:
                    if not await wait_for_deciding_bar(images.bars, signal, bar_wait_s, stop):
                        log.info("image.deciding_bar_missing", id=signal.id, waited_s=bar_wait_s)
                    await images.ensure(signal, bounded=False)
                except ImageFailed:
                    pass  # counted and logged by the service
                except Exception as exc:  # the bar store or object store failed: counted, go on
                    images.stats.count("failed")
                    log.warning("image.worker_failed", id=signal.id, error=repr(exc)[:300])
            if batch:
                await bus_call(
                    lambda: consumer.ack(*batch),  # noqa: B023
                    what="acking signals",
                    component="images",
                    stop=stop,
                )
    finally:
        await consumer.close()


__all__ = ["GROUP", "render_signal_images"]
