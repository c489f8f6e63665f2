"""``/api/billing``: checkout (premium or one signal), the customer portal, and the provider's webhook."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Request
from pydantic import BaseModel, Field, model_validator

from tradesignals.accounts.billing import BillingError
from tradesignals.api.auth import SignedInDep
from tradesignals.api.deps import ServicesDep
from tradesignals.api.ops_metrics import WEBHOOK_EVENTS, WEBHOOK_SECONDS
from tradesignals.api.schemas import ErrorOut
from tradesignals.domain.tiers import Tier

router = APIRouter(prefix="/api/billing", tags=["billing"])

MAX_WEBHOOK_BYTES = 256 * 1024


class CheckoutIn(BaseModel):
    plan: Literal["premium"] | None = None
    signal_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{22}$")

    @model_validator(mode="after")
    def _one(self) -> CheckoutIn:
        if (self.plan is None) == (self.signal_id is None):
            raise ValueError("give either plan 'premium' or a signal_id")
        return self


class CheckoutOut(BaseModel):
    url: str
    status: Literal["open", "paid"] = Field(description="paid: completed within the call (local provider)")
    test_mode: bool = Field(description="true: no real money moves (local provider, or Stripe test keys)")


class PortalOut(BaseModel):
    url: str
    test_mode: bool


class WebhookOut(BaseModel):
    received: bool = True
    applied: bool = Field(description="false: this event id was applied before")


_ERRS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut},
    404: {"model": ErrorOut},
    422: {"model": ErrorOut},
    502: {"model": ErrorOut},
}


@router.post("/checkout", response_model=CheckoutOut, responses=_ERRS)
async def checkout(body: CheckoutIn, ident: SignedInDep, services: ServicesDep) -> CheckoutOut:
    user = ident.user
    assert user is not None
    if body.signal_id is not None:
        signal = await asyncio.to_thread(services.signals.get, body.signal_id)
        if signal is None:
            raise HTTPException(status_code=404, detail=f"no signal with id {body.signal_id}")
        if signal.status.is_closed:
            raise HTTPException(status_code=422, detail="this signal is closed: it is public already")
        # Premium sees the signal but not its live stream (domain.entitlements): it may buy the upgrade.
        if body.signal_id in ident.caller.upgrades:
            raise HTTPException(status_code=422, detail="you hold live updates for this signal already")
    elif user.tier is Tier.PREMIUM:
        raise HTTPException(status_code=422, detail="you are premium already")
    try:
        result = await asyncio.to_thread(services.billing.checkout, user, body.signal_id)
    except BillingError as exc:
        raise HTTPException(status_code=exc.status, detail=str(exc)) from None
    return CheckoutOut(url=result.url, status="paid" if result.paid else "open", test_mode=result.test_mode)


@router.get("/portal", response_model=PortalOut, responses=_ERRS)
async def portal(ident: SignedInDep, services: ServicesDep) -> PortalOut:
    assert ident.user is not None
    try:
        url = await asyncio.to_thread(services.billing.provider.portal, ident.user)
    except BillingError as exc:
        raise HTTPException(status_code=exc.status, detail=str(exc)) from None
    return PortalOut(url=url, test_mode=services.billing.provider.test_mode)


@router.post("/webhook", response_model=WebhookOut, responses={400: {"model": ErrorOut}})
async def webhook(
    request: Request,
    services: ServicesDep,
    stripe_signature: Annotated[str | None, Header()] = None,
) -> WebhookOut:
    """Verified by signature (forged or older than 5 minutes: 400, nothing granted); idempotent by event id."""
    payload = await request.body()
    if len(payload) > MAX_WEBHOOK_BYTES:
        raise HTTPException(status_code=400, detail="webhook payload too large")
    received = time.perf_counter()
    try:
        applied = await asyncio.to_thread(services.billing.webhook, payload, stripe_signature)
    except BillingError as exc:
        WEBHOOK_EVENTS.labels("rejected").inc()
        raise HTTPException(status_code=exc.status, detail=str(exc)) from None
    except Exception:
        WEBHOOK_EVENTS.labels("error").inc()
        raise
    WEBHOOK_EVENTS.labels("applied" if applied else "duplicate").inc()
    if applied:
        WEBHOOK_SECONDS.observe(time.perf_counter() - received)
    return WebhookOut(applied=applied)
