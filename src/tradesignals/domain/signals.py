"""Signals: what we tell users to do, and the rules every signal must satisfy.

A signal is immutable once published; changes (a stop moved, an outcome) are new events, so the
ledger can replay the whole history of any signal.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

MAX_SIGNAL_LIFETIME = timedelta(days=92)  # "at most 3 months", measured generously in days


class SignalType(StrEnum):
    SWING = "swing"
    DAY = "day"
    EVENT = "event"
    OPTIONS = "options"


class Direction(StrEnum):
    LONG = "long"
    SHORT = "short"

    @property
    def sign(self) -> int:
        return 1 if self is Direction.LONG else -1


class SignalStatus(StrEnum):
    OPEN = "open"
    TARGET_HIT = "target_hit"
    STOPPED = "stopped"
    EXPIRED = "expired"
    NOT_FILLED = "not_filled"
    CANCELLED = "cancelled"

    @property
    def is_closed(self) -> bool:
        return self is not SignalStatus.OPEN


class SignalEventKind(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    CLOSED = "closed"


def signal_id_for(
    symbol: str, kind: SignalType, direction: Direction, decided_ns: int, model_version: str
) -> str:
    """The id of the signal a model made for one decision: reproducible, and sortable by decision time.

    12 hex digits of the decision's milliseconds, then 10 of a BLAKE2b digest of what makes the
    decision unique. Replaying the same file gives the same ids, and two engines that make the same
    decision (a redelivered bar after a crash) make the same id, which the store refuses twice.
    """
    ms = decided_ns // 1_000_000
    key = f"{symbol}|{kind.value}|{direction.value}|{decided_ns}|{model_version}".encode()
    return f"{ms:012x}{hashlib.blake2b(key, digest_size=5).hexdigest()}"


def new_signal_id(now_ns: int | None = None) -> str:
    """A sortable id: 12 hex digits of milliseconds, then 10 random hex digits.

    Sortable by creation time so that cursors and the ledger order agree without a second index.
    """
    ms = (now_ns if now_ns is not None else time.time_ns()) // 1_000_000
    return f"{ms:012x}{os.urandom(5).hex()}"


class InvalidSignal(ValueError):
    """A signal whose numbers contradict each other (a stop above a long entry, …)."""


@dataclass(frozen=True, slots=True)
class Signal:
    id: str
    symbol: str
    type: SignalType
    direction: Direction
    entry: float
    stop: float
    targets: tuple[float, ...]
    confidence: float
    created_at: datetime
    expires_at: datetime
    model_version: str
    status: SignalStatus = SignalStatus.OPEN
    timeframe: str = "1d"
    reasons: tuple[str, ...] = field(default_factory=tuple)
    # The close of the bar the decision was made on; ``created_at`` is when the signal was
    # published (later in tick mode: the tick that closed the bar). None only for signals stored
    # before the rulebook (then the two were one).
    decided_at: datetime | None = None
    # The model's realised win rate out of fold (``domain.exits.is_win``), so that ``confidence``
    # can be read as an edge over it (``edge``). None for rule-based signals, which have no base rate.
    base_rate: float | None = None
    # Where ``confidence`` ranks among the model's own out-of-fold confidences (0 = its lowest,
    # 1 = its highest): the model's scale, on which the risk profiles filter. None for rules.
    confidence_rank: float | None = None

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise InvalidSignal(f"signal {self.id} on {self.symbol}: " + "; ".join(problems))

    def problems(self) -> list[str]:
        out: list[str] = []
        nums = (self.entry, self.stop, *self.targets, self.confidence)
        if not all(math.isfinite(x) for x in nums):
            return ["a number is not finite"]
        if self.entry <= 0 or self.stop <= 0 or any(t <= 0 for t in self.targets):
            out.append("prices must be positive")
        if not self.targets:
            out.append("at least one target is required")
        s = self.direction.sign
        if s * (self.entry - self.stop) <= 0:
            out.append(
                f"stop {self.stop} is on the wrong side of entry {self.entry} for a {self.direction} signal"
            )
        if any(s * (t - self.entry) <= 0 for t in self.targets):
            out.append(
                f"targets {list(self.targets)} must be beyond entry {self.entry} for a {self.direction}"
            )
        if any(s * (b - a) <= 0 for a, b in zip(self.targets, self.targets[1:], strict=False)):
            out.append("targets must move away from entry in order")
        if not 0.0 <= self.confidence <= 1.0:
            out.append(f"confidence {self.confidence} is outside [0, 1]")
        if self.base_rate is not None and not (math.isfinite(self.base_rate) and 0.0 < self.base_rate < 1.0):
            out.append(f"base_rate {self.base_rate} is outside (0, 1)")
        if self.confidence_rank is not None and not (
            math.isfinite(self.confidence_rank) and 0.0 <= self.confidence_rank <= 1.0
        ):
            out.append(f"confidence_rank {self.confidence_rank} is outside [0, 1]")
        if self.created_at.tzinfo is None or self.expires_at.tzinfo is None:
            out.append("timestamps must be timezone-aware")
        elif self.expires_at <= self.created_at:
            out.append("expires_at must be after created_at")
        elif self.expires_at - self.created_at > MAX_SIGNAL_LIFETIME:
            out.append("a signal may live at most 3 months")
        if self.decided_at is not None:
            if self.decided_at.tzinfo is None:
                out.append("timestamps must be timezone-aware")
            elif self.decided_at > self.created_at:
                out.append("decided_at must not be after created_at (publication)")
        return out

    @property
    def edge(self) -> float | None:
        """Confidence above the model's base rate, in probability points (None without a base rate)."""
        return None if self.base_rate is None else self.confidence - self.base_rate

    @property
    def risk_per_unit(self) -> float:
        """Distance from entry to stop, the 1R every sizing and R-multiple is measured in."""
        return abs(self.entry - self.stop)

    def with_status(self, status: SignalStatus) -> Signal:
        return replace(self, status=status)


@dataclass(frozen=True, slots=True)
class SignalEvent:
    """Something that happened to a signal; the unit the ledger chains."""

    signal_id: str
    kind: SignalEventKind
    at: datetime
    data: dict[str, object] = field(default_factory=dict)
