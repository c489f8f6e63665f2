"""FastAPI application factory: routers, error shapes, and the lifespan that runs this node's roles."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tradesignals import __version__
from tradesignals.api import ws
from tradesignals.api.dbpool import DbPool
from tradesignals.api.deps import AppServices
from tradesignals.api.routes import (
    auth,
    backtests,
    billing,
    explain,
    health,
    history,
    images,
    ledger,
    market,
    me,
    metrics,
    news,
    push,
    risk,
    signals,
)
from tradesignals.api.webapp import mount_web
from tradesignals.engine.summary_cache import SummaryCache
from tradesignals.marketdata.feeds.base import Feed
from tradesignals.storage.base import StorageError

log = structlog.get_logger(__name__)

STORAGE_UNAVAILABLE = "storage unavailable; try again shortly"
"""The whole body of a 503: which database, host, user or statement failed is for the log, not for
an anonymous caller (it maps the deployment for an attacker)."""


async def _warm_summary(app: FastAPI) -> None:
    try:
        await app.state.db_pool.run(app.state.summary_cache.refresh)
    except StorageError as exc:  # the first summary request tries again
        log.warning("api.summary_warmup_failed", error=str(exc))


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
        # Fill the summary's running figures now, off the loop, rather than on the first request
        # (a minute at 100,000 closes on a busy machine); requests meanwhile wait for it.
        app.state.summary_warmup = asyncio.create_task(_warm_summary(app), name="summary-warmup")
        try:
            yield
        finally:
            app.state.summary_warmup.cancel()
            app.state.db_pool.close()
            if close_services:
                await services.close()

    app = FastAPI(
        title="tradesignals",
        version=__version__,
        summary="Calibrated trading signals with a verifiable, hash-chained track record.",
        lifespan=lifespan,
    )
    app.state.services = services
    app.state.db_pool = DbPool(services.settings.api_db_threads)
    app.state.summary_cache = SummaryCache(services.signals, max_views=services.settings.summary_max_views)
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
    app.include_router(images.router)
    app.include_router(push.router)
    app.include_router(auth.router)
    app.include_router(me.router)
    app.include_router(billing.router)
    app.include_router(ws.router)

    @app.exception_handler(StorageError)
    async def storage_unavailable(request: Request, exc: StorageError) -> JSONResponse:
        log.warning("api.storage_unavailable", path=request.url.path, error=str(exc))
        return JSONResponse(status_code=503, content={"detail": STORAGE_UNAVAILABLE})

    mount_web(app, web_dir)
    return app
