"""Event-driven signals (``type = event``): an earnings play and a catalyst reaction, as **rules**.

Neither is a fitted model and neither claims an edge: their card (docs/event-rules.md) states what
each does, the figures measured on the real data (bench/event_rules.py), and that no edge was
found unless one is measured. They exist so an event — a scheduled earnings release, a catalyst
in the news — reaches users as a signal with the rulebook's plan (stop, targets, fill, costs,
outcome), its expiry at or before the event, and reasons that name the event.

Both go through the engine's one decide path (``engine.decide.build_signal``, ``kind=EVENT``):
the same levels, the same fill and exit rules, the same ledger. Their confidence is a flat
``RULE_CONFIDENCE`` (0.5: no claim) with no base rate, and their version names them as rules.

* ``EarningsPlay`` — long into a scheduled release: at the first close from which at most
  ``lead_sessions`` whole sessions (and at least one) remain before the release, once per release;
  the signal expires at the close of the last session that ends before the release
  (``event_ns``), so a before-the-open report is exited at the prior close and an after-the-close
  one at that day's close. Releases come from the earnings calendar (``news.earnings``,
  ``TS_EARNINGS_FILE``).
* ``CatalystReaction`` — follow a move that news explains: at a bar's close, when the symbol
  received an item carrying one of ``CATALYSTS`` since the previous bar's close (point in time on
  ``received_at``) and the close moved at least ``min_atr`` ATRs from the previous close, go with
  the move; it lives the plan's swing horizon and is never held through the next earnings release
  (the engine's earnings guard). News reaches it through ``CatalystBook.add`` (the news pipeline
  calls it with each scored item, as it updates the news features).

Daily bars only: an intraday bar's "event" would need intraday news timing we cannot measure.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tradesignals.domain.catalysts import Catalyst
from tradesignals.domain.market import Bar, Timeframe
from tradesignals.domain.news import ScoredNews
from tradesignals.domain.sessions import DAY_NS, SessionCalendar, bar_close_ns
from tradesignals.domain.signals import Direction
from tradesignals.engine.placeholder_rule import AtrState
from tradesignals.news.earnings import EarningsCalendar

RULE_CONFIDENCE = 0.5
EARNINGS_PLAY_VERSION = "rule-earnings-play-v1"
CATALYST_REACTION_VERSION = "rule-catalyst-reaction-v1"
# Classes whose news is about the company's value now; management, legal and offerings are left
# out before measuring anything (their direction is ambiguous), not after.
REACTION_CATALYSTS: frozenset[str] = frozenset(
    {Catalyst.EARNINGS, Catalyst.GUIDANCE, Catalyst.ANALYST, Catalyst.MNA, Catalyst.FDA_CLINICAL}
)

CalendarFor = Callable[[str], SessionCalendar]


@dataclass(frozen=True, slots=True)
class EventDecision:
    """An event rule's decision at a bar's close; ``event_ns`` caps the expiry (None: no cap)."""

    direction: Direction
    atr: float
    reasons: tuple[str, ...]
    event_ns: int | None
    confidence: float = RULE_CONFIDENCE


class EventRule:
    """What the engine asks an event rule (each bar) and tells it (forget a partition's symbols)."""

    version: str

    def on_bar(self, bar: Bar) -> EventDecision | None:
        raise NotImplementedError

    def forget(self, which: Callable[[str], bool]) -> None:
        raise NotImplementedError


def _utc(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


class EarningsPlay(EventRule):
    """Long into a scheduled earnings release, out at or before it (a rule; see the module)."""

    version = EARNINGS_PLAY_VERSION

    def __init__(self, earnings: EarningsCalendar, calendar: CalendarFor, *, lead_sessions: int = 3) -> None:
        if lead_sessions < 1:
            raise ValueError(f"lead_sessions must be >= 1 (got {lead_sessions})")
        self.earnings = earnings
        self.calendar = calendar
        self.lead_sessions = lead_sessions
        self._atr: dict[str, AtrState] = {}
        self._played: dict[str, int] = {}  # symbol -> the release last played

    def forget(self, which: Callable[[str], bool]) -> None:
        for book in (self._atr, self._played):
            for symbol in [s for s in book if which(s)]:
                del book[symbol]

    def on_bar(self, bar: Bar) -> EventDecision | None:
        if bar.timeframe is not Timeframe.D1:
            return None
        atr = self._atr.setdefault(bar.symbol, AtrState()).update(bar)
        if atr is None:
            return None
        cal = self.calendar(bar.symbol)
        decided = bar_close_ns(bar.ts, bar.timeframe, cal)
        release = self.earnings.next_release(bar.symbol, decided)
        if release is None or self._played.get(bar.symbol) == release:
            return None
        # The sessions that open after this decision and close by the release: the ones to hold.
        # At least one, at most ``lead_sessions`` (the release is in reach). The signal expires at
        # the last one's close, so a before-the-open report is never held into (a daily bar's
        # open comes after a 08:00 release) and an after-the-close one exits at that day's close.
        horizon = release + 1 - decided
        if horizon > (self.lead_sessions + 1) * 4 * DAY_NS:
            return None  # far away (a cheap test before asking the calendar)
        hold = [s for s in cal.sessions_between(decided, release + 1) if s.close <= release]
        if not hold or len(hold) > self.lead_sessions:
            return None
        # ``hold[-1].close`` is ``domain.sessions.last_close_by(cal, release)``: out before the event.
        self._played[bar.symbol] = release
        reasons = (
            f"Earnings play (a rule, no fitted edge): {bar.symbol} reports at {_utc(release)}; "
            f"long into the release, out at the close of {_utc(hold[-1].close)} before it",
        )
        return EventDecision(Direction.LONG, atr, reasons, event_ns=hold[-1].close)


@dataclass(slots=True)
class _Heard:
    received_at: int
    catalysts: tuple[str, ...]
    headline: str
    item_id: str


@dataclass
class CatalystBook:
    """Recent catalyst news per symbol, point in time on ``received_at`` (what the rule may know).

    Keeps the newest ``keep`` items of each symbol (bounded memory), whatever their age: a replay
    may deliver a file's news before the bars it belongs to, and the rule asks by time window
    anyway. Items may arrive in any order.
    """

    keep: int = 1000
    _items: dict[str, list[_Heard]] = field(default_factory=dict)
    _keys: dict[str, list[int]] = field(default_factory=dict)

    def add(self, scored: ScoredNews) -> None:
        cats = tuple(c for c in scored.catalysts if c in REACTION_CATALYSTS)
        if not cats:
            return
        item = scored.item
        heard = _Heard(item.received_at, cats, item.headline, item.id)
        for symbol in item.symbols:
            items = self._items.setdefault(symbol, [])
            keys = self._keys.setdefault(symbol, [])
            i = bisect.bisect_right(keys, heard.received_at)
            items.insert(i, heard)
            keys.insert(i, heard.received_at)
            if len(keys) > self.keep:
                del items[0], keys[0]

    def between(self, symbol: str, after_ns: int, upto_ns: int) -> list[_Heard]:
        """Items received in ``(after_ns, upto_ns]``, oldest first."""
        keys = self._keys.get(symbol)
        if not keys:
            return []
        lo = bisect.bisect_right(keys, after_ns)
        hi = bisect.bisect_right(keys, upto_ns)
        return self._items[symbol][lo:hi]


@dataclass(slots=True)
class _Last:
    atr: AtrState = field(default_factory=AtrState)
    close_ns: int = -1


class CatalystReaction(EventRule):
    """Go with a move of at least ``min_atr`` ATRs on a bar that brought catalyst news (a rule)."""

    version = CATALYST_REACTION_VERSION

    def __init__(self, book: CatalystBook, calendar: CalendarFor, *, min_atr: float = 1.0) -> None:
        if not (math.isfinite(min_atr) and min_atr > 0):
            raise ValueError(f"min_atr must be a positive number (got {min_atr})")
        self.book = book
        self.calendar = calendar
        self.min_atr = min_atr
        self._state: dict[str, _Last] = {}

    def forget(self, which: Callable[[str], bool]) -> None:
        for symbol in [s for s in self._state if which(s)]:
            del self._state[symbol]

    def on_bar(self, bar: Bar) -> EventDecision | None:
        if bar.timeframe is not Timeframe.D1:
            return None
        st = self._state.get(bar.symbol)
        if st is None:
            st = self._state[bar.symbol] = _Last()
        prev_close, prev_atr, prev_ns = st.atr.prev_close, st.atr.value, st.close_ns
        st.atr.update(bar)
        close_ns = bar_close_ns(bar.ts, bar.timeframe, self.calendar(bar.symbol))
        st.close_ns = close_ns
        # The move is judged in the ATR known before this bar, so the bar cannot shrink its own yardstick.
        if prev_ns < 0 or prev_atr is None or not prev_atr > 0 or not prev_close > 0:
            return None
        move = (bar.close - prev_close) / prev_atr
        if abs(move) < self.min_atr:
            return None
        heard = self.book.between(bar.symbol, prev_ns, close_ns)
        if not heard:
            return None
        latest = heard[-1]
        direction = Direction.LONG if move > 0 else Direction.SHORT
        headline = " ".join(latest.headline.split())[:100]
        reasons = (
            f"Catalyst reaction (a rule, no fitted edge): {'/'.join(latest.catalysts)} news "
            f"[{latest.item_id}] {headline!r} received {_utc(latest.received_at)}; "
            f"the close moved {move:+.1f} ATR",
        )
        return EventDecision(direction, prev_atr, reasons, event_ns=None)


__all__ = [
    "CATALYST_REACTION_VERSION",
    "EARNINGS_PLAY_VERSION",
    "REACTION_CATALYSTS",
    "RULE_CONFIDENCE",
    "CatalystBook",
    "CatalystReaction",
    "EarningsPlay",
    "EventDecision",
    "EventRule",
]
