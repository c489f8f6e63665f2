"""The track record: what a follower of each signal could have earned, and the figures we publish.

Pure (no I/O), and built from ledger entries alone (``history_from_ledger``) as well as from stored
signals (``HistoryRow.of``), so anyone holding the ledger can recompute every figure we publish.

**Per signal** the row reads the ``closed`` event's data, whose keys are the contract written down
in ``domain.outcomes`` (``Outcome.to_event_data``): decision time, fill (time and price), exit,
gross and net P/L in percent and in R, costs, and the outcome — ``target``, ``stop``, ``expired`` or
``not_filled`` (the idea was overtaken before anyone could act on it; no trade, no P/L). A key that
is absent or of the wrong type is counted in ``missing``, never raised. A ``closed`` event written
before the rulebook (keys ``pnl_pct``/``r_multiple``, gross, from the deciding close) is **legacy**:
listed with what it holds, counted in ``Summary.legacy``, and left out of every figure — its
numbers measure another promise (no fill rule, no costs) and must not be mixed with the new ones.

**The win** is the rulebook's one event, ``domain.exits.is_win`` of the net R (net R > 0 at the
plan's exit); the row recomputes it from ``net_r`` and counts a stored ``win`` that disagrees as
malformed.

**Figures** (`Stats`), over the *scored* closes of a group — filled, with a usable ``net_r``:

* ``hit_rate`` = wins / scored closes. Not-filled signals are counted (``not_filled``) but excluded
  from every rate: no one could trade them, so they neither won nor lost.
* ``avg_net_r`` — the mean net R per signal, i.e. the **expectancy in R** (hit rate × average
  winning R + the rest × average non-winning R is the same number); ``avg_net_pnl_pct`` the same
  expectancy in net percent of the fill. ``avg_gross_r`` and ``avg_costs_pct`` show what costs took.
* ``net_profit_factor`` = sum of winning net R / |sum of losing net R|; null when nothing was lost.
  Each signal weighs one R — the unit every position is sized in — so no figure adds up percentages
  of overlapping, differently sized positions as if they were a return. (A portfolio's equity
  curve is the backtest's business, not the track record's.)
* ``reliability`` — does the confidence mean what it says? Scored closes in fixed 5-point buckets of
  confidence (``[0.20, 0.25)``, ``[0.25, 0.30)``, …; the last one, ``[0.95, 1.00]``, closed), listed
  only where a close exists, each with its count, mean confidence and realised hit rate. Fixed
  edges rather than equal-mass deciles: a published table stays comparable from one month and one
  model to the next, and 5 points resolves the narrow range a calibrated model really uses
  (about 0.19–0.35 for the swing model) where 10-point bins would put almost everything in two.

Every figure is given overall and per model version (``by_model``), since a confidence only
speaks for the model that made it; by type, symbol and month of close as well.

The closed event's ``at`` is the close time used for ordering and for the month a close belongs to
(UTC), so that the database can filter by it.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tradesignals.domain.exits import is_win
from tradesignals.domain.ledger import LedgerEntry
from tradesignals.domain.outcomes import OUTCOME_KEYS, OutcomeKind
from tradesignals.domain.signals import Signal, SignalEvent, SignalEventKind

OUTCOMES: frozenset[str] = frozenset(k.value for k in OutcomeKind)
LEGACY_KEYS: tuple[str, ...] = ("pnl_pct", "r_multiple")
"""The P/L keys of ``closed`` events written before the rulebook (gross, from the deciding close)."""

UNKNOWN_MODEL = "unknown"
"""The model version of a signal whose ``created`` entry does not name one."""

BUCKET_WIDTH = 0.05
_BUCKETS = round(1.0 / BUCKET_WIDTH)

# Numbers a filled close must carry; a not-filled one carries none of them (null by contract).
_FILLED_NUMBERS = (
    "fill_price",
    "exit_price",
    "gross_pnl_pct",
    "costs_pct",
    "net_pnl_pct",
    "gross_r",
    "net_r",
    "mfe_pct",
    "mae_pct",
)


def _number(data: Mapping[str, Any], key: str, missing: list[str]) -> float | None:
    value = data.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    missing.append(key)
    return None


def _time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo is not None else None
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One closed signal: what was published, and what came of it (``None`` where not recorded)."""

    signal_id: str
    symbol: str
    type: str
    direction: str
    entry: float
    stop: float
    targets: tuple[float, ...]
    confidence: float
    created_at: datetime
    expires_at: datetime
    model_version: str
    seq: int  # seq of the closed event: the history's order and cursor
    closed_at: datetime  # the closed event's ``at`` (UTC)
    outcome: str | None
    win: bool | None  # is_win(net_r); False when not filled; None when net_r is unknown
    target_index: int | None
    decided_at: datetime | None  # the deciding bar's close; the signal's creation before the rulebook
    filled_at: datetime | None
    fill_price: float | None
    exit_price: float | None
    gross_pnl_pct: float | None
    costs_pct: float | None
    net_pnl_pct: float | None
    gross_r: float | None
    net_r: float | None
    mfe_pct: float | None
    mae_pct: float | None
    holding_seconds: float | None
    missing: tuple[str, ...] = ()  # contract keys absent or of the wrong type
    legacy: bool = False  # written before the rulebook (pnl_pct / r_multiple): listed, not scored

    @property
    def month(self) -> str:
        return self.closed_at.astimezone(UTC).strftime("%Y-%m")

    @property
    def filled(self) -> bool:
        return self.outcome != OutcomeKind.NOT_FILLED

    @property
    def scored(self) -> bool:
        """Counts in the figures: a filled close with a usable net R."""
        return self.filled and self.net_r is not None

    @classmethod
    def of(cls, signal: Signal, seq: int, closed: SignalEvent) -> HistoryRow:
        """From a stored signal and its ``closed`` event."""
        return _row(
            seq=seq,
            at=closed.at,
            data=closed.data,
            decided_at=signal.decided_at or signal.created_at,
            signal_id=signal.id,
            symbol=signal.symbol,
            type=signal.type.value,
            direction=signal.direction.value,
            entry=signal.entry,
            stop=signal.stop,
            targets=tuple(signal.targets),
            confidence=signal.confidence,
            created_at=signal.created_at,
            expires_at=signal.expires_at,
            model_version=signal.model_version,
        )


def _row(*, seq: int, at: datetime, data: object, decided_at: datetime | None, **signal: Any) -> HistoryRow:
    """Read a ``closed`` event's data against the contract; ``decided_at`` is the signal's own."""
    if not isinstance(data, Mapping):
        data = {}
    missing: list[str] = []
    outcome = data.get("outcome")
    if not isinstance(outcome, str) or outcome not in OUTCOMES:
        missing.append("outcome")
        outcome = None
    filled = outcome != OutcomeKind.NOT_FILLED
    raw_index = data.get("target_index")
    target_index = raw_index if isinstance(raw_index, int) and not isinstance(raw_index, bool) else None
    if target_index is None and (outcome == OutcomeKind.TARGET or raw_index is not None):
        missing.append("target_index")
    decided = _time(data.get("decided_at"))
    if decided is None:
        missing.append("decided_at")
        decided = decided_at.astimezone(UTC) if decided_at is not None else None
    numbers: dict[str, float | None] = dict.fromkeys(_FILLED_NUMBERS)
    filled_at = None
    if filled:
        filled_at = _time(data.get("filled_at"))
        if filled_at is None:
            missing.append("filled_at")
        for key in _FILLED_NUMBERS:
            numbers[key] = _number(data, key, missing)
    holding_seconds = _number(data, "holding_seconds", missing)
    if _time(data.get("closed_at")) is None:
        missing.append("closed_at")
    net_r = numbers["net_r"]
    win = (is_win(net_r) if net_r is not None else None) if filled else False
    stored_win = data.get("win")
    if not isinstance(stored_win, bool) or (win is not None and stored_win is not win):
        missing.append("win")  # absent, or disagreeing with the net R it must be computed from
    return HistoryRow(
        **signal,
        seq=seq,
        closed_at=at.astimezone(UTC),
        outcome=outcome,
        win=win,
        target_index=target_index,
        decided_at=decided,
        filled_at=filled_at,
        fill_price=numbers["fill_price"],
        exit_price=numbers["exit_price"],
        gross_pnl_pct=numbers["gross_pnl_pct"],
        costs_pct=numbers["costs_pct"],
        net_pnl_pct=numbers["net_pnl_pct"],
        gross_r=numbers["gross_r"],
        net_r=net_r,
        mfe_pct=numbers["mfe_pct"],
        mae_pct=numbers["mae_pct"],
        holding_seconds=holding_seconds,
        missing=tuple(missing),
        legacy=net_r is None and any(key in data for key in LEGACY_KEYS),
    )


@dataclass(frozen=True, slots=True)
class LedgerHistory:
    rows: list[HistoryRow]  # newest close first
    unmatched: int  # closed entries whose created entry was absent or unreadable


def history_from_ledger(entries: Iterable[LedgerEntry]) -> LedgerHistory:
    """The closed signals, rebuilt from ledger entries alone (in seq order, from the start).

    A signal's fields come from its ``created`` entry, its outcome from its latest ``closed`` one.
    A close whose signal cannot be read from a ``created`` entry (a partial range, a malformed row)
    is counted in ``unmatched`` and left out.
    """
    created: dict[str, dict[str, Any]] = {}
    closes: dict[str, LedgerEntry] = {}
    for entry in entries:
        if entry.kind == SignalEventKind.CREATED:
            fields = _signal_fields(entry.data)
            if fields is not None:
                created[entry.signal_id] = fields
        elif entry.kind == SignalEventKind.CLOSED:
            closes[entry.signal_id] = entry
    rows: list[HistoryRow] = []
    unmatched = 0
    for signal_id, close in closes.items():
        fields = created.get(signal_id)
        if fields is None:
            unmatched += 1
            continue
        rows.append(_row(seq=close.seq, at=close.at, data=close.data, signal_id=signal_id, **fields))
    rows.sort(key=lambda r: r.seq, reverse=True)
    return LedgerHistory(rows=rows, unmatched=unmatched)


def _signal_fields(data: object) -> dict[str, Any] | None:
    """The published signal from a ``created`` entry's data (``storage.repositories.signal_data``)."""
    if not isinstance(data, Mapping):
        return None  # sealed or malformed
    try:
        created_at, expires_at = _time(data["created_at"]), _time(data["expires_at"])
        if created_at is None or expires_at is None:
            return None
        model_version = data.get("model_version")
        return {
            "symbol": str(data["symbol"]),
            "type": str(data["type"]),
            "direction": str(data["direction"]),
            "entry": float(data["entry"]),
            "stop": float(data["stop"]),
            "targets": tuple(float(t) for t in data["targets"]),
            "confidence": float(data["confidence"]),
            "created_at": created_at,
            "expires_at": expires_at,
            "model_version": model_version
            if isinstance(model_version, str) and model_version
            else UNKNOWN_MODEL,
            # Entries from before the rulebook have no decided_at: then decision and publication were one.
            "decided_at": _time(data.get("decided_at")) or created_at,
        }
    except (KeyError, TypeError, ValueError):
        return None


# --- figures -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bucket:
    """One row of the reliability table: scored closes with ``lo <= confidence < hi``."""

    lo: float
    hi: float
    n: int
    mean_confidence: float
    hit_rate: float


def bucket_of(confidence: float) -> int:
    """The index of the 5-point bucket holding ``confidence`` (1.0 joins the last bucket)."""
    # round() first so that 0.35, stored as 0.34999…, lands in [0.35, 0.40) as a person reads it.
    return min(_BUCKETS - 1, max(0, math.floor(round(confidence * _BUCKETS, 9))))


def reliability(rows: Iterable[HistoryRow]) -> list[Bucket]:
    """The reliability table over the scored ``rows``: non-empty buckets, by ascending confidence."""
    groups: dict[int, list[HistoryRow]] = {}
    for r in rows:
        if r.scored:
            groups.setdefault(bucket_of(r.confidence), []).append(r)
    return [
        Bucket(
            lo=round(i * BUCKET_WIDTH, 2),
            hi=round((i + 1) * BUCKET_WIDTH, 2),
            n=len(members),
            mean_confidence=math.fsum(r.confidence for r in members) / len(members),
            hit_rate=sum(1 for r in members if r.win) / len(members),
        )
        for i, members in sorted(groups.items())
    ]


def _mean(xs: list[float]) -> float | None:
    return math.fsum(xs) / len(xs) if xs else None


@dataclass(frozen=True, slots=True)
class Stats:
    """Figures over a group of closes; rates and averages over its scored closes (``count``)."""

    closes: int = 0  # every close in the group, scored or not
    count: int = 0  # scored: filled, with a net R — the denominator of every rate and average
    not_filled: int = 0
    wins: int = 0
    losses: int = 0  # net R < 0; a flat close is neither
    hit_rate: float | None = None
    avg_net_r: float | None = None  # the expectancy in R
    median_net_r: float | None = None
    avg_gross_r: float | None = None
    avg_net_pnl_pct: float | None = None  # the expectancy in net percent of the fill
    avg_costs_pct: float | None = None
    net_profit_factor: float | None = None
    outcomes: dict[str, int] = field(default_factory=dict)  # every close with a known outcome
    reliability: list[Bucket] = field(default_factory=list)


def stats(rows: Iterable[HistoryRow]) -> Stats:
    """Figures over ``rows`` (any mix of scored, not-filled, legacy and malformed closes)."""
    rows = list(rows)
    outcomes: dict[str, int] = {}
    for r in rows:
        if r.outcome is not None:
            outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
    not_filled = outcomes.get(OutcomeKind.NOT_FILLED, 0)
    scored = [r for r in rows if r.scored]
    if not scored:
        return Stats(closes=len(rows), not_filled=not_filled, outcomes=dict(sorted(outcomes.items())))
    net_r = [r.net_r for r in scored if r.net_r is not None]
    won = math.fsum(x for x in net_r if is_win(x))
    lost = -math.fsum(x for x in net_r if x < 0)
    wins = sum(1 for r in scored if r.win)
    return Stats(
        closes=len(rows),
        count=len(scored),
        not_filled=not_filled,
        wins=wins,
        losses=sum(1 for x in net_r if x < 0),
        hit_rate=wins / len(scored),
        avg_net_r=_mean(net_r),
        median_net_r=float(statistics.median(net_r)),
        avg_gross_r=_mean([r.gross_r for r in scored if r.gross_r is not None]),
        avg_net_pnl_pct=_mean([r.net_pnl_pct for r in scored if r.net_pnl_pct is not None]),
        avg_costs_pct=_mean([r.costs_pct for r in scored if r.costs_pct is not None]),
        net_profit_factor=won / lost if lost > 0 else None,
        outcomes=dict(sorted(outcomes.items())),
        reliability=reliability(scored),
    )


@dataclass(frozen=True, slots=True)
class Summary:
    overall: Stats
    by_model: dict[str, Stats]  # model version -> its figures, ascending
    by_type: dict[str, Stats]
    by_symbol: dict[str, Stats]
    by_month: dict[str, Stats]  # "YYYY-MM" of the close, UTC, ascending
    closed: int  # every close seen
    skipped: int  # filled (or unreadable) closes without a usable net R: listed, not in the figures
    legacy: int  # of those, closes written before the rulebook (pnl_pct / r_multiple)
    missing: dict[str, int]  # contract key -> closes where it was absent or malformed


def summarize(rows: Iterable[HistoryRow]) -> Summary:
    """The track record's figures, overall and by model version, type, symbol and month of close."""
    rows = list(rows)
    missing: dict[str, int] = {}
    for r in rows:
        for key in r.missing:
            missing[key] = missing.get(key, 0) + 1

    def by(key: str) -> dict[str, Stats]:
        groups: dict[str, list[HistoryRow]] = {}
        for r in rows:
            groups.setdefault(r.month if key == "month" else getattr(r, key), []).append(r)
        return {name: stats(groups[name]) for name in sorted(groups)}

    return Summary(
        overall=stats(rows),
        by_model=by("model_version"),
        by_type=by("type"),
        by_symbol=by("symbol"),
        by_month=by("month"),
        closed=len(rows),
        skipped=sum(1 for r in rows if r.filled and r.net_r is None),
        legacy=sum(1 for r in rows if r.legacy),
        missing=dict(sorted(missing.items())),
    )


# --- the same figures, kept up to date close by close -------------------------------------------
#
# ``summarize`` reads every close: O(history) per call. ``RunningSummary`` keeps, per group, what the
# figures are made of — counts, exact sums, the sorted net R (for the median) and the reliability
# buckets — and updates it as closes arrive or are superseded, so a summary costs O(groups), not
# O(closes). The sums are exact (integers in units of 2**-1074, the smallest float step), and the
# float is taken once, correctly rounded, as ``math.fsum`` does: the figures are bit for bit those
# of ``summarize`` on the same closes (a test checks it on random outcomes), and removing a close
# leaves no rounding residue behind.

_EXACT_SHIFT = 1021  # frexp mantissa * 2**53 carries 2**(e - 53); scaled by 2**1074: shift e + 1021
_EXACT_SCALE = 1 << 1074


def _exact(x: float) -> int:
    """``x`` as an integer number of 2**-1074: every finite float is one, exactly."""
    m, e = math.frexp(x)
    mantissa, shift = int(m * (1 << 53)), e + _EXACT_SHIFT
    # A subnormal has fewer than 53 significant bits: its low bits are zero, the right shift exact.
    return mantissa << shift if shift >= 0 else mantissa >> -shift


def _float(total: int) -> float:
    """The exact sum back to the nearest float (int / int is correctly rounded in Python)."""
    return total / _EXACT_SCALE


@dataclass(slots=True)
class _Running:
    """What one group's ``Stats`` is made of, kept exact under adds and removes."""

    closes: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    count: int = 0
    wins: int = 0
    losses: int = 0
    net_r: list[float] = field(default_factory=list)  # sorted: the median is its middle
    sum_net_r: int = 0
    won: int = 0
    lost: int = 0  # exact sum of the losing net R (negative)
    gross_r: list[int] = field(default_factory=lambda: [0, 0])  # [n, exact sum]
    net_pnl_pct: list[int] = field(default_factory=lambda: [0, 0])
    costs_pct: list[int] = field(default_factory=lambda: [0, 0])
    buckets: dict[int, list[int]] = field(default_factory=dict)  # index -> [n, exact confidence sum, wins]

    def apply(self, r: HistoryRow, sign: int) -> None:
        """Add (``sign`` 1) or remove (-1) one close."""
        self.closes += sign
        if r.outcome is not None:
            n = self.outcomes.get(r.outcome, 0) + sign
            if n:
                self.outcomes[r.outcome] = n
            else:
                del self.outcomes[r.outcome]
        if not r.scored or r.net_r is None:
            return
        x = r.net_r
        self.count += sign
        self.wins += sign if r.win else 0
        self.losses += sign if x < 0 else 0
        if sign > 0:
            bisect.insort(self.net_r, x)
        else:
            del self.net_r[bisect.bisect_left(self.net_r, x)]
        ex = _exact(x)
        self.sum_net_r += sign * ex
        if is_win(x):
            self.won += sign * ex
        elif x < 0:
            self.lost += sign * ex
        for acc, value in (
            (self.gross_r, r.gross_r),
            (self.net_pnl_pct, r.net_pnl_pct),
            (self.costs_pct, r.costs_pct),
        ):
            if value is not None:
                acc[0] += sign
                acc[1] += sign * _exact(value)
        index = bucket_of(r.confidence)
        bucket = self.buckets.setdefault(index, [0, 0, 0])
        bucket[0] += sign
        bucket[1] += sign * _exact(r.confidence)
        bucket[2] += sign if r.win else 0
        if bucket[0] == 0:
            del self.buckets[index]

    def stats(self) -> Stats:
        """The group's figures, exactly as ``stats`` computes them from its rows."""
        outcomes = dict(sorted(self.outcomes.items()))
        not_filled = self.outcomes.get(OutcomeKind.NOT_FILLED, 0)
        if not self.count:
            return Stats(closes=self.closes, not_filled=not_filled, outcomes=outcomes)
        n, xs = self.count, self.net_r
        half = n // 2
        median = xs[half] if n % 2 else (xs[half - 1] + xs[half]) / 2
        lost = -_float(self.lost)

        def mean(acc: list[int]) -> float | None:
            return _float(acc[1]) / acc[0] if acc[0] else None

        return Stats(
            closes=self.closes,
            count=n,
            not_filled=not_filled,
            wins=self.wins,
            losses=self.losses,
            hit_rate=self.wins / n,
            avg_net_r=_float(self.sum_net_r) / n,
            median_net_r=float(median),
            avg_gross_r=mean(self.gross_r),
            avg_net_pnl_pct=mean(self.net_pnl_pct),
            avg_costs_pct=mean(self.costs_pct),
            net_profit_factor=_float(self.won) / lost if lost > 0 else None,
            outcomes=outcomes,
            reliability=[
                Bucket(
                    lo=round(i * BUCKET_WIDTH, 2),
                    hi=round((i + 1) * BUCKET_WIDTH, 2),
                    n=b[0],
                    mean_confidence=_float(b[1]) / b[0],
                    hit_rate=b[2] / b[0],
                )
                for i, b in sorted(self.buckets.items())
            ],
        )


_GROUPINGS = ("model_version", "type", "symbol", "month")


@dataclass(slots=True)
class RunningSummary:
    """``summarize`` kept up to date: ``add`` a close, ``remove`` one superseded; ``summary()``
    costs O(groups) whatever the number of closes."""

    overall: _Running = field(default_factory=_Running)
    groups: dict[str, dict[str, _Running]] = field(default_factory=lambda: {g: {} for g in _GROUPINGS})
    closed: int = 0
    skipped: int = 0
    legacy: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    changes: int = 0  # bumped by every add and remove: equal counts, equal figures

    def add(self, row: HistoryRow) -> None:
        self._apply(row, 1)

    def remove(self, row: HistoryRow) -> None:
        """Take back a close added before (the signal was closed again: the latest close counts)."""
        self._apply(row, -1)

    def _apply(self, r: HistoryRow, sign: int) -> None:
        self.changes += 1
        self.closed += sign
        self.skipped += sign if r.filled and r.net_r is None else 0
        self.legacy += sign if r.legacy else 0
        for key in r.missing:
            n = self.missing.get(key, 0) + sign
            if n:
                self.missing[key] = n
            else:
                del self.missing[key]
        self.overall.apply(r, sign)
        for grouping, groups in self.groups.items():
            name = r.month if grouping == "month" else getattr(r, grouping)
            group = groups.get(name)
            if group is None:
                group = groups[name] = _Running()
            group.apply(r, sign)
            if group.closes == 0:
                del groups[name]

    def summary(self) -> Summary:
        def by(grouping: str) -> dict[str, Stats]:
            groups = self.groups[grouping]
            return {name: groups[name].stats() for name in sorted(groups)}

        return Summary(
            overall=self.overall.stats(),
            by_model=by("model_version"),
            by_type=by("type"),
            by_symbol=by("symbol"),
            by_month=by("month"),
            closed=self.closed,
            skipped=self.skipped,
            legacy=self.legacy,
            missing=dict(sorted(self.missing.items())),
        )


__all__ = [
    "BUCKET_WIDTH",
    "LEGACY_KEYS",
    "OUTCOMES",
    "OUTCOME_KEYS",
    "Bucket",
    "HistoryRow",
    "LedgerHistory",
    "RunningSummary",
    "Stats",
    "Summary",
    "bucket_of",
    "history_from_ledger",
    "reliability",
    "stats",
    "summarize",
]
