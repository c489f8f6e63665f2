"""The rulebook's fill and exit rules, and the one definition of a win.

These functions take and return plain numbers only, so the same function objects run in the live
lifecycle (``engine.lifecycle``, in Python) and, compiled by numba, in the label kernel
(``models.labels``): a label *is* the outcome the lifecycle would record for a signal decided at
that bar. A property test holds the two together bar by bar.

**Fill.** A signal is decided at a bar's close and published then (or, in tick mode, when the tick
that closed the bar arrives). It is entered at the first tradable price *after* publication — the
next bar's open, or the next tick — never at the deciding bar's close, which nobody could trade once
the signal existed. If that first price is already at or beyond the stop, or at or beyond the first
target, the trade is **not filled**: the idea was overtaken before anyone could act on it, and it is
recorded and counted as such, never traded.

**Exit.** One position, one exit — the first of the stop, the *last* target, or expiry:

* the open is the one price whose place in a bar is known — first: a bar opening through the stop
  exits at the open (worse than the stop), one opening through the last target exits at the open
  (better than it);
* inside a bar the path is unknown, so the adverse one is assumed (open → adverse extreme →
  favourable extreme → close): **when one bar touches both the stop and the target, the stop counts**;
  a level touched inside a bar fills at the level;
* a tick at or beyond a level exits at the tick's price;
* at expiry the trade exits at the last price at or before expiry (the close of the last bar that
  closed by then — ``domain.sessions.bar_close_ns`` says when that is);
* ``closed_at`` is when the exit happened: the tick's time, the bar's open time for a gap at the
  open, the bar's close for a level touched inside it, ``expires_at`` for an expiry.

**Numbers.** Gross P/L in percent of the fill; costs (``domain.costs``) in percent of the fill; net =
gross − costs. R multiples divide by the plan's risk (decision price to stop, ``Levels.risk``), the
unit the position was sized in, so a fill worse than the decision price shows up as less R.

**The win.** A signal *wins* when its net R at the plan's exit is above zero: the follower made money
after costs. Labels, the online model, the drift monitor, the track record's hit rate and its
reliability table all count this event (`is_win`) and nothing else.
"""

from __future__ import annotations

import math

# Exit codes shared by the label kernel and the lifecycle. Plain ints: numba compiles them as constants.
EXIT_NONE = 0
EXIT_STOP = 1
EXIT_TARGET = 2
EXIT_EXPIRED = 3
NOT_FILLED = 4


def fill_refused(sign: float, price: float, stop: float, first_target: float) -> bool:
    """Whether a first tradable ``price`` is already at/beyond the stop or the first target."""
    return sign * (price - stop) <= 0.0 or sign * (price - first_target) >= 0.0


def tick_exit(sign: float, stop: float, final_target: float, price: float) -> int:
    """The exit a trade makes on one tick at ``price`` (it fills at that price), or ``EXIT_NONE``."""
    if sign * (price - stop) <= 0.0:
        return EXIT_STOP
    if sign * (price - final_target) >= 0.0:
        return EXIT_TARGET
    return EXIT_NONE


def bar_exit(
    sign: float, stop: float, final_target: float, open_: float, high: float, low: float
) -> tuple[int, float, bool]:
    """The exit a trade makes inside one bar: (code, fill price, at the open?).

    ``(EXIT_NONE, nan, False)`` when the bar touches neither level. See the module docstring for the
    order of events inside a bar.
    """
    if sign * (open_ - stop) <= 0.0:
        return EXIT_STOP, open_, True
    if sign * (open_ - final_target) >= 0.0:
        return EXIT_TARGET, open_, True
    adverse = low if sign > 0 else high
    favourable = high if sign > 0 else low
    if sign * (adverse - stop) <= 0.0:
        return EXIT_STOP, stop, False
    if sign * (favourable - final_target) >= 0.0:
        return EXIT_TARGET, final_target, False
    return EXIT_NONE, math.nan, False


def gross_pct(sign: float, fill: float, exit_price: float) -> float:
    """Direction-adjusted return from fill to exit, in percent of the fill (+2.5 = won 2.5 %)."""
    return sign * (exit_price - fill) * 100.0 / fill


def pct_to_r(pct: float, fill: float, risk: float) -> float:
    """A return in percent of ``fill`` expressed in R (multiples of the plan's risk in price)."""
    return pct * fill / (100.0 * risk)


def is_win(net_r: float) -> bool:
    """The one win event: the trade made money after costs at the plan's exit."""
    return net_r > 0.0


__all__ = [
    "EXIT_EXPIRED",
    "EXIT_NONE",
    "EXIT_STOP",
    "EXIT_TARGET",
    "NOT_FILLED",
    "bar_exit",
    "fill_refused",
    "gross_pct",
    "is_win",
    "pct_to_r",
    "tick_exit",
]
