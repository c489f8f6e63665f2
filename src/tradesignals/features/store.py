"""The feature store contract: online (the latest vector per symbol) and offline (history, as-of joins).

Two times on every row
----------------------
Each feature row carries ``ts``, the open time of the bar it describes (as ``Bar.ts``), and
``available_at``, the moment its values became known: the bar's end at the earliest, because an
SMA over a bar needs the bar's close. A daily bar opened at 00:00 has features that are not known
until the session closes, hours later — joining on ``ts`` would let a training row at 10:00 see
that day's close, which is exactly the lookahead that makes a backtest lie. So every point-in-time
join in this package matches on ``available_at``, never on ``ts``.

Point-in-time join
------------------
For an event of ``symbol`` at time ``t`` (a training row, a backtest decision), the joined features
are those of the row with the largest ``ts`` among the symbol's rows with ``available_at <= t``
(inclusive: a decision taken at a bar's close may use that bar). "Largest ``ts``" rather than
"largest ``available_at``" matches what the online store serves (it keeps the newest bar and
ignores a late, older one), so training sees what live scoring would have seen. No such row, or
that row became known more than ``tolerance_ns`` before ``t`` (the freshest value is too stale;
an older bar that arrived later does not stand in for it): the features are NaN and
``feature_ts`` is null. Rows that
become known after ``t`` — new bars, revised values, late rows for old bars — cannot change the
result at ``t``; ``tests/unit/features/test_point_in_time.py`` proves it with hypothesis.

Online stores are async (they sit on the engine's and the API's event loops; Redis is a round trip);
the offline store is synchronous batch work (training, backtests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from tradesignals.domain.market import Timeframe
from tradesignals.features.catalog import FeatureSet, FeatureSetMismatch, FeatureSetRef
from tradesignals.storage.timeseries import UpsertResult, check_symbol

#: Columns of an offline feature frame ahead of the feature columns, in this order.
KEY_COLUMNS = ("ts", "available_at", "symbol")


@dataclass(frozen=True, slots=True)
class FeatureRow:
    """One symbol's feature vector for one bar, as the online store serves it.

    ``vector`` is float64 in the order of the feature set's columns and read-only: it may be the
    store's own copy, shared with other readers.
    """

    symbol: str
    ts: int
    available_at: int
    vector: np.ndarray
    ref: FeatureSetRef

    def named(self, feature_set: FeatureSet) -> dict[str, float]:
        """Column name → value, refusing a set other than the one the row was computed with."""
        if self.ref.fingerprint != feature_set.fingerprint:
            raise FeatureSetMismatch(
                f"feature row of {self.symbol} was computed with {self.ref}, not {feature_set.ref}"
            )
        return dict(zip(feature_set.columns, self.vector.tolist(), strict=True))


@dataclass(frozen=True, slots=True)
class OnlineLookup:
    """The answer to ``get_many``: what can be scored, and why the rest cannot.

    ``mismatched`` rows were written under another definition of the same set (a deployment with an
    edited set, or a leftover from one); they are reported, never served, so a model cannot score a
    vector whose columns mean something else.
    """

    rows: dict[str, FeatureRow] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    mismatched: dict[str, FeatureSetRef] = field(default_factory=dict)

    def matrix(self) -> tuple[list[str], np.ndarray]:
        """(symbols, 2-D float64 array) of the served rows, one row per symbol, for a micro-batch score."""
        symbols = list(self.rows)
        if not symbols:
            return [], np.empty((0, 0), dtype=np.float64)
        return symbols, np.vstack([self.rows[s].vector for s in symbols])


class OnlineFeatureStore(Protocol):
    """The latest feature vector per symbol for one feature set; safe to share within one event loop."""

    feature_set: FeatureSet

    async def put(
        self,
        symbol: str,
        ts_ns: int,
        vector: np.ndarray,
        feature_set_ref: FeatureSetRef,
        *,
        available_at_ns: int,
    ) -> bool:
        """Store the vector of ``symbol``'s bar opened at ``ts_ns``, known from ``available_at_ns``.

        The vector is copied (callers may reuse their buffer). Returns False, storing nothing, when
        a newer bar (larger ``ts``) of the same set is stored already — a redelivered old bar must
        not replace a newer vector. Raises ``FeatureSetMismatch`` when ``feature_set_ref`` is not
        this store's set, ``ValueError`` for a vector of the wrong length or a bad symbol.
        """
        ...

    async def put_many(self, rows: Sequence[FeatureRow]) -> int:
        """``put`` for many rows at once (one round trip where the server allows); returns how many were stored."""
        ...

    async def get(self, symbol: str) -> FeatureRow | None:
        """The latest row of ``symbol``; None when there is none.

        Raises ``FeatureSetMismatch`` when the stored row was written under another definition of
        this set: a stale vector is an error to surface, not a value to score.
        """
        ...

    async def get_many(self, symbols: Sequence[str]) -> OnlineLookup:
        """Latest rows of many symbols (one round trip where the server allows), mismatches reported."""
        ...

    async def close(self) -> None: ...


class OfflineFeatureStore(Protocol):
    """Feature history keyed by (feature set, symbol, ts); safe to share across threads."""

    def write(
        self, feature_set: FeatureSet, frame: pd.DataFrame, *, timeframe: Timeframe | None = None
    ) -> UpsertResult:
        """Insert or replace rows of ``frame`` (see ``normalize_feature_frame`` for its shape).

        Idempotent: writing the same rows again changes nothing and reports them unchanged.
        """
        ...

    def read(
        self,
        feature_set: FeatureSet,
        symbols: Sequence[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> pd.DataFrame:
        """Rows with ``start_ns <= ts < end_ns`` (bar open time), columns ``KEY_COLUMNS`` + the set's,
        sorted by symbol then ts; an empty result keeps the columns and dtypes."""
        ...

    def point_in_time_join(
        self, events: pd.DataFrame, feature_set: FeatureSet, *, tolerance_ns: int | None = None
    ) -> pd.DataFrame:
        """``events`` (columns ``symbol`` and ``ts``, the event time) with the set's columns plus
        ``feature_ts`` and ``feature_available_at`` added, as of each event's time (module docstring).

        Same rows, order and index as ``events``.
        """
        ...

    def close(self) -> None: ...


# ---- shared checks, so every implementation refuses the same input the same way -----------------


def check_put(feature_set: FeatureSet, row: FeatureRow) -> np.ndarray:
    """Validate one row for ``feature_set``; returns its vector as a private, read-only float64 copy."""
    check_symbol(row.symbol)
    if row.ref.fingerprint != feature_set.fingerprint:
        raise FeatureSetMismatch(
            f"cannot store {row.symbol} features computed with {row.ref} in a store of {feature_set.ref}"
        )
    for name, value in (("ts_ns", row.ts), ("available_at_ns", row.available_at)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"{row.symbol}: {name} must be integer nanoseconds, got {value!r}")
    if row.available_at < row.ts:
        raise ValueError(
            f"{row.symbol}: available_at {row.available_at} is before ts {row.ts}; "
            "features of a bar cannot be known before it opens"
        )
    vector = np.array(row.vector, dtype=np.float64, copy=True).reshape(-1)
    if vector.shape[0] != len(feature_set.columns):
        raise ValueError(
            f"{row.symbol}: vector has {vector.shape[0]} values, feature set {feature_set.name} "
            f"v{feature_set.version} has {len(feature_set.columns)} columns"
        )
    vector.flags.writeable = False
    return vector


def normalize_feature_frame(
    feature_set: FeatureSet, frame: pd.DataFrame, *, timeframe: Timeframe | None = None
) -> pd.DataFrame:
    """The canonical offline frame: ``ts``, ``available_at`` (int64 ns), ``symbol``, the set's columns.

    Accepts what the batch engine writes: the time as ``ts`` (int ns) or ``timestamp`` (int ns or a
    timezone-aware datetime; naive ones are refused, not guessed), then ``symbol`` and at least the
    set's columns (extra columns are ignored: a set may select from a wider table).
    ``available_at`` comes from the frame's column of that name, else is ``ts + timeframe`` — the
    bar's end, the earliest its features can be known (for daily equity bars that is the next
    midnight UTC, after the real close: late, never early). Sorted by (symbol, ts). Raises
    ``ValueError`` for missing columns, ``available_at < ts`` or a repeated (symbol, ts).
    """
    if "ts" in frame.columns:
        ts = ns_column(frame["ts"], "ts")
    elif "timestamp" in frame.columns:
        ts = ns_column(frame["timestamp"], "timestamp")
    else:
        raise ValueError("feature frame has no 'ts' or 'timestamp' column")
    if "symbol" not in frame.columns:
        raise ValueError("feature frame has no 'symbol' column")
    missing = [c for c in feature_set.columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"feature frame lacks {len(missing)} column(s) of {feature_set.name} v{feature_set.version}: "
            f"{', '.join(missing[:5])}{'…' if len(missing) > 5 else ''}"
        )
    if "available_at" in frame.columns:
        available = ns_column(frame["available_at"], "available_at")
    elif timeframe is not None:
        available = ts + Timeframe(timeframe).ns
    else:
        raise ValueError(
            "feature frame has no 'available_at' column and no timeframe was given to derive it "
            "(available_at = ts + timeframe, the bar's end)"
        )
    symbols = frame["symbol"].astype("str").to_numpy()
    out = pd.DataFrame({"ts": ts, "available_at": available, "symbol": pd.array(symbols, dtype="str")})
    for col in feature_set.columns:
        out[col] = frame[col].to_numpy(dtype=np.float64, na_value=np.nan)
    if len(out) == 0:
        return out
    for s in pd.unique(out["symbol"]):
        check_symbol(str(s))
    early = out["available_at"].to_numpy() < out["ts"].to_numpy()
    if early.any():
        i = int(np.flatnonzero(early)[0])
        raise ValueError(
            f"{out['symbol'].iat[i]}: available_at {out['available_at'].iat[i]} is before ts {out['ts'].iat[i]}"
        )
    out = out.sort_values(["symbol", "ts"], kind="stable", ignore_index=True)
    dup = out.duplicated(["symbol", "ts"]).to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise ValueError(f"feature frame has two rows for ({out['symbol'].iat[i]}, ts={out['ts'].iat[i]})")
    return out


def empty_feature_frame(feature_set: FeatureSet) -> pd.DataFrame:
    """Zero rows, canonical columns and dtypes, so callers never special-case 'none'."""
    out = pd.DataFrame(
        {
            "ts": np.empty(0, dtype=np.int64),
            "available_at": np.empty(0, dtype=np.int64),
            "symbol": pd.Series([], dtype="str"),
        }
    )
    for col in feature_set.columns:
        out[col] = np.empty(0, dtype=np.float64)
    return out


def ns_column(column: pd.Series, name: str) -> np.ndarray:
    """int64 ns from an integer column or a tz-aware datetime column; naive datetimes are refused."""
    dtype = column.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        if column.isna().any():
            raise ValueError(f"'{name}' has missing times")
        return np.asarray(pd.DatetimeIndex(column).as_unit("ns").asi8, dtype=np.int64).copy()
    if pd.api.types.is_datetime64_dtype(dtype):
        raise ValueError(f"'{name}' holds naive datetimes; give them a timezone (UTC) or use int ns")
    if not pd.api.types.is_integer_dtype(dtype) or column.isna().any():
        raise ValueError(f"'{name}' must be integer nanoseconds since the epoch (UTC), got {dtype}")
    return column.to_numpy(dtype=np.int64)
