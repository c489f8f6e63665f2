"""Record the bars flowing on the bus into the history store, so charts and training see live data.

Its own consumer group, so recording never slows the engine; batches by size and time so the
store sees few, large, idempotent upserts. Acks only after the upsert: a crash re-records a batch,
which the store's idempotent upsert absorbs. Redis or the store going away is ridden out with
back-off (``engine.backoff``): every call retried is a read, an idempotent upsert or an ack.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pandas as pd
import structlog

from tradesignals.bus import topics
from tradesignals.bus.base import Bus, BusError, Delivery
from tradesignals.bus.codec import decoder
from tradesignals.domain.market import Bar, Timeframe
from tradesignals.engine import stage_metrics
from tradesignals.engine.backoff import with_backoff
from tradesignals.storage.base import StorageError
from tradesignals.storage.timeseries import BarStore

log = structlog.get_logger(__name__)

R = TypeVar("R")


def bars_frame(bars: list[Bar]) -> pd.DataFrame:
    """Bars as the store's frame; the last of several bars for one (symbol, ts) wins (a revision)."""
    latest = {(b.symbol, b.ts): b for b in bars}
    rows = list(latest.values())
    return pd.DataFrame(
        {
            "ts": pd.array([b.ts for b in rows], dtype="int64"),
            "symbol": [b.symbol for b in rows],
            "open": [b.open for b in rows],
            "high": [b.high for b in rows],
            "low": [b.low for b in rows],
            "close": [b.close for b in rows],
            "volume": [b.volume for b in rows],
        }
    )


async def record_bars(
    bus: Bus,
    store: BarStore,
    stop: asyncio.Event,
    *,
    name: str,
    max_batch: int = 5_000,
    max_wait: float = 1.0,
    retry_s: float = 300.0,
    drain: asyncio.Event | None = None,
    drain_limit_s: float = 120.0,
) -> int:
    """Run until ``stop``, or once ``drain`` is set until the history group has nothing left.

    ``drain`` is the feed of this process ending (a replay finished): the process exits then, and
    the bars it published must be in the store first, or history (charts, images, training) has a
    hole and health reports a recorder down with bars waiting. Drained means the group's unread
    and pending are 0, read from the bus after an empty fetch; bounded by ``drain_limit_s``.
    Returns the number of bars recorded.
    """
    consumer = bus.consumer(topics.MARKET_BARS, "history", name, decoder(Bar))
    recorded = 0
    pending: list[Delivery[Bar]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait

    async def bus_call(what: str, call: Callable[[], Awaitable[R]]) -> R:
        return await with_backoff(
            call,
            what=what,
            component="recorder",
            dependency="bus",
            retry_on=(BusError,),
            stop=stop,
            limit_s=retry_s,
        )

    async def flush_and_ack(batch: list[Delivery[Bar]]) -> int:
        n = await with_backoff(
            lambda: _flush(store, batch),
            what=f"recording {len(batch)} bars",
            component="recorder",
            dependency="store",
            retry_on=(StorageError,),
            stop=stop,
            limit_s=retry_s,
        )
        await bus_call("acking", lambda: consumer.ack(*batch))
        stage_metrics.RECORDED.inc(n)
        return n

    async def drained() -> bool:
        lag = await bus_call("reading the history lag", lambda: bus.lag(topics.MARKET_BARS, "history"))
        # No group: nothing waits for it. An unknown unread (None) is not drained.
        return lag is None or (lag.unread == 0 and lag.pending == 0)

    drain_until: float | None = None
    try:
        while not stop.is_set():
            got = await bus_call("fetching bars", lambda: consumer.fetch(max_batch, wait=min(0.2, max_wait)))
            pending += got
            if pending and (len(pending) >= max_batch or loop.time() >= deadline):
                recorded += await flush_and_ack(pending)
                pending = []
            if drain is not None and drain.is_set() and not got:
                if pending:
                    recorded += await flush_and_ack(pending)
                    pending = []
                if drain_until is None:
                    drain_until = loop.time() + drain_limit_s
                if await drained():
                    log.info("recorder.drained", recorded=recorded)
                    break
                if loop.time() >= drain_until:
                    log.warning("recorder.drain_timeout", recorded=recorded, limit_s=drain_limit_s)
                    break
            if loop.time() >= deadline:
                deadline = loop.time() + max_wait
        if pending:
            recorded += await flush_and_ack(pending)
    finally:
        await consumer.close()
    return recorded


async def _flush(store: BarStore, batch: list[Delivery[Bar]]) -> int:
    by_tf: dict[Timeframe, list[Bar]] = defaultdict(list)
    for d in batch:
        by_tf[d.value.timeframe].append(d.value)
    n = 0
    for tf, bars in by_tf.items():
        result = await asyncio.to_thread(store.upsert, tf, bars_frame(bars))
        n += result.total
    return n
