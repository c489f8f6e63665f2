"""Features: the same indicator set streamed bar by bar (live, replay) and computed in batch (training).

- ``incremental``: ``FeatureEngine`` (one symbol per call, microseconds), ``FeaturePanel`` (every
  symbol of a time step in one call, for throughput), ``FEATURE_NAMES``.
- ``batch``: ``compute_features`` over an OHLCV frame; equal to the streaming values once warm.
- ``compute_file``: the ``tradesignals features`` command's table.
- ``catalog`` / ``store``: versioned feature sets and the point-in-time store.

The names below load on first use: importing TA-Lib takes about a second, which the catalog, the
store and the API's start-up should not pay for features they never compute.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tradesignals.features.batch import compute_features
    from tradesignals.features.incremental import (
        FEATURE_NAMES,
        N_FEATURES,
        WARMUP_BARS,
        FeatureEngine,
        FeaturePanel,
        FeatureVector,
    )

_HOME = {
    "FEATURE_NAMES": "incremental",
    "N_FEATURES": "incremental",
    "WARMUP_BARS": "incremental",
    "FeatureEngine": "incremental",
    "FeaturePanel": "incremental",
    "FeatureVector": "incremental",
    "compute_features": "batch",
}

__all__ = [
    "FEATURE_NAMES",
    "N_FEATURES",
    "WARMUP_BARS",
    "FeatureEngine",
    "FeaturePanel",
    "FeatureVector",
    "compute_features",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
