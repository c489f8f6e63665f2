"""The ingest role: feed → validate → bus. Bad events are counted and dropped, never raised.

Publishing is naturally batched: a flusher sends whatever has accumulated with one
``publish_many`` per topic, so an idle feed's event goes out at once (no added latency) while a
burst (a replay, a warm-up, a busy open) rides in batches — one Redis round trip for hundreds of
events instead of one each. Each topic's events are published in the feed's order, so what reached
the bus of a topic is always a prefix of what the feed gave for it. The backlog is bounded: the
feed waits when the bus falls behind, never the other way round.

Faults (ADR 0025):

- **The bus goes away** (a Redis restart or outage): each publish is retried with capped back-off
  and a logged reason (``ingest.bus_retry``) for up to ``retry_s``. A publish whose reply was lost
  may have landed: before trying again, the flusher reads what the partitions hold after the last
  ids it knows and sends only the events that are not there — never a bar twice.
- **Ingest dies** (``kill -9``): with a ``PositionStore``, the number of events published and the
  last message id per partition are saved, per topic, after publishes (at most every ``save_every_s``). A feed
  that replays the same events from its start (``replayable``: a replay file) then resumes after
  them: the events already published are run through the validator (so its state is the same as
  in an uninterrupted run) but not sent; those published after the last save are recognised on
  the bus by their bytes. A live feed only gets the bus check: it does not replay its past.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence

import structlog

from tradesignals.bus import topics
from tradesignals.bus.base import Bus, BusError, partition_for
from tradesignals.bus.codec import encode
from tradesignals.domain.market import Bar
from tradesignals.engine import stage_metrics
from tradesignals.engine.backoff import with_backoff
from tradesignals.marketdata.feeds.base import Feed
from tradesignals.marketdata.validate import Validator
from tradesignals.storage.base import IngestPosition, IngestPositionStore, StorageError

log = structlog.get_logger(__name__)

MAX_BATCH = 1_000
MAX_BACKLOG = 20_000
#: An exclusive upper bound above every stream id, for "everything after this id" reads.
_END = "18446744073709551615-18446744073709551615"


async def published_after(
    bus: Bus, topic: str, after: dict[int, str], partitions: Sequence[int]
) -> tuple[Counter[bytes], dict[int, str]]:
    """Payloads the given partitions of ``topic`` hold after the ids in ``after`` (all they hold
    where no id is known) — what a try whose answer was lost may have published — and the last id
    of each partition read."""
    found: Counter[bytes] = Counter()
    last_ids: dict[int, str] = {}
    for p in partitions:
        last = after.get(p)
        while True:
            page = await bus.history(topic, p, bytes, before=_END, after=last, count=2000)
            if not page:
                break
            found.update(d.value for d in page)
            last = page[-1].id
        if last is not None:
            last_ids[p] = last
    return found, last_ids


class _Publisher:
    """Sends runs of same-topic items in order, remembering the last id per partition."""

    def __init__(self, bus: Bus, ids: dict[str, dict[int, str]], stop: asyncio.Event, retry_s: float) -> None:
        self.bus = bus
        self.ids = ids
        self.stop = stop
        self.retry_s = retry_s
        self.published = 0  # this run's events known on the bus

    async def send(self, topic: str, items: list[tuple[str, bytes]]) -> None:
        todo = items
        n = self.bus.partitions

        async def check_landed() -> None:
            # The failed try may have landed (its answer was lost): keep only what is not there.
            nonlocal todo
            there, tails = await published_after(
                self.bus, topic, self.ids.get(topic, {}), sorted({partition_for(k, n) for k, _ in todo})
            )
            left = []
            for key, payload in todo:
                if there[payload] > 0:
                    there[payload] -= 1
                else:
                    left.append((key, payload))
            if len(left) < len(todo):
                log.info("ingest.landed_before_retry", topic=topic, landed=len(todo) - len(left))
                self.published += len(todo) - len(left)
            self.ids.setdefault(topic, {}).update(tails)
            todo = left

        async def publish() -> None:
            if not todo:
                return
            got = await self.bus.publish_many(topic, todo)
            known = self.ids.setdefault(topic, {})
            for (key, _), msg_id in zip(todo, got, strict=True):
                known[partition_for(key, n)] = msg_id
            self.published += len(todo)

        await with_backoff(
            publish,
            what=f"publishing {len(items)} to {topic!r}",
            component="ingest",
            dependency="bus",
            retry_on=(BusError,),
            stop=self.stop,
            limit_s=self.retry_s,
            before_retry=check_landed,
        )
        stage_metrics.INGEST_PUBLISHED.labels(topic).inc(len(items))


async def run_ingest(
    feed: Feed,
    bus: Bus,
    validator: Validator | None = None,
    stop: asyncio.Event | None = None,
    *,
    positions: IngestPositionStore | None = None,
    retry_s: float = 300.0,
    save_every_s: float = 1.0,
) -> Validator:
    """Publish every valid event of ``feed``, keyed by symbol so each symbol keeps its order.

    Checks ``stop`` between events, so a shutdown ends ingest at an event boundary (everything
    accepted so far is still published) instead of relying on cancellation deep inside a client.
    """
    validator = validator or Validator()
    stop = stop if stop is not None else asyncio.Event()
    start = await _resume_point(feed, bus, positions)
    skip = start.published if getattr(feed, "replayable", False) else {}
    landed = start.landed
    pub = _Publisher(bus, start.ids, stop, retry_s)
    pending: dict[str, list[tuple[str, bytes]]] = {topics.MARKET_BARS: [], topics.MARKET_TICKS: []}
    done = dict.fromkeys(pending, 0)  # per topic: events of this feed on the bus (a prefix)
    wake = asyncio.Event()
    room = asyncio.Event()
    room.set()
    finished = False
    saved_at = time.monotonic()

    def backlog() -> int:
        return sum(len(items) for items in pending.values())

    async def save(force: bool) -> None:
        nonlocal saved_at
        if positions is None or not (force or time.monotonic() - saved_at >= save_every_s):
            return
        position = IngestPosition(published=dict(done), ids={t: dict(p) for t, p in pub.ids.items()})
        try:
            await asyncio.to_thread(positions.save, feed.name, position)
            saved_at = time.monotonic()
        except StorageError as exc:  # the bus check still covers what the position misses
            log.warning("ingest.position_not_saved", error=str(exc)[:300])

    async def flusher() -> None:
        while True:
            await wake.wait()
            wake.clear()
            while backlog():
                for topic, items in pending.items():
                    if items:
                        batch = items[:MAX_BATCH]
                        del items[:MAX_BATCH]
                        await pub.send(topic, batch)
                        done[topic] += len(batch)
                stage_metrics.INGEST_BACKLOG.set(backlog())
                if backlog() < MAX_BACKLOG:
                    room.set()
                await save(force=False)
            if finished:
                return

    log.info("ingest.start", feed=feed.name, resume_after=skip, landed_unsaved=sum(landed.values()))
    sender = asyncio.create_task(flusher(), name="ingest-flusher")
    seen = dict.fromkeys(pending, 0)  # per topic: accepted events of this run
    checking = {topic: bool(landed) for topic in pending}
    resumed = 0
    # A paced replay must not sleep through the pace of what it skips: hold its pace until the
    # first event this run publishes, which anchors the pace (ADR 0025).
    hold_pace: Callable[[bool], None] | None = getattr(feed, "hold_pace", None)
    holding = hold_pace is not None and (any(skip.values()) or bool(landed))
    if holding and hold_pace is not None:
        hold_pace(True)
    try:
        async for event in feed.stream():
            if stop.is_set():
                break
            if not validator.check(event):
                continue
            topic = topics.MARKET_BARS if isinstance(event, Bar) else topics.MARKET_TICKS
            seen[topic] += 1
            if seen[topic] <= skip.get(
                topic, 0
            ):  # published by an earlier run (validated again for its state)
                done[topic] += 1
                resumed += 1
                continue
            payload = encode(event)
            if checking[topic]:
                if landed[payload] > 0:  # published by an earlier run after its last save
                    landed[payload] -= 1
                    done[topic] += 1
                    resumed += 1
                    continue
                checking[topic] = False  # the first of this topic not on the bus: none after it is
            if holding and hold_pace is not None:
                holding = False
                hold_pace(False)
            pending[topic].append((event.symbol, payload))
            wake.set()
            if backlog() >= MAX_BACKLOG:
                room.clear()
                await _wait_for_room(room, sender)
            elif sender.done():
                break
        finished = True
        wake.set()
        await sender  # drains the backlog; re-raises a bus error
        await save(force=True)
    finally:
        if not sender.done():
            sender.cancel()
        if holding and hold_pace is not None:
            hold_pace(False)
    stage_metrics.INGEST_RESUMED.inc(resumed)
    log.info(
        "ingest.done",
        feed=feed.name,
        accepted=validator.accepted,
        rejected=dict(validator.rejected),
        resumed=resumed,
    )
    return validator


class _Start:
    __slots__ = ("ids", "landed", "published")

    def __init__(
        self, published: dict[str, int], ids: dict[str, dict[int, str]], landed: Counter[bytes]
    ) -> None:
        self.published = published
        self.ids = ids
        self.landed = landed


async def _resume_point(feed: Feed, bus: Bus, positions: IngestPositionStore | None) -> _Start:
    """The saved position of ``feed``, and what the bus holds after it (published, not yet saved).

    Without a saved position, a replayable feed's streams are read whole: a run killed before its
    first save may have published events already. A live feed without one starts afresh.
    """
    if positions is None:
        return _Start({}, {}, Counter())
    saved = await asyncio.to_thread(positions.load, feed.name)
    if saved is None and not getattr(feed, "replayable", False):
        return _Start({}, {}, Counter())
    ids = {t: dict(p) for t, p in (saved.ids if saved else {}).items()}
    landed: Counter[bytes] = Counter()
    for topic in (topics.MARKET_BARS, topics.MARKET_TICKS):
        found, tails = await published_after(bus, topic, ids.get(topic, {}), range(bus.partitions))
        landed += found
        ids.setdefault(topic, {}).update(tails)  # later publishes are checked from here on
    return _Start(dict(saved.published) if saved else {}, ids, landed)


async def _wait_for_room(room: asyncio.Event, sender: asyncio.Task[None]) -> None:
    """Wait until the flusher has made room, or surface its failure instead of waiting forever."""
    waiter = asyncio.create_task(room.wait())
    done, _ = await asyncio.wait({waiter, sender}, return_when=asyncio.FIRST_COMPLETED)
    if waiter not in done:
        waiter.cancel()
        sender.result()  # raises the bus error that stopped the flusher
