"""The streaming features over whole histories at once, for training, backtests and the CLI.

Same features, same parameters, same rules for bad bars, gaps and sessions as
``features.incremental`` (its module docstring is the reference); this module only changes how they
are computed: per symbol, each stretch between restarts ("segment") goes through TA-Lib's Function
API and NumPy in one pass instead of bar by bar. Equality with the streaming engine (to 1e-9 once
warm) is the contract the tests hold both to, so wherever a value is ours rather than TA-Lib's the
arithmetic below repeats the streaming code's operations in the same order.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
import talib
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike

from tradesignals.domain.market import AssetClass, Timeframe
from tradesignals.features.incremental import (
    FEATURE_NAMES,
    N_FEATURES,
    PROFILE_BARS,
    STATUS_BAD,
    STATUS_EMPTY,
    STATUS_IGNORED,
    STATUS_NAMES,
    STATUS_OK,
    TA_SPECS,
    WARMUP_BARS,
    BarClock,
    CalendarChoice,
    TaSpec,
    clock_resolver,
    derived_columns,
    place_many,
    profile_rows,
    valid_bars,
)
from tradesignals.marketdata.calendar import calendar_resolver
from tradesignals.marketdata.ohlcv_file import infer_timeframe

# Names of each TA-Lib function's outputs in ``TA_COLUMNS`` (single-output ones use their key).
_OUTPUT_NAMES: Final = {
    "bb": ("bb_upper", "bb_middle", "bb_lower"),
    "macd": ("macd", "macd_signal", "macd_hist"),
    "stoch": ("stoch_k", "stoch_d"),
}


def symbol_features(
    ts: ArrayLike,
    o: ArrayLike,
    h: ArrayLike,
    l: ArrayLike,  # noqa: E741
    c: ArrayLike,
    v: ArrayLike,
    clock: BarClock,
    *,
    detect_gaps: bool = True,
    placement: tuple[np.ndarray, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One symbol's bars in arrival order → (values ``(n, N_FEATURES)``, warm ``(n,)``, status ``(n,)``).

    Row ``i`` is what ``SymbolFeatures.update`` answers for the ``i``-th bar fed in this order
    (NaN and not warm for ignored, bad and empty bars; ``status`` says which, see ``STATUS_NAMES``).
    ``placement`` is ``place_many(clock, ts)`` when the caller already has it (one pass per file).
    """
    t = np.asarray(ts, dtype=np.int64)
    n = len(t)
    o, h, l, c, v = (np.asarray(a, dtype=np.float64) for a in (o, h, l, c, v))  # noqa: E741
    values = np.full((n, N_FEATURES), np.nan)
    warm = np.zeros(n, dtype=bool)
    status = np.full(n, STATUS_OK, dtype=np.int8)
    if n == 0:
        return values, warm, status
    label, first, key, due = placement if placement is not None else place_many(clock, t)

    # Ignored: not after the latest key so far (the running max is the same over accepted rows).
    prev_max = np.maximum.accumulate(key)
    ignored = np.zeros(n, dtype=bool)
    ignored[1:] = key[1:] <= prev_max[:-1]
    status[ignored] = STATUS_IGNORED
    acc = np.flatnonzero(~ignored)

    bad = ~valid_bars(o, h, l, c, v)[acc]
    empty = ~bad & (v[acc] == 0.0)
    good = ~bad & ~empty
    status[acc[bad]] = STATUS_BAD
    status[acc[empty]] = STATUS_EMPTY

    # A good row continues a segment when a good row came after the last bad one and, with gap
    # detection, it is not later than the previous arrival said the next bar was due.
    pos = np.arange(len(acc))
    last_bad = np.maximum.accumulate(np.where(bad, pos, -1))
    last_good = np.maximum.accumulate(np.where(good, pos, -1))
    has_state = np.zeros(len(acc), dtype=bool)
    has_state[1:] = last_good[:-1] > last_bad[:-1]
    starts = good & ~has_state
    if detect_gaps and len(acc) > 1:
        k = key[acc]
        gap = np.zeros(len(acc), dtype=bool)
        gap[1:] = k[1:] > due[acc[:-1]]
        starts |= good & gap

    rows = acc[good]
    seg_id = np.cumsum(starts[good])
    bounds = np.flatnonzero(np.diff(seg_id)) + 1
    for idx in np.split(rows, bounds):
        vals, seg_warm = segment_features(o[idx], h[idx], l[idx], c[idx], v[idx], label[idx], first[idx])
        values[idx] = vals
        warm[idx] = seg_warm
    return values, warm, status


def segment_features(
    o: np.ndarray,
    h: np.ndarray,
    l: np.ndarray,  # noqa: E741
    c: np.ndarray,
    v: np.ndarray,
    label: np.ndarray,
    first: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Features over one unbroken run of good bars (what the streaming state sees between restarts)."""
    m = len(c)
    if m == 0:
        return np.empty((0, N_FEATURES)), np.zeros(0, dtype=bool)
    logret2 = np.full(m, np.nan)
    lr = np.log(c[1:] / c[:-1])
    logret2[1:] = lr * lr
    inputs = {"o": o, "h": h, "l": l, "c": c, "v": v}
    ta: dict[str, np.ndarray] = {}
    for spec in TA_SPECS:
        if spec.inputs == "r":  # starts on the segment's second bar, as the stream's does
            outs = tuple(np.concatenate(([np.nan], a)) for a in _ta_call(spec, (logret2[1:],)))
        else:
            outs = _ta_call(spec, tuple(inputs[ch] for ch in spec.inputs))
        for name, arr in zip(_OUTPUT_NAMES.get(spec.key, (spec.key,)), outs, strict=True):
            ta[name] = arr
    cols = derived_columns(ta, c, v)
    tp = (h + l + c) / 3.0
    ctx_known = _sessions(cols, o, h, l, c, v, tp, label, first)
    poc, vah, val = (np.full(m, np.nan) for _ in range(3))
    if m >= PROFILE_BARS:
        w = PROFILE_BARS - 1
        poc[w:], vah[w:], val[w:] = profile_rows(
            sliding_window_view(tp, PROFILE_BARS),
            sliding_window_view(v, PROFILE_BARS),
            ta["pmin"][w:],
            ta["pmax"][w:],
        )
    cols["vp_poc"], cols["vp_vah"], cols["vp_val"] = poc, vah, val
    values = np.column_stack([cols[name] for name in FEATURE_NAMES])
    warm = (np.arange(m) >= WARMUP_BARS - 1) & ctx_known
    return values, warm


def _ta_call(spec: TaSpec, args: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """A TA-Lib function as float arrays, NaN before its lookback (the candles answer 0 there)."""
    n = len(args[0])
    n_out = len(_OUTPUT_NAMES.get(spec.key, (spec.key,)))
    if n <= spec.lookback:
        return tuple(np.full(n, np.nan) for _ in range(n_out))
    out = getattr(talib, spec.function)(*args, **spec.kwargs)
    result = []
    for a in out if isinstance(out, tuple) else (out,):
        f = a.astype(np.float64)
        f[: spec.lookback] = np.nan
        result.append(f)
    return tuple(result)


def _sessions(
    cols: dict[str, np.ndarray],
    o: np.ndarray,
    h: np.ndarray,
    l: np.ndarray,  # noqa: E741
    c: np.ndarray,
    v: np.ndarray,
    tp: np.ndarray,
    label: np.ndarray,
    first: np.ndarray,
) -> np.ndarray:
    """VWAP, opening gap and previous-session context; returns where the context is known."""
    m = len(c)
    if m == 0:
        for name in ("vwap", "vwap_dist", "gap_pct", "prev_close_dist", "prev_high_dist", "prev_low_dist"):
            cols[name] = np.empty(0)
        return np.zeros(0, dtype=bool)
    new = np.ones(m, dtype=bool)
    new[1:] = label[1:] != label[:-1]
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:] - 1, m - 1)
    sess = np.cumsum(new) - 1
    n_sess = len(starts)
    complete = np.ones(n_sess, dtype=bool)
    complete[0] = bool(first[0])

    pv_each = tp * v
    if n_sess == m:  # one bar per session (daily bars): nothing to accumulate
        pv, vv = pv_each, v.copy()
    else:
        pv, vv = np.empty(m), np.empty(m)
        for a, b in zip(starts.tolist(), (ends + 1).tolist(), strict=True):
            pv[a:b] = np.cumsum(pv_each[a:b])
            vv[a:b] = np.cumsum(v[a:b])
    row_complete = complete[sess]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        vwap = np.where(row_complete, pv / vv, np.nan)
        cols["vwap"] = vwap
        cols["vwap_dist"] = np.where(vwap != 0.0, c / vwap - 1.0, np.nan)

    s_high = np.maximum.reduceat(h, starts)
    s_low = np.minimum.reduceat(l, starts)
    s_close = c[ends]
    prev_ok = np.zeros(n_sess, dtype=bool)
    prev_ok[1:] = complete[:-1]
    pd_close, pd_high, pd_low, gap = (np.full(n_sess, np.nan) for _ in range(4))
    pd_close[1:] = np.where(prev_ok[1:], s_close[:-1], np.nan)
    pd_high[1:] = np.where(prev_ok[1:], s_high[:-1], np.nan)
    pd_low[1:] = np.where(prev_ok[1:], s_low[:-1], np.nan)
    gap[1:] = o[starts[1:]] / c[starts[1:] - 1] - 1.0
    cols["gap_pct"] = gap[sess]
    cols["prev_close_dist"] = c / pd_close[sess] - 1.0
    cols["prev_high_dist"] = c / pd_high[sess] - 1.0
    cols["prev_low_dist"] = c / pd_low[sess] - 1.0
    known: np.ndarray = prev_ok[sess] & (sess >= 1)
    return known


def compute_features(
    df: pd.DataFrame,
    *,
    timeframe: Timeframe | None = None,
    calendar: CalendarChoice | None = None,
    asset_class: AssetClass | None = None,
    detect_gaps: bool = True,
) -> pd.DataFrame:
    """Features for a canonical OHLCV frame (``read_ohlcv``'s shape), one row per input row.

    Columns ``ts``, ``symbol``, the features in ``FEATURE_NAMES`` order, ``warm`` and ``status``;
    the index is the input's, so rows line up with ``df``. Each symbol is taken in time order
    (stable, so duplicates keep file order and the later one is ignored, as live). ``timeframe``
    defaults to the one ``infer_timeframe`` reads from the spacing, else daily.

    ``calendar=None`` chooses per symbol exactly as the live engine does, by the one rule
    (``marketdata.calendar.calendar_resolver``): the ``asset_class`` the caller declares for the whole
    file, else each symbol's spelling. A file without a symbol column is named after the file
    (``CRYPTO_BTCUSDT_1M_…``), which the spelling cannot tell from a stock: whoever knows it is crypto
    declares ``asset_class`` (the CLI's ``--asset-class``). Nothing is guessed from the weekdays a file
    holds, so the same symbol gets the same clock in training, backtests and live.
    """
    if calendar is not None and asset_class is not None:
        raise ValueError("compute_features takes a calendar or an asset_class, not both")
    tf = timeframe or infer_timeframe(df) or Timeframe.D1
    n = len(df)
    ts = df["ts"].to_numpy(dtype=np.int64)
    arrays = [df[col].to_numpy(dtype=np.float64) for col in ("open", "high", "low", "close", "volume")]
    codes, uniques = pd.factorize(df["symbol"].fillna("").astype(str), sort=False)  # no -1 codes
    resolve = clock_resolver(tf, calendar if calendar is not None else calendar_resolver(asset_class))
    values = np.empty((n, N_FEATURES))  # every row is written: one block per symbol
    warm = np.zeros(n, dtype=bool)
    status = np.zeros(n, dtype=np.int8)
    if n:
        # Place every bar once per calendar (symbols of one market share their bar times).
        clocks = [resolve(str(u)) for u in uniques]
        clock_ix = {id(ck): i for i, ck in reversed(list(enumerate(clocks)))}
        sym_clock = np.array([clock_ix[id(ck)] for ck in clocks], dtype=np.intp)[codes]
        placed = [np.empty(n, dtype=np.int64) for _ in range(4)]
        placed[1] = placed[1].astype(bool)
        for ci in set(clock_ix.values()):
            mask = sym_clock == ci
            for dst, src in zip(placed, place_many(clocks[ci], ts[mask]), strict=True):
                dst[mask] = src
        order = np.lexsort((ts, codes))
        cuts = np.flatnonzero(np.diff(codes[order])) + 1
        for rows in np.split(order, cuts):
            o, h, l, c, v = (a[rows] for a in arrays)  # noqa: E741
            vals, w, st = symbol_features(
                ts[rows],
                o,
                h,
                l,
                c,
                v,
                clocks[codes[rows[0]]],
                detect_gaps=detect_gaps,
                placement=tuple(p[rows] for p in placed),
            )
            values[rows], warm[rows], status[rows] = vals, w, st
    out = pd.DataFrame(values, columns=list(FEATURE_NAMES), index=df.index, copy=False)
    out.insert(0, "symbol", df["symbol"].to_numpy())
    out.insert(0, "ts", ts)
    out["warm"] = warm
    out["status"] = pd.Categorical.from_codes(status, categories=pd.Index(STATUS_NAMES))
    return out
