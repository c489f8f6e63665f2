"""Read OHLCV files from anywhere into one canonical frame.

Vendors spell the same six columns a dozen ways (``Date``/``timestamp``/``open_time``, ``Name``/
``ticker``, ``Adj Close`` next to ``Close``, Close before High). Everything downstream — replay,
ingest, batch features, backtests — wants one shape, so this module is the only place that knows
the spellings. It reads, renames and sorts; it does not judge prices: rows with NaN prices are kept
(and counted in ``df.attrs``) because rejecting bad bars, with reasons, is the validator's job.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from tradesignals.domain.market import Timeframe
from tradesignals.marketdata.feeds.base import FeedError

OUTPUT_COLUMNS = ("ts", "symbol", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")

# Lower-cased spellings, best first: the first one present wins.
TIME_NAMES = ("timestamp", "datetime", "date", "time", "open_time")
SYMBOL_NAMES = ("symbol", "ticker", "name")
VALUE_NAMES = ("open", "high", "low", "close", "volume")
ADJ_CLOSE_NAMES = ("adj close", "adj_close", "adjclose", "adj. close", "adjusted close", "adjusted_close")

PriceChoice = Literal["adjusted", "raw"]
PRICE_CHOICES: tuple[PriceChoice, ...] = ("adjusted", "raw")

_PARQUET_SUFFIXES = (".parquet", ".pq")
# Epoch integers: the magnitude tells the unit (seconds until the year 5138, then ms, µs, ns).
_EPOCH_UNITS = ((1e11, 1_000_000_000), (1e14, 1_000_000), (1e17, 1_000), (float("inf"), 1))


def read_ohlcv(
    path: str | Path,
    *,
    symbol: str | None = None,
    tz: str | None = None,
    prices: PriceChoice | None = None,
) -> pd.DataFrame:
    """One canonical frame: ``ts`` (int64 ns UTC), ``symbol``, ``open high low close volume`` (float64).

    Sorted by (ts, symbol), stably. Naive times are read in ``tz`` (default UTC) — some vendors
    write exchange-local wall time without an offset (the S&P 500 intraday file is New York time) and
    only the caller knows. Files without a symbol column take ``symbol`` or else the file stem,
    upper-cased. Raises ``FeedError`` (one line naming the file) when the file cannot be read or lacks
    a column. ``df.attrs`` carries ``source``, ``nan_price_rows``, ``dropped_bad_time``, ``prices`` and
    ``naive_times`` so callers
    can report what the file held without scanning it again.

    ``prices`` says which prices to return when the file has an adjusted close (``Adj Close``,
    ``adj_close``, ``Adjusted Close``…): ``adjusted`` (the default when the column is there) scales
    open, high, low and close by ``adj / close`` and volume by its inverse, so a split or dividend
    is no jump and dollar volume is unchanged; ``raw`` returns the traded prices. Asking for
    ``adjusted`` from a file without the column is a one-line ``FeedError`` naming ``--prices raw``.
    ``df.attrs["prices"]`` says which was used.
    """
    p = Path(path)
    columns = _header(p)
    mapping = _recognise(p, columns)
    choice = _price_choice(p, mapping, prices)
    if choice == "raw":
        mapping.pop("adj_close", None)
    raw = _read_columns(p, mapping)
    n_read = len(raw)

    ts, bad_time, naive = _timestamps(p, raw, mapping, tz)
    if mapping.get("symbol") is not None:
        sym = raw[mapping["symbol"]].astype("string").fillna("").str.strip().astype(str)
    else:
        sym = pd.Series(np.full(n_read, symbol or _stem(p).upper(), dtype=object), dtype=str)

    out = pd.DataFrame({"ts": ts, "symbol": sym.to_numpy()})
    for col in VALUE_NAMES:
        out[col] = pd.to_numeric(raw[mapping[col]], errors="coerce").astype("float64").to_numpy()

    if choice == "adjusted":
        adj = pd.to_numeric(raw[str(mapping["adj_close"])], errors="coerce").to_numpy(dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = adj / out["close"].to_numpy()
            factor[~(np.isfinite(factor) & (factor > 0))] = np.nan  # unusable: the row's prices read NaN
            for col in PRICE_COLUMNS:
                out[col] = out[col].to_numpy() * factor
            out["volume"] = out["volume"].to_numpy() / factor

    if bad_time.any():
        out = out.loc[~bad_time]
    codes, _ = pd.factorize(out["symbol"], sort=True)
    order = np.lexsort((codes, out["ts"].to_numpy()))
    out = out.iloc[order].reset_index(drop=True)
    out["ts"] = out["ts"].astype("int64")

    out.attrs["source"] = str(p)
    out.attrs["prices"] = choice
    out.attrs["naive_times"] = naive  # read as UTC for want of an offset or a tz: see session_fit
    out.attrs["nan_price_rows"] = int(out[list(PRICE_COLUMNS)].isna().any(axis=1).sum())
    out.attrs["dropped_bad_time"] = int(bad_time.sum())
    return out


def price_choice(path: str | Path, prices: PriceChoice | None = None) -> PriceChoice:
    """Which prices ``read_ohlcv(path, prices=prices)`` returns, from the header alone (for reports)."""
    p = Path(path)
    return _price_choice(p, _recognise(p, _header(p)), prices)


def parse_prices(value: str | None) -> PriceChoice | None:
    """``--prices`` as typed: ``adjusted``, ``raw`` or None (adjusted when the file has the column)."""
    if value is None:
        return None
    text = value.strip().lower()
    for choice in PRICE_CHOICES:
        if text == choice:
            return choice
    raise ValueError(f"unknown --prices {value!r}; expected adjusted or raw")


def _price_choice(path: Path, mapping: dict[str, str | None], prices: PriceChoice | None) -> PriceChoice:
    has_adj = mapping.get("adj_close") is not None
    if prices is None:
        return "adjusted" if has_adj else "raw"
    if prices not in PRICE_CHOICES:
        raise FeedError(f"unknown prices {prices!r}; expected adjusted or raw")
    if prices == "adjusted" and not has_adj:
        raise FeedError(f"{path}: no adjusted close column (Adj Close); use --prices raw")
    return prices


def infer_timeframe(df: pd.DataFrame, *, tolerance: float = 0.1) -> Timeframe | None:
    """The timeframe whose length is within ``tolerance`` of the median per-symbol spacing, else None.

    The median, not the minimum, so weekends, holidays and the odd missing bar do not matter; per
    symbol, so interleaved symbols sharing a timestamp do not read as a spacing of zero.
    """
    if len(df) < 2:
        return None
    ts = df["ts"].to_numpy(dtype=np.int64)
    codes, _ = pd.factorize(df["symbol"])
    order = np.lexsort((ts, codes))
    ts_sorted, codes_sorted = ts[order], codes[order]
    gaps = np.diff(ts_sorted)[(np.diff(codes_sorted) == 0)]
    gaps = gaps[gaps > 0]
    if gaps.size == 0:
        return None
    median = float(np.median(gaps))
    best = min(Timeframe, key=lambda tf: abs(median - tf.ns) / tf.ns)
    return best if abs(median - best.ns) / best.ns <= tolerance else None


def _stem(path: Path) -> str:
    """``spy_daily.csv.gz`` → ``spy_daily``: strip every data suffix, not just the last."""
    name = path.name
    for suffix in (".gz", ".csv", ".txt", ".parquet", ".pq"):
        name = name.removesuffix(suffix)
    return name


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_parquet(path: Path) -> bool:
    return path.name.lower().endswith(_PARQUET_SUFFIXES)


def _header(path: Path) -> list[str]:
    """Column names only, so a file lacking columns fails before a large read."""
    if not path.exists():
        raise FeedError(f"{path}: no such file")
    if path.is_dir():
        raise FeedError(f"{path}: is a directory, not an OHLCV file")
    try:
        if _is_parquet(path):
            import pyarrow.parquet as pq

            return [str(c) for c in pq.read_schema(path).names]
        return [str(c) for c in pd.read_csv(path, nrows=0).columns]
    except pd.errors.EmptyDataError:
        raise FeedError(f"{path}: file is empty") from None
    except (OSError, ValueError, EOFError, UnicodeDecodeError, zlib.error, gzip.BadGzipFile) as exc:
        kind = "Parquet" if _is_parquet(path) else "CSV"
        raise FeedError(f"{path}: cannot read as {kind} ({_one_line(exc)})") from None


def _recognise(path: Path, columns: Sequence[str]) -> dict[str, str | None]:
    """Map canonical names to the file's own spellings; one line listing what is missing."""
    by_lower: dict[str, str] = {}
    for col in columns:
        by_lower.setdefault(col.strip().lower(), col)

    mapping: dict[str, str | None] = {}
    missing: list[str] = []
    time_col = next((by_lower[n] for n in TIME_NAMES if n in by_lower), None)
    if time_col is None:
        missing.append("time (" + "|".join(TIME_NAMES) + ")")
    mapping["time"] = time_col
    # A file with separate Date and Time columns (common in intraday exports) needs both.
    if by_lower.get("date") == time_col and "time" in by_lower and "timestamp" not in by_lower:
        mapping["time_of_day"] = by_lower["time"]
    mapping["symbol"] = next((by_lower[n] for n in SYMBOL_NAMES if n in by_lower), None)
    for name in VALUE_NAMES:
        mapping[name] = by_lower.get(name)
        if mapping[name] is None:
            missing.append(name)
    adj = next((by_lower[n] for n in ADJ_CLOSE_NAMES if n in by_lower), None)
    if adj is not None:
        mapping["adj_close"] = adj
    if missing:
        found = ", ".join(columns) if columns else "none"
        raise FeedError(f"{path}: missing column(s) {', '.join(missing)}; found: {found}")
    return mapping


def _read_columns(path: Path, mapping: dict[str, str | None]) -> pd.DataFrame:
    wanted = list(dict.fromkeys(c for c in mapping.values() if c is not None))
    try:
        if _is_parquet(path):
            return pd.read_parquet(path, columns=wanted)
        dtypes: dict[str, Any] = {}
        if mapping.get("symbol"):
            dtypes[str(mapping["symbol"])] = str
        if mapping.get("time_of_day"):
            dtypes[str(mapping["time"])] = str
            dtypes[str(mapping["time_of_day"])] = str
        return pd.read_csv(path, usecols=wanted, dtype=dtypes)
    except (OSError, ValueError, EOFError, UnicodeDecodeError, zlib.error, gzip.BadGzipFile) as exc:
        kind = "Parquet" if _is_parquet(path) else "CSV"
        raise FeedError(f"{path}: cannot read as {kind} ({_one_line(exc)})") from None


def _timestamps(
    path: Path, raw: pd.DataFrame, mapping: dict[str, str | None], tz: str | None
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Nanoseconds UTC per row, a mask of rows whose time could not be read, and whether the times
    had no offset and were read as UTC because no ``tz`` was given."""
    col = str(mapping["time"])
    values = raw[col]
    if mapping.get("time_of_day"):
        values = values.astype(str) + " " + raw[str(mapping["time_of_day"])].astype(str)

    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return (*_epoch_ns(values), False)
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values):
        parsed = values
    else:
        parsed = _parse_text_times(path, col, values)
    naive = False
    try:
        if parsed.dt.tz is None:
            naive = tz is None
            parsed = parsed.dt.tz_localize(tz or "UTC", ambiguous="NaT", nonexistent="NaT")
        parsed = parsed.dt.tz_convert("UTC").dt.as_unit("ns")
    except (ValueError, TypeError, OverflowError, KeyError) as exc:  # KeyError: unknown time zone
        raise FeedError(f"{path}: column {col!r}: {_one_line(exc)}") from None
    bad = parsed.isna().to_numpy()
    ns = parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").view(np.int64).copy()
    ns[bad] = 0
    if bad.size and bad.all():
        first = values.dropna().astype(str).head(1).tolist()
        shown = repr(first[0]) if first else "no values"
        raise FeedError(f"{path}: column {col!r} holds no readable timestamps (first: {shown})")
    return ns, bad, naive


def _parse_text_times(path: Path, col: str, values: pd.Series) -> pd.Series:
    """ISO 8601 first (fast, exact); inferred formats only when ISO reads fewer rows."""
    text = values.astype("string")
    best: pd.Series | None = None
    for fmt in ("ISO8601", None):
        try:
            got = pd.to_datetime(text, format=fmt, errors="coerce")
        except (ValueError, TypeError):
            # Mixed offsets in one column: only a UTC reading can hold them.
            try:
                got = pd.to_datetime(text, format=fmt, errors="coerce", utc=True)
            except (ValueError, TypeError, OverflowError):
                continue
        except OverflowError as exc:
            raise FeedError(f"{path}: column {col!r}: {_one_line(exc)}") from None
        if best is None or got.notna().sum() > best.notna().sum():
            best = got
        if best.notna().sum() == text.notna().sum():
            break
    if best is None:
        raise FeedError(f"{path}: column {col!r} holds no readable timestamps")
    return best


def _epoch_ns(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer or float epochs in s/ms/µs/ns, told apart by magnitude."""
    arr = values.to_numpy(dtype="float64")
    bad = ~np.isfinite(arr)
    finite = arr[~bad]
    top = float(np.abs(finite).max()) if finite.size else 0.0
    scale = next(mult for limit, mult in _EPOCH_UNITS if top < limit)
    if pd.api.types.is_integer_dtype(values):
        ns = values.to_numpy(dtype=np.int64) * scale  # exact: no float round trip for ns epochs
    else:
        ns = np.round(np.where(bad, 0.0, arr) * scale).astype(np.int64)
    return ns, bad
