"""Track-record figures on a hand-computed example, by model, the reliability table, and robustness.

Outcomes are built with ``domain.outcomes.Outcome`` — the lifecycle's own record — so the rows read
exactly what the lifecycle writes (``to_event_data``), key for key.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tradesignals.domain.ledger import Chain, LedgerEntry
from tradesignals.domain.outcomes import OUTCOME_KEYS, Outcome, OutcomeKind
from tradesignals.domain.signals import Direction, Signal, SignalEvent, SignalEventKind, SignalType
from tradesignals.engine.track_record import (
    HistoryRow,
    Stats,
    bucket_of,
    history_from_ledger,
    reliability,
    stats,
    summarize,
)
from tradesignals.storage.repositories import signal_data

T0 = datetime(2026, 1, 2, 15, 0, tzinfo=UTC)
COSTS_R = 0.125  # round-trip costs in R of every example trade (risk 5 on a fill of 100: 0.625 %)


def signal(n: int, symbol: str, type: SignalType, confidence: float, model: str = "m1") -> Signal:
    created = T0 + timedelta(hours=n)
    return Signal(
        id=f"{n:022x}",
        symbol=symbol,
        type=type,
        direction=Direction.LONG,
        entry=100.0,
        stop=95.0,
        targets=(105.0, 110.0),
        confidence=confidence,
        created_at=created,
        expires_at=created + timedelta(days=5),
        model_version=model,
        decided_at=created - timedelta(minutes=1),
        base_rate=0.25,
    )


def outcome(s: Signal, kind: OutcomeKind, net_r: float | None, at: datetime) -> Outcome:
    """A close of ``s`` (fill 100, risk 5) with ``net_r`` after ``COSTS_R`` of costs; None = not filled."""
    if net_r is None:
        return Outcome(
            signal_id=s.id,
            symbol=s.symbol,
            outcome=OutcomeKind.NOT_FILLED,
            target_index=None,
            decided_at=s.decided_at or s.created_at,
            filled_at=None,
            fill_price=None,
            first_price=94.0,
            exit_price=None,
            gross_pnl_pct=None,
            costs_pct=None,
            net_pnl_pct=None,
            gross_r=None,
            net_r=None,
            mfe_pct=None,
            mae_pct=None,
            holding_seconds=0.0,
            closed_at=at,
        )
    gross_r = net_r + COSTS_R
    return Outcome(
        signal_id=s.id,
        symbol=s.symbol,
        outcome=kind,
        target_index=1 if kind is OutcomeKind.TARGET else None,
        decided_at=s.decided_at or s.created_at,
        filled_at=s.created_at + timedelta(minutes=1),
        fill_price=100.0,
        first_price=None,
        exit_price=100.0 + gross_r * 5,
        gross_pnl_pct=gross_r * 5,
        costs_pct=COSTS_R * 5,
        net_pnl_pct=net_r * 5,
        gross_r=gross_r,
        net_r=net_r,
        mfe_pct=max(0.0, gross_r * 5),
        mae_pct=min(0.0, gross_r * 5),
        holding_seconds=(at - s.created_at).total_seconds(),
        closed_at=at,
    )


def day(month: int, d: int) -> datetime:
    return datetime(2026, month, d, 12, tzinfo=UTC)


LEGACY = {"outcome": "target", "target_index": 0, "exit_price": 103.0, "pnl_pct": 3.0, "r_multiple": 0.6}

# (symbol, type, confidence, model, close time, outcome, net R; None = not filled / raw data)
CASES: list[tuple[str, SignalType, float, str, datetime, OutcomeKind | dict[str, Any], float | None]] = [
    ("AAPL", SignalType.SWING, 0.22, "m1", day(1, 10), OutcomeKind.TARGET, 2.0),
    ("AAPL", SignalType.SWING, 0.27, "m1", day(1, 20), OutcomeKind.STOP, -1.25),
    ("MSFT", SignalType.DAY, 0.31, "m1", day(2, 2), OutcomeKind.EXPIRED, 0.5),
    ("MSFT", SignalType.SWING, 0.35, "m1", day(2, 3), OutcomeKind.NOT_FILLED, None),
    ("TSLA", SignalType.SWING, 0.33, "m2", day(2, 20), OutcomeKind.EXPIRED, -0.25),
    ("TSLA", SignalType.SWING, 0.24, "m2", day(3, 1), OutcomeKind.STOP, -1.0),
    ("NVDA", SignalType.SWING, 0.90, "m2", day(3, 5), LEGACY, None),  # before the rulebook
    ("AMD", SignalType.SWING, 0.21, "m2", day(3, 6), {"outcome": "expired"}, None),  # nothing else
]


def example() -> tuple[list[HistoryRow], list[LedgerEntry]]:
    """The hand-computed case as rows (from signals) and as a ledger (with an unrelated open one)."""
    rows, chain, entries = [], Chain(), []
    for n, (symbol, type, confidence, model, at, kind, net_r) in enumerate(CASES):
        s = signal(n, symbol, type, confidence, model)
        entries.append(chain.append(s.id, "created", s.created_at, signal_data(s)))
        data = kind if isinstance(kind, dict) else outcome(s, kind, net_r, at).to_event_data()
        closed = chain.append(s.id, "closed", at, data)
        entries.append(closed)
        rows.append(HistoryRow.of(s, closed.seq, SignalEvent(s.id, SignalEventKind.CLOSED, at, data)))
    still_open = signal(99, "AMD", SignalType.SWING, 0.3)
    entries.append(chain.append(still_open.id, "created", still_open.created_at, signal_data(still_open)))
    return rows, entries


def test_summary_on_a_hand_computed_example() -> None:
    rows, _ = example()
    s = summarize(rows)
    o = s.overall
    # Scored net R: 2, -1.25, 0.5, -0.25, -1 (the not-filled, legacy and bare closes are not scored).
    assert (s.closed, s.skipped, s.legacy) == (8, 2, 1)
    assert (o.closes, o.count, o.not_filled, o.wins, o.losses) == (8, 5, 1, 2, 3)
    assert o.hit_rate == 0.4  # wins / filled closes: the not-filled one is in neither
    assert o.avg_net_r == 0.0 and o.median_net_r == -0.25
    assert o.avg_gross_r == pytest.approx(COSTS_R) and o.avg_costs_pct == pytest.approx(COSTS_R * 5)
    assert o.avg_net_pnl_pct == pytest.approx(0.0)
    assert o.net_profit_factor == 1.0  # (2 + 0.5) / (1.25 + 0.25 + 1)
    assert o.outcomes == {"expired": 3, "not_filled": 1, "stop": 2, "target": 2}
    assert s.missing["net_r"] == 2 and s.missing["win"] == 2  # the legacy and the bare close
    assert "pnl_pct" not in s.missing and set(s.missing) <= set(OUTCOME_KEYS)
    assert not any("return" in f for f in Stats.__dataclass_fields__)  # no sum of % as a return


def test_the_reliability_table_counts_the_one_win_on_filled_closes() -> None:
    rows, _ = example()
    table = summarize(rows).overall.reliability
    assert [(b.lo, b.hi, b.n) for b in table] == [(0.2, 0.25, 2), (0.25, 0.3, 1), (0.3, 0.35, 2)]
    assert [b.hit_rate for b in table] == [0.5, 0.0, 0.5]
    assert [b.mean_confidence for b in table] == pytest.approx([0.23, 0.27, 0.32])
    # The not-filled signal (0.35), the legacy one (0.90) and the bare one are not in the table.
    assert sum(b.n for b in table) == summarize(rows).overall.count


def test_figures_by_model_version() -> None:
    rows, _ = example()
    s = summarize(rows)
    assert list(s.by_model) == ["m1", "m2"]
    m1, m2 = s.by_model["m1"], s.by_model["m2"]
    assert (m1.closes, m1.count, m1.not_filled, m1.wins, m1.hit_rate) == (4, 3, 1, 2, pytest.approx(2 / 3))
    assert m1.avg_net_r == pytest.approx(1.25 / 3) and m1.net_profit_factor == 2.0
    assert (m2.closes, m2.count, m2.wins, m2.hit_rate, m2.net_profit_factor) == (4, 2, 0, 0.0, 0.0)
    assert m2.avg_net_r == -0.625
    assert [(b.lo, b.n, b.hit_rate) for b in m2.reliability] == [(0.2, 1, 0.0), (0.3, 1, 0.0)]
    assert m1.count + m2.count == s.overall.count


def test_by_type_symbol_and_month() -> None:
    rows, _ = example()
    s = summarize(rows)
    assert list(s.by_type) == ["day", "swing"]
    assert (s.by_type["day"].count, s.by_type["day"].net_profit_factor) == (1, None)  # nothing lost
    assert list(s.by_symbol) == ["AAPL", "AMD", "MSFT", "NVDA", "TSLA"]
    assert s.by_symbol["MSFT"].not_filled == 1 and s.by_symbol["MSFT"].count == 1
    assert s.by_symbol["NVDA"].count == 0 and s.by_symbol["NVDA"].hit_rate is None
    assert list(s.by_month) == ["2026-01", "2026-02", "2026-03"]
    assert [m.closes for m in s.by_month.values()] == [2, 3, 3]


def test_a_flat_close_is_scored_but_is_neither_a_win_nor_a_loss() -> None:
    s = signal(1, "AAPL", SignalType.SWING, 0.3)
    flat = outcome(s, OutcomeKind.EXPIRED, 0.0, day(1, 5)).to_event()
    row = HistoryRow.of(s, 2, flat)
    assert row.win is False and row.missing == ()
    st = stats([row])
    assert (st.count, st.wins, st.losses, st.hit_rate, st.net_profit_factor) == (1, 0, 0, 0.0, None)


def test_the_month_is_the_close_month_in_utc() -> None:
    s = signal(1, "AAPL", SignalType.SWING, 0.3)
    late_new_york = datetime(2026, 1, 31, 20, 30, tzinfo=timezone(timedelta(hours=-5)))
    row = HistoryRow.of(s, 2, outcome(s, OutcomeKind.STOP, -1.0, late_new_york).to_event())
    assert row.month == "2026-02" and row.closed_at.tzinfo is UTC
    assert list(summarize([row]).by_month) == ["2026-02"]


def test_the_ledger_alone_gives_the_same_history_and_figures() -> None:
    rows, entries = example()
    rebuilt = history_from_ledger(entries)
    assert rebuilt.unmatched == 0
    assert rebuilt.rows == sorted(rows, key=lambda r: r.seq, reverse=True)
    assert summarize(rebuilt.rows) == summarize(rows)
    # Through JSON, as a person downloading the ledger would read it.
    as_json = [
        LedgerEntry(e.seq, e.signal_id, e.kind, e.at, json.loads(json.dumps(e.data)), e.prev_hash, e.hash)
        for e in entries
    ]
    assert summarize(history_from_ledger(as_json).rows) == summarize(rows)


def test_a_created_entry_from_before_the_rulebook_still_places_its_close() -> None:
    s = signal(1, "AAPL", SignalType.SWING, 0.3)
    old = {k: v for k, v in signal_data(s).items() if k not in ("decided_at", "base_rate", "model_version")}
    chain = Chain()
    entries = [
        chain.append(s.id, "created", s.created_at, old),
        chain.append(s.id, "closed", day(1, 5), LEGACY),
    ]
    (row,) = history_from_ledger(entries).rows
    assert row.model_version == "unknown" and row.decided_at == s.created_at  # then the two were one
    assert row.legacy and not row.scored and row.exit_price == 103.0  # listed with what it holds
    summary = summarize([row])
    assert (summary.legacy, summary.skipped, summary.overall.count, summary.overall.hit_rate) == (
        1,
        1,
        0,
        None,
    )


def test_the_ledger_history_takes_the_latest_close_and_counts_unmatched() -> None:
    rows, entries = example()
    chain = Chain(head=entries[-1].hash, seq=entries[-1].seq)
    first = rows[-1]  # AAPL, closed first
    s = signal(0, "AAPL", SignalType.SWING, 0.22)
    again = outcome(s, OutcomeKind.STOP, -2.0, day(4, 1)).to_event_data()
    entries.append(chain.append(first.signal_id, "closed", day(4, 1), again))
    entries.append(chain.append("f" * 22, "closed", day(4, 2), again))  # no created entry
    rebuilt = history_from_ledger(entries)
    assert rebuilt.unmatched == 1 and len(rebuilt.rows) == 8
    assert rebuilt.rows[0].signal_id == first.signal_id and rebuilt.rows[0].net_r == -2.0
    # A page that starts after the created entries cannot place its closes.
    assert history_from_ledger(entries[1::2]).unmatched == 8


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"net_r": "3.0", "gross_r": True, "outcome": "moon", "target_index": "1", "win": "yes"},
        {"net_r": float("nan"), "net_pnl_pct": float("inf"), "closed_at": "yesterday", "win": True},
        {"net_r": None, "holding_seconds": [1], "filled_at": 5},
        {"pnl_pct": 4.0, "r_multiple": 0.8, "outcome": "target", "target_index": 0},  # legacy
        None,
        ["not", "a", "mapping"],
    ],
)
def test_malformed_or_legacy_outcomes_are_counted_never_raised(data: Any) -> None:
    s = signal(1, "AAPL", SignalType.SWING, 0.3)
    row = HistoryRow.of(s, 2, SignalEvent(s.id, SignalEventKind.CLOSED, day(1, 5), data))
    assert row.net_r is None and row.win is None and not row.scored
    assert "net_r" in row.missing and set(row.missing) <= set(OUTCOME_KEYS)
    assert row.legacy == (isinstance(data, dict) and "pnl_pct" in data)
    summary = summarize([row])
    assert (summary.closed, summary.skipped, summary.overall.count) == (1, 1, 0)
    assert summary.overall.hit_rate is None and summary.overall.avg_net_r is None
    assert summary.overall.reliability == []


def test_a_stored_win_that_contradicts_the_net_r_is_flagged_and_ignored() -> None:
    s = signal(1, "AAPL", SignalType.SWING, 0.3)
    data = {**outcome(s, OutcomeKind.STOP, -1.0, day(1, 5)).to_event_data(), "win": True}
    row = HistoryRow.of(s, 2, SignalEvent(s.id, SignalEventKind.CLOSED, day(1, 5), data))
    assert row.win is False and row.missing == ("win",)
    assert stats([row]).hit_rate == 0.0


def test_target_index_is_required_only_for_a_target() -> None:
    s = signal(1, "AAPL", SignalType.SWING, 0.3)
    at = day(1, 5)

    def missing(data: dict[str, Any]) -> tuple[str, ...]:
        return HistoryRow.of(s, 2, SignalEvent(s.id, SignalEventKind.CLOSED, at, data)).missing

    stop = outcome(s, OutcomeKind.STOP, -1.0, at).to_event_data()
    target = outcome(s, OutcomeKind.TARGET, 2.0, at).to_event_data()
    assert missing(stop) == () and missing(target) == ()
    assert missing({**target, "target_index": None}) == ("target_index",)
    assert missing({**stop, "target_index": True}) == ("target_index",)


def test_the_lifecycle_outcome_meets_the_contract_filled_and_not() -> None:
    """What the lifecycle writes is read in full: no key missing, the numbers as written."""
    s = signal(1, "AAPL", SignalType.SWING, 0.3)
    at = datetime(2026, 1, 3, 16, 0, tzinfo=UTC)
    filled = outcome(s, OutcomeKind.TARGET, 2.0, at)
    row = HistoryRow.of(s, 3, filled.to_event())
    assert row.missing == () and row.win is True and row.scored
    assert (row.decided_at, row.filled_at, row.closed_at) == (filled.decided_at, filled.filled_at, at)
    assert (row.fill_price, row.exit_price, row.gross_r, row.net_r) == (100.0, 110.625, 2.125, 2.0)
    assert (row.gross_pnl_pct, row.costs_pct, row.net_pnl_pct) == (10.625, 0.625, 10.0)
    assert (row.model_version, row.target_index, row.outcome) == ("m1", 1, "target")

    refused = HistoryRow.of(s, 4, outcome(s, OutcomeKind.NOT_FILLED, None, at).to_event())
    assert refused.missing == () and refused.win is False and not refused.scored and not refused.filled
    assert (refused.outcome, refused.fill_price, refused.net_r, refused.filled_at) == (
        "not_filled",
        None,
        None,
        None,
    )
    summary = summarize([row, refused])
    assert (summary.skipped, summary.overall.count, summary.overall.not_filled) == (0, 1, 1)
    assert summary.overall.hit_rate == 1.0


@pytest.mark.parametrize(
    ("confidence", "index"),
    [(0.0, 0), (0.049999, 0), (0.05, 1), (0.2, 4), (0.35, 7), (0.3499999, 6), (0.95, 19), (1.0, 19)],
)
def test_confidence_buckets_are_five_points_wide(confidence: float, index: int) -> None:
    assert bucket_of(confidence) == index


def test_nothing_at_all_is_empty() -> None:
    assert stats([]).count == 0 and stats([]).net_profit_factor is None and reliability([]) == []
    empty = summarize([])
    assert (empty.closed, empty.skipped, empty.overall.count, empty.by_month, empty.by_model) == (
        0,
        0,
        0,
        {},
        {},
    )
