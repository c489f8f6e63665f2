"""The history store contract for OHLCV bars, shared by the embedded and the server implementation.

Features, training, backtests, charts and the API all read bar history through ``BarStore``; only
the wiring knows whether it sits on Parquet files (``timeseries_parquet.ParquetBarStore``, the
embedded default) or on PostgreSQL (``timeseries_pg.PostgresBarStore``, server mode). Both speak
pandas frames in the one canonical shape ``read_ohlcv`` produces, so a file read, a store read and a
feature table line up without renaming:

    ts      int64, nanoseconds since the epoch, UTC — the bar's open time (as ``Bar.ts``)
    symbol  str
    open high low close volume   float64

Ranges are half-open, ``[start_ns, end_ns)``: a bar belongs to a range when its *open time* lies in
it. Half-open ranges tile without overlap (one day is ``[midnight, next midnight)``, whatever the
timeframe), which is what paging, chunked backfills and train/test splits need.

The store stores; it does not judge prices. Rejecting bad rows (with reasons) is the job of the
ingest use case and of ``marketdata.validate``. What the store does refuse are frames it cannot
store unambiguously: missing columns, a non-integer ``ts``, an empty symbol, or two rows for the same
(symbol, ts) in one call — which one would win is the caller's decision, not the store's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from tradesignals.domain.market import Timeframe

BAR_COLUMNS = ("ts", "symbol", "open", "high", "low", "close", "volume")
VALUE_COLUMNS = ("open", "high", "low", "close", "volume")
# A symbol becomes a directory name in the Parquet store; keep it well inside filename limits.
MAX_SYMBOL_LENGTH = 64


@dataclass(frozen=True, slots=True)
class UpsertResult:
    """Exact per-row outcome of an upsert; ``unchanged`` rows were present with identical values.

    Exact counts are what make "ingesting the same file twice changes nothing" checkable, by tests
    and by an operator reading the CLI summary.
    """

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged

    def __add__(self, other: UpsertResult) -> UpsertResult:
        return UpsertResult(
            self.inserted + other.inserted, self.updated + other.updated, self.unchanged + other.unchanged
        )


class BarStore(Protocol):
    """Bar history keyed by (timeframe, symbol, ts). Implementations are safe to share across threads."""

    def upsert(self, timeframe: Timeframe, bars: pd.DataFrame) -> UpsertResult:
        """Insert new (symbol, ts) rows and replace existing ones whose values differ.

        Idempotent: the same rows twice leave the store (and, for files, the bytes on disk) as they
        were, reporting every row as unchanged. Raises ``ValueError`` for a frame that cannot be
        stored unambiguously (see the module docstring).
        """
        ...

    def read(
        self,
        timeframe: Timeframe,
        symbols: list[str] | None = None,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> pd.DataFrame:
        """Bars with ``start_ns <= ts < end_ns`` (either bound may be open), sorted by symbol then ts.

        ``symbols=None`` means all; unknown symbols are simply absent from the result; an empty
        result still has the canonical columns and dtypes. ``start_ns > end_ns`` is a caller bug and
        raises ``ValueError``; ``start_ns == end_ns`` is an empty range.
        """
        ...

    def symbols(self, timeframe: Timeframe) -> list[str]:
        """Symbols holding at least one bar of ``timeframe``, sorted (by code point)."""
        ...

    def range(self, timeframe: Timeframe, symbol: str) -> tuple[int, int] | None:
        """Open times of the first and the last stored bar (both inclusive); None when there are none."""
        ...

    def close(self) -> None:
        """Release connections and file handles; the store is unusable afterwards."""
        ...


def empty_bars() -> pd.DataFrame:
    """A zero-row frame with the canonical columns and dtypes, so callers never special-case 'none'."""
    frame = pd.DataFrame({"ts": np.empty(0, dtype=np.int64), "symbol": pd.Series([], dtype="str")})
    for col in VALUE_COLUMNS:
        frame[col] = np.empty(0, dtype=np.float64)
    return frame


def check_range(start_ns: int | None, end_ns: int | None) -> None:
    """Refuse a reversed range loudly: silently returning nothing hides the bug in the caller."""
    if start_ns is not None and end_ns is not None and start_ns > end_ns:
        raise ValueError(f"start_ns {start_ns} is after end_ns {end_ns}; ranges are [start, end)")


def check_symbol(symbol: str) -> None:
    if not isinstance(symbol, str) or not symbol or symbol != symbol.strip() or "\x00" in symbol:
        raise ValueError(f"invalid symbol {symbol!r}: must be non-empty text without surrounding spaces")
    if len(symbol) > MAX_SYMBOL_LENGTH:
        raise ValueError(f"symbol {symbol[:20]!r}… is longer than {MAX_SYMBOL_LENGTH} characters")


def normalize_bars(bars: pd.DataFrame) -> pd.DataFrame:
    """The canonical columns only, canonical dtypes, sorted by (symbol, ts); ``ValueError`` otherwise.

    Both stores call this first, so the two cannot disagree about what they accept.
    """
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise ValueError(f"bars lack column(s) {', '.join(missing)}; expected {', '.join(BAR_COLUMNS)}")
    ts = bars["ts"]
    if not pd.api.types.is_integer_dtype(ts.dtype) or pd.api.types.is_bool_dtype(ts.dtype):
        raise ValueError(f"bars 'ts' must be integer nanoseconds UTC, got dtype {ts.dtype}")
    out = pd.DataFrame({"ts": ts.to_numpy(dtype=np.int64), "symbol": bars["symbol"].to_numpy()})
    if out["symbol"].isna().any():
        raise ValueError("bars hold rows without a symbol")
    out["symbol"] = out["symbol"].astype("str")
    for symbol in pd.unique(out["symbol"]):
        check_symbol(symbol)
    for col in VALUE_COLUMNS:
        try:
            out[col] = bars[col].to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bars column {col!r} is not numeric ({exc})") from None
    out = out.sort_values(["symbol", "ts"], kind="stable", ignore_index=True)
    dup = (out["symbol"].to_numpy()[1:] == out["symbol"].to_numpy()[:-1]) & (
        np.diff(out["ts"].to_numpy()) == 0
    )
    if dup.any():
        first = int(np.flatnonzero(dup)[0])
        raise ValueError(
            f"bars hold {int(dup.sum())} duplicate (symbol, ts) row(s), first {out['symbol'].iat[first]} "
            f"at ts={out['ts'].iat[first]}; drop them before upserting"
        )
    return out
