"""The engine role end to end on the embedded stack: bus in, signal and outcome stored, ledger intact."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tradesignals.bus import topics
from tradesignals.bus.codec import decoder, encode
from tradesignals.bus.memory import MemoryBus
from tradesignals.domain.ledger import verify
from tradesignals.domain.market import Bar, Timeframe
from tradesignals.domain.signals import Direction, SignalEvent, SignalStatus
from tradesignals.engine.pipeline import EngineService, SignalEngine
from tradesignals.engine.placeholder_rule import Decision
from tradesignals.storage.base import SignalQuery
from tradesignals.storage.db import make_engine, migrate
from tradesignals.storage.repositories import SqlSignalRepository

M = Timeframe.M1.ns


class LongOnce:
    version = "test-long"

    def on_bar(self, bar: Bar) -> Decision | None:
        return Decision(Direction.LONG, 0.6, atr=1.0, reasons=("test",)) if bar.ts == 0 else None


async def wait_for(cond, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await asyncio.to_thread(cond):
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_signal_then_outcome_are_stored_published_and_chained(tmp_path: Path) -> None:
    db = make_engine(f"sqlite:///{tmp_path / 'ts.db'}")
    migrate(db)
    repo = SqlSignalRepository(db)
    bus = MemoryBus(partitions=2)
    events = bus.consumer(topics.SIGNAL_EVENTS, "t", "t", decoder(SignalEvent))
    await events.fetch(1, wait=0)  # join before anything is published
    stop = asyncio.Event()
    service = EngineService(SignalEngine(LongOnce(), Timeframe.M1), bus, repo, stop=stop)
    task = asyncio.create_task(service.run())
    await bus.publish(topics.MARKET_BARS, "A", encode(Bar("A", Timeframe.M1, 0, 100, 101, 99, 100, 10)))
    await wait_for(lambda: len(repo.query(SignalQuery())) == 1)
    (signal,) = repo.query(SignalQuery())
    assert signal.status is SignalStatus.OPEN and signal.model_version == "test-long"
    await bus.publish(topics.MARKET_BARS, "A", encode(Bar("A", Timeframe.M1, M, 100, 100.5, 98, 98.2, 10)))
    await wait_for(lambda: repo.get(signal.id).status is SignalStatus.STOPPED)  # type: ignore[union-attr]
    (published,) = await events.fetch(10, wait=2)
    assert published.value.signal_id == signal.id and published.value.data["outcome"] == "stop"
    stop.set()
    await asyncio.wait_for(task, 5)
    entries = repo.ledger(0, None, 100)
    assert [e.kind for e in entries] == ["created", "closed"]
    assert verify(entries).ok
    await bus.close()
    db.dispose()


async def test_restart_resumes_open_signals_from_the_store(tmp_path: Path) -> None:
    db = make_engine(f"sqlite:///{tmp_path / 'ts.db'}")
    migrate(db)
    repo = SqlSignalRepository(db)
    first = SignalEngine(LongOnce(), Timeframe.M1)
    signal = first.on_bar(Bar("A", Timeframe.M1, 0, 100, 101, 99, 100, 10))
    assert signal is not None
    repo.add(signal)
    bus = MemoryBus(partitions=2)
    stop = asyncio.Event()
    service = EngineService(SignalEngine(LongOnce(), Timeframe.M1), bus, repo, stop=stop)
    task = asyncio.create_task(service.run())
    await bus.publish(topics.MARKET_BARS, "A", encode(Bar("A", Timeframe.M1, M, 100, 105, 99.9, 104.9, 10)))
    await wait_for(lambda: repo.get(signal.id).status is SignalStatus.TARGET_HIT)  # type: ignore[union-attr]
    stop.set()
    await asyncio.wait_for(task, 5)
    await bus.close()
    db.dispose()
