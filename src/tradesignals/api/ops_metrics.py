"""The API role's own Prometheus metrics: payment webhooks and the WebSocket hub.

Webhooks: each outcome counted (``applied``, ``duplicate`` — an event id seen before —,
``rejected`` — forged, stale or malformed — and ``error`` — the store failed, the provider will
retry), and the time from receipt to the grant stored: the server's share of the "payment
confirmed → live channel open" budget (DESIGN.md: 2 s seed SLA, 200 ms ours).

WebSocket: read from the hub at scrape time (a collector), so the hub's hot path carries no metric
calls: clients subscribed now and clients dropped as too slow since start.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

WEBHOOK_EVENTS = Counter(
    "ts_webhook_events_total", "Payment provider webhooks received, by outcome.", ["outcome"]
)
for _outcome in ("applied", "duplicate", "rejected", "error"):
    WEBHOOK_EVENTS.labels(_outcome)
WEBHOOK_SECONDS = Histogram(
    "ts_webhook_seconds",
    "From a webhook's receipt to its effects stored (the grant of an upgrade or of premium).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
)


class HubCollector(Collector):
    """``ts_ws_clients`` and ``ts_ws_dropped_clients_total`` of one node's hub, read when scraped."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        clients = GaugeMetricFamily("ts_ws_clients", "WebSocket clients subscribed to at least one channel.")
        clients.add_metric([], float(_client_count(self.hub)))
        yield clients
        dropped = CounterMetricFamily(
            "ts_ws_dropped_clients", "WebSocket clients closed because their send queue filled (1013)."
        )
        dropped.add_metric([], float(getattr(self.hub, "dropped_clients", 0)))
        yield dropped


def _client_count(hub: Any) -> int:
    count = getattr(hub, "client_count", None)
    if callable(count):
        return int(count())
    channels = getattr(hub, "_channels", {})
    return len({c for ch in channels.values() for c in getattr(ch, "subscribers", ())})


_registered: list[HubCollector] = []


def watch_hub(hub: Any) -> None:
    """Expose ``hub`` (one per process: the API node's); a later hub replaces the earlier one."""
    if _registered:
        _registered[0].hub = hub
        return
    collector = HubCollector(hub)
    REGISTRY.register(collector)
    _registered.append(collector)
