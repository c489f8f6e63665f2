"""Signals: newest first, filterable, with a keyset cursor (stable under concurrent inserts)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from tradesignals.api.deps import SignalRepoDep
from tradesignals.api.schemas import ErrorOut, SignalPublic, SignalsPage
from tradesignals.domain.signals import SignalStatus, SignalType
from tradesignals.storage.base import SignalQuery

router = APIRouter(prefix="/api/signals", tags=["signals"])

SignalId = Annotated[str, Path(pattern=r"^[0-9a-f]{22}$", description="Signal id (22 hex digits).")]


@router.get("", response_model=SignalsPage)
async def list_signals(
    repo: SignalRepoDep,
    symbol: Annotated[str | None, Query(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9.\-_/]+$")] = None,
    status: SignalStatus | None = None,
    type: SignalType | None = None,
    before: Annotated[str | None, Query(pattern=r"^[0-9a-f]{22}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> SignalsPage:
    query = SignalQuery(
        symbol=symbol.upper() if symbol else None, status=status, type=type, before_id=before, limit=limit
    )
    items = await asyncio.to_thread(repo.query, query)
    next_before = items[-1].id if len(items) == limit else None
    return SignalsPage(items=[SignalPublic.of(s) for s in items], next_before=next_before)


@router.get("/{signal_id}", response_model=SignalPublic, responses={404: {"model": ErrorOut}})
async def get_signal(signal_id: SignalId, repo: SignalRepoDep) -> SignalPublic:
    signal = await asyncio.to_thread(repo.get, signal_id)
    if signal is None:
        raise HTTPException(status_code=404, detail=f"no signal with id {signal_id}")
    return SignalPublic.of(signal)
