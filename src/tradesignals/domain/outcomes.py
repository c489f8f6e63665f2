"""How a signal ended: the outcome record the lifecycle writes and the track record reads.

The ``closed`` ledger event's ``data`` is `Outcome.to_event_data` — these keys are a public
contract (anyone re-walking the ledger recomputes the track record from them):

==================  ==========================================================================
``outcome``         ``"target"`` | ``"stop"`` | ``"expired"`` | ``"not_filled"``
``win``             bool, `domain.exits.is_win` of ``net_r`` (false when not filled)
``target_index``    int, highest target reached before the exit (0 = first), null when none
``decided_at``      ISO time of the deciding bar's close
``filled_at``       ISO time of the fill; null when not filled
``fill_price``      float, the first tradable price after publication; null when not filled
``first_price``     float, that first price when it was beyond stop or first target (not_filled
                    only); null otherwise
``exit_price``      float; null when not filled
``gross_pnl_pct``   float, direction-adjusted, percent of the fill, before costs; null when not filled
``costs_pct``       float, round-trip costs (+ borrow for shorts), percent of the fill
``net_pnl_pct``     float, gross − costs
``gross_r``         float, gross P/L in R (plan risk: decision price to stop)
``net_r``           float, net P/L in R — the number a win is judged on
``mfe_pct``         float ≥ 0, best excursion from the fill while open, percent of the fill
``mae_pct``         float ≤ 0, worst excursion from the fill while open
``holding_seconds`` number, fill to exit (0 when not filled)
``closed_at``       ISO time of the exit (equals the event's ``at``)
==================  ==========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from tradesignals.domain.exits import is_win
from tradesignals.domain.signals import SignalEvent, SignalEventKind, SignalStatus


class OutcomeKind(StrEnum):
    TARGET = "target"
    STOP = "stop"
    EXPIRED = "expired"
    NOT_FILLED = "not_filled"

    @property
    def status(self) -> SignalStatus:
        """The signal's status once closed this way."""
        return _STATUS[self]


_STATUS = {
    OutcomeKind.TARGET: SignalStatus.TARGET_HIT,
    OutcomeKind.STOP: SignalStatus.STOPPED,
    OutcomeKind.EXPIRED: SignalStatus.EXPIRED,
    OutcomeKind.NOT_FILLED: SignalStatus.NOT_FILLED,
}

OUTCOME_KEYS: tuple[str, ...] = (
    "outcome",
    "win",
    "target_index",
    "decided_at",
    "filled_at",
    "fill_price",
    "first_price",
    "exit_price",
    "gross_pnl_pct",
    "costs_pct",
    "net_pnl_pct",
    "gross_r",
    "net_r",
    "mfe_pct",
    "mae_pct",
    "holding_seconds",
    "closed_at",
)


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat()


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a signal closed; see the module docstring for each field and ``domain.exits`` for the rules."""

    signal_id: str
    symbol: str
    outcome: OutcomeKind
    target_index: int | None
    decided_at: datetime
    filled_at: datetime | None
    fill_price: float | None
    first_price: float | None
    exit_price: float | None
    gross_pnl_pct: float | None
    costs_pct: float | None
    net_pnl_pct: float | None
    gross_r: float | None
    net_r: float | None
    mfe_pct: float | None
    mae_pct: float | None
    holding_seconds: float
    closed_at: datetime

    @property
    def status(self) -> SignalStatus:
        return self.outcome.status

    @property
    def filled(self) -> bool:
        return self.outcome is not OutcomeKind.NOT_FILLED

    @property
    def win(self) -> bool:
        """The one win event (``domain.exits.is_win``); a signal never filled is not a win."""
        return self.net_r is not None and is_win(self.net_r)

    def to_event_data(self) -> dict[str, object]:
        """The ``closed`` ledger event's data. The key names are a contract with the track record."""
        return {
            "outcome": self.outcome.value,
            "win": self.win,
            "target_index": self.target_index,
            "decided_at": _iso(self.decided_at),
            "filled_at": _iso(self.filled_at),
            "fill_price": self.fill_price,
            "first_price": self.first_price,
            "exit_price": self.exit_price,
            "gross_pnl_pct": self.gross_pnl_pct,
            "costs_pct": self.costs_pct,
            "net_pnl_pct": self.net_pnl_pct,
            "gross_r": self.gross_r,
            "net_r": self.net_r,
            "mfe_pct": self.mfe_pct,
            "mae_pct": self.mae_pct,
            "holding_seconds": self.holding_seconds,
            "closed_at": _iso(self.closed_at),
        }

    def to_event(self) -> SignalEvent:
        return SignalEvent(self.signal_id, SignalEventKind.CLOSED, self.closed_at, self.to_event_data())


__all__ = ["OUTCOME_KEYS", "Outcome", "OutcomeKind"]
