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
  accepts it, with the position size for their stated capital (type ``signal``);
- ``signal.events`` (a close) → ``signals`` (the public outcome), ``signal:{id}:live`` (its last
  message, ``closed``), ``user:{id}:notifications`` of each holder of an upgrade to it,
  ``user:{id}:watchlist`` of each watcher of its symbol, and ``user:{id}:signals`` of each premium
  user whose profile accepts the signal (type ``update``: the signal's row as ``GET /api/signals``
  gives it, closed, with its outcome and the user's size). Who gets the update is decided by the
  same fitting rule on the same bars (up to the deciding bar) as who got the signal, so it reaches
  the users the signal reached, unless their tier, profile or capital changed meanwhile (then
  it follows what their list shows now);
- ``signal.live`` → ``signal:{id}:live``; the first mark that shows a signal filled also goes to
  ``user:{id}:signals`` of the users the signal is fitted for (type ``update``: the open row with
  ``filled_at`` and ``fill_price``, ``once`` keyed by the signal, so a node that restarts or takes
  the partition over announces it again only past the log's ``once`` lifetime, a day);
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
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from redis.exceptions import RedisError

from tradesignals.api.channel_seq import ChannelLog
from tradesignals.api.hub import Hub
from tradesignals.api.routes.signals import DEFAULT_CAPITAL, sizes_for
from tradesignals.api.schemas import PositionSize, SignalPublic
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
from tradesignals.engine.backoff import BUS_RETRY_S, bus_call, with_backoff
from tradesignals.engine.track_record import HistoryRow
from tradesignals.storage.audience import SqlAudience
from tradesignals.storage.base import SignalRepository
from tradesignals.storage.timeseries import BarStore

log = structlog.get_logger(__name__)

RELAY_GROUP = "ws-relay"

R = TypeVar("R")

Message = tuple[str, str, Any] | tuple[str, str, Any, str]
"""(channel, type, data[, once]): one message for one channel. ``once`` names the message where the
bus message id would not (a fill, whichever mark of the signal shows it first); without it the relay
uses the bus message id."""

FILLS_SEEN = 100_000
"""Fills this node remembers having announced (so each later mark of a filled signal costs a probe)."""

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
    per batch) and fits live signals with the API's one fitting rule (``routes.signals.sizes_for``);
    a close's signal is read from ``signals`` (one read per closed signal)."""

    def __init__(
        self,
        audience: SqlAudience | None = None,
        bars: BarStore | None = None,
        signals: SignalRepository | None = None,
    ) -> None:
        self.audience = audience
        self.bar_store = bars
        self.signal_repo = signals
        self._fills_seen: OrderedDict[str, None] = OrderedDict()

    def routes(self) -> dict[str, tuple[Callable[[bytes], Any], Route]]:
        return {
            topics.SIGNALS: (decoder(Signal), self.signals),
            topics.SIGNAL_EVENTS: (decoder(SignalEvent), self.events),
            topics.SIGNAL_LIVE: (decoder(LiveUpdate), self.live),
            topics.SIGNAL_RESEARCH: (decoder(SignalText), self.research),
            topics.MARKET_BARS: (decoder(Bar), self.bars),
            topics.SYSTEM_ALERTS: (decoder(dict[str, Any]), self.alerts),
        }

    async def premium_groups(self) -> dict[tuple[ProfileName, float], list[int]]:
        """The premium users by (profile, capital): one query (none without an audience)."""
        groups: dict[tuple[ProfileName, float], list[int]] = {}
        if self.audience is None or self.bar_store is None:
            return groups
        for sub in await asyncio.to_thread(self.audience.premium_users):
            groups.setdefault((sub.profile, sub.capital or DEFAULT_CAPITAL), []).append(sub.user_id)
        return groups

    async def fitted(
        self, signals: Sequence[Signal], groups: dict[tuple[ProfileName, float], list[int]] | None = None
    ) -> dict[str, list[tuple[list[int], PositionSize]]]:
        """For each signal, the premium users whose profile accepts it, grouped by (profile,
        capital) with that group's size; a signal no one is fitted for is absent."""
        out: dict[str, list[tuple[list[int], PositionSize]]] = {}
        if self.bar_store is None or not signals:
            return out
        if groups is None:
            groups = await self.premium_groups()
        for (profile, capital), users in groups.items():
            sizes = await asyncio.to_thread(sizes_for, self.bar_store, signals, profile, capital)
            for sid, size in sizes.items():
                out.setdefault(sid, []).append((users, size))
        return out

    async def signals(self, batch: Sequence[Delivery[Any]]) -> list[list[Message]]:
        """A new (open) signal to each premium user whose profile accepts it, sized for their capital."""
        out: list[list[Message]] = [[] for _ in batch]
        signals: list[Signal] = [d.value for d in batch]
        fitted = await self.fitted(signals)
        for i, s in enumerate(signals):
            for users, size in fitted.get(s.id, ()):
                payload = SignalPublic.of(s, None, size).model_dump(mode="json")
                out[i].extend((user_channel(uid, "signals"), "signal", payload) for uid in users)
        return out

    async def _stored(self, signal_ids: Sequence[str]) -> dict[str, Signal]:
        """The stored signals among ``signal_ids`` (none without a repository or an audience)."""
        if self.signal_repo is None or self.audience is None or self.bar_store is None or not signal_ids:
            return {}
        repo = self.signal_repo
        ids = sorted(set(signal_ids))

        def read() -> dict[str, Signal]:
            found = {sid: repo.get(sid) for sid in ids}
            return {sid: s for sid, s in found.items() if s is not None}

        return await asyncio.to_thread(read)

    async def events(self, batch: Sequence[Delivery[Any]]) -> list[list[Message]]:
        """A close: the public outcome, the live stream's last message, the upgrade holders'
        notification, the symbol's watchers' watchlist and, as an ``update``, the closed row on
        ``user:{id}:signals`` of each premium user the signal is fitted for."""
        events: list[SignalEvent] = [d.value for d in batch]
        holders: dict[str, list[int]] = {}
        watchers: dict[str, list[int]] = {}
        if self.audience is not None:
            ids = [e.signal_id for e in events]
            holders = await asyncio.to_thread(self.audience.upgrade_holders, ids, datetime.now(UTC))
            watchers = await asyncio.to_thread(self.audience.watchers, [d.key for d in batch])
        # the stored signals (closed before the event went out), read only when someone is premium
        groups = await self.premium_groups() if self.signal_repo is not None else {}
        stored = await self._stored([e.signal_id for e in events]) if groups else {}
        fitted = await self.fitted(list(stored.values()), groups)
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
            signal = stored.get(event.signal_id)
            if signal is not None:
                close = HistoryRow.of(signal, 0, event)  # (the ledger seq is not part of the row)
                for users, size in fitted.get(signal.id, ()):
                    row = SignalPublic.of(signal, close, size).model_dump(mode="json")
                    messages.extend((user_channel(u, "signals"), "update", row) for u in users)
            out.append(messages)
        return out

    async def live(self, batch: Sequence[Delivery[Any]]) -> list[list[Message]]:
        """Each mark to its signal's live channel; a mark that shows a fill this node has not seen
        also to the fitted users' ``user:{id}:signals`` (``update``, once per signal and channel)."""
        updates: list[LiveUpdate] = [d.value for d in batch]
        out: list[list[Message]] = [[(live_channel(u.signal_id), "live", live_payload(u))] for u in updates]
        fills = [
            i
            for i, u in enumerate(updates)
            if u.filled_ns is not None and u.signal_id not in self._fills_seen
        ]
        if not fills:
            return out
        try:
            groups = await self.premium_groups() if self.signal_repo is not None else {}
            stored = await self._stored([updates[i].signal_id for i in fills]) if groups else {}
            opened = {sid: s for sid, s in stored.items() if not s.status.is_closed}  # a close says it all
            fitted = await self.fitted(list(opened.values()), groups)
        except Exception as exc:  # the database away: the marks go on, the fills wait for a later mark
            log.warning("ws.fill_lookup_failed", signals=len(fills), error=str(exc)[:200])
            return out
        for i in fills:
            u = updates[i]
            self._fills_seen[u.signal_id] = None
            if len(self._fills_seen) > FILLS_SEEN:
                self._fills_seen.popitem(last=False)
            signal = opened.get(u.signal_id)
            if signal is None or u.filled_ns is None:
                continue
            filled_at = datetime.fromtimestamp(u.filled_ns / 1e9, UTC)
            for users, size in fitted.get(signal.id, ()):
                row = SignalPublic.of(signal, None, size).model_copy(
                    update={"filled_at": filled_at, "fill_price": u.fill_price}
                )
                data = row.model_dump(mode="json")
                once = f"signal.filled:{signal.id}"
                out[i].extend((user_channel(uid, "signals"), "update", data, once) for uid in users)
        return out

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


def once_key(topic: str, d: Delivery[Any], i: int, m: Message) -> str | None:
    """What makes one relayed message numbered once on its channel, whoever relays it how often.

    A message the router keyed itself (a fourth element: a fill, announced once per signal) keeps
    its key. Otherwise the bus message (topic, partition, id): a message redelivered to this or
    another node is a no-op. A signal's close happens once, but the engine may publish it again (it
    handles a redelivered bar after a crash and cannot know its first publish landed): keyed by the
    signal and the channel instead, so the chaos run's clients see each outcome once. Bars go
    without (a repeated bar is harmless, and a key per bar per day would cost Redis more than the
    bars).
    """
    if len(m) == 4:
        return m[3]
    channel, type_ = m[0], m[1]
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
                (m[0], m[1], m[2], once_key(topic, d, i, m))
                for d, per in zip(batch, messages, strict=True)
                for i, m in enumerate(per)
            ]
            # The same batch again until it is appended: a live member is not handed its unacked
            # messages again, and an append cut short (say, numbered but not yet fanned out) is
            # completed by appending it again (``once``; ``channel_seq.RedisChannelLog``). Past
            # ``TS_BUS_RETRY_S`` the task fails, the node restarts and the bus hands the batch over.
            try:
                await with_backoff(
                    lambda: channel_log.append_many(items),  # noqa: B023
                    what=f"appending {topic}",
                    component="api",
                    dependency="redis",
                    retry_on=(RedisError, OSError),
                    stop=stop,
                    limit_s=BUS_RETRY_S,
                )
            except (RedisError, OSError):
                if stop.is_set():
                    break  # stopping mid-retry: unacked, the bus hands the batch to another member
                raise  # Redis away past TS_BUS_RETRY_S: the task fails (as a fetch does)
            except Exception as exc:  # a bug in a payload: logged; the batch stays unacked
                log.warning("ws.relay_append_failed", topic=topic, error=str(exc)[:200])
                await asyncio.sleep(0.5)
                continue
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
