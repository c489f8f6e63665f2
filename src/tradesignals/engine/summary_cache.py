"""The track record's summary at O(1) per request: running figures kept up to date from the ledger.

``/api/history/summary`` used to read every close and recompute every figure on every call
(O(history) per request; eight anonymous callers were enough to starve a node). Here the closes are
read once, then only the new ones: each call asks the store for the closed events past the last
seq it has seen — an index range scan that finds nothing when nothing closed — and folds them into
``RunningSummary``s (``engine.track_record``), one per filter asked for. A signal closed again
replaces its earlier close, exactly as the history's "latest close per signal" does, so the
figures are those of ``summarize`` over the same closes (tests compare them).

Filters (symbol, type, month of close) each get their own running summary, built on first use from
per-symbol/type/month indexes (so its cost is the matching closes', not the history's) and kept up
to date from then on; at most ``max_views`` of them are kept, least recently used dropped first.

One lock: the refresh and the read of a view happen together, so an answer always covers every
close committed before it began. The memory held is one compact row per closed signal.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from tradesignals.engine.track_record import HistoryRow, RunningSummary, Summary
from tradesignals.storage.base import SignalRepository

REFRESH_BATCH = 10_000
DEFAULT_MAX_VIEWS = 256


@dataclass(frozen=True, slots=True)
class SummaryFilter:
    """The summary's filters: symbol (upper case), signal type and month of close (YYYY-MM, UTC)."""

    symbol: str | None = None
    type: str | None = None
    month: str | None = None

    def matches(self, row: HistoryRow) -> bool:
        return (
            (self.symbol is None or row.symbol == self.symbol)
            and (self.type is None or row.type == self.type)
            and (self.month is None or row.month == self.month)
        )


ALL = SummaryFilter()


@dataclass(slots=True)
class _View:
    """A filter's running summary, and its last answer rendered (reused until a close changes it)."""

    running: RunningSummary = field(default_factory=RunningSummary)
    rendered: tuple[Hashable, bytes] | None = None


class SummaryCache:
    """Running summaries over one signal store, refreshed from its ledger on every read."""

    def __init__(self, repo: SignalRepository, *, max_views: int = DEFAULT_MAX_VIEWS) -> None:
        self._repo = repo
        self._max_views = max(2, max_views)  # the unfiltered view and one more
        self._lock = threading.Lock()
        self._last_seq = 0
        self._rows: dict[str, HistoryRow] = {}  # signal id -> its latest close
        self._index: dict[str, dict[str, dict[str, HistoryRow]]] = {"symbol": {}, "type": {}, "month": {}}
        self._views: OrderedDict[SummaryFilter, _View] = OrderedDict({ALL: _View()})

    @property
    def last_seq(self) -> int:
        """The seq of the newest close folded in."""
        return self._last_seq

    @property
    def closes(self) -> int:
        return len(self._rows)

    def summary(self, where: SummaryFilter = ALL) -> Summary:
        """The figures over every close committed before this call that ``where`` matches."""
        with self._lock:
            return self._view(where).running.summary()

    def rendered(self, where: SummaryFilter, extra: Hashable, render: Callable[[Summary], bytes]) -> bytes:
        """``render(summary)``, computed again only when a close changed the view or ``extra`` (what
        else goes into the answer, e.g. the newest checkpoint) differs: with nothing new, a request
        costs the store's "anything new?" probe and a lookup — O(1) whatever the history."""
        with self._lock:
            view = self._view(where)
            key = (view.running.changes, extra)
            if view.rendered is None or view.rendered[0] != key:
                view.rendered = (key, render(view.running.summary()))
            return view.rendered[1]

    def refresh(self) -> int:
        """Fold in the closes committed since the last call; returns how many were read."""
        with self._lock:
            return self._refresh()

    # -- internals (under the lock) ---------------------------------------------------------------

    def _view(self, where: SummaryFilter) -> _View:
        self._refresh()
        view = self._views.get(where)
        if view is None:
            view = self._build(where)
        self._views.move_to_end(where)
        return view

    def _refresh(self) -> int:
        if self._repo.last_close_seq() <= self._last_seq:
            return 0  # the usual case: one index probe, nothing to read
        read = 0
        while True:
            page = self._repo.closes_after(self._last_seq, REFRESH_BATCH)
            for c in page:
                self._fold(HistoryRow.of(c.signal, c.close.seq, c.close.event))
            read += len(page)
            if page:
                self._last_seq = page[-1].close.seq
            if len(page) < REFRESH_BATCH:
                return read

    def _fold(self, row: HistoryRow) -> None:
        old = self._rows.get(row.signal_id)
        if old is not None:
            if old.seq >= row.seq:  # pragma: no cover - seqs only grow; never let one go back
                return
            for where, view in self._views.items():
                if where.matches(old):
                    view.running.remove(old)
            self._unindex(old)
        self._rows[row.signal_id] = row
        for where, view in self._views.items():
            if where.matches(row):
                view.running.add(row)
        for key, value in (("symbol", row.symbol), ("type", row.type), ("month", row.month)):
            self._index[key].setdefault(value, {})[row.signal_id] = row

    def _unindex(self, row: HistoryRow) -> None:
        for key, value in (("symbol", row.symbol), ("type", row.type), ("month", row.month)):
            bucket = self._index[key].get(value)
            if bucket is not None:
                bucket.pop(row.signal_id, None)
                if not bucket:
                    del self._index[key][value]

    def _build(self, where: SummaryFilter) -> _View:
        """A new view from the smallest index its filters name (never a scan of every close)."""
        candidates = [
            self._index[key].get(value, {})
            for key, value in (("symbol", where.symbol), ("type", where.type), ("month", where.month))
            if value is not None
        ]
        rows = min(candidates, key=len).values() if candidates else self._rows.values()
        view = _View()
        for row in rows:
            if where.matches(row):
                view.running.add(row)
        self._views[where] = view
        while len(self._views) > self._max_views:
            oldest = next(iter(self._views))
            if oldest == ALL:  # the unfiltered view is always kept
                self._views.move_to_end(ALL)
                continue
            del self._views[oldest]
        return view


__all__ = ["ALL", "SummaryCache", "SummaryFilter"]
