"""A signal's explanation: the template explainer over its fields and our stored news (no LLM yet)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel

from tradesignals.api.auth import IdentityDep
from tradesignals.api.deps import ServicesDep
from tradesignals.api.schemas import ErrorOut
from tradesignals.domain.entitlements import may_see_signal
from tradesignals.domain.explain import explain
from tradesignals.storage.base import NewsQuery

router = APIRouter(prefix="/api/signals", tags=["signals"])

SignalId = Annotated[str, Path(pattern=r"^[0-9a-f]{22}$", description="Signal id (22 hex digits).")]


class ExplanationOut(BaseModel):
    signal_id: str
    text: str
    citations: list[str]
    model: str
    prompt_version: str


@router.get(
    "/{signal_id}/explanation",
    response_model=ExplanationOut,
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)
async def signal_explanation(
    services: ServicesDep, ident: IdentityDep, signal_id: SignalId
) -> ExplanationOut:
    """Plan, confidence against the base rate, reasons, and news received before the decision (cited by id).

    The text names the plan's levels, so it is gated exactly like the signal itself (entitlements).
    """
    signal = await asyncio.to_thread(services.signals.get, signal_id)
    if signal is None:
        raise HTTPException(404, detail=f"no signal {signal_id}")
    if not may_see_signal(ident.caller, signal.id, is_open=not signal.status.is_closed):
        raise HTTPException(status_code=403, detail="this signal is live: premium or an upgrade to it")
    news = []
    if services.news is not None:
        news = await asyncio.to_thread(services.news.query, NewsQuery(symbol=signal.symbol, limit=200))
    e = explain(signal, news)
    return ExplanationOut(
        signal_id=e.signal_id,
        text=e.text,
        citations=list(e.citations),
        model=e.model,
        prompt_version=e.prompt_version,
    )
