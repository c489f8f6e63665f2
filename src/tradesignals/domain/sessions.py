"""The rulebook's clock: trading sessions, when a bar really closes, and which clock a symbol keeps.

Every rule that asks "when" — when a bar's prices are final, when a signal may be filled, when it
expires, which bars a label may see — asks it here, so that labels, the lifecycle, the backtest and
the track record cannot disagree about time. The exchange schedules themselves (holidays, half days,
DST) come from ``exchange-calendars`` through the adapter ``marketdata.calendar.ExchangeCalendar``,
which implements the `SessionCalendar` protocol defined here; the crypto clock (`AlwaysOpen`) needs
no library and lives here.

Times are int ns UTC (ADR 0002). A session is named by its date, expressed as ns at 00:00 UTC of
that date (its *label*); daily bars use the label as their timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol, runtime_checkable

from tradesignals.domain.market import NS_PER_SECOND, AssetClass, Timeframe

DAY_NS = 86_400 * NS_PER_SECOND
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# A segment is an unbroken stretch of trading: (start, end, anchor, session_label, reach), ns UTC.
# ``anchor`` is where intraday bars are counted from: the session open, or the end of a lunch break
# (Hong Kong's afternoon 1h bars open at 13:00, 14:00, 15:00, as exchanges and charting tools show
# them). ``reach`` is ``end`` plus the closing-print allowance on a session's last segment: times in
# ``[end, reach)`` belong to the bar that ends at ``end``. Plain tuples because the aggregator keeps
# the current one and compares against it on every tick.
Segment = tuple[int, int, int, int, int]

# Suffixes and prefixes that mark a crypto pair in the symbol spellings our feeds produce
# (Binance BTCUSDT, Coinbase/simulator BTC-USD, Polygon X:BTCUSD). Ticker-only equities never carry them.
_CRYPTO_SUFFIXES = ("USDT", "USDC", "BUSD", "FDUSD", "TUSD", "-USD", "/USD", "-USDT", "-EUR", "/EUR")
_CRYPTO_PREFIXES = ("X:",)


def day_ns(d: date) -> int:
    """Nanoseconds at 00:00 UTC of a date: the label of that date's session."""
    return (d.toordinal() - _EPOCH_ORDINAL) * DAY_NS


def date_of(ts: int) -> date:
    """The UTC date a timestamp falls on."""
    return date.fromordinal(_EPOCH_ORDINAL + ts // DAY_NS)


def utc_date_ns(year: int, month: int, day: int) -> int:
    """Nanoseconds at 00:00 UTC of a date: the label of that date's session (and its daily bar)."""
    return day_ns(date(year, month, day))


@dataclass(frozen=True, slots=True)
class Session:
    """One trading session; ``break_start``/``break_end`` are None where the exchange has no lunch break."""

    label: int
    open: int
    close: int
    break_start: int | None = None
    break_end: int | None = None

    @property
    def date(self) -> date:
        return date_of(self.label)

    def is_trading(self, ts: int) -> bool:
        if not self.open <= ts < self.close:
            return False
        return (
            self.break_start is None or self.break_end is None or not self.break_start <= ts < self.break_end
        )


@runtime_checkable
class SessionCalendar(Protocol):
    """What the rulebook needs from a market's clock."""

    name: str
    always_open: bool
    """True when every instant trades and days are UTC days: aggregation can then skip lookups."""

    def segment(self, ts: int) -> Segment | None:
        """The unbroken trading stretch ``ts`` belongs to, closing print included (None while closed)."""
        ...

    def session_at(self, ts: int) -> Session | None:
        """The session ``ts`` belongs to (its closing print included); None on holidays, weekends,
        overnight and in breaks."""
        ...

    def sessions_between(self, start: int, end: int) -> list[Session]:
        """Sessions whose open lies in ``[start, end)``, in order."""
        ...


class AlwaysOpen:
    """Crypto: trades every instant; a session is a UTC day, so daily bars open at 00:00 UTC."""

    always_open = True

    def __init__(self, name: str = "24/7") -> None:
        self.name = name

    def segment(self, ts: int) -> Segment | None:
        day = ts - ts % DAY_NS
        return (day, day + DAY_NS, day, day, day + DAY_NS)

    def session_at(self, ts: int) -> Session | None:
        day = ts - ts % DAY_NS
        return Session(day, day, day + DAY_NS)

    def sessions_between(self, start: int, end: int) -> list[Session]:
        first = start - start % DAY_NS
        if first < start:
            first += DAY_NS
        return [Session(d, d, d + DAY_NS) for d in range(first, end, DAY_NS)]

    def __repr__(self) -> str:
        return f"AlwaysOpen({self.name!r})"


ALWAYS_OPEN = AlwaysOpen()


# -- which clock a symbol keeps ---------------------------------------------------------------------


def is_crypto_symbol(symbol: str) -> bool:
    """Whether a symbol names a crypto pair, by the spellings our feeds use (see ``_CRYPTO_SUFFIXES``)."""
    upper = symbol.upper()
    return upper.startswith(_CRYPTO_PREFIXES) or upper.endswith(_CRYPTO_SUFFIXES)


def asset_class_of(symbol: str, declared: AssetClass | None = None) -> AssetClass:
    """The one rule for a symbol's asset class, and so for its calendar and its cost model.

    A source that knows (a feed, a file option) declares it; otherwise the symbol's spelling decides:
    crypto pairs carry a quote-currency suffix or an ``X:`` prefix, everything else is a US equity.
    Nothing else — not the weekday of a bar, not the feed's name — may choose a clock.
    """
    if declared is not None:
        return declared
    return AssetClass.CRYPTO if is_crypto_symbol(symbol) else AssetClass.EQUITY


# -- when a bar closes -------------------------------------------------------------------------------


def bar_close_ns(ts: int, timeframe: Timeframe, calendar: SessionCalendar | None) -> int:
    """When the bar opened at ``ts`` really closes: its prices are final then, and not before.

    Never later than its session's close: a daily equity bar (stamped 00:00 UTC of its date) closes
    at that session's close (16:00 New York, 13:00 on a half day), not at the next midnight; an
    intraday bar cut short by the close (or a lunch break) closes there. Without a calendar, or for
    an always-open market, a bar closes one timeframe after it opened.
    """
    nominal = ts + timeframe.ns
    if calendar is None or calendar.always_open:
        return nominal
    if timeframe is Timeframe.D1:
        own = calendar.sessions_between(ts, ts + DAY_NS)
        return min(own[0].close, nominal) if own else nominal
    seg = calendar.segment(ts)
    if seg is None:
        return nominal
    return min(nominal, seg[1])


def session_close_after(calendar: SessionCalendar, ts: int, sessions: int) -> int | None:
    """The close of the ``sessions``-th session that opens after ``ts`` (None where there is none).

    ``sessions = 0`` is the session ``ts`` lies in (None outside one). Used for expiries: a swing
    signal decided at a session's close lives through the next N sessions.
    """
    if sessions <= 0:
        own = calendar.session_at(ts)
        return own.close if own is not None else None
    ahead = calendar.sessions_between(ts, ts + (3 * sessions + 10) * DAY_NS)
    ahead = [s for s in ahead if s.open >= ts]
    if len(ahead) < sessions:
        return None
    return ahead[sessions - 1].close


def last_close_by(calendar: SessionCalendar, ts: int) -> int | None:
    """The close of the last session that closes at or before ``ts`` (None: none in the prior 3 weeks).

    What "out before an event at ``ts``" means for a position that trades in sessions: a daily bar's
    open comes after a report released before the open, so the last price safely before it is the
    previous session's close.
    """
    done = [s for s in calendar.sessions_between(ts - 21 * DAY_NS, ts + 1) if s.close <= ts]
    return done[-1].close if done else None


__all__ = [
    "ALWAYS_OPEN",
    "DAY_NS",
    "AlwaysOpen",
    "Segment",
    "Session",
    "SessionCalendar",
    "asset_class_of",
    "bar_close_ns",
    "date_of",
    "day_ns",
    "is_crypto_symbol",
    "last_close_by",
    "session_close_after",
    "utc_date_ns",
]
