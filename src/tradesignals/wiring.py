"""The one place that reads Settings and chooses implementations.

Everything below receives its collaborators ready-made, so tests and the backtester can wire the
same core with other parts (a memory bus, a replay feed, a temporary database).
"""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
import structlog

from tradesignals.api.hub import Hub
from tradesignals.bus.base import Bus
from tradesignals.config import ConfigError, Mode, Settings
from tradesignals.domain.market import Timeframe
from tradesignals.marketdata.feeds.base import Feed
from tradesignals.storage.base import SignalRepository, StorageError, UserRepository

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    detail: str


@dataclass(slots=True)
class Services:
    settings: Settings
    db: sa.Engine
    signals: SignalRepository
    users: UserRepository
    bus: Bus
    hub: Hub
    node_id: str
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def check_health(self) -> dict[str, Check]:
        return {"database": await self._check_db(), "bus": await self._check_bus()}

    async def _check_db(self) -> Check:
        def probe() -> None:
            with self.db.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

        try:
            await asyncio.wait_for(asyncio.to_thread(probe), timeout=3.0)
        except (TimeoutError, sa.exc.SQLAlchemyError) as exc:
            return Check(False, f"{self.db.url.get_backend_name()}: {type(exc).__name__}")
        return Check(True, self.db.url.get_backend_name())

    async def _check_bus(self) -> Check:
        name = type(self.bus).__name__
        try:
            ok = await asyncio.wait_for(self.bus.ping(), timeout=3.0)
        except TimeoutError:
            ok = False
        return Check(ok, name if ok else f"{name}: no answer")

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception as exc:  # a failed background task is logged at shutdown, not re-raised
                log.warning("task.failed", task=task.get_name(), error=repr(exc))
        self.tasks.clear()
        await self.bus.close()
        self.db.dispose()


def _build_bus(settings: Settings) -> Bus:
    if settings.mode is Mode.SERVER:
        from tradesignals.bus.redis_streams import RedisStreamsBus

        return RedisStreamsBus(
            settings.redis_url, partitions=settings.bus_partitions, prefix=settings.bus_prefix
        )
    from tradesignals.bus.memory import MemoryBus

    return MemoryBus(partitions=settings.bus_partitions)


async def build_services(settings: Settings) -> Services:
    """Connect, migrate (embedded) or verify (server), and return the services; one-line ConfigError on failure."""
    from tradesignals.storage.db import check_connection, make_engine, migrate
    from tradesignals.storage.repositories import SqlSignalRepository, SqlUserRepository

    # Reach every service before writing anything, so a failed start leaves no half-made state.
    bus = _build_bus(settings)
    if settings.mode is Mode.SERVER and not await bus.ping():
        await bus.close()
        raise ConfigError(f"bus: Redis at {settings.redis_url} does not answer (TS_REDIS_URL)")
    if settings.mode is Mode.EMBEDDED:
        settings.home.mkdir(parents=True, exist_ok=True)
    url = settings.db_url
    try:
        await asyncio.to_thread(check_connection, url)
        engine = make_engine(url)
        await asyncio.to_thread(migrate, engine)
    except StorageError as exc:
        await bus.close()
        raise ConfigError(f"database: {exc}") from None
    node_id = f"{socket.gethostname()}-{os.getpid()}"
    return Services(
        settings=settings,
        db=engine,
        signals=SqlSignalRepository(engine),
        users=SqlUserRepository(engine),
        bus=bus,
        hub=Hub(),
        node_id=node_id,
    )


def build_feed(settings: Settings) -> Feed:
    """The market-data feed named by ``TS_FEED``; a bad path or file fails here, before anything starts."""
    timeframe = Timeframe.parse(settings.signal_timeframe)
    if settings.feed == "sim":
        from tradesignals.marketdata.feeds.simulator import SimulatorFeed

        return SimulatorFeed(
            settings.sim_symbols,
            seed=settings.sim_seed,
            speed=settings.speed,
            timeframe=timeframe,
            warmup_bars=60,
        )
    from tradesignals.marketdata.feeds.replay import ReplayFeed

    path = Path(settings.feed.removeprefix("replay:"))
    return ReplayFeed(path, speed=settings.speed)


def start_roles(services: Services, roles: set[str], feed: Feed | None = None) -> None:
    """Start the background roles this process runs: ingest, engine, and the API's broadcaster."""
    from tradesignals.api.broadcast import broadcast_signals
    from tradesignals.engine.pipeline import EngineService, SignalEngine
    from tradesignals.engine.placeholder_rule import PlaceholderRule

    stop = asyncio.Event()
    settings = services.settings
    if "api" in roles:
        services.tasks.append(
            asyncio.create_task(
                broadcast_signals(services.bus, services.hub, services.node_id, stop), name="broadcast"
            )
        )
    if "engine" in roles:
        timeframe = Timeframe.parse(settings.signal_timeframe) if settings.feed == "sim" else None
        engine = SignalEngine(PlaceholderRule(), timeframe or _replay_timeframe(feed))
        service = EngineService(engine, services.bus, services.signals, name=f"engine-{services.node_id}")
        services.tasks.append(asyncio.create_task(service.run(), name="engine"))
    if "ingest" in roles:
        if feed is None:
            raise ConfigError("the ingest role needs a feed (TS_FEED)")
        services.tasks.append(asyncio.create_task(_ingest(feed, services), name="ingest"))


def _replay_timeframe(feed: Feed | None) -> Timeframe:
    tf = getattr(feed, "timeframe", None)
    return tf if isinstance(tf, Timeframe) else Timeframe.D1


async def _ingest(feed: Feed, services: Services) -> None:
    from tradesignals.engine.ingest import run_ingest

    try:
        await run_ingest(feed, services.bus)
    finally:
        await feed.close()
