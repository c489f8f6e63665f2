"""Who is calling: the bearer access token (if any) → a user and their ``Caller`` facts.

A request without ``Authorization`` is anonymous; one with an expired, revoked, malformed or forged
token is a 401 (never silently anonymous, so a client notices it must refresh).
"""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from tradesignals.accounts.tokens import InvalidToken
from tradesignals.api.deps import get_services
from tradesignals.domain.entitlements import ANONYMOUS, Caller
from tradesignals.storage.base import User

_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True, slots=True)
class Identity:
    user: User | None
    caller: Caller


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            status_code=401, detail="Authorization must be 'Bearer ACCESS_TOKEN'", headers=_UNAUTHORIZED
        )
    return token.strip()


async def identity(request: Request) -> Identity:
    token = bearer_token(request)
    if token is None:
        return Identity(None, ANONYMOUS)
    accounts = get_services(request).accounts
    try:
        user = await asyncio.to_thread(accounts.user_for, token)
    except InvalidToken as exc:
        raise HTTPException(status_code=401, detail=str(exc), headers=_UNAUTHORIZED) from None
    caller = await asyncio.to_thread(accounts.caller, user)
    return Identity(user, caller)


async def signed_in(ident: Annotated[Identity, Depends(identity)]) -> Identity:
    if ident.user is None:
        raise HTTPException(status_code=401, detail="sign in first", headers=_UNAUTHORIZED)
    return ident


def operator_token_ok(request: Request) -> bool:
    """``X-Operator-Token`` equals TS_OPERATOR_TOKEN (compared in constant time); False when unset."""
    configured = get_services(request).settings.operator_token
    given = request.headers.get("x-operator-token")
    if configured is None or given is None:
        return False
    return hmac.compare_digest(given.encode(), configured.get_secret_value().encode())


IdentityDep = Annotated[Identity, Depends(identity)]
SignedInDep = Annotated[Identity, Depends(signed_in)]
