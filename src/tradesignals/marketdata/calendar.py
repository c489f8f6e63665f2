"""When a market trades: exchange sessions (holidays, half days, DST) and the 24/7 crypto clock.

Bars are aligned to sessions, so this module answers one question on the tick path: *which trading
session, if any, contains this timestamp?* ``exchange-calendars`` knows the rules (NYSE holidays,
13:00 early closes, lunch breaks elsewhere) but building answers from pandas per tick would cost
microseconds, so ``ExchangeCalendar`` turns a date range of its schedule into plain ``int`` lists of
nanoseconds once and answers with ``bisect`` (O(log n)); ``BarAggregator`` also caches the segment it
last hit, so the steady state is two integer comparisons.

Session labels follow exchange-calendars: a session is named by its date, and we express that date
as nanoseconds at 00:00 UTC of it. Daily bars use that label as their timestamp.

The closing print. Sessions are ``[open, close)``, but the closing auction — the print that *is* the
official close every vendor's daily bar reports — is stamped at or just after the close (16:00:00.3
New York; a minute-bar file stamps it 16:00). Dropping it would make our daily close disagree with
every daily file we train and backtest on, so a session's last segment *reaches* ``closing_print_ns``
(default 10 s) past its close: prints there belong to the session's last bar, never to a new one.
After-hours trades later than that are outside the session.

Timestamps are int ns UTC throughout, like the rest of ``domain.market``.
"""

from __future__ import annotations

import threading
import warnings
from bisect import bisect_right
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

from tradesignals.domain.market import NS_PER_SECOND, AssetClass

DAY_NS = 86_400 * NS_PER_SECOND
DEFAULT_EXCHANGE = "XNYS"
# exchange-calendars needs pandas Timestamps, which end in 1677 and 2262; beyond that nothing trades.
_MIN_DATE = date(1678, 1, 1)
_MAX_DATE = date(2261, 12, 31)
_DEFAULT_START = date(1990, 1, 1)
_EXTEND_MARGIN_DAYS = 400  # rebuild rarely when a live clock walks past the precomputed range
DEFAULT_CLOSING_PRINT_NS = 10 * NS_PER_SECOND

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
        return date.fromordinal(_EPOCH_ORDINAL + self.label // DAY_NS)

    def is_trading(self, ts: int) -> bool:
        if not self.open <= ts < self.close:
            return False
        return (
            self.break_start is None or self.break_end is None or not self.break_start <= ts < self.break_end
        )


@runtime_checkable
class SessionCalendar(Protocol):
    """What bar aggregation needs from a market's clock."""

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


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _day_ns(d: date) -> int:
    return (d.toordinal() - _EPOCH_ORDINAL) * DAY_NS


def _date_of(ts: int) -> date:
    return date.fromordinal(_EPOCH_ORDINAL + ts // DAY_NS)


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


class _Schedule:
    """One immutable snapshot of precomputed sessions, swapped whole when the range grows."""

    __slots__ = (
        "break_ends",
        "break_starts",
        "closes",
        "first_day",
        "labels",
        "last_day",
        "opens",
        "reaches",
    )

    def __init__(
        self,
        first_day: date,
        last_day: date,
        labels: list[int],
        opens: list[int],
        closes: list[int],
        break_starts: list[int] | None,
        break_ends: list[int] | None,
    ) -> None:
        self.first_day = first_day
        self.last_day = last_day
        self.labels = labels
        self.opens = opens
        self.closes = closes
        self.reaches = closes
        self.break_starts = break_starts
        self.break_ends = break_ends


class ExchangeCalendar:
    """An exchange's sessions from ``exchange-calendars``, precomputed as ns lists for fast lookup.

    ``start``/``end`` bound the precomputed range (default 1990-01-01 to the library's horizon, about a
    year ahead). A timestamp outside it rebuilds the range to cover it (once, then it is cached), so a
    backtest over 1985 or a live clock past the horizon still gets sessions; only dates pandas cannot
    represent (before 1678, after 2261) are answered "closed". ``closing_print_ns``: see the module
    docstring (0 makes sessions strictly ``[open, close)``).
    """

    always_open = False

    def __init__(
        self,
        name: str = DEFAULT_EXCHANGE,
        *,
        start: date | None = None,
        end: date | None = None,
        closing_print_ns: int = DEFAULT_CLOSING_PRINT_NS,
    ) -> None:
        if closing_print_ns < 0:
            raise ValueError(f"closing_print_ns must be >= 0 (got {closing_print_ns})")
        self._lock = threading.Lock()
        self.closing_print_ns = closing_print_ns
        cal = _build(name, start or _DEFAULT_START, end)
        self.name: str = cal.name
        self._sched = self._snapshot(cal)

    # -- hot path ---------------------------------------------------------------------------------

    def segment(self, ts: int) -> Segment | None:
        sched = self._sched
        reaches = sched.reaches
        i = bisect_right(reaches, ts)
        if i == len(reaches) or ts < sched.opens[0]:
            grown = self._covering(ts)
            if grown is None:
                return None
            sched = grown
            reaches = sched.reaches
            i = bisect_right(reaches, ts)
            if i == len(reaches):
                return None
        open_ = sched.opens[i]
        if ts < open_:
            return None
        close = sched.closes[i]
        label = sched.labels[i]
        if sched.break_starts is not None and sched.break_ends is not None:
            bs, be = sched.break_starts[i], sched.break_ends[i]
            if bs < be:
                if ts < bs:
                    return (open_, bs, open_, label, bs)
                if ts < be:
                    return None
                return (be, close, be, label, reaches[i])
        return (open_, close, open_, label, reaches[i])

    # -- reading ----------------------------------------------------------------------------------

    def session_at(self, ts: int) -> Session | None:
        seg = self.segment(ts)
        if seg is None:
            return None
        return self._session(self._index_of_label(seg[3]))

    def sessions_between(self, start: int, end: int) -> list[Session]:
        if end <= start:
            return []
        self._covering(start)
        self._covering(end - 1)
        sched = self._sched
        lo = bisect_right(sched.opens, start - 1)
        hi = bisect_right(sched.opens, end - 1)
        return [self._session(i) for i in range(lo, hi)]

    def __repr__(self) -> str:
        return f"ExchangeCalendar({self.name!r})"

    # -- internals --------------------------------------------------------------------------------

    def _session(self, i: int) -> Session:
        s = self._sched
        bs = be = None
        if s.break_starts is not None and s.break_ends is not None and s.break_starts[i] < s.break_ends[i]:
            bs, be = s.break_starts[i], s.break_ends[i]
        return Session(s.labels[i], s.opens[i], s.closes[i], bs, be)

    def _index_of_label(self, label: int) -> int:
        return bisect_right(self._sched.labels, label) - 1

    def _covering(self, ts: int) -> _Schedule | None:
        """The schedule, grown to cover ``ts`` if it lies outside; None where no calendar can."""
        sched = self._sched
        day = _date_of(ts)
        if sched.first_day < day < sched.last_day:
            return sched
        if not _MIN_DATE <= day <= _MAX_DATE:
            return None
        with self._lock:
            sched = self._sched
            if sched.first_day < day < sched.last_day:
                return sched
            start = min(sched.first_day, date.fromordinal(max(_MIN_DATE.toordinal(), day.toordinal() - 31)))
            end = max(
                sched.last_day,
                date.fromordinal(min(_MAX_DATE.toordinal(), day.toordinal() + _EXTEND_MARGIN_DAYS)),
            )
            try:
                cal = _build(self.name, start, end)
            except Exception:  # a rule the library cannot compute that far out: treat as closed
                return None
            self._sched = self._snapshot(cal)
            return self._sched

    def _snapshot(self, cal: Any) -> _Schedule:
        sched = cal.schedule
        labels = [_day_ns(d.date()) for d in sched.index]
        opens = sched["open"].to_numpy(dtype="datetime64[ns]").astype("int64").tolist()
        closes = sched["close"].to_numpy(dtype="datetime64[ns]").astype("int64").tolist()
        break_starts = break_ends = None
        if sched["break_start"].notna().any():
            bs = sched["break_start"].fillna(sched["close"])
            be = sched["break_end"].fillna(sched["close"])
            break_starts = bs.to_numpy(dtype="datetime64[ns]").astype("int64").tolist()
            break_ends = be.to_numpy(dtype="datetime64[ns]").astype("int64").tolist()
        first = cal.first_session.date()
        last = cal.last_session.date()
        out = _Schedule(first, last, labels, opens, closes, break_starts, break_ends)
        if self.closing_print_ns:
            # Never into the next session (calendars that reopen the moment they close).
            nexts = [*opens[1:], closes[-1] + self.closing_print_ns] if opens else []
            out.reaches = [min(c + self.closing_print_ns, n) for c, n in zip(closes, nexts, strict=True)]
        return out


def _build(name: str, start: date, end: date | None) -> Any:
    """An exchange_calendars calendar; its pandas deprecation chatter is the library's, not ours."""
    import exchange_calendars as xc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        return xc.get_calendar(name, start=start, end=end)


@lru_cache(maxsize=32)
def exchange_calendar(name: str = DEFAULT_EXCHANGE) -> ExchangeCalendar:
    """A shared instance per exchange: building one reads pandas schedules (~0.1 s), so do it once."""
    return ExchangeCalendar(name)


_ALWAYS_OPEN = AlwaysOpen()


def is_crypto_symbol(symbol: str) -> bool:
    """Whether a symbol names a crypto pair, by the spellings our feeds use (see ``_CRYPTO_SUFFIXES``).

    A heuristic for callers that only have a name; a feed that knows its asset class should say so.
    """
    upper = symbol.upper()
    return upper.startswith(_CRYPTO_PREFIXES) or upper.endswith(_CRYPTO_SUFFIXES)


def calendar_for(key: AssetClass | str) -> SessionCalendar:
    """The calendar for an asset class (``"crypto"``, ``"equity"``) or a symbol.

    Equities are US equities on the NYSE calendar (XNYS: NASDAQ shares its sessions). Instances are
    shared, so calling this once per new symbol is cheap.
    """
    text = key.value if isinstance(key, AssetClass) else str(key)
    kind = text.strip().lower()
    if kind == AssetClass.CRYPTO.value:
        return _ALWAYS_OPEN
    if kind == AssetClass.EQUITY.value:
        return exchange_calendar(DEFAULT_EXCHANGE)
    return _ALWAYS_OPEN if is_crypto_symbol(text) else exchange_calendar(DEFAULT_EXCHANGE)


def utc_date_ns(year: int, month: int, day: int) -> int:
    """Nanoseconds at 00:00 UTC of a date: the label of that date's session (and its daily bar)."""
    return _day_ns(date(year, month, day))
