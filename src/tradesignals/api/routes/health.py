"""Liveness and dependency health: the first thing an operator and a load balancer ask."""

from __future__ import annotations

from fastapi import APIRouter, Response

from tradesignals import __version__
from tradesignals.api.deps import ServicesDep
from tradesignals.api.schemas import Health, ServiceHealth

router = APIRouter(prefix="/api", tags=["health"])


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "A service the node needs does not answer."}},
)
async def health(services: ServicesDep, response: Response) -> Health:
    """Mode, version, and whether each service answers (200 when all do, 503 otherwise)."""
    checks = await services.check_health()
    ok = all(c.ok for c in checks.values())
    if not ok:
        response.status_code = 503
    return Health(
        status="ok" if ok else "degraded",
        mode=services.settings.mode.value,
        version=__version__,
        services={name: ServiceHealth(ok=c.ok, detail=c.detail) for name, c in checks.items()},
    )
