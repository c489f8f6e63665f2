"""Liveness and dependency health: the first thing an operator and a load balancer ask.

Anyone sees the status, each service's generic answer, each role's consumer-group lag (with its
keeping-up flag) and how many live processes run each role. Which host and pid runs which roles is
shown to operators only (``X-Operator-Token`` or an admin's bearer token, as for ``/metrics``).
The status code is the load balancer's: 503 only when a service the node needs does not answer or
a role is down with messages waiting for it — a role falling behind is reported, not judged.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request, Response

from tradesignals import __version__
from tradesignals.api.auth import identity, operator_token_ok
from tradesignals.api.deps import ServicesDep
from tradesignals.api.schemas import GroupHealth, Health, ProcessHealth, ServiceHealth
from tradesignals.domain.entitlements import may_read_metrics

router = APIRouter(prefix="/api", tags=["health"])


async def _operator(request: Request) -> bool:
    """The /metrics rule; a bad bearer token here is simply not an operator (never a 401 on health)."""
    if operator_token_ok(request):
        return True
    if request.headers.get("authorization") is None:
        return False
    try:
        ident = await identity(request)
    except HTTPException:
        return False
    return may_read_metrics(ident.caller, operator_token_ok=False)


def _at(unix_s: float) -> datetime:
    return datetime.fromtimestamp(unix_s, UTC)


@router.get(
    "/health",
    response_model=Health,
    responses={
        503: {
            "model": Health,
            "description": "A service this node needs (its database, Redis) does not answer.",
        }
    },
)
async def health(services: ServicesDep, request: Request, response: Response) -> Health:
    """Mode, version, each service, each role's lag and processes.

    503 when a service this node needs does not answer (the readiness a load balancer acts on);
    ``degraded`` with a 200 when only a role elsewhere is down (a group with messages waiting and no
    live member): this node still serves everything but what that role produces.
    """
    report = await services.health_report()
    checks = report.checks
    ok = all(c.ok for c in checks.values())
    if not all(c.ok for c in checks.values() if c.gates):
        response.status_code = 503
    live = report.processes or []
    roles: dict[str, int] = {}
    for proc in live:
        for role in proc.info.roles:
            roles[role] = roles.get(role, 0) + 1
    processes = None
    if report.processes is not None and await _operator(request):
        processes = [
            ProcessHealth(
                host=p.info.host,
                pid=p.info.pid,
                roles=list(p.info.roles),
                version=p.info.version,
                started_at=_at(p.info.started_at),
                last_seen=_at(p.last_seen),
            )
            for p in live
        ]
    return Health(
        status="ok" if ok else "degraded",
        mode=services.settings.mode.value,
        version=__version__,
        services={name: ServiceHealth(ok=c.ok, detail=c.detail, gates=c.gates) for name, c in checks.items()},
        roles=dict(sorted(roles.items())),
        groups=[
            GroupHealth(
                role=g.role,
                topic=g.lag.topic,
                group=g.lag.group,
                unread=g.lag.unread,
                pending=g.lag.pending,
                members=g.lag.members,
                keeping_up=g.keeping_up,
            )
            for g in report.groups
        ],
        processes=processes,
    )
