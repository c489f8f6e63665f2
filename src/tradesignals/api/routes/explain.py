"""A signal's explanation and, for holders of an upgrade to it, its research brief.

Both are written by the explain sidecar (``llm/sidecar.py``: an LLM or the template) and read from
its store; until it has written one, the explanation is the template made here on the fly, so the
route never waits on a model. Research is what the dynamic upgrade sells: only a caller holding
an upgrade to the signal gets it (``research_status`` says ``not_entitled`` to anyone else).
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel

from tradesignals.api.auth import IdentityDep
from tradesignals.api.deps import ServicesDep
from tradesignals.api.schemas import ErrorOut
from tradesignals.domain.entitlements import may_see_signal
from tradesignals.domain.research import EXPLANATION, RESEARCH, SignalText, template_explanation
from tradesignals.storage.base import NewsQuery

router = APIRouter(prefix="/api/signals", tags=["signals"])

SignalId = Annotated[str, Path(pattern=r"^[0-9a-f]{22}$", description="Signal id (22 hex digits).")]


class ClaimOut(BaseModel):
    text: str
    citations: list[str]


class TextOut(BaseModel):
    text: str
    citations: list[str]
    claims: list[ClaimOut]
    model: str
    prompt_version: str
    fallback: str | None

    @classmethod
    def of(cls, t: SignalText) -> TextOut:
        return cls(
            text=t.text,
            citations=list(t.citations),
            claims=[ClaimOut(text=c.text, citations=list(c.citations)) for c in t.claims],
            model=t.model,
            prompt_version=t.prompt_version,
            fallback=t.fallback,
        )


class ExplanationOut(BaseModel):
    signal_id: str
    text: str
    citations: list[str]
    model: str
    prompt_version: str
    explanation: TextOut
    research: TextOut | None
    research_status: Literal["ready", "pending", "not_entitled"]


@router.get(
    "/{signal_id}/explanation",
    response_model=ExplanationOut,
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)
async def signal_explanation(
    services: ServicesDep, ident: IdentityDep, signal_id: SignalId
) -> ExplanationOut:
    """Plan, confidence against the base rate, reasons, and news received before the decision (cited
    by id); with an upgrade to the signal, the research brief (each claim cites our stored news).

    The text names the plan's levels, so it is gated exactly like the signal itself (entitlements).
    """
    signal = await asyncio.to_thread(services.signals.get, signal_id)
    if signal is None:
        raise HTTPException(404, detail=f"no signal {signal_id}")
    if not may_see_signal(ident.caller, signal.id, is_open=not signal.status.is_closed):
        raise HTTPException(status_code=403, detail="this signal is live: premium or an upgrade to it")
    store = services.llm_texts
    explanation = await asyncio.to_thread(store.latest, signal.id, EXPLANATION) if store else None
    if explanation is None:
        news = []
        if services.news is not None:
            news = await asyncio.to_thread(services.news.query, NewsQuery(symbol=signal.symbol, limit=200))
        explanation = template_explanation(signal, news, time.time_ns())
    research: SignalText | None = None
    status: Literal["ready", "pending", "not_entitled"] = "not_entitled"
    if signal.id in ident.caller.upgrades:
        research = await asyncio.to_thread(store.latest, signal.id, RESEARCH) if store else None
        status = "ready" if research is not None else "pending"
    return ExplanationOut(
        signal_id=signal.id,
        text=explanation.text,
        citations=list(explanation.citations),
        model=explanation.model,
        prompt_version=explanation.prompt_version,
        explanation=TextOut.of(explanation),
        research=TextOut.of(research) if research is not None else None,
        research_status=status,
    )
