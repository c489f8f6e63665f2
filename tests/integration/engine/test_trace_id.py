"""One trace id follows a decision through the logs: the bar at the engine, the signal, its delivery.

The engine role and an API node's broadcaster on the embedded stack (memory bus, SQLite); logs
captured at debug level. Every signal's ``trace_id`` is the one logged for the bar that decided it
(and for no other bar), and the one the API node logged when it delivered the signal to its hub.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from structlog.testing import capture_logs

from tradesignals.api.broadcast import Router, relay
from tradesignals.api.channel_seq import MemoryChannelLog
from tradesignals.bus import topics
from tradesignals.bus.codec import encode
from tradesignals.bus.memory import MemoryBus
from tradesignals.domain.market import Bar, Timeframe
from tradesignals.domain.signals import Direction
from tradesignals.domain.trace import signal_trace_id, trace_id
from tradesignals.engine.pipeline import EngineService, SignalEngine
from tradesignals.engine.placeholder_rule import Decision
from tradesignals.storage.base import SignalQuery
from tradesignals.storage.db import make_engine, migrate
from tradesignals.storage.repositories import SqlSignalRepository

M = Timeframe.M1.ns


class LongEveryThird:
    version = "test-trace"

    def on_bar(self, bar: Bar) -> Decision | None:
        return Decision(Direction.LONG, 0.6, atr=1.0, reasons=("t",)) if bar.ts // M % 3 == 0 else None


def test_trace_id_is_a_digest_of_the_decision() -> None:
    a = trace_id("AAPL", "1d", 1_700_000_000_000_000_000)
    assert len(a) == 16 and int(a, 16) >= 0
    assert a == trace_id("AAPL", "1d", 1_700_000_000_000_000_000)
    assert (
        a
        != trace_id("AAPL", "1d", 1_700_000_000_000_000_001)
        != trace_id("MSFT", "1d", 1_700_000_000_000_000_000)
    )
    assert a != trace_id("AAPL", "1h", 1_700_000_000_000_000_000)


async def test_bar_signal_and_delivery_log_the_same_trace_id(tmp_path: Path) -> None:
    db = make_engine(f"sqlite:///{tmp_path / 'ts.db'}")
    migrate(db)
    repo = SqlSignalRepository(db)
    bus = MemoryBus(partitions=2)
    stop, joined = asyncio.Event(), asyncio.Event()
    decode, route = Router().routes()[topics.SIGNALS]
    loop = asyncio.get_running_loop()

    async def until(cond, what: str) -> None:  # type: ignore[no-untyped-def]
        end = loop.time() + 10
        while not cond():
            assert loop.time() < end, f"timed out waiting for {what}"
            await asyncio.sleep(0.02)

    with capture_logs() as logs:
        channel_log = MemoryChannelLog()
        delivering = asyncio.create_task(
            relay(bus, channel_log, topics.SIGNALS, decode, route, "node-a", stop, joined)
        )
        await asyncio.wait_for(joined.wait(), 10)  # the relay joins at "latest" before anything is published
        engine = EngineService(SignalEngine(LongEveryThird(), Timeframe.M1), bus, repo, stop=stop)
        running = asyncio.create_task(engine.run())
        for i in range(12):  # bars 0..11 of A and B; the rule decides on 0, 3, 6 and 9
            for sym in ("A", "B"):
                bar = Bar(sym, Timeframe.M1, i * M, 100, 200, 50, 100, 10)
                await bus.publish(topics.MARKET_BARS, sym, encode(bar))
        await until(lambda: sum(1 for e in logs if e["event"] == "engine.bar") == 24, "every bar")
        n = len(repo.query(SignalQuery(limit=100)))
        await until(lambda: sum(1 for e in logs if e["event"] == "signal.delivered") == n, "every delivery")
        stop.set()
        await asyncio.wait_for(asyncio.gather(running, delivering), 10)
    signals = repo.query(SignalQuery(limit=100))
    assert signals
    bars = [e for e in logs if e["event"] == "engine.bar"]
    assert len(bars) == 24 and all(e["log_level"] == "debug" for e in bars)
    logged = {e["id"]: e["trace_id"] for e in logs if e["event"] == "signal"}
    delivered = {e["id"]: e["trace_id"] for e in logs if e["event"] == "signal.delivered"}
    for s in signals:
        trace = signal_trace_id(s)
        assert logged[s.id] == trace
        assert delivered[s.id] == trace
        assert [e["symbol"] for e in bars if e["trace_id"] == trace] == [s.symbol]  # its bar, only
    await bus.close()
    db.dispose()
