"""FastAPI application factory: routers, error shapes, and the lifespan that runs this node's roles."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tradesignals import __version__
from tradesignals.api import ws
from tradesignals.api.deps import AppServices
from tradesignals.api.routes import (
    backtests,
    explain,
    health,
    history,
    ledger,
    market,
    metrics,
    news,
    risk,
    signals,
)
from tradesignals.api.webapp import mount_web
from tradesignals.marketdata.feeds.base import Feed
from tradesignals.storage.base import StorageError


def create_app(
    services: AppServices,
    *,
    roles: frozenset[str] = frozenset({"api"}),
    feed: Feed | None = None,
    close_services: bool = True,
    web_dir: Path | None = None,
) -> FastAPI:
    """An app over ready-made ``services``; the lifespan starts ``roles`` and stops them on shutdown.

    The web app is served at ``/`` from ``web_dir`` (default: the build in the package), only where
    no API route matches (see ``webapp.py``).
    """

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
    app.include_router(backtests.router)
    app.include_router(news.router)
    app.include_router(explain.router)
    app.include_router(ws.router)

    @app.exception_handler(StorageError)
    async def storage_unavailable(request: Request, exc: StorageError) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": f"storage unavailable: {exc}"})

    mount_web(app, web_dir)
    return app
