"""Label the whole S&P 500 daily file: structural facts that must hold on real, quirky vendor data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradesignals.domain.signals import Direction
from tradesignals.marketdata.ohlcv_file import read_ohlcv
from tradesignals.models.labels import BarrierParams, outcome_counts, triple_barrier_labels

pytestmark = pytest.mark.realdata

SP500 = "sp500_daily_2013-2018.csv.gz"
HORIZON = BarrierParams().horizon_bars


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
    bars["atr"] = mean_true_range(bars)
    return bars


@pytest.fixture(scope="module")
def labels(sp500: pd.DataFrame) -> dict[Direction, pd.DataFrame]:
    return {d: triple_barrier_labels(sp500, direction=d) for d in Direction}


def test_every_label_is_well_formed(sp500: pd.DataFrame, labels: dict[Direction, pd.DataFrame]) -> None:
    for direction, out in labels.items():
        assert out.index.equals(sp500.index)
        done = out["label"].notna()
        n = int(done.sum())
        assert 0 < n < len(sp500)
        assert sum(outcome_counts(out).values()) == n
        assert set(out.loc[done, "label"].unique()) <= {0.0, 1.0}
        assert (out.loc[done, "label"] == 1.0).equals(out.loc[done, "outcome"] == "target"), direction
        t_end = out.loc[done, "t_end"].to_numpy(np.int64)
        assert (t_end > sp500.loc[done, "ts"].to_numpy()).all()
        w = out.loc[done, "weight"]
        assert ((w > 0) & (w <= 1)).all()
        assert out.loc[~done, ["outcome", "t_end", "exit_price", "ret", "weight"]].isna().all().all()


def test_exits_respect_the_barriers(sp500: pd.DataFrame, labels: dict[Direction, pd.DataFrame]) -> None:
    params = BarrierParams()
    for direction, out in labels.items():
        s = direction.sign
        entry, atr = sp500["close"], sp500["atr"]
        target = entry + s * params.target_atr * atr
        stop = entry - s * params.stop_atr * atr
        hit_target = out["outcome"] == "target"
        hit_stop = out["outcome"] == "stop"
        eps = 1e-9 * entry
        # A gap can only fill *beyond* a barrier, never short of it.
        assert (s * (out["exit_price"] - target) >= -eps)[hit_target].all()
        assert (s * (stop - out["exit_price"]) >= -eps)[hit_stop].all()
        assert (out["ret"] > 0)[hit_target].all() and (out["ret"] < 0)[hit_stop].all()


def test_t_end_is_a_later_bar_of_the_same_symbol_within_the_horizon(
    sp500: pd.DataFrame, labels: dict[Direction, pd.DataFrame]
) -> None:
    position = sp500.assign(pos=sp500.groupby("symbol", sort=False).cumcount())[["symbol", "ts", "pos"]]
    for out in labels.values():
        done = out["label"].notna()
        start = position[done]
        ends = pd.DataFrame({"symbol": start["symbol"], "ts": out.loc[done, "t_end"].astype("int64")})
        end_pos = ends.merge(position, on=["symbol", "ts"], how="left")["pos"].to_numpy()
        assert not np.isnan(end_pos).any()  # every t_end is the time of a bar of the same symbol
        held = end_pos - start["pos"].to_numpy()
        assert ((held >= 1) & (held <= HORIZON)).all()
        assert (held == HORIZON)[(out.loc[done, "outcome"] == "timeout").to_numpy()].all()


def test_every_observable_entry_gets_a_label(
    sp500: pd.DataFrame, labels: dict[Direction, pd.DataFrame]
) -> None:
    """Labels are missing only where the rules say: no ATR, a window past the data, a hole in it."""
    g = sp500.groupby("symbol", sort=False)
    later_bars = g.cumcount(ascending=False)
    hole = sp500[["open", "high", "low", "close"]].isna().any(axis=1)
    hole_ahead = pd.concat(
        [
            hole.groupby(sp500["symbol"], sort=False).shift(-k, fill_value=False)
            for k in range(1, HORIZON + 1)
        ],
        axis=1,
    ).any(axis=1)
    observable = (
        np.isfinite(sp500["atr"]) & (sp500["atr"] > 0) & sp500["close"].notna() & (later_bars >= HORIZON)
    )
    for out in labels.values():
        done = out["label"].notna()
        assert done[observable & ~hole_ahead].all()
        assert not done[~np.isfinite(sp500["atr"])].any()
        # Near the data end only a barrier hit is a label: a time-out there could not be observed.
        assert (out["outcome"] != "timeout")[later_bars < HORIZON].all()


def test_equal_barriers_resolve_long_and_short_on_the_same_bar(
    sp500: pd.DataFrame, labels: dict[Direction, pd.DataFrame]
) -> None:
    """With target and stop both 1.5 ATR away, a long's target is the short's stop and vice versa."""
    long_, short = labels[Direction.LONG], labels[Direction.SHORT]
    params = BarrierParams()
    assert params.target_atr == params.stop_atr
    pd.testing.assert_series_equal(long_["t_end"], short["t_end"])
    pd.testing.assert_series_equal(long_["weight"], short["weight"])
    assert ((long_["outcome"] == "timeout") == (short["outcome"] == "timeout")).all()
    assert not ((long_["outcome"] == "target") & (short["outcome"] == "target")).any()
    # Both lose only on a bar that touched both levels without gapping through either: the
    # conservative rule, applied to each side.
    both_stopped = (long_["outcome"] == "stop") & (short["outcome"] == "stop")
    entry = sp500["close"][both_stopped]
    reach = params.stop_atr * sp500["atr"][both_stopped]
    ends = pd.DataFrame({"symbol": sp500["symbol"][both_stopped], "ts": long_["t_end"][both_stopped]})
    bar = ends.astype({"ts": "int64"}).merge(sp500, on=["symbol", "ts"], how="left")
    assert len(bar) == len(ends) and bar["high"].notna().all()
    upper, lower = (entry + reach).to_numpy(), (entry - reach).to_numpy()
    assert (bar["high"].to_numpy() >= upper).all() and (bar["low"].to_numpy() <= lower).all()
    assert ((bar["open"].to_numpy() > lower) & (bar["open"].to_numpy() < upper)).all()
