"""``/api/me``: the signed-in account — tier, profile, upgrades in force; answer the questionnaire; delete."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, Field, StringConstraints

from tradesignals.api.auth import SignedInDep
from tradesignals.api.deps import ServicesDep
from tradesignals.api.routes.signals import DEFAULT_CAPITAL, MAX_CAPITAL, MIN_CAPITAL
from tradesignals.api.schemas import ErrorOut
from tradesignals.domain.risk import InvalidAnswers, ProfileName, assess
from tradesignals.domain.tiers import Role, Tier
from tradesignals.storage.audience import MAX_WATCHLIST

router = APIRouter(prefix="/api/me", tags=["me"])


class UpgradeOut(BaseModel):
    signal_id: str
    expires_at: datetime


class MeOut(BaseModel):
    id: int
    email: str
    tier: Tier
    role: Role
    risk_profile: ProfileName = Field(description="moderate until the questionnaire is answered")
    profile_answered: bool
    upgrades: list[UpgradeOut]


Key = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class AnswersIn(BaseModel):
    answers: Annotated[dict[Key, Key], Field(max_length=32)]


_401: dict[int | str, dict[str, Any]] = {401: {"model": ErrorOut}}


@router.get("", response_model=MeOut, responses=_401)
async def me(ident: SignedInDep, services: ServicesDep) -> MeOut:
    user = ident.user
    assert user is not None
    ups = await asyncio.to_thread(services.accounts.upgrades, user.id)
    return MeOut(
        id=user.id,
        email=user.email,
        tier=user.tier,
        role=user.role,
        risk_profile=user.risk_profile if user.profile_answered else ProfileName.MODERATE,
        profile_answered=user.profile_answered,
        upgrades=[UpgradeOut(signal_id=u.signal_id, expires_at=u.expires_at) for u in ups],
    )


@router.put("/risk-profile", response_model=MeOut, responses={**_401, 422: {"model": ErrorOut}})
async def answer_profile(body: AnswersIn, ident: SignedInDep, services: ServicesDep) -> MeOut:
    user = ident.user
    assert user is not None
    try:
        result = assess(body.answers)
    except InvalidAnswers as err:
        raise HTTPException(
            status_code=422, detail="; ".join(f"{q}: {why}" for q, why in err.problems.items())
        ) from None
    await asyncio.to_thread(services.accounts.answer_profile, user.id, result.profile.name)
    fresh = await asyncio.to_thread(services.accounts.users.get, user.id)
    assert fresh is not None
    ups = await asyncio.to_thread(services.accounts.upgrades, user.id)
    return MeOut(
        id=fresh.id,
        email=fresh.email,
        tier=fresh.tier,
        role=fresh.role,
        risk_profile=fresh.risk_profile,
        profile_answered=True,
        upgrades=[UpgradeOut(signal_id=u.signal_id, expires_at=u.expires_at) for u in ups],
    )


@router.delete("", status_code=204, response_class=Response, responses=_401)
async def delete_me(ident: SignedInDep, services: ServicesDep) -> Response:
    """Deletes the account, its tokens, upgrades and subscriptions records (payments keep their rows, unnamed).

    Cancel a paid subscription first (``/api/billing/portal``): deleting here does not stop billing.
    """
    assert ident.user is not None
    await asyncio.to_thread(services.accounts.delete, ident.user.id)
    return Response(status_code=204)


Symbol = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9.\-_/]+$")]


class WatchlistIn(BaseModel):
    symbols: Annotated[list[Symbol], Field(max_length=MAX_WATCHLIST)]


class WatchlistOut(BaseModel):
    symbols: list[str] = Field(description="upper-cased, sorted, each once")


@router.get("/watchlist", response_model=WatchlistOut, responses=_401)
async def get_watchlist(ident: SignedInDep, services: ServicesDep) -> WatchlistOut:
    assert ident.user is not None
    return WatchlistOut(symbols=await asyncio.to_thread(services.audience.watchlist, ident.user.id))


@router.put("/watchlist", response_model=WatchlistOut, responses={**_401, 422: {"model": ErrorOut}})
async def put_watchlist(body: WatchlistIn, ident: SignedInDep, services: ServicesDep) -> WatchlistOut:
    """Replace the symbols whose bars and closed outcomes ``user:{id}:watchlist`` carries."""
    assert ident.user is not None
    symbols = [s.upper() for s in body.symbols]
    return WatchlistOut(
        symbols=await asyncio.to_thread(services.audience.set_watchlist, ident.user.id, symbols)
    )


class CapitalIn(BaseModel):
    capital: Annotated[float, Field(ge=MIN_CAPITAL, le=MAX_CAPITAL, allow_inf_nan=False)] | None = Field(
        description="What ``user:{id}:signals`` sizes positions for; null: the default."
    )


class CapitalOut(BaseModel):
    capital: float = Field(description="the capital live signals are sized for")


@router.put("/capital", response_model=CapitalOut, responses={**_401, 422: {"model": ErrorOut}})
async def put_capital(body: CapitalIn, ident: SignedInDep, services: ServicesDep) -> CapitalOut:
    assert ident.user is not None
    await asyncio.to_thread(services.audience.set_capital, ident.user.id, body.capital)
    return CapitalOut(capital=body.capital if body.capital is not None else DEFAULT_CAPITAL)
