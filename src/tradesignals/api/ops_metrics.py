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

from tradesignals.api.ws_session import CLOSE_SLOW

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
    """One node's hub, read when scraped: ``ts_ws_clients`` (sockets open), ``ts_ws_dropped_clients_total``
    (closed because they stopped reading: 4008), ``ts_ws_closes_total{code}``, ``ts_ws_lagged_total``
    and ``ts_ws_resyncs_total`` (the slow-consumer policy at work, ``api/hub.py``)."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        hub = self.hub
        closes: dict[int, int] = dict(getattr(hub, "closes", {}))
        clients = GaugeMetricFamily("ts_ws_clients", "WebSocket clients connected to this node.")
        clients.add_metric([], float(len(getattr(hub, "clients", ()))))
        yield clients
        dropped = CounterMetricFamily(
            "ts_ws_dropped_clients", "WebSocket clients closed because they stopped reading (4008)."
        )
        dropped.add_metric([], float(closes.get(CLOSE_SLOW, 0)))
        yield dropped
        by_code = CounterMetricFamily(
            "ts_ws_closes", "WebSocket closes by this node, by close code.", labels=["code"]
        )
        for code, n in sorted(closes.items()):
            by_code.add_metric([str(code)], float(n))
        yield by_code
        lagged = CounterMetricFamily("ts_ws_lagged", "Clients told 'lagged' (caught up from the log).")
        lagged.add_metric([], float(getattr(hub, "lagged_total", 0)))
        yield lagged
        resyncs = CounterMetricFamily(
            "ts_ws_resyncs", "Clients told 'resync' (a gap the log no longer holds)."
        )
        resyncs.add_metric([], float(getattr(hub, "resyncs_total", 0)))
        yield resyncs


_registered: list[HubCollector] = []


def watch_hub(hub: Any) -> None:
    """Expose ``hub`` (one per process: the API node's); a later hub replaces the earlier one."""
    if _registered:
        _registered[0].hub = hub
        return
    collector = HubCollector(hub)
    REGISTRY.register(collector)
    _registered.append(collector)
