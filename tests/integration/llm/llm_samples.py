"""The signal and news the LLM tests and bench/explain.py write about (a module of its own name:
``conftest`` is ambiguous once several test folders are collected)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tradesignals.domain.news import NewsItem, ScoredNews
from tradesignals.domain.signals import Direction, Signal, SignalType

DECIDED = datetime(2024, 3, 1, 15, 0, tzinfo=UTC)
NS = 10**9


def make_signal(n: int = 0, symbol: str = "ACME") -> Signal:
    return Signal(
        id=f"{n:022x}",
        symbol=symbol,
        type=SignalType.SWING,
        direction=Direction.LONG,
        entry=100.0,
        stop=95.0,
        targets=(105.0, 110.0, 115.0),
        confidence=0.61,
        created_at=DECIDED,
        expires_at=DECIDED + timedelta(days=5),
        model_version="swing-3",
        reasons=("rsi_14 low (+0.03)",),
        decided_at=DECIDED,
        base_rate=0.52,
        confidence_rank=0.8,
    )


def make_news(n: int, headline: str, symbol: str = "ACME", sentiment: str = "positive") -> ScoredNews:
    at = int(DECIDED.timestamp()) * NS - n * 60 * NS
    item = NewsItem(f"t:{n}", "t", at, at, (symbol,), headline)
    return ScoredNews(item, sentiment, 0.8, ("none",), at)
