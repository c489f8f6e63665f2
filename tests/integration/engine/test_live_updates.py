"""``signal.live`` end to end: the engine service marks each open signal every bar, before the ack.

On both stacks: the in-process bus with SQLite, and the real Redis bus with PostgreSQL. A replay
of bars makes one signal, moves it, and stops it out; the topic must then hold exactly one
``LiveUpdate`` per bar from the deciding bar to the bar before the stop, in order, for that signal
only — none for a symbol without an open signal, none after the close — and they must be there
by the time the engine group has acked the bars (publish before ack).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tradesignals.bus import topics
from tradesignals.bus.base import Bus
from tradesignals.bus.codec import decoder, encode
from tradesignals.bus.memory import MemoryBus
from tradesignals.bus.redis_streams import RedisStreamsBus
from tradesignals.domain.live import LiveUpdate
from tradesignals.domain.market import Bar, Timeframe
from tradesignals.domain.signals import Direction, SignalStatus
from tradesignals.domain.trade_plan import PlanParams
from tradesignals.engine.pipeline import EngineService, SignalEngine
from tradesignals.engine.placeholder_rule import Decision
from tradesignals.storage.base import SignalQuery
from tradesignals.storage.db import make_engine, migrate
from tradesignals.storage.repositories import SqlSignalRepository

pytestmark = pytest.mark.integration

M = Timeframe.M1.ns


class LongOnce:
    version = "test-live:1"

    def on_bar(self, bar: Bar) -> Decision | None:
        if bar.symbol == "AAPL" and bar.ts == 0:
            return Decision(Direction.LONG, 0.6, atr=1.0, reasons=("test",))
        return None

    def rescore(self, symbol: str, direction: Direction) -> float | None:
        return 0.61 if direction is Direction.LONG else None


# entry 100, stop 98.5, targets 101.5 / 103 / 104.5; bar 4 trades through the stop.
PATH = [(100, 100.5, 99.5, 100), (100.2, 100.9, 100.1, 100.8), (100.8, 101.2, 100.3, 100.4),
        (100.4, 100.6, 99.2, 99.5), (99.5, 99.6, 98.0, 98.1), (98.1, 98.5, 97.9, 98.2)]  # fmt: skip


def replay() -> list[Bar]:
    out = []
    for i, (o, h, lo, c) in enumerate(PATH):
        out.append(Bar("AAPL", Timeframe.M1, i * M, o, h, lo, c, 10))
        out.append(Bar("MSFT", Timeframe.M1, i * M, 50, 50.5, 49.5, 50, 10))
    return out


async def until(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not await asyncio.to_thread(cond):
            await asyncio.sleep(0.02)


@pytest.fixture(params=["memory+sqlite", "redis+postgresql"])
async def stack(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Bus, SqlSignalRepository]]:
    schema = None
    admin = None
    if request.param == "memory+sqlite":
        bus: Bus = MemoryBus(partitions=2)
        db = make_engine(f"sqlite:///{tmp_path / 'ts.db'}")
    else:
        redis_url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        pg_url = request.getfixturevalue("pg_url")
        schema = f"t_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(pg_url, poolclass=sa.NullPool)
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        url = make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"})
        bus = RedisStreamsBus(redis_url, partitions=2, prefix=prefix)
        db = make_engine(url.render_as_string(hide_password=False))
    migrate(db)
    yield bus, SqlSignalRepository(db)
    await bus.close()
    db.dispose()
    if admin is not None:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


async def test_each_bar_marks_the_open_signal_until_it_closes(
    stack: tuple[Bus, SqlSignalRepository],
) -> None:
    bus, repo = stack
    stop = asyncio.Event()
    service = EngineService(SignalEngine(LongOnce(), plan=PlanParams(cooldown_bars=0)), bus, repo, stop=stop)
    task = asyncio.create_task(service.run())
    bars = replay()
    await bus.publish_many(topics.MARKET_BARS, [(b.symbol, encode(b)) for b in bars])

    await until(lambda: service.engine.stats.bars == len(bars))

    async def settled() -> bool:
        lag = await bus.lag(topics.MARKET_BARS, "engine")
        return lag is not None and lag.unread == 0 and lag.pending == 0

    async with asyncio.timeout(20):
        while not await settled():
            await asyncio.sleep(0.02)
    # Everything the engine acked was published first: read what the topic holds now, no waiting.
    live = bus.consumer(topics.SIGNAL_LIVE, "check", "c1", decoder(LiveUpdate))
    got: list[LiveUpdate] = []
    while batch := await live.fetch(100, wait=0):
        got += [d.value for d in batch]
        await live.ack(*batch)
    await live.close()
    stop.set()
    await asyncio.wait_for(task, 10)

    (signal,) = repo.query(SignalQuery())
    assert signal.status is SignalStatus.STOPPED
    assert {u.signal_id for u in got} == {signal.id} and {u.symbol for u in got} == {"AAPL"}
    # Bars 0..3 (decided, filled, two more); bar 4 stops it out; bar 5 finds nothing open.
    assert [u.ts_ns for u in got] == [M, 2 * M, 3 * M, 4 * M]
    assert [u.price for u in got] == [100, 100.8, 100.4, 99.5]
    assert [u.filled for u in got] == [False, True, True, True]
    assert got[0].unrealised_net_r is None
    assert got[1].unrealised_net_r is not None and got[1].unrealised_net_r > 0 > got[3].unrealised_net_r  # type: ignore[operator]
    assert all(u.probability == 0.61 and u.model_version == "test-live:1" for u in got)
    assert service.engine.stats.live_updates == 4
