"""The push worker: its own consumer task, beside the engine, never in its path.

* ``signals`` (group ``push-signals``, from the latest: a first start does not notify old signals):
  each new signal goes to every premium subscriber whose risk profile accepts it — the same fitting
  as ``GET /api/signals`` (``engine.fitting.accepted``: profile filters on the volatility measured
  from the stored bars), each profile judged once per signal;
* ``signal.events`` (group ``push-events``): each close (target, stop, expiry, not filled) goes to the
  holders of an upgrade to that signal in force at the close.

Errors of a batch (the database, the bar store) are counted and logged; the batch is acked anyway,
since a notification delivered minutes late is worse than none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import Any, TypeVar

import structlog

from tradesignals.bus import topics
from tradesignals.bus.base import Bus
from tradesignals.bus.codec import decoder
from tradesignals.domain.signals import Signal, SignalEvent, SignalEventKind
from tradesignals.engine.backoff import bus_call
from tradesignals.engine.fitting import accepted, wait_for_deciding_bar
from tradesignals.push.sender import PushSender
from tradesignals.storage.base import SignalRepository
from tradesignals.storage.push import SqlPushStore
from tradesignals.storage.timeseries import BarStore

log = structlog.get_logger(__name__)

T = TypeVar("T")

SIGNALS_GROUP = "push-signals"
EVENTS_GROUP = "push-events"


def signal_payload(signal: Signal) -> dict[str, Any]:
    """What the notification of a new signal says (the service worker shows it and opens ``url``)."""
    return {
        "type": "signal",
        "id": signal.id,
        "symbol": signal.symbol,
        "direction": signal.direction.value,
        "signal_type": signal.type.value,
        "confidence": signal.confidence,
        "entry": signal.entry,
        "stop": signal.stop,
        "targets": list(signal.targets),
        "expires_at": signal.expires_at.astimezone(UTC).isoformat(),
        "url": f"/signals/{signal.id}",
    }


def close_payload(event: SignalEvent, symbol: str) -> dict[str, Any]:
    data = event.data
    return {
        "type": "closed",
        "id": event.signal_id,
        "symbol": symbol,
        "outcome": data.get("outcome"),
        "exit_price": data.get("exit_price"),
        "net_r": data.get("net_r"),
        "closed_at": event.at.astimezone(UTC).isoformat(),
        "url": f"/signals/{event.signal_id}",
    }


BAR_WAIT_S = 10.0


async def notify_new_signal(
    sender: PushSender, store: SqlPushStore, bars: BarStore, signal: Signal, *, bar_wait_s: float = BAR_WAIT_S
) -> int:
    """Notify the premium subscribers whose profile accepts ``signal``; the number addressed.

    The profile judges the volatility measured up to the deciding bar, so the recorder is given up to
    ``bar_wait_s`` to store it first (as the API will have it when the user looks)."""
    if signal.status.is_closed:
        return 0
    targets = await asyncio.to_thread(store.premium_targets)
    if not targets:
        return 0
    if not await wait_for_deciding_bar(bars, signal, bar_wait_s):
        log.info("push.deciding_bar_missing", id=signal.id, waited_s=bar_wait_s)
    profiles = {t.profile for t in targets}
    fits = {p: await asyncio.to_thread(accepted, bars, [signal], p) for p in profiles}
    subs = [t.subscription for t in targets if signal.id in fits[t.profile]]
    if subs:
        await sender.send_all(subs, signal_payload(signal))
    return len(subs)


async def notify_close(
    sender: PushSender, store: SqlPushStore, signals: SignalRepository, event: SignalEvent
) -> int:
    if event.kind is not SignalEventKind.CLOSED:
        return 0
    subs = await asyncio.to_thread(store.upgrade_targets, event.signal_id, event.at)
    if not subs:
        return 0
    signal = await asyncio.to_thread(signals.get, event.signal_id)
    await sender.send_all(subs, close_payload(event, signal.symbol if signal else ""))
    return len(subs)


async def _consume(
    bus: Bus,
    topic: str,
    group: str,
    node_id: str,
    decode: Callable[[bytes], T],
    handle: Callable[[T], Awaitable[object]],
    sender: PushSender,
    stop: asyncio.Event,
    lease_s: float = 10.0,
) -> None:
    """Read ``topic`` in ``group`` from the latest entry and ``handle`` each message; a failed one
    (storage or the bar store down) is counted and logged, and the batch is acked all the same."""
    consumer = bus.consumer(topic, group, node_id, decode, start="latest", lease_seconds=lease_s)
    try:
        while not stop.is_set():
            batch = await bus_call(
                lambda: consumer.fetch(50, wait=0.2), what=f"fetching {topic}", component="push", stop=stop
            )
            for d in batch:
                try:
                    await handle(d.value)
                except Exception as exc:
                    sender.stats.count("failed")
                    log.warning("push.notify_failed", topic=topic, error=repr(exc)[:300])
            if batch:
                await bus_call(
                    lambda: consumer.ack(*batch),  # noqa: B023
                    what=f"acking {topic}",
                    component="push",
                    stop=stop,
                )
    finally:
        await consumer.close()


async def push_new_signals(
    bus: Bus,
    sender: PushSender,
    store: SqlPushStore,
    bars: BarStore,
    node_id: str,
    stop: asyncio.Event,
    lease_s: float = 10.0,
) -> None:
    async def handle(signal: Signal) -> None:
        await notify_new_signal(sender, store, bars, signal)

    await _consume(
        bus, topics.SIGNALS, SIGNALS_GROUP, node_id, decoder(Signal), handle, sender, stop, lease_s
    )


async def push_signal_closes(
    bus: Bus,
    sender: PushSender,
    store: SqlPushStore,
    signals: SignalRepository,
    node_id: str,
    stop: asyncio.Event,
    lease_s: float = 10.0,
) -> None:
    async def handle(event: SignalEvent) -> None:
        await notify_close(sender, store, signals, event)

    await _consume(
        bus, topics.SIGNAL_EVENTS, EVENTS_GROUP, node_id, decoder(SignalEvent), handle, sender, stop, lease_s
    )


__all__ = [
    "EVENTS_GROUP",
    "SIGNALS_GROUP",
    "close_payload",
    "notify_close",
    "notify_new_signal",
    "push_new_signals",
    "push_signal_closes",
    "signal_payload",
]
