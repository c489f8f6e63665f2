"""``/api/auth``: register, log in (OAuth2 password form), rotate the refresh token, log out.

Every route is rate-limited per client address (TS_AUTH_RATE_PER_MIN, 429 with Retry-After), and a
run of wrong passwords locks the account for a while (423). Tokens are never logged.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field

from tradesignals.accounts.oauth import OAuthError
from tradesignals.accounts.service import AccountLocked, BadCredentials, EmailTaken, WeakPassword
from tradesignals.accounts.tokens import InvalidToken
from tradesignals.api.deps import ServicesDep
from tradesignals.api.schemas import ErrorOut

router = APIRouter(prefix="/api/auth", tags=["auth"])

EMAIL = r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$"


class RegisterIn(BaseModel):
    email: str = Field(pattern=EMAIL, max_length=320)
    password: str = Field(max_length=1024)


class UserCreated(BaseModel):
    id: int
    email: str


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=256)


def rate_limited(request: Request, services: ServicesDep) -> None:
    client = request.client.host if request.client else "unknown"
    if not services.auth_limiter.allow(f"{client}:{request.url.path}"):
        raise HTTPException(
            status_code=429, detail="too many attempts: wait a minute", headers={"Retry-After": "60"}
        )


RateLimited = Depends(rate_limited)
_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut},
    423: {"model": ErrorOut},
    429: {"model": ErrorOut},
}


@router.post(
    "/register",
    status_code=201,
    response_model=UserCreated,
    dependencies=[RateLimited],
    responses={409: {"model": ErrorOut}, 422: {"model": ErrorOut}, 429: {"model": ErrorOut}},
)
async def register(body: RegisterIn, services: ServicesDep) -> UserCreated:
    try:
        user = await asyncio.to_thread(services.accounts.register, body.email, body.password)
    except WeakPassword as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    except EmailTaken as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return UserCreated(id=user.id, email=user.email)


@router.post("/token", response_model=TokenOut, dependencies=[RateLimited], responses=_ERRORS)
async def token(form: Annotated[OAuth2PasswordRequestForm, Depends()], services: ServicesDep) -> TokenOut:
    try:
        pair = await asyncio.to_thread(services.accounts.login, form.username, form.password)
    except BadCredentials as exc:
        raise HTTPException(
            status_code=401, detail=str(exc), headers={"WWW-Authenticate": "Bearer"}
        ) from None
    except AccountLocked as exc:
        raise HTTPException(status_code=423, detail=str(exc)) from None
    return TokenOut(access_token=pair.access_token, refresh_token=pair.refresh_token)


@router.post("/refresh", response_model=TokenOut, dependencies=[RateLimited], responses=_ERRORS)
async def refresh(body: RefreshIn, services: ServicesDep) -> TokenOut:
    try:
        pair = await asyncio.to_thread(services.accounts.refresh, body.refresh_token)
    except InvalidToken as exc:
        raise HTTPException(status_code=401, detail=str(exc)) from None
    return TokenOut(access_token=pair.access_token, refresh_token=pair.refresh_token)


@router.post(
    "/logout", status_code=204, response_class=Response, dependencies=[RateLimited], responses=_ERRORS
)
async def logout(body: RefreshIn, services: ServicesDep) -> Response:
    """Revokes the refresh token's family (this login on every device it was rotated to)."""
    if not await asyncio.to_thread(services.accounts.logout, body.refresh_token):
        raise HTTPException(status_code=401, detail="refresh token unknown")
    return Response(status_code=204)


OAuthName = Literal["google", "github"]


class AuthorizeOut(BaseModel):
    url: str = Field(description="The provider's consent page; it sends the browser back to the callback.")


@router.get(
    "/oauth/{provider}/login",
    response_model=AuthorizeOut,
    dependencies=[RateLimited],
    responses={404: {"model": ErrorOut}, 429: {"model": ErrorOut}},
)
async def oauth_login(provider: OAuthName, services: ServicesDep) -> AuthorizeOut:
    """Where to send the browser to sign in with Google or GitHub (404 where not configured)."""
    try:
        return AuthorizeOut(url=services.oauth.authorize_url(provider))
    except OAuthError as exc:
        raise HTTPException(status_code=exc.status, detail=str(exc)) from None


@router.get(
    "/oauth/{provider}/callback",
    response_model=TokenOut,
    dependencies=[RateLimited],
    responses={
        400: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        429: {"model": ErrorOut},
        502: {"model": ErrorOut},
    },
)
async def oauth_callback(
    provider: OAuthName,
    services: ServicesDep,
    code: Annotated[str, Query(min_length=1, max_length=2048)],
    state: Annotated[str, Query(min_length=1, max_length=4096)],
) -> TokenOut:
    """The provider's redirect: the verified email's account (created on first use), signed in."""
    try:
        pair = await asyncio.to_thread(services.oauth.sign_in, provider, code, state)
    except OAuthError as exc:
        raise HTTPException(status_code=exc.status, detail=str(exc)) from None
    return TokenOut(access_token=pair.access_token, refresh_token=pair.refresh_token)
