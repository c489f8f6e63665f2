"""Prometheus exposition at ``/metrics``: market-data rejections, stage latencies, bus and hub gauges."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response, include_in_schema=True)
async def metrics() -> Response:
    """Every metric this process registered, in the Prometheus text format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
