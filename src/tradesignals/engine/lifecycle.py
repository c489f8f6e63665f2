"""Follow every open signal to its outcome: the final target, the stop, or expiry, with its P/L.

Pure and synchronous — no I/O, no clock. The caller feeds prices (`LifecycleTracker.on_tick`,
`LifecycleTracker.on_bar`) and the time (`LifecycleTracker.expire_due`) and writes the `Outcome`s
it gets back to the ledger and the store. The same code serves live, replay and backtest.

Close policy: one position, one exit. A signal is held until the first of its stop, its *last*
target, or its expiry. ``target_index`` (0-based: 0 is the first target, 1R) records the highest
target reached before that exit, whatever the exit. Why not close at the first target: it would
turn 2R/3R into decoration and flatter the record — a 1R touch that then falls back to the stop is
a loss for anyone holding the signal as published, and the public track record must count it as
one. The information is not lost: ``target_index`` says how far the signal got, so a "scale out at
each target" view can be computed from the ledger (the targets are in the signal), without a second
definition of P/L.

Fills — the first observed price at or beyond a level, never a price the market did not offer:

* A tick at or beyond the stop (or the last target) exits at the tick's price: a gap through the
  stop costs more than the stop, a gap through the target earns more.
* A bar opening at or beyond the stop exits at the open (worse than the stop); a bar opening at or
  beyond the last target exits at the open too (better than the target) — a resting limit order is
  filled at the better price in a gap, and treating both levels the same way keeps the rule single.
  Otherwise a level touched inside the bar fills at the level itself.
* Inside a bar the path is unknown, so we assume the adverse one: open → adverse extreme →
  favourable extreme → close (O→L→H→C for a long, O→H→L→C for a short). Hence **when one bar
  touches both the stop and a target, the stop counts**, targets touched in a bar that stops out do
  not raise ``target_index``, and such a bar adds only its open and the stop to the excursions.

Time. A signal is entered at ``entry`` at ``created_at`` (the close of the bar that made it).
Fills never use a price from before: ticks with ``ts < created_at`` and bars whose interval starts
before ``created_at`` are ignored for that signal, and so is any update older than one already
applied to it (a bar that overlaps ticks already seen, a late tick). A signal expires at
``expires_at`` and exits at the last price at or before it (``entry`` when none came): a tick at
exactly ``expires_at`` still counts, a bar counts only if it ends by ``expires_at`` (its close is
then the price at expiry), and a bar straddling ``expires_at`` is not used, since its prices may
come after expiry.

``closed_at`` is when the exit became known: the tick's time; a bar's open time for a gap at the
open; a bar's end for a level touched inside it; ``expires_at`` for an expiry.

Numbers: ``pnl_pct`` = sign × (exit − entry) / entry × 100; ``r_multiple`` = sign × (exit − entry)
/ |entry − stop|; ``mfe_pct`` ≥ 0 and ``mae_pct`` ≤ 0 are the best and worst such return over the
holding period, exit included, so ``mae_pct ≤ pnl_pct ≤ mfe_pct``. Nothing is rounded: the ledger
hashes the floats as they are.

Cost: open signals are indexed by symbol, so an update costs O(open signals of its symbol);
expiries sit in a heap, so `LifecycleTracker.expire_due` costs O(log n) per expired signal.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from tradesignals.domain.market import NS_PER_SECOND, Bar, Tick, to_datetime, to_ns
from tradesignals.domain.signals import Signal, SignalEvent, SignalEventKind, SignalStatus


class OutcomeKind(StrEnum):
    TARGET = "target"
    STOP = "stop"
    EXPIRED = "expired"

    @property
    def status(self) -> SignalStatus:
        """The signal's status once closed this way."""
        return _STATUS[self]


_STATUS = {
    OutcomeKind.TARGET: SignalStatus.TARGET_HIT,
    OutcomeKind.STOP: SignalStatus.STOPPED,
    OutcomeKind.EXPIRED: SignalStatus.EXPIRED,
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a signal closed. See the module docstring for the fill and close rules."""

    signal_id: str
    symbol: str
    outcome: OutcomeKind
    target_index: int | None
    exit_price: float
    pnl_pct: float
    r_multiple: float
    mfe_pct: float
    mae_pct: float
    holding_seconds: float
    closed_at: datetime

    @property
    def status(self) -> SignalStatus:
        return self.outcome.status

    def to_event_data(self) -> dict[str, object]:
        """The ``closed`` ledger event's data. The key names are a contract with the track record."""
        return {
            "outcome": self.outcome.value,
            "target_index": self.target_index,
            "exit_price": self.exit_price,
            "pnl_pct": self.pnl_pct,
            "r_multiple": self.r_multiple,
            "mfe_pct": self.mfe_pct,
            "mae_pct": self.mae_pct,
            "holding_seconds": self.holding_seconds,
            "closed_at": self.closed_at.astimezone(UTC).isoformat(),
        }

    def to_event(self) -> SignalEvent:
        return SignalEvent(self.signal_id, SignalEventKind.CLOSED, self.closed_at, self.to_event_data())


class _Open:
    """Mutable state of one open signal; kept small and flat because it is touched on every tick."""

    __slots__ = (
        "best",
        "entry",
        "expires_ns",
        "final",
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

    def __init__(self, signal: Signal) -> None:
        self.signal = signal
        self.sign = signal.direction.sign
        self.entry = signal.entry
        self.stop = signal.stop
        self.targets = signal.targets
        self.final = signal.targets[-1]
        self.risk = signal.risk_per_unit
        self.expires_ns = to_ns(signal.expires_at)
        self.seen_ns = to_ns(signal.created_at)  # nothing before this may be used
        self.last_price = signal.entry
        self.best = signal.entry
        self.worst = signal.entry
        self.reached = -1  # highest target index reached; -1 for none

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

    def _close(self, kind: OutcomeKind, price: float, closed_ns: int) -> Outcome:
        self._observe(price)
        if kind is OutcomeKind.TARGET:
            self.reached = len(self.targets) - 1
        s, entry = self.sign, self.entry
        sig = self.signal
        closed_at = sig.expires_at if kind is OutcomeKind.EXPIRED else to_datetime(closed_ns)
        return Outcome(
            signal_id=sig.id,
            symbol=sig.symbol,
            outcome=kind,
            target_index=self.reached if self.reached >= 0 else None,
            exit_price=price,
            pnl_pct=s * (price - entry) * 100.0 / entry,
            r_multiple=s * (price - entry) / self.risk,
            mfe_pct=s * (self.best - entry) * 100.0 / entry,
            mae_pct=s * (self.worst - entry) * 100.0 / entry,
            holding_seconds=(closed_ns - to_ns(sig.created_at)) / NS_PER_SECOND,
            closed_at=closed_at,
        )

    def expire(self) -> Outcome:
        return self._close(OutcomeKind.EXPIRED, self.last_price, self.expires_ns)

    def on_tick(self, ts: int, price: float) -> Outcome | None:
        if ts < self.seen_ns:
            return None
        if ts > self.expires_ns:
            return self.expire()
        self.seen_ns = ts
        s = self.sign
        if s * (price - self.stop) <= 0:
            return self._close(OutcomeKind.STOP, price, ts)
        if s * (price - self.final) >= 0:
            return self._close(OutcomeKind.TARGET, price, ts)
        self._observe(price)
        self._reach(price)
        self.last_price = price
        if ts == self.expires_ns:
            return self.expire()
        return None

    def on_bar(self, bar: Bar) -> Outcome | None:
        if bar.ts < self.seen_ns:
            return None
        end = bar.end
        if end > self.expires_ns:  # starts at/after expiry, or straddles it: its prices may be later
            return self.expire()
        s = self.sign
        stop, final = self.stop, self.final
        price = bar.open
        if s * (price - stop) <= 0:
            return self._close(OutcomeKind.STOP, price, bar.ts)
        if s * (price - final) >= 0:
            return self._close(OutcomeKind.TARGET, price, bar.ts)
        self._observe(price)
        self._reach(price)
        adverse, favourable = (bar.low, bar.high) if s > 0 else (bar.high, bar.low)
        if s * (adverse - stop) <= 0:
            return self._close(OutcomeKind.STOP, stop, end)
        self._observe(adverse)
        if s * (favourable - final) >= 0:
            return self._close(OutcomeKind.TARGET, final, end)
        self._observe(favourable)
        self._reach(favourable)
        self.last_price = bar.close
        self.seen_ns = end
        if end == self.expires_ns:
            return self.expire()
        return None


def _usable_price(price: float) -> bool:
    return 0.0 < price < math.inf  # False for NaN too


class LifecycleTracker:
    """Open signals, indexed by symbol, closed as prices and time arrive.

    Feed each symbol's updates in time order; an update older than one already applied to a signal
    is ignored for it. Bad prices (non-positive, non-finite) are ignored rather than trusted:
    validation should have dropped them, and a NaN must never close a signal.
    """

    def __init__(self) -> None:
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

    def add(self, signal: Signal) -> None:
        """Start watching ``signal``; a closed signal or an id already watched is refused."""
        if signal.status is not SignalStatus.OPEN:
            raise ValueError(f"signal {signal.id} is {signal.status}, not open")
        if signal.id in self._by_id:
            raise ValueError(f"signal {signal.id} is already tracked")
        state = _Open(signal)
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

    def on_tick(self, tick: Tick) -> list[Outcome]:
        book = self._by_symbol.get(tick.symbol)
        if not book or not _usable_price(tick.price):
            return []
        ts, price = tick.ts, tick.price
        closed = [out for state in book.values() if (out := state.on_tick(ts, price)) is not None]
        return self._retire(closed)

    def on_bar(self, bar: Bar) -> list[Outcome]:
        book = self._by_symbol.get(bar.symbol)
        if not book or bar.problems():
            return []
        closed = [out for state in book.values() if (out := state.on_bar(bar)) is not None]
        return self._retire(closed)

    def expire_due(self, now_ns: int) -> list[Outcome]:
        """Expire every signal whose ``expires_at`` is at or before ``now_ns``.

        For signals whose symbol went quiet (a halt, a closed market): without it they would wait
        for the next price to learn that they expired.
        """
        closed: list[Outcome] = []
        heap = self._expiries
        while heap and heap[0][0] <= now_ns:
            expires_ns, signal_id = heapq.heappop(heap)
            state = self._by_id.get(signal_id)
            if state is not None and state.expires_ns == expires_ns:
                closed.append(state.expire())
        return self._retire(closed)

    def _retire(self, closed: list[Outcome]) -> list[Outcome]:
        for out in closed:
            self.remove(out.signal_id)
        return closed

    def _compact_expiries(self) -> None:
        """Drop heap entries of signals no longer open, so memory follows the open count."""
        self._expiries = [(e, i) for e, i in self._expiries if i in self._by_id]
        heapq.heapify(self._expiries)
