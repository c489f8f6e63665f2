"""The track record: closed signals with their P/L, and its summary — the free tier's view.

Both read the ledger's ``closed`` events (joined to their signal for the filters); the figures are
computed by ``engine.track_record``, which anyone can run on the public ledger to get the same.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from tradesignals.api.deps import CheckpointRepoDep, SignalRepoDep
from tradesignals.api.schemas import CheckpointOut, ErrorOut
from tradesignals.domain.signals import SignalType
from tradesignals.engine.track_record import HistoryRow, Stats, Summary, summarize
from tradesignals.storage.base import CloseQuery, SignalRepository

router = APIRouter(prefix="/api/history", tags=["history"])

SUMMARY_BATCH = 10_000

Symbol = Annotated[str | None, Query(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9.\-_/]+$")]
Month = Annotated[
    str | None,
    Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM: closes in that month (UTC)."),
]


class HistoryItem(BaseModel):
    """A closed signal: what was published, then what came of it (null where not recorded)."""

    id: str
    symbol: str
    type: str
    direction: str
    entry: float
    stop: float
    targets: list[float]
    confidence: float
    created_at: datetime
    expires_at: datetime
    seq: int = Field(description="Ledger seq of the closed event.")
    closed_at: datetime
    outcome: str | None = Field(description="target | stop | expired")
    target_index: int | None
    exit_price: float | None
    pnl_pct: float | None
    r_multiple: float | None
    mfe_pct: float | None
    mae_pct: float | None
    holding_seconds: float | None

    @classmethod
    def of(cls, r: HistoryRow) -> HistoryItem:
        return cls(
            id=r.signal_id,
            symbol=r.symbol,
            type=r.type,
            direction=r.direction,
            entry=r.entry,
            stop=r.stop,
            targets=list(r.targets),
            confidence=r.confidence,
            created_at=r.created_at,
            expires_at=r.expires_at,
            seq=r.seq,
            closed_at=r.closed_at,
            outcome=r.outcome,
            target_index=r.target_index,
            exit_price=r.exit_price,
            pnl_pct=r.pnl_pct,
            r_multiple=r.r_multiple,
            mfe_pct=r.mfe_pct,
            mae_pct=r.mae_pct,
            holding_seconds=r.holding_seconds,
        )


class HistoryPage(BaseModel):
    items: list[HistoryItem]
    next_before: int | None = Field(
        description="Pass as `before` for the next (older) page; null at the end."
    )


class StatsOut(BaseModel):
    count: int = Field(description="Closes with a P/L.")
    wins: int
    losses: int
    win_rate: float | None = Field(description="wins / count (a flat close is neither).")
    avg_return_pct: float | None
    median_return_pct: float | None
    total_return_pct: float
    gross_profit_pct: float
    gross_loss_pct: float
    profit_factor: float | None = Field(description="gross profit / gross loss; null with no loss.")
    avg_r: float | None
    r_count: int = Field(description="Closes with an R-multiple (avg_r's denominator).")
    outcomes: dict[str, int]

    @classmethod
    def of(cls, s: Stats) -> StatsOut:
        return cls(
            count=s.count,
            wins=s.wins,
            losses=s.losses,
            win_rate=s.win_rate,
            avg_return_pct=s.avg_return_pct,
            median_return_pct=s.median_return_pct,
            total_return_pct=s.total_return_pct,
            gross_profit_pct=s.gross_profit_pct,
            gross_loss_pct=s.gross_loss_pct,
            profit_factor=s.profit_factor,
            avg_r=s.avg_r,
            r_count=s.r_count,
            outcomes=dict(s.outcomes),
        )


class SummaryOut(BaseModel):
    overall: StatsOut
    by_type: dict[str, StatsOut]
    by_symbol: dict[str, StatsOut]
    by_month: dict[str, StatsOut] = Field(description="Keyed YYYY-MM of the close (UTC).")
    closed: int = Field(description="Every close matched, with a P/L or not.")
    skipped: int = Field(description="Closes without a P/L: listed in history, not in the figures.")
    missing: dict[str, int] = Field(description="Outcome key -> closes where it was absent or malformed.")
    checkpoint: CheckpointOut | None = Field(
        default=None,
        description="The newest signed ledger checkpoint (null before the first): quote it with the"
        " figures, so anyone can later check that the ledger behind them was not rewritten.",
    )

    @classmethod
    def of(cls, s: Summary) -> SummaryOut:
        def each(groups: dict[str, Stats]) -> dict[str, StatsOut]:
            return {k: StatsOut.of(v) for k, v in groups.items()}

        return cls(
            overall=StatsOut.of(s.overall),
            by_type=each(s.by_type),
            by_symbol=each(s.by_symbol),
            by_month=each(s.by_month),
            closed=s.closed,
            skipped=s.skipped,
            missing=dict(s.missing),
        )


def _query(
    symbol: str | None, type: SignalType | None, month: str | None, before: int | None, limit: int
) -> CloseQuery:
    since = until = None
    if month is not None:
        year, mon = int(month[:4]), int(month[5:])
        since = datetime(year, mon, 1, tzinfo=UTC)
        until = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=UTC)
    return CloseQuery(
        symbol=symbol.upper() if symbol else None,
        type=type,
        closed_since=since,
        closed_until=until,
        before_seq=before,
        limit=limit,
    )


@router.get("", response_model=HistoryPage, responses={422: {"model": ErrorOut}})
async def history(
    repo: SignalRepoDep,
    symbol: Symbol = None,
    type: SignalType | None = None,
    month: Month = None,
    before: Annotated[int | None, Query(ge=1, description="Cursor: `next_before` of the last page.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> HistoryPage:
    """Closed signals with their outcome and P/L, most recently closed first."""
    closes = await asyncio.to_thread(repo.closes, _query(symbol, type, month, before, limit))
    items = [HistoryItem.of(HistoryRow.of(c.signal, c.close.seq, c.close.event)) for c in closes]
    return HistoryPage(items=items, next_before=items[-1].seq if len(items) == limit else None)


def _all_rows(repo: SignalRepository, query: CloseQuery) -> list[HistoryRow]:
    rows: list[HistoryRow] = []
    while True:
        page = repo.closes(query)
        rows += [HistoryRow.of(c.signal, c.close.seq, c.close.event) for c in page]
        if len(page) < query.limit:
            return rows
        query = replace(query, before_seq=page[-1].close.seq)


@router.get("/summary", response_model=SummaryOut, responses={422: {"model": ErrorOut}})
async def summary(
    repo: SignalRepoDep,
    checkpoints: CheckpointRepoDep,
    symbol: Symbol = None,
    type: SignalType | None = None,
    month: Month = None,
) -> SummaryOut:
    """Count, win rate, average and median return, profit factor, average R: overall and by type,
    symbol and month of close, over the closes matching the filters; with the newest checkpoint."""
    # The checkpoint first: the figures then cover at least every entry it vouches for.
    latest = await asyncio.to_thread(checkpoints.latest)
    rows = await asyncio.to_thread(_all_rows, repo, _query(symbol, type, month, None, SUMMARY_BATCH))
    out = SummaryOut.of(summarize(rows))
    out.checkpoint = CheckpointOut.of(latest) if latest is not None else None
    return out
