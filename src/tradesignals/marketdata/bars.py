"""Ticks → bars, and bars → coarser bars, aligned to UTC or to an exchange's sessions.

A bar is closed by the first tick of the same symbol in a later bucket, not by a clock: the engine
runs unchanged on live, replayed and simulated data only if time comes from the data itself. The
price of that choice is that a quiet symbol's last bar stays open until its next tick or ``flush()``.

Alignment, by what the aggregator is given:

- nothing (the default) or an always-open calendar: UTC buckets, ``ts - ts % timeframe`` — crypto,
  24/7, daily bars from 00:00 UTC;
- a ``SessionCalendar`` (``ExchangeCalendar("XNYS")``): intraday buckets counted from the session
  open, so 1h equity bars open at 09:30, 10:30 … 15:30 New York, and the last one is cut short by the
  close (15:30–16:00, or 12:30–13:00 on a half day) — the closing auction print, stamped at or just
  after the close, included (see ``calendar``). After a lunch break (Hong Kong) buckets count from
  the break's end. Ticks while the exchange is closed (pre-market, after hours, holidays, weekends)
  go into no bar and are counted in ``outside_session``. A daily bar
  is one session, and its ``ts`` is the session's *label*: 00:00 UTC of the session date (the label
  exchange-calendars uses), so the 2024-07-03 half-day bar has ts 2024-07-03T00:00Z whatever its
  hours. Note ``Bar.end`` is ``ts + timeframe``: for a session's cut-short last bar and for daily bars
  it is later than the trading that bar holds;
- a function mapping a symbol to a calendar (``calendar=calendar_for``): each symbol its own clock,
  for a feed mixing equities and crypto;
- ``bucket_of``: any function from a timestamp to its bar's open time (tests, odd alignments).

Per tick the steady state is one dict lookup and two integer comparisons against the open bar's
``[lo, hi)`` range; a calendar is consulted only when a tick leaves that range (about once per bar).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from tradesignals.domain.market import Bar, Tick, Timeframe
from tradesignals.marketdata.calendar import SessionCalendar

BucketFn = Callable[[int], int]
CalendarChoice = SessionCalendar | Callable[[str], SessionCalendar]


def utc_bucket(timeframe: Timeframe) -> BucketFn:
    """Bar open time for a timestamp: ``ts - ts % timeframe.ns`` (daily bars open at 00:00 UTC)."""
    ns = timeframe.ns

    def bucket_of(ts: int) -> int:
        return ts - ts % ns

    return bucket_of


class _Clock:
    """Places a timestamp in a bar: ``(label, lo, hi)`` = bar ts and the range of times it takes.

    ``lo``/``hi`` bound the *trading* inside the bucket (a bucket cut by the close, a daily bar that
    spans only the session), so the aggregator can keep the next tick on its fast path by a range
    test alone. None means the market is closed at that time.
    """

    __slots__ = ()

    def place(self, ts: int) -> tuple[int, int, int] | None:
        raise NotImplementedError


class _UtcClock(_Clock):
    __slots__ = ("ns",)

    def __init__(self, ns: int) -> None:
        self.ns = ns

    def place(self, ts: int) -> tuple[int, int, int] | None:
        b = ts - ts % self.ns
        return (b, b, b + self.ns)


class _FnClock(_Clock):
    """Arbitrary ``bucket_of``: no known bucket length, so the range is empty and every tick asks."""

    __slots__ = ("fn",)

    def __init__(self, fn: BucketFn) -> None:
        self.fn = fn

    def place(self, ts: int) -> tuple[int, int, int] | None:
        b = self.fn(ts)
        return (b, b, b)


class _SessionClock(_Clock):
    """Session-aligned buckets with the calendar segment last hit cached (O(1) while it holds).

    A closing print (in ``[end, reach)``) is placed as if just before the close, so it joins the
    session's last bar, whose range therefore runs to ``reach``.
    """

    __slots__ = ("anchor", "cal", "daily", "end", "label", "lo", "ns", "reach")

    def __init__(self, cal: SessionCalendar, timeframe: Timeframe) -> None:
        self.cal = cal
        self.ns = timeframe.ns
        self.daily = timeframe is Timeframe.D1
        self.lo = self.end = self.anchor = self.label = self.reach = 0

    def place(self, ts: int) -> tuple[int, int, int] | None:
        if not self.lo <= ts < self.reach:
            seg = self.cal.segment(ts)
            if seg is None:
                return None
            self.lo, self.end, self.anchor, self.label, self.reach = seg
        if self.daily:
            return (self.label, self.lo, self.reach)
        ns, end = self.ns, self.end
        t = ts if ts < end else end - 1
        b = t - (t - self.anchor) % ns
        stop = b + ns
        return (b, b if b > self.lo else self.lo, stop if stop < end else self.reach)


def _clock_for(cal: SessionCalendar, timeframe: Timeframe) -> _Clock:
    return _UtcClock(timeframe.ns) if cal.always_open else _SessionClock(cal, timeframe)


class _OpenBar:
    """Mutable state of one symbol's open bar; a slots class because it is touched on every tick.

    ``ts`` is the bar's label (its open time); ``[lo, hi)`` the times that belong to it for certain.
    """

    __slots__ = ("clock", "close", "first_ts", "hi", "high", "last_ts", "lo", "low", "open", "ts", "volume")

    def __init__(
        self, clock: _Clock, place: tuple[int, int, int], tick_ts: int, price: float, size: float
    ) -> None:
        self.clock = clock
        self.ts, self.lo, self.hi = place
        self.first_ts = tick_ts
        self.last_ts = tick_ts
        self.open = price
        self.high = price
        self.low = price
        self.close = price
        self.volume = size


class BarAggregator:
    """Per-symbol OHLCV bars from ticks; O(1) work and memory per tick and per symbol.

    ``calendar``: a ``SessionCalendar`` for every symbol, or a function giving each symbol's (asked
    once per symbol); None (the default) keeps UTC buckets. ``bucket_of`` is the older seam for a
    custom alignment; give one or the other.

    Ticks are expected to have passed validation (a NaN price would poison a bar). Ticks slightly out
    of order within the open bar are placed by timestamp (open = earliest, close = latest); a tick
    for a bucket already closed cannot be placed and is counted in ``late`` and dropped; a tick while
    the market is closed is counted in ``outside_session`` and dropped.
    """

    def __init__(
        self,
        timeframe: Timeframe,
        *,
        calendar: CalendarChoice | None = None,
        bucket_of: BucketFn | None = None,
    ) -> None:
        if calendar is not None and bucket_of is not None:
            raise ValueError("BarAggregator takes a calendar or a bucket_of function, not both")
        self.timeframe = timeframe
        self._open: dict[str, _OpenBar] = {}
        self._per_symbol: Callable[[str], SessionCalendar] | None = None
        self._clocks: dict[int, _Clock] = {}
        self._clock: _Clock
        if bucket_of is not None:
            self._clock = _FnClock(bucket_of)
        elif calendar is None:
            self._clock = _UtcClock(timeframe.ns)
        elif isinstance(calendar, SessionCalendar):
            self._clock = _clock_for(calendar, timeframe)
        else:
            self._per_symbol = calendar
            self._clock = _UtcClock(timeframe.ns)
        self.late = 0
        self.outside_session = 0

    def forget(self, which: Callable[[str], bool]) -> None:
        """Drop the bars being built for the symbols ``which`` selects."""
        for symbol in [s for s in self._open if which(s)]:
            del self._open[symbol]

    def update(self, tick: Tick) -> list[Bar]:
        """Add one tick; returns the bar it closed (at most one: buckets with no tick make no bar)."""
        ts = tick.ts
        st = self._open.get(tick.symbol)
        if st is not None and st.lo <= ts < st.hi:
            price = tick.price
            if price > st.high:
                st.high = price
            elif price < st.low:
                st.low = price
            if ts >= st.last_ts:
                st.close = price
                st.last_ts = ts
            elif ts < st.first_ts:
                st.open = price
                st.first_ts = ts
            st.volume += tick.size
            return []
        return self._slow(tick, st)

    def _slow(self, tick: Tick, st: _OpenBar | None) -> list[Bar]:
        """A tick outside the open bar's known range: ask the clock where it goes."""
        ts = tick.ts
        clock = st.clock if st is not None else self._symbol_clock(tick.symbol)
        place = clock.place(ts)
        if place is None:
            self.outside_session += 1
            return []
        if st is None:
            self._open[tick.symbol] = _OpenBar(clock, place, ts, tick.price, tick.size)
            return []
        label = place[0]
        if label == st.ts:  # same bar, another stretch of it (a custom bucket, a daily bar after a break)
            st.lo, st.hi = place[1], place[2]
            price = tick.price
            if price > st.high:
                st.high = price
            elif price < st.low:
                st.low = price
            if ts >= st.last_ts:
                st.close = price
                st.last_ts = ts
            elif ts < st.first_ts:
                st.open = price
                st.first_ts = ts
            st.volume += tick.size
            return []
        if label < st.ts:
            self.late += 1
            return []
        closed = Bar(tick.symbol, self.timeframe, st.ts, st.open, st.high, st.low, st.close, st.volume)
        price = tick.price
        st.ts, st.lo, st.hi = place
        st.first_ts = st.last_ts = ts
        st.open = st.high = st.low = st.close = price
        st.volume = tick.size
        return [closed]

    def _symbol_clock(self, symbol: str) -> _Clock:
        if self._per_symbol is None:
            return self._clock
        cal = self._per_symbol(symbol)
        clock = self._clocks.get(id(cal))
        if clock is None:
            clock = self._clocks[id(cal)] = _clock_for(cal, self.timeframe)
        return clock

    def flush(self) -> list[Bar]:
        """Close every open bar (end of a replay, shutdown), in (ts, symbol) order."""
        bars = [self._bar(sym, st) for sym, st in self._open.items()]
        self._open.clear()
        bars.sort(key=lambda b: (b.ts, b.symbol))
        return bars

    def open_bar(self, symbol: str) -> Bar | None:
        """The bar being built for ``symbol`` so far (a live chart's last candle), or None."""
        st = self._open.get(symbol)
        return None if st is None else self._bar(symbol, st)

    def _bar(self, symbol: str, st: _OpenBar) -> Bar:
        return Bar(symbol, self.timeframe, st.ts, st.open, st.high, st.low, st.close, st.volume)


def resample(
    bars: Iterable[Bar],
    timeframe: Timeframe,
    *,
    calendar: CalendarChoice | None = None,
    bucket_of: BucketFn | None = None,
) -> list[Bar]:
    """Coarser bars from finer ones (1m → 5m, 1h → 1d), sorted by (ts, symbol).

    Alignment follows ``BarAggregator`` (UTC by default; ``calendar`` for session alignment, where a
    bar is placed by its open time and bars opening while the market is closed are left out), so
    resampling session-aligned 1m bars gives what aggregating the ticks at the coarser timeframe
    gives. Input order does not matter. Every input bar must share one timeframe no coarser than the
    target: silently mixing 1m and 1h bars into one 1h bar would double-count volume.
    """
    if calendar is not None and bucket_of is not None:
        raise ValueError("resample takes a calendar or a bucket_of function, not both")
    items = sorted(bars, key=lambda b: (b.symbol, b.ts))
    if not items:
        return []
    source = items[0].timeframe
    if any(b.timeframe is not source for b in items):
        kinds = sorted({b.timeframe.value for b in items})
        raise ValueError(f"resample needs bars of one timeframe; got {', '.join(kinds)}")
    if source.ns > timeframe.ns:
        raise ValueError(f"cannot resample {source.value} bars to the finer {timeframe.value}")
    if source is Timeframe.D1 and calendar is not None:
        # Session-labelled daily bars are stamped 00:00 UTC, when no exchange trades: there is nothing
        # coarser to build, so 1d → 1d is the identity rather than a calendar lookup that finds no session.
        return sorted(items, key=lambda x: (x.ts, x.symbol))
    clocks: dict[int, _Clock] = {}

    def clock_of(symbol: str) -> _Clock:
        if bucket_of is not None:
            return _FnClock(bucket_of)
        if calendar is None:
            return _UtcClock(timeframe.ns)
        cal = calendar if isinstance(calendar, SessionCalendar) else calendar(symbol)
        clock = clocks.get(id(cal))
        if clock is None:
            clock = clocks[id(cal)] = _clock_for(cal, timeframe)
        return clock

    out: list[Bar] = []
    acc: _OpenBar | None = None
    symbol = ""
    clock = clock_of(items[0].symbol)
    for b in items:
        if b.symbol != symbol:
            if acc is not None:
                out.append(Bar(symbol, timeframe, acc.ts, acc.open, acc.high, acc.low, acc.close, acc.volume))
                acc = None
            symbol = b.symbol
            clock = clock_of(symbol)
        place = clock.place(b.ts)
        if place is None:
            continue
        if acc is not None and acc.ts == place[0]:
            if b.high > acc.high:
                acc.high = b.high
            if b.low < acc.low:
                acc.low = b.low
            acc.close = b.close
            acc.volume += b.volume
            continue
        if acc is not None:
            out.append(Bar(symbol, timeframe, acc.ts, acc.open, acc.high, acc.low, acc.close, acc.volume))
        acc = _OpenBar(clock, place, b.ts, b.open, b.volume)
        acc.high, acc.low, acc.close = b.high, b.low, b.close
    if acc is not None:
        out.append(Bar(symbol, timeframe, acc.ts, acc.open, acc.high, acc.low, acc.close, acc.volume))
    out.sort(key=lambda x: (x.ts, x.symbol))
    return out
