"""Market data values: ticks, bars and timeframes.

Timestamps are integer nanoseconds since the Unix epoch, UTC. Integers keep the tick path free of
``datetime`` allocation and make bucketing a single integer division; ``to_datetime`` converts at
the edges, where people read them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from tradesignals.domain.bar_quality import QualityReason

NS_PER_SECOND = 1_000_000_000


class Timeframe(StrEnum):
    """Bar lengths we aggregate to; the value is the wire and storage spelling."""

    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    H1 = "1h"
    D1 = "1d"

    @property
    def seconds(self) -> int:
        return _TIMEFRAME_SECONDS[self]

    @property
    def ns(self) -> int:
        return _TIMEFRAME_SECONDS[self] * NS_PER_SECOND

    @classmethod
    def parse(cls, text: str) -> Timeframe:
        """Read a timeframe a person typed; the error lists what is accepted."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            allowed = ", ".join(t.value for t in cls)
            raise ValueError(f"unknown timeframe {text!r}; expected one of {allowed}") from None


_TIMEFRAME_SECONDS = {
    Timeframe.M1: 60,
    Timeframe.M5: 300,
    Timeframe.M15: 900,
    Timeframe.H1: 3600,
    Timeframe.D1: 86400,
}


class AssetClass(StrEnum):
    CRYPTO = "crypto"
    EQUITY = "equity"


def to_datetime(ts_ns: int) -> datetime:
    """UTC datetime for a nanosecond timestamp (microsecond precision, as datetime allows)."""
    return datetime.fromtimestamp(ts_ns / NS_PER_SECOND, tz=UTC)


def to_ns(when: datetime) -> int:
    """Nanoseconds for an aware datetime; a naive one is refused rather than guessed."""
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when.isoformat()} has no timezone; use UTC")
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_SECOND + delta.microseconds * 1_000


@dataclass(frozen=True, slots=True)
class Tick:
    """One trade print. ``size`` is in base units (shares, coins)."""

    symbol: str
    ts: int
    price: float
    size: float

    def problems(self) -> list[QualityReason]:
        """Why this tick cannot be used as is (``QualityReason`` values); empty when it can."""
        out: list[QualityReason] = []
        if not self.symbol:
            out.append(QualityReason.EMPTY_SYMBOL)
        if not math.isfinite(self.price):
            out.append(QualityReason.NOT_FINITE)
        elif self.price <= 0:
            out.append(QualityReason.NON_POSITIVE_PRICE)
        if not math.isfinite(self.size):
            if QualityReason.NOT_FINITE not in out:
                out.append(QualityReason.NOT_FINITE)
        elif self.size < 0:
            out.append(QualityReason.NEGATIVE_SIZE)
        return out


@dataclass(frozen=True, slots=True)
class Bar:
    """OHLCV over ``[ts, ts + timeframe)``; ``ts`` is the bar's open time."""

    symbol: str
    timeframe: Timeframe
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float

    @property
    def end(self) -> int:
        return self.ts + self.timeframe.ns

    def problems(self) -> list[QualityReason]:
        """Why this bar cannot be used as is (``QualityReason`` values); empty when it can.

        The same rules, in the same order, as the validator's and file ingest's field checks, so a
        bad bar is counted under the same name wherever it is met.
        """
        out: list[QualityReason] = []
        prices = (self.open, self.high, self.low, self.close)
        if not all(math.isfinite(p) for p in prices):
            return [QualityReason.NOT_FINITE]
        if min(prices) <= 0:
            out.append(QualityReason.NON_POSITIVE_PRICE)
        if self.high < self.low:
            out.append(QualityReason.HIGH_BELOW_LOW)
        elif not (self.low <= self.open <= self.high and self.low <= self.close <= self.high):
            out.append(QualityReason.OPEN_CLOSE_OUTSIDE_RANGE)
        if not math.isfinite(self.volume):
            out.append(QualityReason.NOT_FINITE)
        elif self.volume < 0:
            out.append(QualityReason.NEGATIVE_VOLUME)
        return out
