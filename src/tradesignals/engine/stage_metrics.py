"""Latency by engine stage, as Prometheus histograms (exposed at ``/metrics``).

Buckets run from 5 µs to 1 s so that both the in-process budgets (features ≤ 1 ms, inference
≤ 100 µs, tick → signal ≤ 10 ms) and a slow database write land in a bucket of their own.
Observing costs about a microsecond, so it stays on the hot path.
"""

from __future__ import annotations

from prometheus_client import Histogram

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
