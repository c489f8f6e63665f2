"""The S&P 500 daily file's known spin-offs, share-class split and one-day glitches are flagged, and the
dataset builder keeps them out of labels and feature warm-up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradesignals.domain.bar_quality import QualityReason as R
from tradesignals.marketdata.corporate_actions import detect_corporate_actions
from tradesignals.marketdata.ohlcv_file import read_ohlcv

pytestmark = pytest.mark.realdata

SP500 = "sp500_daily_2013-2018.csv.gz"
# Issue 9's list: spin-offs (PayPal from EBAY, Columbia Pipeline from NI, Baxalta from BAX), the
# Discovery class-C share dividend, and the vendor's one-day glitch of 2017-09-14.
KNOWN = {
    ("EBAY", "2015-07-20"): R.LEVEL_DROP,
    ("NI", "2015-07-02"): R.LEVEL_DROP,
    ("BAX", "2015-07-01"): R.LEVEL_DROP,
    ("DISCA", "2014-08-07"): R.SPLIT_RATIO,
    ("DISCK", "2014-08-07"): R.SPLIT_RATIO,
    ("NWL", "2017-09-14"): R.REVERSED_JUMP,
    ("MRO", "2017-09-14"): R.REVERSED_JUMP,
}


@pytest.fixture(scope="module")
def sp500(data_dir: Path) -> pd.DataFrame:
    return read_ohlcv(data_dir / SP500)


def test_known_corporate_actions_and_glitches_are_flagged_and_flags_are_rare(sp500: pd.DataFrame) -> None:
    flags = detect_corporate_actions(sp500)
    day = pd.to_datetime(sp500["ts"]).dt.strftime("%Y-%m-%d")
    got = {(s, d): r for s, d, r in zip(sp500["symbol"], day, flags.reasons(), strict=True) if r is not None}
    assert {k: got.get(k) for k in KNOWN} == KNOWN
    # The day after a glitch is its undoing, not a second flag.
    assert ("NWL", "2017-09-15") not in got and ("MRO", "2017-09-15") not in got
    counts = flags.counts()
    assert sum(counts.values()) == int(flags.mask.sum()) == len(got)
    assert len(got) < len(sp500) / 5_000  # a handful per year across 505 symbols, not noise


def test_dataset_gives_no_label_whose_window_holds_a_flagged_bar(sp500: pd.DataFrame) -> None:
    from tradesignals.models.dataset import build_dataset

    symbols = ["EBAY", "NI", "BAX", "NWL", "MRO", "AAPL"]
    bars = sp500.loc[sp500["symbol"].isin(symbols)].reset_index(drop=True)
    ds = build_dataset(bars)
    assert ds.counts["flagged_bars"] == 5  # EBAY, NI, BAX, NWL, MRO: AAPL has none

    horizon = ds.spec.plan.swing_sessions
    for (sym, date), _ in KNOWN.items():
        if sym not in symbols:
            continue
        rows = bars.loc[bars["symbol"] == sym].sort_values("ts")
        pos = int(np.flatnonzero(pd.to_datetime(rows["ts"]).dt.strftime("%Y-%m-%d").to_numpy() == date)[0])
        # Rows whose label window (own bar + horizon) or warm-up (34 bars after) holds the flag.
        blocked = rows["ts"].to_numpy()[max(pos - horizon, 0) : pos + 34]
        kept = ds.frame.loc[ds.frame["symbol"] == sym, "ts"].to_numpy()
        assert not np.isin(blocked, kept).any(), (sym, date)
        assert np.isin(rows["ts"].to_numpy()[pos + 40 : pos + 60], kept).any(), (sym, date)  # warm again
    # The −57 % "stop" EBAY never had is gone from its labels.
    assert ds.frame.loc[ds.frame["symbol"] == "EBAY", "ret"].min() > -0.2
