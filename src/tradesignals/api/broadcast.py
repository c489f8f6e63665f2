"""From the bus to the WebSocket channels, and from the channels to this node's sockets.

Two halves, so that a message gets one sequence number however many API nodes run:

- **Relay** (``relay``): the API nodes share one bus consumer group per topic (``ws-relay``, one
  member per node, which leaves the group when the node stops); each bus message is handled by one
  node, which appends what it means for each channel to the ``ChannelLog``. ``once`` is the bus
  message id, so a message redelivered after a node died is not numbered twice.
- **Fan-out** (``fanout``): every node tails the log's fan-out from its own cursor (no server-side
  state) and hands each message to its hub.

Topic → channels (``ROUTES``): ``signal.events`` → ``signals`` (the closed outcome, public) and
``signal:{id}:live`` (a final ``closed`` message); ``signal.live`` → ``signal:{id}:live``;
``market.bars`` → ``market:{symbol}:updates``; ``system.alerts`` → ``system:alerts``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from typing import Any

import structlog

from tradesignals.api.channel_seq import ChannelLog
from tradesignals.api.hub import Hub
from tradesignals.api.schemas import SignalPublic
from tradesignals.bus import topics
from tradesignals.bus.base import Bus, BusError, Delivery
from tradesignals.bus.codec import decoder
from tradesignals.domain.entitlements import SIGNALS_CHANNEL, live_channel, market_channel
from tradesignals.domain.live import LiveUpdate
from tradesignals.domain.market import Bar
from tradesignals.domain.signals import Signal, SignalEvent

log = structlog.get_logger(__name__)

RELAY_GROUP = "ws-relay"

Message = tuple[str, str, Any]
"""(channel, type, data): one message for one channel."""

Route = Callable[[Sequence[Delivery[Any]]], Awaitable[list[list[Message]]]]
"""Turns a batch of bus deliveries into the messages of each (same order, one list per delivery)."""


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


async def _route_events(batch: Sequence[Delivery[Any]]) -> list[list[Message]]:
    out: list[list[Message]] = []
    for d in batch:
        event: SignalEvent = d.value
        payload = outcome_payload(d.key, event)
        out.append(
            [
                (SIGNALS_CHANNEL, "outcome", payload),
                (live_channel(event.signal_id), "closed", payload),  # the live stream's last message
            ]
        )
    return out


async def _route_live(batch: Sequence[Delivery[Any]]) -> list[list[Message]]:
    return [[(live_channel(d.value.signal_id), "live", live_payload(d.value))] for d in batch]


async def _route_bars(batch: Sequence[Delivery[Any]]) -> list[list[Message]]:
    return [[(market_channel(d.value.symbol), "bar", bar_payload(d.value))] for d in batch]


async def _route_alerts(batch: Sequence[Delivery[Any]]) -> list[list[Message]]:
    return [[("system:alerts", "alert", d.value)] for d in batch]


ROUTES: dict[str, tuple[Callable[[bytes], Any], Route]] = {
    topics.SIGNAL_EVENTS: (decoder(SignalEvent), _route_events),
    topics.SIGNAL_LIVE: (decoder(LiveUpdate), _route_live),
    topics.MARKET_BARS: (decoder(Bar), _route_bars),
    topics.SYSTEM_ALERTS: (decoder(dict[str, Any]), _route_alerts),
}


async def relay(
    bus: Bus,
    channel_log: ChannelLog,
    topic: str,
    decode: Callable[[bytes], Any],
    route: Route,
    node_id: str,
    stop: asyncio.Event,
    joined: asyncio.Event | None = None,
) -> None:
    """Append what each message of ``topic`` means to the channel log; ack once it is appended."""
    consumer = bus.consumer(topic, RELAY_GROUP, node_id, decode, start="latest")
    try:
        while not stop.is_set():
            try:
                batch = await consumer.fetch(500, wait=0.2)
            except BusError as exc:
                log.warning("ws.relay_fetch_failed", topic=topic, error=str(exc)[:200])
                await asyncio.sleep(0.5)
                continue
            if joined is not None:
                joined.set()
            if not batch:
                continue
            messages = await route(batch)
            items = [
                (channel, type_, data, f"{topic}:{d.partition}:{d.id}:{i}")
                for d, per in zip(batch, messages, strict=True)
                for i, (channel, type_, data) in enumerate(per)
            ]
            try:
                await channel_log.append_many(items)
            except Exception as exc:  # unacked: the bus hands the batch to us (or another node) again
                log.warning("ws.relay_append_failed", topic=topic, error=str(exc)[:200])
                await asyncio.sleep(0.5)
                continue
            await consumer.ack(*batch)
    finally:
        await consumer.close()


async def fanout(channel_log: ChannelLog, hub: Hub, stop: asyncio.Event) -> None:
    """Every message appended to the log (by any node) to this node's subscribers."""
    cursor = await channel_log.tail_start()
    hub.ready.set()
    while not stop.is_set():
        try:
            cursor, entries = await channel_log.tail(cursor, count=1000, wait=0.2)
        except Exception as exc:  # Redis away: keep the cursor, try again
            log.warning("ws.fanout_failed", error=str(exc)[:200])
            await asyncio.sleep(0.5)
            continue
        for entry in entries:
            hub.deliver(entry)


__all__ = ["RELAY_GROUP", "ROUTES", "fanout", "relay", "signal_payload"]
