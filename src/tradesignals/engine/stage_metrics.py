"""Latency by engine stage, as Prometheus histograms, and the roles' counters (exposed at ``/metrics``).

Buckets run from 5 µs to 1 s so that both the in-process budgets (features ≤ 1 ms, inference
≤ 100 µs, tick → signal ≤ 10 ms) and a slow database write land in a bucket of their own.
Observing costs about a microsecond, so it stays on the hot path.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BUCKETS_S = (
    5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
    1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1.0,
)  # fmt: skip

STAGE_SECONDS = Histogram(
    "ts_engine_stage_seconds",
    "Time spent in each engine stage (features, inference, decide, store, publish, end_to_end).",
    ["stage"],
    buckets=BUCKETS_S,
)

FEATURES = STAGE_SECONDS.labels("features")
INFERENCE = STAGE_SECONDS.labels("inference")
DECIDE = STAGE_SECONDS.labels("decide")
STORE = STAGE_SECONDS.labels("store")
PUBLISH = STAGE_SECONDS.labels("publish")
END_TO_END = STAGE_SECONDS.labels("end_to_end")

# -- what each role did, counted (Prometheus counters; rates make the dashboard's throughput panels)

RETRIES = Counter(
    "ts_retries_total",
    "Tries of a call to a dependency that failed and were retried after a back-off (engine.backoff).",
    ["component", "dependency"],
)
for _component, _dependency in (
    ("engine", "bus"),
    ("engine", "store"),
    ("ingest", "bus"),
    ("recorder", "bus"),
    ("recorder", "store"),
    ("api", "bus"),
):
    RETRIES.labels(_component, _dependency)  # every series exists from start: rate() needs a zero
BARS = Counter("ts_engine_bars_total", "Bars and ticks the engine handled (not counting rebuild replays).")
SIGNALS = Counter(
    "ts_engine_signals_total", "Signals the engine stored and published (redeliveries included)."
)
OUTCOMES = Counter("ts_engine_outcomes_total", "Signal closes the engine wrote, by outcome.", ["outcome"])
REBUILDS = Counter(
    "ts_engine_partition_rebuilds_total", "Partitions whose state was rebuilt after being gained (ADR 0015)."
)
REBUILD_REPLAYED = Counter(
    "ts_engine_rebuild_replayed_total", "Messages replayed from partition history to rebuild state."
)
INGEST_PUBLISHED = Counter(
    "ts_ingest_published_total", "Market events the ingest role published to the bus.", ["topic"]
)
INGEST_RESUMED = Counter(
    "ts_ingest_resume_skipped_total",
    "Feed events not published again at a restart because an earlier run had published them.",
)
INGEST_BACKLOG = Gauge("ts_ingest_backlog", "Validated events waiting to be published (bounded).")
RECORDED = Counter("ts_recorder_bars_total", "Bars the recorder upserted into the history store.")
