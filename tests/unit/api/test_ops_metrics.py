"""The hub's figures as Prometheus reads them at scrape time: sockets open, closes by code (the slow
readers among them), and the slow-consumer policy's ``lagged`` and ``resync`` counts."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from tradesignals.api.channel_seq import MemoryChannelLog
from tradesignals.api.hub import Hub
from tradesignals.api.ops_metrics import HubCollector
from tradesignals.api.ws_session import CLOSE_IDLE, CLOSE_SLOW


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_clients_closes_and_policy_counts_are_read_from_the_hub_when_scraped() -> None:
    hub = Hub(MemoryChannelLog())
    registry = CollectorRegistry()
    registry.register(HubCollector(hub))
    assert sample(registry, "ts_ws_clients") == 0 and sample(registry, "ts_ws_dropped_clients_total") == 0
    fast, slow = hub.new_client(), hub.new_client()
    hub.subscribe(fast, "signals", 0)
    hub.subscribe(fast, "system:alerts", 0)  # two channels, one client
    hub.subscribe(slow, "signals", 0)
    assert sample(registry, "ts_ws_clients") == 2
    # what ws.py records when it closes a socket: the slow reader (4008) and an idle one (4000)
    hub.closes[CLOSE_SLOW] = hub.closes.get(CLOSE_SLOW, 0) + 1
    hub.closes[CLOSE_IDLE] = hub.closes.get(CLOSE_IDLE, 0) + 1
    hub.remove(slow)
    hub.lagged_total, hub.resyncs_total = 3, 1
    assert sample(registry, "ts_ws_clients") == 1
    assert sample(registry, "ts_ws_dropped_clients_total") == 1  # only the slow reader is a drop
    assert sample(registry, "ts_ws_closes_total", code=str(CLOSE_IDLE)) == 1
    assert sample(registry, "ts_ws_lagged_total") == 3 and sample(registry, "ts_ws_resyncs_total") == 1
