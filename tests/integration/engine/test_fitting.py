"""``engine.fitting``: the deciding bar check the image and push workers wait on (Parquet bar store)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from tradesignals.domain.market import Timeframe, to_ns
from tradesignals.domain.signals import Direction, Signal, SignalType
from tradesignals.engine.fitting import deciding_bar_stored, wait_for_deciding_bar
from tradesignals.storage.timeseries_parquet import ParquetBarStore

T = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def signal() -> Signal:
    return Signal(
        id="0123456789abcdef012345",
        symbol="X",
        type=SignalType.DAY,
        direction=Direction.LONG,
        entry=10.0,
        stop=9.0,
        targets=(11.0,),
        confidence=0.5,
        created_at=T,
        expires_at=T + timedelta(hours=3),
        model_version="m",
        decided_at=T,
        timeframe="1m",
    )


def bar(ts: datetime) -> pd.DataFrame:
    frame = pd.DataFrame(
        [(to_ns(ts), "X", 10.0, 10.0, 10.0, 10.0, 1.0)],
        columns=["ts", "symbol", "open", "high", "low", "close", "volume"],
    )
    frame["ts"] = frame["ts"].astype(np.int64)
    return frame


def test_the_deciding_bar_is_the_one_opened_within_a_bar_before_the_decision(tmp_path: Path) -> None:
    store = ParquetBarStore(tmp_path / "lake")
    try:
        store.upsert(Timeframe.M1, bar(T - timedelta(minutes=2)))
        assert not deciding_bar_stored(store, signal())
        assert asyncio.run(wait_for_deciding_bar(store, signal(), 0.3)) is False
        store.upsert(Timeframe.M1, bar(T))  # opened at the decision: a later bar, not the deciding one
        assert not deciding_bar_stored(store, signal())
        store.upsert(Timeframe.M1, bar(T - timedelta(minutes=1)))
        assert deciding_bar_stored(store, signal())
        assert asyncio.run(wait_for_deciding_bar(store, signal(), 0.0)) is True
    finally:
        store.close()
