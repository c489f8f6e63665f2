"""Web Push: the VAPID public key, and the signed-in user's subscriptions.

``POST /api/me/push-subscriptions`` takes the browser's ``PushSubscription.toJSON()`` (``endpoint``,
``keys.p256dh``, ``keys.auth``); storing one opts in. Notifications carry live signals, so a caller
who may receive none (``domain.entitlements.may_subscribe_push``: premium, or an upgrade in force)
gets a 403; the sender checks the tier again at each send, so a lapsed premium stops receiving at
once. ``DELETE /api/me/push-subscriptions?endpoint=…`` removes one (the browser knows its endpoint,
not our id). Nothing here answers or logs a key other than the public one.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Field

from tradesignals.api.auth import SignedInDep
from tradesignals.api.deps import ServicesDep
from tradesignals.api.schemas import ErrorOut
from tradesignals.domain.entitlements import may_subscribe_push
from tradesignals.push.service import PushService
from tradesignals.push.subscriptions import MAX_ENDPOINT, endpoint_problem, keys_problem

router = APIRouter(tags=["push"])


class VapidKeyOut(BaseModel):
    public_key: str = Field(
        description="The VAPID public key: the browser's applicationServerKey (base64url)."
    )


class SubscriptionKeys(BaseModel):
    p256dh: Annotated[str, Field(min_length=1, max_length=128)]
    auth: Annotated[str, Field(min_length=1, max_length=64)]


class SubscriptionIn(BaseModel):
    endpoint: Annotated[str, Field(min_length=1, max_length=MAX_ENDPOINT)]
    keys: SubscriptionKeys


class SubscriptionOut(BaseModel):
    id: int
    endpoint: str
    created_at: datetime


_ERR: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
    422: {"model": ErrorOut},
    503: {"model": ErrorOut},
}


def _push(services: ServicesDep) -> PushService:
    if services.push is None:
        raise HTTPException(status_code=503, detail="push notifications are not configured on this node")
    return services.push


@router.get("/api/push/vapid-public-key", response_model=VapidKeyOut, responses={503: {"model": ErrorOut}})
async def vapid_public_key(services: ServicesDep) -> VapidKeyOut:
    """The key a browser subscribes with (``pushManager.subscribe({applicationServerKey})``)."""
    return VapidKeyOut(public_key=_push(services).keys.public_key)


@router.get("/api/me/push-subscriptions", response_model=list[SubscriptionOut], responses=_ERR)
async def my_subscriptions(ident: SignedInDep, services: ServicesDep) -> list[SubscriptionOut]:
    push = _push(services)
    assert ident.user is not None
    subs = await asyncio.to_thread(push.store.of_user, ident.user.id)
    return [SubscriptionOut(id=s.id, endpoint=s.endpoint, created_at=s.created_at) for s in subs]


@router.post("/api/me/push-subscriptions", status_code=201, response_model=SubscriptionOut, responses=_ERR)
async def subscribe(body: SubscriptionIn, ident: SignedInDep, services: ServicesDep) -> SubscriptionOut:
    """Opt in: each new signal fitted to your profile (premium), and the close of a signal you
    upgraded (target, stop, expiry), arrive as notifications on this browser."""
    push = _push(services)
    assert ident.user is not None
    if not may_subscribe_push(ident.caller):
        raise HTTPException(
            status_code=403, detail="signal notifications are for premium members or holders of an upgrade"
        )
    why = endpoint_problem(body.endpoint, allow_loopback=push.allow_loopback) or keys_problem(
        body.keys.p256dh, body.keys.auth
    )
    if why is not None:
        raise HTTPException(status_code=422, detail=why)
    sub = await asyncio.to_thread(
        push.store.subscribe,
        ident.user.id,
        body.endpoint,
        body.keys.p256dh,
        body.keys.auth,
        datetime.now(UTC),
    )
    return SubscriptionOut(id=sub.id, endpoint=sub.endpoint, created_at=sub.created_at)


@router.delete(
    "/api/me/push-subscriptions",
    status_code=204,
    response_class=Response,
    responses={**_ERR, 404: {"model": ErrorOut}},
)
async def unsubscribe(
    ident: SignedInDep,
    services: ServicesDep,
    endpoint: Annotated[str, Query(min_length=1, max_length=MAX_ENDPOINT)],
) -> Response:
    push = _push(services)
    assert ident.user is not None
    if not await asyncio.to_thread(push.store.unsubscribe, ident.user.id, endpoint):
        raise HTTPException(status_code=404, detail="no such push subscription of yours")
    return Response(status_code=204)
