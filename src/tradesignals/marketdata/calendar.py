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
from collections.abc import Callable
from datetime import date
from functools import lru_cache
from typing import Any

from tradesignals.domain.market import NS_PER_SECOND, AssetClass
from tradesignals.domain.sessions import (
    ALWAYS_OPEN,
    DAY_NS,
    AlwaysOpen,
    Segment,
    Session,
    SessionCalendar,
    asset_class_of,
    date_of,
    day_ns,
    is_crypto_symbol,
    utc_date_ns,
)

DEFAULT_EXCHANGE = "XNYS"
# exchange-calendars needs pandas Timestamps, which end in 1677 and 2262; beyond that nothing trades.
_MIN_DATE = date(1678, 1, 1)
_MAX_DATE = date(2261, 12, 31)
_DEFAULT_START = date(1990, 1, 1)
_EXTEND_MARGIN_DAYS = 400  # rebuild rarely when a live clock walks past the precomputed range
DEFAULT_CLOSING_PRINT_NS = 10 * NS_PER_SECOND


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
        day = date_of(ts)
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
        labels = [day_ns(d.date()) for d in sched.index]
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


def calendar_for(key: AssetClass | str) -> SessionCalendar:
    """The calendar for an asset class (``"crypto"``, ``"equity"``) or a symbol.

    Equities are US equities on the NYSE calendar (XNYS: NASDAQ shares its sessions). Instances are
    shared, so calling this once per new symbol is cheap.
    """
    if isinstance(key, AssetClass):
        asset = key
    else:
        text = str(key).strip()
        kind = text.lower()
        known = {a.value: a for a in AssetClass}
        asset = known[kind] if kind in known else asset_class_of(text)
    return ALWAYS_OPEN if asset is AssetClass.CRYPTO else exchange_calendar(DEFAULT_EXCHANGE)


def calendar_resolver(declared: AssetClass | None = None) -> Callable[[str], SessionCalendar]:
    """Symbol → calendar by the one rule: the ``declared`` asset class where a source knows it (a feed,
    a file option), else the symbol's spelling (``domain.sessions.asset_class_of``).

    Batch features, live features, labels, the engine and the simulator all choose through this, so
    the same symbol keeps the same clock everywhere; nothing guesses a clock from the weekdays a file
    happens to hold.
    """
    if declared is None:
        return calendar_for
    fixed = calendar_for(declared)

    def choose(_symbol: str) -> SessionCalendar:
        return fixed

    return choose


__all__ = [
    "ALWAYS_OPEN",
    "DAY_NS",
    "DEFAULT_EXCHANGE",
    "AlwaysOpen",
    "ExchangeCalendar",
    "Segment",
    "Session",
    "SessionCalendar",
    "calendar_for",
    "calendar_resolver",
    "exchange_calendar",
    "is_crypto_symbol",
    "utc_date_ns",
]
