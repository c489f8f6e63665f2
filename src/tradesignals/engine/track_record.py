"""The track record: closed signals with their P/L, and the figures the free tier shows.

Pure (no I/O), and built from ledger entries alone (``history_from_ledger``) as well as from stored
signals (``HistoryRow.of``), so anyone holding the ledger can recompute every figure we publish.

The outcome contract — the ``data`` of a signal's ``closed`` event, written by the lifecycle
tracker (``engine/lifecycle.py``); these exact keys:

==================  ==========================================================================
``outcome``         ``"target"`` | ``"stop"`` | ``"expired"``
``target_index``    int, the highest target reached before the exit, whatever the exit (0 = the
                    first); null when none was (required when ``outcome`` is target)
``exit_price``      float, the price the position is taken to have closed at
``pnl_pct``         float, return in percent of entry, direction-adjusted (+2.5 = won 2.5 %)
``r_multiple``      float, P/L in units of the initial risk (entry to stop)
``mfe_pct``         float, maximum favourable excursion while open, percent of entry
``mae_pct``         float, maximum adverse excursion while open, percent of entry
``holding_seconds`` number, time from the signal's creation to its close
``closed_at``       ISO 8601 time of the close; must equal the closed event's ``at``
==================  ==========================================================================

The closed event's ``at`` is the close time used for ordering and for the month a close belongs to
(UTC), so that the database can filter by it. A key that is missing or of the wrong type is
counted (``Summary.missing``), never raised: a close without a usable ``pnl_pct`` is listed but
left out of the figures (``Summary.skipped``); one without ``r_multiple`` still counts everywhere
but in ``avg_r``.

Definitions: a win is ``pnl_pct > 0``, a loss ``< 0``, a flat close neither (it still counts in
``count``, so ``win_rate = wins / count``). Profit factor is the sum of winning returns over the
absolute sum of losing ones, each signal weighted equally; ``None`` when nothing was lost.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tradesignals.domain.ledger import LedgerEntry
from tradesignals.domain.signals import Signal, SignalEvent, SignalEventKind

OUTCOME_KEYS: tuple[str, ...] = (
    "outcome",
    "target_index",
    "exit_price",
    "pnl_pct",
    "r_multiple",
    "mfe_pct",
    "mae_pct",
    "holding_seconds",
    "closed_at",
)
OUTCOMES: frozenset[str] = frozenset({"target", "stop", "expired"})


def _number(data: Mapping[str, Any], key: str, missing: list[str]) -> float | None:
    value = data.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    missing.append(key)
    return None


def _time(value: object) -> datetime | None:
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
    seq: int  # seq of the closed event: the history's order and cursor
    closed_at: datetime  # the closed event's ``at`` (UTC)
    outcome: str | None
    target_index: int | None
    exit_price: float | None
    pnl_pct: float | None
    r_multiple: float | None
    mfe_pct: float | None
    mae_pct: float | None
    holding_seconds: float | None
    missing: tuple[str, ...] = ()  # contract keys absent or of the wrong type

    @property
    def month(self) -> str:
        return self.closed_at.astimezone(UTC).strftime("%Y-%m")

    @classmethod
    def of(cls, signal: Signal, seq: int, closed: SignalEvent) -> HistoryRow:
        """From a stored signal and its ``closed`` event."""
        return _row(
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
            seq=seq,
            at=closed.at,
            data=closed.data,
        )


def _row(*, seq: int, at: datetime, data: object, **signal: Any) -> HistoryRow:
    if not isinstance(data, Mapping):
        data = {}
    missing: list[str] = []
    outcome = data.get("outcome")
    if not isinstance(outcome, str) or outcome not in OUTCOMES:
        missing.append("outcome")
        outcome = None
    raw_index = data.get("target_index")
    target_index = raw_index if isinstance(raw_index, int) and not isinstance(raw_index, bool) else None
    if target_index is None and (outcome == "target" or raw_index is not None):
        missing.append("target_index")
    exit_price = _number(data, "exit_price", missing)
    pnl_pct = _number(data, "pnl_pct", missing)
    r_multiple = _number(data, "r_multiple", missing)
    mfe_pct = _number(data, "mfe_pct", missing)
    mae_pct = _number(data, "mae_pct", missing)
    holding_seconds = _number(data, "holding_seconds", missing)
    if _time(data.get("closed_at")) is None:
        missing.append("closed_at")
    return HistoryRow(
        **signal,
        seq=seq,
        closed_at=at.astimezone(UTC),
        outcome=outcome,
        target_index=target_index,
        exit_price=exit_price,
        pnl_pct=pnl_pct,
        r_multiple=r_multiple,
        mfe_pct=mfe_pct,
        mae_pct=mae_pct,
        holding_seconds=holding_seconds,
        missing=tuple(missing),
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
        }
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Stats:
    """Figures over a set of scored closes (those with a usable ``pnl_pct``)."""

    count: int = 0
    wins: int = 0
    losses: int = 0
    win_rate: float | None = None
    avg_return_pct: float | None = None
    median_return_pct: float | None = None
    total_return_pct: float = 0.0
    gross_profit_pct: float = 0.0
    gross_loss_pct: float = 0.0  # as a positive number
    profit_factor: float | None = None
    avg_r: float | None = None
    r_count: int = 0  # closes that had an r_multiple (avg_r's denominator)
    outcomes: dict[str, int] = field(default_factory=dict)


def stats(rows: Iterable[HistoryRow]) -> Stats:
    """Figures over ``rows``; rows without a ``pnl_pct`` are ignored (``summarize`` counts them)."""
    scored = [r for r in rows if r.pnl_pct is not None]
    if not scored:
        return Stats()
    returns = [r.pnl_pct for r in scored if r.pnl_pct is not None]
    gains = [x for x in returns if x > 0]
    losses = [x for x in returns if x < 0]
    gross_profit, gross_loss = math.fsum(gains), -math.fsum(losses)
    rs = [r.r_multiple for r in scored if r.r_multiple is not None]
    outcomes: dict[str, int] = {}
    for r in scored:
        if r.outcome is not None:
            outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
    return Stats(
        count=len(returns),
        wins=len(gains),
        losses=len(losses),
        win_rate=len(gains) / len(returns),
        avg_return_pct=math.fsum(returns) / len(returns),
        median_return_pct=float(statistics.median(returns)),
        total_return_pct=math.fsum(returns),
        gross_profit_pct=gross_profit,
        gross_loss_pct=gross_loss,
        profit_factor=gross_profit / gross_loss if gross_loss > 0 else None,
        avg_r=math.fsum(rs) / len(rs) if rs else None,
        r_count=len(rs),
        outcomes=dict(sorted(outcomes.items())),
    )


@dataclass(frozen=True, slots=True)
class Summary:
    overall: Stats
    by_type: dict[str, Stats]
    by_symbol: dict[str, Stats]
    by_month: dict[str, Stats]  # "YYYY-MM" of the close, UTC, ascending
    closed: int  # every close seen, scored or not
    skipped: int  # closes without a usable pnl_pct: listed in history, not in the figures
    missing: dict[str, int]  # contract key -> closes where it was absent or malformed


def summarize(rows: Iterable[HistoryRow]) -> Summary:
    """The track record's figures, overall and by type, symbol and month of close."""
    rows = list(rows)
    missing: dict[str, int] = {}
    for r in rows:
        for key in r.missing:
            missing[key] = missing.get(key, 0) + 1
    scored = [r for r in rows if r.pnl_pct is not None]

    def by(key: str) -> dict[str, Stats]:
        groups: dict[str, list[HistoryRow]] = {}
        for r in scored:
            groups.setdefault(r.month if key == "month" else getattr(r, key), []).append(r)
        return {name: stats(groups[name]) for name in sorted(groups)}

    return Summary(
        overall=stats(scored),
        by_type=by("type"),
        by_symbol=by("symbol"),
        by_month=by("month"),
        closed=len(rows),
        skipped=len(rows) - len(scored),
        missing=dict(sorted(missing.items())),
    )


__all__ = [
    "OUTCOMES",
    "OUTCOME_KEYS",
    "HistoryRow",
    "LedgerHistory",
    "Stats",
    "Summary",
    "history_from_ledger",
    "stats",
    "summarize",
]
