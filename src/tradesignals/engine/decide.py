"""Turn a directional decision into a concrete signal: the rulebook's plan, stamped with its times.

Kept separate from the scorer so that the placeholder rule and the ML model share the same price
arithmetic. Every number comes from ``domain.trade_plan`` (levels, expiry) and every time from
``domain.sessions`` (when the deciding bar closed): the labels a model learns from are made by the
same functions, so a signal's confidence speaks about exactly this plan.

Times: ``decided_at`` is when the deciding bar closed; ``created_at`` is when the signal was
published — the same in bar mode, later in tick mode (the tick that revealed the bar had closed).
The fill is the lifecycle's business: the first tradable price after ``created_at``.
"""

from __future__ import annotations

from collections.abc import Callable

from tradesignals.domain.market import Bar, Timeframe, to_datetime
from tradesignals.domain.sessions import ALWAYS_OPEN, SessionCalendar, bar_close_ns, last_close_by
from tradesignals.domain.signals import (
    MAX_SIGNAL_LIFETIME,
    Direction,
    InvalidSignal,
    Signal,
    SignalType,
    signal_id_for,
)
from tradesignals.domain.trade_plan import PlanParams, expiry_ns, levels
from tradesignals.news.earnings import EarningsCalendar

CalendarLike = SessionCalendar | Callable[[str], SessionCalendar]


def signal_type_for(timeframe: Timeframe) -> SignalType:
    """Daily bars make swing signals, intraday bars day signals."""
    return SignalType.SWING if timeframe is Timeframe.D1 else SignalType.DAY


def calendar_of(calendar: CalendarLike | None, symbol: str) -> SessionCalendar:
    """The symbol's calendar; without one, the always-open clock (UTC days)."""
    if calendar is None:
        return ALWAYS_OPEN
    return calendar if isinstance(calendar, SessionCalendar) else calendar(symbol)


def build_signal(
    bar: Bar,
    direction: Direction,
    confidence: float,
    atr: float,
    model_version: str,
    reasons: tuple[str, ...] = (),
    plan: PlanParams = PlanParams(),
    calendar: CalendarLike | None = None,
    earnings: EarningsCalendar | None = None,
    kind: SignalType | None = None,
    *,
    published_ns: int | None = None,
    base_rate: float | None = None,
    confidence_rank: float | None = None,
    event_ns: int | None = None,
) -> Signal | None:
    """The signal for a decision at ``bar``'s close; None when the plan cannot be made or has no time.

    None for an ATR of 0, levels that cannot exist, a day decision at the closing bell, a publication
    at or after expiry, and a report too close (never held through the next earnings release unless
    it is an earnings play).

    ``event_ns`` (event signals): the time of the event the signal plays, e.g. an earnings release.
    The signal expires at it or earlier (never later than the plan's swing horizon), so it is out
    of the trade at or before the event; the earnings guard does not apply, since the event *is*
    the release. An event signal without one (a reaction to news already out) keeps the guard.
    """
    lv = levels(bar.close, atr, direction, plan)
    if lv is None:
        return None
    kind = kind or signal_type_for(bar.timeframe)
    cal = calendar_of(calendar, bar.symbol)
    decided_ns = bar_close_ns(bar.ts, bar.timeframe, cal)
    created_ns = decided_ns if published_ns is None else max(decided_ns, published_ns)
    expires_ns = expiry_ns(decided_ns, kind, plan, cal)
    if expires_ns is None:
        return None
    if event_ns is not None:
        expires_ns = min(expires_ns, event_ns)
    elif earnings is not None:
        release = earnings.next_release(bar.symbol, created_ns)
        if release is not None:
            if release <= created_ns + bar.timeframe.ns:
                return None  # the report is too close for the idea to play out
            # Out at the last close before the report: expiring at the release itself would let a
            # daily bar's open — after a before-the-open report — be the exit, gap included.
            out_by = last_close_by(cal, release)
            expires_ns = min(expires_ns, release if out_by is None else out_by)
    if expires_ns <= created_ns:
        return None
    created = to_datetime(created_ns)
    expires = min(to_datetime(expires_ns), created + MAX_SIGNAL_LIFETIME)
    try:
        return Signal(
            id=signal_id_for(bar.symbol, kind, direction, decided_ns, model_version),
            symbol=bar.symbol,
            type=kind,
            direction=direction,
            entry=lv.entry,
            stop=lv.stop,
            targets=lv.targets,
            confidence=confidence,
            created_at=created,
            expires_at=expires,
            model_version=model_version,
            timeframe=bar.timeframe.value,
            reasons=reasons,
            decided_at=to_datetime(decided_ns),
            base_rate=base_rate,
            confidence_rank=confidence_rank,
        )
    except InvalidSignal:
        return None
