"""Track-record figures on a hand-computed example, the grouping, and robustness to bad outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tradesignals.domain.ledger import Chain, LedgerEntry
from tradesignals.domain.signals import Direction, Signal, SignalEvent, SignalEventKind, SignalType
from tradesignals.engine.lifecycle import Outcome, OutcomeKind
from tradesignals.engine.track_record import (
    OUTCOME_KEYS,
    HistoryRow,
    history_from_ledger,
    stats,
    summarize,
)
from tradesignals.storage.repositories import signal_data

T0 = datetime(2026, 1, 2, 15, 0, tzinfo=UTC)


def signal(n: int, symbol: str, type: SignalType) -> Signal:
    return Signal(
        id=f"{n:022x}",
        symbol=symbol,
        type=type,
        direction=Direction.LONG,
        entry=100.0,
        stop=95.0,
        targets=(105.0, 110.0),
        confidence=0.6,
        created_at=T0 + timedelta(hours=n),
        expires_at=T0 + timedelta(days=5, hours=n),
        model_version="m",
    )


def outcome(
    at: datetime, pnl: float | None, r: float | None, kind: str, index: int | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "outcome": kind,
        "target_index": index,
        "exit_price": 100.0 * (1 + (pnl or 0) / 100),
        "mfe_pct": 5.0,
        "mae_pct": -1.0,
        "holding_seconds": 3600,
        "closed_at": at.isoformat(),
    }
    if pnl is not None:
        data["pnl_pct"] = pnl
    if r is not None:
        data["r_multiple"] = r
    return data


def day(month: int, d: int) -> datetime:
    return datetime(2026, month, d, 12, tzinfo=UTC)


# (symbol, type, close time, pnl_pct, r_multiple, outcome, target_index)
CASES: list[tuple[str, SignalType, datetime, float | None, float | None, str, int | None]] = [
    ("AAPL", SignalType.SWING, day(1, 10), 4.0, 2.0, "target", 1),
    ("AAPL", SignalType.SWING, day(1, 20), -2.0, -1.0, "stop", None),
    ("MSFT", SignalType.DAY, day(2, 2), 1.0, 0.5, "target", 0),
    ("MSFT", SignalType.SWING, day(2, 15), -1.0, -0.5, "stop", None),
    ("TSLA", SignalType.DAY, day(2, 20), 0.0, 0.0, "expired", None),
    ("TSLA", SignalType.SWING, day(3, 1), None, None, "expired", None),  # no P/L: skipped
    ("NVDA", SignalType.SWING, day(3, 5), 3.0, None, "target", 0),  # no R: out of avg_r only
]


def example() -> tuple[list[HistoryRow], list[LedgerEntry]]:
    """The hand-computed case as rows (from signals) and as a ledger (with an unrelated open one)."""
    rows, chain, entries = [], Chain(), []
    for n, (symbol, type, at, pnl, r, kind, index) in enumerate(CASES):
        s = signal(n, symbol, type)
        entries.append(chain.append(s.id, "created", s.created_at, signal_data(s)))
        data = outcome(at, pnl, r, kind, index)
        if n == 5:
            data = {"outcome": "expired"}  # the lifecycle wrote nothing else
        closed = chain.append(s.id, "closed", at, data)
        entries.append(closed)
        rows.append(HistoryRow.of(s, closed.seq, SignalEvent(s.id, SignalEventKind.CLOSED, at, data)))
    still_open = signal(99, "AMD", SignalType.SWING)
    entries.append(chain.append(still_open.id, "created", still_open.created_at, signal_data(still_open)))
    return rows, entries


def test_summary_on_a_hand_computed_example() -> None:
    rows, _ = example()
    s = summarize(rows)
    o = s.overall
    # Scored returns: 4, -2, 1, -1, 0, 3.
    assert (s.closed, s.skipped, o.count, o.wins, o.losses) == (7, 1, 6, 3, 2)
    assert o.win_rate == 0.5
    assert o.avg_return_pct == pytest.approx(5 / 6)
    assert o.median_return_pct == 0.5  # sorted -2 -1 0 1 3 4: (0 + 1) / 2
    assert (o.total_return_pct, o.gross_profit_pct, o.gross_loss_pct) == (5.0, 8.0, 3.0)
    assert o.profit_factor == pytest.approx(8 / 3)
    assert o.avg_r == pytest.approx(1.0 / 5) and o.r_count == 5  # 2 - 1 + 0.5 - 0.5 + 0
    assert o.outcomes == {"expired": 1, "stop": 2, "target": 3}
    assert s.missing == {
        "closed_at": 1,
        "exit_price": 1,
        "holding_seconds": 1,
        "mae_pct": 1,
        "mfe_pct": 1,
        "pnl_pct": 1,
        "r_multiple": 2,
    }


def test_by_type_symbol_and_month() -> None:
    rows, _ = example()
    s = summarize(rows)
    assert list(s.by_type) == ["day", "swing"]
    swing, day_ = s.by_type["swing"], s.by_type["day"]
    assert (swing.count, swing.wins, swing.avg_return_pct, swing.median_return_pct) == (4, 2, 1.0, 1.0)
    assert swing.profit_factor == pytest.approx(7 / 3) and swing.avg_r == pytest.approx(0.5 / 3)
    assert (day_.count, day_.wins, day_.losses, day_.win_rate) == (2, 1, 0, 0.5)
    assert day_.profit_factor is None  # nothing lost: not infinity, which JSON cannot carry
    assert day_.avg_r == 0.25

    assert list(s.by_symbol) == ["AAPL", "MSFT", "NVDA", "TSLA"]
    assert s.by_symbol["AAPL"].profit_factor == 2.0 and s.by_symbol["AAPL"].avg_return_pct == 1.0
    assert s.by_symbol["MSFT"].profit_factor == 1.0 and s.by_symbol["MSFT"].avg_return_pct == 0.0
    assert (s.by_symbol["TSLA"].count, s.by_symbol["TSLA"].win_rate) == (1, 0.0)
    assert s.by_symbol["NVDA"].avg_r is None and s.by_symbol["NVDA"].r_count == 0

    assert list(s.by_month) == ["2026-01", "2026-02", "2026-03"]
    assert [m.count for m in s.by_month.values()] == [2, 3, 1]
    assert s.by_month["2026-02"].total_return_pct == 0.0


def test_the_month_is_the_close_month_in_utc() -> None:
    s = signal(1, "AAPL", SignalType.SWING)
    late_new_york = datetime(2026, 1, 31, 20, 30, tzinfo=timezone(timedelta(hours=-5)))
    row = HistoryRow.of(s, 2, SignalEvent(s.id, SignalEventKind.CLOSED, late_new_york, {"pnl_pct": 1.0}))
    assert row.month == "2026-02" and row.closed_at.tzinfo is UTC
    assert list(summarize([row]).by_month) == ["2026-02"]


def test_the_ledger_alone_gives_the_same_history_and_figures() -> None:
    rows, entries = example()
    rebuilt = history_from_ledger(entries)
    assert rebuilt.unmatched == 0
    assert rebuilt.rows == sorted(rows, key=lambda r: r.seq, reverse=True)
    assert summarize(rebuilt.rows) == summarize(rows)


def test_the_ledger_history_takes_the_latest_close_and_counts_unmatched() -> None:
    rows, entries = example()
    chain = Chain(head=entries[-1].hash, seq=entries[-1].seq)
    first = rows[0]
    entries.append(chain.append(first.signal_id, "closed", day(4, 1), outcome(day(4, 1), -9.0, -2.0, "stop")))
    entries.append(chain.append("f" * 22, "closed", day(4, 2), {"pnl_pct": 1.0}))  # no created entry
    rebuilt = history_from_ledger(entries)
    assert rebuilt.unmatched == 1 and len(rebuilt.rows) == 7
    assert rebuilt.rows[0].signal_id == first.signal_id and rebuilt.rows[0].pnl_pct == -9.0
    # A page that starts after the created entries cannot place its closes.
    assert history_from_ledger(entries[1::2]).unmatched == 7


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"pnl_pct": "3.0", "r_multiple": True, "outcome": "moon", "target_index": "1"},
        {"pnl_pct": float("nan"), "r_multiple": float("inf"), "closed_at": "yesterday"},
        {"pnl_pct": None, "holding_seconds": [1]},
        None,
        ["not", "a", "mapping"],
    ],
)
def test_malformed_outcomes_are_counted_never_raised(data: Any) -> None:
    s = signal(1, "AAPL", SignalType.SWING)
    row = HistoryRow.of(s, 2, SignalEvent(s.id, SignalEventKind.CLOSED, day(1, 5), data))
    assert row.pnl_pct is None and row.r_multiple is None and row.outcome is None
    assert {"pnl_pct", "r_multiple", "outcome"} <= set(row.missing) <= set(OUTCOME_KEYS)
    summary = summarize([row])
    assert (summary.closed, summary.skipped, summary.overall.count) == (1, 1, 0)
    assert summary.overall.win_rate is None and summary.overall.avg_return_pct is None
    assert summary.by_symbol == {}


def test_target_index_is_required_only_for_a_target() -> None:
    s = signal(1, "AAPL", SignalType.SWING)
    at = day(1, 5)

    def missing(data: dict[str, Any]) -> tuple[str, ...]:
        return HistoryRow.of(s, 2, SignalEvent(s.id, SignalEventKind.CLOSED, at, data)).missing

    assert missing(outcome(at, -1.0, -1.0, "stop")) == ()
    assert missing(outcome(at, 2.0, 1.0, "target", 0)) == ()
    assert missing(outcome(at, 2.0, 1.0, "target")) == ("target_index",)
    assert missing({**outcome(at, -1.0, -1.0, "stop"), "target_index": True}) == ("target_index",)


def test_integers_count_as_numbers_and_nothing_at_all_is_empty() -> None:
    s = signal(1, "AAPL", SignalType.SWING)
    row = HistoryRow.of(
        s, 2, SignalEvent(s.id, SignalEventKind.CLOSED, day(1, 5), {"pnl_pct": 2, "r_multiple": 1})
    )
    assert row.pnl_pct == 2.0 and type(row.pnl_pct) is float
    assert stats([]).count == 0 and stats([]).profit_factor is None
    empty = summarize([])
    assert (empty.closed, empty.skipped, empty.overall.count, empty.by_month) == (0, 0, 0, {})


def test_the_lifecycle_outcome_meets_the_contract() -> None:
    """What the lifecycle tracker writes is read in full: no key missing, the numbers as written."""
    s = signal(1, "AAPL", SignalType.SWING)
    at = datetime(2026, 1, 3, 16, 0, tzinfo=UTC)
    stopped_after_1r = Outcome(
        signal_id=s.id,
        symbol=s.symbol,
        outcome=OutcomeKind.STOP,
        target_index=0,  # reached the first target, then fell back to the stop
        exit_price=95.0,
        pnl_pct=-5.0,
        r_multiple=-1.0,
        mfe_pct=5.5,
        mae_pct=-5.0,
        holding_seconds=(at - s.created_at).total_seconds(),
        closed_at=at,
    )
    event = stopped_after_1r.to_event()
    row = HistoryRow.of(s, 3, SignalEvent(event.signal_id, event.kind, event.at, dict(event.data)))
    assert row.missing == ()
    assert (row.outcome, row.target_index, row.pnl_pct, row.r_multiple) == ("stop", 0, -5.0, -1.0)
    assert (row.exit_price, row.mfe_pct, row.mae_pct) == (95.0, 5.5, -5.0)
    assert row.closed_at == at and row.holding_seconds == (at - s.created_at).total_seconds()
