"""/api/health reports each role's consumer lag (``Services.check_health``, server mode, real Redis)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tradesignals.bus import topics
from tradesignals.bus.codec import decoder, encode
from tradesignals.config import load_settings
from tradesignals.domain.market import Bar, Timeframe
from tradesignals.wiring import build_services


async def test_health_reports_the_engine_and_recorder_lag(
    pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    settings = load_settings(
        mode="server", database_url=pg_url, redis_url=redis_url, bus_prefix=redis_prefix, home=tmp_path
    )
    services = await build_services(settings)
    try:
        before = await services.check_health()
        engine = services.bus.consumer(topics.MARKET_BARS, "engine", "e1", decoder(Bar), lease_seconds=30)
        assert await engine.fetch(10, wait=0) == []  # the engine group exists, one member
        bars = [Bar(f"S{i}", Timeframe.D1, 0, 1, 1, 1, 1, 1) for i in range(5)]
        await services.bus.publish_many(topics.MARKET_BARS, [(b.symbol, encode(b)) for b in bars])
        behind = await services.check_health()
        got = await engine.fetch(10, wait=1)
        await engine.ack(*got)
        caught_up = await services.check_health()
        await engine.close()
        orphaned = (await services.check_health())["lag:engine"]  # a group with no member left
        await services.bus.publish(
            topics.MARKET_BARS, "S9", encode(Bar("S9", Timeframe.D1, 0, 1, 1, 1, 1, 1))
        )
        stranded = (await services.check_health())["lag:engine"]
    finally:
        await services.close()
    assert before["lag:engine"].ok and "no 'engine' group yet" in before["lag:engine"].detail
    assert behind["lag:engine"].detail == "market.bars: unread=5 pending=0 members=1"
    assert behind["lag:engine"].ok  # behind is reported, not judged
    assert caught_up["lag:engine"].detail == "market.bars: unread=0 pending=0 members=1"
    assert orphaned.ok and orphaned.detail.endswith("members=0")
    assert not stranded.ok and stranded.detail == "market.bars: unread=1 pending=0 members=0"
    # A role down elsewhere is reported; it never makes this node unready (503).
    assert not any(c.gates for name, c in before.items() if name.startswith("lag:"))
    assert before["database"].gates and before["bus"].gates
    assert set(before) >= {"database", "bus", "lag:engine", "lag:recorder"}


def test_lag_groups_follow_the_engine_input(tmp_path: Path) -> None:
    settings = load_settings(engine_input="ticks", home=tmp_path)
    services = asyncio.run(build_services(settings))
    try:
        assert services.lag_groups()[0] == ("engine", topics.MARKET_TICKS, "engine")
    finally:
        asyncio.run(services.close())
