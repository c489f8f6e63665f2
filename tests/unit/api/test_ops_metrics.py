"""The hub's figures as Prometheus reads them: subscribed clients now, slow clients dropped since start."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from tradesignals.api.hub import Hub
from tradesignals.api.ops_metrics import HubCollector


def sample(registry: CollectorRegistry, name: str) -> float | None:
    return registry.get_sample_value(name)


async def test_clients_and_drops_are_read_from_the_hub_when_scraped() -> None:
    hub = Hub(client_queue=2)
    registry = CollectorRegistry()
    registry.register(HubCollector(hub))
    assert sample(registry, "ts_ws_clients") == 0 and sample(registry, "ts_ws_dropped_clients_total") == 0
    fast, slow = hub.new_client(), hub.new_client()
    hub.subscribe(fast, "signals")
    hub.subscribe(fast, "system:alerts")  # two channels, one client
    hub.subscribe(slow, "signals")
    assert sample(registry, "ts_ws_clients") == 2
    for i in range(3):  # the slow client never reads: its queue of 2 fills and it is dropped
        hub.publish("signals", "signal", {"i": i})
        while not fast.queue.empty():
            fast.queue.get_nowait()
        await asyncio.sleep(0)
    assert sample(registry, "ts_ws_clients") == 1
    assert sample(registry, "ts_ws_dropped_clients_total") == 1
