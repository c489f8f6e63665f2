"""``RunningSummary`` (kept up to date close by close) equals ``summarize`` from scratch, bit for bit.

Random closes — filled, not filled, legacy, malformed, zero, tiny and huge net R, many confidences,
symbols, types, models and months — are added, and some signals closed again (the later close
replaces the earlier one, as in the ledger); after every step the running figures must be exactly
(``==`` on floats) the ones ``summarize`` computes from the current closes.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tradesignals.domain.outcomes import Outcome, OutcomeKind
from tradesignals.domain.signals import Direction, Signal, SignalEvent, SignalEventKind, SignalType
from tradesignals.engine.track_record import HistoryRow, RunningSummary, summarize

T0 = datetime(2025, 11, 3, 14, 30, tzinfo=UTC)
SYMBOLS = ("AAPL", "MSFT", "TSLA", "BTCUSDT", "SPY")
MODELS = ("m1", "m2", "unknown")


def random_signal(rng: random.Random, n: int) -> Signal:
    created = T0 + timedelta(hours=rng.randint(0, 24 * 200))
    return Signal(
        id=f"{n:022x}",
        symbol=rng.choice(SYMBOLS),
        type=rng.choice(list(SignalType)),
        direction=Direction.LONG,
        entry=100.0,
        stop=95.0,
        targets=(105.0,),
        confidence=rng.choice([0.2, 0.35, 0.349999, 1.0, 0.0, rng.random()]),
        created_at=created,
        expires_at=created + timedelta(days=5),
        model_version=rng.choice(MODELS),
        decided_at=created,
    )


def random_net_r(rng: random.Random) -> float | None:
    return rng.choice(
        [
            None,
            0.0,
            -0.0,
            5e-324,
            -1e-300,
            1e300,
            rng.uniform(-3, 3),
            rng.uniform(-3, 3),
            round(rng.uniform(-2, 2), 1),
        ]
    )


def close_data(rng: random.Random, s: Signal, at: datetime) -> dict[str, Any]:
    shape = rng.random()
    if shape < 0.05:  # before the rulebook: gross P/L only
        return {"outcome": "target", "target_index": 0, "pnl_pct": 3.0, "r_multiple": 0.6}
    if shape < 0.1:  # malformed: keys missing or of the wrong type
        return {"outcome": rng.choice(["stop", "bogus", None]), "net_r": rng.choice(["x", None, 1.5])}
    net_r = random_net_r(rng)
    if net_r is None:
        kind, gross = OutcomeKind.NOT_FILLED, None
    else:
        kind = rng.choice([OutcomeKind.TARGET, OutcomeKind.STOP, OutcomeKind.EXPIRED])
        gross = net_r + 0.1
    out = Outcome(
        signal_id=s.id,
        symbol=s.symbol,
        outcome=kind,
        target_index=0 if kind is OutcomeKind.TARGET else None,
        decided_at=s.created_at,
        filled_at=None if net_r is None else s.created_at,
        fill_price=None if net_r is None else 100.0,
        first_price=94.0 if net_r is None else None,
        exit_price=None if gross is None else 100.0 + gross,
        gross_pnl_pct=gross,
        costs_pct=None if net_r is None else rng.choice([0.5, 0.1, 1e-9]),
        net_pnl_pct=None if net_r is None else net_r * 5,
        gross_r=gross,
        net_r=net_r,
        mfe_pct=None if gross is None else max(0.0, gross),
        mae_pct=None if gross is None else min(0.0, gross),
        holding_seconds=60.0,
        closed_at=at,
    )
    return dict(out.to_event_data())


@pytest.mark.parametrize("seed", range(12))
def test_running_figures_equal_the_ones_from_scratch(seed: int) -> None:
    rng = random.Random(seed)
    running = RunningSummary()
    current: dict[str, HistoryRow] = {}
    signals = [random_signal(rng, n) for n in range(rng.randint(1, 120))]
    for step in range(rng.randint(20, 300)):
        s = rng.choice(signals)
        seq = step + 1
        at = s.created_at + timedelta(hours=rng.randint(1, 24 * 40))
        row = HistoryRow.of(s, seq, SignalEvent(s.id, SignalEventKind.CLOSED, at, close_data(rng, s, at)))
        old = current.get(s.id)
        if old is not None:  # closed again: the latest close counts
            running.remove(old)
        running.add(row)
        current[s.id] = row
        if step % 7 == 0 or step < 5:
            assert running.summary() == summarize(current.values()), step
    assert running.summary() == summarize(current.values())


def test_removing_every_close_leaves_an_empty_summary() -> None:
    rng = random.Random(99)
    running = RunningSummary()
    rows = []
    for n in range(200):
        s = random_signal(rng, n)
        at = s.created_at + timedelta(days=1)
        rows.append(
            HistoryRow.of(s, n + 1, SignalEvent(s.id, SignalEventKind.CLOSED, at, close_data(rng, s, at)))
        )
    for r in rows:
        running.add(r)
    rng.shuffle(rows)
    for r in rows:
        running.remove(r)
    assert running.summary() == summarize([])
    assert all(not groups for groups in running.groups.values())  # no empty group left behind
