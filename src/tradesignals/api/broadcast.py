"""From the bus to the WebSocket channels, and from the channels to this node's sockets.

Two halves, so that a message gets one sequence number however many API nodes run:

- **Relay** (``relay``): the API nodes share one bus consumer group per topic (``ws-relay``, one
  member per node, which leaves the group when the node stops); each bus message is handled by one
  node, which appends what it means for each channel to the ``ChannelLog``. ``once`` is the bus
  message id, so a message redelivered after a node died is not numbered twice.
- **Fan-out** (``fanout``): every node tails the log's fan-out from its own cursor (no server-side
  state) and hands each message to its hub.

Topic → channels (``Router``):

- ``signals`` (a new open signal) → ``user:{id}:signals`` of each premium user whose risk profile
  accepts it, with the position size for their stated capital;
- ``signal.events`` (a close) → ``signals`` (the public outcome), ``signal:{id}:live`` (its last
  message, ``closed``), ``user:{id}:notifications`` of each holder of an upgrade to it, and
  ``user:{id}:watchlist`` of each watcher of its symbol;
- ``signal.live`` → ``signal:{id}:live``;
- ``signal.research`` (the explain sidecar's explanation or research brief) → ``signal:{id}:live``
  (message type ``explanation`` or ``research``: text, claims and the news ids they cite);
- ``market.bars`` → ``market:{symbol}:updates`` and the watchers' ``user:{id}:watchlist``;
- ``system.alerts`` → ``system:alerts``;
- every node checks each exchange's session (``market_status``) → ``market:status`` (open, break,
  closed; one message per change across nodes).

Billing notices reach ``user:{id}:notifications`` from the node that applied the payment event
(``Hub.publish``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog

from tradesignals.api.channel_seq import ChannelLog
from tradesignals.api.hub import Hub
from tradesignals.api.routes.signals import DEFAULT_CAPITAL, sizes_for
from tradesignals.api.schemas import SignalPublic
from tradesignals.bus import topics
from tradesignals.bus.base import Bus, Delivery
from tradesignals.bus.codec import decoder
from tradesignals.domain.entitlements import SIGNALS_CHANNEL, live_channel, market_channel, user_channel
from tradesignals.domain.live import LiveUpdate
from tradesignals.domain.market import Bar
from tradesignals.domain.research import SignalText
from tradesignals.domain.risk import ProfileName
from tradesignals.domain.sessions import DAY_NS, SessionCalendar, date_of
from tradesignals.domain.signals import Signal, SignalEvent, SignalEventKind
from tradesignals.domain.trace import signal_trace_id
from tradesignals.engine.backoff import bus_call
from tradesignals.storage.audience import SqlAudience
from tradesignals.storage.timeseries import BarStore

log = structlog.get_logger(__name__)

RELAY_GROUP = "ws-relay"

R = TypeVar("R")

Message = tuple[str, str, Any]
"""(channel, type, data): one message for one channel."""

Route = Callable[[Sequence[Delivery[Any]]], Awaitable[list[list[Message]]]]
"""Turns a batch of bus deliveries into the messages of each (same order, one list per delivery)."""


async def _retrying(what: str, call: Callable[[], Awaitable[R]], stop: asyncio.Event) -> R:
    """A Redis outage is ridden out, not fatal: the node keeps fanning out once Redis is back."""
    return await bus_call(call, what=what, component="api", stop=stop)


def signal_payload(signal: Signal) -> dict[str, Any]:
    return SignalPublic.of(signal).model_dump(mode="json")


def outcome_payload(symbol: str, event: SignalEvent) -> dict[str, Any]:
    """A closed outcome as the public ``signals`` channel carries it."""
    return {"signal_id": event.signal_id, "symbol": symbol, "kind": event.kind.value, **event.data}


def bar_payload(bar: Bar) -> dict[str, Any]:
    return {
        "symbol": bar.symbol,
        "timeframe": bar.timeframe.value,
        "ts": bar.ts,
        "open": bar.open,
        "high": bar.high,
        "low": bar.low,
        "close": bar.close,
        "volume": bar.volume,
        "last": bar.close,
    }


def live_payload(update: LiveUpdate) -> dict[str, Any]:
    out = asdict(update)
    out["distance_to_targets_pct"] = list(update.distance_to_targets_pct)
    return out


def text_payload(text: SignalText) -> dict[str, Any]:
    """What a holder of the live channel reads of a sidecar text: the words and their sources (the
    counts of dropped claims stay in the operators' metrics)."""
    return {
        "signal_id": text.signal_id,
        "kind": text.kind,
        "text": text.text,
        "citations": list(text.citations),
        "claims": [{"text": c.text, "citations": list(c.citations)} for c in text.claims],
        "model": text.model,
        "prompt_version": text.prompt_version,
        "created_at_ns": text.created_at_ns,
        "fallback": text.fallback,
    }


class Router:
    """Topic → channel messages. Reads who a per-user message is for from ``audience`` (one query
    per batch) and fits live signals with the API's one fitting rule (``routes.signals.sizes_for``)."""

    def __init__(self, audience: SqlAudience | None = None, bars: BarStore | None = None) -> None:
        self.audience = audience
        self.bar_store = bars

    def routes(self) -> dict[str, tuple[Callable[[bytes], Any], Route]]:
        return {
            topics.SIGNALS: (decoder(Signal), self.signals),
            topics.SIGNAL_EVENTS: (decoder(SignalEvent), self.events),
            topics.SIGNAL_LIVE: (decoder(LiveUpdate), self.live),
            topics.SIGNAL_RESEARCH: (decoder(SignalText), self.research),
            topics.MARKET_BARS: (decoder(Bar), self.bars),
            topics.SYSTEM_ALERTS: (decoder(dict[str, Any]), self.alerts),
        }

    async def signals(self, batch: Sequence[Delivery[Any]]) -> list[list[Message]]:
        """A new (open) signal to each premium user whose profile accepts it, sized for their capital."""
        out: list[list[Message]] = [[] for _ in batch]
        if self.audience is None or self.bar_store is None:
            return out
        signals: list[Signal] = [d.value for d in batch]
        groups: dict[tuple[ProfileName, float], list[int]] = {}
        for sub in await asyncio.to_thread(self.audience.premium_users):
            groups.setdefault((sub.profile, sub.capital or DEFAULT_CAPITAL), []).append(sub.user_id)
        for (profile, capital), users in groups.items():
            sizes = await asyncio.to_thread(sizes_for, self.bar_store, signals, profile, capital)
            for i, s in enumerate(signals):
                size = sizes.get(s.id)
                if size is None:
                    continue
                payload = SignalPublic.of(s, None, size).model_dump(mode="json")
                out[i].extend((user_channel(uid, "signals"), "signal", payload) for uid in users)
        return out

    async def events(self, batch: Sequence[Delivery[Any]]) -> list[list[Message]]:
        """A close: the public outcome, the live stream's last message, the upgrade holders'
        notification and the symbol's watchers' watchlist."""
        events: list[SignalEvent] = [d.value for d in batch]
        holders: dict[str, list[int]] = {}
        watchers: dict[str, list[int]] = {}
        if self.audience is not None:
            ids = [e.signal_id for e in events]
            holders = await asyncio.to_thread(self.audience.upgrade_holders, ids, datetime.now(UTC))
            watchers = await asyncio.to_thread(self.audience.watchers, [d.key for d in batch])
        out: list[list[Message]] = []
        for d, event in zip(batch, events, strict=True):
            payload = outcome_payload(d.key, event)
            messages: list[Message] = [
                (SIGNALS_CHANNEL, "outcome", payload),
                (live_channel(event.signal_id), "closed", payload),  # the live stream's last message
            ]
            for u in holders.get(event.signal_id, ()):
                messages.append((user_channel(u, "notifications"), "outcome", payload))
            for u in watchers.get(d.key, ()):
                messages.append((user_channel(u, "watchlist"), "outcome", payload))
            out.append(messages)
        return out

    async def live(self, batch: Sequence[Delivery[Any]]) -> list[list[Message]]:
        return [[(live_channel(d.value.signal_id), "live", live_payload(d.value))] for d in batch]

    async def research(self, batch: Sequence[Delivery[Any]]) -> list[list[Message]]:
        return [[(live_channel(d.value.signal_id), d.value.kind, text_payload(d.value))] for d in batch]

    async def bars(self, batch: Sequence[Delivery[Any]]) -> list[list[Message]]:
        watchers: dict[str, list[int]] = {}
        if self.audience is not None:
            watchers = await asyncio.to_thread(self.audience.watchers, {d.value.symbol for d in batch})
        out: list[list[Message]] = []
        for d in batch:
            bar: Bar = d.value
            payload = bar_payload(bar)
            messages: list[Message] = [(market_channel(bar.symbol), "bar", payload)]
            messages.extend(
                (user_channel(u, "watchlist"), "bar", payload) for u in watchers.get(bar.symbol, ())
            )
            out.append(messages)
        return out

    async def alerts(self, batch: Sequence[Delivery[Any]]) -> list[list[Message]]:
        return [[("system:alerts", "alert", d.value)] for d in batch]


def once_key(topic: str, d: Delivery[Any], i: int, channel: str, type_: str) -> str | None:
    """What makes one relayed message numbered once on ``channel``, whoever relays it how often.

    The bus message (topic, partition, id): a message redelivered to this or another node is a
    no-op. A signal's close happens once, but the engine may publish it again (it handles a
    redelivered bar after a crash and cannot know its first publish landed): keyed by the signal
    and the channel instead, so the chaos run's clients see each outcome once. Bars go without (a
    repeated bar is harmless, and a key per bar per day would cost Redis more than the bars).
    """
    if type_ == "bar":
        return None
    value = d.value
    if (
        topic == topics.SIGNAL_EVENTS
        and isinstance(value, SignalEvent)
        and value.kind is SignalEventKind.CLOSED
    ):
        return f"{topic}:{value.signal_id}:closed:{channel}"
    return f"{topic}:{d.partition}:{d.id}:{i}"


async def relay(
    bus: Bus,
    channel_log: ChannelLog,
    topic: str,
    decode: Callable[[bytes], Any],
    route: Route,
    node_id: str,
    stop: asyncio.Event,
    joined: asyncio.Event | None = None,
    lease_s: float = 10.0,
) -> None:
    """Append what each message of ``topic`` means to the channel log; ack once it is appended.

    ``lease_s`` (``TS_BUS_LEASE_S``): how long a dead node's partitions of the relay group wait
    before another node claims them with their unacked messages; meanwhile their messages wait.
    """
    consumer = bus.consumer(topic, RELAY_GROUP, node_id, decode, start="latest", lease_seconds=lease_s)
    try:
        while not stop.is_set():
            # A Redis outage is ridden out with the one back-off rule of every role (engine.backoff).
            batch = await _retrying(f"fetching {topic}", lambda: consumer.fetch(500, wait=0.2), stop)
            if joined is not None:
                joined.set()
            if not batch:
                continue
            messages = await route(batch)
            # ``once``: a redelivered message is not numbered twice (see ``once_key``).
            items = [
                (channel, type_, data, once_key(topic, d, i, channel, type_))
                for d, per in zip(batch, messages, strict=True)
                for i, (channel, type_, data) in enumerate(per)
            ]
            # The same batch again until it is appended: the bus does not hand a member back what it
            # handed out and was not acked (only another member gets it, once our lease lapses), so
            # dropping the batch here would hold it pending, undelivered, for as long as this node
            # lives (the chaos run's relay after a Redis restart). ``once`` makes the retry a no-op
            # for what the failed call appended.
            while True:
                try:
                    await channel_log.append_many(items)
                    break
                except Exception as exc:  # Redis away or restarting: keep the batch, try again
                    log.warning("ws.relay_append_failed", topic=topic, error=str(exc)[:200])
                    if stop.is_set():
                        return
                    await asyncio.sleep(0.5)
            if topic == topics.SIGNALS:
                for d, per in zip(batch, messages, strict=True):
                    # the bar → signal → delivery trace (domain.trace): one id from the bar's close on
                    log.info(
                        "signal.delivered",
                        id=d.value.id,
                        trace_id=signal_trace_id(d.value),
                        node=node_id,
                        channels=len(per),
                    )
            await _retrying(f"acking {topic}", lambda: consumer.ack(*batch), stop)  # noqa: B023
    finally:
        await consumer.close()


async def fanout(channel_log: ChannelLog, hub: Hub, stop: asyncio.Event) -> None:
    """Every message appended to the log (by any node) to this node's subscribers."""
    cursor: str | None = None
    while not stop.is_set():
        try:
            if cursor is None:  # at start, and retried: a node may start while Redis loads its data
                cursor = await channel_log.tail_start()
                hub.ready.set()
            cursor, entries = await channel_log.tail(cursor, count=1000, wait=0.2)
        except Exception as exc:  # Redis away: keep the cursor, try again
            log.warning("ws.fanout_failed", error=str(exc)[:200])
            await asyncio.sleep(0.5)
            continue
        for entry in entries:
            hub.deliver(entry)


def session_state(calendar: SessionCalendar, now_ns: int) -> tuple[str, str]:
    """(state, key) of an exchange at ``now_ns``: ``open``, ``break`` (lunch) or ``closed``; the key
    names this state's stretch (the session it belongs to, or the UTC day when there is none), so
    every node names one change alike."""
    session = calendar.session_at(now_ns)
    if session is not None and now_ns < session.close:
        return ("open" if session.is_trading(now_ns) else "break"), f"session:{session.label}"
    # closed: the stretch since the last session's close (its closing print included)
    before = calendar.sessions_between(now_ns - 10 * DAY_NS, now_ns + 1)
    return "closed", f"after:{before[-1].label}" if before else f"day:{date_of(now_ns).isoformat()}"


async def market_status(
    channel_log: ChannelLog,
    stop: asyncio.Event,
    exchanges: Mapping[str, SessionCalendar],
    every_s: float = 15.0,
    clock: Callable[[], int] = time.time_ns,
) -> None:
    """Each exchange's session changes to ``market:status``: every node checks every ``every_s``, and
    the ``once`` key (exchange, state, stretch) makes the change one message however many nodes see
    it. Halts are not known to the calendars and are not published."""
    last: dict[str, str] = {}
    while not stop.is_set():
        now = clock()
        for name, calendar in exchanges.items():
            state, key = session_state(calendar, now)
            if last.get(name) == state + key:
                continue
            try:
                await channel_log.append(
                    MARKET_STATUS,
                    "session",
                    {"exchange": name, "state": state, "at_ns": now},
                    once=f"market.status:{name}:{state}:{key}",
                )
            except Exception as exc:  # Redis away: try again next round
                log.warning("ws.market_status_failed", error=str(exc)[:200])
                continue
            last[name] = state + key
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)


MARKET_STATUS = "market:status"

__all__ = [
    "MARKET_STATUS",
    "RELAY_GROUP",
    "Router",
    "fanout",
    "market_status",
    "relay",
    "session_state",
    "signal_payload",
]
