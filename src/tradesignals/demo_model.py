"""A first model for a fresh demo: trained at start on simulated history when none is registered.

The demo must show the whole path (features → calibrated ensemble → signal) on a laptop with no
data, so it trains the real pipeline — purged walk-forward, out-of-fold calibration, registry —
on bars from the simulator, with a smaller configuration so that it finishes in seconds. The
simulator is a random walk with regimes and jumps: expect no edge, and confidences near the base
rate. The model says so in its metadata (``symbols`` are the SIM names; training data "simulated").
"""

from __future__ import annotations

import time

import pandas as pd
import structlog

from tradesignals.config import Settings
from tradesignals.domain.market import Bar, Timeframe
from tradesignals.domain.signals import SignalType
from tradesignals.engine.recorder import bars_frame
from tradesignals.marketdata.feeds.simulator import SimulatorFeed
from tradesignals.models.dataset import build_dataset
from tradesignals.models.registry import ModelRegistry
from tradesignals.models.train import TrainConfig, train_dataset

log = structlog.get_logger(__name__)

# One thread: the demo trains beside its own server, feed and engine on a laptop's shared cores, where
# OpenMP threads that spin on a busy core made training 3x slower (40 s against 12 s, measured).
DEMO_CONFIG = TrainConfig(
    n_splits=3, max_rounds=120, early_stopping_rounds=20, fallback_rounds=40, num_threads=1
)


def simulated_history(settings: Settings, timeframe: Timeframe, bars_per_symbol: int) -> pd.DataFrame:
    """Unpaced simulator bars with a seed of their own, so training never sees the live stream."""
    feed = SimulatorFeed(
        settings.sim_symbols,
        seed=settings.sim_seed + 10_000,
        speed=float("inf"),
        timeframe=timeframe,
        emit="bars",
        asset_class="mix",
    )
    rows: list[Bar] = feed.history(bars_per_symbol)
    return bars_frame(rows)


def ensure_demo_model(
    settings: Settings, timeframe: Timeframe, name: str, bars_per_symbol: int = 1500
) -> bool:
    """Train and register ``name`` unless it exists; True when a model was trained now."""
    registry = ModelRegistry.at_home(settings.home)
    if registry.latest_version(name) is not None:
        return False
    t0 = time.perf_counter()
    bars = simulated_history(settings, timeframe, bars_per_symbol)
    kind = SignalType.SWING if timeframe is Timeframe.D1 else SignalType.DAY
    ds = build_dataset(bars, signal_type=kind)
    result = train_dataset(ds, registry, name=name, config=DEMO_CONFIG)
    log.info(
        "demo.model_trained",
        model=f"{result.name}:{result.version}",
        rows=len(ds),
        oof_auc=result.metrics.get("auc"),
        seconds=round(time.perf_counter() - t0, 1),
    )
    return True
