"""Parity with TA-Lib on the real S&P 500 daily file, and streaming == batch on every real market.

The streaming engine steps TA-Lib's ``talib.stream`` handles and the batch tier calls its Function
API, so on a clean history both equal TA-Lib from its first value: TA-Lib's unstable period never
comes into it, because ours and TA-Lib's series start on the same bar. They part on purpose where
the history is not clean: a bad bar or missing sessions restart our features (TA-Lib runs straight
through a hole, and carries a NaN forward for ever). The last tests pin that difference down: after
a restart we equal TA-Lib run on the history since the restart, and, where TA-Lib's own value
survives, we converge to it once the restart has passed through TA-Lib's unstable period.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import talib

from tradesignals.domain.market import AssetClass, Timeframe
from tradesignals.features import FEATURE_NAMES, FeatureEngine, FeaturePanel
from tradesignals.features.batch import compute_features
from tradesignals.features.incremental import FEATURE_INDEX
from tradesignals.marketdata.calendar import AlwaysOpen
from tradesignals.marketdata.ohlcv_file import read_ohlcv

pytestmark = pytest.mark.realdata

SP500 = "sp500_daily_2013-2018.csv.gz"
SAMPLE = 50
SMA: Any = vars(talib)["MA_Type"].SMA  # TA-Lib's stubs omit the MA_Type export

Arrays = dict[str, np.ndarray]

# Our column -> TA-Lib's function on the same bars (default parameters spelled out).
TALIB: dict[str, Callable[[Arrays], np.ndarray]] = {
    "sma_20": lambda a: talib.SMA(a["close"], 20),
    "ema_20": lambda a: talib.EMA(a["close"], 20),
    "rsi_14": lambda a: talib.RSI(a["close"], 14),
    "macd": lambda a: talib.MACD(a["close"], 12, 26, 9)[0],
    "macd_signal": lambda a: talib.MACD(a["close"], 12, 26, 9)[1],
    "macd_hist": lambda a: talib.MACD(a["close"], 12, 26, 9)[2],
    "bb_upper": lambda a: talib.BBANDS(a["close"], 20, 2.0, 2.0, SMA)[0],
    "bb_middle": lambda a: talib.BBANDS(a["close"], 20, 2.0, 2.0, SMA)[1],
    "bb_lower": lambda a: talib.BBANDS(a["close"], 20, 2.0, 2.0, SMA)[2],
    "atr_14": lambda a: talib.ATR(a["high"], a["low"], a["close"], 14),
    "adx_14": lambda a: talib.ADX(a["high"], a["low"], a["close"], 14),
    "stoch_k": lambda a: talib.STOCH(a["high"], a["low"], a["close"], 14, 3, SMA, 3, SMA)[0],
    "stoch_d": lambda a: talib.STOCH(a["high"], a["low"], a["close"], 14, 3, SMA, 3, SMA)[1],
    "obv": lambda a: talib.OBV(a["close"], a["volume"]),
}


def arrays(sub: pd.DataFrame) -> Arrays:
    return {c: sub[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume")}


def stream(sub: pd.DataFrame, engine: FeatureEngine) -> np.ndarray:
    sym = str(sub["symbol"].iloc[0])
    rows = zip(
        sub["ts"].tolist(),
        *(sub[c].tolist() for c in ("open", "high", "low", "close", "volume")),
        strict=True,
    )
    return np.array([engine.update_values(sym, *r).values for r in rows])


def agree(ours: np.ndarray, theirs: np.ndarray, tol: float = 1e-8) -> None:
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol, equal_nan=True)


@pytest.fixture(scope="module")
def sp500(data_dir: Path) -> pd.DataFrame:
    return read_ohlcv(data_dir / SP500)


@pytest.fixture(scope="module")
def sample(sp500: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Fifty symbols with every session, no NaN and no empty day, spread over the alphabet."""
    by = {str(s): g.reset_index(drop=True) for s, g in sp500.groupby("symbol", sort=True)}
    clean = [s for s, g in by.items() if len(g) == 1259 and g.notna().all().all() and (g["volume"] > 0).all()]
    assert len(clean) >= 400
    step = len(clean) // SAMPLE
    return {s: by[s] for s in clean[::step][:SAMPLE]}


@pytest.fixture(scope="module")
def streamed(sample: dict[str, pd.DataFrame]) -> dict[str, np.ndarray]:
    engine = FeatureEngine(Timeframe.D1)  # default calendars: the NYSE for these names
    out = {s: stream(g, engine) for s, g in sample.items()}
    assert engine.counts.gaps == engine.counts.bad == 0
    return out


@pytest.mark.parametrize("name", list(TALIB))
def test_streaming_equals_talib_functions(
    name: str, sample: dict[str, pd.DataFrame], streamed: dict[str, np.ndarray]
) -> None:
    for sym, sub in sample.items():
        ours = streamed[sym][:, FEATURE_INDEX[name]]
        agree(ours, TALIB[name](arrays(sub)))


def test_batch_equals_talib_functions_and_streaming(
    sample: dict[str, pd.DataFrame], streamed: dict[str, np.ndarray]
) -> None:
    df = pd.concat(sample.values(), ignore_index=True)
    batch = compute_features(df)
    for sym, sub in sample.items():
        got = batch.loc[batch["symbol"] == sym, list(FEATURE_NAMES)].to_numpy()
        agree(got, streamed[sym], tol=1e-9)
        for name, fn in TALIB.items():
            agree(got[:, FEATURE_INDEX[name]], fn(arrays(sub)))


def test_panel_equals_batch_over_the_sample(sample: dict[str, pd.DataFrame]) -> None:
    df = pd.concat(sample.values(), ignore_index=True).sort_values(["ts", "symbol"], ignore_index=True)
    panel = FeaturePanel(Timeframe.D1)
    slots = panel.slots(df["symbol"].tolist())
    values = np.full((len(df), len(FEATURE_NAMES)), np.nan)
    warm = np.zeros(len(df), dtype=bool)
    cols = [df[c].to_numpy() for c in ("open", "high", "low", "close", "volume")]
    ts = df["ts"].to_numpy()
    for rows in np.split(np.arange(len(df)), np.flatnonzero(np.diff(ts)) + 1):
        step = panel.update(slots[rows], int(ts[rows[0]]), *(c[rows] for c in cols))
        values[rows], warm[rows] = step.values, step.warm
    batch = compute_features(df)
    agree(values, batch[list(FEATURE_NAMES)].to_numpy(), tol=1e-9)
    np.testing.assert_array_equal(warm, batch["warm"].to_numpy())


# -- where we differ from TA-Lib on purpose ------------------------------------------------------


def test_a_bad_bar_restarts_where_talib_carries_nan_or_runs_on(sp500: pd.DataFrame) -> None:
    """REGN 2015-06-09 has no open/high/low (the close is there).

    TA-Lib's ATR goes NaN at that bar and stays NaN for the rest of the file; ours restarts there
    and equals TA-Lib run on the bars after it. Close-only indicators (RSI, EMA, MACD) survive in
    TA-Lib; ours restart as well, and agree with TA-Lib's full-history values once the restart has
    faded (their unstable period: ~300 bars for RSI(14) and MACD(26) to reach 1e-8).
    """
    sub = sp500[sp500["symbol"] == "REGN"].reset_index(drop=True)
    bad = int(np.flatnonzero(sub["high"].isna().to_numpy())[0])
    engine = FeatureEngine(Timeframe.D1)
    ours = stream(sub, engine)
    assert engine.counts.bad == 1 and np.isnan(ours[bad]).all()

    full, after = arrays(sub), arrays(sub.iloc[bad + 1 :])
    talib_atr = TALIB["atr_14"](full)
    assert np.isfinite(talib_atr[bad - 1]) and np.isnan(talib_atr[bad:]).all()
    for name in ("atr_14", "adx_14", "rsi_14", "ema_20", "macd", "stoch_k", "sma_20", "obv"):
        agree(ours[bad + 1 :, FEATURE_INDEX[name]], TALIB[name](after))

    settled = slice(bad + 1 + 350, None)
    for name in ("rsi_14", "ema_20", "macd", "macd_signal", "sma_20"):
        theirs = TALIB[name](full)
        assert np.isfinite(theirs[bad + 1 :]).all()
        early = np.abs(ours[bad + 1 + 40, FEATURE_INDEX[name]] - theirs[bad + 1 + 40])
        assert early > 1e-6 or name == "sma_20"  # a window of 20 forgets the restart at once
        agree(ours[settled, FEATURE_INDEX[name]], theirs[settled])


@pytest.mark.parametrize(("symbol", "restarts"), [("BMY", 2), ("ORCL", 1)])
def test_missing_sessions_restart_where_talib_runs_through(
    sp500: pd.DataFrame, symbol: str, restarts: int
) -> None:
    """BMY lacks 2013-04-26 and 2013-06-07, ORCL 2013-07-15/16: TA-Lib treats the bars as adjacent."""
    sub = sp500[sp500["symbol"] == symbol].reset_index(drop=True)
    engine = FeatureEngine(Timeframe.D1)
    ours = stream(sub, engine)
    assert engine.counts.gaps == restarts
    sessions = np.unique(sp500["ts"].to_numpy())  # every session some symbol traded
    skipped = np.flatnonzero(np.diff(np.searchsorted(sessions, sub["ts"].to_numpy())) > 1) + 1
    assert len(skipped) == restarts
    hole = int(skipped[-1])  # the first bar after the last hole
    after = arrays(sub.iloc[hole:])
    for name in ("rsi_14", "atr_14", "adx_14", "macd", "bb_upper"):
        agree(ours[hole:, FEATURE_INDEX[name]], TALIB[name](after))
        assert np.isfinite(TALIB[name](arrays(sub))[hole : hole + 20]).all()  # TA-Lib never noticed
    assert np.isnan(ours[hole : hole + 14, FEATURE_INDEX["rsi_14"]]).all()


# -- streaming == batch on the other real markets ------------------------------------------------


def streaming_equals_batch(df: pd.DataFrame, engine: FeatureEngine, **batch_kw: object) -> pd.DataFrame:
    batch = compute_features(df, **batch_kw)  # type: ignore[arg-type]
    for _sym, sub in df.groupby("symbol", sort=False):
        agree(stream(sub, engine), batch.loc[sub.index, list(FEATURE_NAMES)].to_numpy(), tol=1e-9)
    return batch


def test_crypto_minutes_with_empty_bars(data_dir: Path) -> None:
    df = read_ohlcv(data_dir / "crypto_btcusdt_1m_binanceus_20230301-20230321.csv.gz")
    engine = FeatureEngine(Timeframe.M1, calendar=AlwaysOpen())
    # The file has no symbol column (its rows are named after the file): it declares its class.
    batch = streaming_equals_batch(df, engine, asset_class=AssetClass.CRYPTO)
    assert engine.counts.empty == (df["volume"] == 0).sum() == 658
    assert engine.counts.gaps == 0
    assert batch["warm"].mean() > 0.9  # every UTC day after the first, bar the empty minutes


def test_crypto_hours(data_dir: Path) -> None:
    df = read_ohlcv(data_dir / "crypto_1h_binance_20240416-20260416.csv.gz")
    df = df[df["ts"] < df["ts"].iloc[0] + 200 * 86_400 * 10**9]  # 200 days of six pairs
    engine = FeatureEngine(Timeframe.H1)  # BTCUSDT, ETHUSDT, ...: 24/7 by name
    batch = streaming_equals_batch(df, engine)
    assert engine.counts.gaps == 0 and batch["warm"].mean() > 0.99


def test_index_minutes_on_the_exchange_calendar(data_dir: Path) -> None:
    df = read_ohlcv(data_dir / "intraday" / "SP500_NOV2019_IDayRVol.csv", tz="America/New_York")
    engine = FeatureEngine(Timeframe.M1)
    batch = streaming_equals_batch(df, engine)
    assert engine.counts.gaps == 0  # overnight holes and the 16:00 closing-print bars are expected
    day = pd.to_datetime(df["ts"], unit="ns", utc=True).dt.tz_convert("America/New_York").dt.date
    assert batch.groupby(day.to_numpy())["warm"].mean().round(3).tolist() == [0.0, 1.0, 1.0, 1.0]
