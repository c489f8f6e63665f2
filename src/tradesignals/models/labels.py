"""Triple-barrier labels: would a signal entered at this bar's close have hit its target first?

What we train on must be what we trade, so the barriers are the engine's (``engine.decide``): entry
at the close of bar ``t``, stop ``m × ATR`` away, target ``k × ATR`` away (by default the first
target, 1R = the stop distance: ``k = m = 1.5``), and a time limit by signal type — ``swing``: the
next ``horizon_bars`` bars (1–7, default 5); ``day``: the rest of bar ``t``'s trading session.

Rules — never flattering to a model, and the ones the lifecycle tracker must share for the labels to
mean what live outcomes mean:

* The scan starts at bar ``t + 1``. Bar ``t``'s own high and low happened *before* the entry at its
  close, so they never touch a barrier.
* Within one bar the order of high and low is unknown. A bar that touches both the stop and the
  target counts as the **stop** (conservative: the worse of the two possible paths).
* The open is the one price whose place in the bar is known — it is first. A bar that *opens*
  through a barrier (a gap) resolves there, at the open: through the stop, a stop filled at the open
  (worse than the stop); through the target, a target filled at the open. This is the only case where
  a bar that also touches the stop later can count as a target: the target was filled before.
* Neither barrier by the time limit: ``timeout``, exit at the close of the limit's last bar.
* Right-censoring: a time-out is only a label when the whole window was observed. A window that runs
  past the symbol's last bar gets no label unless a barrier was hit inside the data we have.
  For ``day`` labels the session is known complete only once a later bar of the symbol (in a later
  session) exists, so the symbol's last session in the data is censored unless a barrier is hit.
* No label (NaN, never an exception) where the engine could not have made the signal: NaN or
  non-positive ATR, a NaN close, a stop or target at or below zero; and where a bar inside the window
  lacks a price before the label resolved (we cannot know what happened during it). A ``day`` entry
  at the session's last bar has nothing left to observe and gets no label either.

``t_end`` is the timestamp of the bar where the label resolved — the end of the label's information
horizon, which ``models.validation`` purges on. ``weight`` is the label's average uniqueness
(López de Prado, *Advances in Financial Machine Learning*, ch. 4): overlapping labels share the same
bar returns, so each bar ``j`` is shared by ``c_j`` concurrent labels of that symbol, and a label's
weight is the mean of ``1 / c_j`` over the bars it spans (``t + 1 … t_end``): 1 for a label nobody
overlaps, less for crowded ones. ``c_j`` counts every hypothetical trade open at bar ``j``, censored
ones included, so that a weight, like a label, depends on no price after its ``t_end``.

Barrier prices are not rounded as ``build_signal`` rounds a signal's (six significant digits): the
difference is below 1e-5 of the price, and rounding would only tie labels to a display choice.

The scan is a numba loop, one pass over the rows with at most ``horizon`` bars each: about 0.1 s per
direction for the 619k-row S&P 500 daily file (``bench/labels.py``). The kernels are cached on disk;
the first call in a process loads them (about 1 s), the first ever compiles them (about 3 s).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd
from numba import njit

from tradesignals.domain.signals import Direction, SignalType

if TYPE_CHECKING:
    from tradesignals.engine.decide import DecideParams
    from tradesignals.marketdata.calendar import SessionCalendar

MIN_SWING_BARS = 1
MAX_SWING_BARS = 7

# Outcome codes inside the kernel; -1 is "no label".
_NONE, _TARGET, _STOP, _TIMEOUT = -1, 0, 1, 2

# Session labels are ns at 00:00 UTC of the session date, negative before 1970: "none" is int64 min.
_OUTSIDE_SESSION = np.iinfo(np.int64).min

LABEL_COLUMNS = ("label", "outcome", "t_end", "exit_price", "ret", "weight")


class Outcome(StrEnum):
    """How a label resolved; the ``outcome`` column's categories, in this order."""

    TARGET = "target"
    STOP = "stop"
    TIMEOUT = "timeout"


_OUTCOME_BY_CODE = (Outcome.TARGET.value, Outcome.STOP.value, Outcome.TIMEOUT.value)


@dataclass(frozen=True, slots=True)
class BarrierParams:
    """The barriers of one label set, in ATR multiples of the entry bar's ATR.

    The defaults are the engine's defaults (``DecideParams``: stop 1.5 ATR, first target 1R, swing
    horizon 5 bars); ``from_decide`` keeps them in step when those change. ``horizon_bars`` is read
    by ``swing`` labels only: a ``day`` label's limit is its session's close.
    """

    signal_type: SignalType = SignalType.SWING
    stop_atr: float = 1.5
    target_atr: float = 1.5
    horizon_bars: int = 5

    def __post_init__(self) -> None:
        if self.signal_type not in (SignalType.SWING, SignalType.DAY):
            raise ValueError(
                f"no barrier definition for {self.signal_type!s} labels: only swing and day are labelled "
                "from bars (event and options signals need their catalyst / option chain)"
            )
        for name in ("stop_atr", "target_atr"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number (got {value})")
        if self.signal_type is SignalType.SWING and not (
            MIN_SWING_BARS <= self.horizon_bars <= MAX_SWING_BARS
        ):
            raise ValueError(
                f"swing horizon_bars must be {MIN_SWING_BARS}–{MAX_SWING_BARS} (got {self.horizon_bars})"
            )

    @classmethod
    def from_decide(
        cls,
        decide: DecideParams,
        *,
        signal_type: SignalType = SignalType.SWING,
        target_index: int = 0,
    ) -> BarrierParams:
        """The barriers of the signals ``engine.decide.build_signal`` makes with ``decide``.

        ``target_index`` picks which of its R-multiple targets is the label's target (0 → 1R).
        """
        return cls(
            signal_type=signal_type,
            stop_atr=decide.stop_atr,
            target_atr=decide.target_r[target_index] * decide.stop_atr,
            horizon_bars=decide.swing_horizon_bars,
        )


def triple_barrier_labels(
    bars: pd.DataFrame,
    atr: str | npt.ArrayLike = "atr",
    *,
    direction: Direction = Direction.LONG,
    params: BarrierParams = BarrierParams(),
    calendar: SessionCalendar | Callable[[str], SessionCalendar] | None = None,
) -> pd.DataFrame:
    """One label per row of ``bars``, on the same index, for a ``direction`` entry at each close.

    ``bars`` holds ``ts`` (int ns UTC, the bar's open time), ``symbol``, ``open high low close``; any
    row order (results follow the input rows), at most one row per (symbol, ts). ``atr`` is a column
    name or an array aligned with the rows. ``calendar`` (``day`` labels only) is a calendar or a
    function of the symbol; default ``marketdata.calendar.calendar_for`` (NYSE for equities, UTC days
    for crypto).

    Columns: ``label`` (1.0 target first; 0.0 stop first or time-out; NaN no label), ``outcome``
    (categorical target/stop/timeout), ``t_end`` (nullable Int64 ns), ``exit_price``, ``ret`` (the
    trade's return to ``t_end`` in ``direction``: positive is a gain for a short too), ``weight``
    (average uniqueness in (0, 1]).
    """
    for col in ("ts", "symbol", "open", "high", "low", "close"):
        if col not in bars.columns:
            raise ValueError(f"bars lack column {col!r}; have {list(bars.columns)}")
    n = len(bars)
    atr_values = _atr_array(bars, atr)
    ts = bars["ts"].to_numpy(dtype=np.int64)
    codes, uniques = pd.factorize(bars["symbol"], sort=False)
    if (codes < 0).any():
        raise ValueError(f"row {int(np.flatnonzero(codes < 0)[0])} has no symbol")
    order = np.lexsort((ts, codes))
    ts_s, codes_s = ts[order], codes[order]
    same_symbol = codes_s[1:] == codes_s[:-1]
    dup = same_symbol & (ts_s[1:] == ts_s[:-1])
    if dup.any():
        k = int(np.flatnonzero(dup)[0])
        raise ValueError(
            f"two rows for symbol {uniques[codes_s[k]]!r} at ts {int(ts_s[k])}: a label needs one bar per time"
        )

    # Last row of each row's symbol: a window never reaches into the next symbol.
    sym_last = np.flatnonzero(np.r_[~same_symbol, n > 0])
    group_end = sym_last[np.searchsorted(sym_last, np.arange(n))].astype(np.int64)
    if params.signal_type is SignalType.SWING:
        last, complete = _swing_windows(n, group_end, params.horizon_bars)
    else:
        session = _session_ids(ts_s, codes_s, uniques, calendar)
        last, complete = _day_windows(session, codes_s)

    def sorted_col(name: str) -> npt.NDArray[np.float64]:
        return np.ascontiguousarray(bars[name].to_numpy(dtype=np.float64)[order])

    outcome, end_idx, exit_price, open_until = _scan(
        sorted_col("open"),
        sorted_col("high"),
        sorted_col("low"),
        sorted_col("close"),
        np.ascontiguousarray(atr_values[order]),
        last,
        complete,
        float(direction.sign),
        float(params.target_atr),
        float(params.stop_atr),
    )
    labelled = outcome >= 0
    weight = _uniqueness(open_until, outcome)
    close_s = sorted_col("close")
    with np.errstate(divide="ignore", invalid="ignore"):  # unlabelled rows may have a zero close
        ret = np.where(labelled, direction.sign * (exit_price - close_s) / close_s, np.nan)

    # Back to the caller's row order.
    inv = np.empty(n, dtype=np.int64)
    inv[order] = np.arange(n)
    outcome_in = outcome[inv]
    labelled_in = labelled[inv]
    end_ts = np.where(labelled, ts_s[np.maximum(end_idx, 0)], 0)[inv]
    out = pd.DataFrame(index=bars.index)
    out["label"] = np.where(labelled_in, (outcome_in == _TARGET).astype(np.float64), np.nan)
    out["outcome"] = pd.Categorical.from_codes(
        outcome_in.astype(np.int64), categories=pd.Index(_OUTCOME_BY_CODE)
    )
    out["t_end"] = pd.arrays.IntegerArray(end_ts, ~labelled_in)
    out["exit_price"] = np.where(labelled_in, exit_price[inv], np.nan)
    out["ret"] = ret[inv]
    out["weight"] = weight[inv]
    return out


def _atr_array(bars: pd.DataFrame, atr: str | npt.ArrayLike) -> npt.NDArray[np.float64]:
    if isinstance(atr, str):
        if atr not in bars.columns:
            raise ValueError(f"bars lack the ATR column {atr!r}; pass its name or an array")
        return bars[atr].to_numpy(dtype=np.float64)
    values = np.asarray(atr, dtype=np.float64)
    if values.shape != (len(bars),):
        raise ValueError(f"atr has shape {values.shape}; expected ({len(bars)},), one value per bar")
    return values


def _swing_windows(
    n: int, group_end: npt.NDArray[np.int64], horizon: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Last bar of each row's window and whether the window lies wholly inside the data."""
    want = np.arange(n, dtype=np.int64) + horizon
    return np.minimum(want, group_end).astype(np.int64), want <= group_end


def _day_windows(
    session: npt.NDArray[np.int64], codes: npt.NDArray[np.intp]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """A window is the rest of the run of bars sharing the row's session (and symbol).

    Complete when a later bar of the symbol exists: then the session's bars in the data are all the
    bars it had. A row outside any session gets an empty window (``last`` = itself) — no label.
    """
    n = len(session)
    key_change = np.r_[True, (session[1:] != session[:-1]) | (codes[1:] != codes[:-1])]
    run_start = np.flatnonzero(key_change)
    run_last = np.r_[run_start[1:], n] - 1
    run_len = np.diff(np.r_[run_start, n])
    last = np.repeat(run_last, run_len).astype(np.int64)
    sym_change = np.r_[codes[1:] != codes[:-1], True]  # True at each symbol's last row
    complete = ~sym_change[last]
    outside = session == _OUTSIDE_SESSION
    last[outside] = np.flatnonzero(outside)
    return last, complete & ~outside


def _session_ids(
    ts: npt.NDArray[np.int64],
    codes: npt.NDArray[np.intp],
    uniques: pd.Index,
    calendar: SessionCalendar | Callable[[str], SessionCalendar] | None,
) -> npt.NDArray[np.int64]:
    """Per row, the label of the session the bar belongs to (``_OUTSIDE_SESSION`` outside any).

    Asked of the calendar's own ``session_at``, once per distinct timestamp, so its rules hold here
    too: a bar stamped at the close (a minute file's 16:00 closing print) is the session's last bar,
    not a bar outside it, and lunch breaks do not split a session.
    """
    from tradesignals.marketdata.calendar import SessionCalendar, calendar_for

    if calendar is None:
        resolve: Callable[[str], SessionCalendar] = calendar_for
    elif isinstance(calendar, SessionCalendar):
        fixed = calendar

        def resolve(_symbol: str) -> SessionCalendar:
            return fixed

    else:
        resolve = calendar
    out = np.full(len(ts), _OUTSIDE_SESSION, dtype=np.int64)
    by_calendar: dict[int, tuple[SessionCalendar, list[int]]] = {}
    for code, symbol in enumerate(uniques):
        cal = resolve(str(symbol))
        by_calendar.setdefault(id(cal), (cal, []))[1].append(code)
    for cal, cal_codes in by_calendar.values():
        rows = np.flatnonzero(np.isin(codes, cal_codes))
        times, where = np.unique(ts[rows], return_inverse=True)
        labels = np.empty(len(times), dtype=np.int64)
        for i, t in enumerate(times.tolist()):
            session = cal.session_at(t)
            labels[i] = _OUTSIDE_SESSION if session is None else session.label
        out[rows] = labels[where]
    return out


@njit(cache=True, nogil=True)
def _scan(
    open_: npt.NDArray[np.float64],
    high: npt.NDArray[np.float64],
    low: npt.NDArray[np.float64],
    close: npt.NDArray[np.float64],
    atr: npt.NDArray[np.float64],
    last: npt.NDArray[np.int64],
    complete: npt.NDArray[np.bool_],
    sign: float,
    target_atr: float,
    stop_atr: float,
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Outcome code, resolving row, exit price and last bar known open, per row (sorted by symbol, time).

    ``open_until`` is the last bar through which the hypothetical trade is known to be open, labelled
    or not: a censored trade was open to the data end, one that met a hole in the data up to the bar
    before it. Uniqueness counts every such trade, so a label's weight, like the label, depends only
    on bars up to its ``t_end`` (whether a later-starting trade ends up censored does not).

    Prices are turned into the long frame by ``sign`` so one branch serves both directions: for a
    short, ``-price`` rises when the price falls, and high/low swap roles.
    """
    n = close.shape[0]
    outcome = np.full(n, _NONE, dtype=np.int8)
    end_idx = np.full(n, -1, dtype=np.int64)
    exit_price = np.full(n, np.nan)
    open_until = np.full(n, -1, dtype=np.int64)
    for t in range(n):
        entry = close[t]
        a = atr[t]
        window_last = last[t]
        if not (np.isfinite(entry) and np.isfinite(a) and a > 0.0 and entry > 0.0) or window_last <= t:
            continue
        target = entry + sign * target_atr * a
        stop = entry - sign * stop_atr * a
        if target <= 0.0 or stop <= 0.0:
            continue
        # In the long frame (prices times ``sign``) favourable is larger, for both directions.
        l_target = sign * target
        l_stop = sign * stop
        resolved = False
        open_until[t] = window_last
        for j in range(t + 1, window_last + 1):
            o, h, lo, c = open_[j], high[j], low[j], close[j]
            if not (np.isfinite(o) and np.isfinite(h) and np.isfinite(lo) and np.isfinite(c)):
                resolved = True  # a bar we cannot see: what happened is unknowable, so no label
                open_until[t] = j - 1
                break
            l_open = sign * o
            l_best = sign * h if sign > 0 else sign * lo
            l_worst = sign * lo if sign > 0 else sign * h
            if l_open <= l_stop:  # gapped through the stop: filled at the open
                code, px = _STOP, o
            elif l_open >= l_target:  # gapped through the target: filled at the open
                code, px = _TARGET, o
            elif l_worst <= l_stop:  # stop touched (target too, perhaps: the stop wins)
                code, px = _STOP, stop
            elif l_best >= l_target:
                code, px = _TARGET, target
            else:
                continue
            outcome[t] = code
            end_idx[t] = j
            exit_price[t] = px
            open_until[t] = j
            resolved = True
            break
        if not resolved and complete[t]:
            outcome[t] = _TIMEOUT
            end_idx[t] = window_last
            exit_price[t] = close[window_last]
    return outcome, end_idx, exit_price, open_until


@njit(cache=True, nogil=True)
def _uniqueness(open_until: npt.NDArray[np.int64], outcome: npt.NDArray[np.int8]) -> npt.NDArray[np.float64]:
    """Average uniqueness per label over the bars ``t + 1 … t_end`` it spans (NaN where unlabelled).

    Concurrency at bar ``j`` counts every trade known open at ``j`` (``t < j <= open_until``),
    labelled or censored. Spans never cross symbols (a window stops at the symbol's last row), so one
    difference array over the sorted rows serves every symbol at once. Each weight is summed over its
    own span rather than read off a running sum, so it is exact: 1.0 for a lone label, never 1 + 1e-11.
    """
    n = open_until.shape[0]
    diff = np.zeros(n + 1, dtype=np.int64)
    for t in range(n):
        if open_until[t] > t:
            diff[t + 1] += 1
            diff[open_until[t] + 1] -= 1
    concurrency = np.zeros(n, dtype=np.int64)
    running = 0
    for j in range(n):
        running += diff[j]
        concurrency[j] = running
    weight = np.full(n, np.nan)
    for t in range(n):
        if outcome[t] >= 0:
            total = 0.0
            for j in range(t + 1, open_until[t] + 1):
                total += 1.0 / concurrency[j]
            weight[t] = total / (open_until[t] - t)
    return weight


def labelled_mask(labels: pd.DataFrame) -> pd.Series:
    """Rows that carry a label (the rest are censored or could not be signals)."""
    return labels["label"].notna()


def outcome_counts(labels: pd.DataFrame) -> dict[str, int]:
    """Labelled rows per outcome, every outcome present (zero where none)."""
    counts = labels["outcome"].value_counts(dropna=True)
    return {o.value: int(counts.get(o.value, 0)) for o in Outcome}


__all__ = [
    "LABEL_COLUMNS",
    "MAX_SWING_BARS",
    "MIN_SWING_BARS",
    "BarrierParams",
    "Outcome",
    "labelled_mask",
    "outcome_counts",
    "triple_barrier_labels",
]
