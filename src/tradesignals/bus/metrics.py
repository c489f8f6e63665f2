"""Bus-level Prometheus metrics, counted where the event happens (both bus implementations).

Consumer lag is a gauge refreshed by the process that reports health (``wiring``), from
``Bus.lag``; it is not counted here because it is a property of a group, not of one member.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

REDELIVERED = Counter(
    "ts_bus_redelivered_total",
    "Messages handed out again (attempt > 1): their first receiver died or lost its lease before acking.",
    ["topic", "group"],
)
DEAD_LETTERS = Counter(
    "ts_bus_dead_letters_total",
    "Undecodable messages parked on the topic's dead-letter stream and acked.",
    ["topic", "group"],
)
LAG = Gauge(
    "ts_bus_consumer_lag",
    "Messages a consumer group has not finished: unread (never delivered) or pending (not acked); "
    "on Redis counted in stream entries, up to 64 messages each (ADR 0031).",
    ["topic", "group", "state"],
)
LAG_UNKNOWN = Gauge(
    "ts_bus_consumer_lag_unknown",
    "1 when Redis cannot count a group's unread messages (its lag is nil and too many to count): "
    "the unread gauge is NaN meanwhile; treat it as not keeping up.",
    ["topic", "group"],
)
MEMBERS = Gauge("ts_bus_consumer_members", "Live members of a consumer group.", ["topic", "group"])
UP = Gauge("ts_bus_up", "1 when this process's last bus ping answered, else 0.")
DB_UP = Gauge("ts_database_up", "1 when this process's last database probe answered, else 0.")
