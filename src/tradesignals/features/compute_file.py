"""``tradesignals features PATH --out OUT.parquet``: the batch feature table for one OHLCV file.

The CLI only parses arguments and prints the summary; everything it promises lives here so that
tests, notebooks and the training pipeline produce the very same table. The columns are a contract
(docs and downstream readers rely on them): ``timestamp`` (UTC), ``symbol``, then the features in
``FEATURE_NAMES`` order (the first fifteen are the issue's named ones), then ``warm``. One row per
symbol and bar of the input, sorted by symbol and time.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tradesignals.domain.market import AssetClass, Timeframe
from tradesignals.features.batch import compute_features
from tradesignals.features.incremental import FEATURE_NAMES, CalendarChoice
from tradesignals.marketdata.ohlcv_file import PriceChoice, infer_timeframe, read_ohlcv
from tradesignals.marketdata.session_fit import check_session_fit

CONTRACT_COLUMNS = (
    "sma_20",
    "ema_20",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "atr_14",
    "adx_14",
    "obv",
    "ret_1",
    "ret_5",
    "ret_20",
)
"""Feature columns other parts depend on by name; ``FEATURE_NAMES`` starts with them, in this order."""

OUTPUT_COLUMNS = ("timestamp", "symbol", *FEATURE_NAMES, "warm")


@dataclass(frozen=True, slots=True)
class FeatureFileSummary:
    """What was computed, for the CLI to print: counts a person can sanity-check at a glance."""

    source: str
    out: str
    rows: int
    symbols: int
    features: int
    timeframe: str
    timeframe_inferred: bool
    prices: str
    warm_rows: int
    bad_rows: int
    empty_rows: int
    ignored_rows: int
    first: str | None
    last: str | None
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def compute_features_file(
    path: str | Path,
    out_path: str | Path,
    *,
    tz: str | None = None,
    timeframe: Timeframe | None = None,
    calendar: CalendarChoice | None = None,
    prices: PriceChoice | None = None,
    asset_class: AssetClass | None = None,
) -> FeatureFileSummary:
    """Read ``path`` (any file ``ingest`` reads), compute the features, write Parquet to ``out_path``.

    ``tz`` is the zone of naive timestamps (``read_ohlcv``): an intraday equity file in New York
    wall time needs ``America/New_York`` or its bars fall outside the exchange's sessions and the
    session features cannot warm; such a file is refused with a one-line ``FeedError`` naming
    ``--tz`` (``session_fit``). ``prices``: ``read_ohlcv``'s (adjusted when the file has an
    adjusted close, unless ``raw``). ``timeframe`` defaults to the one the bar spacing shows (daily if
    it shows none). ``asset_class`` declares the class of every symbol in the file (and so its
    calendar) where the symbols' spelling cannot tell (see ``batch.compute_features``). The file is
    written to a temporary name and renamed, so a failed run never
    leaves a half table behind. Raises ``FeedError`` when the input cannot be read.
    """
    started = time.perf_counter()
    src, dst = Path(path), Path(out_path)
    df = read_ohlcv(src, tz=tz, prices=prices)
    inferred = infer_timeframe(df) if timeframe is None else None
    tf = timeframe or inferred or Timeframe.D1
    check_session_fit(df, tf, source=str(src))
    feats = compute_features(df, timeframe=tf, calendar=calendar, asset_class=asset_class)

    table = pd.DataFrame({"timestamp": pd.to_datetime(feats["ts"].to_numpy(), unit="ns", utc=True)})
    table["symbol"] = feats["symbol"].to_numpy()
    table = pd.concat([table, feats[list(FEATURE_NAMES)].reset_index(drop=True)], axis=1)
    table["warm"] = feats["warm"].to_numpy()
    table = table.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        table.to_parquet(tmp, index=False)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)

    status = feats["status"].value_counts()
    ts = table["timestamp"]
    return FeatureFileSummary(
        source=str(src),
        out=str(dst),
        rows=len(table),
        symbols=int(table["symbol"].nunique()),
        features=len(FEATURE_NAMES),
        timeframe=tf.value,
        timeframe_inferred=timeframe is None and inferred is not None,
        prices=str(df.attrs.get("prices", "raw")),
        warm_rows=int(table["warm"].sum()),
        bad_rows=int(status.get("bad", 0)),
        empty_rows=int(status.get("empty", 0)),
        ignored_rows=int(status.get("ignored", 0)),
        first=ts.min().isoformat() if len(ts) else None,
        last=ts.max().isoformat() if len(ts) else None,
        seconds=round(time.perf_counter() - started, 3),
    )
