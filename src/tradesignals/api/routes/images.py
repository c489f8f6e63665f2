"""``GET /api/signals/{id}/image.png``: a signal's static chart, gated exactly like the signal.

Unknown id → 404; an open signal for a caller who may not see it (``domain.entitlements``) → 403,
before anything about the image is looked at, so the image can never leak a live plan. An image not
rendered yet (the worker is behind, or it was not running when the signal was published) is
rendered now in the image service's bounded thread — a busy service answers 503 with Retry-After.
The bytes never change for a signal: ETag is their sha256 and they are cacheable for a year;
``private`` while the signal is open (a shared cache must not hand a live plan to another caller),
``public`` once it is closed (the track record).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Response

from tradesignals.api.auth import IdentityDep
from tradesignals.api.deps import ServicesDep
from tradesignals.api.routes.signals import SignalId
from tradesignals.api.schemas import ErrorOut
from tradesignals.domain.entitlements import may_see_signal
from tradesignals.images.service import ImageBusy, ImageFailed

router = APIRouter(prefix="/api/signals", tags=["signals"])

MAX_AGE = 365 * 24 * 3600

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}}, "description": "The chart (PNG)."},
    304: {"description": "Not modified (If-None-Match matched the ETag)."},
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
    404: {"model": ErrorOut},
    503: {"model": ErrorOut},
}


def _matches(if_none_match: str | None, etag: str) -> bool:
    if if_none_match is None:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in tags or etag in tags


@router.get("/{signal_id}/image.png", response_class=Response, responses=_RESPONSES)
async def signal_image(
    signal_id: SignalId,
    services: ServicesDep,
    ident: IdentityDep,
    if_none_match: Annotated[str | None, Header(max_length=1024)] = None,
) -> Response:
    """The signal's candlestick chart with entry, stop and targets; for whoever may see the signal."""
    signal = await asyncio.to_thread(services.signals.get, signal_id)
    if signal is None:
        raise HTTPException(status_code=404, detail=f"no signal with id {signal_id}")
    is_open = not signal.status.is_closed
    if not may_see_signal(ident.caller, signal.id, is_open=is_open):
        raise HTTPException(status_code=403, detail="this signal is live: premium or an upgrade to it")
    images = services.images
    if images is None:
        raise HTTPException(status_code=503, detail="signal images are not available on this node")
    try:
        image = await images.ensure(signal)
    except ImageBusy:
        raise HTTPException(
            status_code=503,
            detail="images are being rendered; try again shortly",
            headers={"Retry-After": "2"},
        ) from None
    except ImageFailed:
        raise HTTPException(
            status_code=503, detail="the image could not be rendered; try again later"
        ) from None
    etag = f'"{image.etag}"'
    headers = {
        "ETag": etag,
        "Cache-Control": f"{'private' if is_open else 'public'}, max-age={MAX_AGE}, immutable",
    }
    if is_open:
        headers["Vary"] = "Authorization"
    if _matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(content=image.data, media_type="image/png", headers=headers)
