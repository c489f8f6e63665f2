"""The rulebook's trade plan: stop, targets and expiry of a signal, from one set of parameters.

Labels (what the model learns), the lifecycle (what the ledger records), the backtest and the track
record all read these parameters and these functions; none keeps a copy. A model records the
`PlanParams` its labels were made with (``as_dict``), and the engine refuses a model whose plan
differs from its own, so a confidence always speaks about the plan it is attached to.

The plan, for a decision at the close of a bar (the *decision price*, ``entry`` in a signal):

* **Stop** ``stop_atr`` × ATR from the decision price, against the direction.
* **Targets** at ``target_r`` multiples of that risk (1R, 2R, 3R by default), with the direction.
* **Horizon** per signal type — the one both labels and lifecycle read: a ``swing`` (or ``event``) signal lives
  through the next ``swing_sessions`` trading sessions after the one it was decided in, and expires
  at the last one's close; a ``day`` signal expires at the close of the session it was decided in
  (so none is decided at the closing bell). Sessions come from the symbol's calendar
  (``domain.sessions``): holidays and half days count as the exchange counts them; for crypto a
  session is a UTC day.
* **Cool-down** after a close, in bars of the engine's timeframe.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tradesignals.domain.sessions import SessionCalendar, session_close_after
from tradesignals.domain.signals import Direction, SignalType

MIN_SWING_SESSIONS = 1
MAX_SWING_SESSIONS = 7


class PlanMismatch(ValueError):
    """A model's labels were made under another plan than the engine trades."""


@dataclass(frozen=True, slots=True)
class PlanParams:
    """The numbers of a trade plan. Defaults are the product's published plan."""

    stop_atr: float = 1.5
    target_r: tuple[float, ...] = (1.0, 2.0, 3.0)
    swing_sessions: int = 5
    # After a signal closes, the same symbol and direction wait this many bars before another:
    # a stopped-out idea re-issued on the next bar is the same idea, not new information.
    cooldown_bars: int = 3

    def __post_init__(self) -> None:
        if not (math.isfinite(self.stop_atr) and self.stop_atr > 0):
            raise ValueError(f"stop_atr must be a positive number (got {self.stop_atr})")
        if not self.target_r or any(not (math.isfinite(r) and r > 0) for r in self.target_r):
            raise ValueError(f"target_r must be positive R multiples (got {self.target_r})")
        if any(b <= a for a, b in zip(self.target_r, self.target_r[1:], strict=False)):
            raise ValueError(f"target_r must increase (got {self.target_r})")
        if not MIN_SWING_SESSIONS <= self.swing_sessions <= MAX_SWING_SESSIONS:
            raise ValueError(
                f"swing_sessions must be {MIN_SWING_SESSIONS}–{MAX_SWING_SESSIONS} (got {self.swing_sessions})"
            )
        if self.cooldown_bars < 0:
            raise ValueError(f"cooldown_bars must be >= 0 (got {self.cooldown_bars})")

    def horizon_sessions(self, kind: SignalType) -> int:
        """Sessions after the decision's own that a signal of ``kind`` lives through (0 = its own)."""
        if kind is SignalType.SWING or kind is SignalType.EVENT:
            # An event signal lives at most a swing signal's horizon, and ends at or before its
            # event when it has one (``engine.decide.build_signal``'s ``event_ns``).
            return self.swing_sessions
        if kind is SignalType.DAY:
            return 0
        raise ValueError(f"the bar plan has no horizon for {kind.value} signals")

    def as_dict(self) -> dict[str, Any]:
        """What a model records of the plan its labels follow (JSON-safe)."""
        return {
            "stop_atr": self.stop_atr,
            "target_r": list(self.target_r),
            "swing_sessions": self.swing_sessions,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlanParams:
        return cls(
            stop_atr=float(data["stop_atr"]),
            target_r=tuple(float(r) for r in data["target_r"]),
            swing_sessions=int(data["swing_sessions"]),
        )

    def require_same(self, other: PlanParams, *, what: str = "model") -> None:
        """Refuse a plan whose stop, targets or horizon differ (one line naming both)."""
        if self.as_dict() != other.as_dict():
            raise PlanMismatch(
                f"the {what} was labelled with plan {other.as_dict()} but the engine trades {self.as_dict()}"
            )


@dataclass(frozen=True, slots=True)
class Levels:
    """The published prices of one decision, rounded as a person reads them (`round_price`).

    ``risk`` is 1R in price: the distance from the decision price to the stop, after rounding — the
    unit every R multiple and every position size is measured in.
    """

    entry: float
    stop: float
    targets: tuple[float, ...]

    @property
    def risk(self) -> float:
        return abs(self.entry - self.stop)


def levels(price: float, atr: float, direction: Direction, params: PlanParams) -> Levels | None:
    """Stop and targets around the decision ``price``; None where no plan can be made.

    None for a non-finite or non-positive price or ATR, a stop or target at or below zero, and levels
    that rounding collapses onto the price (a tick-sized ATR on a cheap symbol).
    """
    if not (math.isfinite(price) and math.isfinite(atr)) or price <= 0 or atr <= 0:
        return None
    s = direction.sign
    risk = params.stop_atr * atr
    entry = round_price(price)
    stop = round_price(price - s * risk)
    targets = tuple(round_price(price + s * r * risk) for r in params.target_r)
    if stop <= 0 or any(t <= 0 for t in targets):
        return None
    ladder = (stop, entry, *targets)
    if any(s * (b - a) <= 0 for a, b in itertools.pairwise(ladder)):
        return None
    return Levels(entry, stop, targets)


def expiry_ns(decided_ns: int, kind: SignalType, params: PlanParams, calendar: SessionCalendar) -> int | None:
    """When a signal of ``kind`` decided at ``decided_ns`` expires; None when no window fits.

    A day signal decided at (or after) its session's close has no time left and gets None, as does a
    decision outside any session.
    """
    horizon = params.horizon_sessions(kind)
    if horizon == 0:
        session = calendar.session_at(decided_ns)
        if session is None or session.close <= decided_ns:
            return None
        return session.close
    return session_close_after(calendar, decided_ns, horizon)


def round_price(price: float) -> float:
    """Round to six significant digits, and never below cents: 31.4371, 60012.35, 0.512346.

    Enough precision for any stop or target a person would place, without the float noise that
    ATR arithmetic leaves behind. Labels round exactly as signals do, so a label's barriers are the
    published levels to the last digit.
    """
    if price <= 0 or not math.isfinite(price):
        return price
    decimals = max(2, 5 - math.floor(math.log10(price)))
    return round(price, decimals)


__all__ = [
    "MAX_SWING_SESSIONS",
    "MIN_SWING_SESSIONS",
    "Levels",
    "PlanMismatch",
    "PlanParams",
    "expiry_ns",
    "levels",
    "round_price",
]
