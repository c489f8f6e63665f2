"""Load OHLCV files into the history store: read, reject bad rows with reasons, upsert, summarise.

This is the use case behind ``tradesignals ingest``; the CLI only parses arguments, draws the
progress bar and prints ``IngestSummary``. Each file is read whole (``read_ohlcv``), checked row by
row in a few vectorised passes, and only then written, in chunks of whole symbols. So a file that
cannot be read, lacks a column, or whose timeframe cannot be told writes nothing; and because
upserts are idempotent, a run interrupted mid-write is completed by running it again.

Rows are judged with ``Bar.problems()``'s rules and named with the one vocabulary of
``domain.bar_quality.QualityReason``, so counts from a file ingest, a replay and the live validator
read alike. Each rejected row is counted once, under its first reason
in the order of ``REASONS`` — so ``rows_read == rows_loaded + sum(rejected.values())`` always.

One-bar moves that look like unadjusted corporate actions or glitches
(``marketdata.corporate_actions``: ``reversed_jump``, ``split_ratio``, ``level_drop``) are counted
in ``flagged`` but loaded as they are: the store keeps what the vendor sent, and the dataset
builder, which re-detects them, keeps them out of labels and feature warm-up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from tradesignals.domain.bar_quality import CORPORATE_ACTION_FLAGS, QualityReason
from tradesignals.domain.market import Timeframe, to_datetime
from tradesignals.marketdata.corporate_actions import detect_corporate_actions
from tradesignals.marketdata.feeds.base import FeedError
from tradesignals.marketdata.ohlcv_file import PriceChoice, infer_timeframe, read_ohlcv
from tradesignals.marketdata.session_fit import check_session_fit
from tradesignals.storage.timeseries import MAX_SYMBOL_LENGTH, BarStore, UpsertResult

R = QualityReason
# Order matters: a row is counted under the first reason that applies to it (``Bar.problems()``'s
# order, then the file-level rules).
REASONS: tuple[QualityReason, ...] = (
    R.EMPTY_SYMBOL,
    R.BAD_SYMBOL,
    R.NOT_FINITE,
    R.NON_POSITIVE_PRICE,
    R.NEGATIVE_VOLUME,
    R.HIGH_BELOW_LOW,
    R.OPEN_CLOSE_OUTSIDE_RANGE,
    R.DUPLICATE,
    R.CONFLICTING_DUPLICATE,
)

# Rows per upsert call, rounded up to whole symbols: large enough that per-call overhead vanishes,
# small enough that progress moves and a PostgreSQL transaction stays modest.
CHUNK_ROWS = 200_000

Progress = Callable[[int, int], None]


@dataclass
class IngestSummary:
    """What an ingest did, for the CLI's table and its ``--json``."""

    files: int = 0
    rows_read: int = 0
    rows_loaded: int = 0  # inserted + updated + unchanged
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    flagged: dict[str, int] = field(default_factory=dict)  # loaded, but suspect (corporate actions)
    symbols: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    timeframe: Timeframe | None = None
    prices: str | None = None  # "adjusted", "raw", or "adjusted+raw" when the files differ
    seconds: float = 0.0

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    def to_json(self) -> dict[str, object]:
        """Plain JSON types; timestamps as ISO dates for daily bars, ISO UTC date-times otherwise."""
        out: dict[str, object] = asdict(self)
        out["rejected"] = {str(k): v for k, v in sorted(self.rejected.items())}
        out["rows_rejected"] = self.rows_rejected
        out["flagged"] = {str(k): self.flagged[k] for k in CORPORATE_ACTION_FLAGS if self.flagged.get(k)}
        out["rows_flagged"] = sum(self.flagged.values())
        out["timeframe"] = self.timeframe.value if self.timeframe else None
        out["first_ts"] = self._iso(self.first_ts)
        out["last_ts"] = self._iso(self.last_ts)
        out["seconds"] = round(self.seconds, 3)
        return out

    def _iso(self, ts: int | None) -> str | None:
        if ts is None:
            return None
        when = to_datetime(ts)
        if self.timeframe is Timeframe.D1:
            return when.date().isoformat()
        return when.isoformat().replace("+00:00", "Z")


def ingest_files(
    paths: list[Path],
    store: BarStore,
    *,
    timeframe: Timeframe | None = None,
    progress: Progress | None = None,
    tz: str | None = None,
    prices: PriceChoice | None = None,
) -> IngestSummary:
    """Load ``paths`` into ``store``; later files win where two hold the same (symbol, ts).

    ``timeframe=None`` infers it from each file's bar spacing; all files of one run must agree (the
    summary describes one timeframe), else a one-line ``FeedError`` before that file is written.
    ``progress(done, total)`` is in bytes of input: half of a file's size is credited once it is
    read and checked, the other half as its rows are written — so a bar moves during both phases.
    ``tz`` is for files with naive local times (see ``read_ohlcv``); offsets in the file win. An
    intraday file whose naive times only fit the exchange's hours as local time is refused before
    anything is written, with a one-line ``FeedError`` naming ``--tz`` (``session_fit``).
    ``prices`` is ``read_ohlcv``'s: adjusted when the file has an adjusted close, unless ``raw``.
    """
    started = time.perf_counter()
    timeframe = Timeframe(timeframe) if timeframe is not None else None
    paths = [Path(p) for p in paths]
    for path in paths:  # fail before writing anything when a named file is simply not there
        if not path.is_file():
            raise FeedError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    sizes = [max(p.stat().st_size, 1) for p in paths]
    total_bytes, done_bytes = sum(sizes), 0

    summary = IngestSummary(timeframe=timeframe)
    rejected: dict[QualityReason, int] = {}
    flagged: dict[QualityReason, int] = {}
    seen_symbols: set[str] = set()
    for path, size in zip(paths, sizes, strict=True):
        frame = read_ohlcv(path, tz=tz, prices=prices)
        file_tf = timeframe or _infer(path, frame)
        check_session_fit(frame, file_tf, source=str(path))
        used = str(frame.attrs.get("prices", "raw"))
        if summary.prices is None:
            summary.prices = used
        elif used not in summary.prices.split("+"):
            summary.prices = "adjusted+raw"
        if summary.timeframe is None:
            summary.timeframe = file_tf
        elif file_tf is not summary.timeframe:
            raise FeedError(
                f"{path}: bars look like {file_tf.value} but earlier files were {summary.timeframe.value};"
                " ingest them separately or pass --timeframe"
            )

        keep, reasons = check_rows(frame)
        bad_time = int(frame.attrs.get("dropped_bad_time", 0))
        if bad_time:
            reasons[R.BAD_TIMESTAMP] = bad_time
        for reason, count in reasons.items():
            rejected[reason] = rejected.get(reason, 0) + count
        good = frame.loc[keep]
        for reason, count in detect_corporate_actions(good).counts().items():
            flagged[reason] = flagged.get(reason, 0) + count
        summary.files += 1
        summary.rows_read += len(frame) + bad_time
        done_bytes += size // 2
        if progress:
            progress(done_bytes, total_bytes)

        written_share = size - size // 2
        for chunk, share in _chunks(good, written_share):
            result: UpsertResult = store.upsert(file_tf, chunk)
            summary.inserted += result.inserted
            summary.updated += result.updated
            summary.unchanged += result.unchanged
            done_bytes += share
            if progress:
                progress(done_bytes, total_bytes)
        if good.empty:
            done_bytes += written_share
            if progress:
                progress(done_bytes, total_bytes)
        else:
            ts = good["ts"].to_numpy()
            lo, hi = int(ts.min()), int(ts.max())
            summary.first_ts = lo if summary.first_ts is None else min(summary.first_ts, lo)
            summary.last_ts = hi if summary.last_ts is None else max(summary.last_ts, hi)
            seen_symbols.update(pd.unique(good["symbol"]).tolist())

    summary.rows_loaded = summary.inserted + summary.updated + summary.unchanged
    summary.rejected = {r: rejected[r] for r in (*REASONS, R.BAD_TIMESTAMP) if rejected.get(r)}
    summary.flagged = {r: flagged[r] for r in CORPORATE_ACTION_FLAGS if flagged.get(r)}
    summary.symbols = len(seen_symbols)
    summary.seconds = time.perf_counter() - started
    return summary


def _infer(path: Path, frame: pd.DataFrame) -> Timeframe:
    inferred = infer_timeframe(frame)
    if inferred is None:
        allowed = ", ".join(t.value for t in Timeframe)
        raise FeedError(
            f"{path}: cannot infer the timeframe from the bar spacing; pass --timeframe ({allowed})"
        )
    return inferred


def _chunks(good: pd.DataFrame, share: int) -> list[tuple[pd.DataFrame, int]]:
    """Whole-symbol slices of about ``CHUNK_ROWS`` rows, each with its part of ``share`` bytes.

    Whole symbols, because the Parquet store rewrites a symbol's file per upsert call: splitting a
    symbol across calls would rewrite its file twice for nothing.
    """
    if good.empty:
        return []
    good = good.sort_values(["symbol", "ts"], kind="stable", ignore_index=True)
    symbols = good["symbol"].to_numpy()
    boundaries = np.r_[np.flatnonzero(symbols[1:] != symbols[:-1]) + 1, len(good)]
    out: list[tuple[pd.DataFrame, int]] = []
    start, credited = 0, 0
    for cut in boundaries:
        if cut - start >= CHUNK_ROWS or cut == len(good):
            part = share * int(cut) // len(good) - credited
            out.append((good.iloc[start:cut], part))
            credited += part
            start = int(cut)
    return out


def check_rows(frame: pd.DataFrame) -> tuple[np.ndarray, dict[QualityReason, int]]:
    """Which rows of a canonical OHLCV frame to load, and how many were rejected for each reason.

    Exact-copy duplicates keep their first row (the file merely repeated itself); rows sharing a
    (symbol, ts) with *different* values are all rejected, since nothing says which one is right.
    """
    n = len(frame)
    code = np.zeros(n, dtype=np.int8)  # 0 = keep, else 1 + index into REASONS

    def mark(mask: npt.ArrayLike, reason: QualityReason) -> None:
        code[(code == 0) & np.asarray(mask, dtype=bool)] = REASONS.index(reason) + 1

    # Symbols are judged once per distinct value (hundreds), not per row (hundreds of thousands).
    sym_codes, uniques = pd.factorize(frame["symbol"], use_na_sentinel=True)
    names = [str(u) for u in uniques]
    empty = np.array([not u for u in names] + [True], dtype=bool)  # the extra slot is code -1 (NA)
    # What the store would refuse (it names directories after symbols) is rejected here, row by
    # row, rather than failing the whole ingest half-way through.
    invalid = np.array([_bad_symbol(u) for u in names] + [False], dtype=bool)
    mark(empty[sym_codes], R.EMPTY_SYMBOL)
    mark(invalid[sym_codes], R.BAD_SYMBOL)

    o, h, lo, c, v = (
        frame[col].to_numpy(dtype=np.float64) for col in ("open", "high", "low", "close", "volume")
    )
    with np.errstate(invalid="ignore"):
        prices = np.column_stack((o, h, lo, c))
        mark(~np.isfinite(prices).all(axis=1), R.NOT_FINITE)
        mark((prices <= 0).any(axis=1), R.NON_POSITIVE_PRICE)
        mark(~np.isfinite(v), R.NOT_FINITE)
        mark(v < 0, R.NEGATIVE_VOLUME)
        mark(h < lo, R.HIGH_BELOW_LOW)
        mark((o < lo) | (o > h) | (c < lo) | (c > h), R.OPEN_CLOSE_OUTSIDE_RANGE)

    ok = np.flatnonzero(code == 0)
    if ok.size > 1:
        _mark_duplicates(sym_codes, frame["ts"].to_numpy(), ok, np.column_stack((o, h, lo, c, v)), code)

    counts = np.bincount(code, minlength=len(REASONS) + 1)
    reasons = {REASONS[i - 1]: int(counts[i]) for i in range(1, len(REASONS) + 1) if counts[i]}
    return code == 0, reasons


def _bad_symbol(symbol: str) -> bool:
    return len(symbol) > MAX_SYMBOL_LENGTH or any(ord(ch) < 0x20 for ch in symbol)


def _mark_duplicates(
    sym_codes: np.ndarray, ts_all: np.ndarray, ok: np.ndarray, values: np.ndarray, code: np.ndarray
) -> None:
    """Among rows still kept, mark repeated (symbol, ts) keys: exact repeats and conflicting groups."""
    syms, ts = sym_codes[ok], ts_all[ok]
    order = np.lexsort((ts, syms))
    rows = ok[order]
    same_key = (syms[order][1:] == syms[order][:-1]) & (ts[order][1:] == ts[order][:-1])
    if not same_key.any():
        return
    repeat = np.r_[False, same_key]  # row repeats the key of the row before it
    group = np.cumsum(~repeat) - 1  # group number per sorted row
    first_row = rows[np.flatnonzero(~repeat)][group]  # the group's first row, for every row
    differs = (values[rows] != values[first_row]).any(axis=1)
    conflicted = np.bincount(group, weights=differs.astype(np.float64)) > 0
    in_conflict = conflicted[group]
    code[rows[in_conflict]] = REASONS.index(R.CONFLICTING_DUPLICATE) + 1
    code[rows[repeat & ~in_conflict]] = REASONS.index(R.DUPLICATE) + 1
