"""The track record: closed signals with their fill, exit and net P/L, and its summary — the free tier's view.

Both read the ledger's ``closed`` events (joined to their signal for the filters); the figures are
computed by ``engine.track_record``, which anyone can run on the public ledger to get the same.
The summary answers from running figures kept up to date from the ledger (``engine.summary_cache``):
O(groups) per request, not O(history); ``summary_from_scratch`` is the reference it must equal.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, cast

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from tradesignals.api.dbpool import DbPoolDep
from tradesignals.api.deps import CheckpointRepoDep, SignalRepoDep
from tradesignals.api.schemas import MAX_INT64, CheckpointOut, ErrorOut
from tradesignals.domain.outcomes import OutcomeKind
from tradesignals.domain.signals import SignalType
from tradesignals.engine.summary_cache import SummaryCache, SummaryFilter
from tradesignals.engine.track_record import Bucket, HistoryRow, Stats, Summary, summarize
from tradesignals.storage.base import CloseQuery, SignalRepository

router = APIRouter(prefix="/api/history", tags=["history"])

SUMMARY_BATCH = 10_000

Symbol = Annotated[str | None, Query(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9.\-_/]+$")]
# Years 0001-9999: the years a datetime (and so both databases, through it) can hold; year 0000
# does not exist. A full-match pattern, so a trailing newline is refused too.
Month = Annotated[
    str | None,
    Query(
        pattern=r"^(000[1-9]|00[1-9]\d|0[1-9]\d{2}|[1-9]\d{3})-(0[1-9]|1[0-2])$",
        description="YYYY-MM, year 0001-9999: closes in that month (UTC).",
    ),
]


class HistoryItem(BaseModel):
    """A closed signal: what was published, then what came of it (null where not recorded).

    P/L is measured from the fill (the first tradable price after publication), gross and net of
    costs, in percent of the fill and in R. A not-filled signal has no fill, no exit and no P/L.
    """

    id: str
    symbol: str
    type: str
    direction: str
    entry: float
    stop: float
    targets: list[float]
    confidence: float
    model_version: str
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None = Field(description="Close of the deciding bar.")
    seq: int = Field(description="Ledger seq of the closed event.")
    closed_at: datetime
    outcome: OutcomeKind | None = Field(
        description="target | stop | expired | not_filled; null if unrecorded."
    )
    win: bool | None = Field(
        description="Net R > 0 at the plan's exit; false when not filled; null if unknown."
    )
    target_index: int | None
    filled_at: datetime | None
    fill_price: float | None
    exit_price: float | None
    gross_pnl_pct: float | None = Field(description="Percent of the fill, direction-adjusted, before costs.")
    costs_pct: float | None = Field(description="Round-trip costs (and borrow), percent of the fill.")
    net_pnl_pct: float | None = Field(description="gross_pnl_pct − costs_pct.")
    gross_r: float | None
    net_r: float | None = Field(
        description="Net P/L in R (plan risk: entry to stop); what a win is judged on."
    )
    mfe_pct: float | None
    mae_pct: float | None
    holding_seconds: float | None
    legacy: bool = Field(
        description="Closed before the rulebook (no fill, no costs): listed, not in the figures."
    )

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
            model_version=r.model_version,
            created_at=r.created_at,
            expires_at=r.expires_at,
            decided_at=r.decided_at,
            seq=r.seq,
            closed_at=r.closed_at,
            outcome=None if r.outcome is None else OutcomeKind(r.outcome),
            win=r.win,
            target_index=r.target_index,
            filled_at=r.filled_at,
            fill_price=r.fill_price,
            exit_price=r.exit_price,
            gross_pnl_pct=r.gross_pnl_pct,
            costs_pct=r.costs_pct,
            net_pnl_pct=r.net_pnl_pct,
            gross_r=r.gross_r,
            net_r=r.net_r,
            mfe_pct=r.mfe_pct,
            mae_pct=r.mae_pct,
            holding_seconds=r.holding_seconds,
            legacy=r.legacy,
        )


class HistoryPage(BaseModel):
    items: list[HistoryItem]
    next_before: int | None = Field(
        description="Pass as `before` for the next (older) page; null at the end."
    )


class BucketOut(BaseModel):
    """One row of the reliability table: filled closes with lo <= confidence < hi."""

    lo: float
    hi: float
    n: int
    mean_confidence: float
    hit_rate: float = Field(description="Share of these closes that won (net R > 0).")

    @classmethod
    def of(cls, b: Bucket) -> BucketOut:
        return cls(lo=b.lo, hi=b.hi, n=b.n, mean_confidence=b.mean_confidence, hit_rate=b.hit_rate)


class StatsOut(BaseModel):
    """Figures over a group of closes. Rates and averages are over the filled closes with a net R
    (`count`); each signal weighs one R, and no percentages are added up."""

    closes: int = Field(description="Every close in the group.")
    count: int = Field(description="Filled closes with a net R: the denominator of every rate.")
    not_filled: int = Field(description="Signals never filled: counted here, in no rate.")
    wins: int
    losses: int = Field(description="Net R < 0 (a flat close is neither).")
    hit_rate: float | None = Field(description="wins / count: the one win event, net R > 0.")
    avg_net_r: float | None = Field(description="Mean net R: the expectancy per signal in R.")
    median_net_r: float | None
    avg_gross_r: float | None
    avg_net_pnl_pct: float | None = Field(description="Mean net P/L: the expectancy in percent of the fill.")
    avg_costs_pct: float | None
    net_profit_factor: float | None = Field(
        description="Sum of winning net R / |sum of losing net R|; null with no loss."
    )
    outcomes: dict[str, int] = Field(description="Closes by outcome, not_filled included.")
    reliability: list[BucketOut] = Field(description="5-point confidence buckets where closes exist.")

    @classmethod
    def of(cls, s: Stats) -> StatsOut:
        return cls(
            closes=s.closes,
            count=s.count,
            not_filled=s.not_filled,
            wins=s.wins,
            losses=s.losses,
            hit_rate=s.hit_rate,
            avg_net_r=s.avg_net_r,
            median_net_r=s.median_net_r,
            avg_gross_r=s.avg_gross_r,
            avg_net_pnl_pct=s.avg_net_pnl_pct,
            avg_costs_pct=s.avg_costs_pct,
            net_profit_factor=s.net_profit_factor,
            outcomes=dict(s.outcomes),
            reliability=[BucketOut.of(b) for b in s.reliability],
        )


class ModelStatsOut(StatsOut):
    model_version: str

    @classmethod
    def of_model(cls, model_version: str, s: Stats) -> ModelStatsOut:
        return cls(model_version=model_version, **StatsOut.of(s).model_dump())


class SummaryOut(BaseModel):
    hit_rate: float | None = Field(description="overall.hit_rate: wins / filled closes.")
    avg_net_r: float | None = Field(description="overall.avg_net_r.")
    reliability: list[BucketOut] = Field(description="overall.reliability.")
    overall: StatsOut
    by_model: list[ModelStatsOut] = Field(description="The same figures per model version, ascending.")
    by_type: dict[str, StatsOut]
    by_symbol: dict[str, StatsOut]
    by_month: dict[str, StatsOut] = Field(description="Keyed YYYY-MM of the close (UTC).")
    closed: int = Field(description="Every close matched.")
    skipped: int = Field(description="Filled closes without a net R: listed in history, not in the figures.")
    legacy: int = Field(description="Of those, closes recorded before the rulebook (gross P/L only).")
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

        overall = StatsOut.of(s.overall)
        return cls(
            hit_rate=overall.hit_rate,
            avg_net_r=overall.avg_net_r,
            reliability=overall.reliability,
            overall=overall,
            by_model=[ModelStatsOut.of_model(k, v) for k, v in s.by_model.items()],
            by_type=each(s.by_type),
            by_symbol=each(s.by_symbol),
            by_month=each(s.by_month),
            closed=s.closed,
            skipped=s.skipped,
            legacy=s.legacy,
            missing=dict(s.missing),
        )


def _query(
    symbol: str | None, type: SignalType | None, month: str | None, before: int | None, limit: int
) -> CloseQuery:
    since = until = None
    if month is not None:
        year, mon = int(month[:4]), int(month[5:])
        since = datetime(year, mon, 1, tzinfo=UTC)
        # December 9999 has no next month a datetime can hold: it runs to the end of time.
        until = None if (year, mon) == (9999, 12) else datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=UTC)
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
    pool: DbPoolDep,
    symbol: Symbol = None,
    type: SignalType | None = None,
    month: Month = None,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_INT64, description="Cursor: `next_before` of the last page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> HistoryPage:
    """Closed signals with their outcome and P/L, most recently closed first."""
    closes = await pool.run(repo.closes, _query(symbol, type, month, before, limit))
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


def summary_from_scratch(
    repo: SignalRepository,
    symbol: str | None = None,
    type: SignalType | None = None,
    month: str | None = None,
) -> Summary:
    """Every matching close read and every figure recomputed: what the route did before the running
    summaries (O(history) per call). Kept as the reference they must equal, and for the bench."""
    return summarize(_all_rows(repo, _query(symbol, type, month, None, SUMMARY_BATCH)))


def get_summary_cache(request: Request) -> SummaryCache:
    return cast(SummaryCache, request.app.state.summary_cache)


SummaryCacheDep = Annotated[SummaryCache, Depends(get_summary_cache)]


@router.get("/summary", response_model=SummaryOut, responses={422: {"model": ErrorOut}})
async def summary(
    cache: SummaryCacheDep,
    checkpoints: CheckpointRepoDep,
    pool: DbPoolDep,
    symbol: Symbol = None,
    type: SignalType | None = None,
    month: Month = None,
) -> Response:
    """Hit rate of the one win (net R > 0), average net R (the expectancy), net profit factor and the
    reliability table: overall, by model version, type, symbol and month of close, over the closes
    matching the filters; with the newest checkpoint. Not-filled signals are counted apart and
    excluded from every rate."""
    # The checkpoint first: the figures then cover at least every entry it vouches for.
    latest = await pool.run(checkpoints.latest)
    where = SummaryFilter(
        symbol=symbol.upper() if symbol else None, type=None if type is None else type.value, month=month
    )

    def render(s: Summary) -> bytes:
        out = SummaryOut.of(s)
        out.checkpoint = CheckpointOut.of(latest) if latest is not None else None
        return out.model_dump_json().encode()

    # Rendered in the pool, and only when a close (or the checkpoint) changed: the loop only sends.
    body = await pool.run(cache.rendered, where, None if latest is None else latest.hash, render)
    return Response(content=body, media_type="application/json")
