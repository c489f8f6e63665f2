"""Follow every open signal to its outcome: fill, then the stop, the last target or expiry, net of costs.

Pure and synchronous — no I/O, no clock. The caller feeds prices (`LifecycleTracker.on_tick`,
`LifecycleTracker.on_bar`) and the time (`LifecycleTracker.expire_due`) and writes the `Outcome`s it
gets back to the ledger and the store. The same code serves live, replay and backtest.

Every rule it applies is the rulebook's, imported, never restated here:

* fills, exits and the win — ``domain.exits`` (the very functions the label kernel compiles);
* when a bar's prices are final — ``domain.sessions.bar_close_ns`` (a daily equity bar closes at its
  session's close, not at midnight, so the last session of a swing signal's horizon is seen);
* costs — ``domain.costs`` by the symbol's asset class (``domain.sessions.asset_class_of``);
* the outcome record — ``domain.outcomes``.

What this module adds is the bookkeeping of one trade in time. A signal is *pending* from its
publication (``created_at``) until the first usable price after it: a tick later than ``created_at``,
or a bar opening at or after it. That price is the fill, or — beyond the stop or the first target —
the reason it is ``not_filled``. From then on, prices are applied in time order; a tick or bar older
than one already applied is ignored for that signal (a bar overlapping ticks already seen, a late
tick). A bar is used whole only if it closes by ``expires_at``; of one straddling expiry only the
open is used (the rest may come after it): it can exit there through a level, else the exit is the
last price at or before expiry. A pending signal that sees no
price before its expiry is ``not_filled`` at its expiry.

``target_index`` (0-based) records the highest target reached before the exit, whatever the exit —
information for a "scale out" view, not a second P/L. Excursions (``mfe_pct``/``mae_pct``) are
measured from the fill; a bar that stops out adds only its open and the stop to them.

Cost: open signals are indexed by symbol, so an update costs O(open signals of its symbol);
expiries sit in a heap, so `LifecycleTracker.expire_due` costs O(log n) per expired signal.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

from tradesignals.domain.costs import DEFAULT_SCHEDULE, CostModel, CostSchedule
from tradesignals.domain.exits import (
    EXIT_NONE,
    EXIT_STOP,
    EXIT_TARGET,
    bar_exit,
    fill_refused,
    gross_pct,
    pct_to_r,
    tick_exit,
)
from tradesignals.domain.live import LiveUpdate, live_update
from tradesignals.domain.market import NS_PER_SECOND, Bar, Tick, to_datetime, to_ns
from tradesignals.domain.outcomes import Outcome, OutcomeKind
from tradesignals.domain.sessions import SessionCalendar, asset_class_of, bar_close_ns
from tradesignals.domain.signals import Signal, SignalStatus

__all__ = ["LifecycleTracker", "Outcome", "OutcomeKind"]

CalendarFor = Callable[[str], SessionCalendar]


class _Open:
    """Mutable state of one open signal; kept small and flat because it is touched on every tick."""

    __slots__ = (
        "best",
        "costs",
        "expires_ns",
        "fill",
        "filled_ns",
        "final",
        "first",
        "last_price",
        "reached",
        "risk",
        "seen_ns",
        "sign",
        "signal",
        "stop",
        "targets",
        "worst",
    )

    def __init__(self, signal: Signal, costs: CostModel) -> None:
        self.signal = signal
        self.costs = costs
        self.sign = signal.direction.sign
        self.stop = signal.stop
        self.targets = signal.targets
        self.first = signal.targets[0]
        self.final = signal.targets[-1]
        self.risk = signal.risk_per_unit
        self.expires_ns = to_ns(signal.expires_at)
        self.seen_ns = to_ns(signal.created_at)  # publication: nothing before may be used
        self.fill = math.nan
        self.filled_ns = -1  # -1 while pending
        self.last_price = math.nan
        self.best = math.nan
        self.worst = math.nan
        self.reached = -1  # highest target index reached; -1 for none

    # -- bookkeeping ------------------------------------------------------------------------------

    def _observe(self, price: float) -> None:
        s = self.sign
        if s * (price - self.best) > 0:
            self.best = price
        elif s * (price - self.worst) < 0:
            self.worst = price

    def _reach(self, price: float) -> None:
        s = self.sign
        i = self.reached + 1
        targets = self.targets
        while i < len(targets) and s * (price - targets[i]) >= 0:
            self.reached = i
            i += 1

    def _fill(self, price: float, ts: int) -> Outcome | None:
        """Enter at ``price``; the not-filled outcome when it is already beyond stop or first target."""
        if fill_refused(self.sign, price, self.stop, self.first):
            return self._not_filled(price, ts)
        self.fill = self.last_price = self.best = self.worst = price
        self.filled_ns = ts
        return None

    def _not_filled(self, first_price: float | None, closed_ns: int) -> Outcome:
        sig = self.signal
        return Outcome(
            signal_id=sig.id,
            symbol=sig.symbol,
            outcome=OutcomeKind.NOT_FILLED,
            target_index=None,
            decided_at=sig.decided_at or sig.created_at,
            filled_at=None,
            fill_price=None,
            first_price=first_price,
            exit_price=None,
            gross_pnl_pct=None,
            costs_pct=None,
            net_pnl_pct=None,
            gross_r=None,
            net_r=None,
            mfe_pct=None,
            mae_pct=None,
            holding_seconds=0.0,
            closed_at=to_datetime(closed_ns),
        )

    def _close(self, kind: OutcomeKind, price: float, closed_ns: int) -> Outcome:
        self._observe(price)
        if kind is OutcomeKind.TARGET:
            self.reached = len(self.targets) - 1
        s, fill, sig = self.sign, self.fill, self.signal
        held = closed_ns - self.filled_ns
        gross = gross_pct(s, fill, price)
        costs = self.costs.costs_pct(s, fill, price, held)
        net = gross - costs
        return Outcome(
            signal_id=sig.id,
            symbol=sig.symbol,
            outcome=kind,
            target_index=self.reached if self.reached >= 0 else None,
            decided_at=sig.decided_at or sig.created_at,
            filled_at=to_datetime(self.filled_ns),
            fill_price=fill,
            first_price=None,
            exit_price=price,
            gross_pnl_pct=gross,
            costs_pct=costs,
            net_pnl_pct=net,
            gross_r=pct_to_r(gross, fill, self.risk),
            net_r=pct_to_r(net, fill, self.risk),
            mfe_pct=gross_pct(s, fill, self.best),
            mae_pct=gross_pct(s, fill, self.worst),
            holding_seconds=held / NS_PER_SECOND,
            closed_at=to_datetime(closed_ns),
        )

    def expire(self) -> Outcome:
        """Exit at the last price at or before expiry (never filled: not_filled at expiry)."""
        if self.filled_ns < 0:
            return self._not_filled(None, self.expires_ns)
        return self._close(OutcomeKind.EXPIRED, self.last_price, self.expires_ns)

    # -- prices -----------------------------------------------------------------------------------

    def on_tick(self, ts: int, price: float) -> Outcome | None:
        if self.filled_ns < 0:
            if ts <= self.seen_ns:  # the publishing tick itself is not tradable: the next one is
                return None
            if ts > self.expires_ns:
                return self.expire()
            refused = self._fill(price, ts)
            if refused is not None:
                return refused
            self.seen_ns = ts
            self._reach(price)
            return self.expire() if ts == self.expires_ns else None
        if ts < self.seen_ns:
            return None
        if ts > self.expires_ns:
            return self.expire()
        self.seen_ns = ts
        code = tick_exit(self.sign, self.stop, self.final, price)
        if code == EXIT_STOP:
            return self._close(OutcomeKind.STOP, price, ts)
        if code == EXIT_TARGET:
            return self._close(OutcomeKind.TARGET, price, ts)
        self._observe(price)
        self._reach(price)
        self.last_price = price
        if ts == self.expires_ns:
            return self.expire()
        return None

    def on_bar(self, bar: Bar, close_ns: int) -> Outcome | None:
        if bar.ts < self.seen_ns:
            return None
        if bar.ts >= self.expires_ns:
            return self.expire()
        if self.filled_ns < 0:
            refused = self._fill(bar.open, bar.ts)
            if refused is not None:
                return refused
        if close_ns > self.expires_ns:  # straddles expiry: only its open is known to come before
            code = tick_exit(self.sign, self.stop, self.final, bar.open)
            if code != EXIT_NONE:  # opened through a level before expiry: exits there, at the open
                kind = OutcomeKind.STOP if code == EXIT_STOP else OutcomeKind.TARGET
                return self._close(kind, bar.open, bar.ts)
            self._observe(bar.open)
            self._reach(bar.open)
            self.last_price = bar.open
            return self.expire()
        s = self.sign
        code, price, at_open = bar_exit(s, self.stop, self.final, bar.open, bar.high, bar.low)
        if code != EXIT_NONE and at_open:
            kind = OutcomeKind.STOP if code == EXIT_STOP else OutcomeKind.TARGET
            return self._close(kind, price, bar.ts)
        self._observe(bar.open)
        self._reach(bar.open)
        if code == EXIT_STOP:
            return self._close(OutcomeKind.STOP, price, close_ns)
        adverse, favourable = (bar.low, bar.high) if s > 0 else (bar.high, bar.low)
        self._observe(adverse)
        if code == EXIT_TARGET:
            return self._close(OutcomeKind.TARGET, price, close_ns)
        self._observe(favourable)
        self._reach(favourable)
        self.last_price = bar.close
        self.seen_ns = close_ns
        if close_ns == self.expires_ns:
            return self.expire()
        return None


def _usable_price(price: float) -> bool:
    return 0.0 < price < math.inf  # False for NaN too


class LifecycleTracker:
    """Open signals, indexed by symbol, closed as prices and time arrive.

    Feed each symbol's updates in time order; an update older than one already applied to a signal
    is ignored for it. Bad prices (non-positive, non-finite) are ignored rather than trusted:
    validation should have dropped them, and a NaN must never close a signal.

    ``calendar`` maps a symbol to its session calendar (``marketdata.calendar.calendar_for``), for
    when a bar really closes; None treats every market as always open (bars close one timeframe
    after they open). ``costs`` is the rulebook's cost schedule, chosen per symbol by asset class.
    """

    def __init__(
        self, *, costs: CostSchedule = DEFAULT_SCHEDULE, calendar: CalendarFor | None = None
    ) -> None:
        self.costs = costs
        self.calendar = calendar
        self._by_symbol: dict[str, dict[str, _Open]] = {}
        self._by_id: dict[str, _Open] = {}
        self._expiries: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, signal_id: object) -> bool:
        return signal_id in self._by_id

    def open_signals(self, symbol: str | None = None) -> list[Signal]:
        opens = self._by_id.values() if symbol is None else self._by_symbol.get(symbol, {}).values()
        return [o.signal for o in opens]

    def has_open(self, symbol: str) -> bool:
        """Whether ``symbol`` has an open signal: one dict probe, for the per-bar fast path."""
        return symbol in self._by_symbol

    def live(
        self,
        symbol: str,
        ts_ns: int,
        price: float,
        rescore: Callable[[Signal], tuple[float | None, str]],
    ) -> list[LiveUpdate]:
        """Each open signal of ``symbol`` marked at ``price`` (``domain.live.live_update``).

        Called after the prices of ``ts_ns`` were applied, so a signal filled or closed by them is
        already filled or gone. ``rescore`` gives a signal's re-scored probability and the version
        of the model that gave it. A bad price marks nothing.
        """
        book = self._by_symbol.get(symbol)
        if not book or not _usable_price(price):
            return []
        out = []
        for state in book.values():
            probability, version = rescore(state.signal)
            filled = state.filled_ns >= 0
            out.append(
                live_update(
                    state.signal,
                    ts_ns=ts_ns,
                    price=price,
                    fill=state.fill if filled else None,
                    filled_ns=state.filled_ns if filled else None,
                    costs=state.costs,
                    probability=probability,
                    model_version=version,
                )
            )
        return out

    def add(self, signal: Signal) -> None:
        """Start watching ``signal``; a closed signal or an id already watched is refused."""
        if signal.status is not SignalStatus.OPEN:
            raise ValueError(f"signal {signal.id} is {signal.status}, not open")
        if signal.id in self._by_id:
            raise ValueError(f"signal {signal.id} is already tracked")
        state = _Open(signal, self.costs.for_class(asset_class_of(signal.symbol)))
        self._by_id[signal.id] = state
        self._by_symbol.setdefault(signal.symbol, {})[signal.id] = state
        heapq.heappush(self._expiries, (state.expires_ns, signal.id))

    def remove(self, signal_id: str) -> Signal | None:
        """Stop watching a signal without an outcome (cancelled); None when it was not watched."""
        state = self._by_id.pop(signal_id, None)
        if state is None:
            return None
        book = self._by_symbol[state.signal.symbol]
        del book[signal_id]
        if not book:
            del self._by_symbol[state.signal.symbol]
        if len(self._expiries) > 2 * len(self._by_id) + 64:
            self._compact_expiries()
        return state.signal

    def bar_close(self, bar: Bar) -> int:
        """When ``bar`` really closes, by its symbol's calendar (``domain.sessions.bar_close_ns``)."""
        cal = self.calendar(bar.symbol) if self.calendar is not None else None
        return bar_close_ns(bar.ts, bar.timeframe, cal)

    def on_tick(self, tick: Tick) -> list[Outcome]:
        book = self._by_symbol.get(tick.symbol)
        if not book or not _usable_price(tick.price):
            return []
        ts, price = tick.ts, tick.price
        closed = [out for state in list(book.values()) if (out := state.on_tick(ts, price)) is not None]
        return self._retire(closed)

    def on_bar(self, bar: Bar, close_ns: int | None = None) -> list[Outcome]:
        """Apply a bar; ``close_ns`` (when it closes) is computed from the calendar when not given."""
        book = self._by_symbol.get(bar.symbol)
        if not book or bar.problems():
            return []
        close = self.bar_close(bar) if close_ns is None else close_ns
        closed = [out for state in list(book.values()) if (out := state.on_bar(bar, close)) is not None]
        return self._retire(closed)

    def expire_due(self, now_ns: int, symbol: str | None = None) -> list[Outcome]:
        """Expire the signals whose ``expires_at`` is at or before ``now_ns`` — of ``symbol`` only, if given.

        ``now`` is a clock of one symbol (its latest bar's close) or a real clock (wall time in live
        mode, for symbols that went quiet: a halt, a closed market). Never the last bar of *another*
        symbol: a partition running ahead must not expire signals whose prices have not arrived yet.
        """
        if symbol is not None:
            book = self._by_symbol.get(symbol)
            if not book:
                return []
            due = [s.expire() for s in list(book.values()) if s.expires_ns <= now_ns]
            return self._retire(due)
        closed: list[Outcome] = []
        heap = self._expiries
        while heap and heap[0][0] <= now_ns:
            expires_ns, signal_id = heapq.heappop(heap)
            state = self._by_id.get(signal_id)
            if state is not None and state.expires_ns == expires_ns:
                closed.append(state.expire())
        return self._retire(closed)

    def close_at(self, signal_id: str, price: float, closed_ns: int) -> Outcome:
        """Close one open signal now at ``price`` (end of data), with the rulebook's numbers and costs.

        For a backtest whose data ends while signals are still open: a filled signal exits at
        ``price`` (its symbol's last close) — an exit in time, so its kind is ``expired``, and the
        caller records why (``end_of_data``); a pending one is ``not_filled``. Gross, net, R and
        costs come from the same ``_close`` as every other exit, never a second formula.
        """
        state = self._by_id[signal_id]
        if state.filled_ns < 0:
            out = state._not_filled(None, max(closed_ns, state.seen_ns))
        else:
            out = state._close(OutcomeKind.EXPIRED, price, max(closed_ns, state.filled_ns))
        self._retire([out])
        return out

    def _retire(self, closed: list[Outcome]) -> list[Outcome]:
        for out in closed:
            self.remove(out.signal_id)
        return closed

    def _compact_expiries(self) -> None:
        """Drop heap entries of signals no longer open, so memory follows the open count."""
        self._expiries = [(e, i) for e, i in self._expiries if i in self._by_id]
        heapq.heapify(self._expiries)
