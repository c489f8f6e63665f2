"""FastAPI application factory: routers, error shapes, and the lifespan that runs this node's roles."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tradesignals import __version__
from tradesignals.api import ws
from tradesignals.api.deps import AppServices
from tradesignals.api.routes import auth, billing, health, history, ledger, market, me, metrics, risk, signals
from tradesignals.marketdata.feeds.base import Feed
from tradesignals.storage.base import StorageError


def create_app(
    services: AppServices,
    *,
    roles: frozenset[str] = frozenset({"api"}),
    feed: Feed | None = None,
    close_services: bool = True,
) -> FastAPI:
    """An app over ready-made ``services``; the lifespan starts ``roles`` and stops them on shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services.start_roles(set(roles), feed)
        try:
            yield
        finally:
            if close_services:
                await services.close()

    app = FastAPI(
        title="tradesignals",
        version=__version__,
        summary="Calibrated trading signals with a verifiable, hash-chained track record.",
        lifespan=lifespan,
    )
    app.state.services = services
    app.include_router(health.router)
    app.include_router(signals.router)
    app.include_router(market.router)
    app.include_router(metrics.router)
    app.include_router(risk.router)
    app.include_router(ledger.router)
    app.include_router(history.router)
    app.include_router(auth.router)
    app.include_router(me.router)
    app.include_router(billing.router)
    app.include_router(ws.router)

    @app.exception_handler(StorageError)
    async def storage_unavailable(request: Request, exc: StorageError) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": f"storage unavailable: {exc}"})

    return app
