"""Labels on real, quirky vendor data (the S&P 500 daily file): the label IS the lifecycle's outcome.

The property test (``tests/unit/models/test_labels_lifecycle.py``) proves it on random paths; here the
same comparison runs on real bars — real gaps, holidays, half days, missing sessions — for a sample
of symbols over two years, both directions, with the real calendar and the default cost schedule.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradesignals.domain.market import Bar, Timeframe, to_ns
from tradesignals.domain.signals import Direction
from tradesignals.engine.decide import build_signal
from tradesignals.engine.lifecycle import LifecycleTracker
from tradesignals.marketdata.calendar import calendar_for
from tradesignals.marketdata.ohlcv_file import read_ohlcv
from tradesignals.models.labels import LabelSpec, outcome_counts, triple_barrier_labels

pytestmark = pytest.mark.realdata

SP500 = "sp500_daily_2013-2018.csv.gz"
SAMPLE = ("AAPL", "EBAY", "NWL", "MRO", "XOM", "GOOGL", "BAX", "NFLX")


def mean_true_range(bars: pd.DataFrame, period: int = 14) -> np.ndarray:
    """A plain rolling-mean ATR per symbol: the labels only need *an* ATR, aligned with the rows."""
    prev_close = bars.groupby("symbol", sort=False)["close"].shift()
    high = pd.concat([bars["high"], prev_close], axis=1).max(axis=1)
    low = pd.concat([bars["low"], prev_close], axis=1).min(axis=1)
    atr = (high - low).groupby(bars["symbol"], sort=False).transform(lambda s: s.rolling(period).mean())
    return atr.to_numpy(dtype=np.float64)


@pytest.fixture(scope="module")
def sp500(data_dir: Path) -> pd.DataFrame:
    bars = read_ohlcv(data_dir / SP500)
    bars = bars[bars["symbol"].isin(SAMPLE)].sort_values(["symbol", "ts"]).reset_index(drop=True)
    bars["atr"] = mean_true_range(bars)
    return bars


@pytest.mark.parametrize("direction", list(Direction))
def test_every_label_is_the_lifecycle_outcome_on_real_bars(sp500: pd.DataFrame, direction: Direction) -> None:
    spec = LabelSpec()
    labels = triple_barrier_labels(sp500, "atr", direction=direction, spec=spec, calendar=calendar_for)
    compared = 0
    lo, hi = pd.Timestamp("2016-01-01").value, pd.Timestamp("2018-01-01").value
    for _symbol, rows in sp500.groupby("symbol", sort=False):
        bars = [
            Bar(r.symbol, Timeframe.D1, int(r.ts), r.open, r.high, r.low, r.close, r.volume)
            for r in rows.itertuples()
        ]
        for i, (idx, bar) in enumerate(zip(rows.index, bars, strict=True)):
            if not lo <= bar.ts < hi:
                continue
            lab = labels.loc[idx]
            sig = build_signal(
                bar, direction, 0.5, float(rows.at[idx, "atr"]), "m", plan=spec.plan, calendar=calendar_for
            )
            if sig is None:
                assert pd.isna(lab["outcome"])
                continue
            tracker = LifecycleTracker(costs=spec.costs, calendar=calendar_for)
            tracker.add(sig)
            out = None
            for later in bars[i + 1 :]:
                done = tracker.on_bar(later)
                if done:
                    out = done[0]
                    break
            if out is None:
                assert pd.isna(lab["label"])
                continue
            compared += 1
            assert lab["outcome"] == out.outcome.value, (bar, lab, out)
            if out.filled:
                assert lab["fill_price"] == out.fill_price and lab["exit_price"] == out.exit_price
                assert lab["net_r"] == pytest.approx(out.net_r, rel=1e-12, abs=1e-12)
                assert lab["label"] == float(out.win)
                assert int(lab["t_end"]) <= to_ns(out.closed_at)
                # Filled inside the range of a bar after the decision, never at the deciding close.
                assert out.filled_at is not None and out.filled_at > sig.created_at
            else:
                assert np.isnan(lab["label"])
    assert compared > 3_000
    counts = outcome_counts(labels)
    assert all(counts[k] > 0 for k in ("target", "stop", "expired", "not_filled")), counts
