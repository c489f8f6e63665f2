"""Labels: the outcome the lifecycle would record for a signal decided at each bar — net of costs.

What we train on must be what we trade, so a label is not a second definition of an outcome: it is
the rulebook run over the bars that follow.

* The plan (stop, targets, expiry) is ``domain.trade_plan``'s: the same rounded levels a published
  signal carries (`levels`), and the same expiry (`expiry_ns`: a swing signal lives through the next
  ``swing_sessions`` sessions of the symbol's calendar, a day signal to its session's close).
* The decision is at bar ``t``'s close — when the bar really closes (``domain.sessions.bar_close_ns``)
  — and the signal is published then. It fills at the **open of the next bar**, never at bar ``t``'s
  close; an open already beyond the stop or the first target is ``not_filled`` (no label: not a trade).
* Each later bar is judged by ``domain.exits.bar_exit`` — the very function the lifecycle calls,
  compiled here by numba: gaps fill at the open, the stop wins a bar that touches both, the position
  is held to the stop, the last target or expiry; at expiry it exits at the last close at or before it.
* Costs are ``domain.costs``' for the symbol's asset class (``domain.sessions.asset_class_of``),
  applied with the same formula (``round_trip_costs_pct``).
* ``label`` is **the win** (``domain.exits.is_win``): net R at the plan's exit above zero. 1.0 or 0.0;
  NaN where there is no label.

``tests/unit/models/test_labels_lifecycle.py`` (hypothesis) and a real-data test hold this to the
lifecycle bar by bar: same event, same exit, same net R.

No label (NaN, never an exception): where the engine could not have made the signal (NaN or
non-positive ATR, no plan, no expiry — a day decision at the closing bell); a signal not filled; a
window the data does not cover (right-censored: the symbol's bars end before the outcome is known);
and a bar with a missing price before the outcome resolved (what happened during it is unknowable).

``t_end`` is the timestamp of the last bar the outcome used — the end of the label's information
horizon, which ``models.validation`` purges on. ``weight`` is the label's average uniqueness
(López de Prado, *Advances in Financial Machine Learning*, ch. 4): each bar ``j`` is shared by ``c_j``
concurrent trades of that symbol (censored ones included, so that a weight, like a label, depends on
no price after its ``t_end``), and a label's weight is the mean of ``1 / c_j`` over its bars.

The scan is a numba loop over rows with a few bars each; computing levels and expiries costs more
than the scan (``bench/labels.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from numba import njit

from tradesignals.domain import costs as _costs
from tradesignals.domain import exits as _exits
from tradesignals.domain.costs import DEFAULT_SCHEDULE, CostSchedule
from tradesignals.domain.market import Timeframe
from tradesignals.domain.sessions import SessionCalendar, asset_class_of, bar_close_ns
from tradesignals.domain.signals import Direction, SignalType
from tradesignals.domain.trade_plan import PlanParams, expiry_ns, round_price

# The rulebook's own functions, compiled: the kernel below calls exactly what the lifecycle calls.
_bar_exit = njit(cache=True, nogil=True)(_exits.bar_exit)
_fill_refused = njit(cache=True, nogil=True)(_exits.fill_refused)
_tick_exit = njit(cache=True, nogil=True)(_exits.tick_exit)
_gross_pct = njit(cache=True, nogil=True)(_exits.gross_pct)
_pct_to_r = njit(cache=True, nogil=True)(_exits.pct_to_r)
_costs_pct = njit(cache=True, nogil=True)(_costs.round_trip_costs_pct)

_EXIT_NONE = _exits.EXIT_NONE
_EXIT_STOP = _exits.EXIT_STOP
_EXIT_TARGET = _exits.EXIT_TARGET
_EXIT_EXPIRED = _exits.EXIT_EXPIRED
_NOT_FILLED = _exits.NOT_FILLED
_NO_LABEL = -1

LABEL_COLUMNS = (
    "label",
    "outcome",
    "t_end",
    "fill_price",
    "exit_price",
    "gross_r",
    "net_r",
    "ret",
    "weight",
)


class Outcome(StrEnum):
    """How a label resolved; the ``outcome`` column's categories (``domain.outcomes.OutcomeKind``'s values)."""

    TARGET = "target"
    STOP = "stop"
    EXPIRED = "expired"
    NOT_FILLED = "not_filled"


# Category order follows the exit codes: code 1 → index 0 …
_OUTCOME_BY_CODE = (Outcome.STOP.value, Outcome.TARGET.value, Outcome.EXPIRED.value, Outcome.NOT_FILLED.value)


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """What a label set means: the signal type, the trade plan and the cost schedule it was run with.

    A model records it (``as_dict``); the engine refuses a model whose plan is not its own.
    """

    signal_type: SignalType = SignalType.SWING
    plan: PlanParams = field(default_factory=PlanParams)
    costs: CostSchedule = DEFAULT_SCHEDULE

    def __post_init__(self) -> None:
        if self.signal_type not in (SignalType.SWING, SignalType.DAY):
            raise ValueError(
                f"no label definition for {self.signal_type!s} signals: only swing and day are labelled "
                "from bars (event and options signals need their catalyst / option chain)"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelSpec:
        """The spec a model recorded (``as_dict``); a model from before the rulebook is refused."""
        if "plan" not in data or "costs" not in data:
            raise ValueError(
                "the model was labelled before the rulebook (no plan and costs recorded): retrain it "
                "with `tradesignals train`"
            )
        return cls(
            signal_type=SignalType(str(data["signal_type"])),
            plan=PlanParams.from_dict(data["plan"]),
            costs=CostSchedule.from_dict(data["costs"]),
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "signal_type": self.signal_type.value,
            "plan": self.plan.as_dict(),
            "costs": self.costs.as_dict(),
            "event": "win: net R > 0 at the plan's exit (stop, last target or expiry), fill at the next open",
        }


CalendarChoice = SessionCalendar | Callable[[str], SessionCalendar] | None


def _resolver(calendar: CalendarChoice) -> Callable[[str], SessionCalendar]:
    from tradesignals.marketdata.calendar import calendar_for

    if calendar is None:
        return calendar_for
    if isinstance(calendar, SessionCalendar):
        fixed = calendar

        def resolve(_symbol: str) -> SessionCalendar:
            return fixed

        return resolve
    return calendar


def triple_barrier_labels(
    bars: pd.DataFrame,
    atr: str | npt.ArrayLike = "atr",
    *,
    direction: Direction = Direction.LONG,
    spec: LabelSpec = LabelSpec(),
    timeframe: Timeframe = Timeframe.D1,
    calendar: CalendarChoice = None,
    exclude: npt.ArrayLike | None = None,
    detail: bool = False,
) -> pd.DataFrame:
    """One label per row of ``bars``, on the same index, for a ``direction`` signal decided at each close.

    ``bars`` holds ``ts`` (int ns UTC, the bar's open time), ``symbol``, ``open high low close``; any
    row order (results follow the input rows), at most one row per (symbol, ts), all of one
    ``timeframe``. ``atr`` is a column name or an array aligned with the rows. ``calendar`` is a
    calendar or a function of the symbol; default ``marketdata.calendar.calendar_for``. ``exclude``
    (boolean, aligned with the rows) marks bars that must never decide a label — suspect prices
    (a glitch, an unadjusted corporate action): a window that reaches one gets no label.

    ``detail`` adds what the vectorized backtest needs to follow signals as the engine does
    (``backtest/vectorized.py``): ``signal`` (the engine would publish one here), ``entry`` and
    ``stop`` (the plan's rounded levels), ``decided_at`` (the bar's real close), ``fill`` (NaN where
    none), ``filled_at`` and ``closed_at`` (ns; 0 where none) and
    ``settled_ts`` — the open time of the bar at which the lifecycle settles the outcome (from that
    bar's decision on the signal is no longer open), -1 where the data ends first (censored).

    Columns: ``label`` (1.0 win, 0.0 not, NaN no label), ``outcome`` (categorical target / stop /
    expired / not_filled; NaN where unknown), ``t_end`` (nullable Int64 ns), ``fill_price``,
    ``exit_price``, ``gross_r``, ``net_r``, ``ret`` (net P/L as a fraction of the fill), ``weight``
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

    def sorted_col(name: str) -> npt.NDArray[np.float64]:
        return np.ascontiguousarray(bars[name].to_numpy(dtype=np.float64)[order])

    open_, high, low, close = sorted_col("open"), sorted_col("high"), sorted_col("low"), sorted_col("close")
    if exclude is not None:
        bad = np.asarray(exclude, dtype=bool)
        if bad.shape != (n,):
            raise ValueError(f"exclude has shape {bad.shape}; expected ({n},)")
        bad_s = bad[order]
        # A suspect bar is as unknowable as a missing one: the kernel gives up where it meets one.
        open_ = np.where(bad_s, np.nan, open_)
    resolve = _resolver(calendar)
    close_ns, expiry, per_side, borrow = _times_and_costs(ts_s, codes_s, uniques, timeframe, spec, resolve)
    entry, stop, first, final = _levels(close, atr_values[order], direction, spec.plan)
    if exclude is not None:
        entry = np.where(bad_s, np.nan, entry)  # nor is a decision taken on a suspect close

    outcome, end_idx, fill, exit_price, closed_ns, filled_ns, open_until = _scan(
        open_,
        high,
        low,
        close,
        ts_s,
        close_ns,
        expiry,
        entry,
        stop,
        first,
        final,
        group_end,
        float(direction.sign),
    )
    traded = (outcome == _EXIT_STOP) | (outcome == _EXIT_TARGET) | (outcome == _EXIT_EXPIRED)
    sign = float(direction.sign)
    with np.errstate(divide="ignore", invalid="ignore"):
        gross = np.where(traded, sign * (exit_price - fill) * 100.0 / fill, np.nan)
        costs = _costs_vector(sign, fill, exit_price, closed_ns - filled_ns, per_side, borrow)
        net = gross - costs
        risk = np.abs(entry - stop)
        gross_r = np.where(traded, gross * fill / (100.0 * risk), np.nan)
        net_r = np.where(traded, net * fill / (100.0 * risk), np.nan)
    label_s = np.where(traded, (net_r > 0.0).astype(np.float64), np.nan)
    weight = _uniqueness(open_until, traded.astype(np.int8) - 1)

    inv = np.empty(n, dtype=np.int64)
    inv[order] = np.arange(n)
    known = outcome >= 1
    out = pd.DataFrame(index=bars.index)
    out["label"] = label_s[inv]
    out["outcome"] = pd.Categorical.from_codes(
        np.where(known, outcome.astype(np.int64) - 1, -1)[inv], categories=pd.Index(_OUTCOME_BY_CODE)
    )
    end_ts = np.where(known, ts_s[np.maximum(end_idx, 0)], 0)[inv]
    out["t_end"] = pd.arrays.IntegerArray(end_ts, ~known[inv])
    out["fill_price"] = np.where(traded, fill, np.nan)[inv]
    out["exit_price"] = np.where(traded, exit_price, np.nan)[inv]
    out["gross_r"] = gross_r[inv]
    out["net_r"] = net_r[inv]
    out["ret"] = (net / 100.0)[inv]
    out["weight"] = weight[inv]
    if detail:
        made = (expiry > close_ns) & np.isfinite(entry) & np.isfinite(close)
        closed = np.where(
            traded,
            closed_ns,
            np.where(
                outcome == _NOT_FILLED,
                np.where(ts_s[np.maximum(end_idx, 0)] >= expiry, expiry, ts_s[np.maximum(end_idx, 0)]),
                0,
            ),
        )
        settled = _settled(outcome, end_idx, closed, close_ns, ts_s, group_end)
        out["signal"] = made[inv]
        out["entry"] = np.where(made, entry, np.nan)[inv]
        out["stop"] = np.where(made, stop, np.nan)[inv]
        out["decided_at"] = close_ns[inv]
        out["fill"] = fill[inv]  # also where the data ended after the fill (censored)
        out["filled_at"] = np.where(np.isfinite(fill), filled_ns, 0)[inv]
        out["closed_at"] = closed[inv]
        out["settled_ts"] = settled[inv]
    return out


@njit(cache=True, nogil=True)
def _settled(
    outcome: npt.NDArray[np.int8],
    end_idx: npt.NDArray[np.int64],
    closed: npt.NDArray[np.int64],
    close_ns: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    group_end: npt.NDArray[np.int64],
) -> npt.NDArray[np.int64]:
    """Open time of the first bar of the row's symbol whose close is at or after the outcome's time.

    The lifecycle settles an exit or a refused fill on the bar that decides it (``end_idx``) and an
    expiry on the first bar closing at or after it (``expire_due`` at each bar's close) — never before
    the bar the scan stopped at. -1 where no outcome is known.
    """
    n = outcome.shape[0]
    out = np.full(n, -1, dtype=np.int64)
    for t in range(n):
        if outcome[t] < 1:
            continue
        m = max(end_idx[t], t + 1)
        while m <= group_end[t] and close_ns[m] < closed[t]:
            m += 1
        if m <= group_end[t]:
            out[t] = ts[m]
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


_TIMES_CACHE: dict[
    tuple[object, ...], tuple[SessionCalendar, npt.NDArray[np.int64], npt.NDArray[np.int64]]
] = {}


def _closes_and_expiries(
    times: npt.NDArray[np.int64], timeframe: Timeframe, spec: LabelSpec, cal: SessionCalendar
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Bar close and signal expiry per distinct time, asked of the rulebook; the last few are kept.

    Labelling both directions of one bar set (the vectorized backtest) asks the same question twice;
    the answer depends only on the times, the calendar, the timeframe and the plan.
    """
    key = (id(cal), timeframe, spec.signal_type, spec.plan, times.tobytes())
    hit = _TIMES_CACHE.get(key)
    if hit is not None and hit[0] is cal:
        return hit[1], hit[2]
    closes = np.empty(len(times), dtype=np.int64)
    expiries = np.empty(len(times), dtype=np.int64)
    for i, t in enumerate(times.tolist()):
        c = bar_close_ns(t, timeframe, cal)
        closes[i] = c
        e = expiry_ns(c, spec.signal_type, spec.plan, cal)
        expiries[i] = -1 if e is None else e
    if len(_TIMES_CACHE) >= 8:
        _TIMES_CACHE.pop(next(iter(_TIMES_CACHE)))
    _TIMES_CACHE[key] = (cal, closes, expiries)
    return closes, expiries


def _times_and_costs(
    ts: npt.NDArray[np.int64],
    codes: npt.NDArray[np.intp],
    uniques: pd.Index,
    timeframe: Timeframe,
    spec: LabelSpec,
    resolve: Callable[[str], SessionCalendar],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per row: when its bar closes, when a signal decided then expires (-1: none), and its costs.

    Asked of the rulebook (``bar_close_ns``, ``expiry_ns``) once per distinct time and calendar, so its
    rules hold here exactly as they hold live.
    """
    n = len(ts)
    close_ns = np.empty(n, dtype=np.int64)
    expiry = np.full(n, -1, dtype=np.int64)
    per_side = np.empty(n, dtype=np.float64)
    borrow = np.empty(n, dtype=np.float64)
    groups: dict[int, tuple[SessionCalendar, list[int]]] = {}
    side_by_code = np.empty(len(uniques), dtype=np.float64)
    borrow_by_code = np.empty(len(uniques), dtype=np.float64)
    for code, symbol in enumerate(uniques):
        cal = resolve(str(symbol))
        groups.setdefault(id(cal), (cal, []))[1].append(code)
        model = spec.costs.for_class(asset_class_of(str(symbol)))
        side_by_code[code] = model.per_side_bp
        borrow_by_code[code] = model.borrow_bp_per_day
    per_side[:] = side_by_code[codes]
    borrow[:] = borrow_by_code[codes]
    for cal, cal_codes in groups.values():
        rows = np.flatnonzero(np.isin(codes, cal_codes))
        times, where = np.unique(ts[rows], return_inverse=True)
        closes, expiries = _closes_and_expiries(times, timeframe, spec, cal)
        close_ns[rows] = closes[where]
        expiry[rows] = expiries[where]
    return close_ns, expiry, per_side, borrow


def _levels(
    close: npt.NDArray[np.float64], atr: npt.NDArray[np.float64], direction: Direction, plan: PlanParams
) -> tuple[npt.NDArray[np.float64], ...]:
    """Rounded entry, stop, first and last target per row (NaN where no plan) — ``trade_plan.levels``.

    Vectorised: the same arithmetic as ``levels`` on arrays, rounded by `round_prices` (which is
    ``trade_plan.round_price`` to the last bit), with the same refusals. ``test_labels.py`` holds the
    two to equality on random inputs.
    """
    ok = np.isfinite(close) & np.isfinite(atr) & (close > 0) & (atr > 0)
    s = float(direction.sign)
    with np.errstate(invalid="ignore"):
        risk = plan.stop_atr * atr
        entry = round_prices(close)
        stop = round_prices(close - s * risk)
        targets = [round_prices(close + s * r * risk) for r in plan.target_r]
        ok &= stop > 0
        for t in targets:
            ok &= t > 0
        ladder = [stop, entry, *targets]
        for a, b in itertools.pairwise(ladder):
            ok &= s * (b - a) > 0
    nan = np.nan
    return (
        np.where(ok, entry, nan),
        np.where(ok, stop, nan),
        np.where(ok, targets[0], nan),
        np.where(ok, targets[-1], nan),
    )


def round_prices(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``domain.trade_plan.round_price`` over an array, bit for bit, 6× faster than a Python loop.

    ``np.round(x * 10**d) / 10**d`` picks the same decimal as Python's correctly rounded ``round``
    except where ``x * 10**d`` lies within float error of a half (or ``log10`` of a power of ten):
    those few values are handed to ``round_price`` itself.
    """
    x = np.array(x, dtype=np.float64, copy=True)
    ok = np.isfinite(x) & (x > 0)
    xs = x[ok]
    if not xs.size:
        return x
    lg = np.log10(xs)
    dec = np.maximum(2, 5 - np.floor(lg))
    scale = 10.0**dec
    scaled = xs * scale
    out = np.round(scaled) / scale
    unsure = (np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6) | (np.abs(lg - np.round(lg)) < 1e-9)
    for i in np.flatnonzero(unsure).tolist():
        out[i] = round_price(float(xs[i]))
    x[ok] = out
    return x


def _costs_vector(
    sign: float,
    fill: npt.NDArray[np.float64],
    exit_price: npt.NDArray[np.float64],
    held_ns: npt.NDArray[np.int64],
    per_side: npt.NDArray[np.float64],
    borrow: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    return _costs_loop(sign, fill, exit_price, held_ns.astype(np.float64), per_side, borrow)


@njit(cache=True, nogil=True)
def _costs_loop(
    sign: float,
    fill: npt.NDArray[np.float64],
    exit_price: npt.NDArray[np.float64],
    held_ns: npt.NDArray[np.float64],
    per_side: npt.NDArray[np.float64],
    borrow: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    out = np.full(fill.shape[0], np.nan)
    for i in range(fill.shape[0]):
        if np.isfinite(fill[i]) and np.isfinite(exit_price[i]):
            out[i] = _costs_pct(sign, fill[i], exit_price[i], held_ns[i], per_side[i], borrow[i])
    return out


@njit(cache=True, nogil=True)
def _scan(
    open_: npt.NDArray[np.float64],
    high: npt.NDArray[np.float64],
    low: npt.NDArray[np.float64],
    close: npt.NDArray[np.float64],
    ts: npt.NDArray[np.int64],
    close_ns: npt.NDArray[np.int64],
    expiry: npt.NDArray[np.int64],
    entry: npt.NDArray[np.float64],
    stop: npt.NDArray[np.float64],
    first: npt.NDArray[np.float64],
    final: npt.NDArray[np.float64],
    group_end: npt.NDArray[np.int64],
    sign: float,
) -> tuple[
    npt.NDArray[np.int8],
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
]:
    """Per row (sorted by symbol, time): exit code, last bar used, fill, exit, exit time, fill time, and
    the last bar through which the trade is known open (for uniqueness; -1 where none).

    The walk is the lifecycle's (``engine.lifecycle._Open.on_bar``) for a signal published at the
    row's close: the first bar opening at or after publication fills (or refuses) it; a bar opening at
    or after expiry, or closing after it, ends it at the last price before expiry; otherwise
    ``bar_exit`` decides, and a bar closing exactly at expiry ends it at its close.
    """
    n = close.shape[0]
    outcome = np.full(n, _NO_LABEL, dtype=np.int8)
    end_idx = np.full(n, -1, dtype=np.int64)
    fill = np.full(n, np.nan)
    exit_price = np.full(n, np.nan)
    closed_ns = np.zeros(n, dtype=np.int64)
    filled_ns = np.zeros(n, dtype=np.int64)
    open_until = np.full(n, -1, dtype=np.int64)
    for t in range(n):
        e = expiry[t]
        published = close_ns[t]
        if e <= published or not np.isfinite(entry[t]) or not np.isfinite(close[t]):
            continue
        ge = group_end[t]
        j = t + 1
        while j <= ge and ts[j] < published:
            j += 1
        if j > ge:
            open_until[t] = ge  # censored: the data ends before anything is known
            continue
        if ts[j] >= e:  # no price between publication and expiry: never filled
            outcome[t] = _NOT_FILLED
            end_idx[t] = j
            continue
        price = open_[j]
        if not np.isfinite(price):
            open_until[t] = j - 1
            continue
        if _fill_refused(sign, price, stop[t], first[t]):
            outcome[t] = _NOT_FILLED
            end_idx[t] = j
            continue
        fill[t] = price
        filled_ns[t] = ts[j]
        last = price
        code = _NO_LABEL
        px = np.nan
        when = 0
        end = -1
        k = j
        while True:
            if k > ge:  # censored
                open_until[t] = ge
                break
            if ts[k] >= e:
                code, px, when, end = _EXIT_EXPIRED, last, e, k - 1
                break
            o, h, lo, c = open_[k], high[k], low[k], close[k]
            if not (np.isfinite(o) and np.isfinite(h) and np.isfinite(lo) and np.isfinite(c)):
                open_until[t] = k - 1  # a bar we cannot see: what happened is unknowable
                break
            if close_ns[k] > e:  # straddles expiry: only its open is known to come before
                at_open_exit = _tick_exit(sign, stop[t], final[t], o)
                if at_open_exit != _EXIT_NONE:
                    code, px, when, end = at_open_exit, o, ts[k], k
                else:
                    code, px, when, end = _EXIT_EXPIRED, o, e, k
                break
            hit, hit_px, at_open = _bar_exit(sign, stop[t], final[t], o, h, lo)
            if hit != _EXIT_NONE:
                code, px, end = hit, hit_px, k
                when = ts[k] if at_open else close_ns[k]
                break
            last = c
            if close_ns[k] >= e:
                code, px, when, end = _EXIT_EXPIRED, c, e, k
                break
            k += 1
        if code == _NO_LABEL:
            continue
        outcome[t] = code
        end_idx[t] = end
        exit_price[t] = px
        closed_ns[t] = when
        open_until[t] = end if end > j else j
    return outcome, end_idx, fill, exit_price, closed_ns, filled_ns, open_until


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
    """Rows that carry a label (the rest are censored, not filled, or could not be signals)."""
    return labels["label"].notna()


def outcome_counts(labels: pd.DataFrame) -> dict[str, int]:
    """Rows per outcome, every outcome present (zero where none); not_filled rows carry no label."""
    counts = labels["outcome"].value_counts(dropna=True)
    return {o.value: int(counts.get(o.value, 0)) for o in Outcome}


__all__ = [
    "LABEL_COLUMNS",
    "LabelSpec",
    "Outcome",
    "labelled_mask",
    "outcome_counts",
    "triple_barrier_labels",
]
