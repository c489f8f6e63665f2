"""Signals: newest first, filterable, with a keyset cursor (stable under concurrent inserts).

Closed signals carry their outcome (fill, exit, gross and net P/L, costs) as the track record reads
it. With ``profile``, the page keeps only the signals that risk profile accepts
(``domain.risk.fit``), each with its position size for ``capital``: the volatility the profile
filters on is measured from the stored bars of the signal's own timeframe up to its decision
(``domain.risk.annualised_volatility``); a signal whose volatility cannot be measured is refused,
as `fit` refuses any limit it cannot check. Each signal is fitted on its own, as if nothing else
were open (sector caps bind on a user's open positions, which accounts will bring).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from tradesignals.api.auth import IdentityDep
from tradesignals.api.dbpool import DbPoolDep
from tradesignals.api.deps import ServicesDep
from tradesignals.api.schemas import ErrorOut, PositionSize, SignalPublic, SignalsPage
from tradesignals.domain.entitlements import may_see_signal, sees_open_signals
from tradesignals.domain.risk import ProfileName, edge_of
from tradesignals.domain.signals import Signal, SignalStatus, SignalType
from tradesignals.engine.fitting import accepted
from tradesignals.engine.track_record import HistoryRow
from tradesignals.storage.base import CloseQuery, SignalQuery, SignalRepository
from tradesignals.storage.timeseries import BarStore

router = APIRouter(prefix="/api/signals", tags=["signals"])

SignalId = Annotated[str, Path(pattern=r"^[0-9a-f]{22}$", description="Signal id (22 hex digits).")]

DEFAULT_CAPITAL = 10_000.0
MIN_CAPITAL = 100.0
MAX_CAPITAL = 1e9


def _closes(repo: SignalRepository, signals: Sequence[Signal]) -> dict[str, HistoryRow]:
    """The track-record rows of the closed ones among ``signals`` (one query)."""
    ids = tuple(s.id for s in signals if s.status.is_closed)
    if not ids:
        return {}
    found = repo.closes(CloseQuery(signal_ids=ids, limit=len(ids)))
    return {c.signal.id: HistoryRow.of(c.signal, c.close.seq, c.close.event) for c in found}


def sizes_for(
    store: BarStore, signals: Sequence[Signal], profile: ProfileName, capital: float
) -> dict[str, PositionSize]:
    """The accepted ones among ``signals`` with their size; refused ones are absent
    (``engine.fitting.accepted``: the one fitting rule — lists (``?profile=&capital=``),
    ``user:{id}:signals`` and the push sender all use it)."""
    sizes: dict[str, PositionSize] = {}
    by_id = {s.id: s for s in signals}
    for sid, (f, vol) in accepted(store, signals, profile).items():
        s = by_id[sid]
        value = capital * f.position_pct / 100.0
        sizes[sid] = PositionSize(
            profile=profile,
            capital=capital,
            position_pct=f.position_pct,
            position_value=value,
            units=value / s.entry,
            risk_amount=value * s.risk_per_unit / s.entry,
            edge=edge_of(s),
            volatility=vol,
            notes=list(f.reasons),
        )
    return sizes


@router.get("", response_model=SignalsPage, responses={422: {"model": ErrorOut}})
async def list_signals(
    services: ServicesDep,
    ident: IdentityDep,
    pool: DbPoolDep,
    symbol: Annotated[str | None, Query(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9.\-_/]+$")] = None,
    status: SignalStatus | None = None,
    type: SignalType | None = None,
    before: Annotated[str | None, Query(pattern=r"^[0-9a-f]{22}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    profile: Annotated[
        ProfileName | None,
        Query(
            description="Only the signals this risk profile accepts, each with its `size`. The page "
            "may then hold fewer than `limit` items: follow `next_before` until it is null."
        ),
    ] = None,
    capital: Annotated[
        float,
        Query(
            ge=MIN_CAPITAL,
            le=MAX_CAPITAL,
            allow_inf_nan=False,
            description="Capital the sizes are computed for (with `profile`).",
        ),
    ] = DEFAULT_CAPITAL,
) -> SignalsPage:
    """Signals, newest first; closed ones with their outcome; with `profile`, the ones it accepts, sized.

    Anonymous and free callers get the track record only (closed signals). Premium callers also get
    the open signals their profile accepts (their own, moderate until the questionnaire is
    answered, unless `profile` names another), each with its size.
    """
    caller = ident.caller
    live = sees_open_signals(caller)
    query = SignalQuery(
        symbol=symbol.upper() if symbol else None,
        status=status,
        type=type,
        before_id=before,
        limit=limit,
        closed_only=not live,
    )
    repo = services.signals
    items = await pool.run(repo.query, query)
    next_before = items[-1].id if len(items) == limit else None
    closes = await pool.run(_closes, repo, items)
    if live and profile is None and ident.user is not None:
        own = ident.user.risk_profile if ident.user.profile_answered else ProfileName.MODERATE
        sizes = await pool.run(sizes_for, services.bars, items, own, capital)
        return SignalsPage(
            items=[
                SignalPublic.of(s, closes.get(s.id), sizes.get(s.id))
                for s in items
                if s.status.is_closed or s.id in sizes
            ],
            next_before=next_before,
        )
    if profile is None:
        return SignalsPage(
            items=[SignalPublic.of(s, closes.get(s.id)) for s in items], next_before=next_before
        )
    sizes = await pool.run(sizes_for, services.bars, items, profile, capital)
    return SignalsPage(
        items=[SignalPublic.of(s, closes.get(s.id), sizes[s.id]) for s in items if s.id in sizes],
        next_before=next_before,
    )


@router.get(
    "/{signal_id}",
    response_model=SignalPublic,
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)
async def get_signal(
    signal_id: SignalId, services: ServicesDep, ident: IdentityDep, pool: DbPoolDep
) -> SignalPublic:
    """A closed signal for anyone; an open one for premium or the holder of an upgrade to it (else 403)."""
    signal = await pool.run(services.signals.get, signal_id)
    if signal is None:
        raise HTTPException(status_code=404, detail=f"no signal with id {signal_id}")
    if not may_see_signal(ident.caller, signal.id, is_open=not signal.status.is_closed):
        raise HTTPException(status_code=403, detail="this signal is live: premium or an upgrade to it")
    closes = await pool.run(_closes, services.signals, [signal])
    return SignalPublic.of(signal, closes.get(signal.id))
