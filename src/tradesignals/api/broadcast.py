"""Bridge from the bus to this node's WebSocket hub.

Each API node reads the ``signals`` topic in a consumer group of its own, so every node sees every
signal and can serve any client; a node starts at the latest message (clients catch up by REST).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from tradesignals.api.hub import Hub
from tradesignals.api.schemas import SignalPublic
from tradesignals.bus import topics
from tradesignals.bus.base import Bus
from tradesignals.bus.codec import decoder
from tradesignals.domain.entitlements import SIGNALS_CHANNEL, live_channel
from tradesignals.domain.signals import Signal
from tradesignals.domain.trace import signal_trace_id

log = structlog.get_logger(__name__)

__all__ = ["SIGNALS_CHANNEL", "broadcast_alerts", "broadcast_signals", "signal_payload"]


def signal_payload(signal: Signal) -> dict[str, Any]:
    return SignalPublic.of(signal).model_dump(mode="json")


async def broadcast_signals(bus: Bus, hub: Hub, node_id: str, stop: asyncio.Event) -> None:
    consumer = bus.consumer(topics.SIGNALS, f"api-{node_id}", node_id, decoder(Signal), start="latest")
    try:
        while not stop.is_set():
            batch = await consumer.fetch(500, wait=0.2)
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
                await consumer.ack(*batch)
    finally:
        await consumer.close()


async def broadcast_alerts(bus: Bus, hub: Hub, node_id: str, stop: asyncio.Event) -> None:
    """Engine alerts (model drift) to the public ``system:alerts`` channel."""
    consumer = bus.consumer(
        topics.SYSTEM_ALERTS, f"api-{node_id}", node_id, decoder(dict[str, Any]), start="latest"
    )
    try:
        while not stop.is_set():
            batch = await consumer.fetch(100, wait=0.2)
            for d in batch:
                hub.publish("system:alerts", "alert", d.value)
            if batch:
                await consumer.ack(*batch)
    finally:
        await consumer.close()
