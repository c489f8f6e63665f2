"""Prometheus exposition at ``/metrics``: market-data rejections, stage latencies, bus and hub gauges.

Operators only (it counts signals as they are issued): send ``X-Operator-Token: TS_OPERATOR_TOKEN``
(a Prometheus scrape config sets it as a header), or an admin's bearer token. Unset token: admins only.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from tradesignals.api.auth import IdentityDep, operator_token_ok
from tradesignals.domain.entitlements import may_read_metrics

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response, include_in_schema=True)
async def metrics(request: Request, ident: IdentityDep) -> Response:
    """Every metric this process registered, in the Prometheus text format (operators only)."""
    if not may_read_metrics(ident.caller, operator_token_ok=operator_token_ok(request)):
        raise HTTPException(status_code=401 if ident.user is None else 403, detail="operators only")
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
