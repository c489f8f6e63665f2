"""Turn a directional decision into a concrete signal: entry, ATR stop, 1R/2R/3R targets, expiry.

Kept separate from the scorer so that the placeholder rule and the ML model share the same
price arithmetic and the same de-duplication.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from tradesignals.domain.market import Bar, Timeframe, to_datetime
from tradesignals.domain.signals import (
    MAX_SIGNAL_LIFETIME,
    Direction,
    InvalidSignal,
    Signal,
    SignalType,
    new_signal_id,
)
from tradesignals.marketdata.calendar import SessionCalendar
from tradesignals.news.earnings import EarningsCalendar


@dataclass(frozen=True, slots=True)
class DecideParams:
    stop_atr: float = 1.5
    target_r: tuple[float, ...] = (1.0, 2.0, 3.0)
    swing_horizon_bars: int = 5
    day_horizon_bars: int = 60
    # After a signal closes, the same symbol and direction wait this many bars before another:
    # a stopped-out idea re-issued on the next bar is the same idea, not new information.
    cooldown_bars: int = 3


def round_price(price: float) -> float:
    """Round to six significant digits, and never below cents: 31.4371, 60012.35, 0.512346.

    Enough precision for any stop or target a person would place, without the float noise that
    ATR arithmetic leaves behind.
    """
    if price <= 0 or not math.isfinite(price):
        return price
    decimals = max(2, 5 - math.floor(math.log10(price)))
    return round(price, decimals)


def signal_type_for(timeframe: Timeframe) -> SignalType:
    return SignalType.SWING if timeframe is Timeframe.D1 else SignalType.DAY


CalendarLike = SessionCalendar | Callable[[str], SessionCalendar]


def _calendar(calendar: CalendarLike | None, symbol: str) -> SessionCalendar | None:
    if calendar is None:
        return None
    return calendar(symbol) if callable(calendar) else calendar


def signal_window(
    bar: Bar, kind: SignalType, horizon_bars: int, calendar: SessionCalendar | None
) -> tuple[int, int] | None:
    """(created, expires) in ns for a signal entered at the close of ``bar``; None if none fits.

    With a calendar the times follow the exchange, as the labels the model learns from do: a
    daily bar closes at its session's close (not midnight), a swing signal lives ``horizon_bars``
    *sessions*, and a day signal ends with its session — so none is issued at the closing bell.
    Without one, plain bar arithmetic (the UTC-aligned, 24/7 view).
    """
    if calendar is None:
        created = bar.end
        return created, created + horizon_bars * bar.timeframe.ns
    if bar.timeframe is Timeframe.D1:
        own = calendar.sessions_between(bar.ts, bar.ts + Timeframe.D1.ns)
        if not own:
            return None
        created = own[0].close
        ahead = calendar.sessions_between(created, created + (3 * horizon_bars + 10) * Timeframe.D1.ns)
        if len(ahead) < horizon_bars:
            return None
        return created, ahead[horizon_bars - 1].close
    session = calendar.session_at(bar.ts)
    if session is None:
        return None
    created = min(bar.end, session.close)
    expires = min(created + horizon_bars * bar.timeframe.ns, session.close)
    if kind is SignalType.DAY and expires <= created:
        return None
    return created, expires


def build_signal(
    bar: Bar,
    direction: Direction,
    confidence: float,
    atr: float,
    model_version: str,
    reasons: tuple[str, ...] = (),
    params: DecideParams = DecideParams(),
    calendar: CalendarLike | None = None,
    earnings: EarningsCalendar | None = None,
    kind: SignalType | None = None,
) -> Signal | None:
    """A signal entered at the bar's close; None when the numbers cannot make a valid one (ATR 0…)."""
    if atr <= 0:
        return None
    s = direction.sign
    entry = bar.close
    risk = params.stop_atr * atr
    stop = entry - s * risk
    if stop <= 0:
        return None
    targets = tuple(round_price(entry + s * r * risk) for r in params.target_r)
    kind = kind or signal_type_for(bar.timeframe)
    horizon = params.swing_horizon_bars if kind is SignalType.SWING else params.day_horizon_bars
    window = signal_window(bar, kind, horizon, _calendar(calendar, bar.symbol))
    if window is None:
        return None
    created_ns, expires_ns = window
    if earnings is not None and kind is not SignalType.EVENT:
        # Not an earnings play: never hold through the next report.
        release = earnings.next_release(bar.symbol, created_ns)
        if release is not None:
            if release <= created_ns + bar.timeframe.ns:
                return None  # the report is too close for the idea to play out
            expires_ns = min(expires_ns, release)
    created = to_datetime(created_ns)
    expires = min(to_datetime(expires_ns), created + MAX_SIGNAL_LIFETIME)
    try:
        return Signal(
            id=new_signal_id(),
            symbol=bar.symbol,
            type=kind,
            direction=direction,
            entry=round_price(entry),
            stop=round_price(stop),
            targets=targets,
            confidence=confidence,
            created_at=created,
            expires_at=expires,
            model_version=model_version,
            timeframe=bar.timeframe.value,
            reasons=reasons,
        )
    except InvalidSignal:
        return None
