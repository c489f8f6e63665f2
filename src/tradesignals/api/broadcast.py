"""Bridge from the bus to this node's WebSocket hub.

Each API node reads the ``signals`` topic in a consumer group of its own, so every node sees every
signal and can serve any client; a node starts at the latest message (clients catch up by REST).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog

from tradesignals.api.hub import Hub
from tradesignals.api.schemas import SignalPublic
from tradesignals.bus import topics
from tradesignals.bus.base import Bus, BusError
from tradesignals.bus.codec import decoder
from tradesignals.domain.entitlements import SIGNALS_CHANNEL, live_channel
from tradesignals.domain.signals import Signal
from tradesignals.domain.trace import signal_trace_id
from tradesignals.engine.backoff import with_backoff

log = structlog.get_logger(__name__)

R = TypeVar("R")

__all__ = ["SIGNALS_CHANNEL", "broadcast_alerts", "broadcast_signals", "signal_payload"]


#: How long the broadcaster rides out an unreachable Redis before its task fails (engine.backoff).
BUS_RETRY_S = 300.0


async def _retrying(what: str, call: Callable[[], Awaitable[R]], stop: asyncio.Event) -> R:
    """A Redis outage is ridden out, not fatal: the node keeps fanning out once Redis is back."""
    return await with_backoff(
        call,
        what=what,
        component="api",
        dependency="bus",
        retry_on=(BusError,),
        stop=stop,
        limit_s=BUS_RETRY_S,
    )


def signal_payload(signal: Signal) -> dict[str, Any]:
    return SignalPublic.of(signal).model_dump(mode="json")


async def broadcast_signals(bus: Bus, hub: Hub, node_id: str, stop: asyncio.Event) -> None:
    consumer = bus.consumer(topics.SIGNALS, f"api-{node_id}", node_id, decoder(Signal), start="latest")
    try:
        while not stop.is_set():
            batch = await _retrying("fetching signals", lambda: consumer.fetch(500, wait=0.2), stop)
            for d in batch:
                payload = signal_payload(d.value)
                seq = hub.publish(SIGNALS_CHANNEL, "signal", payload)
                # the one channel an upgrade to this signal opens (domain.entitlements)
                hub.publish(live_channel(d.value.id), "signal", payload)
                log.info(
                    "signal.delivered",
                    id=d.value.id,
                    trace_id=signal_trace_id(d.value),
                    node=node_id,
                    seq=seq,
                )
            if batch:
                await _retrying("acking signals", lambda: consumer.ack(*batch), stop)  # noqa: B023
    finally:
        await consumer.close()


async def broadcast_alerts(bus: Bus, hub: Hub, node_id: str, stop: asyncio.Event) -> None:
    """Engine alerts (model drift) to the public ``system:alerts`` channel."""
    consumer = bus.consumer(
        topics.SYSTEM_ALERTS, f"api-{node_id}", node_id, decoder(dict[str, Any]), start="latest"
    )
    try:
        while not stop.is_set():
            batch = await _retrying("fetching alerts", lambda: consumer.fetch(100, wait=0.2), stop)
            for d in batch:
                hub.publish("system:alerts", "alert", d.value)
            if batch:
                await _retrying("acking alerts", lambda: consumer.ack(*batch), stop)  # noqa: B023
    finally:
        await consumer.close()
